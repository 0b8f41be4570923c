"""An operator finds a dead job with its last error, previews and replays it, and pauses a kind;
a viewer sees the same page but cannot change it."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import select
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
    log_in(page, "ops@lakeside.example", demo.DEMO_PASSWORD)
    page.get_by_test_id("nav-jobs").click()
    row = (
        page.get_by_test_id("kinds-table")
        .get_by_role("row")
        .filter(has_text="stripe.sync_customer")
    )
    row.get_by_role("button", name="Pause").click()
    expect(row).to_contain_text("yes")
    with Session(console.engine) as session:
        assert session.get(JobKindPause, "stripe.sync_customer") is not None
    row.get_by_role("button", name="Resume").click()
    expect(row).to_contain_text("no")


def test_viewer_cannot_replay_or_pause(page: Page, console: Console) -> None:
    _dead_job(console)
    log_in(page, "books@lakeside.example", demo.DEMO_PASSWORD)
    page.get_by_test_id("nav-jobs").click()
    expect(
        page.get_by_test_id("dead-table").get_by_role("button", name="Replay").first
    ).to_be_disabled()
    expect(page.get_by_test_id("kinds-table").get_by_role("button").first).to_be_disabled()
