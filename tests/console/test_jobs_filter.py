"""The Jobs page filtered to a provider (and a kind), as the Health page's links open it: the
queue, running, waiting and dead jobs of that provider only; waiting includes jobs never tried
(behind an open breaker most were not)."""

from __future__ import annotations

from sqlalchemy.orm import Session

from backend.platform.outbox_views import JobFilter
from console.state.jobs import read_snapshot
from models import JobStatus, OutboxJob
from tests import factories


def _job(
    session: Session, ws: int, kind: str, provider: str, status: JobStatus, tries: int
) -> None:
    session.add(
        OutboxJob(
            workspace_id=ws,
            kind=kind,
            provider=provider,
            payload={},
            idempotency_key=f"{kind}:{status}:{tries}:{provider}",
            status=status,
            attempts=tries,
        )
    )


def test_the_jobs_page_filtered_to_a_provider_and_a_kind(session: Session) -> None:
    ws = factories.workspace(session).id
    _job(session, ws, "stripe.create_invoice", "stripe", JobStatus.PENDING, 0)
    _job(session, ws, "stripe.create_invoice", "stripe", JobStatus.PENDING, 2)
    _job(session, ws, "stripe.void_invoice", "stripe", JobStatus.DEAD, 6)
    _job(session, ws, "alerts.email", "sendgrid", JobStatus.PENDING, 1)
    session.flush()

    every = read_snapshot(session, ws)
    # Unfiltered, "waiting to retry" is what failed at least once.
    assert sorted(j["kind"] for j in every.waiting) == ["alerts.email", "stripe.create_invoice"]

    stripe = read_snapshot(session, ws, only=JobFilter("stripe"))
    assert sorted(j["attempts"] for j in stripe.waiting) == ["0 of 6", "2 of 6"]
    assert {d["kind"] for d in stripe.depth} == {"stripe.create_invoice", "stripe.void_invoice"}
    assert [j["kind"] for j in stripe.dead] == ["stripe.void_invoice"]

    email = read_snapshot(session, ws, only=JobFilter("sendgrid", "alerts.email"))
    assert [j["kind"] for j in email.waiting] == ["alerts.email"] and email.dead == []
