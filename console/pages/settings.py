"""Settings: workspace name (owners and admins), plan, and the operator's role."""

from __future__ import annotations

import reflex as rx

from console.layout import page
from console.state.settings import SettingsState


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
                        width="20rem",
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
    )
