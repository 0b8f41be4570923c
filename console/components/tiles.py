"""An integration's tile on the hub: logo, name, description, and what can be done with it."""

from __future__ import annotations

from typing import Any

import reflex as rx


def _action(tile: Any) -> rx.Component:
    manage = f"/integrations/{tile['slug']}"
    return rx.match(
        tile["state"],
        ("connected", rx.link(rx.button("Manage", size="2", variant="soft"), href=manage)),
        ("error", rx.link(rx.button("Reconnect", size="2", color_scheme="red"), href=manage)),
        (
            "connect",
            rx.cond(
                tile["can_connect"] == "yes",
                rx.link(rx.button("Connect", size="2"), href=manage),
                rx.vstack(
                    rx.button(
                        "Connect", size="2", variant="soft", color_scheme="gray", disabled=True
                    ),
                    rx.text("Only a workspace owner can connect.", size="1", color_scheme="gray"),
                    spacing="1",
                ),
            ),
        ),
        (
            "locked",
            rx.link(
                rx.button(rx.icon("lock", size=14), "Upgrade", size="2", variant="outline"),
                href="/settings",
            ),
        ),
        # Coming soon: the status line already says so; there is nothing to do yet.
        rx.fragment(),
    )


def _status(tile: Any) -> rx.Component:
    return rx.match(
        tile["state"],
        (
            "connected",
            rx.hstack(
                rx.icon("circle-check", color="green", size=16),
                rx.text("Connected", size="1", color_scheme="green"),
                rx.text(f"checked {tile['checked']}", size="1", color_scheme="gray"),
                spacing="1",
                align="center",
            ),
        ),
        (
            "error",
            rx.hstack(
                rx.icon("circle-alert", color="red", size=16),
                rx.text(tile["error"], size="1", color_scheme="red"),
                spacing="1",
                align="center",
            ),
        ),
        (
            "locked",
            rx.hstack(
                rx.icon("lock", size=14),
                rx.text(f"Available on {tile['required_plan']}", size="1"),
                spacing="1",
                align="center",
            ),
        ),
        ("coming_soon", rx.badge("Coming soon", color_scheme="gray")),
        rx.text("Not connected", size="1", color_scheme="gray"),
    )


def tile(tile: Any) -> rx.Component:
    return rx.card(
        rx.vstack(
            rx.hstack(
                rx.image(src=tile["logo"], width="36px", height="36px", alt=tile["name"]),
                rx.heading(tile["name"], size="3"),
                align="center",
            ),
            rx.text(tile["description"], size="2", color_scheme="gray", min_height="2.5rem"),
            _status(tile),
            _action(tile),
            spacing="2",
            align="start",
        ),
        width="17rem",
        data_testid=f"tile-{tile['slug']}",
        data_state=tile["state"],
    )
