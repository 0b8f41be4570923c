"""Every purpose the hub mails for, with its group: ``transactional`` mail (a receipt, a
contract, an alert) goes whatever the person unsubscribed from; ``marketing`` and ``reminders``
stop when they unsubscribe from that group. Also each purpose's sample data, for the console's
preview and the template tests.

Tested in tests/email/test_render.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

TRANSACTIONAL = "transactional"
MARKETING = "marketing"
REMINDERS = "reminders"
# Suppressed for every purpose (a hard bounce, a spam report).
ALL = "all"
OPTIONAL_GROUPS = (MARKETING, REMINDERS)
GROUP_LABELS = {
    TRANSACTIONAL: "receipts, contracts and alerts",
    MARKETING: "offers and proposals",
    REMINDERS: "reminders",
}


@dataclass(frozen=True)
class Purpose:
    name: str
    group: str
    label: str
    sample: dict[str, Any] = field(default_factory=dict)

    @property
    def transactional(self) -> bool:
        return self.group == TRANSACTIONAL


_BUSINESS = {"business_name": "Lakeside Media", "recipient_name": "Jane Doe"}
_LINK = "https://pay.example/i/INV-0042"

PURPOSES: dict[str, Purpose] = {
    p.name: p
    for p in (
        Purpose(
            "new_lead_notification",
            TRANSACTIONAL,
            "New lead (to the team)",
            {
                **_BUSINESS,
                "recipient_name": "Sam",
                "lead_name": "Jane Doe",
                "lead_email": "jane@example.com",
                "service_type": "recital media",
                "message": "Could you film our <spring> recital on May 3?",
                "lead_url": "https://console.example/leads/17",
            },
        ),
        Purpose(
            "proposal_sent",
            MARKETING,
            "Proposal",
            {
                **_BUSINESS,
                "proposal_title": "Recital media package",
                "proposal_body": "Two cameras, edited film within two weeks.",
                "proposal_url": "https://console.example/p/abc",
            },
        ),
        Purpose(
            "proposal_reminder",
            REMINDERS,
            "Proposal reminder",
            {
                **_BUSINESS,
                "proposal_title": "Recital media package",
                "proposal_url": "https://console.example/p/abc",
            },
        ),
        Purpose(
            # A follow-up step of a sequence (backend/email/sequences/): marketing, so it
            # goes only to a lead who gave marketing consent.
            "sequence_followup",
            MARKETING,
            "Sequence follow-up",
            {
                **_BUSINESS,
                "service_type": "recital media",
                "contact_url": "https://hub.example/forms/lakeside",
            },
        ),
        Purpose(
            "contract_sent",
            TRANSACTIONAL,
            "Contract to sign",
            {**_BUSINESS, "contract_title": "Recital media", "contract_url": _LINK},
        ),
        Purpose(
            "payment_request",
            TRANSACTIONAL,
            "Payment request",
            {**_BUSINESS, "amount": "$450.00", "due_date": "May 1, 2027", "payment_url": _LINK},
        ),
        Purpose(
            "payment_reminder",
            REMINDERS,
            "Payment reminder",
            {**_BUSINESS, "amount": "$450.00", "due_date": "May 1, 2027", "payment_url": _LINK},
        ),
        Purpose(
            "payment_received",
            TRANSACTIONAL,
            "Payment received",
            {**_BUSINESS, "amount": "$450.00", "paid_on": "April 20, 2027"},
        ),
        Purpose(
            "payment_failed",
            TRANSACTIONAL,
            "Payment failed",
            {**_BUSINESS, "amount": "$450.00", "payment_url": _LINK},
        ),
        Purpose(
            "contract_confirmed",
            TRANSACTIONAL,
            "Contract confirmed",
            {**_BUSINESS, "contract_title": "Recital media", "event_date": "May 3, 2027"},
        ),
        Purpose(
            "questionnaire_sent",
            TRANSACTIONAL,
            "Questionnaire",
            {**_BUSINESS, "questionnaire_url": "https://forms.example/q/abc"},
        ),
        Purpose(
            "invoice_link",
            TRANSACTIONAL,
            "Invoice link (show buyer)",
            {
                **_BUSINESS,
                "recipient_name": "vintage_val",
                "show_title": "Sunday vintage live",
                "amount": "$38.00",
                "invoice_url": _LINK,
            },
        ),
        Purpose(
            # Asked for on an expired link's page (backend/email/links.py): an answer to the
            # person's own request, so it goes whatever they unsubscribed from.
            "fresh_link",
            TRANSACTIONAL,
            "Fresh link (asked for)",
            {
                **_BUSINESS,
                "link_title": "Recital media package",
                "link_url": "https://hub.example/x/preview",
                "valid_days": 30,
            },
        ),
        Purpose(
            "alert_notification",
            TRANSACTIONAL,
            "Alert (to the team)",
            {
                **_BUSINESS,
                "recipient_name": "Sam",
                "alert_text": "Stripe's breaker is open: calls are failing.",
                "alert_url": "https://console.example/health",
            },
        ),
    )
}


def purpose(name: str) -> Purpose:
    try:
        return PURPOSES[name]
    except KeyError:
        raise ValueError(
            f"unknown e-mail purpose {name!r}; add it to backend/email/purposes.py"
        ) from None


def groups_blocking(purpose_name: str) -> tuple[str, ...]:
    """The suppression groups that stop mail of this purpose: ``all`` always, and the
    purpose's own group unless it is transactional."""
    group = purpose(purpose_name).group
    return (ALL,) if group == TRANSACTIONAL else (ALL, group)


def unsubscribe_groups(purpose_name: str) -> tuple[str, ...]:
    """What the link in a message of this purpose unsubscribes from: its group, or, from a
    transactional message (which cannot be refused), every optional group."""
    group = purpose(purpose_name).group
    return OPTIONAL_GROUPS if group == TRANSACTIONAL else (group,)
