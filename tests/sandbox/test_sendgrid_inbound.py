"""SendGrid Inbound Parse in the sandbox: the mailbox's Reply posts what SendGrid posts
(multipart/form-data with its default fields, the Parse URL's credentials as basic auth), and
the product's sidecar, served over HTTP, takes it as a lead's reply."""

from __future__ import annotations

import base64
import email.utils
import json
import re
import time
from collections.abc import Iterator
from urllib.parse import quote

import httpx
import pytest
from python_multipart.multipart import MultipartParser, parse_options_header
from sendgrid import SendGridAPIClient
from sendgrid.helpers.mail import Mail
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

import backend.sandbox.sendgrid as sendgrid_emulator
from backend.api.app import create_app
from backend.db import get_engine
from backend.jobs.runner import Runner
from backend.sandbox.demo_accounts import REEL_MOMENTS
from backend.sandbox.sendgrid.inbound import DEFAULT_REPLY
from models import InboundEvent, Lead, LeadMessage
from tests import factories
from tests.api.webhook_support import settings
from tests.sandbox.conftest import MakeSandbox, RunningSandbox
from tests.support.servers import Received, WebhookReceiver, serve

TOKEN = "sandbox-test-inbound-secret-0123456789abcdef"
LEAD = "jane@lead.example"


@pytest.fixture
def sandbox(make_sandbox: MakeSandbox) -> RunningSandbox:
    return make_sandbox(providers=[sendgrid_emulator])


def _key(sandbox: RunningSandbox) -> str:
    response = httpx.post(f"{sandbox.url}/sendgrid/_sandbox/api_keys", timeout=10)
    return str(response.json()["api_key"])


def _send(
    sandbox: RunningSandbox, key: str, text: str = "Our recital package: two cameras."
) -> str:
    mail = Mail(
        from_email=("hello@lakeside.example", "Lakeside Media"),
        to_emails=(LEAD, "Jane Doe"),
        subject="Your recital package",
        plain_text_content=text,
    )
    response = SendGridAPIClient(api_key=key, host=f"{sandbox.url}/sendgrid").send(mail)
    assert response.status_code == 202
    x_id = response.headers["X-Message-Id"]
    page = httpx.get(f"{sandbox.url}/sendgrid/_pages/mailbox", timeout=10).text
    (message_id,) = re.findall(rf"/sendgrid/_pages/mailbox/({re.escape(x_id)}\.[^\"'/]+)", page)
    return str(message_id)


def _set_parse_url(sandbox: RunningSandbox, url: str | None, key: str | None = None) -> None:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    response = httpx.post(
        f"{sandbox.url}/sendgrid/_sandbox/inbound_parse",
        json={"url": url},
        headers=headers,
        timeout=10,
    )
    assert response.status_code == 200, response.text


def _reply(sandbox: RunningSandbox, message_id: str, text: str, **extra: str) -> httpx.Response:
    return httpx.post(
        f"{sandbox.url}/sendgrid/_pages/mailbox/{quote(message_id, safe='')}/reply",
        data={"text": text, **extra},
        timeout=10,
        follow_redirects=True,
    )


def _fields(request: Received) -> tuple[dict[str, str], dict[str, bytes]]:
    """The post's plain fields and its files, read with the multipart parser."""
    _, options = parse_options_header(request.headers["content-type"])
    fields: dict[str, str] = {}
    files: dict[str, bytes] = {}
    current: dict[str, object] = {}

    def header_value(data: bytes, start: int, end: int) -> None:
        current["disposition"] = bytes(current.get("disposition", b"")) + data[start:end]  # type: ignore[arg-type]

    def data(chunk: bytes, start: int, end: int) -> None:
        current["data"] = bytes(current.get("data", b"")) + chunk[start:end]  # type: ignore[arg-type]

    def end() -> None:
        _, opts = parse_options_header(bytes(current.get("disposition", b"")))  # type: ignore[arg-type]
        name = opts[b"name"].decode()
        value = bytes(current.get("data", b""))  # type: ignore[arg-type]
        if b"filename" in opts:
            files[name] = value
        else:
            fields[name] = value.decode()
        current.clear()

    parser = MultipartParser(
        options[b"boundary"],
        {"on_header_value": header_value, "on_part_data": data, "on_part_end": end},
    )
    parser.write(request.body)
    parser.finalize()
    return fields, files


def test_reply_posts_sendgrids_multipart_form_with_basic_auth(
    sandbox: RunningSandbox, receiver: WebhookReceiver
) -> None:
    key = _key(sandbox)
    message_id = _send(sandbox, key)
    page = httpx.get(
        f"{sandbox.url}/sendgrid/_pages/mailbox/{quote(message_id, safe='')}", timeout=10
    ).text
    assert f"/{quote(message_id, safe='')}/reply" in page and ">Reply</button>" in page
    assert DEFAULT_REPLY in page
    before = len(receiver.received)
    host = receiver.url.removeprefix("http://")
    _set_parse_url(sandbox, f"http://inbound:s3cret%2F1@{host}/parse/acme", key)

    response = _reply(sandbox, message_id, "Tuesday works.", attachment="1")
    assert response.status_code == 200  # the redirect back to the message page, followed
    request = next(r for r in receiver.wait_for(before + 1)[before:] if r.path == "/parse/acme")
    assert request.headers["content-type"] == "multipart/form-data; boundary=xYzZY"
    expected = base64.b64encode(b"inbound:s3cret/1").decode()
    assert request.headers["authorization"] == f"Basic {expected}"
    fields, files = _fields(request)
    assert set(fields) == {
        "headers",
        "dkim",
        "to",
        "html",
        "from",
        "text",
        "sender_ip",
        "envelope",
        "attachments",
        "attachment-info",
        "subject",
        "charsets",
        "SPF",
    }
    assert email.utils.parseaddr(fields["from"]) == ("Jane Doe", LEAD)
    assert email.utils.parseaddr(fields["to"]) == ("Lakeside Media", "hello@lakeside.example")
    assert fields["subject"] == "Re: Your recital package"
    assert fields["text"].startswith("Tuesday works.\n\nOn ")
    assert "> Our recital package: two cameras." in fields["text"]
    assert json.loads(fields["envelope"]) == {"to": ["hello@lakeside.example"], "from": LEAD}
    assert json.loads(fields["charsets"])["text"] == "UTF-8"
    assert fields["attachments"] == "1" and set(files) == {"attachment1"}
    assert "In-Reply-To: <" in fields["headers"] and "Message-ID: <" in fields["headers"]
    # The reply is listed on the message's page, and the secret is in no delivery log.
    page = httpx.get(
        f"{sandbox.url}/sendgrid/_pages/mailbox/{quote(message_id, safe='')}", timeout=10
    ).text
    assert "Tuesday works." in page and "s3cret" not in page
    deliveries = httpx.get(f"{sandbox.url}/_sandbox/deliveries", timeout=10).text
    assert "s3cret" not in deliveries
    _set_parse_url(sandbox, f"http://inbound:s3cret@{host}/everyone")
    control = httpx.get(f"{sandbox.url}/", timeout=10).text
    assert f"http://{host}/everyone" in control and "s3cret" not in control


def test_reply_without_a_parse_url_says_how_to_set_one(sandbox: RunningSandbox) -> None:
    message_id = _send(sandbox, _key(sandbox))
    response = _reply(sandbox, message_id, "Hello?")
    assert response.status_code == 409
    assert "/sendgrid/_sandbox/inbound_parse" in response.text


def test_a_demo_workspaces_mail_is_answered_to_its_sidecar_route(
    sandbox: RunningSandbox, receiver: WebhookReceiver
) -> None:
    sandbox.ctx.webhook_targets["sendgrid_inbound"] = f"{receiver.url}/webhooks/sendgrid-inbound"
    message_id = _send(sandbox, REEL_MOMENTS.sendgrid_api_key)
    before = len(receiver.received)
    assert _reply(sandbox, message_id, "Yes!").status_code == 200
    paths = [r.path for r in receiver.wait_for(before + 1)[before:]]
    request = next(
        r for r in receiver.received if r.path == "/webhooks/sendgrid-inbound/reel-moments"
    )
    assert "/webhooks/sendgrid-inbound/reel-moments" in paths
    password = base64.b64decode(request.headers["authorization"].split()[1]).decode()
    assert password == f"inbound:{REEL_MOMENTS.inbound_parse_token}"


@pytest.fixture
def sidecar(engine: Engine) -> Iterator[str]:
    app = create_app(settings())
    app.dependency_overrides[get_engine] = lambda: engine
    with serve(app) as base:
        yield base


def test_the_sidecar_takes_the_sandboxs_reply_as_the_leads(
    sandbox: RunningSandbox, sidecar: str, engine: Engine, session: Session
) -> None:
    ws = factories.workspace(session, slug="acme")
    ws.inbound_parse_token = TOKEN
    session.add(Lead(workspace_id=ws.id, email=LEAD, name="Jane Doe"))
    session.commit()
    host = sidecar.removeprefix("http://")
    _set_parse_url(sandbox, f"http://inbound:{TOKEN}@{host}/webhooks/sendgrid-inbound/acme")
    message_id = _send(sandbox, _key(sandbox))

    assert _reply(sandbox, message_id, DEFAULT_REPLY).status_code == 200
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        with Session(engine) as check:
            if check.scalar(select(func.count()).select_from(InboundEvent)):
                break
        time.sleep(0.05)
    report = Runner(engine, "test-worker", batch=10).run_once()
    assert not report.errors, report.errors
    with Session(engine) as check:
        [reply] = check.scalars(select(LeadMessage).where(LeadMessage.kind == "reply")).all()
        assert reply.body == f"Re: Your recital package\n\n{DEFAULT_REPLY}"
        assert check.scalars(select(Lead)).one().status == "engaged"
    deliveries = httpx.get(f"{sandbox.url}/_sandbox/deliveries", timeout=10).json()
    assert [d["status"] for d in deliveries if d["label"] == "inbound parse (reply)"] == [200]
