"""Concurrent inquiries from one address (8 at once, in threads) make one lead counting 8, and
one ``lead.announce`` job, which raises one alert."""

from __future__ import annotations

import threading

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from backend.leads import capture
from models import Alert, EmailMessage, Lead, LeadMessage, OutboxJob
from tests import factories
from tests.email.support import drain


def test_eight_at_once_make_one_lead(engine: Engine) -> None:
    with Session(engine) as session:
        ws = factories.workspace(session).id
        session.commit()
    start = threading.Barrier(8)
    failures: list[BaseException] = []

    def submit(n: int) -> None:
        try:
            start.wait(timeout=30)
            with Session(engine) as session:
                capture.capture(
                    session,
                    ws,
                    capture.Inquiry(name="Jane Doe", email="JANE@example.com ", message=f"#{n}"),
                )
                session.commit()
        except BaseException as error:  # reported below
            failures.append(error)

    threads = [threading.Thread(target=submit, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    with Session(engine) as session:
        (lead,) = session.scalars(select(Lead)).all()
        assert (lead.email, lead.inquiries) == ("jane@example.com", 8)
        assert len(session.scalars(select(LeadMessage)).all()) == 8
        # Only the inserting transaction announces: one job, run after the answer.
        (job,) = session.scalars(select(OutboxJob)).all()
        assert (job.kind, job.idempotency_key) == ("lead.announce", f"lead:{lead.id}:announce")
        assert session.scalars(select(Alert)).all() == []
    assert drain(engine, provider_jobs=False) == []
    with Session(engine) as session:
        (alert,) = session.scalars(select(Alert)).all()
        assert alert.message == "New lead: Jane Doe"
        assert session.scalars(select(EmailMessage)).all() == []  # no owners, no template
