"""The isolation matrix's world (tests/security/test_isolation_matrix.py): tenants A, B and F
with a row of every kind the console and the sidecar touch, each text marked with its tenant's
marker so that a leak can be searched for (what changed is tests/support/matrix_snapshot.py).

- A (Business): an owner and an admin (both also of A2, for "switch workspace"), a viewer.
- B (Business): an owner. Its rows mirror A's: the ids the matrix hands to A's operators.
- F (Free, every integration switched off by the downgrade): an owner, for "a plan below".
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from backend.accounts import service as accounts
from backend.connections import credentials
from backend.email.sequences import service as email_sequences
from backend.invoicing import panel as invoice_panel
from backend.platform import circuits
from models import (
    Alert,
    AlertEvent,
    AuditLog,
    Buyer,
    CheckoutLinkSend,
    Claim,
    EmailMessage,
    EmailSequence,
    EngagementEvent,
    InboundEvent,
    InboundStatus,
    Integration,
    IntegrationStatus,
    Invoice,
    InvoiceDiscrepancy,
    InvoiceStatus,
    JobKindPause,
    JobStatus,
    Lead,
    LeadMessage,
    Membership,
    OutboxJob,
    Plan,
    ProviderCircuit,
    Role,
    SequenceEnrolment,
    SequenceStep,
    Show,
    ShowItem,
    ShowStatus,
    Workspace,
    utcnow,
)
from tests import factories
from tests.api.webhook_support import public_key_b64
from tests.support.calls import add_calls, call

MARKERS = {"A": "alpha7x", "B": "bravo9x", "F": "free5x"}
# The kind of job only this tenant has dead jobs of (a replay or a count that crossed tenants
# would show), and has paused.
OWN_KIND = {"A": "stripe.sync_customer", "B": "stripe.register_webhook", "F": "stripe.void_invoice"}
# A kind no tenant has paused: what "pause" pauses.
UNPAUSED_KIND = "messenger.send_checkout_link"
OLD_UNIT_PRICE = 1000  # the sent invoice's line for item 1, which now costs 1200


@dataclass
class Tenant:
    """One workspace of the world and the ids a handler may be given."""

    key: str
    marker: str
    workspace_id: int
    slug: str
    name: str
    locale: str = "en_US"
    currency: str = "usd"
    switch_to: int = 0  # a workspace "switch workspace" is asked for (A: A2; others: their own)
    tokens: dict[str, str] = field(default_factory=dict)  # role -> a live session token
    emails: dict[str, str] = field(default_factory=dict)
    stripe_key: str = ""
    stripe_account: str = ""
    show_id: int = 0
    priced_item_id: int = 0
    unpriced_item_id: int = 0
    new_buyer_pid: str = ""  # claimed, no invoice yet
    sent_invoice_id: int = 0
    sent_invoice_url: str = ""
    error_invoice_id: int = 0
    void_invoice_id: int = 0
    pending_job_id: int = 0
    dead_job_id: int = 0
    only_dead_kind: str = ""
    paused_kind: str = ""
    alert_id: int = 0
    sequence_id: int = 0  # running: what "pause" pauses
    paused_sequence_id: int = 0  # paused: what "resume" resumes
    integration_ids: dict[str, int] = field(default_factory=dict)
    stripe_webhook_secret: str = ""
    zoho_secret: str = ""
    generic_secret: str = ""
    sendgrid_key: ec.EllipticCurvePrivateKey | None = None
    lead_id: int = 0
    enrolment_id: int = 0  # the lead's active sequence enrolment


@dataclass
class World:
    tenants: dict[str, Tenant]
    second_workspace_id: int  # A2: A's owner and admin belong to it too
    owner_of: dict[int | None, str]  # workspace id -> "A", "A2", "B", "F"

    def __getitem__(self, key: str) -> Tenant:
        return self.tenants[key]


def _secret(label: str) -> str:
    """A Standard Webhooks secret: whsec_ and base64 of 32 bytes."""
    return "whsec_" + base64.b64encode(hashlib.sha256(label.encode()).digest()).decode()


def _integration(
    session: Session,
    ws: int,
    provider: str,
    status: IntegrationStatus,
    secrets: dict[str, Any],
    settings: dict[str, Any] | None = None,
    **extra: Any,
) -> Integration:
    row = Integration(
        workspace_id=ws,
        provider=provider,
        display_name=provider.title(),
        status=status,
        settings=settings or {},
        connected_at=utcnow(),
        **extra,
    )
    session.add(row)
    session.flush()
    credentials.seal(row, secrets)
    return row


def _login(engine: Engine, email: str) -> str:
    """A live session token: login verifies the password (Argon2) between short transactions
    of its own, so the member it signs in is committed first (tests/support/tx_guard.py)."""
    return accounts.login(
        engine, email=email, password=factories.PASSWORD, policy=factories.POLICY
    ).token


def _tenant(
    engine: Engine,
    key: str,
    plan: Plan,
    roles: tuple[Role, ...],
    stripe: tuple[str, str],
    money: tuple[str, str] = ("en_US", "usd"),
) -> Tenant:
    mark = MARKERS[key]
    locale, currency = money
    # The workspace and its members, committed before anyone logs in (factories.member's hash
    # of factories.PASSWORD is made once, outside any transaction).
    with Session(engine, expire_on_commit=False) as session:
        ws = Workspace(
            name=f"Shop {mark}", slug=f"shop-{mark}", plan=plan, locale=locale, currency=currency
        )
        session.add(ws)
        session.flush()
        t = Tenant(key, mark, ws.id, ws.slug, ws.name, locale, currency, ws.id)
        for role in roles:
            t.emails[role.value] = f"{role.value}@{mark}.example"
            factories.member(session, ws, email=t.emails[role.value], role=role)
        session.commit()
    for role in roles:
        t.tokens[role.value] = _login(engine, t.emails[role.value])
    t.stripe_key, t.stripe_account = stripe
    with Session(engine) as session:
        _rows(session, t, plan)
        session.commit()
    return t


def _rows(session: Session, t: Tenant, plan: Plan) -> None:
    """Every row of the tenant's workspace but its members (integrations, shop, operations)."""
    mark, ws_id = t.marker, t.workspace_id
    # Free: the downgrade switched every integration off and released the Stripe account.
    on = IntegrationStatus.ACTIVE if plan is not Plan.FREE else IntegrationStatus.INACTIVE
    off_reason = None if on is IntegrationStatus.ACTIVE else f"Inactive: Free plan ({mark})"
    t.stripe_webhook_secret = f"whsec_stripe_{mark}_0123456789abcdef"
    t.zoho_secret = f"zoho-secret-{mark}"
    t.generic_secret = _secret(mark)
    t.sendgrid_key = ec.generate_private_key(ec.SECP256R1())
    made = {
        "stripe": _integration(
            session,
            ws_id,
            "stripe",
            on,
            {"secret_key": t.stripe_key, "webhook_signing_secret": t.stripe_webhook_secret},
            last_error=off_reason,
            external_account_id=t.stripe_account if on is IntegrationStatus.ACTIVE else None,
        ),
        "sendgrid": _integration(
            session,
            ws_id,
            "sendgrid",
            on,
            {"api_key": f"SG.{mark}.key"},
            {"event_webhook_public_key": public_key_b64(t.sendgrid_key), "from_name": mark},
            last_error=off_reason,
        ),
        # Connected, with its last error on the tile: what the Integrations page shows.
        "zoho_books": _integration(
            session,
            ws_id,
            "zoho_books",
            on,
            {"webhook_secret": t.zoho_secret},
            last_error=off_reason or f"Zoho answered slowly ({mark})",
        ),
        "generic": _integration(
            session, ws_id, "generic", on, {"signing_secrets": [t.generic_secret]}
        ),
    }
    t.integration_ids = {slug: row.id for slug, row in made.items()}
    _shop(session, t, made["stripe"].id)
    _operations(session, t, made["stripe"].id)
    _leads(session, t)
    _sequences(session, t)


def _sequences(session: Session, t: Tenant) -> None:
    """Two follow-up sequences, one running and one paused (the Sequences page)."""
    for paused in (False, True):
        made = email_sequences.create_sequence(
            session,
            workspace_id=t.workspace_id,
            name=f"Follow up {t.marker}{' (held)' if paused else ''}",
            trigger="lead_created",
            steps=[email_sequences.StepSpec(60, "sequence_followup")],
            paused=paused,
        )
        if paused:
            t.paused_sequence_id = made.id
        else:
            t.sequence_id = made.id


def _shop(session: Session, t: Tenant, stripe_id: int) -> None:
    """A show: item 1 priced (1200) and item 2 not; four buyers; invoices sent (with item 1 at
    its old price), failed, void; buyer 0 without one."""
    m, ws = t.marker, t.workspace_id
    show = Show(workspace_id=ws, title=f"Live {m}", status=ShowStatus.ENDED)
    session.add(show)
    session.flush()
    priced = ShowItem(
        workspace_id=ws, show_id=show.id, number=1, title=f"Scarf {m}", price_cents=1200
    )
    unpriced = ShowItem(workspace_id=ws, show_id=show.id, number=2, title=f"Beanie {m}")
    session.add_all([priced, unpriced])
    session.flush()
    t.show_id, t.priced_item_id, t.unpriced_item_id = show.id, priced.id, unpriced.id
    pids = [f"pid_{m}_{n}" for n in range(4)]
    for n, pid in enumerate(pids):
        handle = f"{m}_b{n}"
        session.add(
            Buyer(workspace_id=ws, platform_user_id=pid, handle=handle, email=f"b{n}@{m}.example")
        )
        for item in (priced, unpriced) if n == 0 else (priced,):
            session.add(
                Claim(
                    workspace_id=ws,
                    show_id=show.id,
                    item_id=item.id,
                    platform_user_id=pid,
                    buyer_handle=handle,
                )
            )
    t.new_buyer_pid = pids[0]

    def invoice(n: int, status: InvoiceStatus, external: bool, **extra: Any) -> Invoice:
        row = Invoice(
            workspace_id=ws,
            show_id=show.id,
            integration_id=stripe_id,
            provider="stripe",
            external_id=f"in_{m}_{n}" if external else None,
            external_url=f"https://pay.example/{m}/{n}" if external else None,
            buyer_handle=f"{m}_b{n}",
            buyer_platform_id=pids[n],
            status=status,
            amount_cents=OLD_UNIT_PRICE,
            line_items=[
                {
                    "number": 1,
                    "title": f"Scarf {m}",
                    "quantity": 1,
                    "unit_price_cents": OLD_UNIT_PRICE,
                }
            ],
            **extra,
        )
        session.add(row)
        session.flush()
        return row

    sent = invoice(1, InvoiceStatus.SENT, True, link_channel="email", sent_at=utcnow())
    failed = invoice(2, InvoiceStatus.ERROR, False, error_message=f"Card declined {m}")
    void = invoice(3, InvoiceStatus.VOID, True)
    t.sent_invoice_id, t.sent_invoice_url = sent.id, sent.external_url or ""
    t.error_invoice_id, t.void_invoice_id = failed.id, void.id
    session.add(
        CheckoutLinkSend(
            workspace_id=ws,
            invoice_id=sent.id,
            channel="email",
            outcome="sent",
            actor=f"stripe {m}",
        )
    )
    session.add(
        InvoiceDiscrepancy(
            workspace_id=ws,
            show_id=show.id,
            invoice_id=sent.id,
            field="amount",
            ours=str(OLD_UNIT_PRICE),
            theirs=f"1100 {m}",
        )
    )
    dead = _job(
        session, t, "stripe.create_invoice", JobStatus.DEAD, invoice_panel.job_key(failed.id)
    )
    dead.payload = {"invoice_id": failed.id}
    t.dead_job_id = dead.id


def _job(session: Session, t: Tenant, kind: str, status: JobStatus, key: str) -> OutboxJob:
    provider = kind.split(".")[0] if not kind.startswith("inbox") else None
    now = utcnow()
    job = OutboxJob(
        workspace_id=t.workspace_id,
        kind=kind,
        provider=provider,
        circuit_key=circuits.key_for(provider, t.workspace_id) if provider else None,
        payload={"note": t.marker},
        idempotency_key=key,
        status=status,
        attempts=1 if status is JobStatus.PENDING else 6,
        run_after=now + dt.timedelta(hours=1) if status is JobStatus.PENDING else now,
        last_error=f"Provider said no ({t.marker})",
        finished_at=now if status is JobStatus.DEAD else None,
    )
    session.add(job)
    session.flush()
    return job


def _operations(session: Session, t: Tenant, stripe_id: int) -> None:
    """What the Jobs, Health, Timeline and Manage pages show: jobs, a pause, an alert, the
    audit trail, a received webhook, a breaker, a provider call, an engagement event."""
    m, ws = t.marker, t.workspace_id
    t.only_dead_kind = t.paused_kind = OWN_KIND[t.key]
    _job(session, t, t.only_dead_kind, JobStatus.DEAD, f"only-dead:{m}")
    t.pending_job_id = _job(session, t, UNPAUSED_KIND, JobStatus.PENDING, f"waiting:{m}").id
    session.add(JobKindPause(workspace_id=ws, kind=t.paused_kind, paused_by=t.emails["owner"]))
    alert = Alert(workspace_id=ws, type="provider_down", message=f"Stripe is failing for {m}")
    session.add(alert)
    session.add(
        AuditLog(
            workspace_id=ws,
            actor=t.emails["owner"],
            action="integration.connect",
            target="integration:stripe",
            details={"note": m},
        )
    )
    session.add(
        InboundEvent(
            provider="stripe",
            external_id=f"evt_{m}",
            event_type="invoice.paid",
            workspace_id=ws,
            integration_id=stripe_id,
            payload={"id": f"evt_{m}"},
            status=InboundStatus.FAILED,
            attempts=1,
            last_error=f"No such invoice ({m})",
        )
    )
    session.add(
        ProviderCircuit(
            key=circuits.key_for("stripe", ws),
            provider="stripe",
            workspace_id=ws,
            last_error=f"Stripe answered 500 ({m})",
            window_calls=3,
            window_failures=1,
        )
    )
    add_calls(
        session,
        call(
            ws,
            "stripe",
            outcome="rejected",
            operation="GET /v1/account",
            integration_id=stripe_id,
            latency_ms=12,
            http_status=401,
            error=f"Key refused ({m})",
        ),
    )
    buyer = session.scalars(
        select(Buyer).where(Buyer.workspace_id == ws).order_by(Buyer.id)
    ).first()
    assert buyer is not None
    session.add(
        EngagementEvent(
            workspace_id=ws,
            source="sendgrid",
            source_event_id=f"sg_{m}",
            subject_type="buyer",
            subject_id=buyer.id,
            name="open",
            occurred_at=utcnow(),
        )
    )
    session.flush()
    t.alert_id = alert.id
    # Its history, which the Health page shows any member of the workspace.
    session.add(
        AlertEvent(alert_id=alert.id, workspace_id=ws, what="raised", who="scheduler", detail=m)
    )
    session.flush()


def _leads(session: Session, t: Tenant) -> None:
    """A lead (what the Leads and lead pages show) with an inquiry, a proposal e-mail and an
    active sequence enrolment."""
    m, ws = t.marker, t.workspace_id
    lead = Lead(
        workspace_id=ws,
        name=f"Lead {m}",
        email=f"lead@{m}.example",
        company=f"Company {m}",
        service_type="recital media",
        last_inquiry_at=utcnow(),
    )
    session.add(lead)
    session.flush()
    session.add(
        LeadMessage(workspace_id=ws, lead_id=lead.id, at=utcnow(), kind="inquiry", body=f"Hi {m}")
    )
    session.add(
        EmailMessage(
            workspace_id=ws,
            purpose="proposal_sent",
            template="proposal_sent",
            to_email=lead.email,
            subject_type="lead",
            subject_id=lead.id,
            status="delivered",
            context={"proposal_title": f"Package {m}"},
        )
    )
    sequence = EmailSequence(workspace_id=ws, name=f"Follow-up {m}", trigger="lead_created")
    session.add(sequence)
    session.flush()
    session.add(
        SequenceStep(
            workspace_id=ws,
            sequence_id=sequence.id,
            position=1,
            delay_minutes=60,
            purpose="proposal_reminder",
        )
    )
    enrolment = SequenceEnrolment(workspace_id=ws, sequence_id=sequence.id, lead_id=lead.id)
    session.add(enrolment)
    session.flush()
    t.lead_id, t.enrolment_id = lead.id, enrolment.id


def build(engine: Engine, stripe_accounts: Callable[[], tuple[str, str]]) -> World:
    """Every tenant, committed. ``stripe_accounts()`` makes a sandbox Stripe account: (secret
    key, account id)."""
    # The sandbox's Stripe accounts are made before any transaction is open.
    accounts_made = [stripe_accounts() for _ in range(3)]
    owner_admin_viewer = (Role.OWNER, Role.ADMIN, Role.VIEWER)
    a = _tenant(engine, "A", Plan.BUSINESS, owner_admin_viewer, accounts_made[0])
    # B writes money its own way: a money format read across tenants would show.
    b = _tenant(engine, "B", Plan.BUSINESS, (Role.OWNER,), accounts_made[1], ("de_DE", "eur"))
    f = _tenant(engine, "F", Plan.FREE, (Role.OWNER,), accounts_made[2])
    with Session(engine, expire_on_commit=False) as session:
        second = Workspace(
            name=f"Second {MARKERS['A']}", slug=f"second-{MARKERS['A']}", plan=Plan.PRO
        )
        session.add(second)
        session.flush()
        # A's owner and admin are A2's too (its viewer is not): where "switch workspace" goes.
        for role in (Role.OWNER, Role.ADMIN):
            operator = session.scalars(
                select(Membership.operator_id).where(
                    Membership.workspace_id == a.workspace_id, Membership.role == role
                )
            ).one()
            accounts.add_member(session, workspace_id=second.id, operator_id=operator, role=role)
        a.switch_to = second.id
        session.commit()
    owner_of: dict[int | None, str] = {
        a.workspace_id: "A",
        second.id: "A2",
        b.workspace_id: "B",
        f.workspace_id: "F",
    }
    return World({"A": a, "B": b, "F": f}, second.id, owner_of)
