"""Migration 0010 turns alerts into incidents: existing alerts are kept with their entity as the
grouping key, duplicates of an open one fold into the oldest, and the database then refuses a
second unresolved incident of a (workspace, rule, entity)."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import IntegrityError

from tests.support.migrate import downgrade, upgrade

NOW = "2026-12-01 10:00:00.000000"


def _alert(conn: object, id_: int, state: str, entity: str | None) -> None:
    conn.execute(  # type: ignore[attr-defined]
        text(
            "INSERT INTO alerts (id, workspace_id, type, priority, message, entity_type, "
            "entity_id, state, created_at) VALUES (:id, 1, 'job.dead', 'high', 'm', :et, :ei, "
            ":state, :now)"
        ),
        {"id": id_, "state": state, "et": entity and "outbox_job", "ei": entity, "now": NOW},
    )


def test_alerts_are_carried_over_as_incidents(engine: Engine) -> None:
    downgrade(engine, "0009")
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO workspaces (id, name, slug, plan, created_at, locale, currency) "
                "VALUES (1, 'a', 'a', 'pro', :now, 'en_US', 'usd')"
            ),
            {"now": NOW},
        )
        _alert(conn, 1, "open", "7")
        _alert(conn, 2, "open", "7")  # the old add() made duplicates: folded
        _alert(conn, 3, "resolved", "7")
        _alert(conn, 4, "acknowledged", None)
    upgrade(engine)
    with engine.begin() as conn:
        rows = conn.execute(
            text("SELECT id, state, entity_key, count FROM alerts ORDER BY id")
        ).all()
        assert [tuple(r) for r in rows] == [
            (1, "open", "outbox_job:7", 1),
            (3, "resolved", "outbox_job:7", 1),
            (4, "acknowledged", "", 1),
        ]
        # A new row gets an id after the kept ones (PostgreSQL's sequence was moved on).
        conn.execute(
            text(
                "INSERT INTO alerts (workspace_id, type, priority, message, state, created_at, "
                "entity_key, first_seen_at, last_seen_at, count, ignored_for_ever, regressed, "
                "notified_count) VALUES (1, 'x', 'normal', 'm', 'snoozed', :now, '', :now, "
                ":now, 1, false, false, 0)"
            ),
            {"now": NOW},
        )
    with pytest.raises(IntegrityError), engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO alerts (workspace_id, type, priority, message, state, created_at, "
                "entity_key, first_seen_at, last_seen_at, count, ignored_for_ever, regressed, "
                "notified_count) VALUES (1, 'job.dead', 'high', 'm', 'ignored', :now, "
                "'outbox_job:7', :now, :now, 1, false, false, 0)"
            ),
            {"now": NOW},
        )
    downgrade(engine, "0009")  # and back: snoozed reads as acknowledged
    with engine.begin() as conn:
        states = conn.execute(text("SELECT state FROM alerts ORDER BY id")).scalars().all()
    assert states == ["open", "resolved", "acknowledged", "acknowledged"]
    upgrade(engine)
