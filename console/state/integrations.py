"""The integrations hub (a tile per provider) and one provider's manage page (keys, test,
settings, disconnect, history). Every change goes through backend.connections, which
checks the role and the plan on the server; the page only mirrors what is allowed."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal, TypeVar
from urllib.parse import parse_qs, urlsplit

import reflex as rx
from pydantic import BaseModel
from reflex.event import EventSpec
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from backend.connections import catalog, forms, oauth, providers, rows, tiers
from backend.connections import service as connections
from backend.connections import views as connection_views
from backend.health import service as health
from backend.platform import audit_trail
from backend.platform.actors import Actor
from backend.platform.errors import ServiceError
from console.state import sealing
from console.state.base import Outcome, SessionState, change, change_in_steps, read
from console.state.formatting import when
from models import IntegrationStatus, Plan, Role

T = TypeVar("T")

FILTERS = ["all", "connected", "available", "locked", "coming soon"]
_FILTER_STATES = {
    "connected": {"connected", "error"},
    "available": {"connect"},
    "locked": {"locked"},
    "coming soon": {"coming_soon"},
}


def _tile(view: connection_views.ConnectionView, *, can_connect: bool) -> dict[str, str]:
    return {
        # Connecting is an owner's decision (the service refuses anyone else): the others
        # see the tile's Connect greyed out, with the reason.
        "can_connect": "yes" if can_connect else "",
        "slug": view.slug,
        "name": view.name,
        "category": view.category,
        "description": view.description,
        "logo": view.logo,
        "state": view.state,
        "required_plan": view.required_plan.title(),
        "reason": view.locked_reason,
        "checked": when(view.last_checked_at),
        "error": view.last_error or "",
    }


class HubState(SessionState):
    tiles: list[dict[str, str]] = []
    search: str = ""
    filter: str = "all"
    # Back from the platform's Stripe Checkout (?upgraded=pro): what became of the upgrade.
    upgrade_notice: str = ""
    upgrade_pending: bool = False

    @rx.var
    def shown(self) -> list[dict[str, str]]:
        wanted = _FILTER_STATES.get(self.filter)
        needle = self.search.strip().lower()
        return [
            t
            for t in self.tiles
            if (wanted is None or t["state"] in wanted)
            and (not needle or needle in (t["name"] + " " + t["description"]).lower())
        ]

    @rx.var
    def categories(self) -> list[str]:
        return list(dict.fromkeys(t["category"] for t in self.shown))

    @rx.event
    async def load(self) -> EventSpec | None:
        if await self._authenticate() is None:
            return self._login_redirect()
        found = await read(
            self,
            lambda s, a: [
                _tile(v, can_connect=a.role is Role.OWNER)
                for v in connection_views.view(s, a.workspace_id)
            ],
        )
        if found.signed_out:
            return self._login_redirect()
        self.tiles = found.get()
        self._note_upgrade()
        return None

    def _note_upgrade(self) -> None:
        """Checkout sends the owner back before Stripe's webhook has changed the plan; the
        page polls, so the notice turns from waiting to done when the webhook lands."""
        query = parse_qs(urlsplit(str(self.router.url)).query)
        asked = (query.get("upgraded") or [""])[0]
        if asked not in {p.value for p in Plan} or self.plan not in {p.value for p in Plan}:
            self.upgrade_notice, self.upgrade_pending = "", False
            return
        if tiers.RANK[Plan(self.plan)] >= tiers.RANK[Plan(asked)]:
            self.upgrade_pending = False
            self.upgrade_notice = f"Upgrade received: your plan is now {self.plan.title()}."
        else:
            self.upgrade_pending = True
            self.upgrade_notice = (
                f"Payment done. Waiting for Stripe's confirmation of the {asked.title()} "
                "plan… this page updates by itself."
            )

    @rx.event
    def set_search(self, value: str) -> None:
        self.search = value

    @rx.event
    def set_filter(self, value: str | list[str]) -> None:
        self.filter = value if isinstance(value, str) else (value[0] if value else "all")


def _field_row(field: forms.FormField) -> dict[str, str]:
    """A form field as the Manage page's state keeps it (strings only)."""
    return {
        "name": field.name,
        "label": field.label,
        "kind": field.kind,
        "help": field.help,
        "value": field.value,
        "required": "yes" if field.required else "",
    }


def form_fields(model: type[BaseModel], values: dict[str, Any]) -> list[dict[str, str]]:
    """The key or settings form of a provider, built from its pydantic model."""
    return [_field_row(f) for f in forms.form_fields(model, values)]


@dataclass
class _Managed:
    """What the Manage page reads of one provider, in one session."""

    view: connection_views.ConnectionView
    keys: list[dict[str, str]]
    settings: list[dict[str, str]]
    audit: list[dict[str, str]]
    calls: list[dict[str, str]]


def _read_managed(session: Session, actor: Actor, slug: str) -> _Managed:
    views = {v.slug: v for v in connection_views.view(session, actor.workspace_id)}
    prov = catalog.provider(slug)
    row = rows.find(session, workspace_id=actor.workspace_id, provider_slug=slug)
    return _Managed(
        view=views[slug],
        keys=form_fields(prov.credentials_model, {}),
        settings=form_fields(prov.settings_model, dict(row.settings or {}) if row else {}),
        audit=[
            {"at": when(a.at), "actor": a.who, "action": a.action, "details": a.summary}
            for a in audit_trail.for_target(
                session, workspace_id=actor.workspace_id, target=f"integration:{slug}"
            )
        ],
        calls=[
            {
                "at": when(c.at),
                "operation": c.operation,
                "status": c.outcome,
                "latency": "" if c.latency_ms is None else f"{c.latency_ms} ms",
                "error": (c.error or "")[:200],
            }
            for c in health.recent_calls(session, workspace_id=actor.workspace_id, provider=slug)
        ],
    )


class ManageState(SessionState):
    slug: str = ""
    name: str = ""
    logo: str = ""
    description: str = ""
    state: str = ""
    status: str = ""
    methods: list[str] = []
    # "Connect with Stripe" / "Connect with Google"; "" when the provider has no OAuth here.
    oauth_label: str = ""
    required_plan: str = ""
    locked_reason: str = ""
    last_checked: str = ""
    last_error: str = ""
    key_fields: list[dict[str, str]] = []
    setting_fields: list[dict[str, str]] = []
    masked: dict[str, str] = {}
    result_ok: bool = False
    # A failed test that left the connection Active: the provider is unavailable, not the key
    # wrong (amber, not red).
    result_unavailable: bool = False
    result: str = ""
    offer_inactive: bool = False
    audit_rows: list[dict[str, str]] = []
    call_rows: list[dict[str, str]] = []
    # Keys that failed their test, kept for "Save anyway, as inactive": backend-only (never sent
    # to the browser) and sealed (the pickled state holds ciphertext), dropped once used.
    _pending_keys: bytes = b""
    busy: bool = False

    @rx.var
    def is_owner(self) -> bool:
        return self.role == "owner"

    @rx.var
    def connectable(self) -> bool:
        return self.state in ("connect", "connected", "error")

    def _slug_from_url(self) -> str:
        path = urlsplit(str(self.router.url)).path.rstrip("/")
        return path.rsplit("/", 1)[-1]

    async def _refresh(self) -> None:
        slug = self.slug
        found = await read(self, lambda s, a: _read_managed(s, a, slug))
        if found.signed_out:
            return
        data = found.get()
        view = data.view
        self.name, self.logo, self.description = view.name, view.logo, view.description
        self.state, self.status = view.state, view.status or ""
        self.methods = list(view.methods)
        self.oauth_label = oauth.button_label(view.slug) if "oauth" in view.methods else ""
        self.required_plan, self.locked_reason = view.required_plan.title(), view.locked_reason
        self.last_checked, self.last_error = when(view.last_checked_at), view.last_error or ""
        self.masked = dict(view.masked)
        self.key_fields, self.setting_fields = data.keys, data.settings
        self.audit_rows, self.call_rows = data.audit, data.calls

    def _submitted(
        self, form: dict[str, Any], which: Literal["keys", "settings"]
    ) -> dict[str, Any]:
        """What the keys or settings form sent, as the provider's model reads it."""
        try:
            prov = catalog.provider(self.slug)
        except ServiceError:
            return {}
        model = prov.credentials_model if which == "keys" else prov.settings_model
        return forms.form_values(model, form)

    @rx.event
    async def load(self) -> EventSpec | None:
        if await self._authenticate() is None:
            return self._login_redirect()
        self.slug = self._slug_from_url()
        try:
            catalog.provider(self.slug)
        except ServiceError:
            return rx.redirect("/integrations")
        self.result, self.offer_inactive = "", False
        query = parse_qs(urlsplit(str(self.router.url)).query)
        if query.get("connected"):
            self.result_ok, self.result = True, "Connected through OAuth and tested."
        elif query.get("error"):
            self.result_ok, self.result = False, query["error"][0]
        await self._refresh()
        return None

    async def _run(self, work: Callable[[Session, Actor], T]) -> Outcome[T]:
        """A change from this page; a refusal is shown in the result callout."""
        return await self._shown(change(self, work))

    async def _run_in_steps(self, work: Callable[[Engine, Actor], T]) -> Outcome[T]:
        """A change that calls the provider: the service commits in steps around the call
        (no transaction is open while the provider answers)."""
        return await self._shown(change_in_steps(self, work))

    async def _shown(self, running: Awaitable[Outcome[T]]) -> Outcome[T]:
        self.busy = True
        try:
            outcome = await running
        finally:
            self.busy = False
        if outcome.refused is not None:
            self.result_ok, self.result = False, outcome.refused
        return outcome

    def _show(self, result: connection_views.ConnectResult) -> None:
        self.result_ok = result.ok
        self.result_unavailable = not result.ok and result.status is IntegrationStatus.ACTIVE
        latency = f" ({result.latency_ms} ms)" if result.latency_ms else ""
        self.result = f"{result.message}{latency}"

    @rx.event
    async def save_keys(self, form: dict[str, Any]) -> EventSpec | None:
        """Test first; save only what works (or, on request, save it inactive)."""
        creds = self._submitted(form, "keys")
        self._pending_keys = sealing.seal_json({k: str(v) for k, v in creds.items()})
        slug = self.slug
        done = await self._run_in_steps(
            lambda e, a: connections.connect_with_keys(
                e,
                actor=a,
                provider_slug=slug,
                credentials=creds,
                context=providers.provider_context(slug, e, workspace_id=a.workspace_id),
            )
        )
        if done.signed_out and not self.result:
            return self._login_redirect()
        result = done.value
        if result is not None:
            self._show(result)
            self.offer_inactive = not result.saved
            if result.saved:
                self._pending_keys = b""
        if not done.signed_out:
            await self._refresh()
        return None

    @rx.event
    async def save_inactive(self) -> None:
        creds: dict[str, Any] = dict(sealing.open_json(self._pending_keys) or {})
        if not creds:
            self.offer_inactive = False
            return
        slug = self.slug
        done = await self._run_in_steps(
            lambda e, a: connections.connect_with_keys(
                e,
                actor=a,
                provider_slug=slug,
                credentials=creds,
                save_inactive=True,
                context=providers.provider_context(slug, e, workspace_id=a.workspace_id),
            )
        )
        result = done.value
        if result is not None:
            if result.saved and not result.ok:
                self.result_ok = False
                self.result = "Saved as inactive: fix the keys and test again to turn it on."
            else:
                # Passed after all, or refused (an account another workspace holds): nothing
                # was saved inactive, and the page must not say it was.
                self._show(result)
            self.offer_inactive, self._pending_keys = False, b""
        if not done.signed_out:
            await self._refresh()

    @rx.event
    async def test_connection(self) -> None:
        slug = self.slug
        done = await self._run_in_steps(
            lambda e, a: oauth.test(
                e,
                actor=a,
                provider_slug=slug,
                context=providers.provider_context(slug, e, workspace_id=a.workspace_id),
            )
        )
        result = done.value
        if result is not None:
            self._show(result)
        if not done.signed_out:
            await self._refresh()

    @rx.event
    async def save_settings(self, form: dict[str, Any]) -> None:
        values = self._submitted(form, "settings")
        slug = self.slug
        done = await self._run(
            lambda s, a: connections.update_settings(
                s,
                actor=a,
                provider_slug=slug,
                settings=values,
                context=providers.provider_context(slug),
            )
        )
        row = done.value
        if row is not None:
            self.result_ok, self.result = True, "Settings saved."
        if not done.signed_out:
            await self._refresh()

    @rx.event
    async def start_oauth(self) -> EventSpec | None:
        """Off to the provider's consent page (Stripe Connect, Google) through the sidecar's
        start hop, which binds the one-time flow to this browser; the sidecar's callback brings
        the owner back here."""
        slug, token = self.slug, self.token
        done = await self._run(
            lambda s, a: oauth.begin(s, actor=a, provider_slug=slug, session_token=token)
        )
        url = done.value
        if url is None:
            return None
        return rx.redirect(url)

    @rx.event
    async def disconnect(self) -> None:
        slug = self.slug
        done = await self._run_in_steps(
            lambda e, a: oauth.disconnect(e, actor=a, provider_slug=slug)
        )
        row = done.value
        if row is not None:
            self.result_ok, self.result = True, "Disconnected: the keys are wiped; history stays."
        if not done.signed_out:
            await self._refresh()
