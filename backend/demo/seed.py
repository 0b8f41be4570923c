"""Demo data for `make run` and the browser tests: two businesses a newcomer can click through.

Idempotent: a workspace that already exists (by slug) is left as it is, so running the seed again
changes nothing and never overwrites what someone did in the demo.
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.accounts import service as accounts
from backend.config import ProviderMode, get_settings
from backend.connections import credentials, rows, stripe_webhook_setup
from backend.demo import calls
from backend.demo import leads as demo_leads
from backend.demo import sequences as demo_sequences
from backend.platform import audit, incidents
from models import (
    AlertPriority,
    Buyer,
    Claim,
    Client,
    Contract,
    ContractStatus,
    Integration,
    IntegrationStatus,
    Lead,
    Operator,
    Payment,
    PaymentKind,
    Plan,
    Proposal,
    ProposalTemplate,
    Role,
    Show,
    ShowItem,
    ShowStatus,
    Workspace,
    utcnow,
)

DEMO_PASSWORD = "hub-demo-2026"  # noqa: S105 - printed by `make run`; demo data only
# The sandbox's "Lakeside" Stripe account (backend/sandbox/demo_accounts.py, where every demo
# workspace's own sandbox accounts are): in sandbox mode the live seller starts with Stripe
# connected, so its shows can be invoiced at once.
SANDBOX_LAKESIDE_STRIPE_KEY = "sk_test_51SandboxLakeside0000000000000000000000000000000"
SANDBOX_LAKESIDE_STRIPE_ACCOUNT = "acct_1SandboxLakeside0"


# Each demo workspace's SendGrid Inbound Parse secret, the one the sandbox's demo accounts use
# (backend/sandbox/demo_accounts.py): "Reply" in the sandbox's mailbox reaches the sidecar.
SANDBOX_INBOUND_PARSE_TOKENS = {
    "lakeside-live": "sandbox-lakeside-inbound-parse-0000000000000",
    "reel-moments": "sandbox-reelmoments-inbound-parse-00000000000",
}


@dataclass(frozen=True, slots=True)
class DemoLogin:
    email: str
    role: Role
    workspace: str


LIVE_SELLER = "lakeside-live"
STUDIO = "reel-moments"
# The studio's own website, allowed to post its lead form from a browser (CORS); the hosted form
# is {sidecar}/forms/reel-moments.
STUDIO_FORM_ORIGINS = ["https://reelmoments.example", "http://127.0.0.1:8000"]

DEMO_LOGINS = (
    DemoLogin("owner@lakeside.example", Role.OWNER, LIVE_SELLER),
    DemoLogin("ops@lakeside.example", Role.ADMIN, LIVE_SELLER),
    DemoLogin("books@lakeside.example", Role.VIEWER, LIVE_SELLER),
    DemoLogin("owner@reelmoments.example", Role.OWNER, STUDIO),
    DemoLogin("assistant@reelmoments.example", Role.VIEWER, STUDIO),
    # The live seller's owner also helps at the studio: shows the workspace switcher.
    DemoLogin("owner@lakeside.example", Role.ADMIN, STUDIO),
)

_ITEMS = [
    "Vintage denim jacket",
    "Silk scarf",
    "Leather crossbody bag",
    "Gold hoop earrings",
    "Linen shirt",
    "Wool beanie",
    "Ceramic mug set",
    "Beaded bracelet",
    "Canvas tote",
    "Cashmere sweater",
    "Sunglasses",
    "Pearl necklace",
    "Suede boots",
    "Floral dress",
    "Knit cardigan",
    "Phone case",
    "Scented candle",
    "Hair clips (set of 4)",
    "Belt",
    "Ankle socks (3 pack)",
    "Wallet",
    "Rain jacket",
    "Pendant",
    "Tea towel set",
]
_HANDLES = [
    "maria",
    "jules",
    "kemi",
    "sam",
    "ana",
    "tomas",
    "priya",
    "lee",
    "noor",
    "zoe",
    "ivan",
    "grace",
    "omar",
    "lina",
    "theo",
    "rosa",
    "dev",
    "mia",
    "kai",
    "ines",
    "ben",
    "yara",
]


@dataclass
class SeedReport:
    created_workspaces: list[str] = field(default_factory=list)
    skipped_workspaces: list[str] = field(default_factory=list)


class LiveModeRefused(RuntimeError):
    """The demo's owner accounts have a password printed in the README and by `make run`: they
    must never exist where real providers and real customers are."""

    def __str__(self) -> str:
        return (
            "demo data not added: HUB_PROVIDER_MODE is live, and the demo's logins have a "
            "published password. Create the first owner with your own password instead."
        )


def seed(session: Session, *, now: dt.datetime | None = None) -> SeedReport:
    """Add the demo's workspaces and logins that are not there yet, in ``session``: a session
    that has not begun yet (the logins' password is hashed before its first statement)."""
    if get_settings().provider_mode is not ProviderMode.SANDBOX:
        raise LiveModeRefused
    now = now or utcnow()
    report = SeedReport()
    # Hashed before the seed's first statement opens the transaction (Argon2 is not run while
    # the database is held: docs/security/transactions.md).
    password_hash = accounts.new_password_hash(DEMO_PASSWORD)
    operators = _ensure_operators(session, password_hash)
    # The live seller writes prices as in the US (en_US: "12.50", "1,250"), in dollars.
    for slug, name, plan, (locale, currency), fill in (
        (LIVE_SELLER, "Lakeside Live Boutique", Plan.PRO, ("en_US", "usd"), _fill_live_seller),
        (STUDIO, "Reel Moments Studio", Plan.FREE, ("en_US", "usd"), _fill_studio),
    ):
        if session.scalar(select(Workspace.id).where(Workspace.slug == slug)) is not None:
            report.skipped_workspaces.append(slug)
            continue
        workspace = Workspace(
            name=name,
            slug=slug,
            plan=plan,
            locale=locale,
            currency=currency,
            created_at=now,
            inbound_parse_token=SANDBOX_INBOUND_PARSE_TOKENS[slug],
        )
        session.add(workspace)
        session.flush()
        for login in DEMO_LOGINS:
            if login.workspace == slug:
                accounts.add_member(
                    session,
                    workspace_id=workspace.id,
                    operator_id=operators[login.email].id,
                    role=login.role,
                )
        fill(session, workspace.id, now)
        audit.record(
            session,
            actor="seed",
            action="workspace.create",
            target=f"workspace:{workspace.id}",
            workspace_id=workspace.id,
            details={"plan": plan.value},
        )
        report.created_workspaces.append(slug)
    return report


def _ensure_operators(session: Session, password_hash: str) -> dict[str, Operator]:
    found: dict[str, Operator] = {}
    for login in DEMO_LOGINS:
        if login.email in found:
            continue
        operator = session.scalar(select(Operator).where(Operator.email == login.email))
        if operator is None:
            local = login.email.split("@")[0].title()
            operator = accounts.create_operator(
                session, email=login.email, name=local, password_hash=password_hash
            )
        found[login.email] = operator
    return found


def _fill_live_seller(session: Session, workspace_id: int, now: dt.datetime) -> None:
    rng = random.Random(2026)  # noqa: S311 - demo data, reproducible on purpose
    currency = session.get_one(Workspace, workspace_id).currency  # shows take the workspace's
    ended = Show(
        workspace_id=workspace_id,
        currency=currency,
        title="Sunday Closet Clear-out",
        status=ShowStatus.ENDED,
        started_at=now - dt.timedelta(hours=5),
        ended_at=now - dt.timedelta(hours=3),
    )
    live = Show(
        workspace_id=workspace_id,
        currency=currency,
        title="Tuesday Night Jewellery Live",
        status=ShowStatus.LIVE,
        started_at=now - dt.timedelta(minutes=25),
    )
    session.add_all([ended, live])
    session.flush()

    items: list[ShowItem] = []
    for number, title in enumerate(_ITEMS, start=1):
        # Every sixth item has no price yet: the invoice panel asks the operator to set it.
        price = None if number % 6 == 0 else rng.randrange(800, 9500, 50)
        items.append(
            ShowItem(
                workspace_id=workspace_id,
                show_id=ended.id,
                number=number,
                title=title,
                price_cents=price,
            )
        )
    live_items = [
        ShowItem(workspace_id=workspace_id, show_id=live.id, number=n, title=t, price_cents=p)
        for n, t, p in ((1, "Opal ring", 4200), (2, "Charm anklet", 1800), (3, "Gift box", None))
    ]
    session.add_all(items + live_items)
    session.flush()

    buyers = []
    for index in range(44):
        handle = f"{_HANDLES[index % len(_HANDLES)]}_{index // len(_HANDLES) + 1}"
        buyers.append(
            Buyer(
                workspace_id=workspace_id,
                platform_user_id=f"fb_{100200300 + index}",
                handle=handle,
                # Some buyers gave an email at checkout before; the rest get the link by Messenger.
                email=f"{handle}@buyers.example" if index % 3 == 0 else None,
                # Some wrote to the Page during the show: Messenger can reach them.
                messenger_psid=str(7_100_200_300 + index) if index % 3 == 1 else None,
            )
        )
    session.add_all(buyers)
    session.flush()

    claims: list[Claim] = []
    for index, buyer in enumerate(buyers):
        # Each buyer claims 3 or 4 items, so 44 buyers make more than 150 claims.
        for item in rng.sample(items, 3 + index % 2):
            claims.append(
                Claim(
                    workspace_id=workspace_id,
                    show_id=ended.id,
                    item_id=item.id,
                    platform_user_id=buyer.platform_user_id,
                    buyer_handle=buyer.handle,
                    quantity=1 if rng.random() < 0.85 else 2,
                    claimed_at=ended.started_at + dt.timedelta(seconds=30 * len(claims)),
                )
            )
    for buyer in buyers[:5]:
        claims.append(
            Claim(
                workspace_id=workspace_id,
                show_id=live.id,
                item_id=live_items[0].id,
                platform_user_id=buyer.platform_user_id,
                buyer_handle=buyer.handle,
                quantity=1,
                claimed_at=now - dt.timedelta(minutes=10),
            )
        )
    session.add_all(claims)
    _connect_sandbox_stripe(session, workspace_id, now)
    # After Stripe is connected: the calls are its (the writer finds the integration).
    calls.week_of_stripe_calls(session, workspace_id, now)
    _seed_alerts(session, workspace_id, now)


def _seed_alerts(session: Session, workspace_id: int, now: dt.datetime) -> None:
    """Two incidents for the Health page's Alerts section, made as the scheduler's rules make
    them (raise, recur, resolve), so that their history reads like a real one: one still open,
    one resolved an hour ago. Nothing keeps their conditions present, so a running scheduler
    settles the open one after five clear minutes, as it would a real one."""
    hour = dt.timedelta(hours=1)
    for minutes in (50, 20):  # the first raise, then a recurrence: the count is 2
        opened = incidents.raise_incident(
            session,
            workspace_id=workspace_id,
            rule="outbox.lag",
            priority=AlertPriority.HIGH,
            message="3 stripe.create_invoice jobs have waited over 5 minutes to run. Open Jobs "
            "to see what holds them.",
            entity_type="job_kind",
            entity_id="stripe.create_invoice",
            now=now - dt.timedelta(minutes=minutes),
        )
    assert opened.alert.count == 2
    fixed = incidents.raise_incident(
        session,
        workspace_id=workspace_id,
        rule="inbox.lag",
        priority=AlertPriority.HIGH,
        message="A Stripe webhook stored over 60 s ago has not been applied yet.",
        entity_type="provider",
        entity_id="stripe",
        now=now - 3 * hour,
    ).alert
    incidents.resolve(session, fixed, who="seed", now=now - hour, what="resolve")


def _connect_sandbox_stripe(session: Session, workspace_id: int, now: dt.datetime) -> None:
    if get_settings().provider_mode is not ProviderMode.SANDBOX:
        return  # a live deployment connects its own Stripe
    integration = Integration(
        workspace_id=workspace_id,
        provider="stripe",
        display_name="Stripe",
        status=IntegrationStatus.ACTIVE,
        settings={},
        connected_at=now,
        last_checked_at=now,
    )
    session.add(integration)
    session.flush()
    credentials.seal(
        integration,
        {
            "secret_key": SANDBOX_LAKESIDE_STRIPE_KEY,
            # As a connect through the console keeps it: no other workspace may connect it.
            rows.ACCOUNT_KEY: SANDBOX_LAKESIDE_STRIPE_ACCOUNT,
        },
    )
    # The scheduler registers the sidecar as the account's webhook endpoint.
    stripe_webhook_setup.request_if_needed(session, integration)


def _fill_studio(session: Session, workspace_id: int, now: dt.datetime) -> None:
    session.get_one(Workspace, workspace_id).lead_form_origins = list(STUDIO_FORM_ORIGINS)
    # What a new lead asking for recital media is sent at once (backend/leads/capture.py).
    session.add(
        ProposalTemplate(
            workspace_id=workspace_id,
            title="Recital media package",
            service_type="recital media",
            body="Two cameras on every performance, an edited film within two weeks, a 3-minute "
            "highlight reel and a download link for every family.",
            published=True,
            created_at=now,
        )
    )
    leads = [
        Lead(
            workspace_id=workspace_id,
            email="hannah.k@families.example",
            name="Hannah Kim",
            message="Spring recital, two performances, need a highlight reel.",
            marketing_consent=True,
        ),
        Lead(
            workspace_id=workspace_id,
            email="dance@brightsteps.example",
            name="Bright Steps Dance",
            message="Looking for a quote for our June showcase.",
            inquiries=2,
        ),
        Lead(
            workspace_id=workspace_id,
            email="r.osei@weddings.example",
            name="Rita Osei",
            message="Wedding videography, September.",
            status="contacted",
        ),
    ]
    session.add_all(leads)
    session.flush()
    # Their history and more leads, for the Leads page.
    demo_leads.fill(session, workspace_id, now, leads)
    # The studio's sequences, with these leads enrolled, for the Sequences page.
    demo_sequences.fill(session, workspace_id, leads, now)
    client = Client(
        workspace_id=workspace_id, lead_id=leads[0].id, name="Hannah Kim", email=leads[0].email
    )
    session.add(client)
    session.flush()
    priced = (
        ("Two-camera recital coverage", 90000),
        ("Highlight reel (3 min)", 35000),
        ("Family download link", 15000),
    )
    items: list[dict[str, Any]] = [{"name": n, "amount_cents": c} for n, c in priced]
    total = sum(cents for _, cents in priced)
    proposal = Proposal(
        workspace_id=workspace_id,
        lead_id=leads[0].id,
        client_id=client.id,
        title="Spring recital package",
        config_items=items,
        total_cents=total,
        status="accepted",
        sent_at=now - dt.timedelta(days=6),
    )
    session.add(proposal)
    session.flush()
    contract = Contract(
        workspace_id=workspace_id,
        client_id=client.id,
        proposal_id=proposal.id,
        title="Spring recital 2027 — Kim family",
        status=ContractStatus.SIGNED,
        total_cents=total,
        service_type="recital",
        event_date=(now + dt.timedelta(days=60)).date(),
        venue="Riverside Community Theatre",
        signed_at=now - dt.timedelta(days=1),
    )
    session.add(contract)
    session.flush()
    # The 50% deposit the client has not paid yet: paying it will hand the contract off.
    session.add(
        Payment(
            workspace_id=workspace_id,
            contract_id=contract.id,
            amount_cents=total // 2,
            kind=PaymentKind.DEPOSIT,
            due_date=(now + dt.timedelta(days=7)).date(),
        )
    )
