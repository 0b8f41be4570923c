"""The Leads page and a lead's page."""

from __future__ import annotations

from typing import Any

import reflex as rx

from console.components.status_badge import email_status_color, lead_status_color
from console.layout import page
from console.state.leads import ANY, LeadsState, LeadState

# -- the list -----------------------------------------------------------------------------


def _choice(
    placeholder: str,
    value: Any,
    options: Any,
    on_change: Any,
    test_id: str,
    every: str,
    item: Any = lambda o: rx.select.item(o, value=o),
) -> rx.Component:
    return rx.select.root(
        rx.select.trigger(placeholder=placeholder, data_testid=test_id),
        rx.select.content(rx.select.item(every, value=ANY), rx.foreach(options, item)),
        value=value,
        on_change=on_change,
    )


def _filters() -> rx.Component:
    return rx.hstack(
        rx.input(
            placeholder="Search name, e-mail or company",
            value=LeadsState.search,
            on_change=LeadsState.set_search.debounce(300),
            width="20rem",
            data_testid="leads-search",
        ),
        _choice(
            "Status",
            LeadsState.status_filter,
            LeadsState.statuses,
            LeadsState.set_status_filter,
            "leads-status-filter",
            "Every status",
            lambda o: rx.select.item(o["label"], value=o["value"]),
        ),
        _choice(
            "Source",
            LeadsState.source_filter,
            LeadsState.sources,
            LeadsState.set_source_filter,
            "leads-source-filter",
            "Every source",
        ),
        _choice(
            "Service",
            LeadsState.service_filter,
            LeadsState.service_types,
            LeadsState.set_service_filter,
            "leads-service-filter",
            "Every service",
        ),
        rx.cond(
            LeadsState.filtered,
            rx.button(
                "Clear",
                variant="soft",
                size="1",
                on_click=LeadsState.clear_filters,
                data_testid="leads-clear",
            ),
        ),
        align="center",
        wrap="wrap",
    )


def _lead_row(row: Any) -> rx.Component:
    return rx.table.row(
        rx.table.cell(
            rx.vstack(
                rx.link(row["name"], href=row["href"], weight="medium"),
                rx.text(row["email"], size="1", color_scheme="gray"),
                spacing="0",
            )
        ),
        rx.table.cell(row["company"]),
        rx.table.cell(
            rx.badge(
                row["status_label"],
                color_scheme=lead_status_color(row["status"]),
                data_testid="lead-status",
            )
        ),
        rx.table.cell(row["source"]),
        rx.table.cell(row["service_type"]),
        rx.table.cell(row["inquiries"]),
        rx.table.cell(row["last_activity"]),
        rx.table.cell(row["created"]),
        data_testid="lead-row",
        data_lead=row["id"],
    )


def _pager() -> rx.Component:
    return rx.hstack(
        rx.button(
            "Previous",
            variant="soft",
            on_click=LeadsState.previous_page,
            disabled=LeadsState.page <= 1,
            data_testid="leads-previous",
        ),
        rx.text(LeadsState.page_label, size="2", data_testid="leads-page"),
        rx.button(
            "Next",
            variant="soft",
            on_click=LeadsState.next_page,
            disabled=~LeadsState.has_next,
            data_testid="leads-next",
        ),
        align="center",
    )


def leads_page() -> rx.Component:
    headers = (
        "Lead",
        "Company",
        "Status",
        "Source",
        "Service",
        "Inquiries",
        "Last activity",
        "Created",
    )
    return page(
        "Leads",
        _filters(),
        rx.cond(
            LeadsState.rows.length() > 0,  # type: ignore[attr-defined]
            rx.table.root(
                rx.table.header(rx.table.row(*[rx.table.column_header_cell(h) for h in headers])),
                rx.table.body(rx.foreach(LeadsState.rows, _lead_row)),
                width="100%",
                variant="surface",
                data_testid="leads-table",
            ),
            rx.cond(
                LeadsState.loaded,
                rx.callout(
                    rx.cond(
                        LeadsState.filtered,
                        "No lead matches.",
                        "No leads yet: they arrive through the lead form.",
                    ),
                    icon="info",
                    data_testid="leads-table-empty",
                ),
            ),
        ),
        _pager(),
    )


# -- a lead -------------------------------------------------------------------------------


def _fact(name: str, key: str) -> rx.Component:
    return rx.fragment(
        rx.text(name, weight="medium", size="2"),
        rx.text(LeadState.lead[key], size="2", data_testid=f"lead-{key}"),
    )


def _details() -> rx.Component:
    return rx.card(
        rx.grid(
            _fact("E-mail", "email"),
            _fact("Phone", "phone"),
            _fact("Company", "company"),
            _fact("Service", "service_type"),
            _fact("Event date", "event_date"),
            _fact("Marketing consent", "consent"),
            _fact("Time zone", "time_zone"),
            _fact("Source", "source"),
            _fact("Inquiries", "inquiries"),
            _fact("Created", "created"),
            _fact("Last activity", "last_activity"),
            columns="max-content 1fr",
            spacing_x="4",
            spacing_y="1",
        ),
        width="100%",
    )


def _email_row(e: Any) -> rx.Component:
    return rx.table.row(
        rx.table.cell(
            rx.vstack(
                rx.text(e["what"], weight="medium", size="2"),
                rx.text(e["template"], size="1", color_scheme="gray"),
                spacing="0",
            )
        ),
        rx.table.cell(e["to"]),
        rx.table.cell(
            rx.vstack(
                rx.badge(
                    e["status_label"],
                    color_scheme=email_status_color(e["status"]),
                    data_testid="email-status",
                ),
                rx.cond(
                    e["reason"] != "",
                    rx.text(e["reason"], size="1", color_scheme="gray", data_testid="email-reason"),
                ),
                spacing="1",
            )
        ),
        rx.table.cell(e["sent"]),
        rx.table.cell(e["first_open"]),
        rx.table.cell(e["last_open"]),
        rx.table.cell(e["opens"], data_testid="email-opens"),
        rx.table.cell(e["clicks"]),
        data_testid="email-row",
        data_status=e["status"],
        data_template=e["template"],
    )


def _emails() -> rx.Component:
    headers = ("E-mail", "To", "Status", "Sent", "First open", "Last open", "Opens", "Clicks")
    return rx.cond(
        LeadState.emails.length() > 0,  # type: ignore[attr-defined]
        rx.table.root(
            rx.table.header(rx.table.row(*[rx.table.column_header_cell(h) for h in headers])),
            rx.table.body(rx.foreach(LeadState.emails, _email_row)),
            width="100%",
            variant="surface",
            data_testid="lead-emails",
        ),
        rx.callout("No e-mail about this lead yet.", icon="info", data_testid="lead-emails-empty"),
    )


def _enrolment_row(e: Any) -> rx.Component:
    return rx.table.row(
        rx.table.cell(e["sequence"]),
        rx.table.cell(e["progress"]),
        rx.table.cell(e["next_due"]),
        rx.table.cell(
            rx.vstack(
                rx.badge(e["status_label"], data_testid="enrolment-status"),
                rx.cond(e["stop_reason"] != "", rx.text(e["stop_reason"], size="1")),
                spacing="1",
            )
        ),
        rx.table.cell(
            rx.cond(
                e["active"] == "yes",
                rx.button(
                    "Stop",
                    size="1",
                    color_scheme="red",
                    variant="soft",
                    on_click=LeadState.stop_enrolment(e["id"]),
                    disabled=~LeadState.can_change,
                    data_testid="enrolment-stop",
                ),
            )
        ),
        data_testid="enrolment-row",
    )


def _enrolments() -> rx.Component:
    headers = ("Sequence", "Progress", "Next due", "Status", "")
    return rx.cond(
        LeadState.enrolments.length() > 0,  # type: ignore[attr-defined]
        rx.table.root(
            rx.table.header(rx.table.row(*[rx.table.column_header_cell(h) for h in headers])),
            rx.table.body(rx.foreach(LeadState.enrolments, _enrolment_row)),
            width="100%",
            variant="surface",
            data_testid="lead-enrolments",
        ),
        rx.text("Not in any sequence.", size="2", color_scheme="gray"),
    )


def _note_form() -> rx.Component:
    return rx.vstack(
        rx.text_area(
            placeholder="A note for the team (what was said on the phone, what to do next)",
            value=LeadState.note_draft,
            on_change=LeadState.set_note_draft,
            disabled=~LeadState.can_change,
            width="100%",
            data_testid="note-input",
        ),
        rx.cond(
            LeadState.note_error != "",
            rx.text(LeadState.note_error, color_scheme="red", size="2", data_testid="note-error"),
        ),
        rx.button(
            "Add note",
            on_click=LeadState.add_note,
            disabled=~LeadState.can_change,
            data_testid="note-add",
        ),
        width="100%",
        align="start",
    )


def _message(m: Any) -> rx.Component:
    return rx.card(
        rx.vstack(
            rx.hstack(
                rx.badge(
                    m["kind"],
                    color_scheme=rx.match(m["kind"], ("reply", "green"), ("note", "amber"), "blue"),
                ),
                rx.text(m["at"], size="1", color_scheme="gray"),
                align="center",
            ),
            rx.text(m["body"], size="2", white_space="pre-wrap"),
            spacing="1",
        ),
        width="100%",
        data_testid="lead-message",
        data_kind=m["kind"],
    )


def _history() -> rx.Component:
    return rx.vstack(
        _note_form(),
        rx.cond(
            LeadState.messages.length() > 0,  # type: ignore[attr-defined]
            rx.vstack(rx.foreach(LeadState.messages, _message), width="100%", spacing="2"),
            rx.text("No messages yet.", size="2", color_scheme="gray"),
        ),
        width="100%",
        spacing="3",
        data_testid="lead-history",
    )


def lead_page() -> rx.Component:
    return page(
        "Lead",
        rx.cond(
            LeadState.missing != "",
            rx.callout(LeadState.missing, icon="info", data_testid="lead-missing"),
            rx.cond(
                LeadState.loaded,
                rx.vstack(
                    rx.hstack(
                        rx.link("← Leads", href="/leads", size="2"),
                        rx.heading(LeadState.lead["name"], size="5", data_testid="lead-name"),
                        rx.badge(
                            LeadState.lead["status_label"],
                            color_scheme=lead_status_color(LeadState.lead["status"]),
                            data_testid="lead-status",
                        ),
                        align="center",
                        spacing="3",
                        wrap="wrap",
                    ),
                    _details(),
                    rx.heading("E-mails", size="4"),
                    _emails(),
                    rx.heading("Sequences", size="4"),
                    _enrolments(),
                    rx.heading("Messages", size="4"),
                    _history(),
                    width="100%",
                    spacing="4",
                ),
                rx.spinner(size="3"),
            ),
        ),
        # Live tracking while the page is open (SendGrid's events, replies): the mark is one
        # statement; the page is read again only when it moved.
        rx.moment(interval=2000, on_change=LeadState.poll, display="none"),
    )
