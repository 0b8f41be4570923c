"""Claims imported from a CSV file on the show page, for operators who export them from another
live-selling tool: a preview with an actionable error per bad row, then the import.

Rows that are already claims of the show (same buyer, item and quantity, counted one for one)
are skipped, so importing a newer export of the same show adds only what is new, and importing
the same file twice is refused instead of doubling every claim.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from backend.accounts import money_settings
from backend.db import conflict_insert
from backend.invoicing import panel as invoice_panel
from backend.platform import audit
from backend.platform.actors import Actor
from backend.platform.errors import InvalidInput, NotFound
from backend.shows import claims_csv
from backend.shows.claims_csv import ImportRow, RowError, fingerprint
from models import AuditLog, Buyer, Claim, Invoice, InvoiceStatus, Show, ShowItem, utcnow

ACTION = "claims.import"
_CHUNK = 1_000  # ids per IN (...) list


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
    # New or unpriced items the file prices at 0: they will be free, which deserves a look.
    free_items: list[int] = field(default_factory=list)

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
        if self.free_items:
            notes.append(_free_note(self.free_items))
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


def _free_note(numbers: Sequence[int]) -> str:
    shown = ", ".join(f"#{n}" for n in numbers[:10]) + (", …" if len(numbers) > 10 else "")
    one = len(numbers) == 1
    return (
        f"Item{'' if one else 's'} {shown} {'is' if one else 'are'} priced 0 in the file: "
        f"{'it' if one else 'they'} will be free. If not, fix the price in the file, or leave "
        "it empty to price the item on the Invoices tab."
    )


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


# -- against the show -------------------------------------------------------------------------


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
    fmt = money_settings.for_show(session, workspace_id=show.workspace_id, show=show)
    _money = fmt.format
    rows, errors, ignored = claims_csv.parse(text, fmt)
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
        free_items=sorted(
            number
            for number, (price, _line) in prices.items()
            if price == 0 and (number not in items or items[number].price_cents is None)
        ),
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
