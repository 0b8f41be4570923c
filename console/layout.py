"""The page shell: sidebar, workspace switcher, who is logged in, and the sandbox banner.

From a tablet's width up the sidebar stays beside the page and in view while the page scrolls;
below it (a phone) the navigation folds into a menu button that opens it as a drawer."""

from __future__ import annotations

from collections.abc import Callable

import reflex as rx

from console.state.base import SessionState

NAV = (
    ("Dashboard", "/", "layout-dashboard"),
    ("Integrations", "/integrations", "plug"),
    ("Shows", "/shows", "video"),
    ("Leads", "/leads", "user-plus"),
    ("Timeline", "/timeline", "activity"),
    ("Sequences", "/sequences", "mail"),
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


# Reflex's breakpoints: phone, large phone, tablet (48em) and up.
WIDE_ONLY = ["none", "none", "flex"]
NARROW_ONLY = ["flex", "flex", "none"]


def sidebar() -> rx.Component:
    return rx.vstack(
        rx.heading("Integrations Hub", size="4", padding_bottom="0.5rem"),
        *[_nav_link(*item) for item in NAV],
        display=WIDE_ONLY,
        width="13rem",
        flex_shrink="0",
        # Sticky: on a long page (the Jobs page, a show's invoices) the navigation stays put.
        position="sticky",
        top="0",
        height="100vh",
        overflow_y="auto",
        padding="1rem",
        border_right="1px solid var(--gray-a5)",
        spacing="1",
        data_testid="sidebar",
    )


def nav_menu() -> rx.Component:
    """The navigation on a phone: a menu button and a drawer from the left."""
    return rx.drawer.root(
        rx.drawer.trigger(
            rx.icon_button(
                rx.icon("menu", size=18),
                variant="soft",
                aria_label="Menu",
                data_testid="nav-menu",
            ),
            display=NARROW_ONLY,
        ),
        rx.drawer.overlay(z_index="50"),
        rx.drawer.portal(
            rx.drawer.content(
                rx.vstack(
                    rx.hstack(
                        rx.heading("Integrations Hub", size="4"),
                        rx.spacer(),
                        rx.drawer.close(
                            rx.icon_button(
                                rx.icon("x", size=18), variant="ghost", aria_label="Close"
                            )
                        ),
                        width="100%",
                        align="center",
                    ),
                    *[rx.drawer.close(_nav_link(*item)) for item in NAV],
                    spacing="1",
                    width="100%",
                    data_testid="nav-drawer",
                ),
                top="0",
                left="0",
                height="100%",
                width="16rem",
                padding="1rem",
                background_color="var(--color-panel-solid)",
                z_index="50",
            )
        ),
        direction="left",
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
        nav_menu(),
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
        rx.text(SessionState.operator_name, weight="medium", display=WIDE_ONLY),
        rx.badge(SessionState.role, data_testid="role-badge"),
        rx.button("Log out", variant="soft", on_click=SessionState.logout, data_testid="logout"),
        width="100%",
        align="center",
        wrap="wrap",
        padding=["0.75rem 1rem", "0.75rem 1rem", "0.75rem 1.5rem"],
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
                padding=["1rem", "1rem", "1.5rem"],
                width="100%",
                # A flex child shrinks below its content's width only with min-width 0: wide
                # tables then scroll inside their own box, not the whole page sideways.
                min_width="0",
                spacing="4",
            ),
            width="100%",
            min_width="0",
            spacing="0",
        ),
        spacing="0",
        align="start",
        width="100%",
    )


PageFn = Callable[[], rx.Component]
