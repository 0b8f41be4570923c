"""Settings: workspace name and money format (owners and admins), plan, the operator's role,
and the e-mail templates' preview."""

from __future__ import annotations

import reflex as rx

from console.layout import page
from console.pages.settings_inbound import inbound_parse_card
from console.pages.settings_money import money_card
from console.state.email_preview import EmailPreviewState
from console.state.settings import PlanState, SettingsState


def email_templates_card() -> rx.Component:
    """Each purpose's template with sample data: the HTML part in a sandboxed frame (no script
    runs), the text part as it is sent."""
    return rx.card(
        rx.vstack(
            rx.heading("E-mail templates", size="4"),
            rx.text(
                "What the hub mails for each purpose, shown with sample data.",
                size="2",
                color_scheme="gray",
            ),
            rx.select(
                EmailPreviewState.purpose_names,
                value=EmailPreviewState.purpose,
                on_change=EmailPreviewState.set_purpose,
                data_testid="email-template-purpose",
            ),
            rx.text("Subject: ", rx.text.strong(EmailPreviewState.subject), size="2"),
            rx.text("Group: ", EmailPreviewState.group, size="2", color_scheme="gray"),
            rx.el.iframe(
                src_doc=EmailPreviewState.html,
                sandbox="",
                title="HTML part",
                width="100%",
                height="420px",
                style={"border": "1px solid var(--gray-6)", "border_radius": "6px"},
                data_testid="email-template-html",
            ),
            # The text part as a mail client shows it, wrapped: a phone's width never scrolls
            # sideways (tests/e2e/test_layout.py).
            rx.el.pre(
                EmailPreviewState.text,
                style={
                    "white_space": "pre-wrap",
                    "overflow_wrap": "anywhere",
                    "max_width": "100%",
                    "font_size": "12px",
                    "padding": "8px",
                    "border": "1px solid var(--gray-6)",
                    "border_radius": "6px",
                },
                width="100%",
                data_testid="email-template-text",
            ),
            spacing="2",
            width="100%",
        ),
    )


def settings_page() -> rx.Component:
    return page(
        "Settings",
        rx.card(
            rx.vstack(
                rx.heading("Workspace", size="4"),
                rx.text("Name", size="2", weight="medium"),
                rx.hstack(
                    rx.input(
                        value=SettingsState.name_draft,
                        on_change=SettingsState.set_name_draft,
                        read_only=~SettingsState.can_change,
                        width="100%",
                        max_width="20rem",
                        data_testid="workspace-name",
                    ),
                    rx.button(
                        "Save",
                        on_click=SettingsState.save_name,
                        disabled=~SettingsState.can_change,
                        data_testid="workspace-save",
                    ),
                ),
                rx.cond(
                    ~SettingsState.can_change,
                    rx.callout(
                        "You are a viewer in this workspace: you can see everything but change "
                        "nothing. Ask an owner or admin for a different role.",
                        icon="lock",
                        color_scheme="gray",
                        data_testid="viewer-notice",
                    ),
                ),
                rx.cond(
                    SettingsState.error != "",
                    rx.callout(
                        SettingsState.error,
                        color_scheme="red",
                        icon="triangle-alert",
                        data_testid="settings-error",
                    ),
                ),
                rx.cond(
                    SettingsState.message != "",
                    rx.text(
                        SettingsState.message, color_scheme="green", data_testid="settings-message"
                    ),
                ),
                rx.text("Plan: ", rx.text.strong(SettingsState.plan), size="2"),
                rx.text("Your role: ", rx.text.strong(SettingsState.role), size="2"),
                spacing="2",
            ),
        ),
        money_card(),
        inbound_parse_card(),
        email_templates_card(),
        rx.card(
            rx.vstack(
                rx.heading("Plan", size="4"),
                rx.text(
                    "This workspace is on the ",
                    rx.text.strong(PlanState.plan, data_testid="current-plan"),
                    " plan.",
                ),
                rx.text(
                    "Free shows every integration; Pro connects Stripe, SendGrid, Google "
                    "Drive, Slack and Messenger (one payment provider); Business adds Zoho "
                    "Books, outbound webhooks and several payment providers.",
                    size="2",
                    color_scheme="gray",
                ),
                rx.hstack(
                    rx.cond(
                        PlanState.plan == "free",
                        rx.button(
                            "Upgrade to Pro",
                            on_click=PlanState.upgrade("pro"),
                            disabled=~PlanState.is_owner,
                            data_testid="upgrade-pro",
                        ),
                    ),
                    rx.cond(
                        PlanState.plan != "business",
                        rx.button(
                            "Upgrade to Business",
                            variant="soft",
                            on_click=PlanState.upgrade("business"),
                            disabled=~PlanState.is_owner,
                            data_testid="upgrade-business",
                        ),
                    ),
                ),
                rx.cond(
                    ~PlanState.is_owner,
                    rx.text(
                        "Only a workspace owner can change the plan.", size="1", color_scheme="gray"
                    ),
                ),
                rx.cond(
                    PlanState.plan_error != "",
                    rx.callout(PlanState.plan_error, color_scheme="red", icon="triangle-alert"),
                ),
                spacing="2",
            ),
        ),
    )
