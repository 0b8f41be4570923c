"""The Stripe emulator's machinery: accounts and keys, authentication, idempotency, and events
delivered to webhook endpoints with a real ``Stripe-Signature``.

Tested in tests/sandbox/test_stripe.py and tests/sandbox/test_stripe_fidelity.py (through the
official stripe SDK)."""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import time
from dataclasses import dataclass, field
from typing import Any

from backend.sandbox.context import SandboxContext
from backend.sandbox.demo_accounts import DEMO_WORKSPACES, LAKESIDE
from backend.sandbox.store import new_id, now
from backend.sandbox.stripe import permissions
from backend.sandbox.stripe.objects import shape

API_VERSION = "2025-09-30.clover"

# Deterministic demo accounts, so that `make run` and the docs can name their keys. They are
# test-mode keys of the offline sandbox, valid nowhere else.
PLATFORM_ACCOUNT = "acct_1SandboxPlatform0"
PLATFORM_SECRET_KEY = "sk_test_51SandboxPlatform0000000000000000000000000000000"  # noqa: S105
PLATFORM_PUBLISHABLE_KEY = "pk_test_51SandboxPlatform0000000000000000000000000000000"
PLATFORM_CLIENT_ID = "ca_SandboxPlatform00000000000000000"
PLATFORM_WEBHOOK_SECRET = "whsec_SandboxPlatformWebhookSecret000000000"  # noqa: S105
DEMO_ACCOUNT = LAKESIDE.stripe_account
DEMO_SECRET_KEY = LAKESIDE.stripe_secret_key
DEMO_PUBLISHABLE_KEY = LAKESIDE.stripe_publishable_key
DEMO_RESTRICTED_KEY = LAKESIDE.stripe_read_only_key
# Bumped when the demo accounts change, so a saved sandbox state gains the new ones.
DEMO_ACCOUNTS_VERSION = 2


class StripeError(Exception):
    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.type, self.code, self.param = (
            status,
            message,
            type,
            code,
            param,
        )
        self.extra = extra or {}

    def body(self) -> dict[str, Any]:
        error = {"type": self.type, "code": self.code, "message": self.message, "param": self.param}
        error.update(self.extra)
        return {"error": error}


def missing(resource: str, ident: str, param: str = "id") -> StripeError:
    return StripeError(404, f"No such {resource}: '{ident}'", code="resource_missing", param=param)


def mask(key: str) -> str:
    return key[:8] + "*" * max(0, len(key) - 12) + key[-4:]


@dataclass
class Caller:
    account: str
    key: str
    kind: str  # secret | publishable | restricted
    permissions: dict[str, str] = field(default_factory=dict)


def ensure_seeded(s: dict[str, Any], ctx: SandboxContext) -> None:
    if s.get("seeded"):
        _ensure_demo_accounts(s, ctx)
        return
    s.setdefault("accounts", {})
    s.setdefault("keys", {})
    s.setdefault("objects", {})
    s.setdefault("idempotency", {})
    s.setdefault("oauth_codes", {})
    add_account(
        s,
        PLATFORM_ACCOUNT,
        "Integrations Hub (platform)",
        "billing@hub.example",
        secret=PLATFORM_SECRET_KEY,
        publishable=PLATFORM_PUBLISHABLE_KEY,
        client_id=PLATFORM_CLIENT_ID,
    )
    if target := ctx.webhook_targets.get("stripe"):
        # The platform's own endpoint (plans and upgrades), known to the product's settings.
        add_webhook_endpoint(s, PLATFORM_ACCOUNT, target, ["*"], secret=PLATFORM_WEBHOOK_SECRET)
    s["seeded"] = True
    _ensure_demo_accounts(s, ctx)


def _ensure_demo_accounts(s: dict[str, Any], ctx: SandboxContext) -> None:
    """Each demo business's own account: keys of every kind and an endpoint for its webhooks
    at the sidecar, signed with a secret the control page lists (added to a saved state too)."""
    if s.get("demo_accounts_version") == DEMO_ACCOUNTS_VERSION:
        return
    target = ctx.webhook_targets.get("stripe")
    for demo in DEMO_WORKSPACES:
        if demo.stripe_account not in s["accounts"]:
            add_account(
                s,
                demo.stripe_account,
                demo.name,
                demo.email,
                secret=demo.stripe_secret_key,
                publishable=demo.stripe_publishable_key,
            )
        for key, granted in (
            (demo.stripe_restricted_key, permissions.HUB_PERMISSIONS),
            (demo.stripe_read_only_key, permissions.READ_ONLY),
        ):
            s["keys"][key] = {
                "account": demo.stripe_account,
                "kind": "restricted",
                "permissions": dict(granted),
            }
        if target and demo.stripe_webhook_secret not in s.get("endpoint_secrets", {}).values():
            add_webhook_endpoint(
                s,
                demo.stripe_account,
                f"{target}/{demo.slug}",
                ["*"],
                secret=demo.stripe_webhook_secret,
                description="Sandbox demo: this workspace's sidecar endpoint",
            )
    s["demo_accounts_version"] = DEMO_ACCOUNTS_VERSION


def add_account(
    s: dict[str, Any],
    account_id: str,
    name: str,
    email: str,
    *,
    secret: str | None = None,
    publishable: str | None = None,
    client_id: str | None = None,
    connected_to: str | None = None,
) -> dict[str, str]:
    s["accounts"][account_id] = {
        "id": account_id,
        "name": name,
        "email": email,
        "country": "US",
        "currency": "usd",
        "client_id": client_id,
        "connected_to": connected_to,
        "created": now(),
    }
    s["objects"].setdefault(account_id, {})
    keys = {
        "secret": secret or f"sk_test_51{new_id('', 95)}",
        "publishable": publishable or f"pk_test_51{new_id('', 95)}",
    }
    for kind, key in keys.items():
        s["keys"][key] = {"account": account_id, "kind": kind, "permissions": {}}
    return keys


def add_webhook_endpoint(
    s: dict[str, Any],
    account: str,
    url: str,
    events: list[str],
    *,
    secret: str | None = None,
    description: str | None = None,
    metadata: dict[str, str] | None = None,
) -> dict[str, Any]:
    endpoint = shape(
        "webhook_endpoint",
        id=new_id("we_"),
        url=url,
        enabled_events=events,
        status="enabled",
        created=now(),
        api_version=API_VERSION,
        description=description,
        metadata=metadata or {},
    )
    table(s, account, "webhook_endpoint")[endpoint["id"]] = endpoint
    # The secret is returned once on create, as Stripe does; kept aside to sign deliveries.
    s.setdefault("endpoint_secrets", {})[endpoint["id"]] = secret or f"whsec_{new_id('', 32)}"
    return endpoint


def table(s: dict[str, Any], account: str, resource: str) -> dict[str, dict[str, Any]]:
    objects: dict[str, dict[str, dict[str, Any]]] = s["objects"].setdefault(account, {})
    return objects.setdefault(resource, {})


def get(
    s: dict[str, Any], account: str, resource: str, ident: str, param: str = "id"
) -> dict[str, Any]:
    found = table(s, account, resource).get(ident)
    if found is None:
        raise missing(
            resource.replace("_", " ").replace("checkout.session", "checkout.session"), ident, param
        )
    return found


def authenticate(s: dict[str, Any], authorization: str, stripe_account: str | None) -> Caller:
    scheme, _, credential = authorization.partition(" ")
    if scheme.lower() == "basic":
        import base64

        credential = base64.b64decode(credential).decode(errors="replace").split(":", 1)[0]
    elif scheme.lower() != "bearer":
        credential = ""
    if not credential:
        raise StripeError(
            401,
            "You did not provide an API key. You need to provide your API key in the "
            "Authorization header, using Bearer auth "
            "(e.g. 'Authorization: Bearer YOUR_SECRET_KEY').",
        )
    info = s["keys"].get(credential)
    if info is None or info.get("revoked"):
        raise StripeError(
            401, f"Invalid API Key provided: {mask(credential)}", code="api_key_invalid"
        )
    caller = Caller(info["account"], credential, info["kind"], dict(info.get("permissions", {})))
    if stripe_account and stripe_account != caller.account:
        connected = s["accounts"].get(stripe_account)
        if (
            caller.kind != "secret"
            or connected is None
            or connected.get("connected_to") != caller.account
        ):
            raise StripeError(
                403,
                "The provided key does not have access to account "
                f"'{stripe_account}' (or that account does not exist). Application access may "
                "have been revoked.",
                type="invalid_request_error",
                code="account_invalid",
            )
        caller.account = stripe_account
    return caller


def authorize(caller: Caller, resource: str, access: str) -> None:
    if caller.kind == "publishable":
        raise StripeError(
            401,
            "This API call cannot be made with a publishable API key. Please use a secret API "
            "key. You can find a list of your API keys at https://dashboard.stripe.com/account/apikeys.",
            code="secret_key_required",
        )
    if caller.kind == "restricted" and not permissions.allows(caller.permissions, resource, access):
        raise StripeError(
            403,
            permissions.refusal_message(mask(caller.key), caller.account, resource, access),
        )


def fingerprint(method: str, path: str, params: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps([method, path, params], sort_keys=True).encode()).hexdigest()


def signature_header(secret: str, body: bytes, timestamp: int | None = None) -> str:
    stamp = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret.encode(), f"{stamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={stamp},v1={digest}"


@dataclass
class RequestMeta:
    id: str
    idempotency_key: str | None


def emit(
    s: dict[str, Any],
    ctx: SandboxContext,
    account: str,
    event_type: str,
    obj: dict[str, Any],
    *,
    previous: dict[str, Any] | None = None,
    request: RequestMeta | None = None,
) -> dict[str, Any]:
    """Record an event and deliver it to the account's endpoints that want it."""
    data: dict[str, Any] = {"object": copy.deepcopy(obj)}
    if previous:
        data["previous_attributes"] = previous
    endpoints = [
        e
        for e in table(s, account, "webhook_endpoint").values()
        if e["status"] == "enabled"
        and ("*" in e["enabled_events"] or event_type in e["enabled_events"])
    ]
    event = shape(
        "event",
        id=new_id("evt_"),
        type=event_type,
        created=now(),
        api_version=API_VERSION,
        data=data,
        pending_webhooks=len(endpoints),
        request={
            "id": request.id if request else None,
            "idempotency_key": request.idempotency_key if request else None,
        },
    )
    if (
        "account" in event
        and account != PLATFORM_ACCOUNT
        and s["accounts"][account].get("connected_to")
    ):
        event["account"] = account
    table(s, account, "event")[event["id"]] = event
    body = json.dumps(event, indent=2).encode()
    for endpoint in endpoints:
        secret = s["endpoint_secrets"][endpoint["id"]]

        def sign(payload: bytes, secret: str = secret) -> dict[str, str]:
            return {
                "Stripe-Signature": signature_header(secret, payload),
                "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
            }

        ctx.deliverer.send("stripe", endpoint["url"], body, sign, f"{event_type} {event['id']}")
    return event
