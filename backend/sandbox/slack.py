"""Slack: the Web API methods the product calls, ``auth.test`` and ``chat.postMessage``.

Slack answers almost everything with HTTP 200 and ``{"ok": false, "error": "..."}``; only rate
limiting is a real 429 (with Retry-After). Bot tokens, their workspace and the channels the bot
is in come from ``POST /slack/_sandbox/tokens``; posted messages show on the control page and
are listed by ``GET /slack/_sandbox/messages`` (what a channel would show, for tests and people).
"""

from __future__ import annotations

import html
import json
import re
import time
import urllib.parse
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.responses import Response

from backend.sandbox.context import SandboxContext, Section
from backend.sandbox.demo_accounts import DEMO_WORKSPACES
from backend.sandbox.store import new_id

NAME = "slack"
PREFIX = "/slack"

MAX_TEXT = 40_000


def render_error(status: int, kind: str, message: str) -> Response:
    error = "ratelimited" if status == 429 else "fatal_error"
    return JSONResponse({"ok": False, "error": error}, status_code=status)


class SlackError(Exception):
    """An ``ok: false`` answer; Slack sends these with HTTP 200."""

    def __init__(self, error: str) -> None:
        super().__init__(error)
        self.error = error


def _slack_id(prefix: str) -> str:
    return prefix + new_id("", 10).upper()


def _channel_name(name: str) -> str:
    return name.lstrip("#").lower()


async def _arguments(request: Request) -> tuple[dict[str, Any], str]:
    """Method arguments and the token. Slack reads a token from the Authorization header, or
    from a form/query field; a JSON body's own "token" key is ignored, as Slack ignores it."""
    args: dict[str, Any] = dict(request.query_params)
    token = args.pop("token", "")
    raw = await request.body()
    if request.headers.get("content-type", "").startswith("application/json"):
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            raise SlackError("invalid_json") from None
        if not isinstance(body, dict):
            raise SlackError("json_not_object")
        body.pop("token", None)
        args.update(body)
    else:
        form = dict(urllib.parse.parse_qsl(raw.decode("utf-8", "replace")))
        token = form.pop("token", token)
        args.update(form)
    scheme, _, bearer = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and bearer.strip():
        token = bearer.strip()
    return args, token


def _bot(state: dict[str, Any], token: str) -> dict[str, Any]:
    if not token:
        raise SlackError("not_authed")
    bot: dict[str, Any] | None = state.get("tokens", {}).get(token)
    if bot is None:
        raise SlackError("invalid_auth")
    return bot


def _next_ts(state: dict[str, Any]) -> str:
    # Message ts is the channel-unique id of a message: seconds.micros, strictly increasing.
    micros = max(int(time.time() * 1_000_000), int(state.get("last_ts_us", 0)) + 1)
    state["last_ts_us"] = micros
    return f"{micros // 1_000_000}.{micros % 1_000_000:06d}"


def _auth_test(state: dict[str, Any], bot: dict[str, Any], args: dict[str, Any]) -> dict[str, Any]:
    return {
        "ok": True,
        "url": f"https://{bot['domain']}.slack.com/",
        "team": bot["team"],
        "user": bot["user"],
        "team_id": bot["team_id"],
        "user_id": bot["user_id"],
        "bot_id": bot["bot_id"],
        "is_enterprise_install": False,
    }


def _metadata(raw: Any) -> dict[str, Any] | None:
    """A message's ``metadata``: {"event_type": "...", "event_payload": {...}}, as an object or
    (form-encoded calls) a JSON string. Slack refuses any other shape."""
    if raw is None or raw == "":
        return None
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError:
            raise SlackError("invalid_metadata_format") from None
    if (
        not isinstance(raw, dict)
        or not isinstance(raw.get("event_type"), str)
        or not isinstance(raw.get("event_payload", {}), dict)
    ):
        raise SlackError("invalid_metadata_format")
    return {"event_type": raw["event_type"], "event_payload": raw.get("event_payload", {})}


def _post_message(
    state: dict[str, Any], bot: dict[str, Any], args: dict[str, Any]
) -> dict[str, Any]:
    wanted = str(args.get("channel") or "")
    channels: dict[str, str] = bot["channels"]  # name -> id
    channel_id = wanted if wanted in channels.values() else channels.get(_channel_name(wanted))
    if channel_id is None:
        raise SlackError("channel_not_found")
    blocks = args.get("blocks")
    if isinstance(blocks, str):  # form-encoded calls send blocks as a JSON string
        try:
            blocks = json.loads(blocks)
        except ValueError:
            raise SlackError("invalid_blocks") from None
    text = str(args.get("text") or "")
    if not text and not blocks and not args.get("attachments"):
        raise SlackError("no_text")
    if len(text) > MAX_TEXT:
        raise SlackError("msg_too_long")
    metadata = _metadata(args.get("metadata"))
    ts = _next_ts(state)
    message: dict[str, Any] = {
        "type": "message",
        "subtype": "bot_message",
        "text": text,
        "user": bot["user_id"],
        "bot_id": bot["bot_id"],
        "team": bot["team_id"],
        "ts": ts,
    }
    if blocks:
        message["blocks"] = blocks
    if args.get("thread_ts"):
        message["thread_ts"] = str(args["thread_ts"])
    if metadata is not None:
        message["metadata"] = metadata
    name = next(n for n, i in channels.items() if i == channel_id)
    state.setdefault("messages", []).append(
        {"team": bot["team"], "channel": f"#{name}", "at": time.time()} | message
    )
    return {"ok": True, "channel": channel_id, "ts": ts, "message": message}


_METHODS = {"auth.test": _auth_test, "chat.postMessage": _post_message}


def seed(ctx: SandboxContext) -> None:
    """Each demo workspace's own Slack bot (fixed token), in #general and #alerts."""
    with ctx.store.section(NAME) as state:
        tokens = state.setdefault("tokens", {})
        for demo in DEMO_WORKSPACES:
            tag = demo.slack_team_id[1:]
            tokens.setdefault(
                demo.slack_bot_token,
                {
                    "team": demo.slack_team,
                    "team_id": demo.slack_team_id,
                    "domain": re.sub(r"[^a-z0-9-]+", "-", demo.slack_team.lower()).strip("-"),
                    "user": "integrations-hub",
                    "user_id": f"U{tag}",
                    "bot_id": f"B{tag}",
                    "channels": {"general": f"C{tag}1", "alerts": f"C{tag}2"},
                },
            )


def summary(ctx: SandboxContext) -> list[Section]:
    state = ctx.store.read(NAME)
    bots = [
        [
            html.escape(bot["team"]),
            f"<code>{html.escape(token)}</code>",
            html.escape(bot["user"]),
            html.escape(", ".join(f"#{n} ({i})" for n, i in bot["channels"].items())),
        ]
        for token, bot in state.get("tokens", {}).items()
    ]
    messages = [
        [
            html.escape(time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(m["at"]))),
            html.escape(m["team"]),
            html.escape(m["channel"]),
            html.escape(m["text"] or ("[blocks]" if m.get("blocks") else "")),
            html.escape(m["ts"]),
        ]
        for m in reversed(state.get("messages", [])[-200:])
    ]
    return [
        Section("Slack bot tokens", ["workspace", "token", "bot user", "channels"], bots),
        Section(
            "Slack messages posted", ["at (UTC)", "workspace", "channel", "text", "ts"], messages
        ),
    ]


def build_router(ctx: SandboxContext) -> APIRouter:
    router = APIRouter()

    @router.post("/_sandbox/tokens")
    async def create_token(request: Request) -> JSONResponse:
        raw = await request.body()
        body = json.loads(raw) if raw.strip() else {}
        team = str(body.get("team") or "Sandbox Workspace")
        names = [_channel_name(c) for c in body.get("channels") or ["#general", "#alerts"]]
        bot: dict[str, Any] = {
            "team": team,
            "team_id": _slack_id("T"),
            "domain": re.sub(r"[^a-z0-9-]+", "-", team.lower()).strip("-") or "sandbox",
            "user": str(body.get("bot_name") or "integrations-hub"),
            "user_id": _slack_id("U"),
            "bot_id": _slack_id("B"),
            "channels": {name: _slack_id("C") for name in names},
        }
        token = f"xoxb-{new_id('', 12)}-{new_id('', 12)}-{new_id('', 24)}"
        with ctx.store.section(NAME) as state:
            state.setdefault("tokens", {})[token] = bot
        return JSONResponse(
            {
                "token": token,
                "team": team,
                "team_id": bot["team_id"],
                "bot_user_id": bot["user_id"],
                "channels": [f"#{n}" for n in names],
                "channel_ids": {f"#{n}": i for n, i in bot["channels"].items()},
            }
        )

    @router.get("/_sandbox/messages")
    def messages(team: str = "", channel: str = "") -> JSONResponse:
        """Every message a bot posted with chat.postMessage, oldest first, as the control page
        lists them: {"messages": [{"team", "channel", "text", "ts", "metadata"?, ...}]}.
        ``team`` (the Slack workspace's id, T…) and ``channel`` ("#alerts") narrow the list."""
        wanted = _channel_name(channel)
        found = [
            m
            for m in ctx.store.read(NAME).get("messages", [])
            if (not team or m["team"] == team)
            and (not wanted or _channel_name(m["channel"]) == wanted)
        ]
        return JSONResponse({"messages": found})

    @router.api_route("/api/{method}", methods=["GET", "POST"])
    async def api(method: str, request: Request) -> JSONResponse:
        handler = _METHODS.get(method)
        try:
            if handler is None:
                raise SlackError("unknown_method")
            args, token = await _arguments(request)
            with ctx.store.section(NAME) as state:
                answer = handler(state, _bot(state, token), args)
        except SlackError as error:
            answer = {"ok": False, "error": error.error}
            if error.error == "unknown_method":
                answer["req_method"] = method
        return JSONResponse(answer)

    return router
