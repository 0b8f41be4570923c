"""The sidecar's part of the isolation matrix (tests/security/test_isolation_matrix.py): every
route of the app found by walking ``app.routes``, and each kind of route's cases. A case sends
one request through a fresh app on the test database and checks what it answered, which rows
it changed (per owning workspace, as the console's cells do) and that its answer shows nothing
of another tenant's.

Cases: ``own`` (A's receiver or flow, with A's secret: it works, and writes only A's rows);
``foreign`` (A's secret or browser on B's receiver or flow: refused, nothing stored);
``unsigned`` (no signature, token or flow: refused, nothing stored); ``plan`` (Free's
switched-off receiver or a flow its plan no longer allows: refused, nothing of Free's changes).
"""

from __future__ import annotations

import html
import itertools
import json
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

import httpx
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session
from starlette.routing import BaseRoute, Mount

from backend.api.app import create_app
from backend.config import Settings, get_settings
from backend.connections import oauth
from backend.db import get_engine
from backend.email import links, preferences, unsubscribe
from backend.platform.actors import Actor
from models import (
    EmailMessage,
    Lead,
    Membership,
    Operator,
    Plan,
    ProposalTemplate,
    Role,
    Workspace,
)
from tests.api.webhook_support import (
    sendgrid_batch,
    sendgrid_signature,
    standard_signature,
    stripe_event,
    stripe_v1,
)
from tests.support import google_oauth, oauth_flow
from tests.support.matrix_cells import Tally
from tests.support.matrix_snapshot import Snapshot, changed, fingerprint
from tests.support.matrix_world import MARKERS, Tenant, World

CRON_SECRET = "matrix-cron-secret-0123456789"
METRICS_TOKEN = "matrix-metrics-token-0123456789"
ENV = {
    "HUB_PUBLIC_CONSOLE_URL": "http://console.test",
    "HUB_PUBLIC_SIDECAR_URL": "http://sidecar.test",
    "HUB_CRON_SECRET": CRON_SECRET,
    "HUB_METRICS_TOKEN": METRICS_TOKEN,
}
# What a refusal may answer: a 4xx, or the OAuth callback's redirect back to the console with
# the reason (nothing connected).
REFUSED = frozenset({400, 401, 403, 404, 303})


def described_app() -> FastAPI:
    """The sidecar with every route it can serve (the API description too, as in sandbox
    mode), whatever this machine's settings say."""
    return create_app(Settings(_env_file=None, api_docs=True))  # type: ignore[call-arg]


def routes(app: FastAPI) -> list[str]:
    """Every route as "METHOD /path" ("MOUNT /path" for a mounted app); HEAD where GET is."""
    found: list[str] = []

    def walk(candidates: list[BaseRoute]) -> None:
        for route in candidates:
            contexts = getattr(route, "effective_route_contexts", None)
            if callable(contexts):  # FastAPI's included routers
                for context in contexts():
                    found.extend(f"{m} {context.path}" for m in sorted(context.methods or ()))
            elif isinstance(route, Mount):
                found.append(f"MOUNT {route.path}")
            else:
                methods = set(getattr(route, "methods", None) or ())
                found.extend(f"{m} {getattr(route, 'path', '?')}" for m in sorted(methods))

    walk(list(app.routes))
    return sorted(r for r in set(found) if not r.startswith("HEAD ") or f"GET {r[5:]}" not in found)


@dataclass(frozen=True)
class Sent:
    """What a case sends: the request, what may answer, whose rows it may change."""

    send: Callable[[TestClient], httpx.Response]
    status: frozenset[int]
    writes: frozenset[str] = frozenset()  # owners whose rows may change
    must_write: str = ""  # an owner whose rows must change (the own case works)
    tables: frozenset[str] | None = None  # if set, only these tables may change
    setup: Callable[[], None] | None = None  # rows the case needs before its request
    # Other owners whose markers the own case may show: the platform's routes only (/metrics).
    shows: frozenset[str] = frozenset()


Cases = dict[str, Sent]


def _post(
    path: str, body: bytes, headers: dict[str, str]
) -> Callable[[TestClient], httpx.Response]:
    return lambda c: c.post(path, content=body, headers=headers)


def _get(path: str, **headers: str) -> Callable[[TestClient], httpx.Response]:
    return lambda c: c.get(path, headers=headers, follow_redirects=False)


def _stripe_signed(body: bytes, secret: str) -> dict[str, str]:
    now = int(time.time())
    return {"Stripe-Signature": f"t={now},v1={stripe_v1(body, secret, now)}"}


_COUNTER = itertools.count(1)


def _unique(prefix: str) -> str:
    """A fresh event id: a repeated one would be answered "duplicate" and store nothing."""
    return f"{prefix}_{next(_COUNTER)}"


class RouteCases:
    """The cases of each kind of route, on the world's tenants."""

    def __init__(self, engine: Engine, world: World) -> None:
        self.engine, self.world = engine, world
        self.a, self.b, self.f = world["A"], world["B"], world["F"]

    # -- webhooks ---------------------------------------------------------------------------

    def stripe_workspace(self) -> Cases:
        def to(slug: str, secret: str | None) -> Callable[[TestClient], httpx.Response]:
            body = stripe_event(_unique("evt_matrix"))
            headers = _stripe_signed(body, secret) if secret else {}
            return _post(f"/webhooks/stripe/{slug}", body, headers)

        a, b, f = self.a, self.b, self.f
        return {
            "own": Sent(
                to(a.slug, a.stripe_webhook_secret), frozenset({200}), frozenset({"A"}), "A"
            ),
            "foreign": Sent(to(b.slug, a.stripe_webhook_secret), frozenset({401})),
            "unsigned": Sent(to(a.slug, None), frozenset({401})),
            "plan": Sent(to(f.slug, f.stripe_webhook_secret), frozenset({404})),
        }

    def stripe_platform(self) -> Cases:
        platform = get_settings().platform_stripe_webhook_secret.get_secret_value()
        upgrade = json.dumps(
            {
                "id": _unique("evt_upgrade"),
                "type": "checkout.session.completed",
                "object": "event",
                "data": {
                    "object": {
                        "mode": "subscription",
                        "client_reference_id": str(self.f.workspace_id),
                        "metadata": {"workspace_id": str(self.f.workspace_id), "plan": "business"},
                    }
                },
            }
        ).encode()
        body = stripe_event(_unique("evt_platform"), "customer.created")
        return {
            "own": Sent(
                _post("/webhooks/stripe", body, _stripe_signed(body, platform)),
                frozenset({200}),
                frozenset({"platform"}),
                "platform",
            ),
            # A workspace's own Stripe secret cannot speak for the platform's account.
            "foreign": Sent(
                _post("/webhooks/stripe", body, _stripe_signed(body, self.a.stripe_webhook_secret)),
                frozenset({401}),
            ),
            "unsigned": Sent(_post("/webhooks/stripe", body, {}), frozenset({401})),
            # Free's owner cannot upgrade itself with an event signed by its own account.
            "plan": Sent(
                _post(
                    "/webhooks/stripe",
                    upgrade,
                    _stripe_signed(upgrade, self.f.stripe_webhook_secret),
                ),
                frozenset({401}),
            ),
        }

    def sendgrid(self) -> Cases:
        def to(slug: str, signer: Tenant | None) -> Callable[[TestClient], httpx.Response]:
            body = sendgrid_batch(_unique("sg_matrix"))
            stamp = str(int(time.time()))
            headers = {}
            if signer is not None and signer.sendgrid_key is not None:
                headers = {
                    "X-Twilio-Email-Event-Webhook-Signature": sendgrid_signature(
                        signer.sendgrid_key, body, stamp
                    ),
                    "X-Twilio-Email-Event-Webhook-Timestamp": stamp,
                }
            return _post(f"/webhooks/sendgrid/{slug}", body, headers)

        a, b, f = self.a, self.b, self.f
        return {
            "own": Sent(to(a.slug, a), frozenset({200}), frozenset({"A"}), "A"),
            "foreign": Sent(to(b.slug, a), frozenset({401})),
            "unsigned": Sent(to(a.slug, None), frozenset({401})),
            "plan": Sent(to(f.slug, f), frozenset({404})),
        }

    def sendgrid_inbound(self, in_path: bool) -> Cases:
        """A reply posted by SendGrid Inbound Parse: A's secret on A's route is stored as A's
        event; A's secret on B's route, or none, is refused and stores nothing."""
        secrets = {"A": "matrix-inbound-secret-a-0123456789abcdef", "B": "matrix-inbound-b-0"}

        def give_secrets() -> None:
            with Session(self.engine) as session:
                for t, secret in ((self.a, secrets["A"]), (self.b, secrets["B"])):
                    session.execute(
                        update(Workspace)
                        .where(Workspace.id == t.workspace_id)
                        .values(inbound_parse_token=secret)
                    )
                session.commit()

        def to(slug: str, secret: str | None) -> Callable[[TestClient], httpx.Response]:
            fields = {
                "from": "Jane Doe <jane@lead.example>",
                "subject": "Re: your proposal",
                "text": "Sounds good.",
                "headers": f"Message-ID: <{_unique('reply')}@lead.example>\n",
            }
            path = f"/webhooks/sendgrid-inbound/{slug}"
            if in_path:
                path += f"/{secret or 'none'}"
            auth = httpx.BasicAuth("inbound", secret) if secret and not in_path else None
            # An attachment, as SendGrid posts one: the form is then multipart, as its are.
            files = {"attachment1": ("note.txt", b"attached", "text/plain")}
            return lambda c: c.post(path, data=fields, files=files, auth=auth)

        a, b = self.a, self.b
        return {
            "own": Sent(
                to(a.slug, secrets["A"]),
                frozenset({200}),
                frozenset({"A"}),
                "A",
                frozenset({"inbound_events", "outbox_jobs"}),
                give_secrets,
            ),
            "foreign": Sent(to(b.slug, secrets["A"]), frozenset({401}), setup=give_secrets),
            "unsigned": Sent(to(a.slug, None), frozenset({401}), setup=give_secrets),
        }

    def zoho(self) -> Cases:
        def to(slug: str, secret: str | None) -> Callable[[TestClient], httpx.Response]:
            body = json.dumps({"event_id": _unique("zoho"), "event_type": "invoice_paid"}).encode()
            return _post(
                f"/webhooks/zoho/{slug}", body, {"X-Zoho-Secret": secret} if secret else {}
            )

        a, b, f = self.a, self.b, self.f
        return {
            "own": Sent(to(a.slug, a.zoho_secret), frozenset({200}), frozenset({"A"}), "A"),
            "foreign": Sent(to(b.slug, a.zoho_secret), frozenset({401})),
            "unsigned": Sent(to(a.slug, None), frozenset({401})),
            "plan": Sent(to(f.slug, f.zoho_secret), frozenset({404})),
        }

    def generic(self) -> Cases:
        def to(receiver: Tenant, signer: Tenant | None) -> Callable[[TestClient], httpx.Response]:
            body = json.dumps({"type": "order.created", "data": {}}).encode()
            msg, now = _unique("msg_matrix"), int(time.time())
            headers = {"webhook-id": msg, "webhook-timestamp": str(now)}
            if signer is not None:
                headers["webhook-signature"] = standard_signature(
                    signer.generic_secret, msg, now, body
                )
            return _post(f"/webhooks/generic/{receiver.integration_ids['generic']}", body, headers)

        a, b, f = self.a, self.b, self.f
        return {
            "own": Sent(to(a, a), frozenset({200}), frozenset({"A"}), "A"),
            "foreign": Sent(to(b, a), frozenset({401})),
            "unsigned": Sent(to(a, None), frozenset({401})),
            "plan": Sent(to(f, f), frozenset({404})),
        }

    # -- operations ---------------------------------------------------------------------------

    def cron(self) -> Cases:
        run = "/outbox/run"
        return {
            # The platform's drain: it runs every workspace's due jobs (the world has none due).
            "own": Sent(
                lambda c: c.post(run, headers={"X-Cron-Secret": CRON_SECRET}),
                frozenset({200}),
                frozenset({"A", "B", "F", "platform"}),
            ),
            "foreign": Sent(
                lambda c: c.post(run, headers={"X-Cron-Secret": self.a.stripe_webhook_secret}),
                frozenset({401}),
            ),
            "unsigned": Sent(lambda c: c.post(run), frozenset({401})),
        }

    def metrics(self) -> Cases:
        def bearer(token: str) -> Callable[[TestClient], httpx.Response]:
            return _get("/metrics", Authorization=f"Bearer {token}")

        return {
            # The platform's scrape (its token, loopback only): every workspace's call counts,
            # labelled by slug, by design; never an error's words or a secret.
            "own": Sent(bearer(METRICS_TOKEN), frozenset({200}), shows=frozenset({"B", "F"})),
            "foreign": Sent(bearer(self.a.tokens["owner"]), frozenset({401})),
            "unsigned": Sent(_get("/metrics"), frozenset({401})),
        }

    def unsubscribe(self, method: str) -> Cases:
        """A message's link unsubscribes its own address, in its own workspace: a token naming
        B's message under A's workspace (or made up) is refused and stores nothing. GET only
        asks (mail scanners follow links), so even its own case writes nothing."""
        held: dict[str, str] = {}

        def message(t: Tenant) -> int:
            with Session(self.engine) as session:
                row = EmailMessage(
                    workspace_id=t.workspace_id,
                    purpose="payment_reminder",
                    template="payment_reminder",
                    to_email=f"client@{t.key.lower()}.example",
                    status="sent",
                )
                session.add(row)
                session.commit()
                return row.id

        def own() -> None:
            held["own"] = unsubscribe.token_for(message(self.a), self.a.workspace_id)

        def foreign() -> None:
            held["foreign"] = unsubscribe.token_for(message(self.b), self.a.workspace_id)

        def call(which: str) -> Callable[[TestClient], httpx.Response]:
            return lambda c: c.request(method, f"/u/{held[which]}")

        writes = method == "POST"
        return {
            "own": Sent(
                call("own"),
                frozenset({200}),
                frozenset({"A"}) if writes else frozenset(),
                "A" if writes else "",
                frozenset({"email_suppressions"}),
                own,
            ),
            "foreign": Sent(call("foreign"), frozenset({400}), setup=foreign),
            "unsigned": Sent(lambda c: c.request(method, "/u/made-up"), frozenset({400})),
        }

    def _proposal_link(self, t: Tenant) -> tuple[links.Link, str]:
        """A lead of ``t`` and a published proposal template, both named with its marker: the
        link to them and the lead's address."""
        email = f"{_unique('lead')}@{t.key.lower()}.example"
        with Session(self.engine) as session:
            lead = Lead(workspace_id=t.workspace_id, email=email, name=f"Lead {t.marker}")
            template = ProposalTemplate(
                workspace_id=t.workspace_id,
                title=f"Proposal {t.marker}",
                service_type="recital media",
                body=f"Body {t.marker}",
                published=True,
            )
            session.add_all([lead, template])
            session.commit()
            return links.Link(t.workspace_id, "proposal", "lead", lead.id, template.id), email

    def signed_link(self, method: str) -> Cases:
        """A signed link shows its own workspace's lead's page (recording the visit, moving
        the lead) and mails a fresh link only to that lead: a token naming B's lead and
        template under A's workspace finds nothing (404 for the page; for the fresh-link form
        the same answer as any address, storing nothing); a made-up token is refused."""
        held: dict[str, str] = {}

        def own() -> None:
            link, held["own_email"] = self._proposal_link(self.a)
            held["own"] = links.token_for(link)

        def foreign() -> None:
            theirs, held["foreign_email"] = self._proposal_link(self.b)
            crossed = links.Link(
                self.a.workspace_id, "proposal", "lead", theirs.subject_id, theirs.target_id
            )
            held["foreign"] = links.token_for(crossed)

        if method == "GET":

            def visit(which: str) -> Callable[[TestClient], httpx.Response]:
                return lambda c: c.get(f"/x/{held[which]}")

            return {
                "own": Sent(
                    visit("own"),
                    frozenset({200}),
                    frozenset({"A"}),
                    "A",
                    frozenset({"engagement_events", "leads"}),
                    own,
                ),
                "foreign": Sent(visit("foreign"), frozenset({404}), setup=foreign),
                "unsigned": Sent(_get("/x/made-up"), frozenset({400})),
            }

        def ask(which: str) -> Callable[[TestClient], httpx.Response]:
            return lambda c: c.post(
                f"/x/{held[which]}/fresh",
                content=f"email={held[which + '_email']}".encode(),
                headers={"content-type": "application/x-www-form-urlencoded"},
            )

        return {
            "own": Sent(
                ask("own"),
                frozenset({200}),
                frozenset({"A"}),
                "A",
                frozenset({"email_messages", "outbox_jobs"}),
                own,
            ),
            # The same answer as any address: it tells nothing, and stores nothing.
            "foreign": Sent(ask("foreign"), frozenset({200}), setup=foreign),
            "unsigned": Sent(
                lambda c: c.post(
                    "/x/made-up/fresh",
                    content=b"email=anyone%40a.example",
                    headers={"content-type": "application/x-www-form-urlencoded"},
                ),
                frozenset({200}),
            ),
        }

    def preferences(self, method: str) -> Cases:
        """A message's preferences page shows and changes its own address's groups in its own
        workspace; a token naming B's message under A's workspace (or made up) is refused and
        stores nothing. GET changes nothing, even its own."""
        held: dict[str, str] = {}

        def message(t: Tenant) -> int:
            with Session(self.engine) as session:
                row = EmailMessage(
                    workspace_id=t.workspace_id,
                    purpose="proposal_sent",
                    template="proposal_sent",
                    to_email=f"client@{t.key.lower()}.example",
                    status="sent",
                )
                session.add(row)
                session.commit()
                return row.id

        def own() -> None:
            held["own"] = preferences.token_for(message(self.a), self.a.workspace_id)

        def foreign() -> None:
            held["foreign"] = preferences.token_for(message(self.b), self.a.workspace_id)

        def call(which: str) -> Callable[[TestClient], httpx.Response]:
            return lambda c: c.request(
                method,
                f"/preferences/{held.get(which, which)}",
                content=b"group=marketing&action=unsubscribe",
                headers={"content-type": "application/x-www-form-urlencoded"},
            )

        writes = method == "POST"
        return {
            "own": Sent(
                call("own"),
                frozenset({200}),
                frozenset({"A"}) if writes else frozenset(),
                "A" if writes else "",
                frozenset({"email_suppressions"}),
                own,
            ),
            "foreign": Sent(call("foreign"), frozenset({400}), setup=foreign),
            "unsigned": Sent(call("made-up"), frozenset({400})),
        }

    def lead_form(self, method: str) -> Cases:
        """The lead form is public by design: anyone may post an inquiry to a workspace's form,
        and it lands in that workspace only: the request stores the inquiry in the inbox with
        A's id, and its job makes A's lead, message, alert and notices. An unknown workspace
        is a 404 that stores nothing. GET and the CORS preflight write nothing."""
        form = f"/forms/{self.a.slug}"
        leads = f"{form}/leads"
        if method == "GET":
            return {
                "own": Sent(_get(form), frozenset({200})),
                "anyone": Sent(_get("/forms/no-such-workspace"), frozenset({404})),
            }
        if method == "OPTIONS":
            ask = {"origin": "https://site.example", "access-control-request-method": "POST"}
            return {
                "own": Sent(lambda c: c.options(leads, headers=ask), frozenset({204})),
                "anyone": Sent(
                    lambda c: c.options("/forms/no-such-workspace/leads", headers=ask),
                    frozenset({404}),
                ),
            }
        body = json.dumps({"name": "Jane Doe", "email": "jane@lead.example"}).encode()
        headers = {"content-type": "application/json"}
        return {
            "own": Sent(
                _post(leads, body, headers),
                frozenset({202}),
                frozenset({"A"}),
                "A",
                # The request stores the inquiry and its job, both A's; the job's capture
                # (A's lead, message, alert, notices) is tested in tests/leads/test_capture.py.
                frozenset({"inbound_events", "outbox_jobs"}),
            ),
            "anyone": Sent(
                _post("/forms/no-such-workspace/leads", body, headers), frozenset({404})
            ),
        }

    def public(self, path: str) -> Cases:
        return {"anyone": Sent(_get(path), frozenset({200}))}

    # -- OAuth ---------------------------------------------------------------------------------

    def _begin(self, t: Tenant, provider: str) -> str:
        """A flow the console began for ``t``'s owner: the nonce."""
        with Session(self.engine) as session:
            actor = _owner(session, t)
            start = oauth.begin(
                session, actor=actor, provider_slug=provider, session_token=t.tokens["owner"]
            )
            session.commit()
        return oauth_flow.nonce_of(start)

    def _authorized(self, t: Tenant, provider: str) -> str:
        """A flow begun, bound to a test browser and consented to: the callback's location."""
        with Session(self.engine) as session:
            url = oauth_flow.authorize(session, _owner(session, t), provider)
        return stripe_consent(url) if provider == oauth.STRIPE else google_oauth.consent(url)

    def _on_free_plan_after_begin(self, provider: str) -> str:
        """F began a flow while on Pro, then went down to Free before coming back."""
        self._set_plan(self.f, Plan.BUSINESS)
        try:
            return self._authorized(self.f, provider)
        finally:
            self._set_plan(self.f, Plan.FREE)

    def _set_plan(self, t: Tenant, plan: Plan) -> None:
        with Session(self.engine) as session:
            session.execute(
                update(Workspace).where(Workspace.id == t.workspace_id).values(plan=plan)
            )
            session.commit()

    def oauth_start(self, provider: str, path: str) -> Cases:
        held: dict[str, str] = {}

        def own() -> None:
            held["own"] = self._begin(self.a, provider)

        def foreign() -> None:
            # B's flow, already opened in B's browser: A's browser cannot take it over.
            nonce = self._begin(self.b, provider)
            with Session(self.engine) as session:
                oauth.open_flow(session, provider=provider, nonce=nonce)
                session.commit()
            held["foreign"] = nonce

        return {
            "own": Sent(
                lambda c: c.get(f"{path}?nonce={held['own']}", follow_redirects=False),
                frozenset({303}),
                frozenset({"A"}),
                "A",
                frozenset({"oauth_nonces"}),
                own,
            ),
            "foreign": Sent(
                lambda c: c.get(f"{path}?nonce={held['foreign']}", follow_redirects=False),
                frozenset({400}),
                setup=foreign,
            ),
            "unsigned": Sent(_get(path), frozenset({400})),
        }

    def oauth_callback(self, provider: str) -> Cases:
        held: dict[str, str] = {}

        def callback(which: str, browser_of: str | None) -> Callable[[TestClient], httpx.Response]:
            def send(client: TestClient) -> httpx.Response:
                location = held[which]
                parts = urlsplit(location)
                if browser_of is not None:
                    source = held[browser_of]
                    source_state = parse_qs(urlsplit(source).query).get("state", [""])[0]
                    for name, value in oauth_flow.cookies_for(source_state).items():
                        client.cookies.set(name, value)
                return client.get(f"{parts.path}?{parts.query}", follow_redirects=False)

            return send

        def own() -> None:
            held["own"] = self._authorized(self.a, provider)

        def foreign() -> None:
            # A's browser (with its own flow's cookie) brings back B's consented flow.
            held["mine"] = self._authorized(self.a, provider)
            held["foreign"] = self._authorized(self.b, provider)

        def plan() -> None:
            held["plan"] = self._on_free_plan_after_begin(provider)

        path = f"/oauth/{'google' if provider == oauth.GOOGLE else provider}/callback"
        return {
            "own": Sent(
                lambda c: callback("own", "own")(c),
                frozenset({303}),
                frozenset({"A"}),
                "A",
                setup=own,
            ),
            "foreign": Sent(
                lambda c: callback("foreign", "mine")(c), frozenset({400}), setup=foreign
            ),
            "unsigned": Sent(_get(f"{path}?code=x&state=y"), REFUSED),
            # Refused by the plan: only the flow's own row (used up) may change.
            "plan": Sent(
                lambda c: callback("plan", "plan")(c),
                REFUSED,
                frozenset({"F"}),
                tables=frozenset({"oauth_nonces"}),
                setup=plan,
            ),
        }


def _owner(session: Session, t: Tenant) -> Actor:
    operator = session.execute(
        select(Operator)
        .join(Membership, Membership.operator_id == Operator.id)
        .where(Membership.workspace_id == t.workspace_id, Membership.role == Role.OWNER)
    ).scalar_one()
    return Actor(operator.id, t.workspace_id, Role.OWNER, operator.email, operator.name)


def stripe_consent(authorize_url: str) -> str:
    """Stripe Connect's consent page "clicked" (Allow): where Stripe sends the browser back."""
    page = httpx.get(authorize_url, timeout=10)
    page.raise_for_status()
    fields = {
        k: html.unescape(v) for k, v in re.findall(r'name="([^"]+)" value="([^"]*)"', page.text)
    }
    fields["decision"] = "allow"
    parts = urlsplit(authorize_url)
    answer = httpx.post(
        f"{parts.scheme}://{parts.netloc}/stripe/connect/oauth/authorize/decision",
        data=fields,
        timeout=10,
    )
    assert answer.status_code == 303, answer.text
    return answer.headers["location"]


class RouteMatrix:
    """Runs each case of each route on a fresh app, back to the world as built after any case
    that changed a row."""

    def __init__(self, engine: Engine, world: World, snapshot: Snapshot, tally: Tally) -> None:
        self.engine, self.world, self.snapshot, self.tally = engine, world, snapshot, tally
        self.pristine = fingerprint(engine, world)

    @contextmanager
    def _client(self) -> Iterator[TestClient]:
        app = create_app()
        app.dependency_overrides[get_engine] = lambda: self.engine
        with TestClient(app, raise_server_exceptions=False, base_url="http://sidecar.test") as c:
            yield c

    def run(self, route: str, cases: Cases) -> None:
        self.tally.routes += 1
        for case, sent in cases.items():
            self.tally.route_cells += 1
            self._case(f"{route} [{case}]", case, sent)

    def _case(self, where: str, case: str, sent: Sent) -> None:
        if sent.setup is not None:
            sent.setup()
        before = fingerprint(self.engine, self.world)
        with self._client() as client:
            answer = sent.send(client)
        after = fingerprint(self.engine, self.world)
        diff = changed(before, after)
        if dirty := changed(self.pristine, after):
            self.snapshot.restore({table for table, _ in dirty})
            assert not changed(self.pristine, fingerprint(self.engine, self.world)), where
        kind = {
            "own": "own cells that did not work",
            "foreign": "cross-workspace writes",
            "unsigned": "signed-out changes or reads",
            "plan": "plan bypasses",
            "anyone": "signed-out changes or reads",
        }[case]
        if answer.status_code not in sent.status:
            self.tally.flag(kind, where, f"answered {answer.status_code}: {answer.text[:200]}")
        if case != "own" and "connected=1" in answer.headers.get("location", ""):
            self.tally.flag(kind, where, "sent the browser back as connected")
        owners = {o for _, o in diff}
        if beyond := sorted((t, o) for t, o in diff if o not in sent.writes):
            self.tally.flag(
                "cross-workspace writes" if case == "own" else kind, where, f"wrote {beyond}"
            )
        if sent.tables is not None and (
            other := sorted(t for t, _ in diff if t not in sent.tables)
        ):
            self.tally.flag(kind, where, f"changed {other}")
        if sent.must_write and sent.must_write not in owners:
            self.tally.flag("own cells that did not work", where, "stored nothing")
        allowed = {"A", *sent.shows} if case == "own" else set()
        text = answer.text + json.dumps(dict(answer.headers))
        if shown := sorted(k for k in MARKERS if k not in allowed and MARKERS[k] in text):
            self.tally.flag("cross-workspace reads", where, f"answer shows {shown}'s markers")
