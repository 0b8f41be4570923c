"""Google's two error shapes: the API's JSON error (Drive, and everything under /google but
OAuth) and the token endpoint's ``{"error": ..., "error_description": ...}``.

Tested in tests/sandbox/test_google.py and tests/integrations/test_google_drive.py (through
google-api-python-client).
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import ParamSpec

from fastapi.responses import JSONResponse
from starlette.responses import Response

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


def answers_errors(fn: Callable[P, Awaitable[Response]]) -> Callable[P, Awaitable[Response]]:
    """Turn GoogleError/OAuthError raised anywhere in a route into Google's response."""

    @functools.wraps(fn)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> Response:
        try:
            return await fn(*args, **kwargs)
        except (GoogleError, OAuthError) as error:
            return error.response()

    return wrapper
