"""Zoho Books: the self-client refresh-token grant and the organizations list, which is all the
product calls to test a connection.

Zoho's accounts server answers a bad refresh token or client with HTTP 200 and
``{"error": "invalid_code"}`` / ``{"error": "invalid_client"}``; the Books API answers
``{"code": <n>, "message": ...}`` with a 4xx. A client id, secret, refresh token and its
organizations come from ``POST /zoho/_sandbox/clients``.
"""

from __future__ import annotations

import html
import json
import secrets
import time
import urllib.parse
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.responses import Response

from backend.sandbox.context import SandboxContext, Section
from backend.sandbox.demo_accounts import DEMO_WORKSPACES
from backend.sandbox.store import new_id

NAME = "zoho"
PREFIX = "/zoho"

TOKEN_TTL = 3600


def render_error(status: int, kind: str, message: str) -> Response:
    # Books' error shape; code 44 is "too many requests", 1 a generic internal error.
    return JSONResponse(
        {"code": 44 if status == 429 else 1, "message": message}, status_code=status
    )


def _hex(n: int) -> str:
    return secrets.token_hex(n // 2)


def _digits(n: int) -> str:
    return str(1 + secrets.randbelow(9)) + "".join(str(secrets.randbelow(10)) for _ in range(n - 1))


async def _params(request: Request) -> dict[str, str]:
    """Zoho's examples send the grant in the query string of a POST; forms work too."""
    params = dict(request.query_params)
    raw = await request.body()
    if raw and not request.headers.get("content-type", "").startswith("application/json"):
        params.update(urllib.parse.parse_qsl(raw.decode("utf-8", "replace")))
    return params


def _token_grant(state: dict[str, Any], params: dict[str, str]) -> dict[str, Any]:
    if params.get("grant_type") != "refresh_token":
        return {"error": "unsupported_grant_type"}
    client = state.get("clients", {}).get(params.get("client_id", ""))
    if client is None or not secrets.compare_digest(
        client["client_secret"], params.get("client_secret", "")
    ):
        return {"error": "invalid_client"}
    refresh = state.get("refresh_tokens", {}).get(params.get("refresh_token", ""))
    if refresh is None or refresh["client_id"] != params["client_id"] or refresh.get("revoked"):
        return {"error": "invalid_code"}
    now = time.time()
    tokens: dict[str, Any] = state.setdefault("access_tokens", {})
    for stale in [t for t, v in tokens.items() if v["expires_at"] < now]:
        del tokens[stale]
    token = f"1000.{_hex(32)}.{_hex(32)}"
    tokens[token] = {"client_id": refresh["client_id"], "expires_at": now + TOKEN_TTL}
    return {
        "access_token": token,
        "scope": refresh["scope"],
        "api_domain": "https://www.zohoapis.com",
        "token_type": "Bearer",
        "expires_in": TOKEN_TTL,
    }


def _caller(state: dict[str, Any], request: Request) -> dict[str, Any] | None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme != "Zoho-oauthtoken":
        return None
    record = state.get("access_tokens", {}).get(token.strip())
    if record is None or record["expires_at"] < time.time():
        return None
    client: dict[str, Any] = state["clients"][record["client_id"]]
    return client


def seed(ctx: SandboxContext) -> None:
    """Each demo workspace's own self client (fixed id, secret and refresh token), with one
    organization."""
    with ctx.store.section(NAME) as state:
        clients = state.setdefault("clients", {})
        refresh_tokens = state.setdefault("refresh_tokens", {})
        for demo in DEMO_WORKSPACES:
            clients.setdefault(
                demo.zoho_client_id,
                {
                    "client_secret": demo.zoho_client_secret,
                    "refresh_token": demo.zoho_refresh_token,
                    "orgs": [
                        {
                            "organization_id": demo.zoho_organization_id,
                            "name": demo.name,
                            "currency_code": "USD",
                            "is_default_org": True,
                        }
                    ],
                },
            )
            refresh_tokens.setdefault(
                demo.zoho_refresh_token,
                {"client_id": demo.zoho_client_id, "scope": "ZohoBooks.fullaccess.all"},
            )


def summary(ctx: SandboxContext) -> list[Section]:
    state = ctx.store.read(NAME)
    rows = [
        [
            f"<code>{html.escape(client_id)}</code>",
            f"<code>{html.escape(client['client_secret'])}</code>",
            f"<code>{html.escape(client['refresh_token'])}</code>",
            html.escape(", ".join(f"{o['name']} ({o['organization_id']})" for o in client["orgs"])),
        ]
        for client_id, client in state.get("clients", {}).items()
    ]
    return [
        Section(
            "Zoho Books self clients",
            ["client_id", "client_secret", "refresh_token", "organizations"],
            rows,
            note=f"POST {PREFIX}/_sandbox/clients for another.",
        )
    ]


def build_router(ctx: SandboxContext) -> APIRouter:
    router = APIRouter()

    @router.post("/_sandbox/clients")
    async def create_client(request: Request) -> JSONResponse:
        """JSON: {"organizations": ["Lakeside Events", ...], "scope": "..."}; all optional."""
        raw = await request.body()
        body = json.loads(raw) if raw.strip() else {}
        names = [str(n) for n in body.get("organizations") or ["Sandbox Books Org"]]
        orgs = [
            {
                "organization_id": _digits(9),
                "name": name,
                "currency_code": "USD",
                "is_default_org": i == 0,
            }
            for i, name in enumerate(names)
        ]
        client_id = "1000." + new_id("", 30).upper()
        refresh_token = f"1000.{_hex(32)}.{_hex(32)}"
        scope = str(body.get("scope") or "ZohoBooks.fullaccess.all")
        client = {
            "client_secret": _hex(42),
            "refresh_token": refresh_token,
            "orgs": orgs,
        }
        with ctx.store.section(NAME) as state:
            state.setdefault("clients", {})[client_id] = client
            state.setdefault("refresh_tokens", {})[refresh_token] = {
                "client_id": client_id,
                "scope": scope,
            }
        return JSONResponse(
            {
                "client_id": client_id,
                "client_secret": client["client_secret"],
                "refresh_token": refresh_token,
                "organization_id": orgs[0]["organization_id"],
                "organizations": orgs,
            }
        )

    @router.post("/_sandbox/revoke")
    async def revoke(request: Request) -> JSONResponse:
        """JSON: {"refresh_token": ...}; later grants with it answer invalid_code."""
        body = json.loads(await request.body() or b"{}")
        with ctx.store.section(NAME) as state:
            record = state.get("refresh_tokens", {}).get(str(body.get("refresh_token")))
            if record is not None:
                record["revoked"] = True
        return JSONResponse({"revoked": record is not None})

    @router.post("/oauth/v2/token")
    async def token(request: Request) -> JSONResponse:
        params = await _params(request)
        with ctx.store.section(NAME) as state:
            answer = _token_grant(state, params)
        # Zoho answers grant errors with 200 and an "error" key, and so does the emulator.
        return JSONResponse(answer)

    @router.get("/books/v3/organizations")
    def organizations(request: Request) -> JSONResponse:
        with ctx.store.section(NAME) as state:
            client = _caller(state, request)
            orgs = list(client["orgs"]) if client is not None else None
        if orgs is None:
            return JSONResponse(
                {"code": 57, "message": "You are not authorized to perform this operation"},
                status_code=401,
            )
        return JSONResponse({"code": 0, "message": "success", "organizations": orgs})

    return router
