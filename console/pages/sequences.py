"""The Sequences page: each follow-up sequence with its trigger, enrolments and Pause /
Resume, then every step with its e-mails' counts."""

from __future__ import annotations

from typing import Any

import reflex as rx

from console.components.table import data_table
from console.layout import page
from console.state.sequences import SequencesState

SEQUENCE_HEADERS = (
    "Sequence", "Starts on", "Steps", "Enrolled", "Active", "Completed", "Stopped", "Paused", "",
)  # fmt: skip


def _pause_button(row: Any) -> rx.Component:
    return rx.cond(
        row["paused"] == "yes",
        rx.button(
            "Resume",
            size="1",
            on_click=SequencesState.resume(row["id"]),
            disabled=~SequencesState.can_change,
            data_testid="sequence-resume",
        ),
        rx.button(
            "Pause",
            size="1",
            variant="soft",
            on_click=SequencesState.pause(row["id"]),
            disabled=~SequencesState.can_change,
            data_testid="sequence-pause",
        ),
    )


def _sequences_table() -> rx.Component:
    return rx.cond(
        SequencesState.sequences.length() > 0,  # type: ignore[attr-defined]
        rx.table.root(
            rx.table.header(
                rx.table.row(*[rx.table.column_header_cell(h) for h in SEQUENCE_HEADERS])
            ),
            rx.table.body(
                rx.foreach(
                    SequencesState.sequences,
                    lambda row: rx.table.row(
                        rx.table.cell(rx.text(row["name"], weight="medium")),
                        rx.table.cell(row["trigger"]),
                        rx.table.cell(row["steps"]),
                        rx.table.cell(row["enrolled"]),
                        rx.table.cell(row["active"]),
                        rx.table.cell(row["completed"]),
                        rx.table.cell(row["stopped"]),
                        rx.table.cell(
                            rx.cond(
                                row["paused"] == "yes",
                                rx.badge("paused", color_scheme="amber"),
                                rx.badge("running", color_scheme="green"),
                            )
                        ),
                        rx.table.cell(_pause_button(row)),
                        data_testid="sequence-row",
                    ),
                )
            ),
            variant="surface",
            width="100%",
            data_testid="sequences-table",
        ),
        rx.callout(
            "No sequence yet: a sequence mails a lead follow-ups after they inquire, after a "
            "proposal or while a contract waits.",
            icon="info",
            data_testid="sequences-table-empty",
        ),
    )


def sequences_page() -> rx.Component:
    return page(
        "Sequences",
        rx.text(
            "A lead is enrolled when the sequence's trigger happens and gets each step's e-mail "
            "in turn, within the step's window in their time zone. A reply, an unsubscribe, a "
            "bounce, a spam report, the conversion or an operator's Stop ends it (the lead's "
            "page shows why). A paused sequence holds its leads where they are.",
            size="2",
            color_scheme="gray",
        ),
        _sequences_table(),
        rx.heading("Steps", size="4"),
        data_table(
            [
                ("Sequence", "sequence"),
                ("Step", "step"),
                ("When", "delay"),
                ("Template", "template"),
                ("Window", "window"),
                ("Queued", "queued"),
                ("Sent", "sent"),
                ("Opened", "opened"),
                ("Clicked", "clicked"),
                ("Skipped", "skipped"),
            ],
            SequencesState.steps,
            "No step yet.",
            "steps-table",
        ),
    )
