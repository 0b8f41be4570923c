"""SendGrid Inbound Parse through the sidecar, over real HTTP: a lead's reply is stored, then
applied by the inbox job (a reply message, the sequences stopped, an engagement row, the lead
engaged), once however often it is posted, in its workspace only; wrong secrets and malformed
posts store nothing."""

from __future__ import annotations

import base64
import datetime as dt
import json
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from backend.api.app import create_app
from backend.api.webhooks import sendgrid_inbound
from backend.db import get_engine
from backend.email import inbound
from backend.jobs.runner import Runner
from models import (
    EmailSequence,
    EngagementEvent,
    InboundEvent,
    Lead,
    LeadMessage,
    SequenceEnrolment,
    Workspace,
)
from tests import factories
from tests.api.webhook_support import settings, stored
from tests.support.servers import serve

TOKEN_A = "inbound-secret-of-workspace-a-0123456789abcd"
TOKEN_B = "inbound-secret-of-workspace-b-0123456789abcd"
LEAD = "jane@lead.example"
REPLY = "Thanks, sounds good — can we talk Tuesday?"


@dataclass
class Tenant:
    slug: str
    workspace_id: int
    lead_id: int
    enrolment_id: int


def _tenant(session: Session, slug: str, token: str) -> Tenant:
    ws = factories.workspace(session, slug=slug)
    ws.inbound_parse_token = token
    lead = Lead(workspace_id=ws.id, email=LEAD, name="Jane Doe", status="contacted")
    sequence = EmailSequence(workspace_id=ws.id, name="Follow up", trigger="lead_created")
    session.add_all([lead, sequence])
    session.flush()
    enrolment = SequenceEnrolment(
        workspace_id=ws.id,
        sequence_id=sequence.id,
        lead_id=lead.id,
        next_due_at=dt.datetime(2030, 1, 1, tzinfo=dt.UTC),
    )
    session.add(enrolment)
    session.flush()
    return Tenant(slug, ws.id, lead.id, enrolment.id)


@pytest.fixture
def tenants(session: Session) -> tuple[Tenant, Tenant]:
    a = _tenant(session, "acme", TOKEN_A)
    b = _tenant(session, "bravo", TOKEN_B)
    session.commit()
    return a, b


@pytest.fixture
def sidecar(engine: Engine, tenants: tuple[Tenant, Tenant]) -> Iterator[str]:
    app = create_app(settings())
    app.dependency_overrides[get_engine] = lambda: engine
    with serve(app) as base:
        yield base


def post_fields(
    *,
    sender: str = f'"Jane Doe" <{LEAD.upper()}>',
    text: str = f"{REPLY}\n\nOn Mon, 7 Dec 2026, Lakeside <hello@lakeside.example> wrote:\n> Hi!",
    message_id: str | None = "<reply-1@lead.example>",
) -> dict[str, str]:
    headers = "MIME-Version: 1.0\nFrom: " + sender + "\nDate: Mon, 7 Dec 2026 10:00:00 +0000\n"
    if message_id:
        headers += f"Message-ID: {message_id}\n"
    return {
        "headers": headers,
        "dkim": "{@lead.example : pass}",
        "to": "Lakeside <hello@lakeside.example>",
        "from": sender,
        "subject": "Re: Your recital package",
        "text": text,
        "html": f"<div>{REPLY}</div><blockquote>Hi!</blockquote>",
        "sender_ip": "203.0.113.25",
        "SPF": "pass",
        "envelope": json.dumps({"to": ["hello@lakeside.example"], "from": LEAD}),
        "charsets": json.dumps({"text": "UTF-8", "from": "UTF-8", "subject": "UTF-8"}),
        "attachments": "1",
        "attachment-info": json.dumps({"attachment1": {"filename": "p.jpg", "type": "image/jpeg"}}),
    }


def post(
    base: str,
    slug: str,
    token: str | None,
    fields: dict[str, str] | None = None,
    *,
    in_path: bool = False,
) -> httpx.Response:
    files = {"attachment1": ("p.jpg", b"\xff\xd8SECRET-ATTACHMENT-BYTES\xff\xd9", "image/jpeg")}
    url = f"{base}/webhooks/sendgrid-inbound/{slug}"
    auth = None
    if token is not None and in_path:
        url += f"/{token}"
    elif token is not None:
        auth = httpx.BasicAuth("inbound", token)
    return httpx.post(url, data=fields or post_fields(), files=files, auth=auth, timeout=20)


def run_jobs(engine: Engine) -> None:
    report = Runner(engine, "test-worker", batch=20).run_once()
    assert not report.errors, report.errors


def _replies(engine: Engine, workspace_id: int) -> list[LeadMessage]:
    with Session(engine) as session:
        return list(
            session.scalars(
                select(LeadMessage).where(
                    LeadMessage.workspace_id == workspace_id, LeadMessage.kind == "reply"
                )
            )
        )


def test_a_leads_reply_is_recorded_stops_its_sequence_and_engages_the_lead(
    sidecar: str, engine: Engine, tenants: tuple[Tenant, Tenant]
) -> None:
    a, b = tenants
    response = post(sidecar, a.slug, TOKEN_A)
    assert response.status_code == 200, response.text
    assert response.json() == {"received": True, "duplicate": False}
    run_jobs(engine)
    [reply] = _replies(engine, a.workspace_id)
    assert reply.lead_id == a.lead_id
    # The text part, its quoted history cut off; the subject above it.
    assert reply.body == f"Re: Your recital package\n\n{REPLY}"
    with Session(engine) as session:
        enrolment = session.get_one(SequenceEnrolment, a.enrolment_id)
        assert enrolment.status == "stopped"
        assert enrolment.stop_reason == "The lead replied on 2026-12-07"
        assert enrolment.next_due_at is None
        assert session.get_one(Lead, a.lead_id).status == "engaged"
        [row] = session.scalars(select(EngagementEvent)).all()
        assert (row.workspace_id, row.source, row.subject_type, row.subject_id, row.name) == (
            a.workspace_id,
            "sendgrid_inbound",
            "lead",
            a.lead_id,
            "email.replied",
        )
        assert row.properties == {"attachments": 1}
        # The attachment was counted, never stored.
        [event] = session.scalars(select(InboundEvent)).all()
        assert b"SECRET-ATTACHMENT" not in json.dumps(event.payload).encode()
        assert "html" not in event.payload
        assert event.payload["attachments"] == 1
        # The other workspace's lead with the same address is untouched.
        assert session.get_one(Lead, b.lead_id).status == "contacted"
        assert session.get_one(SequenceEnrolment, b.enrolment_id).status == "active"
    assert _replies(engine, b.workspace_id) == []


def test_the_secret_in_the_path_works_too(
    sidecar: str, engine: Engine, tenants: tuple[Tenant, Tenant]
) -> None:
    a, _ = tenants
    response = post(sidecar, a.slug, TOKEN_A, in_path=True)
    assert response.status_code == 200, response.text
    run_jobs(engine)
    assert len(_replies(engine, a.workspace_id)) == 1


def test_the_same_reply_posted_twice_is_recorded_once(
    sidecar: str, engine: Engine, tenants: tuple[Tenant, Tenant]
) -> None:
    a, _ = tenants
    assert post(sidecar, a.slug, TOKEN_A).json()["duplicate"] is False
    assert post(sidecar, a.slug, TOKEN_A).json()["duplicate"] is True
    run_jobs(engine)
    assert len(_replies(engine, a.workspace_id)) == 1
    # Past the inbox too (a replay stores the event again): the engagement row keys it.
    with Session(engine) as session:
        event = session.scalars(select(InboundEvent)).one()
        session.delete(event)
        session.commit()
    assert post(sidecar, a.slug, TOKEN_A).json()["duplicate"] is False
    run_jobs(engine)
    assert len(_replies(engine, a.workspace_id)) == 1


def test_replies_without_a_message_id_are_told_apart_by_what_they_say(
    sidecar: str, engine: Engine, tenants: tuple[Tenant, Tenant]
) -> None:
    a, _ = tenants
    post(sidecar, a.slug, TOKEN_A, post_fields(message_id=None, text="Yes please."))
    post(sidecar, a.slug, TOKEN_A, post_fields(message_id=None, text="Yes please."))
    post(sidecar, a.slug, TOKEN_A, post_fields(message_id=None, text="And a second camera?"))
    run_jobs(engine)
    assert sorted(m.body.split("\n\n", 1)[1] for m in _replies(engine, a.workspace_id)) == [
        "And a second camera?",
        "Yes please.",
    ]


@pytest.mark.parametrize(
    ("slug", "token", "in_path", "status"),
    [
        ("acme", None, False, 401),
        ("acme", TOKEN_B, False, 401),  # another workspace's secret
        ("acme", TOKEN_A[:-1], False, 401),
        ("acme", TOKEN_A + "x", True, 401),
        ("bravo", TOKEN_A, True, 401),
        ("nobody", TOKEN_A, False, 404),
    ],
)
def test_a_wrong_or_missing_secret_stores_nothing(
    sidecar: str,
    engine: Engine,
    slug: str,
    token: str | None,
    in_path: bool,
    status: int,
) -> None:
    response = post(sidecar, slug, token, in_path=in_path)
    assert response.status_code == status
    detail = response.json()["detail"]
    assert TOKEN_A not in detail and TOKEN_B not in detail and LEAD not in detail
    assert stored(engine) == (0, 0)


def test_a_workspace_without_a_secret_takes_no_replies(
    sidecar: str, engine: Engine, session: Session, tenants: tuple[Tenant, Tenant]
) -> None:
    a, _ = tenants
    session.get_one(Workspace, a.workspace_id).inbound_parse_token = None
    session.commit()
    for token in (None, "", TOKEN_A):
        response = post(sidecar, a.slug, token)
        assert response.status_code == 404
        assert response.json()["detail"] == "inbound parse is not set up for this workspace"
    assert stored(engine) == (0, 0)


def _raw(base: str, content: bytes, content_type: str) -> httpx.Response:
    return httpx.post(
        f"{base}/webhooks/sendgrid-inbound/acme",
        content=content,
        headers={"Content-Type": content_type},
        auth=httpx.BasicAuth("inbound", TOKEN_A),
        timeout=20,
    )


@pytest.mark.parametrize(
    ("content", "content_type", "says"),
    [
        (b'{"from": "jane@lead.example"}', "application/json", "multipart/form-data"),
        (b"--xYzZY\r\n", "multipart/form-data", "no boundary"),
        (
            b'--xYzZY\r\nContent-Disposition: form-data; name="from"\r\n\r\njane@lead.example',
            "multipart/form-data; boundary=xYzZY",
            "not valid multipart",
        ),
        (b"garbage without a boundary", "multipart/form-data; boundary=xYzZY", "not valid"),
        (
            b'--xYzZY\r\nContent-Disposition: form-data; name="subject"\r\n\r\nHi\r\n--xYzZY--\r\n',
            "multipart/form-data; boundary=xYzZY",
            "no sender address",
        ),
        (
            b'--xYzZY\r\nContent-Disposition: form-data; name="email"\r\n\r\nFrom: a@b.c\r\n'
            b"--xYzZY--\r\n",
            "multipart/form-data; boundary=xYzZY",
            "Send Raw",
        ),
    ],
    ids=["json", "no_boundary", "unterminated", "garbage", "no_sender", "raw_post"],
)
def test_a_malformed_post_is_a_400_naming_the_problem(
    sidecar: str, engine: Engine, content: bytes, content_type: str, says: str
) -> None:
    response = _raw(sidecar, content, content_type)
    assert response.status_code == 400, response.text
    assert says in response.json()["detail"]
    assert stored(engine) == (0, 0)


def test_a_post_over_the_cap_is_413_and_attachments_under_it_are_dropped(
    sidecar: str, engine: Engine, tenants: tuple[Tenant, Tenant], monkeypatch: pytest.MonkeyPatch
) -> None:
    # 2 MiB of attachment is over the sidecar's 1 MiB for other webhooks: accepted here.
    a, _ = tenants
    big = {"attachment1": ("film.mov", b"\x00" * (2 * 1_048_576), "video/quicktime")}
    response = httpx.post(
        f"{sidecar}/webhooks/sendgrid-inbound/{a.slug}",
        data=post_fields(),
        files=big,
        auth=httpx.BasicAuth("inbound", TOKEN_A),
        timeout=20,
    )
    assert response.status_code == 200, response.text
    monkeypatch.setattr(sendgrid_inbound, "MAX_POST_BYTES", 1_048_576)
    response = httpx.post(
        f"{sidecar}/webhooks/sendgrid-inbound/{a.slug}",
        data=post_fields(message_id="<another@lead.example>"),
        files=big,
        auth=httpx.BasicAuth("inbound", TOKEN_A),
        timeout=20,
    )
    assert response.status_code == 413
    assert stored(engine) == (1, 1)


def test_a_reply_from_someone_who_is_not_a_lead_is_kept_nowhere(
    sidecar: str, engine: Engine, tenants: tuple[Tenant, Tenant]
) -> None:
    a, _ = tenants
    fields = post_fields(sender="Stranger <stranger@else.example>")
    assert post(sidecar, a.slug, TOKEN_A, fields).status_code == 200
    run_jobs(engine)
    with Session(engine) as session:
        assert session.scalar(select(func.count()).select_from(LeadMessage)) == 0
        assert session.scalar(select(func.count()).select_from(EngagementEvent)) == 0
        [event] = session.scalars(select(InboundEvent)).all()
        assert "stranger" not in json.dumps(event.payload)
        assert REPLY not in json.dumps(event.payload)


def test_a_long_reply_is_bounded_and_an_html_only_reply_is_read() -> None:
    long = "word " * 5000
    assert len(inbound.trim_reply(long)) == inbound.MAX_REPLY_CHARS
    fields = {
        "from": b"jane@lead.example",
        "html": b"<p>Tuesday&nbsp;works</p><blockquote>old</blockquote>",
    }
    event = inbound.reply_event(1, fields, 0)
    assert event.payload["text"] == "Tuesday\xa0works"
    # Another charset, as SendGrid's charsets field names it.
    fields = {
        "from": b"jane@lead.example",
        "text": "Grüße".encode("iso-8859-1"),
        "charsets": b'{"text": "iso-8859-1"}',
    }
    assert inbound.reply_event(1, fields, 0).payload["text"] == "Grüße"


def test_the_parse_url_carries_the_secret_as_basic_auth() -> None:
    url = inbound.parse_url("https://hub.example/", "acme", "s3cr/t")
    assert url == "https://inbound:s3cr%2Ft@hub.example/webhooks/sendgrid-inbound/acme"
    header = base64.b64encode(b"inbound:s3cr/t").decode()
    assert sendgrid_inbound._basic_password(f"Basic {header}") == "s3cr/t"


def test_the_parse_url_is_shown_to_owners_and_admins_its_secret_made_once(
    session: Session,
) -> None:
    from backend.platform.actors import Actor
    from backend.platform.errors import PermissionDenied
    from models import AuditLog, Role

    ws = factories.workspace(session, slug="fresh")
    session.commit()
    viewer = Actor(operator_id=1, workspace_id=ws.id, role=Role.VIEWER)
    with pytest.raises(PermissionDenied):
        inbound.show_parse_url(session, actor=viewer, sidecar_url="https://hub.example")
    session.rollback()
    assert session.get_one(Workspace, ws.id).inbound_parse_token is None
    admin = Actor(operator_id=1, workspace_id=ws.id, role=Role.ADMIN)
    first = inbound.show_parse_url(session, actor=admin, sidecar_url="https://hub.example")
    session.commit()
    token = session.get_one(Workspace, ws.id).inbound_parse_token
    assert token and len(token) >= 40
    assert first == f"https://inbound:{token}@hub.example/webhooks/sendgrid-inbound/fresh"
    again = inbound.show_parse_url(session, actor=admin, sidecar_url="https://hub.example")
    session.commit()
    assert again == first
    [row] = session.scalars(select(AuditLog).where(AuditLog.workspace_id == ws.id)).all()
    assert row.action == "workspace.inbound_parse_secret" and token not in json.dumps(row.details)
