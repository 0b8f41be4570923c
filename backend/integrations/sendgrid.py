"""Every call the product makes to SendGrid, through the official SDK, and the provider's
declaration (``PROVIDER``): the API key form, sender and template settings, connection test.
"""

from __future__ import annotations

import base64
import binascii
import http.client
import json
import re
import socket
import urllib.error
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import python_http_client
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_der_public_key
from pydantic import BaseModel, Field, SecretStr
from python_http_client.exceptions import HTTPError
from sendgrid import SendGridAPIClient
from sendgrid.helpers.mail import CustomArg, From, Mail, To

from backend.integrations._common import expect
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
from backend.integrations.deadline import urllib_opener, within
from backend.integrations.errors import (
    ProviderAuthFailed,
    ProviderConnectionLost,
    ProviderRateLimited,
    ProviderRejected,
    ProviderUnavailable,
)

LIVE_HOST = "https://api.sendgrid.com"
TIMEOUT_SECONDS = 10.0
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
NO_MAIL_SEND = "This key cannot send mail: give it Mail Send access"
# SendGrid's limit of personalizations in one mail/send request.
MAX_PERSONALIZATIONS = 1000


class SendGridCredentials(BaseModel):
    api_key: SecretStr = Field(description="API key (SG.…) from Settings → API Keys.")


class SendGridSettings(BaseModel):
    from_email: str = ""
    from_name: str = ""
    proposal_template_id: str | None = None
    questionnaire_template_id: str | None = None
    confirmation_template_id: str | None = None
    checkout_link_template_id: str | None = None
    # Base64 DER public key from Mail Settings → Signed Event Webhook; the intake verifies with it.
    event_webhook_public_key: str | None = None


def _errors_text(body: bytes) -> str:
    """SendGrid's own words: ``{"errors": [{"message": ...}]}``, joined."""
    try:
        payload: Any = json.loads(body.decode("utf-8", "replace"))
    except ValueError:
        return "no details"
    errors = payload.get("errors") if isinstance(payload, dict) else None
    messages = [str(e.get("message")) for e in errors or [] if isinstance(e, dict)]
    return "; ".join(m for m in messages if m) or "no details"


class _Client(python_http_client.Client):  # type: ignore[misc]
    """python_http_client's client, whose requests go through the deadline's urllib opener
    (its ``_make_request`` is the seam the library keeps for this), and so do those of every
    client it chains (``client.scopes`` is a new one)."""

    @classmethod
    def of(cls, client: python_http_client.Client) -> _Client:
        ours: _Client = cls.__new__(cls)
        ours.__setstate__(dict(client.__getstate__()))
        return ours

    def _build_client(self, name: str | None = None) -> _Client:
        return _Client.of(super()._build_client(name))

    def _make_request(self, opener: Any, request: Any, timeout: float | None = None) -> Any:
        return super()._make_request(urllib_opener(), request, timeout)


class SendGridAdapter:
    def __init__(
        self,
        api_key: str,
        *,
        host: str = LIVE_HOST,
        throttle: Callable[[], None] | None = None,
        seconds: float = TIMEOUT_SECONDS,
    ) -> None:
        self._client = SendGridAPIClient(api_key=api_key, host=host)
        self._client.client = _Client.of(self._client.client)
        # python_http_client copies the timeout to every chained client it builds.
        self._client.client.timeout = TIMEOUT_SECONDS
        self._throttle = throttle or (lambda: None)
        self._seconds = seconds

    def scopes(self) -> list[str]:
        self._throttle()
        with within("SendGrid", self._seconds, slug="sendgrid"):
            try:
                response = self._client.client.scopes.get()
            except HTTPError as exc:
                raise _translate(exc) from None
            except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
                # URLError's text names the host only, but the type is all the operator needs.
                raise ProviderUnavailable(
                    f"SendGrid could not be reached: {type(exc).__name__}"
                ) from None
        payload = json.loads(response.body or b"{}")
        return [str(s) for s in payload.get("scopes", [])]

    def send_mail(
        self,
        *,
        from_email: str,
        to: list[str],
        subject: str,
        text: str,
        from_name: str = "",
        custom_args: dict[str, str] | None = None,
    ) -> str:
        """One plain-text mail, each recipient in a personalization of their own (nobody sees
        the others' addresses), through the SDK's Mail helper. Returns SendGrid's message id."""
        message = Mail(
            from_email=From(from_email, from_name or None),
            to_emails=[To(address) for address in to],
            subject=subject,
            plain_text_content=text,
            is_multiple=True,
        )
        for key, value in (custom_args or {}).items():
            message.custom_arg = CustomArg(key, value)
        self._throttle()
        # Inside a block like every request: bounded by the deadline, and in the call log.
        with within("SendGrid", self._seconds, slug="sendgrid"):
            try:
                response = self._client.send(message)
            except HTTPError as exc:
                raise _translate(exc) from None
            except (urllib.error.URLError, OSError) as exc:
                raise ProviderUnavailable(
                    f"SendGrid could not be reached: {type(exc).__name__}"
                ) from None
        return str(response.headers.get("X-Message-Id") or "")

    def send_batch(
        self,
        *,
        from_email: str,
        from_name: str,
        envelopes: Sequence[Envelope],
        html: str | None = None,
        text: str | None = None,
        template_id: str | None = None,
        categories: Sequence[str] = (),
    ) -> str:
        """One mail/send request, a personalization per envelope, in their order (the SDK's
        ``Mail.add_personalization`` inserts at the front, so the body is built here as
        SendGrid documents it). Within the deadline: a ``ProviderTimeout`` means the request
        may have been accepted (the caller settles that, backend/email/send.py)."""
        if not 0 < len(envelopes) <= MAX_PERSONALIZATIONS:
            raise ValueError(f"a send holds 1 to {MAX_PERSONALIZATIONS} recipients")
        sender: dict[str, str] = {"email": from_email}
        if from_name:
            sender["name"] = from_name
        body: dict[str, Any] = {
            "from": sender,
            "personalizations": [e.personalization() for e in envelopes],
        }
        if template_id:
            body["template_id"] = template_id
        else:
            body["content"] = [
                {"type": kind, "value": value}
                for kind, value in (("text/plain", text), ("text/html", html))
                if value
            ]
        if categories:
            body["categories"] = list(categories)
        self._throttle()
        with within("SendGrid", self._seconds, slug="sendgrid"):
            try:
                response = self._client.send(body)
            except HTTPError as exc:
                raise _translate(exc) from None
            except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
                reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
                if isinstance(reason, (ConnectionRefusedError, socket.gaierror)):
                    # Nothing was sent: no connection was made.
                    raise ProviderUnavailable(
                        f"SendGrid could not be reached: {type(reason).__name__}"
                    ) from None
                raise ProviderConnectionLost(
                    f"The connection to SendGrid broke before its answer: {type(reason).__name__}"
                ) from None
        return str(response.headers.get("X-Message-Id") or "")


@dataclass(frozen=True)
class Envelope:
    """One recipient of a batched send: SendGrid's personalization. ``substitutions`` fill the
    request's content (repository templates), ``dynamic_data`` a dynamic template's."""

    to_email: str
    to_name: str | None = None
    subject: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    custom_args: dict[str, str] = field(default_factory=dict)
    substitutions: dict[str, str] = field(default_factory=dict)
    dynamic_data: dict[str, Any] | None = None

    def personalization(self) -> dict[str, Any]:
        to: dict[str, str] = {"email": self.to_email}
        if self.to_name:
            to["name"] = self.to_name
        body: dict[str, Any] = {"to": [to]}
        if self.subject:
            body["subject"] = self.subject
        if self.headers:
            body["headers"] = dict(self.headers)
        if self.custom_args:
            body["custom_args"] = dict(self.custom_args)
        if self.substitutions:
            body["substitutions"] = dict(self.substitutions)
        if self.dynamic_data is not None:
            body["dynamic_template_data"] = dict(self.dynamic_data)
        return body


def _translate(exc: HTTPError) -> Exception:
    status = int(exc.status_code)
    said = _errors_text(exc.body if isinstance(exc.body, bytes) else b"")
    if status == 429:
        raw = (exc.headers or {}).get("Retry-After") if exc.headers else None
        return ProviderRateLimited(
            f"SendGrid rate limit: {said}", retry_after=float(raw) if raw else None
        )
    if status >= 500:
        return ProviderUnavailable(f"SendGrid answered {status}: {said}")
    if status in (401, 403):
        return ProviderAuthFailed(
            f"SendGrid refused the API key: {said}. Create a new key under Settings → API Keys.",
            status=status,
        )
    return ProviderRejected(f"SendGrid refused the request: {said}", status=status)


def check_public_key(value: str) -> None:
    """The Event Webhook key must be what SendGrid shows: base64 DER of an EC P-256 key."""
    try:
        der = base64.b64decode(value.strip(), validate=True)
        key = load_der_public_key(der)
    except (binascii.Error, ValueError):
        raise InvalidCredentials(
            "This is not the Event Webhook verification key. Copy the whole key from Mail "
            "Settings → Webhook Settings → Signed Event Webhook (base64, starts with MFkw).",
            field="event_webhook_public_key",
        ) from None
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        raise InvalidCredentials(
            "This public key is not an EC P-256 key, which is what SendGrid signs events with.",
            field="event_webhook_public_key",
        )


class SendGridProvider:
    info = ProviderInfo(
        slug="sendgrid",
        name="SendGrid",
        category=Category.EMAIL,
        description="Send proposals, questionnaires and confirmations; track opens and bounces.",
        minimum_plan=PlanTier.PRO,
        logo="/logos/sendgrid.svg",
        methods=(Method.API_KEY,),
        docs_url="https://www.twilio.com/docs/sendgrid/ui/account-and-settings/api-keys",
    )
    credentials_model: type[BaseModel] = SendGridCredentials
    settings_model: type[BaseModel] = SendGridSettings

    def check_credentials(self, credentials: BaseModel, context: ProviderContext) -> None:
        key = expect(credentials, SendGridCredentials).api_key.get_secret_value().strip()
        if not key.startswith("SG."):
            raise InvalidCredentials(
                "A SendGrid API key starts with SG. — create one under Settings → API Keys "
                "(it is shown once) and paste it here.",
                field="api_key",
            )

    def check_settings(self, settings: BaseModel, context: ProviderContext) -> None:
        values = expect(settings, SendGridSettings)
        if values.from_email and not _EMAIL.match(values.from_email.strip()):
            raise InvalidCredentials(
                "The sender must be an email address, verified in SendGrid as a Sender.",
                field="from_email",
            )
        if values.event_webhook_public_key:
            check_public_key(values.event_webhook_public_key)

    def test_connection(
        self, credentials: BaseModel, settings: BaseModel, context: ProviderContext
    ) -> ConnectionTest:
        adapter = self.adapter(expect(credentials, SendGridCredentials), context)

        def call() -> dict[str, Any]:
            scopes = adapter.scopes()
            if "mail.send" not in scopes:
                raise ProviderAuthFailed(NO_MAIL_SEND)
            return {"scopes": len(scopes)}

        return timed(call, "Connected to SendGrid: this key can send mail.")

    def adapter(
        self, credentials: SendGridCredentials, context: ProviderContext
    ) -> SendGridAdapter:
        host = f"{context.sandbox_url}/sendgrid" if context.sandbox_url else LIVE_HOST
        return SendGridAdapter(
            credentials.api_key.get_secret_value().strip(), host=host, throttle=context.throttle
        )


PROVIDER: Provider = SendGridProvider()
