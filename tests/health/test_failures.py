"""A tile's recent failures: the workspace's failed calls to the provider over a short window,
grouped by error with counts, the most frequent first, read through a bounded index range."""

from __future__ import annotations

import datetime as dt

from sqlalchemy.orm import Session

from backend.health import failures
from models import utcnow
from tests import factories
from tests.support.calls import add_calls, call


def test_failures_are_grouped_by_error_with_counts(session: Session) -> None:
    ws, other = factories.workspace(session), factories.workspace(session, slug="other")
    now = utcnow()
    recent = now - dt.timedelta(minutes=5)
    add_calls(
        session,
        *(call(ws.id, "stripe", outcome="unavailable", at=recent) for _ in range(4)),
        *(
            call(
                ws.id,
                "stripe",
                outcome="timeout",
                at=recent,
                error="no answer in time (ReadTimeout)",
            )
            for _ in range(2)
        ),
        call(
            ws.id,
            "stripe",
            outcome="rejected",
            at=now - dt.timedelta(minutes=1),
            http_status=401,
            error="HTTP 401 Unauthorized",
        ),
        # Successes, another provider, another workspace and an old failure are not shown.
        *(call(ws.id, "stripe", at=recent) for _ in range(5)),
        call(ws.id, "sendgrid", outcome="unavailable", at=recent),
        call(other.id, "stripe", outcome="unavailable", at=recent, error="theirs"),
        call(ws.id, "stripe", outcome="unavailable", at=now - dt.timedelta(hours=3)),
    )
    found = failures.recent_failures(session, workspace_id=ws.id, provider="stripe", now=now)
    assert [(g.error, g.outcome, g.count) for g in found.groups] == [
        ("HTTP 503 Service Unavailable", "unavailable", 4),
        ("no answer in time (ReadTimeout)", "timeout", 2),
        ("HTTP 401 Unauthorized", "rejected", 1),
    ]
    assert found.total == 7 and not found.capped
    assert found.groups[2].last_at > found.groups[0].last_at


def test_only_the_latest_failures_are_read_and_the_page_says_so(session: Session) -> None:
    ws = factories.workspace(session)
    now = utcnow()
    add_calls(
        session,
        *(
            call(ws.id, "stripe", outcome="unavailable", at=now - dt.timedelta(minutes=30))
            for _ in range(6)
        ),
        *(
            call(ws.id, "stripe", outcome="timeout", error="slow", at=now - dt.timedelta(minutes=2))
            for _ in range(3)
        ),
    )
    found = failures.recent_failures(
        session, workspace_id=ws.id, provider="stripe", now=now, limit=5
    )
    assert found.capped and found.total == 5
    assert [(g.error, g.count) for g in found.groups] == [
        ("slow", 3),
        ("HTTP 503 Service Unavailable", 2),
    ]
