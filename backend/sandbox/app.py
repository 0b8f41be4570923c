"""The sandbox: one ASGI app emulating the slice of each provider's HTTP API the product calls.

Each provider lives under its own path prefix (``/stripe``, ``/sendgrid``, ``/google``,
``/graph``, ``/slack``, ``/zoho``); the product's adapters point their SDKs there in sandbox mode.

Tested in tests/sandbox/ (every emulator test starts this app) and through the adapters in
tests/integrations/.
"""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, cast

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse

from backend.sandbox import control, demo_accounts
from backend.sandbox.context import ProviderEmulator, SandboxContext, Section
from backend.sandbox.delivery import Deliverer, RetryPolicy
from backend.sandbox.store import Store
from backend.sandbox.switches import ProviderMount, RequestCounts, Switches, make_middleware

PROVIDER_MODULES = ("stripe", "sendgrid", "google", "messenger", "slack", "zoho")


def default_providers() -> list[ProviderEmulator]:
    return [
        cast(ProviderEmulator, importlib.import_module(f"backend.sandbox.{name}"))
        for name in PROVIDER_MODULES
    ]


def _mount(emulator: ProviderEmulator, ctx: SandboxContext) -> ProviderMount:
    rate_key = getattr(emulator, "rate_key", None)
    if not callable(rate_key):
        return ProviderMount(emulator.NAME, emulator.PREFIX, emulator.render_error)
    return ProviderMount(
        emulator.NAME, emulator.PREFIX, emulator.render_error, lambda r: rate_key(ctx, r)
    )


def create_app(
    *,
    public_url: str,
    state_file: Path | None = None,
    webhook_targets: dict[str, str] | None = None,
    providers: Sequence[ProviderEmulator] | None = None,
    retry_policy: RetryPolicy | None = None,
) -> FastAPI:
    emulators = list(providers) if providers is not None else default_providers()
    store = Store(state_file)
    switches = Switches()
    ctx = SandboxContext(
        store=store,
        switches=switches,
        deliverer=Deliverer(store, switches.delivery, retry_policy),
        public_url=public_url.rstrip("/"),
        webhook_targets=dict(webhook_targets or {}),
    )

    async def save_periodically() -> None:
        while True:
            await asyncio.sleep(2)
            await asyncio.to_thread(store.save)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await ctx.deliverer.start()
        saver = asyncio.create_task(save_periodically())
        try:
            yield
        finally:
            saver.cancel()
            await ctx.deliverer.stop()
            store.save()

    app = FastAPI(title="Provider sandbox", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.ctx = ctx
    mounts = [_mount(e, ctx) for e in emulators]
    counts = RequestCounts()
    app.middleware("http")(make_middleware(switches, mounts, counts))
    for emulator in emulators:
        app.include_router(emulator.build_router(ctx), prefix=emulator.PREFIX)

    names = [e.NAME for e in emulators]
    for emulator in emulators:
        # The demo workspaces' own accounts exist from the start (the control page lists them).
        seed = getattr(emulator, "seed", None)
        if callable(seed):
            seed(ctx)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def control_page() -> str:
        sections: list[Section] = [demo_accounts.section(ctx, names)]
        for emulator in emulators:
            sections.extend(emulator.summary(ctx))
        return control.render(ctx, sections, names)

    @app.get("/_sandbox/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/_sandbox/switches")
    def get_switches() -> dict[str, object]:
        return switches.as_dict()

    @app.post("/_sandbox/switches")
    async def set_switches(request: Request) -> dict[str, object]:
        """JSON: {"stripe": {"outage": "errors", "rate_limit": 25, "latency_seconds": 0.05,
        "search_lag_seconds": 60}, "delivery": {...}, "clock": {"offset_seconds": 90000}}."""
        body: dict[str, Any] = await request.json()
        for name, values in body.items():
            if name == "clock":
                # {"clock": {"offset_seconds": 90000}}: the sandbox lives 25 hours ahead.
                switches.clock_offset_seconds = float(values.get("offset_seconds") or 0)
                continue
            if name == "delivery":
                for flag in ("duplicate", "reorder"):
                    if flag in values:
                        setattr(switches.delivery, flag, bool(values[flag]))
                continue
            if name not in names:
                return cast(
                    dict[str, object],
                    JSONResponse(
                        {"error": f"unknown provider {name!r}; known: {names}"}, status_code=400
                    ),
                )
            state = switches.of(name)
            if "outage" in values:
                if values["outage"] not in ("none", "errors", "timeouts"):
                    return cast(
                        dict[str, object],
                        JSONResponse(
                            {"error": "outage is one of none, errors, timeouts"}, status_code=400
                        ),
                    )
                state.outage = values["outage"]
            if "rate_limit" in values:
                state.rate_limit = (
                    None if values["rate_limit"] in (None, "", 0) else float(values["rate_limit"])
                )
            if "hang_seconds" in values:
                state.hang_seconds = float(values["hang_seconds"])
            if "latency_seconds" in values:
                state.latency_seconds = max(0.0, float(values["latency_seconds"] or 0))
            if "late_answer_seconds" in values:
                state.late_answer_seconds = max(0.0, float(values["late_answer_seconds"] or 0))
            if "search_lag_seconds" in values:
                state.search_lag_seconds = max(0.0, float(values["search_lag_seconds"] or 0))
        return switches.as_dict()

    @app.get("/_sandbox/requests")
    def requests_answered() -> dict[str, dict[str, object]]:
        """API requests answered per provider since the start (or the last reset), by status:
        {"stripe": {"requests": 5210, "rate_limited": 0, "by_status": {"200": 5210}}}."""
        return counts.as_dict()

    @app.delete("/_sandbox/requests")
    def reset_requests() -> dict[str, dict[str, object]]:
        counts.reset()
        return counts.as_dict()

    @app.post("/_sandbox/switches/form", include_in_schema=False)
    async def set_switches_form(request: Request) -> RedirectResponse:
        form = await request.form()
        for name in names:
            state = switches.of(name)
            outage = str(form.get(f"{name}.outage", "none"))
            state.outage = outage if outage in ("none", "errors", "timeouts") else "none"  # type: ignore[assignment]
            raw = str(form.get(f"{name}.rate_limit", "")).strip()
            try:
                state.rate_limit = float(raw) if raw else None
            except ValueError:
                state.rate_limit = None
        switches.delivery.duplicate = "delivery.duplicate" in form
        switches.delivery.reorder = "delivery.reorder" in form
        return RedirectResponse("/", status_code=303)

    @app.get("/_sandbox/deliveries")
    def deliveries() -> list[dict[str, Any]]:
        log: list[dict[str, Any]] = store.read("deliveries").get("log", [])
        return log

    return app
