"""The repository's templates: every purpose renders a subject, an HTML part and a text part
from its sample data; HTML escapes what people typed, the text part and subject do not."""

from __future__ import annotations

import pytest
from jinja2 import UndefinedError

from backend.email import purposes, render


@pytest.mark.parametrize("name", sorted(purposes.PURPOSES))
def test_every_purpose_renders_its_three_parts(name: str) -> None:
    rendered = render.preview(name)
    assert rendered.subject and "\n" not in rendered.subject
    assert rendered.html.startswith("<!doctype html>")
    assert "https://example.com/u/preview" in rendered.html
    assert "Unsubscribe: https://example.com/u/preview" in rendered.text
    # Every message's footer links to the preferences page (unsubscribe / resubscribe per group).
    assert '<a href="https://example.com/preferences/preview">Manage preferences</a>' in (
        rendered.html
    )
    assert "Manage preferences: https://example.com/preferences/preview" in rendered.text
    assert "<" not in rendered.text.replace("<spring>", "")


def test_html_is_escaped_and_text_is_not() -> None:
    context = {
        **purposes.PURPOSES["new_lead_notification"].sample,
        "lead_name": "<script>alert(1)</script> & Co",
    }
    rendered = render.render("new_lead_notification", context)
    assert "<script>" not in rendered.html
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; Co" in rendered.html
    assert "<script>alert(1)</script> & Co" in rendered.text
    assert rendered.subject.startswith("New lead: <script>alert(1)</script> & Co")
    # The subject shown in the HTML title is escaped too.
    assert "<title>New lead: &lt;script&gt;" in rendered.html


def test_a_newline_in_a_variable_cannot_break_the_subject_line() -> None:
    context = {**purposes.PURPOSES["payment_received"].sample, "amount": "$1\r\nBcc: x@y.z"}
    assert render.render("payment_received", context).subject == ("Payment received: $1 Bcc: x@y.z")


def test_a_missing_variable_is_an_error_not_a_blank() -> None:
    with pytest.raises(UndefinedError):
        render.render("payment_request", {"business_name": "Lakeside"})


def test_an_unknown_purpose_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="unknown e-mail purpose 'newsletter'"):
        render.render("newsletter", {})


def test_transactional_purposes_ignore_group_unsubscribes() -> None:
    assert purposes.groups_blocking("payment_received") == ("all",)
    assert purposes.groups_blocking("payment_reminder") == ("all", "reminders")
    assert purposes.unsubscribe_groups("contract_sent") == ("marketing", "reminders")
    assert purposes.unsubscribe_groups("proposal_sent") == ("marketing",)
