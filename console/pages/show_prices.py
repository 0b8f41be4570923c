"""A show's items table (on the Invoices tab): every item with its price, each editable. What is
typed is read in the workspace's locale and shown as understood ("$12.50") before saving; 0
asks "free item?"; a changed price offers to regenerate the invoices made at the old one."""

from __future__ import annotations

from typing import Any

import reflex as rx

from console.state.show.base import ShowState
from console.state.show.prices import PricesState


def _price_editor(item: Any) -> rx.Component:
    return rx.form(
        rx.hstack(
            # The form's submit handler lives outside the foreach: the item travels in it.
            rx.el.input(type="hidden", name="item_id", value=item.id),
            rx.input(
                name="price",
                # Bound to the item, not to the row's position: text typed for one item never
                # turns up on another when rows change.
                value=rx.cond(
                    PricesState.drafts.contains(item.id), PricesState.drafts[item.id], ""
                ),
                on_change=lambda text: PricesState.set_draft(item.id, text),
                placeholder=rx.cond(item.priced, "new price", "price"),
                width="8rem",
                disabled=~ShowState.can_change,
                data_testid="price-input",
            ),
            rx.button(
                rx.cond(item.priced, "Change", "Set price"),
                type="submit",
                size="2",
                variant="soft",
                disabled=~ShowState.can_change,
                data_testid="price-save",
            ),
            align="center",
        ),
        on_submit=PricesState.save_price,
        reset_on_submit=False,
    )


def _item_row(item: Any) -> rx.Component:
    return rx.table.row(
        rx.table.cell("#", item.number),
        rx.table.cell(item.title),
        rx.table.cell(item.claimed, color="var(--gray-11)"),
        rx.table.cell(
            rx.cond(
                item.priced,
                rx.text(item.price, data_testid="item-price"),
                rx.badge("no price", color_scheme="orange", data_testid="item-price"),
            )
        ),
        rx.table.cell(
            rx.vstack(
                _price_editor(item),
                rx.cond(
                    PricesState.understood.contains(item.id)
                    & (PricesState.understood[item.id] != ""),
                    rx.text(
                        "Understood: ",
                        rx.text.strong(PricesState.understood[item.id]),
                        size="2",
                        color_scheme="green",
                        data_testid="price-understood",
                    ),
                ),
                rx.cond(
                    PricesState.price_errors.contains(item.id)
                    & (PricesState.price_errors[item.id] != ""),
                    rx.text(
                        PricesState.price_errors[item.id],
                        color_scheme="red",
                        size="2",
                        max_width="28rem",
                        data_testid="price-error",
                    ),
                ),
                spacing="1",
            )
        ),
        key=item.id,
        custom_attrs={
            "data-number": item.number,
            "data-priced": rx.cond(item.priced, "yes", "no"),
        },
        data_testid="item-row",
    )


def _items_pager() -> rx.Component:
    return rx.cond(
        ShowState.items_pages > 1,
        rx.hstack(
            rx.button(
                "Previous",
                size="1",
                variant="soft",
                on_click=PricesState.previous_items_page,
                disabled=ShowState.items_page <= 1,
            ),
            rx.text("Items page ", ShowState.items_page, " of ", ShowState.items_pages, size="2"),
            rx.button(
                "Next",
                size="1",
                variant="soft",
                on_click=PricesState.next_items_page,
                disabled=ShowState.items_page >= ShowState.items_pages,
            ),
            align="center",
        ),
    )


def prices_card() -> rx.Component:
    return rx.card(
        rx.vstack(
            rx.heading("Items and prices", size="3"),
            rx.cond(
                ShowState.unpriced > 0,
                rx.callout(
                    rx.text(
                        ShowState.unpriced,
                        " claimed item(s) have no price yet. Set them before generating, or "
                        "generate anyway: they go on the invoice as a zero line to fix in Stripe.",
                    ),
                    icon="info",
                    color_scheme="orange",
                    data_testid="unpriced-items",
                ),
            ),
            rx.text(
                "Type a price as this workspace writes numbers (Settings → Money); what it is "
                "understood as shows before you save.",
                size="2",
                color_scheme="gray",
            ),
            rx.table.root(
                rx.table.header(
                    rx.table.row(
                        *[
                            rx.table.column_header_cell(h)
                            for h in ("#", "Item", "Claimed", "Price", "Set or change")
                        ]
                    )
                ),
                rx.table.body(rx.foreach(ShowState.items, _item_row)),
                width="100%",
                size="1",
                data_testid="items-table",
            ),
            _items_pager(),
            spacing="2",
            width="100%",
        ),
        width="100%",
    )


def reprice_dialogs() -> rx.Component:
    """ "Free item?" for a price of 0, and the offer to regenerate after a price change."""
    free = rx.alert_dialog.root(
        rx.alert_dialog.content(
            rx.alert_dialog.title("Free item?"),
            rx.alert_dialog.description(PricesState.free_question),
            rx.hstack(
                rx.alert_dialog.cancel(rx.button("No, type a price", variant="soft")),
                rx.alert_dialog.action(
                    rx.button(
                        "Yes, it is free",
                        on_click=PricesState.confirm_free(PricesState.free_id),
                        data_testid="confirm-free",
                    )
                ),
                justify="end",
                spacing="3",
                padding_top="1rem",
            ),
        ),
        open=PricesState.free_open,
        on_open_change=PricesState.set_free_open,
    )
    reprice = rx.alert_dialog.root(
        rx.alert_dialog.content(
            rx.alert_dialog.title("Regenerate the invoices with ", PricesState.reprice_title, "?"),
            rx.alert_dialog.description(PricesState.reprice_text, data_testid="reprice-text"),
            rx.cond(
                PricesState.reprice_paid != "",
                rx.text(
                    PricesState.reprice_paid,
                    color_scheme="amber",
                    size="2",
                    padding_top="0.5rem",
                    data_testid="reprice-paid",
                ),
            ),
            rx.hstack(
                rx.alert_dialog.cancel(
                    rx.button(
                        rx.cond(PricesState.reprice_count > 0, "Not now", "Close"),
                        variant="soft",
                        data_testid="reprice-cancel",
                    )
                ),
                rx.cond(
                    PricesState.reprice_count > 0,
                    rx.alert_dialog.action(
                        rx.button(
                            "Regenerate ",
                            PricesState.reprice_count,
                            " invoice(s)",
                            on_click=PricesState.confirm_reprice(PricesState.reprice_id),
                            data_testid="confirm-reprice",
                        )
                    ),
                ),
                justify="end",
                spacing="3",
                padding_top="1rem",
            ),
        ),
        open=PricesState.reprice_open,
        on_open_change=PricesState.set_reprice_open,
    )
    return rx.fragment(free, reprice)
