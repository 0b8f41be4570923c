"""The operators' console: `app` and its pages. Every page but /login requires a session."""

from __future__ import annotations

import reflex as rx

from backend.db import get_engine
from backend.platform import call_log_writer
from console.pages.dashboard import dashboard_page
from console.pages.health import health_page
from console.pages.integrations import hub_page, manage_page
from console.pages.jobs import jobs_page
from console.pages.leads import lead_page, leads_page
from console.pages.lists import timeline_page
from console.pages.login import login_page
from console.pages.sequences import sequences_page
from console.pages.settings import settings_page
from console.pages.show import show_page
from console.pages.shows import shows_page
from console.state.dashboard import DashboardState
from console.state.health import HealthState
from console.state.integrations import HubState, ManageState
from console.state.jobs import JobsState
from console.state.leads import LeadsState, LeadState
from console.state.login import LoginState
from console.state.sequences import SequencesState
from console.state.settings import SettingsState
from console.state.show.base import ShowState
from console.state.shows import ShowsState
from console.state.timeline import TimelineState

app = rx.App(head_components=[rx.el.link(rel="icon", href="/favicon.svg", type="image/svg+xml")])


def _write_call_log() -> None:
    """The console's own provider calls (Test connection, connect, upgrade, Fix all) are
    written by a writer of its own, started with the backend server (not at import, which a
    frontend build and the tests do too)."""
    call_log_writer.start_for_process(get_engine)


app.register_lifespan_task(_write_call_log)
app.add_page(
    login_page,
    route="/login",
    title="Log in · Integrations Hub",
    on_load=LoginState.redirect_if_logged_in,
)
app.add_page(
    dashboard_page, route="/", title="Dashboard · Integrations Hub", on_load=DashboardState.load
)
app.add_page(
    hub_page,
    route="/integrations",
    title="Integrations · Integrations Hub",
    on_load=HubState.load,
)
app.add_page(
    manage_page,
    route="/integrations/[slug]",
    title="Integration · Integrations Hub",
    on_load=ManageState.load,
)
app.add_page(shows_page, route="/shows", title="Shows · Integrations Hub", on_load=ShowsState.load)
app.add_page(
    show_page,
    route="/shows/[show_id]",
    title="Show · Integrations Hub",
    on_load=ShowState.load,
)
app.add_page(leads_page, route="/leads", title="Leads · Integrations Hub", on_load=LeadsState.load)
app.add_page(
    lead_page,
    route="/leads/[lead_id]",
    title="Lead · Integrations Hub",
    on_load=LeadState.load,
)
app.add_page(
    timeline_page,
    route="/timeline",
    title="Timeline · Integrations Hub",
    on_load=TimelineState.load,
)
app.add_page(
    health_page, route="/health", title="Health · Integrations Hub", on_load=HealthState.load
)
app.add_page(
    sequences_page,
    route="/sequences",
    title="Sequences · Integrations Hub",
    on_load=SequencesState.load,
)
app.add_page(jobs_page, route="/jobs", title="Jobs · Integrations Hub", on_load=JobsState.load)
app.add_page(
    settings_page,
    route="/settings",
    title="Settings · Integrations Hub",
    on_load=SettingsState.load,
)
