"""An operator finds a dead job with its last error, previews and replays it, and pauses a kind
for their workspace (a platform pause shows, but is not theirs to lift); a viewer sees the same
page but cannot change it."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from backend.demo import seed as demo
from models import JobKindPause, JobStatus, OutboxJob, Workspace, utcnow
from tests.e2e.conftest import Console, log_in

pytestmark = pytest.mark.e2e


def _dead_job(console: Console) -> int:
    with Session(console.engine) as session:
        workspace = session.scalars(
            select(Workspace).where(Workspace.slug == demo.LIVE_SELLER)
        ).one()
        job = OutboxJob(
            workspace_id=workspace.id,
            kind="inbox.process",
            provider=None,
            payload={"inbound_id": 0},
            idempotency_key=f"e2e-dead-{utcnow()}",
            status=JobStatus.DEAD,
            attempts=8,
            max_attempts=8,
            last_error="RuntimeError: stripe invoice.paid handler failed: boom",
            finished_at=utcnow(),
        )
        session.add(job)
        session.commit()
        return job.id


def _status(console: Console, job_id: int) -> JobStatus:
    with Session(console.engine) as session:
        return session.get_one(OutboxJob, job_id).status


def test_operator_replays_a_dead_job_after_a_preview(page: Page, console: Console) -> None:
    job_id = _dead_job(console)
    log_in(page, "ops@lakeside.example", demo.DEMO_PASSWORD)
    page.get_by_test_id("nav-jobs").click()
    dead = page.get_by_test_id("dead-table")
    expect(dead).to_contain_text("handler failed: boom")
    expect(dead).to_contain_text("8 of 8")

    # Nothing to preview until a kind is chosen: the form says so instead of "Replay 0".
    expect(page.get_by_test_id("replay-preview")).to_be_disabled()
    expect(page.get_by_text("Choose a kind first.")).to_be_visible()
    expect(page.get_by_role("button", name=re.compile(r"Replay \d+ job"))).to_have_count(0)

    page.get_by_test_id("replay-kind").click()
    page.get_by_role("option", name="inbox.process").click()
    page.get_by_role("button", name="Preview").click()
    expect(page.get_by_text("Choose a kind first.")).to_have_count(0)
    replay = page.get_by_role("button", name="Replay 1 job(s)")
    expect(replay).to_be_visible()
    replay.click()
    expect(page.get_by_test_id("dead-table-empty")).to_be_visible()
    assert _status(console, job_id) in (JobStatus.PENDING, JobStatus.RUNNING, JobStatus.DONE)


def test_operator_pauses_and_resumes_a_kind(page: Page, console: Console) -> None:
    """For this workspace only; a platform pause shows as such, with nothing to press."""
    log_in(page, "ops@lakeside.example", demo.DEMO_PASSWORD)
    page.get_by_test_id("nav-jobs").click()
    row = (
        page.get_by_test_id("kinds-table")
        .get_by_role("row")
        .filter(has_text="stripe.sync_customer")
    )
    row.get_by_role("button", name="Pause").click()
    expect(row).to_contain_text("paused in this workspace")
    with Session(console.engine) as session:
        paused = session.scalars(
            select(Workspace.slug)
            .join(JobKindPause, JobKindPause.workspace_id == Workspace.id)
            .where(JobKindPause.kind == "stripe.sync_customer")
        ).all()
        assert paused == [demo.LIVE_SELLER]
    row.get_by_role("button", name="Resume").click()
    expect(row).to_contain_text("no")
    with Session(console.engine) as session:
        # What `python -m backend.cli outbox pause stripe.sync_customer` writes.
        session.add(JobKindPause(workspace_id=None, kind="stripe.sync_customer", paused_by="cli"))
        session.commit()
    try:
        page.reload()
        expect(row).to_contain_text("paused by the platform")
        expect(row.get_by_test_id("platform-paused")).to_be_visible()
        expect(row.get_by_role("button")).to_have_count(0)
    finally:
        with Session(console.engine) as session:
            session.execute(delete(JobKindPause).where(JobKindPause.workspace_id.is_(None)))
            session.commit()


def test_viewer_cannot_replay_or_pause(page: Page, console: Console) -> None:
    _dead_job(console)
    log_in(page, "books@lakeside.example", demo.DEMO_PASSWORD)
    page.get_by_test_id("nav-jobs").click()
    expect(
        page.get_by_test_id("dead-table").get_by_role("button", name="Replay").first
    ).to_be_disabled()
    expect(page.get_by_test_id("kinds-table").get_by_role("button").first).to_be_disabled()
