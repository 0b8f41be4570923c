"""Errors services raise, each with a message a person can act on.

Tested in the service tests that expect a refusal (tests/accounts/, tests/connections/ …)."""

from __future__ import annotations


class ServiceError(Exception):
    """Base: ``str(error)`` is shown to the operator as is."""


class NotAuthenticated(ServiceError):
    def __init__(self, message: str = "Your session has ended. Log in again.") -> None:
        super().__init__(message)


class PermissionDenied(ServiceError):
    pass


class NotFound(ServiceError):
    pass


class InvalidInput(ServiceError):
    """The operator's input cannot be used; ``field`` names the form field when there is one."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class PlanRequired(ServiceError):
    """The workspace's plan does not allow this; the message says which plan does."""


class TooManyAttempts(ServiceError):
    def __init__(self, retry_after_seconds: int) -> None:
        self.retry_after_seconds = retry_after_seconds
        super().__init__(
            f"Too many failed attempts. Wait {retry_after_seconds} seconds before trying again, "
            "or ask a workspace owner to reset your password."
        )
