"""Claims imported from a CSV file on the show page, for operators who export them from another
live-selling tool: a preview with an actionable error per bad row, then the import.

Rows that are already claims of the show (same buyer, item and quantity, counted one for one)
are skipped, so importing a newer export of the same show adds only what is new, and importing
the same file twice is refused instead of doubling every claim.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from backend.db import conflict_insert
from backend.services import audit, invoice_panel, invoicing
from backend.services.actors import Actor
from backend.services.errors import InvalidInput, NotFound
from models import AuditLog, Buyer, Claim, Invoice, InvoiceStatus, Show, ShowItem, utcnow

MAX_BYTES = 2 * 1024 * 1024
MAX_ROWS = 10_000
MAX_QUANTITY = 1_000  # a typo guard, not a business rule
MAX_ITEM_NUMBER = 1_000_000
ACTION = "claims.import"

REQUIRED = ("item_number", "platform_user_id", "handle")
OPTIONAL = ("item_title", "price", "quantity", "email")
_LENGTHS = {"item_title": 200, "platform_user_id": 64, "handle": 120, "email": 254}
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_WHOLE = re.compile(r"[0-9]+")
_PRICE = re.compile(r"\$?\s*(?:[0-9][0-9,]*(?:\.[0-9]*)?|\.[0-9]+)")
_DECIMAL_COMMA = re.compile(r"\$?\s*[0-9]+,[0-9]{1,2}")
_CHUNK = 1_000  # ids per IN (...) list


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


@dataclass(frozen=True)
class ImportPreview:
    rows: list[ImportRow]  # the valid rows
    errors: list[RowError]  # by line; several per line when a row has several problems
    new_items: int
    new_buyers: int
    # "item #3: the file says 12.50, the show has 10.00; …": the show's price is kept.
    price_conflicts: list[str]
    # Rows that are already claims of the show: skipped by the import.
    repeated_rows: int
    # Rows (not repeated) of buyers whose invoice for this show is made: it will not have them.
    invoiced_rows: int
    invoiced_handles: list[str]
    ignored_columns: list[str]
    fingerprint: str

    @property
    def ok(self) -> bool:
        return not self.errors

    @property
    def bad_lines(self) -> int:
        return len({e.line for e in self.errors})

    @property
    def to_import(self) -> int:
        return len(self.rows) - self.repeated_rows

    @property
    def notes(self) -> list[str]:
        """What the operator should know before importing, in sentences."""
        notes = _conflict_notes(self.price_conflicts)
        if self.repeated_rows:
            notes.append(_repeat_note(self.repeated_rows, done=False))
        if self.invoiced_rows:
            notes.append(_invoiced_note(self.invoiced_rows, self.invoiced_handles))
        if self.ignored_columns:
            notes.append("Columns not imported: " + ", ".join(self.ignored_columns) + ".")
        return notes


@dataclass(frozen=True)
class ImportResult:
    claims_added: int
    items_created: int
    items_priced: int
    buyers_created: int
    buyers_updated: int
    skipped_repeats: int
    invoiced_rows: int
    notes: list[str] = field(default_factory=list)

    @property
    def message(self) -> str:
        said = (
            f"Imported {self.claims_added} claim{'s' if self.claims_added != 1 else ''}"
            f" ({self.items_created} new item{'s' if self.items_created != 1 else ''},"
            f" {self.buyers_created} new buyer{'s' if self.buyers_created != 1 else ''})."
        )
        return " ".join([said, *self.notes])


def _conflict_notes(conflicts: list[str], shown: int = 3) -> list[str]:
    if len(conflicts) <= shown:
        return list(conflicts)
    more = len(conflicts) - shown
    return [
        *conflicts[:shown],
        f"{more} more item{'s' if more != 1 else ''} have a different price in the file than "
        "in the show; the show's prices are kept.",
    ]


def _repeat_note(n: int, *, done: bool) -> str:
    if n == 1:
        said, future = "1 row of the file is already a claim in this show", "it will be"
    else:
        said, future = f"{n} rows of the file are already claims in this show", "they will be"
    return f"{said}: {'' if done else future + ' '}skipped."


def _invoiced_note(rows: int, handles: Sequence[str]) -> str:
    shown = ", ".join(f"@{h}" for h in handles[:5]) + (", …" if len(handles) > 5 else "")
    belongs = "row belongs" if rows == 1 else "rows belong"
    return (
        f"{rows} {belongs} to buyers already invoiced in this show ({shown}): their invoices "
        "do not include these claims; void and regenerate those invoices to include them."
    )


# -- reading the file -------------------------------------------------------------------------


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
    cells: list[str], columns: dict[str, int], width: int, delimiter: str
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
        if delimiter == ";" and _DECIMAL_COMMA.fullmatch(raw_price):
            raw_price = raw_price.replace(",", ".")  # "12,50" in a semicolon file: a decimal
        if not _PRICE.fullmatch(raw_price):
            problems.append(
                f"price '{cell('price')}' is not an amount; write it like 12.50 (or leave it "
                "empty to price the item later)"
            )
        else:
            try:
                price = invoicing.parse_price(raw_price)
            except InvalidInput:
                problems.append(f"price '{cell('price')}' is over 100,000.00")

    pid = cell("platform_user_id")
    if not pid:
        problems.append("platform_user_id is empty (the buyer's id on the selling platform)")
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


def _parse(text: str | bytes) -> tuple[list[ImportRow], list[RowError], list[str]]:
    """(valid rows, errors, ignored columns) of the file, before looking at the
    show. A file that cannot be read at all raises InvalidInput."""
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
        row, problems = _parse_row(cells, layout.columns, layout.width, layout.delimiter)
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


# -- against the show -------------------------------------------------------------------------


def _money(cents: int) -> str:
    return f"{cents / 100:,.2f}"


def _chunks(values: Sequence[str]) -> Iterator[Sequence[str]]:
    for start in range(0, len(values), _CHUNK):
        yield values[start : start + _CHUNK]


def _buyers(session: Session, workspace_id: int, pids: Sequence[str]) -> dict[str, Buyer]:
    found: dict[str, Buyer] = {}
    for chunk in _chunks(pids):
        for buyer in session.scalars(
            select(Buyer).where(
                Buyer.workspace_id == workspace_id, Buyer.platform_user_id.in_(chunk)
            )
        ):
            found[buyer.platform_user_id] = buyer
    return found


def _invoiced(session: Session, show_id: int) -> set[str]:
    """Buyers whose current invoice for the show is made (or being made): new claims miss it."""
    latest: dict[str, Invoice] = {}
    for invoice in session.scalars(
        select(Invoice).where(Invoice.show_id == show_id).order_by(Invoice.attempt)
    ):
        latest[invoice.buyer_platform_id] = invoice
    return {
        pid
        for pid, invoice in latest.items()
        if invoice.status is not InvoiceStatus.VOID
        and not (invoice.status is InvoiceStatus.ERROR and invoice.external_id is None)
    }


def _repeats(session: Session, show_id: int, rows: list[ImportRow]) -> set[int]:
    """Lines of rows that are already claims of the show, matched one for one."""
    existing = Counter(
        (pid, number, quantity)
        for pid, number, quantity in session.execute(
            select(Claim.platform_user_id, ShowItem.number, Claim.quantity)
            .join(ShowItem, ShowItem.id == Claim.item_id)
            .where(Claim.show_id == show_id)
        )
    )
    repeated: set[int] = set()
    for row in rows:
        key = (row.platform_user_id, row.item_number, row.quantity)
        if existing[key] > 0:
            existing[key] -= 1
            repeated.add(row.line)
    return repeated


@dataclass(frozen=True)
class _Checked:
    preview: ImportPreview
    items: dict[int, ShowItem]
    repeated: set[int]


def _check(session: Session, show: Show, text: str | bytes) -> _Checked:
    rows, errors, ignored = _parse(text)
    items = {
        item.number: item
        for item in session.scalars(select(ShowItem).where(ShowItem.show_id == show.id))
    }

    # One title and one price per item across the file.
    titled = {r.item_number for r in rows if r.item_title}
    prices: dict[int, tuple[int, int]] = {}  # number -> (price, first line)
    untitled_reported: set[int] = set()
    valid: list[ImportRow] = []
    for row in rows:
        problems = []
        if row.item_number not in items and row.item_number not in titled:
            if row.item_number not in untitled_reported:
                untitled_reported.add(row.item_number)
                problems.append(
                    f"item {row.item_number} is not in this show yet: give it an item_title"
                )
            else:
                problems.append(f"item {row.item_number} needs an item_title (see above)")
        if row.price_cents is not None:
            first = prices.setdefault(row.item_number, (row.price_cents, row.line))
            if first[0] != row.price_cents:
                problems.append(
                    f"item {row.item_number} costs {_money(first[0])} on line {first[1]} but "
                    f"{_money(row.price_cents)} here; give each item one price"
                )
        errors.extend(RowError(row.line, p) for p in problems)
        if not problems:
            valid.append(row)
    errors.sort(key=lambda e: e.line)

    conflicts = [
        f"Item #{number}: the file says {_money(price)}, the show has "
        f"{_money(items[number].price_cents or 0)}; the show's price is kept (change it on "
        "the Invoices tab if the file is right)."
        for number, (price, _line) in sorted(prices.items())
        if number in items
        and items[number].price_cents is not None
        and items[number].price_cents != price
    ]
    pids = sorted({r.platform_user_id for r in valid})
    known = _buyers(session, show.workspace_id, pids)
    repeated = _repeats(session, show.id, valid)
    invoiced = _invoiced(session, show.id)
    late = [r for r in valid if r.line not in repeated and r.platform_user_id in invoiced]
    preview = ImportPreview(
        rows=valid,
        errors=errors,
        new_items=len({r.item_number for r in valid} - items.keys()),
        new_buyers=len([p for p in pids if p not in known]),
        price_conflicts=conflicts,
        repeated_rows=len(repeated),
        invoiced_rows=len(late),
        invoiced_handles=sorted({r.handle for r in late}),
        ignored_columns=ignored,
        fingerprint=fingerprint(rows),
    )
    return _Checked(preview, items, repeated)


def preview(
    session: Session, *, workspace_id: int, show_id: int, text: str | bytes
) -> ImportPreview:
    """What importing the file would do, and every bad row. Changes nothing.

    ``text`` is the file's content (bytes as uploaded, or already decoded). A file that cannot
    be read at all (too large, no header, not UTF-8) raises InvalidInput.
    """
    show = invoice_panel.show_for(session, workspace_id=workspace_id, show_id=show_id)
    return _check(session, show, text).preview


# -- the import -------------------------------------------------------------------------------


def _earlier_import(session: Session, show_id: int, fingerprint_: str) -> AuditLog | None:
    for row in session.scalars(
        select(AuditLog)
        .where(AuditLog.action == ACTION, AuditLog.target == f"show:{show_id}")
        .order_by(AuditLog.at.desc())
    ):
        if row.details.get("fingerprint") == fingerprint_:
            return row
    return None


def apply(session: Session, *, actor: Actor, show_id: int, text: str | bytes) -> ImportResult:
    """Import the file's claims into the show: missing items and buyers are created (a buyer's
    handle and email updated from the file), rows already claimed in the show skipped."""
    actor.require_change("import claims")
    # Locked: two imports into one show (two operators, a double click) run one after the
    # other, and the second sees the first's claims as repeats.
    show = session.scalars(
        select(Show)
        .where(Show.id == show_id, Show.workspace_id == actor.workspace_id)
        .with_for_update()
    ).first()
    if show is None:
        raise NotFound("This show does not exist in this workspace; pick one from Shows.")
    checked = _check(session, show, text)
    found = checked.preview
    if found.errors:
        n = found.bad_lines
        raise InvalidInput(
            f"{n} row{' has' if n == 1 else 's have'} problems: fix the {n} row"
            f"{'' if n == 1 else 's'} listed and import again. Nothing was imported.",
            field="file",
        )
    earlier = _earlier_import(session, show.id, found.fingerprint)
    if earlier is not None:
        raise InvalidInput(
            f"These claims were already imported into this show on {earlier.at:%Y-%m-%d at %H:%M} "
            f"UTC ({earlier.details.get('claims', '?')} claims). Importing them again would "
            "double them; nothing was imported.",
            field="file",
        )
    if found.to_import == 0:
        raise InvalidInput(
            "Every row of this file is already a claim in this show; nothing was imported.",
            field="file",
        )
    rows = [r for r in found.rows if r.line not in checked.repeated]

    items = dict(checked.items)
    titles: dict[int, str] = {}
    for row in found.rows:
        if row.item_title:
            titles.setdefault(row.item_number, row.item_title)
    created: set[int] = set()
    priced: set[int] = set()
    for row in found.rows:
        item = items.get(row.item_number)
        if item is None:
            item = ShowItem(
                workspace_id=show.workspace_id,
                show_id=show.id,
                number=row.item_number,
                title=titles[row.item_number],
                price_cents=row.price_cents,
            )
            session.add(item)
            items[row.item_number] = item
            created.add(row.item_number)
        elif item.price_cents is None and row.price_cents is not None:
            # The file prices what the show left unpriced; a price already set is kept.
            item.price_cents = row.price_cents
            if row.item_number not in created:
                priced.add(row.item_number)
    session.flush()
    created_items = len(created)

    buyers_created, buyers_updated = _save_buyers(session, show.workspace_id, found.rows)
    if rows:
        session.execute(
            insert(Claim),
            [
                {
                    "workspace_id": show.workspace_id,
                    "show_id": show.id,
                    "item_id": items[r.item_number].id,
                    "platform_user_id": r.platform_user_id,
                    "buyer_handle": r.handle,
                    "quantity": r.quantity,
                }
                for r in rows
            ],
        )
    audit.record(
        session,
        actor=actor,
        action=ACTION,
        target=f"show:{show.id}",
        details={
            "fingerprint": found.fingerprint,
            "claims": len(rows),
            "skipped_repeats": found.repeated_rows,
            "items_created": created_items,
            "buyers_created": buyers_created,
        },
    )
    notes = _conflict_notes(found.price_conflicts)
    if found.repeated_rows:
        notes.append(_repeat_note(found.repeated_rows, done=True))
    if found.invoiced_rows:
        notes.append(_invoiced_note(found.invoiced_rows, found.invoiced_handles))
    return ImportResult(
        claims_added=len(rows),
        items_created=created_items,
        items_priced=len(priced),
        buyers_created=buyers_created,
        buyers_updated=buyers_updated,
        skipped_repeats=found.repeated_rows,
        invoiced_rows=found.invoiced_rows,
        notes=notes,
    )


def _save_buyers(session: Session, workspace_id: int, rows: list[ImportRow]) -> tuple[int, int]:
    """Create the file's new buyers and update the others' handle and email; (created,
    updated). The last row of a buyer wins, as in the file's own order."""
    latest: dict[str, ImportRow] = {}
    emails: dict[str, str] = {}
    for row in rows:
        latest[row.platform_user_id] = row
        if row.email:
            emails[row.platform_user_id] = row.email
    pids = sorted(latest)
    known = _buyers(session, workspace_id, pids)
    new = [p for p in pids if p not in known]
    created = 0
    now = utcnow()
    for chunk in _chunks(new):
        # ON CONFLICT: a buyer added meanwhile by another show's import is simply updated below.
        result = session.execute(
            conflict_insert(session, Buyer)
            .values(
                [
                    {
                        "workspace_id": workspace_id,
                        "platform_user_id": pid,
                        "handle": latest[pid].handle,
                        "email": emails.get(pid),
                        "created_at": now,
                    }
                    for pid in chunk
                ]
            )
            .on_conflict_do_nothing(index_elements=["workspace_id", "platform_user_id"])
            .returning(Buyer.platform_user_id)
        )
        created += len(result.all())
    updated = 0
    for pid, buyer in known.items():
        handle, email = latest[pid].handle, emails.get(pid, buyer.email)
        if (buyer.handle, buyer.email) != (handle, email):
            buyer.handle, buyer.email = handle, email
            updated += 1
    return created, updated
