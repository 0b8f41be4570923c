"""A show's Invoices tab: figures, the items table (prices), "Generate all" and its progress,
the buyer rollup with its actions, and reconciliation with Stripe."""

from __future__ import annotations

from typing import Any

import reflex as rx

from console.components.status_badge import status_color
from console.pages.show_prices import prices_card, reprice_dialogs
from console.state.show.base import ShowState
from console.state.show.invoices import InvoicesState
from console.state.show.reconciliation import ReconciliationState
from console.state.show.views import STATUS_FILTERS


def figures() -> rx.Component:
    def figure(label: str, value: Any, test_id: str) -> rx.Component:
        return rx.vstack(
            rx.text(label, size="1", color_scheme="gray"),
            rx.text(value, size="5", weight="bold", data_testid=test_id),
            spacing="0",
            min_width="6rem",
        )

    return rx.hstack(
        figure("Buyers", ShowState.buyers, "fig-buyers"),
        figure("Claims", ShowState.claims, "fig-claims"),
        figure("Total", ShowState.total, "fig-total"),
        figure("Not invoiced", ShowState.not_invoiced, "fig-not-invoiced"),
        figure("Draft", ShowState.counts["draft"], "fig-draft"),
        figure("Sent", ShowState.counts["sent"], "fig-sent"),
        figure("Paid", ShowState.counts["paid"], "fig-paid"),
        figure("Void", ShowState.counts["void"], "fig-void"),
        figure("Error", ShowState.counts["error"], "fig-error"),
        spacing="5",
        wrap="wrap",
    )


def _stripe_missing() -> rx.Component:
    """Why invoices cannot be made now, as provider_status says: not connected, a refused key
    (both: fix it under Integrations), or Stripe unavailable (work queues and waits)."""
    return rx.cond(
        ShowState.stripe_unavailable,
        rx.callout(
            rx.text(
                ShowState.stripe_message,
                " ",
                rx.link("Jobs", href="/jobs", data_testid="stripe-jobs"),
                " shows what is waiting.",
            ),
            icon="cloud-off",
            color_scheme="amber",
            data_testid="stripe-unavailable",
        ),
        rx.callout(
            rx.text(
                ShowState.stripe_message,
                " Invoices are made in Stripe: ",
                rx.link(
                    rx.cond(
                        ShowState.stripe_state == "not_connected",
                        "connect Stripe",
                        "fix Stripe's key",
                    ),
                    href="/integrations/stripe",
                    data_testid="connect-stripe",
                ),
                " to generate them.",
            ),
            icon="triangle-alert",
            color_scheme="amber",
            data_testid="stripe-missing",
        ),
    )


def _progress() -> rx.Component:
    return rx.cond(
        ShowState.progress_total > 0,
        rx.hstack(
            rx.progress(value=ShowState.progress_percent, width="16rem"),
            rx.text(
                ShowState.done,
                " done · ",
                ShowState.failed,
                " failed · ",
                ShowState.queued,
                " queued",
                size="2",
                data_testid="progress",
            ),
            rx.badge(
                rx.cond(ShowState.progress_finished, "finished", "working"),
                color_scheme=rx.cond(ShowState.progress_finished, "green", "blue"),
                data_testid="progress-state",
            ),
            align="center",
        ),
    )


def _actions_bar() -> rx.Component:
    return rx.hstack(
        rx.button(
            "Generate all invoices",
            on_click=InvoicesState.generate_all,
            loading=InvoicesState.generating,
            disabled=(~ShowState.can_change) | (~ShowState.stripe_ready),
            data_testid="generate-all",
        ),
        _progress(),
        rx.spacer(),
        rx.button(
            rx.icon("download", size=14),
            "Export CSV",
            variant="soft",
            on_click=InvoicesState.export_csv,
            loading=InvoicesState.exporting,
            data_testid="export-csv",
        ),
        width="100%",
        align="center",
        wrap="wrap",
    )


def _filters() -> rx.Component:
    return rx.hstack(
        rx.segmented_control.root(
            *[rx.segmented_control.item(label, value=value) for value, label in STATUS_FILTERS],
            value=ShowState.status_filter,
            on_change=InvoicesState.set_status_filter,
            data_testid="status-filter",
        ),
        rx.input(
            placeholder="Search by handle",
            value=ShowState.search,
            on_change=InvoicesState.set_search.debounce(300),
            width="16rem",
            data_testid="buyer-search",
        ),
        align="center",
        wrap="wrap",
    )


def _item_line(item: Any) -> rx.Component:
    return rx.text(
        item.text,
        size="2",
        color_scheme=rx.cond(item.unpriced, "orange", "gray"),
        weight=rx.cond(item.unpriced, "medium", "regular"),
    )


def _status_cell(row: Any) -> rx.Component:
    return rx.vstack(
        rx.badge(
            row.status_label, color_scheme=status_color(row.status), data_testid="invoice-status"
        ),
        rx.cond(
            row.note != "",
            rx.text(
                row.note,
                size="1",
                color_scheme=rx.cond(row.status == "error", "red", "gray"),
                max_width="18rem",
                data_testid="invoice-note",
            ),
        ),
        rx.cond(
            row.manual,
            rx.badge("send manually", color_scheme="amber", variant="soft", data_testid="manual"),
            rx.cond(row.channel != "", rx.text(row.channel, size="1", color_scheme="gray")),
        ),
        spacing="1",
    )


def _row_actions(row: Any) -> rx.Component:
    locked = ~ShowState.can_change
    return rx.flex(
        rx.cond(
            row.can_generate,
            rx.button(
                "Generate",
                size="1",
                on_click=InvoicesState.generate_one(row.pid),
                disabled=locked | ~ShowState.stripe_ready,
            ),
        ),
        rx.cond(
            row.can_retry,
            rx.button(
                "Retry", size="1", on_click=InvoicesState.retry(row.invoice_id), disabled=locked
            ),
        ),
        rx.cond(
            row.can_send,
            rx.fragment(
                rx.button(
                    "Send link",
                    size="1",
                    on_click=InvoicesState.send_link(row.invoice_id),
                    disabled=locked,
                ),
                rx.button(
                    "Copy link",
                    size="1",
                    variant="soft",
                    on_click=InvoicesState.copy_link(row.invoice_id, row.url),
                ),
            ),
        ),
        rx.cond(
            row.url != "",
            rx.link(
                "View on Stripe",
                href=row.url,
                is_external=True,
                size="2",
                data_testid="view-on-stripe",
            ),
        ),
        rx.cond(
            row.can_void,
            rx.button(
                "Void",
                size="1",
                color_scheme="red",
                variant="soft",
                on_click=InvoicesState.ask_void(row.invoice_id, row.handle),
                disabled=locked,
            ),
        ),
        rx.cond(
            row.can_regenerate,
            rx.button(
                "Regenerate",
                size="1",
                on_click=InvoicesState.regenerate(row.invoice_id),
                disabled=locked,
            ),
        ),
        gap="2",
        wrap="wrap",
        align="center",
    )


def _buyer_row(row: Any) -> rx.Component:
    return rx.table.row(
        rx.table.cell(
            rx.vstack(
                rx.text("@", row.handle, weight="medium"),
                rx.text(row.contact, size="1", color_scheme="gray"),
                spacing="0",
            )
        ),
        rx.table.cell(rx.vstack(rx.foreach(row.lines, _item_line), spacing="0")),
        rx.table.cell(row.subtotal, data_testid="subtotal"),
        rx.table.cell(_status_cell(row)),
        rx.table.cell(_row_actions(row)),
        custom_attrs={"data-handle": row.handle, "data-status": row.status},
        data_testid="buyer-row",
    )


def _rollup() -> rx.Component:
    headers = ("Buyer", "Items", "Subtotal", "Invoice", "")
    return rx.cond(
        ShowState.rows.length() > 0,
        rx.table.root(
            rx.table.header(rx.table.row(*[rx.table.column_header_cell(h) for h in headers])),
            rx.table.body(rx.foreach(ShowState.rows, _buyer_row)),
            width="100%",
            variant="surface",
            data_testid="rollup",
        ),
        rx.callout("No buyer matches.", icon="info", data_testid="rollup-empty"),
    )


def _pager() -> rx.Component:
    return rx.hstack(
        rx.button(
            "Previous",
            size="1",
            variant="soft",
            on_click=InvoicesState.previous_page,
            disabled=ShowState.page <= 1,
            data_testid="page-previous",
        ),
        rx.text(
            "Page ",
            ShowState.page,
            " of ",
            ShowState.pages,
            " · ",
            ShowState.matching,
            " buyer(s)",
            size="2",
            data_testid="pager",
        ),
        rx.button(
            "Next",
            size="1",
            variant="soft",
            on_click=InvoicesState.next_page,
            disabled=ShowState.page >= ShowState.pages,
            data_testid="page-next",
        ),
        align="center",
    )


def _void_dialog() -> rx.Component:
    return rx.alert_dialog.root(
        rx.alert_dialog.content(
            rx.alert_dialog.title("Void @", InvoicesState.void_handle, "'s invoice?"),
            rx.alert_dialog.description(
                "Stripe voids it: its link stops working and it cannot be paid. You can "
                "regenerate a new invoice for the buyer afterwards."
            ),
            rx.hstack(
                rx.alert_dialog.cancel(
                    rx.button("Keep it", variant="soft", on_click=InvoicesState.cancel_void)
                ),
                rx.alert_dialog.action(
                    rx.button(
                        "Void invoice",
                        color_scheme="red",
                        on_click=InvoicesState.confirm_void(
                            InvoicesState.void_id, InvoicesState.void_handle
                        ),
                        data_testid="confirm-void",
                    )
                ),
                justify="end",
                spacing="3",
                padding_top="1rem",
            ),
        ),
        open=InvoicesState.void_open,
        on_open_change=InvoicesState.set_void_open,
    )


def _finding(finding: Any) -> rx.Component:
    return rx.hstack(
        rx.badge(finding["field"], color_scheme="amber", variant="soft"),
        rx.text(finding["summary"], size="2"),
        rx.cond(finding["new"] != "", rx.badge("new", color_scheme="blue", size="1")),
        align="center",
        data_testid="finding",
    )


def _reconciliation() -> rx.Component:
    return rx.card(
        rx.vstack(
            rx.hstack(
                rx.heading("Reconciliation with Stripe", size="3"),
                rx.spacer(),
                rx.button(
                    "Check against Stripe",
                    variant="soft",
                    on_click=ReconciliationState.check_stripe,
                    loading=ReconciliationState.checking,
                    disabled=(~ShowState.can_change) | (~ShowState.stripe_ready),
                    data_testid="check-stripe",
                ),
                rx.button(
                    "Fix all",
                    on_click=ReconciliationState.fix_findings,
                    loading=ReconciliationState.fixing,
                    disabled=(~ShowState.can_change) | (ReconciliationState.fixable_findings == 0),
                    data_testid="fix-all",
                ),
                width="100%",
                align="center",
            ),
            rx.text(
                "Our invoices are compared with Stripe's every hour: a missed webhook or a "
                "change made in Stripe's dashboard shows up here. Fix makes ours say what "
                "Stripe says.",
                size="2",
                color_scheme="gray",
            ),
            rx.cond(
                ReconciliationState.findings.length() > 0,
                rx.vstack(rx.foreach(ReconciliationState.findings, _finding), spacing="2"),
                rx.cond(
                    ReconciliationState.checked,
                    rx.text(
                        "No differences: our invoices match Stripe's.",
                        size="2",
                        color_scheme="green",
                        data_testid="no-findings",
                    ),
                ),
            ),
            spacing="2",
            width="100%",
        ),
        width="100%",
        data_testid="reconciliation",
    )


def invoices_tab() -> rx.Component:
    return rx.vstack(
        rx.cond(ShowState.stripe_message != "", _stripe_missing()),
        prices_card(),
        _actions_bar(),
        _filters(),
        _rollup(),
        _pager(),
        _reconciliation(),
        _void_dialog(),
        reprice_dialogs(),
        # Live statuses while the tab is open: unmounted with the tab, the polling stops.
        rx.moment(interval=1000, on_change=InvoicesState.poll, display="none"),
        spacing="4",
        width="100%",
        padding_top="1rem",
    )


# -- a show: claims import --------------------------------------------------------------------
