"""Settings → Money: the locale the workspace's prices are typed and shown in (en_US writes
1,234.56, de_DE 1.234,56) and the currency of its new shows."""

from __future__ import annotations

from typing import Any

import reflex as rx

from console.state.settings import MoneyFormatState


def _option(choice: Any) -> rx.Component:
    return rx.select.item(choice["label"], value=choice["value"])


def money_card() -> rx.Component:
    locked = ~MoneyFormatState.can_change
    return rx.card(
        rx.vstack(
            rx.heading("Money", size="4"),
            rx.text(
                "How prices are typed on the Invoices tab and read from a claims CSV file, and "
                "how amounts are shown. A show keeps the currency it was created in: its "
                "invoices are in it.",
                size="2",
                color_scheme="gray",
            ),
            rx.hstack(
                rx.vstack(
                    rx.text("Number format (locale)", size="2", weight="medium"),
                    rx.select.root(
                        rx.select.trigger(width="100%", data_testid="money-locale"),
                        rx.select.content(rx.foreach(MoneyFormatState.locales, _option)),
                        value=MoneyFormatState.locale_draft,
                        on_change=MoneyFormatState.set_locale_draft,
                        disabled=locked,
                    ),
                    spacing="1",
                    # Fluid up to its desktop width: on a phone the card is no wider than
                    # the screen.
                    width="100%",
                    max_width="22rem",
                ),
                rx.vstack(
                    rx.text("Currency of new shows", size="2", weight="medium"),
                    rx.select.root(
                        rx.select.trigger(width="100%", data_testid="money-currency"),
                        rx.select.content(rx.foreach(MoneyFormatState.currencies, _option)),
                        value=MoneyFormatState.currency_draft,
                        on_change=MoneyFormatState.set_currency_draft,
                        disabled=locked,
                    ),
                    spacing="1",
                    width="100%",
                    max_width="16rem",
                ),
                align="end",
                wrap="wrap",
            ),
            rx.hstack(
                rx.text(
                    "A price looks like ",
                    rx.text.strong(MoneyFormatState.money_example, data_testid="money-example"),
                    size="2",
                ),
                rx.button(
                    "Save",
                    on_click=MoneyFormatState.save_money,
                    disabled=locked,
                    data_testid="money-save",
                ),
                align="center",
                wrap="wrap",
            ),
            rx.cond(
                MoneyFormatState.money_error != "",
                rx.callout(
                    MoneyFormatState.money_error,
                    color_scheme="red",
                    icon="triangle-alert",
                    data_testid="money-error",
                ),
            ),
            spacing="2",
        ),
        on_mount=MoneyFormatState.load,
        width="100%",
    )
