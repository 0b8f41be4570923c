"""Settings → Replies: where SendGrid Inbound Parse posts leads' replies (owners and admins)."""

from __future__ import annotations

import reflex as rx

from console.state.inbound_parse import InboundParseState


def inbound_parse_card() -> rx.Component:
    return rx.card(
        rx.vstack(
            rx.heading("Replies", size="4"),
            rx.text(
                "A lead's reply to the hub's mail stops their follow-up sequence and appears on "
                "their page. In SendGrid, Settings → Inbound Parse, point your reply domain at "
                "this URL. It holds this workspace's secret: keep it to yourself.",
                size="2",
                color_scheme="gray",
            ),
            rx.cond(
                InboundParseState.parse_url != "",
                rx.hstack(
                    rx.code(
                        InboundParseState.parse_url,
                        style={"overflow_wrap": "anywhere"},
                        data_testid="inbound-parse-url",
                    ),
                    rx.button("Hide", variant="soft", on_click=InboundParseState.hide_parse_url),
                    wrap="wrap",
                ),
                rx.button(
                    "Show the Inbound Parse URL",
                    on_click=InboundParseState.show_parse_url,
                    disabled=~InboundParseState.can_change,
                    data_testid="inbound-parse-show",
                ),
            ),
            rx.cond(
                ~InboundParseState.can_change,
                rx.text("Only owners and admins can see it.", size="1", color_scheme="gray"),
            ),
            rx.cond(
                InboundParseState.parse_error != "",
                rx.callout(
                    InboundParseState.parse_error, color_scheme="red", icon="triangle-alert"
                ),
            ),
            spacing="2",
            width="100%",
        ),
    )
