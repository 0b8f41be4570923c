"""Facebook Messenger: the Graph API's Send API for Pages, and ``/me`` for "test connection".

There is no official Python SDK, so the product speaks HTTP to ``/graph/v{version}/...`` as it
would to graph.facebook.com. Pages and their access tokens come from
``POST /graph/_sandbox/pages``; sent messages are kept and shown on the control page and at
``/graph/_pages/messages``. Errors use Graph's shape and its numeric codes (#100, #190, #230).
"""

from __future__ import annotations

import html
import json
import re
import secrets
import string
import time
import urllib.parse
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.responses import Response

from backend.sandbox.context import SandboxContext, Section
from backend.sandbox.demo_accounts import DEMO_WORKSPACES
from backend.sandbox.store import new_id

NAME = "messenger"
PREFIX = "/graph"

_VERSION = re.compile(r"v\d+\.\d+")
MESSAGING_TYPES = ("RESPONSE", "UPDATE", "MESSAGE_TAG")
TAGS = ("CONFIRMED_EVENT_UPDATE", "POST_PURCHASE_UPDATE", "ACCOUNT_UPDATE", "HUMAN_AGENT")
SENDER_ACTIONS = ("typing_on", "typing_off", "mark_seen")
MAX_TEXT = 2000


class GraphError(Exception):
    def __init__(
        self,
        status: int,
        message: str,
        code: int,
        kind: str = "OAuthException",
        subcode: int | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.code, self.kind, self.subcode = (
            status,
            message,
            code,
            kind,
            subcode,
        )

    def response(self) -> Response:
        error: dict[str, Any] = {"message": self.message, "type": self.kind, "code": self.code}
        if self.subcode is not None:
            error["error_subcode"] = self.subcode
        if self.code in (1, 2, 4):
            error["is_transient"] = True
        error["fbtrace_id"] = new_id("A", 10)
        # Graph repeats token errors in a header too (fixed ASCII texts, safe in a header).
        headers = {}
        if self.code in (104, 190):
            headers["WWW-Authenticate"] = (
                f'OAuth "Facebook Platform" "invalid_token" "{self.message}"'
            )
        return JSONResponse({"error": error}, status_code=self.status, headers=headers)


def render_error(status: int, kind: str, message: str) -> Response:
    if status == 429:
        return GraphError(status, "(#4) Application request limit reached", 4).response()
    if status >= 500:
        text = "An unexpected error has occurred. Please retry your request later."
        return GraphError(status, text, 2).response()
    return GraphError(status, message, 1, "GraphMethodException").response()


def _bad(message: str, subcode: int | None = None) -> GraphError:
    return GraphError(400, f"(#100) {message}", 100, subcode=subcode)


async def _params(request: Request) -> dict[str, Any]:
    """Query string plus body; form fields holding JSON objects (recipient=...) are decoded."""
    params: dict[str, Any] = dict(request.query_params)
    raw = await request.body()
    if request.headers.get("content-type", "").startswith("application/json"):
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            raise _bad("Invalid JSON in request body") from None
        if isinstance(body, dict):
            params.update(body)
        return params
    for key, value in urllib.parse.parse_qsl(raw.decode("utf-8", "replace")):
        if key in ("recipient", "message"):
            try:
                params[key] = json.loads(value)
            except ValueError:
                raise _bad(f"Param {key} must be a JSON object") from None
        else:
            params[key] = value
    return params


def _page_for(ctx: SandboxContext, request: Request, params: dict[str, Any]) -> dict[str, Any]:
    scheme, _, bearer = request.headers.get("authorization", "").partition(" ")
    token = params.get("access_token") or (
        bearer.strip() if scheme.lower() in ("bearer", "oauth") else ""
    )
    if not token:
        raise GraphError(400, "An access token is required to request this resource.", 104)
    with ctx.store.section(NAME) as state:
        for page_id, page in state.get("pages", {}).items():
            if page["token"] == token:
                return {"id": page_id, **page}
    raise GraphError(400, "Invalid OAuth access token - Cannot parse access token", 190)


def _check_version(version: str, path: str) -> None:
    if not _VERSION.fullmatch(version):
        raise GraphError(400, f"Unknown path components: /{version}/{path}", 2500)


def _message(params: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """Validate a Send API call the way Graph does; returns (recipient, message or action)."""
    recipient = params.get("recipient")
    if not recipient:
        raise _bad("The parameter recipient is required")
    psid = recipient.get("id") if isinstance(recipient, dict) else None
    if not isinstance(psid, str | int) or not str(psid):
        raise _bad('Param recipient[id] must be a valid ID string (e.g., "123")')
    action = params.get("sender_action")
    if action is not None:
        if action not in SENDER_ACTIONS:
            raise _bad(f"Param sender_action must be one of {{{', '.join(SENDER_ACTIONS)}}}")
        return str(psid), {"sender_action": action}
    message = params.get("message")
    if not message:
        raise _bad("Must send either message or sender action")
    kind = params.get("messaging_type")
    if kind is None:
        raise _bad("The parameter messaging_type is required")
    if kind not in MESSAGING_TYPES:
        raise _bad(
            f'Param messaging_type must be one of {{{", ".join(MESSAGING_TYPES)}}} - got "{kind}"'
        )
    if kind == "MESSAGE_TAG" and params.get("tag") not in TAGS:
        raise _bad(f"Param tag must be one of {{{', '.join(TAGS)}}} for MESSAGE_TAG")
    if not isinstance(message, dict) or not (message.get("text") or message.get("attachment")):
        raise _bad("Message cannot be empty, must provide valid attachment or text")
    text = message.get("text")
    if text is not None and (not isinstance(text, str) or len(text) > MAX_TEXT):
        raise _bad(f"Length of param message[text] must be less than or equal to {MAX_TEXT}")
    # PSIDs are numeric; anything else stands in for a person who never messaged the page.
    if not str(psid).isdigit():
        raise _bad("No matching user found", subcode=2018001)
    return str(psid), {"messaging_type": kind, "tag": params.get("tag"), "message": message}


def _message_rows(ctx: SandboxContext) -> list[list[str]]:
    state = ctx.store.read(NAME)
    pages = state.get("pages", {})
    rows = []
    for sent in reversed(state.get("messages", [])[-200:]):
        message = sent["message"] or {}
        text = message.get("text") or ("[attachment]" if message.get("attachment") else "")
        rows.append(
            [
                html.escape(time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(sent["at"]))),
                html.escape(pages.get(sent["page_id"], {}).get("name", sent["page_id"])),
                f"<code>{html.escape(sent['recipient_id'])}</code>",
                html.escape(sent.get("messaging_type") or sent.get("sender_action") or ""),
                html.escape(text),
            ]
        )
    return rows


_MESSAGE_COLUMNS = ["at (UTC)", "page", "recipient (PSID)", "type", "text"]


def seed(ctx: SandboxContext) -> None:
    """Each demo workspace's own Facebook Page (fixed id and token), allowed to message."""
    with ctx.store.section(NAME) as state:
        pages = state.setdefault("pages", {})
        for demo in DEMO_WORKSPACES:
            pages.setdefault(
                demo.messenger_page_id,
                {
                    "name": demo.messenger_page_name,
                    "token": demo.messenger_page_token,
                    "permissions": ["pages_messaging", "pages_show_list"],
                },
            )


def summary(ctx: SandboxContext) -> list[Section]:
    pages = [
        [
            html.escape(page["name"]),
            f"<code>{html.escape(page_id)}</code>",
            f"<code>{html.escape(page['token'])}</code>",
            html.escape(", ".join(page["permissions"])),
        ]
        for page_id, page in ctx.store.read(NAME).get("pages", {}).items()
    ]
    return [
        Section("Messenger pages", ["name", "page id", "page access token", "permissions"], pages),
        Section(
            "Messenger messages sent",
            _MESSAGE_COLUMNS,
            _message_rows(ctx),
            note=f"Also at <a href='{PREFIX}/_pages/messages'>{PREFIX}/_pages/messages</a>.",
        ),
    ]


def build_router(ctx: SandboxContext) -> APIRouter:
    router = APIRouter()

    @router.post("/_sandbox/pages")
    async def create_page(request: Request) -> JSONResponse:
        raw = await request.body()
        body = json.loads(raw) if raw.strip() else {}
        page_id = str(1 + secrets.randbelow(9)) + "".join(
            secrets.choice(string.digits) for _ in range(14)
        )
        page = {
            "name": str(body.get("name") or "Sandbox Page"),
            "token": "EAAG" + new_id("", 120),
            "permissions": list(body.get("permissions") or ["pages_messaging", "pages_show_list"]),
        }
        with ctx.store.section(NAME) as state:
            state.setdefault("pages", {})[page_id] = page
        return JSONResponse(
            {
                "page_id": page_id,
                "page_access_token": page["token"],
                "name": page["name"],
                "permissions": page["permissions"],
            }
        )

    @router.get("/_pages/messages", response_class=HTMLResponse)
    def messages_page() -> str:
        rows = "".join(
            "<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>"
            for row in _message_rows(ctx)
        )
        head = "".join(f"<th>{html.escape(c)}</th>" for c in _MESSAGE_COLUMNS)
        return (
            "<!doctype html><meta charset='utf-8'><title>Messenger - sent messages</title>"
            "<body style='font:14px system-ui,sans-serif;margin:2rem'>"
            f"<h1>Messages sent by pages</h1><table><tr>{head}</tr>{rows}</table></body>"
        )

    @router.get("/{version}/me", response_model=None)
    async def me(version: str, request: Request) -> Response:
        try:
            _check_version(version, "me")
            page = _page_for(ctx, request, await _params(request))
        except GraphError as error:
            return error.response()
        return JSONResponse({"id": page["id"], "name": page["name"]})

    @router.post("/{version}/{page_id}/messages", response_model=None)
    async def send(version: str, page_id: str, request: Request) -> Response:
        try:
            _check_version(version, f"{page_id}/messages")
            params = await _params(request)
            page = _page_for(ctx, request, params)
            if page_id not in ("me", page["id"]):
                raise GraphError(
                    400,
                    f"Unsupported post request. Object with ID '{page_id}' does not exist, "
                    "cannot be loaded due to missing permissions, or does not support this "
                    "operation. Please read the Graph API documentation at "
                    "https://developers.facebook.com/docs/graph-api",
                    100,
                    "GraphMethodException",
                    subcode=33,
                )
            if "pages_messaging" not in page["permissions"]:
                raise GraphError(
                    403, "(#230) Requires pages_messaging permission to manage the object", 230
                )
            psid, sent = _message(params)
        except GraphError as error:
            return error.response()
        answer: dict[str, Any] = {"recipient_id": psid}
        if "message" in sent:
            answer["message_id"] = "m_" + new_id("", 40)
        with ctx.store.section(NAME) as state:
            state.setdefault("messages", []).append(
                {
                    "page_id": page["id"],
                    "recipient_id": psid,
                    "message_id": answer.get("message_id"),
                    "messaging_type": sent.get("messaging_type"),
                    "tag": sent.get("tag"),
                    "sender_action": sent.get("sender_action"),
                    "message": sent.get("message"),
                    "at": time.time(),
                }
            )
        return JSONResponse(answer)

    return router
