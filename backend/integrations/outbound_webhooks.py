"""Outbound webhooks to the operator's own endpoint, signed the Standard Webhooks way
(https://www.standardwebhooks.com): the signing secret, the URL and events to send, ``sign()``,
and the provider's declaration (``PROVIDER``), whose connection test posts a signed ping.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
import secrets
import ssl
import time
from typing import Any
from urllib.parse import urlsplit

import httpx
from pydantic import BaseModel, Field, SecretStr

from backend.integrations import public_address
from backend.integrations._common import CALL_SECONDS, HTTP_TIMEOUT, expect
from backend.integrations.base import (
    Category,
    ConnectionTest,
    InvalidCredentials,
    Method,
    PlanTier,
    Provider,
    ProviderContext,
    ProviderInfo,
    timed,
)
from backend.integrations.deadline import within
from backend.integrations.errors import (
    ProviderAuthFailed,
    ProviderRateLimited,
    ProviderRejected,
    ProviderUnavailable,
)

PREFIX = "whsec_"
MIN_SECRET_BYTES = 24
SECRET_BYTES = 32
USER_AGENT = "IntegrationsHub-Webhooks/1"
_EVENT = re.compile(r"^[a-z0-9_.*-]+$")


def generate_secret() -> str:
    """A new signing secret: ``whsec_`` and the base64 of 32 random bytes."""
    return PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def secret_key(secret: str) -> bytes:
    """The HMAC key of a ``whsec_`` secret. Raises ValueError (without the secret) if malformed."""
    if not secret.startswith(PREFIX):
        raise ValueError("a signing secret starts with whsec_")
    try:
        return base64.b64decode(secret.removeprefix(PREFIX), validate=True)
    except binascii.Error:
        raise ValueError("the part after whsec_ is not base64") from None


def sign(body: bytes, msg_id: str, timestamp: int, secrets: list[str]) -> dict[str, str]:
    """The three Standard Webhooks headers. One ``v1,<base64>`` per secret, space-separated, so
    that during a rotation receivers holding either the old or the new secret accept it."""
    signed = msg_id.encode() + b"." + str(timestamp).encode() + b"." + body
    signatures = [
        "v1," + base64.b64encode(hmac.new(secret_key(s), signed, hashlib.sha256).digest()).decode()
        for s in secrets
    ]
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": " ".join(signatures),
    }


class WebhookCredentials(BaseModel):
    signing_secret: SecretStr = Field(
        description="whsec_… secret your endpoint verifies with; generate one here."
    )
    # Set while rotating: messages carry a signature for each secret until receivers switch.
    previous_signing_secret: SecretStr | None = None


class WebhookSettings(BaseModel):
    url: str = Field(default="", max_length=2000)
    events: list[str] = Field(default_factory=list)


def _check_secret(value: SecretStr | None, field: str) -> None:
    if value is None or not value.get_secret_value():
        return
    try:
        key = secret_key(value.get_secret_value().strip())
    except ValueError as exc:
        raise InvalidCredentials(
            f"This is not a signing secret: {exc}. Use Generate to make one.", field=field
        ) from None
    if len(key) < MIN_SECRET_BYTES:
        raise InvalidCredentials(
            f"This secret is too short ({len(key)} bytes; at least {MIN_SECRET_BYTES}). "
            "Use Generate to make a new one.",
            field=field,
        )


class UnresolvedURL(InvalidCredentials):
    """The URL's host has no address now: wrong, or DNS failing for a moment."""


def check_url(url: str, context: ProviderContext) -> public_address.Target:
    """The URL, checked: a full http(s) URL, https in live mode, and every address its host
    resolves to public (loopback too in sandbox mode, where the sandbox and a developer's
    receiver listen on this machine). InvalidCredentials on the ``url`` field, saying why."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidCredentials(
            "The endpoint must be a full URL such as https://example.com/hooks.", field="url"
        )
    # Plain http only in sandbox mode: in live mode anyone on the way could read the events
    # (and loopback, the one place nobody else could, is refused there anyway).
    if parts.scheme == "http" and context.live:
        raise InvalidCredentials(
            "Live mode sends webhooks over https only: use an https:// URL.", field="url"
        )
    try:
        return public_address.check(url, allow_loopback=not context.live, resolve=context.resolve)
    except public_address.RefusedURL as exc:
        raise InvalidCredentials(str(exc), field="url") from None
    except public_address.UnresolvedHost as exc:
        raise UnresolvedURL(str(exc), field="url") from None


class WebhooksAdapter:
    def __init__(
        self,
        secrets: list[str],
        url: str,
        *,
        context: ProviderContext,
        verify: ssl.SSLContext | bool = True,
        seconds: float = CALL_SECONDS,
    ) -> None:
        self._secrets = secrets
        self._url = url
        self._context = context
        # Tests trust their own certificate authority; everyone else the system's.
        self._verify = verify
        self._seconds = seconds

    def deliver(self, event_type: str, data: dict[str, Any], *, msg_id: str) -> int:
        """POST one signed event; ``msg_id`` stays the same across retries of one message (the
        receiver deduplicates on it). Returns the status; non-2xx raise.

        The URL is checked again at every delivery, not only when it was saved: a name that
        resolved to a public address then may resolve to a private one now."""
        try:
            target = check_url(self._url, self._context)
        except UnresolvedURL as exc:
            raise ProviderUnavailable(str(exc)) from None
        except InvalidCredentials as exc:
            raise ProviderRejected(str(exc), code="endpoint_refused") from None
        return self.send(target, event_type, data, msg_id=msg_id)

    def send(
        self, target: public_address.Target, event_type: str, data: dict[str, Any], *, msg_id: str
    ) -> int:
        """``deliver`` to a target ``check_url`` has just checked (the connection test checks
        first, to tell a refused URL from an unreachable one)."""
        payload = {
            "type": event_type,
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "data": data,
        }
        body = json.dumps(payload, separators=(",", ":")).encode()
        headers = sign(body, msg_id, int(time.time()), self._secrets)
        headers |= {"content-type": "application/json", "user-agent": USER_AGENT}
        self._context.throttle()
        try:
            # To the checked addresses only, following no redirect: a 3xx means the URL is
            # wrong, and following one could lead the signed request somewhere the operator
            # never configured, or to an address nobody checked. Over in ``seconds`` however
            # slowly the endpoint answers (backend/integrations/deadline.py).
            with within("The endpoint", self._seconds, slug="webhooks"):
                response = public_address.post(
                    target, content=body, headers=headers, timeout=HTTP_TIMEOUT, verify=self._verify
                )
        except httpx.HTTPError as exc:
            raise ProviderUnavailable(
                f"The endpoint could not be reached: {type(exc).__name__}"
            ) from None
        status = response.status_code
        if 200 <= status < 300:
            return status
        said = f"The endpoint answered {status}"
        if 300 <= status < 400:
            raise ProviderRejected(
                f"{said}, a redirect; webhooks follow none: set the URL it redirects to",
                status=status,
            )
        if status == 429:
            raise ProviderRateLimited(said)
        if status >= 500:
            raise ProviderUnavailable(said)
        if status in (401, 403):
            raise ProviderAuthFailed(
                f"{said}: it refused the signature; check it has the current signing secret",
                status=status,
            )
        raise ProviderRejected(said, status=status)


class WebhooksProvider:
    info = ProviderInfo(
        slug="webhooks",
        name="Webhooks",
        category=Category.AUTOMATION,
        description="Send signed events (Standard Webhooks) to your own endpoint or automation.",
        minimum_plan=PlanTier.BUSINESS,
        logo="/logos/webhooks.svg",
        methods=(Method.API_KEY,),
        docs_url="https://www.standardwebhooks.com/",
    )
    credentials_model: type[BaseModel] = WebhookCredentials
    settings_model: type[BaseModel] = WebhookSettings

    def check_credentials(self, credentials: BaseModel, context: ProviderContext) -> None:
        creds = expect(credentials, WebhookCredentials)
        _check_secret(creds.signing_secret, "signing_secret")
        if not creds.signing_secret.get_secret_value().strip():
            raise InvalidCredentials("A signing secret is required.", field="signing_secret")
        _check_secret(creds.previous_signing_secret, "previous_signing_secret")

    def check_settings(self, settings: BaseModel, context: ProviderContext) -> None:
        values = expect(settings, WebhookSettings)
        check_url(values.url, context)
        bad = [e for e in values.events if not _EVENT.match(e)]
        if bad:
            raise InvalidCredentials(
                f"Event names are lowercase words with dots, e.g. invoice.paid: {', '.join(bad)}",
                field="events",
            )

    def test_connection(
        self, credentials: BaseModel, settings: BaseModel, context: ProviderContext
    ) -> ConnectionTest:
        creds = expect(credentials, WebhookCredentials)
        values = expect(settings, WebhookSettings)
        try:
            self.check_credentials(creds, context)
            # Checked here rather than in deliver: a refused URL is the operator's to fix (the
            # test fails as for a refused key), not the endpoint's failure.
            target = check_url(values.url, context)
        except UnresolvedURL as exc:
            # DNS may fail for a moment: said as the endpoint unreachable, not as a bad URL.
            return ConnectionTest(False, str(exc), 0, error=ProviderUnavailable(str(exc)))
        except InvalidCredentials as exc:
            return ConnectionTest(False, str(exc), 0)
        adapter = self.adapter(creds, values, context)
        msg_id = "msg_" + secrets.token_urlsafe(16)

        def call() -> dict[str, Any]:
            return {"status": adapter.send(target, "ping", {}, msg_id=msg_id)}

        outcome = timed(call, "The endpoint accepted a signed ping.")
        if outcome.ok:
            return ConnectionTest(
                True,
                f"The endpoint answered {outcome.account['status']} to a signed ping.",
                outcome.latency_ms,
                outcome.account,
            )
        return outcome

    def adapter(
        self, credentials: WebhookCredentials, settings: WebhookSettings, context: ProviderContext
    ) -> WebhooksAdapter:
        keys = [credentials.signing_secret.get_secret_value().strip()]
        previous = credentials.previous_signing_secret
        if previous is not None and previous.get_secret_value().strip():
            keys.append(previous.get_secret_value().strip())
        return WebhooksAdapter(keys, settings.url.strip(), context=context)


PROVIDER: Provider = WebhooksProvider()
