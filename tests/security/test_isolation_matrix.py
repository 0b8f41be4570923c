"""The isolation matrix (issue 13): every event handler of every console state, found by
introspection, and every route of the sidecar, called as their own workspace, with another
workspace's ids, signed out, as a viewer and on a plan below the feature; the matrix counts
cross-workspace reads and writes, viewers' changes and plan bypasses, and must find none.

A handler or route that is not in the tables below fails the test until it is classified
(docs/security/matrix.md says how). The world, the cells and the route cases are in
tests/support/matrix_*.py.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import Engine

import backend.sandbox.google as google_emulator
import backend.sandbox.stripe as stripe_emulator
from console.state import sealing
from tests.factories import PASSWORD
from tests.sandbox.stripe_support import new_account
from tests.support import matrix_console, matrix_routes
from tests.support.hub_env import apply
from tests.support.matrix_cells import FINDINGS, ConsoleMatrix, Handler, Tally
from tests.support.matrix_snapshot import Snapshot
from tests.support.matrix_world import UNPAUSED_KIND, Tenant, World, build
from tests.support.sandbox_fixtures import MakeSandbox

# -- what earlier events leave in a state, and what a page shows ----------------------------


def manage(state: Any, ids: Tenant, me: Tenant) -> None:
    state.slug = "stripe"  # the Manage page's load sets it from the URL


def show(state: Any, ids: Tenant, me: Tenant) -> None:
    state.show_ref, state.loaded = str(ids.show_id), True  # the show page's load sets them
    state.locale, state.currency = me.locale, me.currency


def marked(var: str) -> Any:
    """The state's ``var`` holds the tenant's marker (its names, handles, errors…)."""
    return lambda c, ids: ids.marker in repr(getattr(c.state, var))


# What the operator types or uploads carries no tenant's marker: a marker in the state then
# came from the database.
CLAIMS_FILE = (
    b"item_number,item_title,price,platform_user_id,handle,quantity,email\n"
    b"3,Gloves,5.00,pid_imported,imported_buyer,1,imported@buyers.example\n"
)


@dataclass
class Upload:
    """What Reflex hands an upload handler: a name and the bytes."""

    name: str
    data: bytes

    async def read(self) -> bytes:
        return self.data


MANAGE = {"path": lambda ids: "/integrations/stripe", "prepare": manage}
SHOW = {"path": lambda ids: f"/shows/{ids.show_id}", "prepare": show, "ids": True}
LOCAL = Handler("local")
# Acknowledge, resolve, snooze, ignore: owners and admins, on the alert whose id they are given.
ALERT_ACTION = Handler("change", "admin", args=lambda ids, me: (str(ids.alert_id),), ids=True)
# Reflex's setvar(name, value) calls the state's set_<name>: its set_* handlers, each classified
# here, or the root's set_is_hydrated (test_every_console_handler_is_classified checks that).
SETVAR = Handler("local", args=lambda ids, me: ("is_hydrated", True))
SESSION_ROWS = frozenset({"sessions", "audit_log"})
SHARED_ACCOUNT = (
    "connecting a Stripe account another workspace holds is refused naming that workspace, "
    "so its owner can settle it (docs/security/tenant.md); the key pasted was B's own"
)
STATES = (
    "SessionState", "LoginState", "DashboardState", "HubState", "ManageState", "JobsState",
    "HealthState", "SettingsState", "PlanState", "MoneyFormatState", "ShowsState",
    "TimelineState", "ShowState", "PricesState", "ClaimsState", "ReconciliationState",
    "InvoicesState", "EmailPreviewState", "LeadsState", "LeadState", "InboundParseState",
    "SequencesState",
)  # fmt: skip


def lead_page(state: Any, ids: Tenant, me: Tenant) -> None:
    state.lead_ref, state.loaded = str(ids.lead_id), True  # the lead page's load sets them


LEAD = {"path": lambda ids: f"/leads/{ids.lead_id}", "prepare": lead_page, "ids": True}
# A cursor after every lead: the next page starts from the top of the list.
FAR_CURSOR = "2999-01-01T00:00:00+00:00|999999999"


def _login_form(ids: Tenant, me: Tenant) -> tuple[Any, ...]:
    return ({"email": ids.emails["owner"], "password": PASSWORD},)


def _wrong_password(ids: Tenant, me: Tenant) -> tuple[Any, ...]:
    return ({"email": ids.emails["owner"], "password": "not the password"},)


def _pending(state: Any, ids: Tenant, me: Tenant) -> None:
    manage(state, ids, me)
    # Own: a key that fails its test ("Save anyway, as inactive"); foreign: B's own key.
    key = "sk_test_refused_by_the_sandbox" if ids is me else ids.stripe_key
    state._pending_keys = sealing.seal_json({"secret_key": key})


def _polled_long_ago(state: Any, ids: Tenant, me: Tenant) -> None:
    show(state, ids, me)
    state._opened = state._polled = time.time() - 3600  # every row counts as changed since


def _free_draft(state: Any, ids: Tenant, me: Tenant) -> None:
    show(state, ids, me)
    state.drafts = {str(ids.unpriced_item_id): "0"}


def _import_ready(state: Any, ids: Tenant, me: Tenant) -> None:
    show(state, ids, me)
    state._import_data = CLAIMS_FILE


HANDLERS: dict[str, Handler] = {
    **{f"{name}.setvar": SETVAR for name in STATES},
    # -- every page: the session ----------------------------------------------------------
    "SessionState.require_login": Handler(
        "read", shows=lambda c, ids: c.state.workspace_name == ids.name
    ),
    "SessionState.switch_workspace": Handler(
        "account",
        args=lambda ids, me: (str(ids.switch_to),),
        ids=True,
        may_write=frozenset({"sessions"}),
    ),
    "SessionState.logout": Handler("account", may_write=SESSION_ROWS),
    "LoginState.redirect_if_logged_in": Handler(
        "read", shows=lambda c, ids: c.state.workspace_name == ids.name
    ),
    "LoginState.submit": Handler(
        "account",
        args=_login_form,
        signed_out_args=_wrong_password,
        may_write=frozenset({"login_throttles", "operators", "audit_log", "sessions"}),
    ),
    # -- dashboard, lists -------------------------------------------------------------------
    "DashboardState.load": Handler(
        "read",
        shows=lambda c, ids: (c.state.shows, c.state.dead_jobs, c.state.open_alerts) == (1, 2, 1),
    ),
    "ShowsState.load": Handler("read", shows=marked("rows")),
    "ShowsState.set_search": Handler("local", args=lambda ids, me: ("Live",)),
    "TimelineState.load": Handler("read", shows=marked("rows")),
    "HealthState.load": Handler("read", shows=marked("alerts")),
    "HealthState.acknowledge": ALERT_ACTION,
    "HealthState.resolve": ALERT_ACTION,
    "HealthState.snooze": ALERT_ACTION,
    "HealthState.ignore": ALERT_ACTION,
    # Any role reads an alert's history; B's id must find none of B's steps.
    "HealthState.show_history": Handler(
        "read", args=lambda ids, me: (str(ids.alert_id),), ids=True, shows=marked("history")
    ),
    "HealthState.set_history_open": Handler("local", args=lambda ids, me: (False,)),
    # The window and the charted provider: the tiles are re-read, the workspace's own (each
    # tile's last error carries the tenant's marker).
    "HealthState.set_window": Handler("read", args=lambda ids, me: ("7d",), shows=marked("tiles")),
    "HealthState.chart": Handler("read", args=lambda ids, me: ("stripe",), shows=marked("tiles")),
    # A provider's failed calls of the last hour: the workspace's own, whoever asks.
    "HealthState.show_failures": Handler(
        "read", args=lambda ids, me: ("stripe",), shows=marked("failures")
    ),
    "HealthState.set_failures_open": Handler("local", args=lambda ids, me: (False,)),
    # -- integrations -----------------------------------------------------------------------
    "HubState.load": Handler("read", shows=marked("tiles")),
    "HubState.set_search": Handler("local", args=lambda ids, me: ("stripe",)),
    "HubState.set_filter": Handler("local", args=lambda ids, me: ("connected",)),
    "ManageState.load": Handler("read", shows=marked("call_rows"), **MANAGE),
    "ManageState.save_keys": Handler(
        "change",
        "owner",
        args=lambda ids, me: ({"secret_key": ids.stripe_key},),
        ids=True,
        plan="connect",
        reveals=SHARED_ACCOUNT,
        **MANAGE,
    ),
    "ManageState.save_inactive": Handler(
        "change",
        "owner",
        ids=True,
        plan="connect",
        reveals=SHARED_ACCOUNT,
        path=MANAGE["path"],
        prepare=_pending,
    ),
    # Not gated: a test of a switched-off integration (Free's) records its outcome and never
    # switches it on (a connect does: the plan cell checks nothing of Free's is live).
    "ManageState.test_connection": Handler("change", "admin", **MANAGE),
    "ManageState.save_settings": Handler(
        "change", "admin", args=lambda ids, me: ({"days_until_due": "14"},), **MANAGE
    ),
    "ManageState.start_oauth": Handler("change", "owner", plan="connect", **MANAGE),
    "ManageState.disconnect": Handler("change", "owner", **MANAGE),
    # -- jobs -----------------------------------------------------------------------------
    "JobsState.load": Handler("read", shows=marked("dead")),
    "JobsState.next_inbound": Handler(
        "read", prepare=lambda s, ids, me: setattr(s, "inbound_has_next", True)
    ),
    "JobsState.prev_inbound": Handler(
        "read", prepare=lambda s, ids, me: setattr(s, "inbound_page", 1), shows=marked("inbound")
    ),
    "JobsState.pause": Handler(
        "change",
        "admin",
        # Own: a kind A has not paused; foreign: the kind B paused (A's pause must not be B's).
        args=lambda ids, me: (UNPAUSED_KIND if ids is me else ids.paused_kind,),
        ids=True,
    ),
    "JobsState.resume": Handler(
        "change", "admin", args=lambda ids, me: (ids.paused_kind,), ids=True
    ),
    "JobsState.retry_now": Handler(
        "change", "admin", args=lambda ids, me: (str(ids.pending_job_id),), ids=True
    ),
    "JobsState.replay_one": Handler(
        "change", "admin", args=lambda ids, me: (str(ids.dead_job_id),), ids=True
    ),
    "JobsState.replay_matching": Handler(
        "change",
        "admin",
        prepare=lambda s, ids, me: setattr(s, "replay_kind", ids.only_dead_kind),
        ids=True,
    ),
    "JobsState.preview": Handler(
        "read",
        prepare=lambda s, ids, me: setattr(s, "replay_kind", ids.only_dead_kind),
        ids=True,
        shows=lambda c, ids: c.state.replay_preview == 1,
    ),
    # Drops the Health page's filter (?provider=…) and opens the page unfiltered.
    "JobsState.show_every_job": Handler("local"),
    "JobsState.set_replay_kind": Handler("local", args=lambda ids, me: ("stripe.create_invoice",)),
    "JobsState.set_replay_since": Handler("local", args=lambda ids, me: ("2024-01-01T00:00",)),
    # -- sequences ----------------------------------------------------------------------------
    "SequencesState.load": Handler("read", shows=marked("sequences")),
    # Owners and admins; the id names the sequence (B's, in the foreign cell: not found).
    "SequencesState.pause": Handler(
        "change", "admin", args=lambda ids, me: (str(ids.sequence_id),), ids=True
    ),
    "SequencesState.resume": Handler(
        "change", "admin", args=lambda ids, me: (str(ids.paused_sequence_id),), ids=True
    ),
    # -- leads ------------------------------------------------------------------------------
    "LeadsState.load": Handler("read", shows=marked("rows")),
    "LeadsState.set_status_filter": Handler(
        "read", args=lambda ids, me: ("new",), shows=marked("rows")
    ),
    "LeadsState.set_source_filter": Handler(
        "read", args=lambda ids, me: ("website",), shows=marked("rows")
    ),
    "LeadsState.set_service_filter": Handler(
        "read", args=lambda ids, me: ("recital media",), shows=marked("rows")
    ),
    "LeadsState.set_search": Handler("read", args=lambda ids, me: ("lead",), shows=marked("rows")),
    "LeadsState.clear_filters": Handler("read", shows=marked("rows")),
    "LeadsState.next_page": Handler(
        "read",
        prepare=lambda s, ids, me: (setattr(s, "has_next", True), setattr(s, "_next", FAR_CURSOR)),
        shows=marked("rows"),
    ),
    "LeadsState.previous_page": Handler(
        "read",
        prepare=lambda s, ids, me: (setattr(s, "_starts", ["", FAR_CURSOR]), setattr(s, "page", 2)),
        shows=marked("rows"),
    ),
    # Another workspace's lead is not found, in the words a missing one gets.
    "LeadState.load": Handler(
        "read", path=LEAD["path"], ids=True, shows=lambda c, ids: ids.marker in repr(c.state.lead)
    ),
    "LeadState.poll": Handler("read", shows=marked("emails"), **LEAD),
    "LeadState.set_note_draft": Handler("local", args=lambda ids, me: ("Called back",)),
    "LeadState.add_note": Handler(
        "change",
        "admin",
        path=LEAD["path"],
        prepare=lambda s, ids, me: (lead_page(s, ids, me), setattr(s, "note_draft", "Called")),
        ids=True,
    ),
    "LeadState.stop_enrolment": Handler(
        "change", "admin", args=lambda ids, me: (str(ids.enrolment_id),), **LEAD
    ),
    # -- settings ---------------------------------------------------------------------------
    "SettingsState.load": Handler("read", shows=lambda c, ids: c.state.name_draft == ids.name),
    "SettingsState.set_name_draft": Handler("local", args=lambda ids, me: ("Renamed",)),
    "SettingsState.save_name": Handler(
        "change", "admin", prepare=lambda s, ids, me: setattr(s, "name_draft", "Renamed shop")
    ),
    "PlanState.upgrade": Handler("change", "owner", args=lambda ids, me: ("pro",)),
    # The Parse URL holds the workspace's secret: owners and admins, made on first ask.
    "InboundParseState.show_parse_url": Handler(
        "change", "admin", shows=lambda c, ids: f"/sendgrid-inbound/{ids.slug}" in c.state.parse_url
    ),
    "InboundParseState.hide_parse_url": LOCAL,
    # The template preview shows sample data only: nothing of a workspace, viewers too.
    "EmailPreviewState.set_purpose": Handler("local", args=lambda ids, me: ("proposal_sent",)),
    "MoneyFormatState.load": Handler(
        "read",
        shows=lambda c, ids: (
            (c.state.locale_draft, c.state.currency_draft) == (ids.locale, ids.currency)
        ),
    ),
    "MoneyFormatState.set_locale_draft": Handler("local", args=lambda ids, me: ("de_DE",)),
    "MoneyFormatState.set_currency_draft": Handler("local", args=lambda ids, me: ("eur",)),
    "MoneyFormatState.save_money": Handler(
        "change",
        "admin",
        prepare=lambda s, ids, me: (
            setattr(s, "locale_draft", "fr_FR") or setattr(s, "currency_draft", "eur")
        ),
    ),
    # -- a show -------------------------------------------------------------------------------
    "ShowState.load": Handler(
        "read", path=SHOW["path"], ids=True, shows=lambda c, ids: ids.marker in c.state.title
    ),
    "PricesState.next_items_page": Handler("read", shows=marked("items"), **SHOW),
    "PricesState.previous_items_page": Handler("read", shows=marked("items"), **SHOW),
    "PricesState.set_draft": Handler(
        "local", args=lambda ids, me: (str(ids.unpriced_item_id), "12.50"), **SHOW
    ),
    "PricesState.save_price": Handler(
        "change",
        "admin",
        args=lambda ids, me: ({"item_id": str(ids.unpriced_item_id), "price": "15.00"},),
        **SHOW,
    ),
    "PricesState.confirm_free": Handler(
        "change",
        "admin",
        args=lambda ids, me: (str(ids.unpriced_item_id),),
        path=SHOW["path"],
        prepare=_free_draft,
        ids=True,
    ),
    "PricesState.set_free_open": Handler("local", args=lambda ids, me: (False,)),
    "PricesState.confirm_reprice": Handler(
        "change", "admin", args=lambda ids, me: (str(ids.priced_item_id),), plan="stripe", **SHOW
    ),
    "PricesState.set_reprice_open": Handler("local", args=lambda ids, me: (False,)),
    "ClaimsState.preview_import": Handler(
        "read",
        args=lambda ids, me: ([Upload("claims.csv", CLAIMS_FILE)],),
        shows=lambda c, ids: c.state.import_ready,
        **SHOW,
    ),
    "ClaimsState.cancel_import": LOCAL,
    "ClaimsState.apply_import": Handler(
        "change", "admin", path=SHOW["path"], prepare=_import_ready, ids=True
    ),
    "ReconciliationState.check_stripe": Handler("change", "admin", plan="stripe", **SHOW),
    "ReconciliationState.fix_findings": Handler("change", "admin", plan="stripe", **SHOW),
    "InvoicesState.poll": Handler(
        "read", path=SHOW["path"], prepare=_polled_long_ago, ids=True, shows=marked("rows")
    ),
    "InvoicesState.set_status_filter": Handler(
        "read", args=lambda ids, me: ("all",), shows=marked("rows"), **SHOW
    ),
    "InvoicesState.set_search": Handler(
        "read", args=lambda ids, me: ("",), shows=marked("rows"), **SHOW
    ),
    "InvoicesState.next_page": Handler("read", shows=marked("rows"), **SHOW),
    "InvoicesState.previous_page": Handler("read", shows=marked("rows"), **SHOW),
    "InvoicesState.generate_all": Handler("change", "admin", plan="stripe", **SHOW),
    "InvoicesState.generate_one": Handler(
        "change", "admin", args=lambda ids, me: (ids.new_buyer_pid,), plan="stripe", **SHOW
    ),
    "InvoicesState.retry": Handler(
        "change", "admin", args=lambda ids, me: (str(ids.error_invoice_id),), plan="stripe", **SHOW
    ),
    "InvoicesState.regenerate": Handler(
        "change", "admin", args=lambda ids, me: (str(ids.void_invoice_id),), plan="stripe", **SHOW
    ),
    "InvoicesState.ask_void": Handler(
        "local", args=lambda ids, me: (str(ids.sent_invoice_id), "someone")
    ),
    "InvoicesState.cancel_void": LOCAL,
    "InvoicesState.set_void_open": Handler("local", args=lambda ids, me: (False,)),
    "InvoicesState.confirm_void": Handler(
        "change",
        "admin",
        args=lambda ids, me: (str(ids.sent_invoice_id), "someone"),
        plan="stripe",
        **SHOW,
    ),
    "InvoicesState.send_link": Handler(
        "change", "admin", args=lambda ids, me: (str(ids.sent_invoice_id),), **SHOW
    ),
    "InvoicesState.copy_link": Handler(
        "change",
        # Any role may copy a link; the copy is recorded (checkout_links.record_copy).
        args=lambda ids, me: (str(ids.sent_invoice_id), ids.sent_invoice_url),
        may_write=frozenset({"checkout_link_sends"}),
        **SHOW,
    ),
    "InvoicesState.export_csv": Handler(
        "read", shows=lambda c, ids: ids.marker in c.visible(), **SHOW
    ),
}

# Every route of the sidecar (in sandbox mode, where the API description is served too).
R = matrix_routes.RouteCases
ROUTES: dict[str, Callable[[R], matrix_routes.Cases]] = {
    "POST /webhooks/stripe/{workspace}": R.stripe_workspace,
    "POST /webhooks/stripe": R.stripe_platform,
    "POST /webhooks/sendgrid/{workspace}": R.sendgrid,
    # SendGrid Inbound Parse: the workspace's secret as basic auth, or in the path.
    "POST /webhooks/sendgrid-inbound/{workspace}": lambda r: r.sendgrid_inbound(in_path=False),
    "POST /webhooks/sendgrid-inbound/{workspace}/{secret}": lambda r: r.sendgrid_inbound(True),
    "POST /webhooks/zoho/{workspace}": R.zoho,
    "POST /webhooks/generic/{integration}": R.generic,
    "POST /outbox/run": R.cron,
    "GET /metrics": R.metrics,
    "GET /oauth/stripe/start": lambda r: r.oauth_start("stripe", "/oauth/stripe/start"),
    "GET /oauth/google/start": lambda r: r.oauth_start("google_drive", "/oauth/google/start"),
    "GET /oauth/stripe/callback": lambda r: r.oauth_callback("stripe"),
    "GET /oauth/google/callback": lambda r: r.oauth_callback("google_drive"),
    # A message's one-click unsubscribe link: its signed token names message and workspace.
    "GET /u/{token}": lambda r: r.unsubscribe("GET"),
    "POST /u/{token}": lambda r: r.unsubscribe("POST"),
    # A message's preferences page: the same kind of token, under its own salt.
    "GET /preferences/{token}": lambda r: r.preferences("GET"),
    "POST /preferences/{token}": lambda r: r.preferences("POST"),
    # A signed link: its token names workspace, lead and proposal template.
    "GET /x/{token}": lambda r: r.signed_link("GET"),
    "POST /x/{token}/fresh": lambda r: r.signed_link("POST"),
    # A workspace's lead form: public by design, writing only that workspace's rows.
    "GET /forms/{workspace_slug}": lambda r: r.lead_form("GET"),
    "OPTIONS /forms/{workspace_slug}/leads": lambda r: r.lead_form("OPTIONS"),
    "POST /forms/{workspace_slug}/leads": lambda r: r.lead_form("POST"),
    # Public, about no workspace: answered to anyone, change nothing, show no tenant's data.
    "GET /healthz": lambda r: r.public("/healthz"),
    "GET /readyz": lambda r: r.public("/readyz"),
    "GET /openapi.json": lambda r: r.public("/openapi.json"),
    "GET /docs": lambda r: r.public("/docs"),
    "GET /docs/oauth2-redirect": lambda r: r.public("/docs/oauth2-redirect"),
    "GET /redoc": lambda r: r.public("/redoc"),
    "MOUNT /docs-assets": lambda r: r.public("/docs-assets/swagger-ui.css"),
}

TALLIES: dict[str, Tally] = {}


def test_every_console_handler_is_classified() -> None:
    found = set(matrix_console.handlers())
    assert matrix_console.states_outside_the_session() == []
    # setvar is classified as local because it reaches only classified handlers.
    assert matrix_console.setvar_reaches_beyond_handlers() == []
    assert sorted(found - HANDLERS.keys()) == [], "classify these handlers in HANDLERS"
    assert sorted(HANDLERS.keys() - found) == [], "these handlers no longer exist"


def test_every_sidecar_route_is_classified() -> None:
    found = set(matrix_routes.routes(matrix_routes.described_app()))
    assert sorted(found - ROUTES.keys()) == [], "classify these routes in ROUTES"
    assert sorted(ROUTES.keys() - found) == [], "these routes no longer exist"


@pytest.fixture
def world(
    engine: Engine,
    db_url: str,
    make_sandbox: MakeSandbox,
    monkeypatch: pytest.MonkeyPatch,
    hub_env: dict[str, str],
) -> tuple[World, Snapshot]:
    sandbox = make_sandbox(providers=[stripe_emulator, google_emulator])
    hub_env.update(matrix_routes.ENV)
    apply(monkeypatch, hub_env, db_url=db_url, sandbox_url=sandbox.url)

    def stripe_account() -> tuple[str, str]:
        made = new_account(sandbox.url)
        return made["secret_key"], made["account"]

    built = build(engine, stripe_account)
    return built, Snapshot(engine)


def _summary(db: str, tally: Tally) -> str:
    parts = []
    if tally.handlers:
        parts.append(f"{tally.handlers} handlers × 5 cases = {tally.cells} cells")
    if tally.routes:
        parts.append(f"{tally.routes} routes, {tally.route_cells} cases")
    if len(parts) > 1:
        parts = [" + ".join(parts) + f" = {tally.cells + tally.route_cells} cells"]
    found = ", ".join(f"{tally.found[k]} {k}" for k in FINDINGS)
    return f"isolation matrix [{db}]: {parts[0] if parts else 'nothing run'}; {found}"


def test_the_console_isolation_matrix(
    world: tuple[World, Snapshot], engine: Engine, capsys: pytest.CaptureFixture[str]
) -> None:
    built, snapshot = world
    tally = Tally()
    matrix = ConsoleMatrix(engine, built, snapshot, tally)
    for name in sorted(matrix_console.handlers()):
        matrix.run(name, HANDLERS[name])
    db = engine.dialect.name
    TALLIES[db] = tally
    with capsys.disabled():
        print("\n" + _summary(db, tally))
        for line in tally.revealed:
            print("  allowed:", line)
    assert tally.details == [], "\n".join(tally.details)
    # Every handler ran in every case: the matrix cannot pass by running nothing.
    assert tally.cells == 5 * len(HANDLERS)


def test_the_sidecar_isolation_matrix(
    world: tuple[World, Snapshot], engine: Engine, capsys: pytest.CaptureFixture[str]
) -> None:
    built, snapshot = world
    tally = TALLIES.get(engine.dialect.name) or Tally()
    tally.routes = tally.route_cells = 0
    before = len(tally.details)
    matrix = matrix_routes.RouteMatrix(engine, built, snapshot, tally)
    cases = matrix_routes.RouteCases(engine, built)
    for route in sorted(matrix_routes.routes(matrix_routes.described_app())):
        matrix.run(route, ROUTES[route](cases))
    with capsys.disabled():
        print("\n" + _summary(engine.dialect.name, tally))
    assert tally.details[before:] == [], "\n".join(tally.details[before:])
    assert tally.routes == len(ROUTES)
