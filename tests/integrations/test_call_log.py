"""The call log at the HTTP layer: one record per request, named, classified and scoped,
made by the real clients the adapters use, against a local server."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from backend.integrations import call_log, deadline

ANSWERS = {"/ok": 200, "/busy": 429, "/down": 503, "/bad": 400}


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        status = ANSWERS.get(self.path.split("?")[0].removeprefix("/stripe"), 404)
        self.send_response(status)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    do_POST = do_GET

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def _taken() -> list[call_log.ProviderCall]:
    return call_log.BUFFER.take()


def test_httpx_requests_are_recorded_with_scope_and_outcome(server: str) -> None:
    with (
        call_log.scope(workspace_id=7, job_id=99),
        deadline.within("Stripe", 5, slug="stripe"),
        deadline.http_client(5) as client,
    ):
        for path in ("/ok", "/busy", "/down", "/bad"):
            client.get(f"{server}/stripe{path}?token=secret")
    calls = _taken()
    assert [(c.outcome, c.http_status) for c in calls] == [
        ("ok", 200),
        ("rate_limited", 429),
        ("unavailable", 503),
        ("rejected", 400),
    ]
    assert {(c.provider, c.workspace_id, c.job_id) for c in calls} == {("stripe", 7, 99)}
    # The sandbox's mount is dropped, the query (which may hold a token) never kept.
    assert calls[0].operation == "GET /ok"
    assert all("secret" not in (c.operation + (c.error or "")) for c in calls)
    assert calls[2].error == "HTTP 503 Service Unavailable"


def test_urllib_and_httplib2_requests_are_recorded(server: str) -> None:
    with deadline.within("SendGrid", 5, slug="sendgrid"):
        deadline.urllib_opener().open(f"{server}/ok").read()
    with deadline.within("Google", 5, slug="google_drive"):
        deadline.Http(timeout=5).request(f"{server}/down")
    calls = _taken()
    assert [(c.provider, c.outcome) for c in calls] == [
        ("sendgrid", "ok"),
        ("google_drive", "unavailable"),
    ]


def test_no_answer_is_unavailable_and_outside_a_block_nothing_is_recorded(server: str) -> None:
    with (
        deadline.within("Slack", 5, slug="slack"),
        deadline.http_client(5) as client,
        pytest.raises(Exception),  # noqa: B017 - httpx's connect error
    ):
        client.get("http://127.0.0.1:9/closed")
    with deadline.http_client(5) as client:
        client.get(f"{server}/ok")  # no block: the hub's own request, not a provider call
    (refused,) = _taken()
    assert (refused.outcome, refused.http_status) == ("unavailable", None)
    assert refused.error == "could not be reached (ConnectError)"


def test_scope_operation_names_the_calls_inside() -> None:
    with call_log.scope(workspace_id=3), call_log.scope(operation="oauth_refresh"):
        made = call_log.measured(
            "google_drive",
            "POST",
            "https://oauth2.googleapis.com/token",
            status=200,
            reason="OK",
            error=None,
            timed_out=False,
            latency_ms=5,
        )
    assert (made.operation, made.workspace_id) == ("oauth_refresh", 3)


@pytest.mark.parametrize(
    ("url", "operation"),
    [
        (
            "https://api.stripe.com/v1/invoices/in_1NxYz2/finalize",
            "POST /v1/invoices/{id}/finalize",
        ),
        ("http://127.0.0.1:8/stripe/v1/customers", "POST /v1/customers"),
        ("http://127.0.0.1:8/google/oauth2/revoke", "POST /oauth2/revoke"),
        ("https://api.stripe.com/v1/customers/cus_12ab", "POST /v1/customers/{id}"),
        ("https://graph.facebook.com/v19.0/me/messages", "POST /v19.0/me/messages"),
        (
            "https://www.googleapis.com/drive/v3/files/1AbCdEfGhIjKlMnOpQrStUv",
            "POST /drive/v3/files/{id}",
        ),
    ],
)
def test_operations_are_named_without_ids(url: str, operation: str) -> None:
    assert call_log.operation_of("post", url) == operation
