"""What waits on a provider, in the business's words: invoices counted per show, every other
kind as a whole, from one grouped query over the workspace's waiting jobs."""

from __future__ import annotations

import itertools

from sqlalchemy import select
from sqlalchemy.orm import Session

import backend.jobs  # noqa: F401  (declares the job kinds the outbox rows name)
from backend.email.service import SEND_KIND as EMAIL_SEND_KIND
from backend.health import impact
from backend.invoicing.checkout_links import SEND_KIND
from backend.invoicing.service import CREATE_KIND
from backend.platform import outbox
from models import Invoice, JobStatus, OutboxJob, Show, ShowStatus, Workspace
from tests import factories
from tests.support.shows import waiting_invoice_jobs

_n = itertools.count()


def _show(session: Session, ws: Workspace, title: str) -> Show:
    show = Show(workspace_id=ws.id, title=title, status=ShowStatus.ENDED, currency="usd")
    session.add(show)
    session.flush()
    return show


def _emails(session: Session, ws: Workspace, count: int) -> None:
    for _ in range(count):
        outbox.enqueue(
            session,
            kind=EMAIL_SEND_KIND,
            payload={"message_id": 1},
            idempotency_key=f"mail:{next(_n)}",
            workspace_id=ws.id,
        )


def test_invoices_are_counted_per_show_and_other_kinds_as_a_whole(session: Session) -> None:
    ws, other = factories.workspace(session), factories.workspace(session, slug="other")
    spring, autumn = _show(session, ws, "Spring Drop"), _show(session, ws, "Autumn Sale")
    waiting_invoice_jobs(session, spring, 5)
    waiting_invoice_jobs(session, autumn, 2)
    waiting_invoice_jobs(session, spring, 1, kind=SEND_KIND)
    _emails(session, ws, 3)
    # Another workspace's waiting invoices and a job that is done are not counted.
    waiting_invoice_jobs(session, _show(session, other, "Their show"), 4)
    waiting_invoice_jobs(session, spring, 1)
    done = session.scalars(select(OutboxJob).order_by(OutboxJob.id.desc()).limit(1)).one()
    done.status = JobStatus.DONE
    session.flush()

    found = impact.waiting_on(
        session, workspace_id=ws.id, providers=["stripe", "sendgrid", "messenger"]
    )
    assert impact.summary(found["stripe"]) == (
        "5 invoices of show Spring Drop, 2 invoices of show Autumn Sale"
    )
    assert [(w.show_id, w.count) for w in found["stripe"]] == [(spring.id, 5), (autumn.id, 2)]
    assert impact.summary(found["sendgrid"]) == "3 emails"
    assert impact.summary(found["messenger"]) == "1 checkout link of show Spring Drop"
    assert impact.waiting_on(session, workspace_id=other.id, providers=["sendgrid"]) == {}


def test_a_job_whose_payload_names_another_workspaces_invoice_has_no_show(
    session: Session,
) -> None:
    ws, other = factories.workspace(session), factories.workspace(session, slug="other")
    theirs = _show(session, other, "Their secret show")
    invoice = Invoice(
        workspace_id=other.id,
        show_id=theirs.id,
        provider="stripe",
        buyer_handle="x",
        buyer_platform_id="fb_x",
    )
    session.add(invoice)
    session.flush()
    outbox.enqueue(
        session,
        kind=CREATE_KIND,
        payload={"invoice_id": invoice.id},
        idempotency_key="crossed",
        workspace_id=ws.id,
    )
    [waiting] = impact.waiting_on(session, workspace_id=ws.id, providers=["stripe"])["stripe"]
    assert waiting.text == "1 invoice" and waiting.show_id is None


def test_nothing_is_asked_for_no_provider(session: Session) -> None:
    ws = factories.workspace(session)
    assert impact.waiting_on(session, workspace_id=ws.id, providers=[]) == {}
