"""What a handler gets: the state, the caller's account, the decoded parameters.

Tested in tests/sandbox/test_stripe.py and tests/sandbox/test_stripe_fidelity.py (through the
official stripe SDK)."""

from __future__ import annotations

import base64
import operator
import re
import time
from dataclasses import dataclass, field
from typing import Any

from backend.sandbox.context import SandboxContext
from backend.sandbox.stripe.core import RequestMeta, StripeError, emit, table
from backend.sandbox.stripe.formdata import as_int
from backend.sandbox.stripe.objects import list_object, search_result


@dataclass
class Op:
    s: dict[str, Any]
    ctx: SandboxContext
    account: str
    params: dict[str, Any]
    path: dict[str, str] = field(default_factory=dict)
    meta: RequestMeta | None = None

    def emit(
        self, event_type: str, obj: dict[str, Any], previous: dict[str, Any] | None = None
    ) -> None:
        emit(self.s, self.ctx, self.account, event_type, obj, previous=previous, request=self.meta)

    def table(self, resource: str) -> dict[str, dict[str, Any]]:
        return table(self.s, self.account, resource)

    def require(self, name: str) -> Any:
        value = self.params.get(name)
        if value in (None, ""):
            raise StripeError(
                400, f"Missing required param: {name}.", code="parameter_missing", param=name
            )
        return value


def paginate(op: Op, items: list[dict[str, Any]], url: str) -> dict[str, Any]:
    """Newest first, with limit / starting_after / ending_before and a ``created`` range
    (``created[gte]=…``), as Stripe lists do."""
    ordered = [o for o in reversed(items) if _created_within(o, op.params.get("created"))]
    limit = min(max(as_int(op.params.get("limit"), 10) or 10, 1), 100)
    if after := op.params.get("starting_after"):
        ids = [o["id"] for o in ordered]
        if after not in ids:
            raise StripeError(400, f"Invalid starting_after id: {after}", param="starting_after")
        ordered = ordered[ids.index(after) + 1 :]
    elif before := op.params.get("ending_before"):
        ids = [o["id"] for o in ordered]
        if before in ids:
            ordered = ordered[: ids.index(before)][-limit:]
    return list_object(ordered[:limit], url, has_more=len(ordered) > limit)


_RANGE = {"gt": operator.gt, "gte": operator.ge, "lt": operator.lt, "lte": operator.le}


def _created_within(obj: dict[str, Any], wanted: object) -> bool:
    """Stripe's ``created`` filter: an exact time, or a range of gt / gte / lt / lte."""
    if wanted in (None, ""):
        return True
    created = int(obj.get("created") or 0)
    if not isinstance(wanted, dict):
        return created == as_int(wanted, 0)
    return all(
        _RANGE[name](created, as_int(bound, 0) or 0)
        for name, bound in wanted.items()
        if name in _RANGE
    )


# A value is quoted; inside it a backslash escapes the next character (Stripe: "You can escape
# quotes inside of quotes with a backslash").
_CLAUSE = re.compile(
    r"""(metadata\[['"](?P<mkey>[^'"]+)['"]\]|(?P<field>\w+))\s*:\s*"""
    r"""(?P<quote>['"])(?P<value>(?:[^'"\\]|\\.)*)(?P=quote)"""
)
_ESCAPED = re.compile(r"\\(.)")
_JOINER = re.compile(r"\s+(AND|OR)\s+")


def _parse(query: str) -> tuple[list[tuple[str | None, str | None, str]] | None, list[str]]:
    """Clauses left to right, with the joiners between them; quoted values may hold AND, OR
    and escaped quotes. None when the query is not of this form."""
    clauses: list[tuple[str | None, str | None, str]] = []
    joiners: list[str] = []
    position = len(query) - len(query.lstrip())
    while True:
        match = _CLAUSE.match(query, position)
        if match is None:
            return None, joiners
        value = _ESCAPED.sub(r"\1", match.group("value"))
        clauses.append((match.group("mkey"), match.group("field"), value))
        position = match.end()
        if position == len(query.rstrip()):
            return clauses, joiners
        joined = _JOINER.match(query, position)
        if joined is None:
            return None, joiners
        joiners.append(joined.group(1))
        position = joined.end()


def search(op: Op, items: list[dict[str, Any]], url: str) -> dict[str, Any]:
    """Stripe's search language, the part that matters here: ``field:'v'``,
    ``metadata['k']:'v'``, joined by AND or OR."""
    query = str(op.require("query"))
    clauses, joiners = _parse(query)
    if clauses is None or len(set(joiners)) > 1:
        raise StripeError(
            400,
            f"Invalid search query: {query}",
            code="parameter_invalid_string",
            param="query",
        )
    joiner = " OR " if joiners and joiners[0] == "OR" else " AND "

    def hit(obj: dict[str, Any], clause: tuple[str | None, str | None, str]) -> bool:
        mkey, name, value = clause
        if mkey is not None:
            return str(obj.get("metadata", {}).get(mkey)) == value
        return str(obj.get(name or "")) == value

    combine = any if joiner == " OR " else all
    # Stripe's search index trails its writes (about a minute): what is younger is not found.
    lag = op.ctx.switches.of("stripe").search_lag_seconds
    indexed_before = time.time() - lag
    found = [
        o
        for o in reversed(items)
        if combine(hit(o, c) for c in clauses) and (not lag or o.get("created", 0) < indexed_before)
    ]
    limit = min(max(as_int(op.params.get("limit"), 10) or 10, 1), 100)
    start = _page_offset(op.params.get("page"))
    end = start + limit
    more = _page_cursor(end) if end < len(found) else None
    return search_result(found[start:end], url, next_page=more)


def _page_cursor(offset: int) -> str:
    """Stripe's ``next_page`` is an opaque cursor; here it hides an offset."""
    return base64.urlsafe_b64encode(f"offset:{offset}".encode()).decode().rstrip("=")


def _page_offset(cursor: object) -> int:
    if not cursor:
        return 0
    try:
        text = base64.urlsafe_b64decode(str(cursor) + "=" * (-len(str(cursor)) % 4)).decode()
        kind, _, offset = text.partition(":")
        if kind == "offset" and offset.isdigit():
            return int(offset)
    except (ValueError, UnicodeDecodeError):
        pass
    raise StripeError(400, f"Invalid page: {cursor}", code="parameter_invalid_string", param="page")


def metadata(op: Op, current: dict[str, str] | None = None) -> dict[str, str]:
    """Stripe merges metadata on update; an empty value deletes a key."""
    merged = dict(current or {})
    for key, value in (op.params.get("metadata") or {}).items():
        if value == "":
            merged.pop(key, None)
        else:
            merged[key] = str(value)
    return merged
