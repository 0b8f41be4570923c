"""Concurrent inquiries from one address (8 at once, in threads) make one lead counting 8."""

from __future__ import annotations

import threading

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from backend.leads import capture
from models import Alert, EmailMessage, Lead, LeadMessage, Workspace
from tests import factories


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
                workspace = session.get_one(Workspace, ws)
                capture.capture(
                    session,
                    workspace,
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
        assert len(session.scalars(select(Alert)).all()) == 1
        assert session.scalars(select(EmailMessage)).all() == []  # no owners, no template
