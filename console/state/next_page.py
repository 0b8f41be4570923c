"""Where to go after logging in: the page a logged-out person asked for, carried through
/login as ``?next=``. Only a path on this site is followed, so a crafted link
(``/login?next=//evil.example``) cannot send someone elsewhere after they type their password."""

from __future__ import annotations

from urllib.parse import parse_qs, urlencode, urlsplit

LOGIN = "/login"
HOME = "/"


def login_url(here: str) -> str:
    """The login page, asking to come back to ``here`` (a URL or a path with its query)."""
    parts = urlsplit(here)
    # The production build serves pages as "/jobs/"; the link reads better without it.
    path = parts.path.rstrip("/") or HOME
    back = path + (f"?{parts.query}" if parts.query else "")
    if safe_next(back) == HOME:
        return LOGIN
    return f"{LOGIN}?{urlencode({'next': back})}"


def next_from(url: str) -> str:
    """The safe ``next`` of the login page's URL, or the dashboard."""
    values = parse_qs(urlsplit(url).query).get("next")
    return safe_next(values[0] if values else None)


def safe_next(value: str | None) -> str:
    """``value`` when it is a same-site path other than the login page itself, else "/"."""
    if not value or not value.startswith("/") or value.startswith("//"):
        return HOME
    # Browsers read a backslash as a slash ("/\\evil.example") and drop tabs and newlines.
    if any(char in value for char in "\\\t\r\n"):
        return HOME
    parts = urlsplit(value)
    if parts.scheme or parts.netloc:
        return HOME
    if parts.path.rstrip("/") in ("", LOGIN):
        return HOME
    return value
