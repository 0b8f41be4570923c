"""A workspace with a lead and proposal templates, and signed links to them (tests of
``/x/{token}`` and of backend/email/links.py)."""

from __future__ import annotations

import time
from dataclasses import dataclass

from itsdangerous import TimestampSigner, URLSafeTimedSerializer
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from backend.config import get_settings
from backend.email import links
from models import EmailSuppression, Lead, ProposalTemplate
from tests import factories

PROPOSAL_BODY = "Two cameras, edited film within two weeks."
# Another published template: the business's other offer, marketing on a proposal's page.
OFFER_TITLE = "Spring portrait special"


@dataclass(frozen=True)
class Made:
    workspace_id: int
    lead_id: int
    template_id: int
    email: str

    def link(self, **changes: int) -> links.Link:
        values = {
            "workspace_id": self.workspace_id,
            "kind": "proposal",
            "subject_type": "lead",
            "subject_id": self.lead_id,
            "target_id": self.template_id,
            "message_id": None,
        }
        return links.Link(**{**values, **changes})  # type: ignore[arg-type]

    def token(self, **changes: int) -> str:
        return links.token_for(self.link(**changes))


def make(
    engine: Engine,
    *,
    slug: str = "acme",
    consent: bool = True,
    email: str = "jane@example.com",
    suppressed: tuple[str, ...] = (),
) -> Made:
    with Session(engine) as session:
        ws = factories.workspace(session, slug=slug)
        lead = Lead(workspace_id=ws.id, email=email, name="Jane Doe", marketing_consent=consent)
        template = ProposalTemplate(
            workspace_id=ws.id,
            title=f"Recital media package ({slug})",
            service_type="recital media",
            body=PROPOSAL_BODY,
            published=True,
        )
        offer = ProposalTemplate(
            workspace_id=ws.id,
            title=OFFER_TITLE,
            service_type="portraits",
            body="Studio portraits at half price until May.",
            published=True,
        )
        session.add_all([lead, template, offer])
        session.add_all(
            EmailSuppression(workspace_id=ws.id, email=email, purpose_group=g, reason="test")
            for g in suppressed
        )
        session.commit()
        return Made(ws.id, lead.id, template.id, email)


def signed_ago(link: links.Link, seconds: int) -> str:
    """The link's token as if signed ``seconds`` ago (itsdangerous's own timestamp)."""

    class Past(TimestampSigner):
        def get_timestamp(self) -> int:
            return int(time.time()) - seconds

    secret = get_settings().secret_key.get_secret_value()
    return URLSafeTimedSerializer(secret, salt=links.SALT, signer=Past).dumps(link.payload())


def tampered(token: str) -> str:
    """The token with its signature's first character changed.

    Not the last: base64 of a 20-byte signature ends in a character whose low bits are padding,
    so "A" and "B" there decode to the same bytes and the "tampered" token would still verify."""
    head, signature = token.rsplit(".", 1)
    first = "A" if signature[0] != "A" else "B"
    return f"{head}.{first}{signature[1:]}"
