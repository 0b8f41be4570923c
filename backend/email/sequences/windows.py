"""Send windows: a step may go only between two hours of the day in the recipient's time zone
(9 and 17: from 9:00 to 17:00 their time). A due time outside the window moves to the window's
next opening; a time inside it stays.

The zone is the lead's (an IANA name, ``Lead.time_zone``); a missing or unknown one is UTC
(workspaces have no zone of their own yet). Hours are wall-clock hours, so a 9:00 opening is
9:00 local on both sides of a daylight-saving change; an opening that does not exist that day
(a window opening at 2:00 on the night clocks jump from 2:00 to 3:00) is the first instant
after the jump. A window may cross midnight (22 to 6).

Tested in tests/email/test_sequences.py.
"""

from __future__ import annotations

import datetime as dt
import functools
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DEFAULT_ZONE = dt.UTC


@functools.lru_cache(maxsize=512)
def _zone(name: str) -> dt.tzinfo | None:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def zone_for(name: str | None) -> dt.tzinfo:
    """The recipient's zone, or UTC when it is missing or not a zone we know."""
    if not name or len(name) > 64:
        return DEFAULT_ZONE
    return _zone(name.strip()) or DEFAULT_ZONE


def check_window(start_hour: int | None, end_hour: int | None) -> None:
    """Refuse a window that is half given, outside 0 to 24, or empty."""
    if start_hour is None and end_hour is None:
        return
    if start_hour is None or end_hour is None:
        raise ValueError("a send window needs both its opening and its closing hour")
    if not (0 <= start_hour <= 23 and 1 <= end_hour <= 24):
        raise ValueError("a send window opens at an hour from 0 to 23 and closes from 1 to 24")
    if start_hour == end_hour:
        raise ValueError("a send window must not open and close at the same hour")


def _opening(day: dt.date, hour: int, zone: dt.tzinfo) -> dt.datetime:
    """``hour``:00 on ``day`` in ``zone``, as an aware UTC time; in a gap (clocks jumped over
    it) the first instant after the jump."""
    local = dt.datetime.combine(day, dt.time(hour), tzinfo=zone)
    # fold=0 in a gap reads the wall time with the offset before the jump: the UTC instant
    # is then the jump itself (2:00 EST = 3:00 EDT), the window's first real moment.
    return local.astimezone(dt.UTC)


def in_window(
    due: dt.datetime, start_hour: int | None, end_hour: int | None, zone: dt.tzinfo
) -> dt.datetime:
    """``due`` if it falls inside the window (or there is none), else the window's next
    opening, in UTC."""
    if start_hour is None or end_hour is None:
        return due
    local = due.astimezone(zone)
    hour = local.hour
    if start_hour < end_hour:
        inside = start_hour <= hour < end_hour
    else:  # across midnight: 22 to 6
        inside = hour >= start_hour or hour < end_hour
    if inside:
        return due
    day = local.date()
    # Before today's opening (and, across midnight, after the morning's close): today's.
    opening = _opening(day, start_hour, zone)
    if opening < due:
        opening = _opening(day + dt.timedelta(days=1), start_hour, zone)
    return opening
