"""The page shell: sidebar, workspace switcher, who is logged in, and the sandbox banner."""

from __future__ import annotations

from collections.abc import Callable

import reflex as rx

from console.state.base import SessionState

NAV = (
    ("Dashboard", "/", "layout-dashboard"),
    ("Integrations", "/integrations", "plug"),
    ("Shows", "/shows", "video"),
    ("Timeline", "/timeline", "activity"),
    ("Health", "/health", "heart-pulse"),
    ("Jobs", "/jobs", "list-checks"),
    ("Settings", "/settings", "settings"),
)


def _nav_link(label: str, href: str, icon: str) -> rx.Component:
    return rx.link(
        rx.hstack(rx.icon(icon, size=16), rx.text(label), spacing="2", align="center"),
        href=href,
        underline="none",
        padding="0.4rem 0.6rem",
        border_radius="6px",
        width="100%",
        _hover={"background": "var(--gray-a3)"},
        data_testid=f"nav-{label.lower()}",
    )


def sidebar() -> rx.Component:
    return rx.vstack(
        rx.heading("Integrations Hub", size="4", padding_bottom="0.5rem"),
        *[_nav_link(*item) for item in NAV],
        width="13rem",
        min_height="100vh",
        padding="1rem",
        border_right="1px solid var(--gray-a5)",
        spacing="1",
    )


def workspace_switcher() -> rx.Component:
    return rx.select.root(
        rx.select.trigger(placeholder="Workspace", data_testid="workspace-switcher"),
        rx.select.content(
            rx.foreach(
                SessionState.workspaces,
                lambda w: rx.select.item(w["label"], value=w["id"]),
            )
        ),
        value=SessionState.workspace_id,
        on_change=SessionState.switch_workspace,
    )


def topbar() -> rx.Component:
    return rx.hstack(
        workspace_switcher(),
        rx.badge(SessionState.plan, color_scheme="violet", data_testid="plan-badge"),
        rx.cond(
            SessionState.is_sandbox,
            rx.link(
                rx.badge(
                    "Sandbox mode: providers are emulated",
                    color_scheme="amber",
                    data_testid="sandbox-badge",
                ),
                href=SessionState.sandbox_url,
                is_external=True,
                title="Open the provider sandbox (emulated Stripe, SendGrid, Drive ...)",
            ),
        ),
        rx.spacer(),
        rx.text(SessionState.operator_name, weight="medium"),
        rx.badge(SessionState.role, data_testid="role-badge"),
        rx.button("Log out", variant="soft", on_click=SessionState.logout, data_testid="logout"),
        width="100%",
        align="center",
        padding="0.75rem 1.5rem",
        border_bottom="1px solid var(--gray-a5)",
    )


def page(title: str, *children: rx.Component) -> rx.Component:
    return rx.hstack(
        sidebar(),
        rx.vstack(
            topbar(),
            rx.vstack(
                rx.heading(title, size="6"),
                *children,
                padding="1.5rem",
                width="100%",
                spacing="4",
            ),
            width="100%",
            spacing="0",
        ),
        spacing="0",
        align="start",
        width="100%",
    )


PageFn = Callable[[], rx.Component]
