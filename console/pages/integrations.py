"""The integrations hub and a provider's manage page."""

from __future__ import annotations

from typing import Any

import reflex as rx

from console.components.table import data_table
from console.components.tiles import tile
from console.layout import page
from console.state.integrations import FILTERS, HubState, ManageState


def hub_page() -> rx.Component:
    return page(
        "Integrations",
        rx.hstack(
            rx.input(
                placeholder="Search integrations",
                value=HubState.search,
                on_change=HubState.set_search,
                width="100%",
                max_width="18rem",
                data_testid="hub-search",
            ),
            # Five filters are wider than a phone: they scroll sideways in their own box.
            rx.box(
                rx.segmented_control.root(
                    *[rx.segmented_control.item(f.title(), value=f) for f in FILTERS],
                    value=HubState.filter,
                    on_change=HubState.set_filter,
                ),
                max_width="100%",
                min_width="0",
                overflow_x="auto",
            ),
            align="center",
            wrap="wrap",
            width="100%",
        ),
        rx.cond(
            HubState.upgrade_notice != "",
            rx.callout(
                HubState.upgrade_notice,
                icon=rx.cond(HubState.upgrade_pending, "loader", "circle-check"),
                color_scheme=rx.cond(HubState.upgrade_pending, "amber", "green"),
                data_testid="upgrade-notice",
            ),
        ),
        rx.foreach(
            HubState.categories,
            lambda category: rx.vstack(
                rx.heading(category, size="4"),
                rx.flex(
                    rx.foreach(
                        HubState.shown, lambda t: rx.cond(t["category"] == category, tile(t))
                    ),
                    wrap="wrap",
                    gap="1rem",
                ),
                width="100%",
            ),
        ),
        # Plan changes (an upgrade paid in another tab) unlock tiles without a reload.
        rx.moment(interval=3000, on_change=HubState.load, display="none"),
    )


def _field(field: Any, masked: Any, disabled: Any) -> rx.Component:
    return rx.vstack(
        rx.text(field["label"], size="2", weight="medium"),
        rx.match(
            field["kind"],
            (
                "secret",
                rx.input(
                    name=field["name"],
                    type="password",
                    width="100%",
                    max_width="28rem",
                    placeholder=rx.cond(
                        masked[field["name"]],
                        masked[field["name"]] + " (kept if blank)",
                        "paste it here",
                    ),
                    auto_complete="off",
                    disabled=disabled,
                    data_testid=f"field-{field['name']}",
                ),
            ),
            (
                "bool",
                rx.checkbox(
                    name=field["name"], default_checked=field["value"] == "True", disabled=disabled
                ),
            ),
            rx.input(
                name=field["name"],
                default_value=field["value"],
                width="100%",
                max_width="28rem",
                disabled=disabled,
                data_testid=f"field-{field['name']}",
            ),
        ),
        rx.cond(field["help"] != "", rx.text(field["help"], size="1", color_scheme="gray")),
        spacing="1",
        width="100%",
    )


def _keys_card() -> rx.Component:
    return rx.card(
        rx.vstack(
            rx.heading("Keys", size="4"),
            rx.cond(
                # Providers that connect through a consent screen (Stripe Connect, Google).
                ManageState.oauth_label != "",
                rx.hstack(
                    rx.button(
                        ManageState.oauth_label,
                        on_click=ManageState.start_oauth,
                        data_testid="oauth-connect",
                        disabled=~ManageState.is_owner,
                    ),
                    rx.text("or use your own keys:", size="2", color_scheme="gray"),
                    align="center",
                ),
            ),
            rx.form(
                rx.vstack(
                    rx.foreach(
                        ManageState.key_fields,
                        lambda f: _field(f, ManageState.masked, ~ManageState.is_owner),
                    ),
                    rx.hstack(
                        rx.button(
                            "Test and save",
                            type="submit",
                            loading=ManageState.busy,
                            disabled=~ManageState.is_owner,
                            data_testid="save-keys",
                        ),
                        rx.button(
                            "Test connection",
                            type="button",
                            variant="soft",
                            on_click=ManageState.test_connection,
                            disabled=(~ManageState.can_change) | (ManageState.status == ""),
                            data_testid="test-connection",
                        ),
                    ),
                    spacing="3",
                ),
                on_submit=ManageState.save_keys,
                reset_on_submit=True,
            ),
            rx.cond(
                ~ManageState.is_owner,
                rx.text("Only a workspace owner can change keys.", size="1", color_scheme="gray"),
            ),
            spacing="3",
        )
    )


def _settings_card() -> rx.Component:
    return rx.card(
        rx.form(
            rx.vstack(
                rx.heading("Settings", size="4"),
                rx.foreach(
                    ManageState.setting_fields,
                    lambda f: _field(f, ManageState.masked, ~ManageState.can_change),
                ),
                rx.button(
                    "Save settings",
                    type="submit",
                    variant="soft",
                    disabled=(~ManageState.can_change) | (ManageState.status == ""),
                    data_testid="save-settings",
                ),
                spacing="3",
            ),
            on_submit=ManageState.save_settings,
        )
    )


def _disconnect() -> rx.Component:
    return rx.alert_dialog.root(
        rx.alert_dialog.trigger(
            rx.button(
                "Disconnect",
                color_scheme="red",
                variant="soft",
                data_testid="disconnect",
                disabled=(~ManageState.is_owner) | (ManageState.status == ""),
            )
        ),
        rx.alert_dialog.content(
            rx.alert_dialog.title("Disconnect " + ManageState.name + "?"),
            rx.alert_dialog.description(
                "The keys are wiped (and the access revoked where the provider allows it). "
                "Invoices, logs and the audit trail stay."
            ),
            rx.hstack(
                rx.alert_dialog.cancel(rx.button("Cancel", variant="soft")),
                rx.alert_dialog.action(
                    rx.button(
                        "Disconnect",
                        color_scheme="red",
                        on_click=ManageState.disconnect,
                        data_testid="confirm-disconnect",
                    )
                ),
                justify="end",
                spacing="3",
            ),
        ),
    )


def manage_page() -> rx.Component:
    return page(
        ManageState.name,
        rx.hstack(
            rx.image(src=ManageState.logo, width="40px", height="40px"),
            rx.text(ManageState.description, color_scheme="gray"),
            rx.badge(
                rx.cond(ManageState.status != "", ManageState.status, "not connected"),
                data_testid="integration-status",
            ),
            rx.cond(
                ManageState.last_checked != "",
                rx.text("checked " + ManageState.last_checked, size="1", color_scheme="gray"),
            ),
            align="center",
        ),
        rx.cond(
            ManageState.last_error != "",
            rx.callout(
                ManageState.last_error,
                # Active with an error: the provider was unavailable; the key is fine.
                color_scheme=rx.cond(ManageState.status == "active", "amber", "red"),
                icon="circle-alert",
                data_testid="integration-last-error",
            ),
        ),
        rx.cond(
            ManageState.result != "",
            rx.callout(
                ManageState.result,
                color_scheme=rx.cond(
                    ManageState.result_ok,
                    "green",
                    rx.cond(ManageState.result_unavailable, "amber", "red"),
                ),
                icon=rx.cond(ManageState.result_ok, "circle-check", "triangle-alert"),
                data_testid="connect-result",
            ),
        ),
        rx.cond(
            ManageState.offer_inactive,
            rx.button(
                "Save anyway, as inactive",
                variant="outline",
                on_click=ManageState.save_inactive,
                data_testid="save-inactive",
            ),
        ),
        rx.cond(
            ManageState.connectable,
            rx.vstack(_keys_card(), _settings_card(), _disconnect(), spacing="4"),
            rx.callout(ManageState.locked_reason, icon="lock", data_testid="locked-reason"),
        ),
        rx.heading("Recent calls", size="4"),
        data_table(
            [
                ("When", "at"),
                ("Operation", "operation"),
                ("Status", "status"),
                ("Latency", "latency"),
                ("Error", "error"),
            ],
            ManageState.call_rows,
            "No calls yet.",
            "calls-table",
        ),
        rx.heading("Audit trail", size="4"),
        data_table(
            [("When", "at"), ("Who", "actor"), ("Action", "action"), ("Details", "details")],
            ManageState.audit_rows,
            "Nothing yet.",
            "audit-table",
        ),
    )
