"""The HTTP surface under /google: sandbox set-up endpoints, OAuth, the pages, Drive v3.

Tested in tests/sandbox/test_google.py and tests/integrations/test_google_drive.py (through
google-api-python-client).
"""

from __future__ import annotations

import base64
import json
import time
import urllib.parse
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from starlette.responses import Response

from backend.sandbox.context import SandboxContext
from backend.sandbox.demo_accounts import DEMO_WORKSPACES
from backend.sandbox.google.drive import (
    DEFAULT_FILE_FIELDS,
    DEFAULT_PERMISSION_FIELDS,
    add_permission,
    apply_body,
    caller,
    create_file,
    drop_file,
    find_file,
    ordered,
    page_offset,
    page_size,
    parse_related,
    present,
    requested_fields,
    role_of,
    root_id,
    set_parents,
)
from backend.sandbox.google.errors import GoogleError, OAuthError, answers_errors
from backend.sandbox.google.oauth import check_authorize, service_account, token_grant, with_query
from backend.sandbox.google.pages import consent_page, drive_page
from backend.sandbox.google.query import (
    QueryError,
    compile_query,
    select_fields,
)
from backend.sandbox.google.state import (
    DEFAULT_TTL,
    PREFIX,
    json_body,
    open_state,
    random_digits,
    read_form,
    token_uri,
)
from backend.sandbox.store import new_id


def build_router(ctx: SandboxContext) -> APIRouter:
    router = APIRouter()

    @router.post("/_sandbox/service_accounts")
    async def create_service_account(request: Request) -> JSONResponse:
        body = await json_body(request)
        return JSONResponse(service_account(ctx, body))

    @router.get("/_sandbox/demo/{slug}/service_account.json")
    def demo_service_account(slug: str) -> JSONResponse:
        """A demo workspace's own service-account key file: made at the first download and
        kept, so every later download is the same file (its URLs follow the sandbox's)."""
        demo = next((d for d in DEMO_WORKSPACES if d.slug == slug), None)
        if demo is None:
            return JSONResponse({"error": f"no demo workspace {slug!r}"}, status_code=404)
        with open_state(ctx) as state:
            saved = state.setdefault("demo_keys", {}).get(slug)
        if saved is None:
            made = service_account(ctx, {"project_id": demo.google_project, "name": "hub"})
            with open_state(ctx) as state:
                saved = state["demo_keys"].setdefault(slug, made)
        current = {
            "auth_uri": f"{ctx.public_url}{PREFIX}/_pages/o/oauth2/auth",
            "token_uri": token_uri(ctx),
        }
        return JSONResponse(
            dict(saved) | current,
            headers={"Content-Disposition": f'attachment; filename="{slug}-service-account.json"'},
        )

    @router.post("/_sandbox/oauth_clients")
    async def create_oauth_client(request: Request) -> JSONResponse:
        body = await json_body(request)
        client_id = f"{random_digits(12)}-{new_id('', 32).lower()}.apps.googleusercontent.com"
        client = {
            "name": str(body.get("name") or "Sandbox app"),
            "client_secret": "GOCSPX-" + new_id("", 28),
            "redirect_uris": [str(u) for u in body.get("redirect_uris", [])],
        }
        with open_state(ctx) as state:
            state["oauth_clients"][client_id] = client
        return JSONResponse(
            {
                "client_id": client_id,
                **client,
                "auth_uri": f"{ctx.public_url}{PREFIX}/_pages/o/oauth2/auth",
                "token_uri": token_uri(ctx),
            }
        )

    @router.api_route("/_sandbox/settings", methods=["GET", "POST"])
    async def settings(request: Request) -> JSONResponse:
        body = await json_body(request) if request.method == "POST" else {}
        with open_state(ctx) as state:
            if "access_token_ttl" in body:
                state["settings"]["access_token_ttl"] = int(body["access_token_ttl"])
            if "refresh_token_ttl" in body:
                # Seconds a refresh token issued from now on lasts (Google: 7 days for an app
                # in "testing"); null or 0: until revoked, as a published app's.
                ttl = body["refresh_token_ttl"]
                state["settings"]["refresh_token_ttl"] = int(ttl) if ttl else None
            return JSONResponse(
                {"access_token_ttl": DEFAULT_TTL, "refresh_token_ttl": None} | state["settings"]
            )

    @router.post("/oauth2/token")
    @answers_errors
    async def token(request: Request) -> Response:
        form = await read_form(request)
        with open_state(ctx) as state:
            answer = token_grant(ctx, state, form, request)
        # Token responses must not be cached (RFC 6749 section 5.1).
        return JSONResponse(answer, headers={"Cache-Control": "no-store", "Pragma": "no-cache"})

    @router.post("/oauth2/revoke")
    @answers_errors
    async def revoke(request: Request) -> Response:
        form = await read_form(request)
        value = form.get("token") or request.query_params.get("token", "")
        with open_state(ctx) as state:
            if state["refresh_tokens"].pop(value, None) is not None:
                state["access_tokens"] = {
                    k: v for k, v in state["access_tokens"].items() if v["refresh_token"] != value
                }
            elif state["access_tokens"].pop(value, None) is None:
                raise OAuthError(400, "invalid_token", "Token expired or revoked")
        return Response(status_code=200)

    @router.get("/_pages/o/oauth2/auth", response_class=HTMLResponse)
    async def authorize(request: Request) -> HTMLResponse:
        params = dict(request.query_params)
        with open_state(ctx) as state:
            refused = check_authorize(state, params)
            name = state["oauth_clients"].get(params.get("client_id", ""), {}).get("name", "")
        return refused if refused is not None else HTMLResponse(consent_page(params, name))

    @router.post("/_pages/o/oauth2/consent", response_model=None)
    async def consent(request: Request) -> Response:
        params = dict(
            urllib.parse.parse_qsl((await request.body()).decode(), keep_blank_values=True)
        )
        with open_state(ctx) as state:
            refused = check_authorize(state, params)
            if refused is not None:
                return refused
            back: dict[str, str] = {}
            if params.get("decision") == "allow":
                code = "4/0" + new_id("", 60)
                state["codes"][code] = {
                    "client_id": params["client_id"],
                    "redirect_uri": params["redirect_uri"],
                    "scope": params["scope"],
                    "subject": params.get("email") or "user@example.com",
                    "offline": params.get("access_type") == "offline",
                    "expires_at": time.time() + 600,
                }
                back = {"code": code, "scope": params["scope"]}
            else:
                back = {"error": "access_denied"}
        if "state" in params:
            back["state"] = params["state"]
        return RedirectResponse(with_query(params["redirect_uri"], back), status_code=302)

    @router.get("/_pages/drive/folders/{file_id}", response_class=HTMLResponse)
    def folder_page(file_id: str) -> HTMLResponse:
        return drive_page(ctx, file_id)

    @router.get("/_pages/file/d/{file_id}/view", response_class=HTMLResponse)
    def file_page(file_id: str) -> HTMLResponse:
        return drive_page(ctx, file_id)

    @router.post("/drive/v3/files")
    @answers_errors
    async def files_create(request: Request) -> Response:
        return create_file(ctx, request, await json_body(request), None)

    @router.post("/upload/drive/v3/files")
    @answers_errors
    async def files_upload(request: Request) -> Response:
        upload_type = request.query_params.get("uploadType", "")
        raw = await request.body()
        content_type = request.headers.get("content-type", "application/octet-stream")
        if upload_type == "multipart":
            metadata, media = parse_related(content_type, raw)
            return create_file(ctx, request, metadata, media)
        if upload_type == "media":
            return create_file(ctx, request, {"mimeType": content_type.split(";")[0]}, raw)
        raise GoogleError(
            400,
            f"uploadType {upload_type or '(none)'} is not emulated; use multipart or media.",
            "invalid",
            location="uploadType",
        )

    @router.get("/drive/v3/files")
    @answers_errors
    async def files_list(request: Request) -> Response:
        tree = requested_fields(
            request,
            {
                "kind": None,
                "nextPageToken": None,
                "incompleteSearch": None,
                "files": DEFAULT_FILE_FIELDS,
            },
        )
        size, offset = page_size(request), page_offset(request)
        with open_state(ctx) as state:
            subject = caller(state, request, write=False)
            root = root_id(state, subject)
            try:
                matches = compile_query(
                    request.query_params.get("q", ""), lambda v: root if v == "root" else v
                )
            except QueryError:
                raise GoogleError(400, "Invalid Value", "invalid", location="q") from None
            roots = set(state["roots"].values())
            found = [
                present(ctx, state, f)
                for f in state["files"].values()
                if f["id"] not in roots and role_of(state, f, subject, by_link=False)
            ]
            found = ordered(
                [f for f in found if matches(f)], request.query_params.get("orderBy", "")
            )
        answer: dict[str, Any] = {
            "kind": "drive#fileList",
            "incompleteSearch": False,
            "files": found[offset : offset + size],
        }
        if offset + size < len(found):
            answer["nextPageToken"] = (
                base64.urlsafe_b64encode(json.dumps({"o": offset + size}).encode())
                .decode()
                .rstrip("=")
            )
        return JSONResponse(select_fields(answer, tree))

    @router.get("/drive/v3/files/{file_id}")
    @answers_errors
    async def files_get(file_id: str, request: Request) -> Response:
        tree = requested_fields(request, DEFAULT_FILE_FIELDS)
        if request.query_params.get("alt") == "media":
            raise GoogleError(400, "Downloads are not emulated.", "invalid", location="alt")
        with open_state(ctx) as state:
            subject = caller(state, request, write=False)
            record = present(ctx, state, find_file(state, file_id, subject))
        return JSONResponse(select_fields(record, tree))

    @router.patch("/drive/v3/files/{file_id}")
    @answers_errors
    async def files_update(file_id: str, request: Request) -> Response:
        tree = requested_fields(request, DEFAULT_FILE_FIELDS)
        body = await json_body(request)
        add = [p for p in request.query_params.get("addParents", "").split(",") if p]
        remove = [p for p in request.query_params.get("removeParents", "").split(",") if p]
        if "parents" in body:
            raise GoogleError(
                403,
                "The parents field is not directly writable in update "
                "requests. Use the addParents and removeParents parameters "
                "instead.",
                "fieldNotWritable",
            )
        with open_state(ctx) as state:
            subject = caller(state, request, write=True)
            record = find_file(state, file_id, subject, need=3)
            parents = [p for p in record["parents"] if p not in remove] + add
            apply_body(record, body)
            if add or remove:
                set_parents(state, record, parents, subject)
            record["version"] = str(int(record["version"]) + 1)
            return JSONResponse(select_fields(present(ctx, state, record), tree))

    @router.delete("/drive/v3/files/{file_id}")
    @answers_errors
    async def files_delete(file_id: str, request: Request) -> Response:
        with open_state(ctx) as state:
            subject = caller(state, request, write=True)
            drop_file(state, find_file(state, file_id, subject, need=4)["id"])
        return Response(status_code=204)

    @router.post("/drive/v3/files/{file_id}/permissions")
    @answers_errors
    async def permissions_create(file_id: str, request: Request) -> Response:
        tree = requested_fields(request, DEFAULT_PERMISSION_FIELDS)
        body = await json_body(request)
        with open_state(ctx) as state:
            subject = caller(state, request, write=True)
            record = find_file(state, file_id, subject)
            role = role_of(state, record, subject, by_link=True)
            if role < 3 or (role == 3 and not record.get("writersCanShare", True)):
                raise GoogleError(
                    403,
                    "The user does not have sufficient permissions for this file.",
                    "insufficientFilePermissions",
                )
            permission = add_permission(request, state, record, body)
        return JSONResponse(select_fields(permission, tree))

    return router
