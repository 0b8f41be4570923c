"""The login page: the only page without a session."""

from __future__ import annotations

import reflex as rx

from console.state.login import LoginState


def login_page() -> rx.Component:
    return rx.center(
        rx.card(
            rx.form(
                rx.vstack(
                    rx.heading("Integrations Hub", size="6"),
                    rx.text("Log in to your workspace", color_scheme="gray"),
                    rx.input(
                        placeholder="Email",
                        name="email",
                        type="email",
                        width="100%",
                        data_testid="login-email",
                        auto_complete="username",
                    ),
                    rx.input(
                        placeholder="Password",
                        name="password",
                        type="password",
                        width="100%",
                        data_testid="login-password",
                        auto_complete="current-password",
                    ),
                    rx.cond(
                        LoginState.error != "",
                        rx.callout(
                            LoginState.error,
                            color_scheme="red",
                            icon="triangle-alert",
                            data_testid="login-error",
                            width="100%",
                        ),
                    ),
                    rx.button(
                        "Log in",
                        type="submit",
                        width="100%",
                        loading=LoginState.busy,
                        data_testid="login-submit",
                    ),
                    spacing="3",
                    width="20rem",
                ),
                on_submit=LoginState.submit,
                reset_on_submit=False,
            ),
        ),
        min_height="100vh",
    )
