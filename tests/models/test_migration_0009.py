"""Migration 0009 carries existing rows over: each pause becomes its maker's workspace's (or the
platform's when its maker is unknown), each stored webhook is given the integration of its
workspace and provider, so that a retry of an event stored before is still a duplicate, and
nothing that points at an integration is touched."""

from __future__ import annotations

from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from backend.platform import inbox
from tests.support.migrate import downgrade, upgrade

NOW = "2026-12-01 10:00:00.000000"


def _before(engine: Engine) -> None:
    """Rows as revision 0008 had them."""
    with engine.begin() as conn:
        for n, slug in ((1, "alpha"), (2, "beta")):
            conn.execute(
                text(
                    "INSERT INTO workspaces (id, name, slug, plan, created_at, locale, currency) "
                    "VALUES (:id, :slug, :slug, 'pro', :now, 'en_US', 'usd')"
                ),
                {"id": n, "slug": slug, "now": NOW},
            )
            conn.execute(
                text(
                    "INSERT INTO integrations (id, workspace_id, provider, status, display_name, "
                    "settings, created_at) VALUES (:id, :ws, 'stripe', 'active', 'Stripe', '{}', "
                    ":now)"
                ),
                {"id": 10 + n, "ws": n, "now": NOW},
            )
        # What points at an integration must survive the migration (a rebuild of the
        # integrations table on SQLite would fire these rows' ON DELETE actions).
        conn.execute(
            text(
                "INSERT INTO integration_logs (workspace_id, integration_id, provider, operation, "
                "status, at) VALUES (1, 11, 'stripe', 'test_connection', 'ok', :now)"
            ),
            {"now": NOW},
        )
        events = [
            ("stripe", "evt_alpha", 1),
            ("sendgrid", "sg_1", 2),  # beta has no SendGrid integration: none to give it
            ("stripe_platform", "evt_plan", None),
        ]
        for provider, external_id, workspace_id in events:
            conn.execute(
                text(
                    "INSERT INTO inbound_events (provider, external_id, event_type, "
                    "workspace_id, payload, status, received_at, attempts) VALUES (:p, :e, "
                    "'invoice.paid', :w, '{}', 'handled', :now, 1)"
                ),
                {"p": provider, "e": external_id, "w": workspace_id, "now": NOW},
            )
        for kind in ("stripe.sync_customer", "stripe.create_invoice"):
            conn.execute(
                text(
                    "INSERT INTO job_kind_pauses (kind, paused_at, paused_by) "
                    "VALUES (:kind, :now, 'operator:7')"
                ),
                {"kind": kind, "now": NOW},
            )
        # Only the first pause's maker is in the audit log (beta's operator).
        conn.execute(
            text(
                "INSERT INTO audit_log (workspace_id, actor, action, target, details, at) "
                "VALUES (2, 'operator:7', 'jobs.pause', 'kind:stripe.sync_customer', '{}', :now)"
            ),
            {"now": NOW},
        )


def test_existing_pauses_and_events_are_carried_over(engine: Engine) -> None:
    downgrade(engine, "0008")
    _before(engine)
    upgrade(engine)
    with engine.connect() as conn:
        pauses = conn.execute(
            text("SELECT kind, workspace_id FROM job_kind_pauses ORDER BY kind")
        ).all()
        events = conn.execute(
            text("SELECT external_id, integration_id FROM inbound_events ORDER BY external_id")
        ).all()
    assert [tuple(p) for p in pauses] == [
        ("stripe.create_invoice", None),  # maker unknown: still held for everyone
        ("stripe.sync_customer", 2),
    ]
    assert [tuple(e) for e in events] == [("evt_alpha", 11), ("evt_plan", None), ("sg_1", None)]
    with engine.connect() as conn:
        assert conn.execute(text("SELECT integration_id FROM integration_logs")).scalar() == 11
    # Stripe's retry of an event stored before the migration is still a duplicate; beta's
    # copy of it is not.
    with Session(engine) as session:
        again = dict(provider="stripe", external_id="evt_alpha", event_type="invoice.paid")
        assert not inbox.record(session, **again, workspace_id=1, integration_id=11, payload={})
        assert inbox.record(session, **again, workspace_id=2, integration_id=12, payload={})
        session.commit()
    downgrade(engine, "0008")  # and back, the second copy giving way to the old key
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM inbound_events")).scalar() == 3
        assert conn.execute(text("SELECT count(*) FROM job_kind_pauses")).scalar() == 2
        assert conn.execute(text("SELECT integration_id FROM integration_logs")).scalar() == 11
    upgrade(engine)
