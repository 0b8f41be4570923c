"""The send job through the real SendGrid SDK against the sandbox: each message lands once, with
its unsubscribe headers and only opaque ids in custom args; 2,500 recipients go in 3 requests;
an address twice goes in two; an unsubscribe after queueing still stops a message; SendGrid's
5xx is resent, and a timeout after the request left is never resent (docs/DESIGN.md)."""

from __future__ import annotations

import collections
import socket
import threading

import pytest
from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session

import backend.sandbox.sendgrid as sendgrid_emulator
from backend.email import send, service
from backend.integrations import call_log, sendgrid
from backend.integrations.errors import ProviderConnectionLost, ProviderUnavailable
from backend.jobs.runner import Runner
from models import EmailStatus, Integration, JobStatus, OutboxJob, utcnow
from tests.email.support import (
    SIDECAR,
    drain,
    mailbox,
    messages,
    queue,
    requests_made,
    sendgrid_sandbox,  # noqa: F401 (the "sandbox" fixture)
    workspace_with_sendgrid,
)
from tests.support.hub_env import apply
from tests.support.sandbox_fixtures import MakeSandbox, RunningSandbox


def _due_now(engine: Engine) -> None:
    """Let a job waiting out its backoff run now."""
    with Session(engine) as session:
        session.execute(
            update(OutboxJob)
            .where(OutboxJob.status == JobStatus.PENDING)
            .values(run_after=utcnow())
        )
        session.commit()


def test_each_message_lands_once_with_its_unsubscribe_headers(
    engine: Engine, sandbox: RunningSandbox
) -> None:
    ws = workspace_with_sendgrid(engine, sandbox)
    ids = queue(engine, ws, ["a@example.com", "b@example.com", "c@example.com"])
    assert drain(engine) == []
    assert requests_made(sandbox) == 1
    mailed = sorted(mailbox(sandbox), key=lambda m: m["to"]["email"])
    assert [m["to"]["email"] for m in mailed] == ["a@example.com", "b@example.com", "c@example.com"]
    for message_id, mail in zip(ids, mailed, strict=True):
        assert mail["custom_args"] == {
            "hub_message_id": str(message_id),
            "hub_workspace_id": str(ws),
        }
        headers = mail["headers"]
        assert headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert headers["List-Unsubscribe"].startswith(f"<{SIDECAR}/u/")
        link = headers["List-Unsubscribe"][1:-1]
        assert f'href="{link}"' in mail["html"]
        assert f"Unsubscribe: {link}" in mail["text"]
        assert mail["subject"] == "Payment of $450.00 due May 1"
        assert "%hub_" not in mail["html"] + mail["text"]
        assert mail["categories"] == ["payment_request"]
    rows = messages(engine, ws)
    assert {r.status for r in rows} == {EmailStatus.SENT}
    assert all(r.sendgrid_message_id == mailed[0]["x_message_id"] for r in rows)
    assert all(r.sent_at is not None for r in rows)
    # The request is in the call log, the workspace's, as every provider call is.
    (call,) = [c for c in call_log.BUFFER.take() if c.provider == "sendgrid"]
    assert (call.workspace_id, call.http_status, call.outcome) == (ws, 202, "ok")


def test_2500_recipients_go_in_three_requests_of_at_most_1000(
    engine: Engine, sandbox: RunningSandbox
) -> None:
    ws = workspace_with_sendgrid(engine, sandbox)
    queue(engine, ws, [f"person{n}@example.com" for n in range(2500)])
    assert drain(engine) == []
    assert requests_made(sandbox) == 3
    rows = messages(engine, ws)
    assert {r.status for r in rows} == {EmailStatus.SENT}
    by_request = collections.Counter(r.sendgrid_message_id for r in rows)
    assert sorted(by_request.values()) == [500, 1000, 1000]
    # The sandbox keeps its newest 2,000 messages: each of those arrived once.
    mailed = [m["custom_args"]["hub_message_id"] for m in mailbox(sandbox)]
    assert len(mailed) == len(set(mailed)) == 2000


def test_an_address_is_never_twice_in_one_request(engine: Engine, sandbox: RunningSandbox) -> None:
    ws = workspace_with_sendgrid(engine, sandbox)
    queue(engine, ws, ["a@example.com", "b@example.com", "A@example.com", "c@example.com"])
    assert drain(engine) == []
    assert requests_made(sandbox) == 2
    per_request: dict[str, list[str]] = collections.defaultdict(list)
    for mail in mailbox(sandbox):
        per_request[mail["x_message_id"]].append(mail["to"]["email"])
    assert sorted(sorted(v) for v in per_request.values()) == [
        ["a@example.com"],
        ["a@example.com", "b@example.com", "c@example.com"],
    ]


def test_an_unsubscribe_after_queueing_still_stops_the_message(
    engine: Engine, sandbox: RunningSandbox
) -> None:
    ws = workspace_with_sendgrid(engine, sandbox)
    queue(engine, ws, ["a@example.com", "b@example.com"], purpose="payment_reminder")
    with Session(engine) as session:
        service.suppress(
            session,
            workspace_id=ws,
            email="b@example.com",
            groups=["reminders"],
            reason="unsubscribe",
        )
        session.commit()
    assert drain(engine) == []
    assert [m["to"]["email"] for m in mailbox(sandbox)] == ["a@example.com"]
    skipped = [r for r in messages(engine, ws) if r.status == EmailStatus.SKIPPED]
    assert [r.to_email for r in skipped] == ["b@example.com"]
    assert "unsubscribe, reminders" in (skipped[0].skip_reason or "")


def test_a_sendgrid_outage_requeues_and_the_retry_sends_once(
    engine: Engine, sandbox: RunningSandbox
) -> None:
    ws = workspace_with_sendgrid(engine, sandbox)
    queue(engine, ws, ["a@example.com", "b@example.com"])
    sandbox.switch(sendgrid={"outage": "errors"})
    report = Runner(engine, "test-worker").run_once()
    assert report.retried == 1  # the one job that sends both, to retry
    assert {r.status for r in messages(engine, ws)} == {EmailStatus.QUEUED}
    sandbox.switch(sendgrid={"outage": "none"})
    _due_now(engine)
    assert drain(engine) == []
    assert sorted(m["to"]["email"] for m in mailbox(sandbox)) == ["a@example.com", "b@example.com"]
    assert {r.status for r in messages(engine, ws)} == {EmailStatus.SENT}


def test_a_timeout_after_sendgrid_took_the_request_is_never_sent_again(
    engine: Engine, sandbox: RunningSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SendGrid takes the request but answers after our deadline: the messages stay
    ``unknown`` with the reason, the job's retry sends nothing, the mailbox holds each once."""
    monkeypatch.setattr(send, "SEND_SECONDS", 0.5)
    ws = workspace_with_sendgrid(engine, sandbox)
    queue(engine, ws, ["a@example.com", "b@example.com"])
    sandbox.switch(sendgrid={"late_answer_seconds": 1.5})
    report = Runner(engine, "test-worker").run_once()
    assert report.retried == 1 and "ProviderTimeout" in report.errors[0]
    rows = messages(engine, ws)
    assert {r.status for r in rows} == {EmailStatus.UNKNOWN}
    assert all(r.failure_reason == send.UNKNOWN_REASON for r in rows)
    sandbox.switch(sendgrid={"late_answer_seconds": 0})
    _due_now(engine)
    assert drain(engine) == []  # the retry finds nothing to send
    assert sorted(m["to"]["email"] for m in mailbox(sandbox)) == ["a@example.com", "b@example.com"]
    assert {r.status for r in messages(engine, ws)} == {EmailStatus.UNKNOWN}


def test_a_timeout_before_sendgrid_took_the_request_errs_toward_not_sending(
    engine: Engine, sandbox: RunningSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The other side of the same doubt: SendGrid hangs and never takes the request. From
    here that looks the same, so the message is not sent again either: missed, not doubled,
    and shown as ``unknown`` with the reason."""
    monkeypatch.setattr(send, "SEND_SECONDS", 0.5)
    ws = workspace_with_sendgrid(engine, sandbox)
    queue(engine, ws, ["a@example.com"])
    sandbox.switch(sendgrid={"outage": "timeouts", "hang_seconds": 1.0})
    report = Runner(engine, "test-worker").run_once()
    assert report.retried == 1 and "ProviderTimeout" in report.errors[0]
    sandbox.switch(sendgrid={"outage": "none"})
    _due_now(engine)
    assert drain(engine) == []
    assert mailbox(sandbox) == []
    (row,) = messages(engine, ws)
    assert row.status == EmailStatus.UNKNOWN
    assert row.failure_reason == send.UNKNOWN_REASON


def test_a_request_sendgrid_refuses_fails_its_messages_with_sendgrids_words(
    engine: Engine, sandbox: RunningSandbox
) -> None:
    ws = workspace_with_sendgrid(engine, sandbox)
    with Session(engine) as session:
        row = session.scalars(select(Integration).where(Integration.workspace_id == ws)).one()
        row.settings = {**(row.settings or {}), "from_email": "not-an-address"}
        session.commit()
    queue(engine, ws, ["a@example.com", "b@example.com"])
    report = Runner(engine, "test-worker").run_once()
    assert report.dead == 1
    rows = messages(engine, ws)
    assert {r.status for r in rows} == {EmailStatus.FAILED}
    assert all("SendGrid refused the request" in (r.failure_reason or "") for r in rows)
    assert mailbox(sandbox) == []


def test_two_schedulers_at_once_mail_each_message_once(
    make_sandbox: MakeSandbox,
    pg_engine: Engine,
    monkeypatch: pytest.MonkeyPatch,
    hub_env: dict[str, str],
) -> None:
    running = make_sandbox(providers=[sendgrid_emulator])
    hub_env["HUB_PUBLIC_SIDECAR_URL"] = SIDECAR
    db_url = pg_engine.url.render_as_string(hide_password=False)
    apply(monkeypatch, hub_env, db_url=db_url, sandbox_url=running.url)
    ws = workspace_with_sendgrid(pg_engine, running)
    queue(pg_engine, ws, [f"person{n}@example.com" for n in range(600)])
    start = threading.Barrier(2)
    failures: list[BaseException] = []

    def scheduler(n: int) -> None:
        try:
            start.wait()
            runner = Runner(pg_engine, f"scheduler-{n}", batch=20)
            while runner.run_once().claimed:
                pass
        except BaseException as exc:  # reported below
            failures.append(exc)

    threads = [threading.Thread(target=scheduler, args=(n,)) for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert failures == []
    mailed = [m["custom_args"]["hub_message_id"] for m in mailbox(running)]
    assert len(mailed) == len(set(mailed)) == 600
    assert {r.status for r in messages(pg_engine, ws)} == {EmailStatus.SENT}


def test_a_message_its_template_cannot_render_fails_alone(
    engine: Engine, sandbox: RunningSandbox
) -> None:
    ws = workspace_with_sendgrid(engine, sandbox)
    queue(engine, ws, ["a@example.com", "b@example.com"])
    with Session(engine) as session:
        broken = service.queue_email(
            session,
            workspace_id=ws,
            purpose="payment_request",
            to_email="c@example.com",
            to_name=None,
            subject_type=None,
            subject_id=None,
            context={"business_name": "Lakeside"},  # no amount, no link
            dedupe_key="broken",
        )
        session.commit()
        broken_id = broken.id
    assert drain(engine) == []
    assert sorted(m["to"]["email"] for m in mailbox(sandbox)) == ["a@example.com", "b@example.com"]
    status = {r.id: r for r in messages(engine, ws)}
    assert status[broken_id].status == EmailStatus.FAILED
    assert "'amount' is undefined" in (status[broken_id].failure_reason or "")


def _envelope() -> sendgrid.Envelope:
    return sendgrid.Envelope(to_email="a@example.com", subject="Hi")


def test_a_refused_connection_is_safe_to_resend_a_broken_one_is_not() -> None:
    """Which transport failures mean "nothing was sent" (retry) and which leave the doubt
    (``unknown``): a refused connection sent nothing; a connection closed after the request
    was read may have been acted on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free_port = probe.getsockname()[1]
    refused = sendgrid.SendGridAdapter("SG.x.y", host=f"http://127.0.0.1:{free_port}")
    with pytest.raises(ProviderUnavailable) as raised:
        refused.send_batch(
            from_email="f@example.com", from_name="", envelopes=[_envelope()], text="x"
        )
    assert not isinstance(raised.value, ProviderConnectionLost)

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)

    def read_then_hang_up() -> None:
        connection, _ = server.accept()
        connection.recv(65536)  # the request arrived...
        connection.close()  # ...and no answer comes

    thread = threading.Thread(target=read_then_hang_up)
    thread.start()
    try:
        lost = sendgrid.SendGridAdapter(
            "SG.x.y", host=f"http://127.0.0.1:{server.getsockname()[1]}"
        )
        with pytest.raises(ProviderConnectionLost):
            lost.send_batch(
                from_email="f@example.com", from_name="", envelopes=[_envelope()], text="x"
            )
    finally:
        thread.join(timeout=10)
        server.close()
