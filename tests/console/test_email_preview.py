"""Settings → E-mail templates (console/state/email_preview.py): choosing a purpose shows its
subject, group, HTML and text parts with sample data; an unknown purpose falls back."""

from __future__ import annotations

from console.state.email_preview import EmailPreviewState


def _state() -> EmailPreviewState:
    return EmailPreviewState(_reflex_internal_init=True)  # type: ignore[call-arg]


def test_choosing_a_purpose_shows_its_template_with_sample_data() -> None:
    state = _state()
    EmailPreviewState.set_purpose.fn(state, "proposal_sent")  # type: ignore[attr-defined]
    assert state.purpose == "proposal_sent"
    assert state.subject == "Recital media package from Lakeside Media"
    assert state.group == "offers and proposals"
    assert "<strong>Recital media package</strong>" in state.html
    assert "View the proposal: https://console.example/p/abc" in state.text
    # Every purpose: the 12, the asked-for fresh link (backend/email/links.py) and
    # the sequences' follow-up.
    assert len(state.purpose_names) == 14 and "fresh_link" in state.purpose_names
    assert "sequence_followup" in state.purpose_names


def test_an_unknown_purpose_falls_back_to_the_default() -> None:
    state = _state()
    EmailPreviewState.set_purpose.fn(state, "<script>")  # type: ignore[attr-defined]
    assert state.purpose == "payment_request"
