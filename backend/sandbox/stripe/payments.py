"""Payment intents, charges, refunds and disputes: what paying an invoice or a checkout does, and
what a customer's bank can do afterwards.

Tested in tests/sandbox/test_stripe.py and tests/sandbox/test_stripe_fidelity.py (through the
official stripe SDK)."""

from __future__ import annotations

from typing import Any

from backend.sandbox.store import new_id, now
from backend.sandbox.stripe.core import StripeError, get
from backend.sandbox.stripe.formdata import as_bool, as_int
from backend.sandbox.stripe.objects import fixtures, shape, update
from backend.sandbox.stripe.op import Op, metadata, paginate

# Test cards, by the PaymentMethod ids Stripe's docs give for them.
FAILING_PAYMENT_METHODS = {
    "pm_card_chargeDeclined",
    "pm_card_visa_chargeDeclined",
    "pm_card_chargeDeclinedInsufficientFunds",
}


def _card_details() -> dict[str, Any]:
    return {
        "type": "card",
        "card": {
            "brand": "visa",
            "last4": "4242",
            "exp_month": 12,
            "exp_year": 2030,
            "country": "US",
            "funding": "credit",
        },
    }


def new_charge(op: Op, intent: dict[str, Any], *, succeeded: bool) -> dict[str, Any]:
    charge = shape(
        "charge",
        id=new_id("ch_", 24),
        amount=intent["amount"],
        amount_captured=intent["amount"] if succeeded else 0,
        amount_refunded=0,
        captured=succeeded,
        paid=succeeded,
        refunded=False,
        disputed=False,
        created=now(),
        currency=intent["currency"],
        customer=intent["customer"],
        payment_intent=intent["id"],
        description=intent["description"],
        metadata=dict(intent["metadata"]),
        status="succeeded" if succeeded else "failed",
        failure_code=None if succeeded else "card_declined",
        failure_message=None if succeeded else "Your card was declined.",
        payment_method=intent["payment_method"],
        payment_method_details=_card_details(),
        receipt_url=f"{op.ctx.public_url}/stripe/_pages/receipt/{op.account}/{intent['id']}",
        outcome={
            "network_status": "approved_by_network" if succeeded else "declined_by_network",
            "reason": None if succeeded else "generic_decline",
            "risk_level": "normal",
            "seller_message": "Payment complete." if succeeded else "The bank declined.",
            "type": "authorized" if succeeded else "issuer_declined",
        },
        billing_details=fixtures()["charge"]["billing_details"] | {"name": None},
        fraud_details={},
    )
    op.table("charge")[charge["id"]] = charge
    return charge


def new_intent(
    op: Op, amount: int, currency: str, customer: str | None, extra: dict[str, Any] | None = None
) -> dict[str, Any]:
    extra = extra or {}
    intent_id = new_id("pi_", 24)
    intent = shape(
        "payment_intent",
        id=intent_id,
        amount=amount,
        currency=currency.lower(),
        customer=customer,
        description=extra.get("description"),
        metadata=dict(extra.get("metadata") or {}),
        created=now(),
        status="requires_payment_method",
        amount_capturable=0,
        amount_received=0,
        capture_method="automatic",
        confirmation_method="automatic",
        client_secret=f"{intent_id}_secret_{new_id('', 25)}",
        payment_method_types=list(extra.get("payment_method_types") or ["card"]),
        receipt_email=extra.get("receipt_email"),
    )
    op.table("payment_intent")[intent_id] = intent
    return intent


def settle_intent(op: Op, intent: dict[str, Any], payment_method: str) -> dict[str, Any]:
    """Charge the card; returns the charge. A declined card leaves the intent retryable."""
    succeeded = payment_method not in FAILING_PAYMENT_METHODS
    intent["payment_method"] = payment_method
    charge = new_charge(op, intent, succeeded=succeeded)
    intent["latest_charge"] = charge["id"]
    if succeeded:
        update(
            intent, status="succeeded", amount_received=intent["amount"], last_payment_error=None
        )
        op.emit("charge.succeeded", charge)
        op.emit("payment_intent.succeeded", intent)
    else:
        update(
            intent,
            status="requires_payment_method",
            last_payment_error={
                "type": "card_error",
                "code": "card_declined",
                "decline_code": "generic_decline",
                "message": "Your card was declined.",
                "charge": charge["id"],
            },
        )
        op.emit("charge.failed", charge)
        op.emit("payment_intent.payment_failed", intent)
    return charge


def card_declined(intent: dict[str, Any], charge: dict[str, Any]) -> StripeError:
    return StripeError(
        402,
        "Your card was declined.",
        type="card_error",
        code="card_declined",
        extra={"decline_code": "generic_decline", "charge": charge["id"], "payment_intent": intent},
    )


def create_payment_intent(op: Op) -> dict[str, Any]:
    amount = as_int(op.require("amount")) or 0
    if amount < 50:
        raise StripeError(
            400, "Amount must be at least $0.50 usd", code="amount_too_small", param="amount"
        )
    customer = op.params.get("customer")
    if customer:
        get(op.s, op.account, "customer", customer, "customer")
    intent = new_intent(op, amount, op.require("currency"), customer, op.params)
    op.emit("payment_intent.created", intent)
    if op.params.get("payment_method"):
        intent.update(status="requires_confirmation", payment_method=op.params["payment_method"])
    if as_bool(op.params.get("confirm")):
        return _confirm(op, intent)
    return intent


def _confirm(op: Op, intent: dict[str, Any]) -> dict[str, Any]:
    if intent["status"] == "succeeded":
        raise StripeError(
            400,
            "This PaymentIntent's payment_method could not be updated because "
            "it has a status of succeeded.",
            code="payment_intent_unexpected_state",
        )
    method = op.params.get("payment_method") or intent["payment_method"]
    if not method:
        raise StripeError(
            400,
            "You cannot confirm this PaymentIntent because it's missing a payment method.",
            code="payment_intent_unexpected_state",
        )
    charge = settle_intent(op, intent, method)
    if intent["status"] != "succeeded":
        raise card_declined(intent, charge)
    return intent


def confirm_payment_intent(op: Op) -> dict[str, Any]:
    return _confirm(op, get(op.s, op.account, "payment_intent", op.path["id"]))


def retrieve_payment_intent(op: Op) -> dict[str, Any]:
    return get(op.s, op.account, "payment_intent", op.path["id"])


def retrieve_charge(op: Op) -> dict[str, Any]:
    return get(op.s, op.account, "charge", op.path["id"])


def list_charges(op: Op) -> dict[str, Any]:
    items = list(op.table("charge").values())
    if customer := op.params.get("customer"):
        items = [c for c in items if c["customer"] == customer]
    if intent := op.params.get("payment_intent"):
        items = [c for c in items if c["payment_intent"] == intent]
    return paginate(op, items, "/v1/charges")


def create_refund(op: Op) -> dict[str, Any]:
    if charge_id := op.params.get("charge"):
        charge = get(op.s, op.account, "charge", charge_id, "charge")
    elif intent_id := op.params.get("payment_intent"):
        intent = get(op.s, op.account, "payment_intent", intent_id, "payment_intent")
        if not intent["latest_charge"]:
            raise StripeError(
                400,
                f"PaymentIntent {intent_id} has no successful charge to refund.",
                param="payment_intent",
            )
        charge = get(op.s, op.account, "charge", intent["latest_charge"])
    else:
        raise StripeError(
            400,
            "One of `charge` or `payment_intent` is required.",
            code="parameter_missing",
            param="charge",
        )
    remaining = charge["amount_captured"] - charge["amount_refunded"]
    amount = as_int(op.params.get("amount"), remaining) or 0
    if charge["status"] != "succeeded" or amount <= 0 or amount > remaining:
        raise StripeError(
            400,
            f"Refund amount ({amount}) is greater than unrefunded amount on charge ({remaining})",
            code="amount_too_large",
            param="amount",
        )
    refund = shape(
        "refund",
        id=new_id("re_", 24),
        amount=amount,
        charge=charge["id"],
        created=now(),
        currency=charge["currency"],
        payment_intent=charge["payment_intent"],
        reason=op.params.get("reason"),
        status="succeeded",
        metadata=metadata(op),
        customer=charge["customer"],
    )
    op.table("refund")[refund["id"]] = refund
    previous = {"amount_refunded": charge["amount_refunded"], "refunded": charge["refunded"]}
    charge["amount_refunded"] += amount
    charge["refunded"] = charge["amount_refunded"] >= charge["amount_captured"]
    op.emit("refund.created", refund)
    op.emit("charge.refunded", charge, previous)
    return refund


def open_dispute(op: Op, charge_id: str, reason: str = "fraudulent") -> dict[str, Any]:
    charge = get(op.s, op.account, "charge", charge_id, "charge")
    if charge["status"] != "succeeded":
        raise StripeError(400, f"Charge {charge_id} did not succeed; there is nothing to dispute.")
    dispute = shape(
        "dispute",
        id=new_id("dp_", 24),
        amount=charge["amount"],
        charge=charge["id"],
        created=now(),
        currency=charge["currency"],
        payment_intent=charge["payment_intent"],
        reason=reason,
        status="needs_response",
        is_charge_refundable=False,
        metadata={},
        evidence=fixtures()["dispute"]["evidence"],
        evidence_details={
            "due_by": now() + 7 * 86400,
            "has_evidence": False,
            "past_due": False,
            "submission_count": 0,
            "enhanced_eligibility": {},
        },
    )
    op.table("dispute")[dispute["id"]] = dispute
    charge["disputed"] = True
    op.emit("charge.dispute.created", dispute)
    return dispute


def retrieve_dispute(op: Op) -> dict[str, Any]:
    return get(op.s, op.account, "dispute", op.path["id"])


def list_disputes(op: Op) -> dict[str, Any]:
    return paginate(op, list(op.table("dispute").values()), "/v1/disputes")
