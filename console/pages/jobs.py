"""The Jobs page."""

from __future__ import annotations

from typing import Any

import reflex as rx

from console.components.table import data_table
from console.layout import page
from console.state.jobs import JobsState


def _pause_button(k: Any) -> rx.Component:
    """Resume this workspace's own pause, or pause the kind for this workspace; a platform
    pause has no button: only the platform's operators lift it (the CLI)."""
    return rx.match(
        k["paused"],
        (
            "platform",
            rx.text(
                "Held for every workspace; resumed by the platform",
                size="1",
                color_scheme="gray",
                data_testid="platform-paused",
            ),
        ),
        (
            "yes",
            rx.button(
                "Resume",
                size="1",
                on_click=JobsState.resume(k["kind"]),
                disabled=~JobsState.can_change,
            ),
        ),
        rx.button(
            "Pause",
            size="1",
            variant="soft",
            on_click=JobsState.pause(k["kind"]),
            disabled=~JobsState.can_change,
        ),
    )


def _kinds_table() -> rx.Component:
    return rx.table.root(
        rx.table.header(
            rx.table.row(*[rx.table.column_header_cell(h) for h in ("Kind", "Calls", "Paused", "")])
        ),
        rx.table.body(
            rx.foreach(
                JobsState.kinds,
                lambda k: rx.table.row(
                    rx.table.cell(k["kind"]),
                    rx.table.cell(k["provider"]),
                    rx.table.cell(
                        rx.match(
                            k["paused"],
                            ("platform", rx.text("paused by the platform")),
                            ("yes", rx.text("paused in this workspace")),
                            rx.text("no"),
                        )
                    ),
                    rx.table.cell(_pause_button(k)),
                    data_testid="kind-row",
                ),
            )
        ),
        variant="surface",
        width="100%",
        data_testid="kinds-table",
    )


def _dead_table() -> rx.Component:
    headers = ("Job", "Kind", "Attempts", "Died", "Last error", "")
    return rx.cond(
        JobsState.dead.length() > 0,  # type: ignore[attr-defined]
        rx.table.root(
            rx.table.header(rx.table.row(*[rx.table.column_header_cell(h) for h in headers])),
            rx.table.body(
                rx.foreach(
                    JobsState.dead,
                    lambda j: rx.table.row(
                        rx.table.cell(j["id"]),
                        rx.table.cell(j["kind"]),
                        rx.table.cell(j["attempts"]),
                        rx.table.cell(j["finished"]),
                        rx.table.cell(rx.code(j["error"])),
                        rx.table.cell(
                            rx.button(
                                "Replay",
                                size="1",
                                on_click=JobsState.replay_one(j["id"]),
                                disabled=~JobsState.can_change,
                            )
                        ),
                    ),
                )
            ),
            variant="surface",
            width="100%",
            data_testid="dead-table",
        ),
        rx.callout(
            "No job has died.", icon="check", color_scheme="green", data_testid="dead-table-empty"
        ),
    )


def _waiting_table() -> rx.Component:
    headers = ("Job", "Kind", "Attempts", "Next try", "Last error", "")
    return rx.cond(
        JobsState.waiting.length() > 0,  # type: ignore[attr-defined]
        rx.table.root(
            rx.table.header(rx.table.row(*[rx.table.column_header_cell(h) for h in headers])),
            rx.table.body(
                rx.foreach(
                    JobsState.waiting,
                    lambda j: rx.table.row(
                        rx.table.cell(j["id"]),
                        rx.table.cell(j["kind"]),
                        rx.table.cell(j["attempts"]),
                        rx.table.cell(j["run_after"]),
                        rx.table.cell(rx.text(j["error"], size="2")),
                        rx.table.cell(
                            rx.button(
                                "Retry now",
                                size="1",
                                on_click=JobsState.retry_now(j["id"]),
                                disabled=~JobsState.can_change,
                                data_testid="retry-now",
                            )
                        ),
                        data_testid="waiting-row",
                    ),
                )
            ),
            variant="surface",
            width="100%",
            data_testid="waiting-table",
        ),
        rx.callout("No job is waiting to retry.", icon="info", data_testid="waiting-table-empty"),
    )


def _replay_form() -> rx.Component:
    return rx.card(
        rx.vstack(
            rx.heading("Replay dead jobs", size="3"),
            rx.hstack(
                rx.select.root(
                    rx.select.trigger(placeholder="Kind", data_testid="replay-kind"),
                    rx.select.content(
                        rx.foreach(JobsState.dead_kinds, lambda k: rx.select.item(k, value=k))
                    ),
                    value=JobsState.replay_kind,
                    on_change=JobsState.set_replay_kind,
                ),
                rx.input(
                    type="datetime-local",
                    value=JobsState.replay_since,
                    on_change=JobsState.set_replay_since,
                ),
                rx.button(
                    "Preview",
                    variant="soft",
                    on_click=JobsState.preview,
                    disabled=JobsState.replay_kind == "",
                    data_testid="replay-preview",
                ),
                rx.cond(
                    JobsState.replay_kind == "",
                    rx.text("Choose a kind first.", size="2", color_scheme="gray"),
                ),
                rx.cond(
                    JobsState.replay_preview > 0,
                    rx.button(
                        f"Replay {JobsState.replay_preview} job(s)",
                        on_click=JobsState.replay_matching,
                        disabled=~JobsState.can_change,
                    ),
                ),
                rx.cond(
                    JobsState.replay_preview == 0,
                    rx.text("No dead job matches.", size="2", data_testid="replay-none"),
                ),
                align="center",
                wrap="wrap",
            ),
            rx.text(
                "Dead jobs of the kind, finished since the time (UTC), run again with the same "
                "idempotency keys: what already reached the provider is not done twice.",
                size="1",
                color_scheme="gray",
            ),
        )
    )


def _inbound_pager() -> rx.Component:
    return rx.hstack(
        rx.button(
            "Newer",
            variant="soft",
            on_click=JobsState.prev_inbound,
            disabled=JobsState.inbound_page == 0,
            data_testid="inbound-newer",
        ),
        rx.text(JobsState.inbound_page_label, size="2", data_testid="inbound-page"),
        rx.button(
            "Older",
            variant="soft",
            on_click=JobsState.next_inbound,
            disabled=~JobsState.inbound_has_next,
            data_testid="inbound-older",
        ),
        align="center",
    )


def jobs_page() -> rx.Component:
    return page(
        "Jobs",
        rx.cond(
            JobsState.filter_label != "",
            rx.callout(
                rx.hstack(
                    rx.text(JobsState.filter_label, data_testid="jobs-filter"),
                    rx.button(
                        "Show every job",
                        size="1",
                        variant="soft",
                        on_click=JobsState.show_every_job,
                        data_testid="jobs-filter-clear",
                    ),
                    align="center",
                ),
                icon="filter",
            ),
        ),
        rx.heading("Queue", size="4"),
        data_table(
            [("Kind", "kind"), ("Status", "status"), ("Jobs", "count")],
            JobsState.depth,
            "The job queue is empty.",
            "jobs-table",
        ),
        rx.heading("Providers", size="4"),
        data_table(
            [
                ("Provider", "provider"),
                ("Circuit", "state"),
                ("Failures", "failures"),
                ("Open until", "opened_until"),
                ("Rate limit", "rate"),
                ("Last error", "error"),
            ],
            JobsState.circuits,
            "No provider has been called yet.",
            "circuits-table",
        ),
        rx.heading("Running", size="4"),
        data_table(
            [("Job", "id"), ("Kind", "kind"), ("Attempt", "attempts"), ("Lease", "lease")],
            JobsState.running,
            "Nothing is running.",
            "running-table",
        ),
        rx.heading(rx.cond(JobsState.filter_label != "", "Waiting", "Waiting to retry"), size="4"),
        _waiting_table(),
        rx.heading("Dead", size="4"),
        _dead_table(),
        _replay_form(),
        rx.heading("Kinds", size="4"),
        _kinds_table(),
        rx.heading("Webhooks received", size="4"),
        data_table(
            [
                ("Received", "received"),
                ("Provider", "provider"),
                ("Event", "type"),
                ("Status", "status"),
                ("Attempts", "attempts"),
                ("Error", "error"),
            ],
            JobsState.inbound,
            "No webhook has arrived yet.",
            "inbound-table",
        ),
        _inbound_pager(),
        rx.moment(interval=3000, on_change=JobsState.load, display="none"),
    )
