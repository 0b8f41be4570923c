"""One-click unsubscribe on the sidecar: the List-Unsubscribe link of a message the sandbox
received, POSTed as a mail client does (RFC 8058), suppresses the address for the purpose's
group; the next reminder is skipped and a receipt still goes. GET only asks; a tampered link
gets a page, not a trace."""

from __future__ import annotations

from urllib.parse import urlsplit

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from backend.jobs.runner import Runner
from models import EmailStatus, EmailSuppression
from tests.api.webhook_support import client_for
from tests.email.links_support import tampered
from tests.email.support import (
    mailbox,
    messages,
    queue,
    sendgrid_sandbox,  # noqa: F401 (the "sandbox" fixture)
    workspace_with_sendgrid,
)
from tests.support.sandbox_fixtures import RunningSandbox


def _drain(engine: Engine) -> None:
    while Runner(engine, "test-worker").run_once().claimed:
        pass


def _suppressions(engine: Engine) -> list[tuple[str, str, str]]:
    with Session(engine) as session:
        rows = session.execute(
            select(EmailSuppression.email, EmailSuppression.purpose_group, EmailSuppression.reason)
        ).all()
        return sorted((r.email, r.purpose_group, r.reason) for r in rows)


def _unsubscribe_path(sandbox: RunningSandbox) -> str:
    (mail,) = mailbox(sandbox)
    return urlsplit(mail["headers"]["List-Unsubscribe"][1:-1]).path


def test_one_click_unsubscribes_the_group_and_a_receipt_still_goes(
    engine: Engine, sandbox: RunningSandbox
) -> None:
    ws = workspace_with_sendgrid(engine, sandbox)
    queue(engine, ws, ["Jane@Example.com"], purpose="payment_reminder", prefix="first")
    _drain(engine)
    path = _unsubscribe_path(sandbox)
    for client in client_for(engine):
        page = client.get(path)
        assert page.status_code == 200 and "unsubscribe-button" in page.text
        assert _suppressions(engine) == []  # a scanner following the link changes nothing
        for _ in range(2):  # a second click changes nothing more
            done = client.post(
                path,
                content=b"List-Unsubscribe=One-Click",
                headers={"content-type": "application/x-www-form-urlencoded"},
            )
            assert done.status_code == 200
            assert "no more e-mail about reminders" in done.text
    assert _suppressions(engine) == [("jane@example.com", "reminders", "unsubscribe")]
    reminder, receipt = (
        queue(engine, ws, ["jane@example.com"], purpose=p, prefix="second")[0]
        for p in ("payment_reminder", "payment_request")
    )
    _drain(engine)
    status = {m.id: m for m in messages(engine, ws)}
    assert status[reminder].status == EmailStatus.SKIPPED
    assert "unsubscribe, reminders" in (status[reminder].skip_reason or "")
    assert status[receipt].status == EmailStatus.SENT
    assert [m["categories"] for m in mailbox(sandbox)] == [
        ["payment_reminder"],
        ["payment_request"],
    ]


def test_a_transactional_message_link_stops_every_optional_group(
    engine: Engine, sandbox: RunningSandbox
) -> None:
    ws = workspace_with_sendgrid(engine, sandbox)
    queue(engine, ws, ["jane@example.com"], purpose="payment_request")
    _drain(engine)
    for client in client_for(engine):
        assert client.post(_unsubscribe_path(sandbox)).status_code == 200
    assert _suppressions(engine) == [
        ("jane@example.com", "marketing", "unsubscribe"),
        ("jane@example.com", "reminders", "unsubscribe"),
    ]


def test_a_tampered_link_gets_a_page_and_changes_nothing(
    engine: Engine, sandbox: RunningSandbox
) -> None:
    ws = workspace_with_sendgrid(engine, sandbox)
    queue(engine, ws, ["jane@example.com"], purpose="payment_reminder")
    _drain(engine)
    path = _unsubscribe_path(sandbox)
    bad = tampered(path)
    for client in client_for(engine):
        for answer in (client.get(bad), client.post(bad), client.post("/u/nonsense")):
            assert answer.status_code == 400
            assert "unsubscribe-refused" in answer.text
            assert "Traceback" not in answer.text
    assert _suppressions(engine) == []
