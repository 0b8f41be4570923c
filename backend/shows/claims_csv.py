"""Reading a claims CSV file (see claims_import): its encoding, delimiter and columns, and each
row checked on its own, with an actionable error per problem. Prices are read by the one money
parser (backend/services/money.py) in the workspace's format, as the console's price editor
reads them. Nothing here looks at the show or the database.

Tested in tests/shows/test_claims_import.py (the preview reads files through it)."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from backend.platform.errors import InvalidInput
from backend.platform.money import MoneyFormat

MAX_BYTES = 2 * 1024 * 1024
MAX_ROWS = 10_000
MAX_QUANTITY = 1_000  # a typo guard, not a business rule
MAX_ITEM_NUMBER = 1_000_000

REQUIRED = ("item_number", "platform_user_id", "handle")
# What a selling platform's user id is made of (Facebook's digits, "fb_123", "tt:user.name"). The
# id is looked up in Stripe's search language and shown in the console: nothing else gets in.
PLATFORM_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@-]*")
OPTIONAL = ("item_title", "price", "quantity", "email")
_LENGTHS = {"item_title": 200, "platform_user_id": 64, "handle": 120, "email": 254}
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_WHOLE = re.compile(r"[0-9]+")


@dataclass(frozen=True, slots=True)
class ImportRow:
    line: int
    item_number: int
    item_title: str | None
    price_cents: int | None
    platform_user_id: str
    handle: str
    quantity: int
    email: str | None


@dataclass(frozen=True, slots=True)
class RowError:
    line: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}"


def _decode(text: str | bytes) -> str:
    size = len(text) if isinstance(text, bytes) else len(text.encode("utf-8", "replace"))
    if size > MAX_BYTES:
        raise InvalidInput(
            f"The file is {size / 1024 / 1024:.1f} MiB; the limit is 2 MiB. Split it into "
            "smaller files and import them one after the other.",
            field="file",
        )
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise InvalidInput(
                f"The file is not UTF-8 text (byte {exc.start + 1}). Save it as “CSV UTF-8” "
                "(in Excel: File → Save As → CSV UTF-8) and import it again.",
                field="file",
            ) from None
    return text.removeprefix("\ufeff")


def _delimiter(header: str) -> str:
    """Comma or semicolon, from the header row. (csv.Sniffer looks at the values too, and a
    semicolon file of prices like "12,50" has as many commas as semicolons on every line.)"""
    return ";" if header.count(";") > header.count(",") else ","


def _column(name: str) -> str:
    return name.strip().lower().replace(" ", "_").replace("-", "_")


@dataclass(frozen=True)
class _Layout:
    delimiter: str
    columns: dict[str, int]  # column -> index
    width: int  # how many columns the header names
    ignored: list[str]


def _records(text: str) -> tuple[_Layout, Iterator[tuple[int, list[str]]]]:
    """The header's layout, and (line number, cells) of each data row."""
    lines = text.splitlines()
    first = next((n for n, line in enumerate(lines) if line.strip()), None)
    if first is None:
        raise InvalidInput("The file is empty.", field="file")
    delimiter = _delimiter(lines[first])
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        header = next(r for r in reader if any(c.strip() for c in r))
    except csv.Error as exc:
        raise InvalidInput(f"line {reader.line_num}: {exc}", field="file") from None
    columns: dict[str, int] = {}
    ignored: list[str] = []
    for index, raw in enumerate(header):
        name = _column(raw)
        if name in columns:
            raise InvalidInput(f"The header names the column {name} twice.", field="file")
        if name in REQUIRED or name in OPTIONAL:
            columns[name] = index
        elif name:
            ignored.append(raw.strip())
    missing = [c for c in REQUIRED if c not in columns]
    if missing:
        found = ", ".join(c.strip() for c in header if c.strip()) or "nothing"
        raise InvalidInput(
            "The first row must name the columns; "
            f"{', '.join(missing)} {'is' if len(missing) == 1 else 'are'} missing (found: "
            f"{found}). Needed: {', '.join(REQUIRED)}; optional: {', '.join(OPTIONAL)}.",
            field="file",
        )

    def rows() -> Iterator[tuple[int, list[str]]]:
        while True:
            try:
                cells = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                raise InvalidInput(f"line {reader.line_num}: {exc}", field="file") from None
            if any(c.strip() for c in cells):
                yield reader.line_num, cells

    return _Layout(delimiter, columns, len(header), ignored), rows()


def _parse_row(
    cells: list[str], columns: dict[str, int], width: int, delimiter: str, money: MoneyFormat
) -> tuple[ImportRow | None, list[str]]:
    """The row, or the problems with it (each a message a person can act on)."""
    problems: list[str] = []
    if len(cells) > width:
        return None, [
            f"has {len(cells)} values but the header names {width} columns (a value that "
            f"contains “{delimiter}” must be in double quotes)"
        ]

    def cell(name: str) -> str:
        index = columns.get(name)
        return cells[index].strip() if index is not None and index < len(cells) else ""

    for name, limit in _LENGTHS.items():
        if len(cell(name)) > limit:
            problems.append(f"{name} is longer than {limit} characters")

    number = None
    raw_number = cell("item_number").removeprefix("#")
    if not raw_number:
        problems.append("item_number is empty")
    elif not _WHOLE.fullmatch(raw_number):
        problems.append(f"item_number '{cell('item_number')}' is not a whole number")
    elif not 1 <= int(raw_number) <= MAX_ITEM_NUMBER:
        problems.append(f"item_number {int(raw_number)} must be between 1 and {MAX_ITEM_NUMBER}")
    else:
        number = int(raw_number)

    price = None
    raw_price = cell("price")
    if raw_price:
        try:
            price = money.parse(raw_price)
        except InvalidInput as exc:
            # The parser's own words ("ambiguous: type 12.50 for $12.50 …"), with the way out
            # of the import's: an empty price prices the item later, on the Invoices tab.
            problems.append(f"price: {exc} Or leave it empty to price the item later.")

    pid = cell("platform_user_id")
    if not pid:
        problems.append("platform_user_id is empty (the buyer's id on the selling platform)")
    elif not PLATFORM_ID.fullmatch(pid):
        problems.append(
            f"platform_user_id '{pid}' may hold only letters, digits and . _ - : @ "
            "(the buyer's id on the selling platform, as the platform exports it)"
        )
    handle = cell("handle").lstrip("@").strip()
    if not handle:
        problems.append("handle is empty (the buyer's name as shown in the show)")

    quantity = 1
    raw_quantity = cell("quantity")
    if raw_quantity:
        if not _WHOLE.fullmatch(raw_quantity.lstrip("+")):
            problems.append(f"quantity '{raw_quantity}' is not a whole number")
        elif not 1 <= int(raw_quantity) <= MAX_QUANTITY:
            problems.append(f"quantity {int(raw_quantity)} must be between 1 and {MAX_QUANTITY}")
        else:
            quantity = int(raw_quantity)

    email = cell("email") or None
    if email and not _EMAIL.fullmatch(email):
        problems.append(f"email '{email}' does not look like an email address")

    if problems or number is None:
        return None, problems
    return (
        ImportRow(
            line=0,
            item_number=number,
            item_title=cell("item_title") or None,
            price_cents=price,
            platform_user_id=pid,
            handle=handle,
            quantity=quantity,
            email=email,
        ),
        [],
    )


def parse(
    text: str | bytes, money: MoneyFormat
) -> tuple[list[ImportRow], list[RowError], list[str]]:
    """(valid rows, errors, ignored columns) of the file, before looking at the show; prices
    read in ``money`` (the workspace's locale, the show's currency). A file that cannot be read
    at all raises InvalidInput."""
    layout, records = _records(_decode(text))
    rows: list[ImportRow] = []
    errors: list[RowError] = []
    count = 0
    for line, cells in records:
        count += 1
        if count > MAX_ROWS:
            raise InvalidInput(
                f"The file has more than {MAX_ROWS:,} rows; import at most {MAX_ROWS:,} at a "
                "time (split the file).",
                field="file",
            )
        row, problems = _parse_row(cells, layout.columns, layout.width, layout.delimiter, money)
        errors.extend(RowError(line, p) for p in problems)
        if row is not None:
            rows.append(_with_line(row, line))
    if count == 0:
        raise InvalidInput("The file has a header row but no claims under it.", field="file")
    return rows, errors, layout.ignored


def _with_line(row: ImportRow, line: int) -> ImportRow:
    return ImportRow(
        line,
        row.item_number,
        row.item_title,
        row.price_cents,
        row.platform_user_id,
        row.handle,
        row.quantity,
        row.email,
    )


def fingerprint(rows: Iterable[ImportRow]) -> str:
    """The claims of a file, whatever their order, columns or buyers' details."""
    claims = sorted((r.platform_user_id, r.item_number, r.quantity) for r in rows)
    return hashlib.sha256(json.dumps(claims).encode()).hexdigest()
