"""Plans: an upgrade goes through the platform's own Stripe Checkout (a subscription), and the
platform's webhooks set the workspace's plan.

Webhooks arrive twice, out of order and late. Each carries the time Stripe created the event;
the workspace keeps the time of the change it last applied (``plan_changed_at``), and an older
event never overwrites a newer plan. A downgrade switches off (never deletes) the integrations
the new plan does not include, saying why on their tiles.

Which event runs which handler: ``STRIPE_PLATFORM_HANDLERS`` in accounts/jobs.py.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from backend.config import get_settings
from backend.connections import catalog, providers, tiers
from backend.connections.rows import release_account
from backend.db import session_scope
from backend.integrations import call_log
from backend.integrations.errors import ProviderError
from backend.platform import audit
from backend.platform.actors import Actor
from backend.platform.errors import InvalidInput, NotFound, ServiceError
from models import InboundEvent, Integration, IntegrationStatus, Plan, Workspace

LOOKUP_KEYS = {Plan.PRO: "hub_pro_monthly", Plan.BUSINESS: "hub_business_monthly"}
PLAN_BY_LOOKUP_KEY = {key: plan for plan, key in LOOKUP_KEYS.items()}
# Subscription states that still grant the plan; anything else (canceled, unpaid, expired)
# means Free. "incomplete" grants nothing yet and takes nothing away.
_GRANTING = {"active", "trialing", "past_due"}
_PENDING = {"incomplete"}
PLATFORM = "stripe_platform"


def _upgradable(session: Session, actor: Actor, plan: Plan) -> Workspace:
    workspace = session.get(Workspace, actor.workspace_id)
    if workspace is None:
        raise NotFound("This workspace no longer exists.")
    if workspace.plan is plan:
        raise InvalidInput(f"This workspace is already on the {plan.value.title()} plan.")
    return workspace


def start_upgrade(
    engine: Engine, *, actor: Actor, plan: Plan, success_url: str, cancel_url: str
) -> str:
    """The Stripe Checkout URL where the owner pays for ``plan`` (owners only). The workspace
    is read, Stripe called with no transaction open (two calls, up to the adapter's deadline
    each), then the attempt audited in a new transaction."""
    actor.require_owner("change the plan")
    if plan not in LOOKUP_KEYS:
        raise InvalidInput("Choose the Pro or Business plan.")
    with session_scope(engine) as session:
        workspace = _upgradable(session, actor, plan)
    settings = get_settings()
    amount = settings.pro_price_cents if plan is Plan.PRO else settings.business_price_cents
    stripe = providers.platform_stripe()
    try:
        # The platform's own account, called for this workspace: the workspace's calls.
        with call_log.scope(workspace_id=workspace.id):
            price = stripe.ensure_price(
                lookup_key=LOOKUP_KEYS[plan],
                amount=amount,
                currency=settings.plan_price_currency,
                name=f"Integrations Hub {plan.value.title()}",
            )
            url = stripe.create_subscription_checkout(
                price_id=price,
                success_url=success_url,
                cancel_url=cancel_url,
                client_reference_id=str(workspace.id),
                metadata={"workspace_id": str(workspace.id), "plan": plan.value},
                customer=workspace.platform_customer_id,
            )
    except ProviderError as exc:
        raise ServiceError(f"The upgrade could not start: {exc}. Try again in a minute.") from exc
    with session_scope(engine) as session:
        # Looked at again: a webhook may have set the plan meanwhile (then this page is
        # not needed, and the owner is told so, as before the call).
        _upgradable(session, actor, plan)
        audit.record(
            session,
            actor=actor,
            action="plan.checkout",
            target=f"workspace:{workspace.id}",
            details={"plan": plan.value},
        )
    return url


# -- webhooks ---------------------------------------------------------------------------------


def _created(event: InboundEvent) -> dt.datetime:
    seconds = event.payload.get("created")
    if seconds:
        return dt.datetime.fromtimestamp(int(seconds), dt.UTC)
    received = event.received_at
    return received if received.tzinfo else received.replace(tzinfo=dt.UTC)


def _workspace_for(session: Session, obj: dict[str, Any]) -> Workspace | None:
    metadata = obj.get("metadata") or {}
    ident = metadata.get("workspace_id") or obj.get("client_reference_id")
    stmt = select(Workspace)
    if ident and str(ident).isdigit():
        stmt = stmt.where(Workspace.id == int(ident))
    elif obj.get("object") == "subscription" and obj.get("id"):
        stmt = stmt.where(Workspace.platform_subscription_id == obj["id"])
    elif obj.get("customer"):
        stmt = stmt.where(Workspace.platform_customer_id == obj["customer"])
    else:
        return None
    # Locked: two webhooks for one workspace apply one after the other.
    return session.scalars(stmt.with_for_update()).first()


def _plan_of_subscription(obj: dict[str, Any]) -> Plan | None:
    """The plan a subscription object grants now (None: no change to make)."""
    status = obj.get("status")
    if status in _PENDING:
        return None
    if status not in _GRANTING:
        return Plan.FREE
    best: Plan | None = None
    for item in (obj.get("items") or {}).get("data") or []:
        plan = PLAN_BY_LOOKUP_KEY.get((item.get("price") or {}).get("lookup_key") or "")
        if plan is not None and (best is None or tiers.RANK[plan] > tiers.RANK[best]):
            best = plan
    return best


def apply_plan(
    session: Session, workspace: Workspace, plan: Plan, *, at: dt.datetime, source: str
) -> bool:
    """Set the plan if ``at`` is newer than the last change; True when it changed anything."""
    last = workspace.plan_changed_at
    if last is not None and last.tzinfo is None:
        last = last.replace(tzinfo=dt.UTC)
    # Equal times: a cancellation wins (Stripe stamps a deletion and its update alike).
    if last is not None and (at < last or (at == last and plan is not Plan.FREE)):
        return False
    previous = workspace.plan
    workspace.plan_changed_at = at
    if previous is plan:
        return False
    workspace.plan = plan
    audit.record(
        session,
        actor="sidecar",
        action="plan.change",
        target=f"workspace:{workspace.id}",
        workspace_id=workspace.id,
        details={"from": previous.value, "to": plan.value, "source": source},
    )
    if tiers.RANK[plan] < tiers.RANK[previous]:
        deactivate_over_plan(session, workspace)
    return True


def deactivate_over_plan(session: Session, workspace: Workspace) -> list[str]:
    """Switch off the integrations the workspace's plan no longer includes (kept, with the
    reason on the tile), and on Pro all but the longest-connected payment provider."""
    rows = session.scalars(
        select(Integration)
        .where(
            Integration.workspace_id == workspace.id,
            Integration.status != IntegrationStatus.INACTIVE,
        )
        .order_by(Integration.connected_at, Integration.id)
    ).all()
    switched: list[str] = []
    kept_payment: str | None = None
    for row in rows:
        try:
            info = catalog.provider(row.provider).info
        except NotFound:
            continue
        reason: str | None = None
        if not tiers.plan_allows(workspace.plan, info):
            reason = tiers.inactive_reason(info, workspace.plan)
        elif info.payment_provider and tiers.payment_limit(workspace.plan) is not None:
            if kept_payment is None:
                kept_payment = info.name
            else:
                reason = (
                    f"Inactive: the {workspace.plan.value.title()} plan allows one payment "
                    f"provider, and {kept_payment} stays connected."
                )
        if reason is not None:
            # Switched off, it no longer holds its account: another workspace may connect it.
            release_account(row)
            row.status = IntegrationStatus.INACTIVE
            row.last_error = reason
            switched.append(row.provider)
    if switched:
        audit.record(
            session,
            actor="sidecar",
            action="integration.deactivate",
            target=f"workspace:{workspace.id}",
            workspace_id=workspace.id,
            details={"providers": switched, "plan": workspace.plan.value},
        )
    return switched


def checkout_completed(session: Session, event: InboundEvent) -> None:
    obj = event.payload["data"]["object"]
    if obj.get("mode") != "subscription":
        return
    workspace = _workspace_for(session, obj)
    if workspace is None:
        return
    workspace.platform_customer_id = obj.get("customer") or workspace.platform_customer_id
    workspace.platform_subscription_id = (
        obj.get("subscription") or workspace.platform_subscription_id
    )
    raw_plan = (obj.get("metadata") or {}).get("plan")
    if raw_plan in (Plan.PRO.value, Plan.BUSINESS.value) and obj.get("payment_status") == "paid":
        apply_plan(session, workspace, Plan(raw_plan), at=_created(event), source=event.event_type)


def subscription_changed(session: Session, event: InboundEvent) -> None:
    obj = event.payload["data"]["object"]
    workspace = _workspace_for(session, obj)
    if workspace is None:
        return
    if event.event_type == "customer.subscription.deleted":
        plan: Plan | None = Plan.FREE
    else:
        plan = _plan_of_subscription(obj)
    if workspace.platform_subscription_id not in (None, obj.get("id")) and plan is Plan.FREE:
        # The end of a subscription the workspace has since replaced takes nothing away.
        return
    workspace.platform_customer_id = obj.get("customer") or workspace.platform_customer_id
    if plan is not Plan.FREE:
        workspace.platform_subscription_id = obj.get("id") or workspace.platform_subscription_id
    if plan is not None:
        apply_plan(session, workspace, plan, at=_created(event), source=event.event_type)
