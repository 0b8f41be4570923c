"""A show's claims import tab: a CSV file, its preview, then the import."""

from __future__ import annotations

import reflex as rx

from console.state.show.base import ShowState
from console.state.show.claims import ClaimsState

UPLOAD_ID = "claims_csv"
CSV_HELP = (
    "One claim a row. Columns: item_number, platform_user_id, handle (needed); item_title, "
    "price, quantity, email (optional). A new item needs its item_title. Rows that are already "
    "claims of the show are skipped."
)


def claims_tab() -> rx.Component:
    return rx.vstack(
        rx.text(CSV_HELP, size="2", color_scheme="gray"),
        rx.upload(
            rx.vstack(
                rx.button(
                    "Choose a CSV file",
                    variant="soft",
                    disabled=~ShowState.can_change,
                    data_testid="choose-csv",
                ),
                rx.text("or drop it here", size="1", color_scheme="gray"),
                align="center",
            ),
            id=UPLOAD_ID,
            accept={"text/csv": [".csv"], "text/plain": [".txt"]},
            multiple=False,
            max_files=1,
            disabled=~ShowState.can_change,
            on_drop=ClaimsState.preview_import(rx.upload_files(upload_id=UPLOAD_ID)),
            border="1px dashed var(--gray-a7)",
            padding="1.5rem",
            width="100%",
            data_testid="claims-upload",
        ),
        rx.cond(
            ClaimsState.import_summary != "",
            rx.card(
                rx.vstack(
                    rx.text(
                        ClaimsState.import_file,
                        ": ",
                        ClaimsState.import_summary,
                        weight="medium",
                        data_testid="import-summary",
                    ),
                    rx.foreach(
                        ClaimsState.import_errors,
                        lambda e: rx.text(
                            e, size="2", color_scheme="red", data_testid="import-error"
                        ),
                    ),
                    rx.foreach(
                        ClaimsState.import_notes,
                        lambda n: rx.text(n, size="2", color_scheme="amber"),
                    ),
                    rx.hstack(
                        rx.button(
                            "Import",
                            on_click=ClaimsState.apply_import,
                            loading=ClaimsState.importing,
                            disabled=(~ClaimsState.import_ready) | (~ShowState.can_change),
                            data_testid="import-claims",
                        ),
                        rx.button("Cancel", variant="soft", on_click=ClaimsState.cancel_import),
                    ),
                    spacing="2",
                ),
                width="100%",
                data_testid="import-preview",
            ),
        ),
        spacing="4",
        width="100%",
        padding_top="1rem",
    )
