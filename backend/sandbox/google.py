"""Google: OAuth 2.0 token endpoint, consent page and the slice of Drive v3 the product uses.

Reached through the official clients with only URLs changed: a service-account JSON from
``POST /google/_sandbox/service_accounts`` carries ``token_uri`` = this emulator, so
``google.oauth2.service_account.Credentials`` signs its RS256 JWT locally and the token endpoint
verifies it against the registered public key; the Drive discovery document gets
``rootUrl = {sandbox}/google/``. People use ``/google/_pages/o/oauth2/auth`` to consent.

Drive keeps Google's access model in small: a file is visible to its owner and to whoever it
(or a folder above it) is shared with, and each principal has a "My Drive" root folder.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import html
import json
import secrets
import time
import urllib.parse
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from typing import Any, ParamSpec

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from starlette.responses import Response

from backend.sandbox.context import SandboxContext, Section
from backend.sandbox.demo_accounts import DEMO_WORKSPACES
from backend.sandbox.google_query import (
    FieldTree,
    QueryError,
    compile_query,
    parse_fields,
    select_fields,
)
from backend.sandbox.store import new_id

NAME = "google"
PREFIX = "/google"

FOLDER = "application/vnd.google-apps.folder"
DEFAULT_TTL = 3599
# The hub's own OAuth client, there from the start like Stripe's platform account: the sandbox
# defaults of HUB_GOOGLE_CLIENT_ID / HUB_GOOGLE_CLIENT_SECRET. Any redirect URI is accepted.
SANDBOX_CLIENT_ID = "100000000000-sandboxintegrationshub0000000000.apps.googleusercontent.com"
SANDBOX_CLIENT_SECRET = "GOCSPX-SandboxIntegrationsHub000000000"  # noqa: S105 - sandbox only
GOOGLE_OAUTH_AUDIENCE = "https://oauth2.googleapis.com/token"
_SCOPE = "https://www.googleapis.com/auth/"
WRITE_SCOPES = {_SCOPE + s for s in ("drive", "drive.file", "drive.appdata")}
READ_SCOPES = WRITE_SCOPES | {
    _SCOPE + s for s in ("drive.readonly", "drive.metadata", "drive.metadata.readonly")
}
_ROLE_RANK = {
    "reader": 1,
    "commenter": 2,
    "writer": 3,
    "fileOrganizer": 3,
    "organizer": 3,
    "owner": 4,
}
# What files.create/update accept in the body; Drive refuses read-only fields (id, webViewLink).
_WRITABLE = {
    "name",
    "mimeType",
    "parents",
    "description",
    "appProperties",
    "properties",
    "starred",
    "folderColorRgb",
    "originalFilename",
    "createdTime",
    "modifiedTime",
    "writersCanShare",
    "copyRequiresWriterPermission",
    "contentHints",
    "trashed",
}
_DEFAULT_FILE_FIELDS: FieldTree = {"kind": None, "id": None, "name": None, "mimeType": None}
_DEFAULT_PERMISSION_FIELDS: FieldTree = {"kind": None, "id": None, "type": None, "role": None}
_UNAUTHENTICATED = (
    "Request had invalid authentication credentials. Expected OAuth 2 access token, login "
    "cookie or other valid authentication credential. See "
    "https://developers.google.com/identity/sign-in/web/devconsole-project."
)
_STATUS = {
    400: ("INVALID_ARGUMENT", "badRequest"),
    401: ("UNAUTHENTICATED", "authError"),
    403: ("PERMISSION_DENIED", "forbidden"),
    404: ("NOT_FOUND", "notFound"),
    429: ("RESOURCE_EXHAUSTED", "rateLimitExceeded"),
    500: ("INTERNAL", "backendError"),
    503: ("UNAVAILABLE", "backendError"),
    504: ("DEADLINE_EXCEEDED", "backendError"),
}


# --- errors ---------------------------------------------------------------------------------


class GoogleError(Exception):
    """An API error in Google's JSON shape (Drive, and anything under /google but OAuth)."""

    def __init__(
        self,
        status: int,
        message: str,
        reason: str | None = None,
        *,
        location: str | None = None,
        location_type: str = "parameter",
        detail: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.reason = status, message, reason
        self.location, self.location_type, self.detail = location, location_type, detail

    def response(self) -> Response:
        api_status, default_reason = _STATUS.get(self.status, ("UNKNOWN", "unknown"))
        item: dict[str, str] = {
            "message": self.detail or self.message,
            "domain": "global",
            "reason": self.reason or default_reason,
        }
        if self.location:
            item |= {"location": self.location, "locationType": self.location_type}
        body = {
            "error": {
                "code": self.status,
                "message": self.message,
                "errors": [item],
                "status": api_status,
            }
        }
        headers = {}
        if self.status == 401:
            headers["WWW-Authenticate"] = 'Bearer realm="https://accounts.google.com/"'
        return JSONResponse(body, status_code=self.status, headers=headers)


class OAuthError(Exception):
    """The token endpoint's own shape: {"error": "invalid_grant", "error_description": ...}."""

    def __init__(self, status: int, error: str, description: str) -> None:
        super().__init__(description)
        self.status, self.error, self.description = status, error, description

    def response(self) -> Response:
        body = {"error": self.error, "error_description": self.description}
        return JSONResponse(body, status_code=self.status)


def render_error(status: int, kind: str, message: str) -> Response:
    return GoogleError(status, message).response()


P = ParamSpec("P")


def _answers_errors(fn: Callable[P, Awaitable[Response]]) -> Callable[P, Awaitable[Response]]:
    """Turn GoogleError/OAuthError raised anywhere in a route into Google's response."""

    @functools.wraps(fn)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> Response:
        try:
            return await fn(*args, **kwargs)
        except (GoogleError, OAuthError) as error:
            return error.response()

    return wrapper


# --- state ----------------------------------------------------------------------------------

_KEYS = (
    "service_accounts",
    "oauth_clients",
    "codes",
    "access_tokens",
    "refresh_tokens",
    "files",
    "roots",
    "settings",
    "notifications",
)


@contextmanager
def _state(ctx: SandboxContext) -> Iterator[dict[str, Any]]:
    with ctx.store.section(NAME) as state:
        for key in _KEYS:
            state.setdefault(key, [] if key == "notifications" else {})
        state["oauth_clients"].setdefault(
            SANDBOX_CLIENT_ID,
            {
                "name": "Integrations Hub (sandbox)",
                "client_secret": SANDBOX_CLIENT_SECRET,
                "redirect_uris": [],
            },
        )
        yield state


def _rfc3339(at: float | None = None) -> str:
    moment = datetime.fromtimestamp(time.time() if at is None else at, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _digits(n: int) -> str:
    return str(secrets.randbelow(9) + 1) + "".join(str(secrets.randbelow(10)) for _ in range(n - 1))


def _token_uri(ctx: SandboxContext) -> str:
    return f"{ctx.public_url}{PREFIX}/oauth2/token"


async def _form(request: Request) -> dict[str, str]:
    """Form fields (or a JSON object, which Google's token endpoint also takes)."""
    raw = await request.body()
    if request.headers.get("content-type", "").startswith("application/json"):
        try:
            data = json.loads(raw or b"{}")
        except ValueError:
            raise OAuthError(400, "invalid_request", "Invalid JSON payload received.") from None
        return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}
    return dict(urllib.parse.parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True))


async def _json_body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        data = json.loads(raw)
    except ValueError:
        raise GoogleError(400, "Invalid JSON payload received.", "parseError") from None
    if not isinstance(data, dict):
        raise GoogleError(400, "Invalid JSON payload received.", "parseError")
    return data


# --- OAuth ----------------------------------------------------------------------------------


def _b64decode(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def _verify_assertion(state: dict[str, Any], assertion: str, audiences: set[str]) -> dict[str, Any]:
    """The claims of a service-account JWT, checked the way Google's token endpoint checks."""
    try:
        head_b64, claims_b64, signature_b64 = assertion.split(".")
        header = json.loads(_b64decode(head_b64))
        claims = json.loads(_b64decode(claims_b64))
        signature = _b64decode(signature_b64)
    except ValueError:
        raise OAuthError(400, "invalid_grant", "Invalid JWT: malformed assertion.") from None
    account = state["service_accounts"].get(claims.get("iss"))
    if account is None:
        raise OAuthError(400, "invalid_grant", "Invalid grant: account not found")
    keys: dict[str, str] = account["keys"]
    kid = header.get("kid")
    candidates = [keys[kid]] if kid in keys else ([] if kid else list(keys.values()))
    signed = f"{head_b64}.{claims_b64}".encode()
    for pem in candidates if header.get("alg") == "RS256" else []:
        public_key = serialization.load_pem_public_key(pem.encode())
        assert isinstance(public_key, rsa.RSAPublicKey)
        try:
            public_key.verify(signature, signed, padding.PKCS1v15(), hashes.SHA256())
            break
        except InvalidSignature:
            continue
    else:
        raise OAuthError(400, "invalid_grant", "Invalid JWT Signature.")
    if claims.get("aud") not in audiences:
        raise OAuthError(
            400,
            "invalid_grant",
            "Invalid JWT: Failed audience check. The expected value was "
            f"{GOOGLE_OAUTH_AUDIENCE}, "
            f"but the actual value was {claims.get('aud')}",
        )
    now = time.time()
    iat, exp = float(claims.get("iat", 0)), float(claims.get("exp", 0))
    if exp < now or iat > now + 300 or exp - iat > 3600:
        raise OAuthError(
            400,
            "invalid_grant",
            "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable "
            "timeframe. Check your iat and exp values in the JWT claim.",
        )
    if not claims.get("scope"):
        raise OAuthError(400, "invalid_scope", "Invalid OAuth scope or ID token audience provided.")
    return dict(claims)


def _issue(state: dict[str, Any], subject: str, scope: str, refresh: str | None) -> dict[str, Any]:
    ttl = int(state["settings"].get("access_token_ttl", DEFAULT_TTL))
    now = time.time()
    # Expired tokens are only kept until the next issue: enough to answer them with 401.
    state["access_tokens"] = {
        k: v for k, v in state["access_tokens"].items() if v["expires_at"] > now - 3600
    }
    token = "ya29." + new_id("", 120)
    state["access_tokens"][token] = {
        "subject": subject,
        "scope": scope,
        "expires_at": now + ttl,
        "refresh_token": refresh,
    }
    return {"access_token": token, "expires_in": ttl, "scope": scope, "token_type": "Bearer"}


def _client(state: dict[str, Any], form: dict[str, str], request: Request) -> str:
    client_id, secret = form.get("client_id", ""), form.get("client_secret", "")
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "basic":
        decoded = base64.b64decode(credentials).decode("utf-8", "replace")
        raw_id, _, raw_secret = decoded.partition(":")
        client_id, secret = urllib.parse.unquote(raw_id), urllib.parse.unquote(raw_secret)
    client = state["oauth_clients"].get(client_id)
    if client is None:
        raise OAuthError(401, "invalid_client", "The OAuth client was not found.")
    if not secrets.compare_digest(client["client_secret"], secret):
        raise OAuthError(401, "invalid_client", "Unauthorized")
    return client_id


def _token_grant(
    ctx: SandboxContext, state: dict[str, Any], form: dict[str, str], request: Request
) -> dict[str, Any]:
    grant = form.get("grant_type", "")
    if grant == "urn:ietf:params:oauth:grant-type:jwt-bearer":
        # google-auth always signs aud = Google's token endpoint, whatever token_uri says, and
        # Google checks exactly that; the emulator's own URL is accepted for hand-made JWTs.
        audiences = {
            GOOGLE_OAUTH_AUDIENCE,
            _token_uri(ctx),
            str(request.base_url).rstrip("/") + PREFIX + "/oauth2/token",
        }
        claims = _verify_assertion(state, form.get("assertion", ""), audiences)
        # With domain-wide delegation the token acts as `sub`; otherwise as the account itself.
        return _issue(state, claims.get("sub") or claims["iss"], claims["scope"], None)
    if grant == "authorization_code":
        client_id = _client(state, form, request)
        code = state["codes"].pop(form.get("code", ""), None)  # single use, even when refused
        if code is None or code["expires_at"] < time.time() or code["client_id"] != client_id:
            raise OAuthError(400, "invalid_grant", "Malformed auth code.")
        if form.get("redirect_uri") != code["redirect_uri"]:
            raise OAuthError(400, "redirect_uri_mismatch", "Bad Request")
        refresh = None
        if code["offline"]:  # Google hands out refresh tokens only for access_type=offline
            refresh = "1//" + new_id("", 100)
            state["refresh_tokens"][refresh] = {
                "subject": code["subject"],
                "scope": code["scope"],
                "client_id": client_id,
            }
        answer = _issue(state, code["subject"], code["scope"], refresh)
        return answer | ({"refresh_token": refresh} if refresh else {})
    if grant == "refresh_token":
        client_id = _client(state, form, request)
        refresh = form.get("refresh_token", "")
        record = state["refresh_tokens"].get(refresh)
        if record is None or record["client_id"] != client_id:
            raise OAuthError(400, "invalid_grant", "Token has been expired or revoked.")
        return _issue(state, record["subject"], record["scope"], refresh)
    raise OAuthError(400, "unsupported_grant_type", f"Invalid grant_type: {grant}")


def _service_account(ctx: SandboxContext, body: dict[str, Any]) -> dict[str, str]:
    """A new key (and the account, if new) and the JSON file Google Cloud would download."""
    project = str(body.get("project_id") or "sandbox-project")
    name = str(body.get("name") or "sandbox-" + new_id("", 6).lower())
    email = f"{name}@{project}.iam.gserviceaccount.com"
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    public_pem = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    key_id = secrets.token_hex(20)
    with _state(ctx) as state:
        # Only the public half is kept: the sandbox verifies, the holder of the JSON signs.
        account = state["service_accounts"].setdefault(
            email,
            {"project_id": project, "client_id": _digits(21), "keys": {}, "created": _rfc3339()},
        )
        account["keys"][key_id] = public_pem
        client_id = account["client_id"]
    return {
        "type": "service_account",
        "project_id": project,
        "private_key_id": key_id,
        "private_key": private_pem,
        "client_email": email,
        "client_id": client_id,
        "auth_uri": f"{ctx.public_url}{PREFIX}/_pages/o/oauth2/auth",
        "token_uri": _token_uri(ctx),
        "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
        "client_x509_cert_url": "https://www.googleapis.com/robot/v1/metadata/x509/"
        + urllib.parse.quote(email),
        "universe_domain": "googleapis.com",
    }


def _with_query(url: str, params: dict[str, str]) -> str:
    parts = urllib.parse.urlsplit(url)
    query = urllib.parse.parse_qsl(parts.query, keep_blank_values=True) + list(params.items())
    return urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(query)))


def _error_page(status: int, error: str, description: str) -> HTMLResponse:
    body = (
        f"<!doctype html><title>Error {status}</title><h1>Access blocked</h1>"
        f"<p><b>Error {status}: {html.escape(error)}</b></p><p>{html.escape(description)}</p>"
    )
    return HTMLResponse(body, status_code=status)


def _check_authorize(state: dict[str, Any], params: dict[str, str]) -> HTMLResponse | None:
    client = state["oauth_clients"].get(params.get("client_id", ""))
    if client is None:
        return _error_page(401, "invalid_client", "The OAuth client was not found.")
    redirect_uri = params.get("redirect_uri", "")
    allowed = client["redirect_uris"]
    # A client registered without redirect URIs accepts any: handy for ad-hoc local setups.
    if not redirect_uri or (allowed and redirect_uri not in allowed):
        return _error_page(
            400,
            "redirect_uri_mismatch",
            f"The redirect URI in the request, {redirect_uri}, does not match "
            "the ones authorized for the OAuth client.",
        )
    if params.get("response_type") != "code":
        return _error_page(400, "unsupported_response_type", "Only response_type=code is emulated.")
    if not params.get("scope"):
        return _error_page(400, "invalid_request", "Missing required parameter: scope")
    return None


# --- Drive ----------------------------------------------------------------------------------


def _caller(state: dict[str, Any], request: Request, *, write: bool) -> str:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    record = state["access_tokens"].get(token.strip()) if scheme.lower() == "bearer" else None
    if record is None or record["expires_at"] <= time.time():
        raise GoogleError(
            401,
            _UNAUTHENTICATED,
            "authError",
            location="Authorization",
            location_type="header",
            detail="Invalid Credentials",
        )
    if not set(record["scope"].split()) & (WRITE_SCOPES if write else READ_SCOPES):
        raise GoogleError(
            403,
            "Request had insufficient authentication scopes.",
            "insufficientPermissions",
            detail="Insufficient Permission",
        )
    return str(record["subject"])


def _permission_id(email: str) -> str:
    # Drive gives a user the same permission id on every file.
    return str(int(hashlib.sha256(email.lower().encode()).hexdigest(), 16))[:20]


def _new_file(state: dict[str, Any], owner: str, fields: dict[str, Any]) -> dict[str, Any]:
    stamp = _rfc3339()
    file_id = new_id("1", 32)
    owner_permission = {
        "kind": "drive#permission",
        "id": _permission_id(owner),
        "type": "user",
        "role": "owner",
        "emailAddress": owner,
        "displayName": owner,
    }
    record: dict[str, Any] = {
        "kind": "drive#file",
        "id": file_id,
        "name": "Untitled",
        "mimeType": "application/octet-stream",
        "parents": [],
        "createdTime": stamp,
        "modifiedTime": stamp,
        "explicitlyTrashed": False,
        "starred": False,
        "spaces": ["drive"],
        "version": "1",
        "shared": False,
        "writersCanShare": True,
        "owners": [
            {
                "kind": "drive#user",
                "emailAddress": owner,
                "displayName": owner,
                "permissionId": owner_permission["id"],
            }
        ],
        "permissions": [owner_permission],
        "permissionIds": [owner_permission["id"]],
    }
    record.update(fields)
    state["files"][file_id] = record
    return record


def _root(state: dict[str, Any], subject: str) -> str:
    if subject not in state["roots"]:
        state["roots"][subject] = _new_file(
            state, subject, {"name": "My Drive", "mimeType": FOLDER}
        )["id"]
    return str(state["roots"][subject])


def _ancestry(state: dict[str, Any], record: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The file and every folder above it (sharing a folder shares what it holds)."""
    seen: set[str] = set()
    stack = [record]
    while stack:
        current = stack.pop()
        if current["id"] in seen:
            continue
        seen.add(current["id"])
        yield current
        stack.extend(state["files"][p] for p in current.get("parents", []) if p in state["files"])


def _role(state: dict[str, Any], record: dict[str, Any], subject: str, *, by_link: bool) -> int:
    best = 0
    for item in _ancestry(state, record):
        for perm in item.get("permissions", []):
            # "anyone" permissions open a file to whoever has its link, not to searches.
            if perm.get("emailAddress") == subject or (by_link and perm["type"] == "anyone"):
                best = max(best, _ROLE_RANK.get(perm["role"], 0))
    return best


def _find(
    state: dict[str, Any], file_id: str, subject: str, *, need: int = 1, location: str = "fileId"
) -> dict[str, Any]:
    file_id = _root(state, subject) if file_id == "root" else file_id
    record: dict[str, Any] | None = state["files"].get(file_id)
    role = 0 if record is None else _role(state, record, subject, by_link=True)
    if record is None or role == 0:
        raise GoogleError(404, f"File not found: {file_id}.", "notFound", location=location)
    if role < need:
        raise GoogleError(
            403,
            "The user does not have sufficient permissions for this file.",
            "insufficientFilePermissions",
        )
    return record


def _present(ctx: SandboxContext, state: dict[str, Any], record: dict[str, Any]) -> dict[str, Any]:
    """The stored file plus what Drive derives: webViewLink and inherited trash."""
    base = f"{ctx.public_url}{PREFIX}/_pages"
    link = (
        f"{base}/drive/folders/{record['id']}"
        if record["mimeType"] == FOLDER
        else f"{base}/file/d/{record['id']}/view"
    )
    trashed = any(f.get("explicitlyTrashed") for f in _ancestry(state, record))
    return record | {"webViewLink": link, "trashed": trashed}


def _fields(request: Request, default: FieldTree) -> FieldTree:
    spec = request.query_params.get("fields")
    if not spec:
        return default
    try:
        return parse_fields(spec)
    except QueryError as error:
        raise GoogleError(400, str(error), "invalidParameter", location="fields") from None


def _apply_body(record: dict[str, Any], body: dict[str, Any]) -> None:
    refused = sorted(set(body) - _WRITABLE)
    if refused:
        raise GoogleError(
            403,
            "The resource body includes fields which are not directly "
            f"writable: {', '.join(refused)}.",
            "fieldNotWritable",
        )
    for key, value in body.items():
        if key == "parents":
            continue
        if key == "trashed":
            record["explicitlyTrashed"] = bool(value)
            if value:
                record["trashedTime"] = _rfc3339()
        elif key in ("appProperties", "properties") and isinstance(value, dict):
            # Drive merges property maps; a null value deletes the key.
            merged = {**record.get(key, {}), **value}
            record[key] = {k: str(v) for k, v in merged.items() if v is not None}
        else:
            record[key] = value
    record["modifiedTime"] = _rfc3339()


def _set_parents(
    state: dict[str, Any], record: dict[str, Any], parents: list[str], subject: str
) -> None:
    if len(parents) > 1:
        raise GoogleError(
            403, "Increasing the number of parents is not allowed.", "cannotAddParent"
        )
    resolved = []
    for parent_id in parents:
        parent = _find(state, parent_id, subject, need=3, location="parents")
        if parent["mimeType"] != FOLDER:
            raise GoogleError(400, "The specified parent is not a folder.", "invalidParent")
        resolved.append(parent["id"])
    record["parents"] = resolved


def _create(
    ctx: SandboxContext, request: Request, body: dict[str, Any], media: bytes | None
) -> Response:
    with _state(ctx) as state:
        subject = _caller(state, request, write=True)
        record = _new_file(state, subject, {})
        try:
            _apply_body(record, body)
            _set_parents(state, record, list(body.get("parents") or ["root"]), subject)
        except GoogleError:
            del state["files"][record["id"]]
            raise
        if media is not None:
            record |= {
                "size": str(len(media)),
                "md5Checksum": hashlib.md5(media, usedforsecurity=False).hexdigest(),
                "sha256Checksum": hashlib.sha256(media).hexdigest(),
            }
        tree = _fields(request, _DEFAULT_FILE_FIELDS)
        return JSONResponse(select_fields(_present(ctx, state, record), tree))


def _parse_related(content_type: str, raw: bytes) -> tuple[dict[str, Any], bytes]:
    """A multipart/related upload: JSON metadata, then the media."""
    message = BytesParser(EmailMessage, policy=policy.default).parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + raw
    )
    parts = list(message.iter_parts()) if message.is_multipart() else []
    if len(parts) != 2:
        raise GoogleError(400, "Multipart upload needs metadata and media parts.", "badContent")
    metadata_raw, media = (part.get_payload(decode=True) for part in parts)
    try:
        metadata = json.loads(bytes(metadata_raw or b"{}"))
    except ValueError:
        raise GoogleError(400, "Invalid JSON payload received.", "parseError") from None
    if not isinstance(metadata, dict) or not isinstance(media, bytes):
        raise GoogleError(400, "Invalid multipart upload.", "badContent")
    return metadata, media


def _page_size(request: Request) -> int:
    raw = request.query_params.get("pageSize", "100")
    if not raw.isdigit() or not 1 <= int(raw) <= 1000:
        raise GoogleError(
            400,
            f"Invalid value '{raw}'. Values must be within the range: [1, 1000]",
            "invalid",
            location="pageSize",
        )
    return int(raw)


def _offset(request: Request) -> int:
    token = request.query_params.get("pageToken")
    if not token:
        return 0
    try:
        return int(json.loads(_b64decode(token))["o"])
    except (ValueError, KeyError, TypeError):
        raise GoogleError(400, "Invalid Value", "invalid", location="pageToken") from None


def _ordered(records: list[dict[str, Any]], order_by: str) -> list[dict[str, Any]]:
    # Stable sorts applied last key first give a multi-key order with per-key direction.
    for part in reversed([p.strip() for p in order_by.split(",") if p.strip()]):
        key, _, direction = part.partition(" ")
        if key == "folder":
            records.sort(key=lambda f: f["mimeType"] != FOLDER, reverse=direction == "desc")
        else:
            field = "name" if key == "name_natural" else key
            records.sort(
                key=lambda f: (
                    str(f.get(field, "")).lower() if field == "name" else str(f.get(field, ""))
                ),
                reverse=direction == "desc",
            )
    return records


def _drop(state: dict[str, Any], file_id: str) -> None:
    state["files"].pop(file_id, None)
    for child in [f["id"] for f in state["files"].values() if file_id in f.get("parents", [])]:
        _drop(state, child)


def _permission(
    request: Request, state: dict[str, Any], record: dict[str, Any], body: dict[str, Any]
) -> dict[str, Any]:
    kind, role = body.get("type"), body.get("role")
    for field, value in (("type", kind), ("role", role)):
        if not value:
            raise GoogleError(
                400,
                f"The permission {field} field is required.",
                "required",
                location=f"permission.{field}",
            )
    if kind not in ("user", "group", "domain", "anyone") or role not in _ROLE_RANK:
        raise GoogleError(400, "Invalid Value", "invalid", location="permission")
    email = body.get("emailAddress")
    if kind in ("user", "group") and (not isinstance(email, str) or "@" not in email):
        raise GoogleError(
            400,
            "The permission emailAddress field is required.",
            "required",
            location="permission.emailAddress",
        )
    if role == "owner" and request.query_params.get("transferOwnership") != "true":
        raise GoogleError(
            403,
            "The transferOwnership parameter must be enabled when the permission role is 'owner'.",
            "forbidden",
            location="transferOwnership",
        )
    permission: dict[str, Any] = {"kind": "drive#permission", "type": kind, "role": role}
    if kind in ("user", "group"):
        permission |= {
            "id": _permission_id(str(email)),
            "emailAddress": email,
            "displayName": email,
        }
    elif kind == "domain":
        permission |= {
            "id": body.get("domain", "") + "dn",
            "domain": body.get("domain", ""),
            "allowFileDiscovery": bool(body.get("allowFileDiscovery", False)),
        }
    else:
        discoverable = bool(body.get("allowFileDiscovery", False))
        permission |= {
            "id": "anyone" if discoverable else "anyoneWithLink",
            "allowFileDiscovery": discoverable,
        }
    if role == "owner":
        for old in record["permissions"]:
            if old["role"] == "owner":
                old["role"] = "writer"
        record["owners"] = [
            {
                "kind": "drive#user",
                "emailAddress": email,
                "displayName": email,
                "permissionId": permission["id"],
            }
        ]
    # Sharing again with the same principal changes the role rather than adding a duplicate.
    record["permissions"] = [p for p in record["permissions"] if p["id"] != permission["id"]]
    record["permissions"].append(permission)
    record["permissionIds"] = [p["id"] for p in record["permissions"]]
    record["shared"] = True
    notify = request.query_params.get("sendNotificationEmail", "true") != "false"
    if kind in ("user", "group") and notify:
        state["notifications"].append(
            {
                "file_id": record["id"],
                "to": email,
                "role": role,
                "at": time.time(),
                "message": request.query_params.get("emailMessage", ""),
            }
        )
    return permission


# --- pages and control ----------------------------------------------------------------------


def _consent_page(params: dict[str, str], client_name: str) -> str:
    hidden = "".join(
        f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">'
        for k, v in params.items()
        if k != "login_hint"
    )
    scopes = "".join(f"<li><code>{html.escape(s)}</code></li>" for s in params["scope"].split())
    email = html.escape(params.get("login_hint") or "sandbox.user@example.com")
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>Sign in - Google</title>
<style>body{{font:15px system-ui,sans-serif;max-width:34rem;margin:3rem auto;color:#202124}}
button{{font:inherit;padding:.5rem 1.4rem;margin-right:.6rem}}</style></head><body>
<p style="color:#5f6368">Google sandbox</p>
<h1>{html.escape(client_name)} wants to access your Google Account</h1>
<form method="post" action="{PREFIX}/_pages/o/oauth2/consent">{hidden}
<p><label>Signed in as <input name="email" value="{email}" size="32"></label></p>
<p>This will allow {html.escape(client_name)} to:</p><ul>{scopes}</ul>
<button name="decision" value="deny">Deny</button>
<button name="decision" value="allow">Allow</button></form></body></html>"""


def _drive_page(ctx: SandboxContext, file_id: str) -> HTMLResponse:
    state = ctx.store.read(NAME)
    files: dict[str, Any] = state.get("files", {})
    record = files.get(file_id)
    if record is None:
        return HTMLResponse("<!doctype html><h1>404. That's an error.</h1>", status_code=404)
    children = [f for f in files.values() if file_id in f.get("parents", [])]
    rows = "".join(
        f"<tr><td><a href='{PREFIX}/_pages/"
        + (f"drive/folders/{c['id']}" if c["mimeType"] == FOLDER else f"file/d/{c['id']}/view")
        + f"'>{html.escape(c['name'])}</a></td><td>{html.escape(c['mimeType'])}</td></tr>"
        for c in children
    )
    shared = ", ".join(
        html.escape(f"{p.get('emailAddress') or p['type']} ({p['role']})")
        for p in record.get("permissions", [])
    )
    listing = f"<table>{rows}</table>" if record["mimeType"] == FOLDER else ""
    return HTMLResponse(
        f"<!doctype html><meta charset='utf-8'><title>{html.escape(record['name'])} - Google "
        f"Drive</title><body style='font:14px system-ui,sans-serif;margin:2rem'>"
        f"<h1>{html.escape(record['name'])}</h1><p>{html.escape(record['mimeType'])} · "
        f"<code>{html.escape(file_id)}</code></p><p>Shared with: {shared}</p>{listing}</body>"
    )


def summary(ctx: SandboxContext) -> list[Section]:
    state = ctx.store.read(NAME)
    files: dict[str, dict[str, Any]] = state.get("files", {})
    children: dict[str, list[dict[str, Any]]] = {}
    tops = []
    for record in files.values():
        parents = [p for p in record.get("parents", []) if p in files]
        if not parents:
            tops.append(record)
        for parent in parents:
            children.setdefault(parent, []).append(record)
    rows: list[list[str]] = []

    def walk(record: dict[str, Any], depth: int) -> None:
        kind = "folder" if record["mimeType"] == FOLDER else record["mimeType"]
        shared = ", ".join(
            f"{p.get('emailAddress') or p.get('domain') or p['type']} ({p['role']})"
            for p in record.get("permissions", [])
            if p["role"] != "owner"
        )
        trashed = " (trashed)" if record.get("explicitlyTrashed") else ""
        rows.append(
            [
                "&nbsp;" * 4 * depth + html.escape(record["name"] + trashed),
                f"<a href='{PREFIX}/_pages/"
                + ("drive/folders/" if record["mimeType"] == FOLDER else "file/d/")
                + f"{html.escape(record['id'])}'><code>{html.escape(record['id'])}</code></a>",
                html.escape(kind),
                html.escape(", ".join(o["emailAddress"] for o in record.get("owners", []))),
                html.escape(shared),
            ]
        )
        for child in children.get(record["id"], []):
            walk(child, depth + 1)

    for top in tops:
        walk(top, 0)
    accounts = [
        [
            html.escape(email),
            html.escape(a["project_id"]),
            html.escape(a["client_id"]),
            html.escape(", ".join(k[:8] for k in a["keys"])),
            html.escape(a["created"]),
        ]
        for email, a in state.get("service_accounts", {}).items()
    ]
    clients = [
        [
            html.escape(c["name"]),
            f"<code>{html.escape(cid)}</code>",
            f"<code>{html.escape(c['client_secret'])}</code>",
            html.escape(", ".join(c["redirect_uris"]) or "any"),
        ]
        for cid, c in state.get("oauth_clients", {}).items()
    ]
    ttl = state.get("settings", {}).get("access_token_ttl", DEFAULT_TTL)
    return [
        Section("Google Drive", ["name", "id", "type", "owner", "shared with"], rows),
        Section(
            "Google service accounts",
            ["client_email", "project", "client_id", "key ids", "created"],
            accounts,
            note=f"Access tokens live {ttl} s.",
        ),
        Section(
            "Google OAuth clients", ["name", "client_id", "client_secret", "redirect URIs"], clients
        ),
    ]


# --- routes ---------------------------------------------------------------------------------


def build_router(ctx: SandboxContext) -> APIRouter:
    router = APIRouter()

    @router.post("/_sandbox/service_accounts")
    async def create_service_account(request: Request) -> JSONResponse:
        body = await _json_body(request)
        return JSONResponse(_service_account(ctx, body))

    @router.get("/_sandbox/demo/{slug}/service_account.json")
    def demo_service_account(slug: str) -> JSONResponse:
        """A demo workspace's own service-account key file: made at the first download and
        kept, so every later download is the same file (its URLs follow the sandbox's)."""
        demo = next((d for d in DEMO_WORKSPACES if d.slug == slug), None)
        if demo is None:
            return JSONResponse({"error": f"no demo workspace {slug!r}"}, status_code=404)
        with _state(ctx) as state:
            saved = state.setdefault("demo_keys", {}).get(slug)
        if saved is None:
            made = _service_account(ctx, {"project_id": demo.google_project, "name": "hub"})
            with _state(ctx) as state:
                saved = state["demo_keys"].setdefault(slug, made)
        current = {
            "auth_uri": f"{ctx.public_url}{PREFIX}/_pages/o/oauth2/auth",
            "token_uri": _token_uri(ctx),
        }
        return JSONResponse(
            dict(saved) | current,
            headers={"Content-Disposition": f'attachment; filename="{slug}-service-account.json"'},
        )

    @router.post("/_sandbox/oauth_clients")
    async def create_oauth_client(request: Request) -> JSONResponse:
        body = await _json_body(request)
        client_id = f"{_digits(12)}-{new_id('', 32).lower()}.apps.googleusercontent.com"
        client = {
            "name": str(body.get("name") or "Sandbox app"),
            "client_secret": "GOCSPX-" + new_id("", 28),
            "redirect_uris": [str(u) for u in body.get("redirect_uris", [])],
        }
        with _state(ctx) as state:
            state["oauth_clients"][client_id] = client
        return JSONResponse(
            {
                "client_id": client_id,
                **client,
                "auth_uri": f"{ctx.public_url}{PREFIX}/_pages/o/oauth2/auth",
                "token_uri": _token_uri(ctx),
            }
        )

    @router.api_route("/_sandbox/settings", methods=["GET", "POST"])
    async def settings(request: Request) -> JSONResponse:
        body = await _json_body(request) if request.method == "POST" else {}
        with _state(ctx) as state:
            if "access_token_ttl" in body:
                state["settings"]["access_token_ttl"] = int(body["access_token_ttl"])
            return JSONResponse({"access_token_ttl": DEFAULT_TTL} | state["settings"])

    @router.post("/oauth2/token")
    @_answers_errors
    async def token(request: Request) -> Response:
        form = await _form(request)
        with _state(ctx) as state:
            answer = _token_grant(ctx, state, form, request)
        # Token responses must not be cached (RFC 6749 section 5.1).
        return JSONResponse(answer, headers={"Cache-Control": "no-store", "Pragma": "no-cache"})

    @router.post("/oauth2/revoke")
    @_answers_errors
    async def revoke(request: Request) -> Response:
        form = await _form(request)
        value = form.get("token") or request.query_params.get("token", "")
        with _state(ctx) as state:
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
        with _state(ctx) as state:
            refused = _check_authorize(state, params)
            name = state["oauth_clients"].get(params.get("client_id", ""), {}).get("name", "")
        return refused if refused is not None else HTMLResponse(_consent_page(params, name))

    @router.post("/_pages/o/oauth2/consent", response_model=None)
    async def consent(request: Request) -> Response:
        params = dict(
            urllib.parse.parse_qsl((await request.body()).decode(), keep_blank_values=True)
        )
        with _state(ctx) as state:
            refused = _check_authorize(state, params)
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
        return RedirectResponse(_with_query(params["redirect_uri"], back), status_code=302)

    @router.get("/_pages/drive/folders/{file_id}", response_class=HTMLResponse)
    def folder_page(file_id: str) -> HTMLResponse:
        return _drive_page(ctx, file_id)

    @router.get("/_pages/file/d/{file_id}/view", response_class=HTMLResponse)
    def file_page(file_id: str) -> HTMLResponse:
        return _drive_page(ctx, file_id)

    @router.post("/drive/v3/files")
    @_answers_errors
    async def files_create(request: Request) -> Response:
        return _create(ctx, request, await _json_body(request), None)

    @router.post("/upload/drive/v3/files")
    @_answers_errors
    async def files_upload(request: Request) -> Response:
        upload_type = request.query_params.get("uploadType", "")
        raw = await request.body()
        content_type = request.headers.get("content-type", "application/octet-stream")
        if upload_type == "multipart":
            metadata, media = _parse_related(content_type, raw)
            return _create(ctx, request, metadata, media)
        if upload_type == "media":
            return _create(ctx, request, {"mimeType": content_type.split(";")[0]}, raw)
        raise GoogleError(
            400,
            f"uploadType {upload_type or '(none)'} is not emulated; use multipart or media.",
            "invalid",
            location="uploadType",
        )

    @router.get("/drive/v3/files")
    @_answers_errors
    async def files_list(request: Request) -> Response:
        tree = _fields(
            request,
            {
                "kind": None,
                "nextPageToken": None,
                "incompleteSearch": None,
                "files": _DEFAULT_FILE_FIELDS,
            },
        )
        size, offset = _page_size(request), _offset(request)
        with _state(ctx) as state:
            subject = _caller(state, request, write=False)
            root = _root(state, subject)
            try:
                matches = compile_query(
                    request.query_params.get("q", ""), lambda v: root if v == "root" else v
                )
            except QueryError:
                raise GoogleError(400, "Invalid Value", "invalid", location="q") from None
            roots = set(state["roots"].values())
            found = [
                _present(ctx, state, f)
                for f in state["files"].values()
                if f["id"] not in roots and _role(state, f, subject, by_link=False)
            ]
            found = _ordered(
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
    @_answers_errors
    async def files_get(file_id: str, request: Request) -> Response:
        tree = _fields(request, _DEFAULT_FILE_FIELDS)
        if request.query_params.get("alt") == "media":
            raise GoogleError(400, "Downloads are not emulated.", "invalid", location="alt")
        with _state(ctx) as state:
            subject = _caller(state, request, write=False)
            record = _present(ctx, state, _find(state, file_id, subject))
        return JSONResponse(select_fields(record, tree))

    @router.patch("/drive/v3/files/{file_id}")
    @_answers_errors
    async def files_update(file_id: str, request: Request) -> Response:
        tree = _fields(request, _DEFAULT_FILE_FIELDS)
        body = await _json_body(request)
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
        with _state(ctx) as state:
            subject = _caller(state, request, write=True)
            record = _find(state, file_id, subject, need=3)
            parents = [p for p in record["parents"] if p not in remove] + add
            _apply_body(record, body)
            if add or remove:
                _set_parents(state, record, parents, subject)
            record["version"] = str(int(record["version"]) + 1)
            return JSONResponse(select_fields(_present(ctx, state, record), tree))

    @router.delete("/drive/v3/files/{file_id}")
    @_answers_errors
    async def files_delete(file_id: str, request: Request) -> Response:
        with _state(ctx) as state:
            subject = _caller(state, request, write=True)
            _drop(state, _find(state, file_id, subject, need=4)["id"])
        return Response(status_code=204)

    @router.post("/drive/v3/files/{file_id}/permissions")
    @_answers_errors
    async def permissions_create(file_id: str, request: Request) -> Response:
        tree = _fields(request, _DEFAULT_PERMISSION_FIELDS)
        body = await _json_body(request)
        with _state(ctx) as state:
            subject = _caller(state, request, write=True)
            record = _find(state, file_id, subject)
            role = _role(state, record, subject, by_link=True)
            if role < 3 or (role == 3 and not record.get("writersCanShare", True)):
                raise GoogleError(
                    403,
                    "The user does not have sufficient permissions for this file.",
                    "insufficientFilePermissions",
                )
            permission = _permission(request, state, record, body)
        return JSONResponse(select_fields(permission, tree))

    return router
