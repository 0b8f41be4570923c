"""SendGrid Inbound Parse: replies to a workspace's mail, posted as multipart/form-data.

``POST /webhooks/sendgrid-inbound/{workspace}`` with the workspace's Inbound Parse secret as
the basic-auth password (the URL the console shows: ``https://inbound:<secret>@host/...``),
or ``POST /webhooks/sendgrid-inbound/{workspace}/{secret}`` for a sender that cannot do basic
auth. SendGrid signs nothing by default, so the secret is what authenticates; it is compared
in constant time (``backend.email.inbound.authenticate``) before a byte of the body is read.

The body is streamed through a multipart parser, never held whole: SendGrid posts mail of up to
30 MB with its attachments, so a post may be up to ``MAX_POST_BYTES``; attachments are counted
and dropped as they pass (never stored), and each field is kept up to its own small cap. What
the inbox keeps of a post is ``inbound.reply_event``'s; the reply is applied by its handler.

Tested in tests/api/webhooks/test_sendgrid_inbound.py.
"""

from __future__ import annotations

import base64
import binascii
from typing import Annotated, Any

from fastapi import APIRouter, Header, Request
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.concurrency import run_in_threadpool

from backend.api.webhooks.common import (
    Intake,
    IntakeEngine,
    Received,
    Rejected,
    error_responses,
    store_verified,
)
from backend.email import inbound

PREFIX = inbound.ROUTE
router = APIRouter(prefix=PREFIX, tags=["webhooks"])

# SendGrid's limit on a received message is 30 MB, attachments included; the post adds its
# form framing and the parsed copies of the text and HTML parts.
MAX_POST_BYTES = 32 * 1_048_576
# Of each field, what is read (the rest is dropped as it streams by): the text and HTML parts
# generously (the reply is at their top), everything else small.
# A raw post's "email" (Send Raw) is kept empty: only its presence counts (it is refused).
FIELD_CAPS = {"text": 256 * 1024, "html": 512 * 1024, "headers": 64 * 1024, "email": 0}
DEFAULT_FIELD_CAP = 16 * 1024
MAX_PARTS = 1000

MULTIPART_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {
                        name: {"type": "string"}
                        for name in (
                            "headers",
                            "dkim",
                            "to",
                            "from",
                            "cc",
                            "subject",
                            "text",
                            "html",
                            "sender_ip",
                            "SPF",
                            "envelope",
                            "charsets",
                            "attachments",
                            "attachment-info",
                        )
                    },
                    "required": ["from"],
                }
            }
        },
    }
}


class _Fields:
    """Collects a multipart body's plain fields (each capped) and counts its files, which are
    dropped as they stream by."""

    def __init__(self) -> None:
        self.fields: dict[str, bytes] = {}
        self.attachments = 0
        self.parts = 0
        self.ended = False
        self._header_name = b""
        self._header_value = b""
        self._disposition = b""
        self._name: str | None = None
        self._chunks: list[bytes] = []
        self._kept = 0
        self._cap = 0

    def callbacks(self) -> Any:
        return {
            "on_part_begin": self._begin,
            "on_part_data": self._data,
            "on_part_end": self._end,
            "on_header_field": self._header_field,
            "on_header_value": self._header_value_data,
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished,
            "on_end": self._finished,
        }

    def _finished(self) -> None:
        self.ended = True

    def _begin(self) -> None:
        self.parts += 1
        if self.parts > MAX_PARTS:
            raise _TooManyParts
        self._disposition = b""
        self._name = None
        self._chunks = []
        self._kept = 0

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def _header_value_data(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def _header_end(self) -> None:
        if self._header_name.strip().lower() == b"content-disposition":
            self._disposition = self._header_value[:4096]
        self._header_name = self._header_value = b""

    def _headers_finished(self) -> None:
        _, options = parse_options_header(self._disposition)
        if b"filename" in options:
            self.attachments += 1  # an attachment: counted, its content never kept
            return
        raw_name = options.get(b"name")
        if raw_name is None:
            return
        name = raw_name.decode("utf-8", "replace")[:64]
        if name.startswith("attachment") and name[10:].isdigit():
            self.attachments += 1
            return
        self._name = name
        self._cap = FIELD_CAPS.get(name, DEFAULT_FIELD_CAP)

    def _data(self, data: bytes, start: int, end: int) -> None:
        if self._name is None or self._kept >= self._cap:
            return
        piece = data[start : min(end, start + self._cap - self._kept)]
        self._chunks.append(piece)
        self._kept += len(piece)

    def _end(self) -> None:
        if self._name is not None and self._name not in self.fields:
            self.fields[self._name] = b"".join(self._chunks)
        self._name = None
        self._chunks = []


class _TooManyParts(Exception):
    pass


def _too_large(intake: Intake) -> Rejected:
    # A Rejected, not BodyTooLarge: its log names the workspace, not the path (which may hold
    # the secret).
    return Rejected(413, f"body larger than {MAX_POST_BYTES} bytes", intake, "too_large")


async def _read_fields(request: Request, intake: Intake) -> _Fields:
    kind, options = parse_options_header(request.headers.get("content-type", ""))
    if kind != b"multipart/form-data":
        raise Rejected(
            400,
            "body must be multipart/form-data, as SendGrid Inbound Parse posts it",
            intake,
            "malformed_body",
        )
    boundary = options.get(b"boundary")
    if not boundary:
        raise Rejected(400, "multipart body has no boundary", intake, "malformed_body")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_POST_BYTES:
        raise _too_large(intake)
    collected = _Fields()
    total = 0
    try:
        parser = MultipartParser(boundary, collected.callbacks())
        async for chunk in request.stream():
            total += len(chunk)
            if total > MAX_POST_BYTES:
                raise _too_large(intake)
            parser.write(chunk)
        parser.finalize()
    except _TooManyParts as exc:
        raise Rejected(
            400, f"multipart body has more than {MAX_PARTS} parts", intake, "malformed_body"
        ) from exc
    except (FormParserError, ValueError) as exc:
        raise Rejected(
            400, "body is not valid multipart/form-data", intake, "malformed_body"
        ) from exc
    if total == 0 or collected.parts == 0:
        raise Rejected(400, "multipart body has no parts", intake, "malformed_body")
    if not collected.ended:
        raise Rejected(
            400,
            "body is not valid multipart/form-data: it ends before its closing boundary",
            intake,
            "malformed_body",
        )
    return collected


def _basic_password(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, encoded = authorization.partition(" ")
    if scheme.lower() != "basic" or len(encoded) > 512:
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return decoded.partition(":")[2] or None


async def _receive(
    request: Request, engine: IntakeEngine, workspace: str, secret: str | None
) -> Received:
    intake = Intake(provider=inbound.PROVIDER, workspace=workspace)
    try:
        workspace_id = await run_in_threadpool(inbound.authenticate, engine, workspace, secret)
    except inbound.Refused as exc:
        raise Rejected(exc.status, exc.reason, intake, exc.code) from exc
    collected = await _read_fields(request, intake)
    try:
        event = inbound.reply_event(workspace_id, collected.fields, collected.attachments)
    except inbound.Malformed as exc:
        raise Rejected(400, str(exc), intake, "malformed_body") from exc
    stored = await store_verified(
        request,
        engine,
        intake,
        external_id=event.external_id,
        event_type=inbound.EVENT_TYPE,
        workspace_id=workspace_id,
        integration_id=None,
        payload=event.payload,
    )
    return Received(duplicate=not stored)


_RESPONSES = error_responses()
_RESPONSES[400] = {
    "model": _RESPONSES[400]["model"],
    "description": "Not multipart/form-data, or no sender address.",
}
_RESPONSES[401] = {
    "model": _RESPONSES[401]["model"],
    "description": "Missing or wrong Inbound Parse secret.",
}
_RESPONSES[413] = {
    "model": _RESPONSES[413]["model"],
    "description": "Body larger than 32 MiB (SendGrid's 30 MB message limit and framing).",
}


@router.post(
    "/{workspace}",
    response_model=Received,
    responses=_RESPONSES,
    openapi_extra=MULTIPART_BODY,
)
async def reply(
    workspace: str,
    request: Request,
    engine: IntakeEngine,
    authorization: Annotated[str | None, Header()] = None,
) -> Received:
    """A reply to the workspace's mail; the secret is the basic-auth password."""
    return await _receive(request, engine, workspace, _basic_password(authorization))


@router.post(
    "/{workspace}/{secret}",
    response_model=Received,
    responses=_RESPONSES,
    openapi_extra=MULTIPART_BODY,
)
async def reply_with_secret_in_path(
    workspace: str, secret: str, request: Request, engine: IntakeEngine
) -> Received:
    """A reply to the workspace's mail; the secret is the path's last segment."""
    return await _receive(request, engine, workspace, secret)
