"""OAuth 2.0: the token endpoint's grants (service-account JWT, authorization code, refresh
token), service-account key files, and the checks of the consent page's parameters.

Tested in tests/sandbox/test_google.py and tests/integrations/test_google_drive.py (through
google-api-python-client).
"""

from __future__ import annotations

import base64
import html
import json
import secrets
import time
import urllib.parse
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from fastapi import Request
from fastapi.responses import HTMLResponse

from backend.sandbox.context import SandboxContext
from backend.sandbox.google.errors import OAuthError
from backend.sandbox.google.state import (
    DEFAULT_TTL,
    PREFIX,
    b64decode,
    open_state,
    random_digits,
    rfc3339,
    token_uri,
)
from backend.sandbox.store import new_id

GOOGLE_OAUTH_AUDIENCE = "https://oauth2.googleapis.com/token"


def _verify_assertion(state: dict[str, Any], assertion: str, audiences: set[str]) -> dict[str, Any]:
    """The claims of a service-account JWT, checked the way Google's token endpoint checks."""
    try:
        head_b64, claims_b64, signature_b64 = assertion.split(".")
        header = json.loads(b64decode(head_b64))
        claims = json.loads(b64decode(claims_b64))
        signature = b64decode(signature_b64)
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


def _refresh_expiry(state: dict[str, Any]) -> float | None:
    """When a refresh token issued now stops working: never (a published app's), unless the
    ``refresh_token_ttl`` setting says, as Google does for an app in "testing" (7 days) or a
    grant the user limited in time."""
    ttl = state["settings"].get("refresh_token_ttl")
    return time.time() + int(ttl) if ttl else None


def _expired(record: dict[str, Any]) -> bool:
    expires_at = record.get("expires_at")
    return expires_at is not None and expires_at <= time.time()


def _refresh_lifetime(state: dict[str, Any], refresh: str) -> dict[str, int]:
    """Google's ``refresh_token_expires_in``: the refresh token's remaining lifetime in
    seconds, in the token answer only when the token has one."""
    expires_at = state["refresh_tokens"][refresh].get("expires_at")
    if expires_at is None:
        return {}
    return {"refresh_token_expires_in": max(0, round(expires_at - time.time()))}


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


def token_grant(
    ctx: SandboxContext, state: dict[str, Any], form: dict[str, str], request: Request
) -> dict[str, Any]:
    grant = form.get("grant_type", "")
    if grant == "urn:ietf:params:oauth:grant-type:jwt-bearer":
        # google-auth always signs aud = Google's token endpoint, whatever token_uri says, and
        # Google checks exactly that; the emulator's own URL is accepted for hand-made JWTs.
        audiences = {
            GOOGLE_OAUTH_AUDIENCE,
            token_uri(ctx),
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
                "expires_at": _refresh_expiry(state),
            }
        answer = _issue(state, code["subject"], code["scope"], refresh)
        if refresh is None:
            return answer
        return answer | {"refresh_token": refresh} | _refresh_lifetime(state, refresh)
    if grant == "refresh_token":
        client_id = _client(state, form, request)
        refresh = form.get("refresh_token", "")
        record = state["refresh_tokens"].get(refresh)
        if record is None or record["client_id"] != client_id or _expired(record):
            raise OAuthError(400, "invalid_grant", "Token has been expired or revoked.")
        return _issue(state, record["subject"], record["scope"], refresh) | _refresh_lifetime(
            state, refresh
        )
    raise OAuthError(400, "unsupported_grant_type", f"Invalid grant_type: {grant}")


def service_account(ctx: SandboxContext, body: dict[str, Any]) -> dict[str, str]:
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
    with open_state(ctx) as state:
        # Only the public half is kept: the sandbox verifies, the holder of the JSON signs.
        account = state["service_accounts"].setdefault(
            email,
            {
                "project_id": project,
                "client_id": random_digits(21),
                "keys": {},
                "created": rfc3339(),
            },
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
        "token_uri": token_uri(ctx),
        "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
        "client_x509_cert_url": "https://www.googleapis.com/robot/v1/metadata/x509/"
        + urllib.parse.quote(email),
        "universe_domain": "googleapis.com",
    }


def with_query(url: str, params: dict[str, str]) -> str:
    parts = urllib.parse.urlsplit(url)
    query = urllib.parse.parse_qsl(parts.query, keep_blank_values=True) + list(params.items())
    return urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(query)))


def _error_page(status: int, error: str, description: str) -> HTMLResponse:
    body = (
        f"<!doctype html><title>Error {status}</title><h1>Access blocked</h1>"
        f"<p><b>Error {status}: {html.escape(error)}</b></p><p>{html.escape(description)}</p>"
    )
    return HTMLResponse(body, status_code=status)


def check_authorize(state: dict[str, Any], params: dict[str, str]) -> HTMLResponse | None:
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
