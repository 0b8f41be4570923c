"""Reflex configuration for the operators' console.

No db_url here: the console reaches the database through backend.db like the other processes.
"""

import os

import reflex as rx

config = rx.Config(
    app_name="console",
    # The console is an internal tool; no telemetry leaves the machine (and none could, offline).
    telemetry_enabled=False,
    show_built_with_reflex=False,
    frontend_port=int(os.environ.get("HUB_CONSOLE_PORT", "3000")),
    backend_port=int(os.environ.get("HUB_CONSOLE_PORT", "3000")),
    plugins=[rx.plugins.RadixThemesPlugin(theme=rx.theme(accent_color="indigo", radius="medium"))],
    disable_plugins=[rx.plugins.SitemapPlugin],
)
