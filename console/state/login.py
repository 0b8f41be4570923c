"""The login form."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator

import reflex as rx
from reflex.event import EventSpec

from backend.accounts import service as accounts
from backend.config import get_settings
from console.state.base import SessionState, account_change_in_steps
from console.state.next_page import next_from


def _policy() -> accounts.LoginPolicy:
    settings = get_settings()
    return accounts.LoginPolicy(
        session_ttl=dt.timedelta(hours=settings.session_ttl_hours),
        free_failures=settings.login_free_failures,
        max_delay_seconds=settings.login_max_delay_seconds,
        client_free_failures=settings.login_client_free_failures,
        forget_after=dt.timedelta(minutes=settings.login_forget_minutes),
    )


class LoginState(SessionState):
    error: str = ""
    busy: bool = False

    @rx.event
    async def redirect_if_logged_in(self) -> EventSpec | None:
        if await self._authenticate() is not None:
            return rx.redirect(next_from(str(self.router.url)))
        return None

    @rx.event
    async def submit(self, form: dict[str, str]) -> AsyncIterator[EventSpec | None]:
        email, password = form.get("email", ""), form.get("password", "")
        if not email.strip() or not password:
            self.error = "Enter your email and password."
            return
        self.busy = True
        yield None

        # The client as the console's backend sees it (the socket's peer): what the limiter
        # counts failures against. Behind a proxy this is the proxy (docs/security/browser.md).
        client_ip = self.router.session.client_ip
        done = await account_change_in_steps(
            # The password is verified between two short transactions of the service's own;
            # a refusal comes back as a value, the failure it counted committed.
            lambda e: accounts.attempt_login(
                e, email=email, password=password, policy=_policy(), client_ip=client_ip
            )
        )
        attempt = done.value
        refused = done.refused or (str(attempt) if isinstance(attempt, Exception) else None)
        if refused is not None or not isinstance(attempt, accounts.LoginResult):
            self.error = refused or "Could not log in."
            self.busy = False
            return
        token = attempt.token
        self.error = ""
        self.busy = False
        self.token = token
        # Back to the page that sent the operator here (a deep link opened while logged out).
        yield rx.redirect(next_from(str(self.router.url)))
