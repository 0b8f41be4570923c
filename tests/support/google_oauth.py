"""Google's consent screen, "clicked" over HTTP: the sandbox's page is fetched, its form posted
with Allow or Deny, and the redirect back (code, scope, state) returned. Plus the settings the
sandbox keeps for token lifetimes."""

from __future__ import annotations

import html
import re
from urllib.parse import parse_qs, urlsplit

import httpx


def consent(authorize_url: str, decision: str = "allow") -> str:
    """Open the consent page and press a button; returns where Google redirects the browser."""
    page = httpx.get(authorize_url, timeout=10)
    assert page.status_code == 200 and "wants to access your Google Account" in page.text
    fields = {
        k: html.unescape(v) for k, v in re.findall(r'name="([^"]+)" value="([^"]*)"', page.text)
    }
    fields["decision"] = decision
    parts = urlsplit(authorize_url)
    answer = httpx.post(
        f"{parts.scheme}://{parts.netloc}/google/_pages/o/oauth2/consent", data=fields, timeout=10
    )
    assert answer.status_code == 302, answer.text
    return answer.headers["location"]


def query_of(location: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def set_token_ttl(sandbox_url: str, seconds: int) -> None:
    """How long the access tokens the sandbox issues from now on last."""
    httpx.post(
        f"{sandbox_url}/google/_sandbox/settings", json={"access_token_ttl": seconds}, timeout=10
    ).raise_for_status()


def set_refresh_token_ttl(sandbox_url: str, seconds: int | None) -> None:
    """How long refresh tokens issued from now on last (Google: 7 days for an app in testing,
    said in ``refresh_token_expires_in``); None: until revoked, as a published app's."""
    httpx.post(
        f"{sandbox_url}/google/_sandbox/settings", json={"refresh_token_ttl": seconds}, timeout=10
    ).raise_for_status()


def revoke_at_google(sandbox_url: str, token: str) -> None:
    """What an owner does at myaccount.google.com → Security → Third-party access → Remove."""
    httpx.post(
        f"{sandbox_url}/google/oauth2/revoke", data={"token": token}, timeout=10
    ).raise_for_status()


def drive_accepts(sandbox_url: str, access_token: str) -> bool:
    answer = httpx.get(
        f"{sandbox_url}/google/drive/v3/files",
        params={"pageSize": 1},
        headers={"Authorization": f"Bearer {access_token}"},
        timeout=10,
    )
    return answer.status_code == 200
