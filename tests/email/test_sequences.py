"""Follow-up sequences with a frozen clock (``now`` passed in, nothing sleeps): a lead enrolled
by capture, steps going on time and not before, send windows in the lead's zone (DST too), a
paused sequence waiting, every stop reason, consent, two runs at once and a rerun sending
each step once, another workspace untouched, and the Sequences page's counts."""

from __future__ import annotations

import datetime as dt
import threading
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, func, select, update
from sqlalchemy.orm import Session

from backend.email import events, preferences, service, unsubscribe
from backend.email.sequences import service as sequences
from backend.email.sequences import stops, windows
from backend.email.sequences import views as sequence_views
from backend.email.sequences.service import StepSpec
from backend.leads import capture
from backend.platform.actors import Actor
from backend.platform.errors import NotFound, PermissionDenied
from models import (
    AuditLog,
    EmailMessage,
    EmailStatus,
    EnrolmentStatus,
    InboundEvent,
    Lead,
    OutboxJob,
    ProposalTemplate,
    Role,
    SequenceEnrolment,
    Workspace,
)
from tests import factories
from tests.email.support import drain

T0 = dt.datetime(2027, 1, 11, 10, 0, tzinfo=dt.UTC)  # a Monday, 10:00 UTC
HOUR = dt.timedelta(hours=1)
DAY = dt.timedelta(days=1)


# -- helpers ----------------------------------------------------------------------------------


def _workspace(engine: Engine, slug: str = "acme") -> int:
    with Session(engine) as session:
        ws = factories.workspace(session, slug=slug).id
        session.commit()
        return ws


def _sequence(
    engine: Engine,
    ws: int,
    steps: list[StepSpec] | None = None,
    *,
    trigger: str = "lead_created",
    name: str = "Follow up",
    paused: bool = False,
) -> int:
    steps = steps or [
        StepSpec(60, "sequence_followup"),
        StepSpec(2 * 24 * 60, "sequence_followup"),
    ]
    with Session(engine) as session:
        made = sequences.create_sequence(
            session, workspace_id=ws, name=name, trigger=trigger, steps=steps, paused=paused
        )
        session.commit()
        return made.id


def _lead(
    engine: Engine,
    ws: int,
    email: str = "jane@example.com",
    *,
    consent: bool = True,
    time_zone: str | None = None,
) -> int:
    with Session(engine) as session:
        lead = Lead(
            workspace_id=ws,
            email=email,
            name="Jane Doe",
            service_type="recital media",
            marketing_consent=consent,
            time_zone=time_zone,
        )
        session.add(lead)
        session.commit()
        return lead.id


def _enrol(engine: Engine, ws: int, lead: int, at: dt.datetime = T0, **kw: object) -> list[int]:
    with Session(engine) as session:
        made = sequences.enrol(
            session, workspace_id=ws, lead_id=lead, trigger="lead_created", at=at, **kw
        )  # type: ignore[arg-type]
        session.commit()
        return made


def _messages(engine: Engine, ws: int) -> list[EmailMessage]:
    with Session(engine) as session:
        return list(
            session.scalars(
                select(EmailMessage)
                .where(EmailMessage.workspace_id == ws, EmailMessage.sequence_step_id.is_not(None))
                .order_by(EmailMessage.id)
            )
        )


def _enrolment(engine: Engine, enrolment_id: int) -> SequenceEnrolment:
    with Session(engine) as session:
        return session.get_one(SequenceEnrolment, enrolment_id)


def _actor(engine: Engine, ws: int, role: Role = Role.ADMIN) -> Actor:
    with Session(engine) as session:
        operator = factories.member(
            session,
            session.get_one(Workspace, ws),
            email=f"{role.value}-{ws}@example.com",
            role=role,
        )
        session.commit()
        return Actor(operator_id=operator.id, workspace_id=ws, role=role, name="Sam")


def _sendgrid_event(engine: Engine, ws: int, message_id: int, name: str, **extra: object) -> None:
    event = InboundEvent(
        provider="sendgrid",
        external_id=f"sg-{name}-{message_id}",
        event_type=name,
        workspace_id=ws,
        payload={
            "event": name,
            "sg_event_id": f"sg-{name}-{message_id}",
            "hub_message_id": str(message_id),
            "hub_workspace_id": str(ws),
            "email": "jane@example.com",
            "timestamp": int((T0 + 2 * HOUR).timestamp()),
            **extra,
        },
    )
    with Session(engine) as session:
        events.handle(session, event)
        session.commit()


# -- enrolling --------------------------------------------------------------------------------


def test_a_new_lead_from_the_form_is_enrolled_in_its_workspaces_lead_created_sequences(
    engine: Engine,
) -> None:
    ws, other = _workspace(engine), _workspace(engine, "other")
    wanted = _sequence(engine, ws)
    _sequence(engine, ws, name="Held", paused=True)
    _sequence(engine, ws, name="After a proposal", trigger="proposal_sent")
    _sequence(engine, other, name="Another workspace's")
    for _ in range(2):  # a repeat inquiry enrols nobody again
        with Session(engine) as session:
            capture.capture(
                session,
                ws,
                capture.Inquiry(name="Jane Doe", email="jane@example.com", message="Hi"),
                now=T0,
            )
            session.commit()
        assert drain(engine, provider_jobs=False) == []  # the lead's announcement enrols it
    with Session(engine) as session:
        rows = session.scalars(select(SequenceEnrolment)).all()
        assert [(e.sequence_id, e.workspace_id) for e in rows] == [(wanted, ws)]
        assert rows[0].next_position == 1
        assert rows[0].next_due_at == T0 + HOUR
        assert rows[0].status == EnrolmentStatus.ACTIVE


def test_a_proposal_sent_by_capture_enrols_the_lead_with_the_proposal_for_its_reminders(
    engine: Engine,
) -> None:
    ws = _workspace(engine)
    reminders = _sequence(
        engine, ws, [StepSpec(3 * 24 * 60, "proposal_reminder")], trigger="proposal_sent"
    )
    with Session(engine) as session:
        session.add(
            ProposalTemplate(
                workspace_id=ws, title="Recital package", service_type="recital", body="Two.",
                published=True,
            )
        )  # fmt: skip
        session.commit()
        capture.capture(
            session,
            ws,
            capture.Inquiry(name="Jane", email="jane@example.com", service_type="Recital"),
            now=T0,
        )
        session.commit()
    assert drain(engine, provider_jobs=False) == []  # the lead's announcement: the proposal
    sequences.run_due(engine, now=T0 + 3 * DAY)
    (message,) = _messages(engine, ws)
    assert message.purpose == "proposal_reminder"
    assert message.context["proposal_title"] == "Recital package"
    with Session(engine) as session:
        enrolment = session.scalars(select(SequenceEnrolment)).one()
        assert (enrolment.sequence_id, enrolment.status) == (reminders, EnrolmentStatus.COMPLETED)


# -- on time ----------------------------------------------------------------------------------


def test_steps_go_out_on_time_and_not_before(engine: Engine) -> None:
    ws = _workspace(engine)
    _sequence(engine, ws)
    lead = _lead(engine, ws)
    (enrolment,) = _enrol(engine, ws, lead)

    assert sequences.run_due(engine, now=T0 + HOUR - dt.timedelta(seconds=1)) == 0
    assert _messages(engine, ws) == []

    sent_at = T0 + HOUR + dt.timedelta(minutes=10)  # the 15-minute job comes a little later
    assert sequences.run_due(engine, now=sent_at) == 1
    (first,) = _messages(engine, ws)
    assert first.dedupe_key == f"sequence:{enrolment}:step:1"
    assert first.status == EmailStatus.QUEUED
    assert (first.subject_type, first.subject_id, first.to_email) == (
        "lead",
        lead,
        "jane@example.com",
    )
    with Session(engine) as session:
        job = session.scalars(select(OutboxJob.idempotency_key)).all()
        assert job == [service.send_key(first.id)]
    state = _enrolment(engine, enrolment)
    # The next step's delay counts from when this one went.
    assert (state.next_position, state.next_due_at) == (2, sent_at + 2 * DAY)

    assert sequences.run_due(engine, now=sent_at + 2 * DAY - dt.timedelta(minutes=1)) == 0
    assert len(_messages(engine, ws)) == 1
    assert sequences.run_due(engine, now=sent_at + 2 * DAY) == 1
    assert [m.dedupe_key for m in _messages(engine, ws)] == [
        f"sequence:{enrolment}:step:1",
        f"sequence:{enrolment}:step:2",
    ]
    state = _enrolment(engine, enrolment)
    assert (state.status, state.next_position, state.next_due_at) == (
        EnrolmentStatus.COMPLETED,
        3,
        None,
    )
    assert sequences.run_due(engine, now=sent_at + 30 * DAY) == 0


def test_a_rerun_after_a_crash_sends_each_step_once(engine: Engine) -> None:
    ws = _workspace(engine)
    _sequence(engine, ws)
    (enrolment,) = _enrol(engine, ws, _lead(engine, ws))
    sequences.run_due(engine, now=T0 + HOUR)
    sequences.run_due(engine, now=T0 + HOUR)  # the job run twice
    # As if the enrolment's advance were lost after its e-mail was queued (a restore, a
    # second scheduler that read it before): the step is due again.
    with Session(engine) as session:
        session.execute(
            update(SequenceEnrolment)
            .where(SequenceEnrolment.id == enrolment)
            .values(next_position=1, next_due_at=T0 + HOUR)
        )
        session.commit()
    sequences.run_due(engine, now=T0 + HOUR)
    assert len(_messages(engine, ws)) == 1
    with Session(engine) as session:
        assert session.scalar(select(func.count()).select_from(OutboxJob)) == 1
    assert _enrolment(engine, enrolment).next_position == 2


def test_two_runs_at_once_queue_each_step_once(pg_engine: Engine) -> None:
    engine = pg_engine
    ws = _workspace(engine)
    _sequence(engine, ws, [StepSpec(0, "sequence_followup"), StepSpec(0, "sequence_followup")])
    leads = [_lead(engine, ws, f"lead{n}@example.com") for n in range(60)]
    for lead in leads:
        _enrol(engine, ws, lead)
    start = threading.Barrier(2)
    queued: list[int] = []
    failures: list[BaseException] = []

    def run() -> None:
        try:
            start.wait(timeout=30)
            queued.append(sequences.run_due(engine, now=T0, batch=7))
        except BaseException as error:  # reported below
            failures.append(error)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    keys = [m.dedupe_key for m in _messages(engine, ws)]
    assert len(keys) == len(set(keys)) == 2 * len(leads)
    # Each step was queued by one run only: the runs' counts add up to the steps, not more.
    assert sum(queued) == 2 * len(leads)
    with Session(engine) as session:
        assert session.scalar(select(func.count()).select_from(OutboxJob)) == 2 * len(leads)


# -- windows ----------------------------------------------------------------------------------


def test_a_step_due_outside_its_window_goes_at_the_next_opening_in_the_leads_zone(
    engine: Engine,
) -> None:
    ws = _workspace(engine)
    _sequence(engine, ws, [StepSpec(0, "sequence_followup", 9, 17)])
    # 21:00 in Berlin (20:00 UTC): the window opens at 9:00 Berlin the next morning.
    evening = dt.datetime(2027, 1, 11, 20, 0, tzinfo=dt.UTC)
    berlin = _lead(engine, ws, "berlin@example.com", time_zone="Europe/Berlin")
    # No zone, or one nobody knows: UTC, whose 20:00 is outside too.
    unknown = _lead(engine, ws, "mars@example.com", time_zone="Mars/Olympus_Mons")
    (in_berlin,) = _enrol(engine, ws, berlin, at=evening)
    (on_mars,) = _enrol(engine, ws, unknown, at=evening)
    assert _enrolment(engine, in_berlin).next_due_at == dt.datetime(
        2027, 1, 12, 8, 0, tzinfo=dt.UTC
    )
    assert _enrolment(engine, on_mars).next_due_at == dt.datetime(2027, 1, 12, 9, 0, tzinfo=dt.UTC)
    assert sequences.run_due(engine, now=dt.datetime(2027, 1, 12, 7, 59, tzinfo=dt.UTC)) == 0
    assert sequences.run_due(engine, now=dt.datetime(2027, 1, 12, 8, 0, tzinfo=dt.UTC)) == 1


NEW_YORK = ZoneInfo("America/New_York")


@pytest.mark.parametrize(
    ("due", "window", "zone", "expected"),
    [
        # Inside: unchanged.
        ("2027-01-11T15:00", (9, 17), NEW_YORK, "2027-01-11T15:00"),
        # 22:00 EST on the evening before clocks spring forward (8 March 2026): 9:00 EDT is
        # 13:00 UTC, not the 14:00 that the evening's offset would give.
        ("2026-03-08T03:00", (9, 17), NEW_YORK, "2026-03-08T13:00"),
        # 22:00 EDT before clocks fall back (1 November 2026): 9:00 EST is 14:00 UTC.
        ("2026-11-01T02:00", (9, 17), NEW_YORK, "2026-11-01T14:00"),
        # A window opening at 2:00 on the night 2:00 does not exist: the jump itself (3:00 EDT).
        ("2026-03-08T05:00", (2, 4), NEW_YORK, "2026-03-08T07:00"),
        # Across midnight (22 to 6): 23:00 is inside, 12:00 waits for 22:00.
        ("2027-01-11T23:00", (22, 6), dt.UTC, "2027-01-11T23:00"),
        ("2027-01-11T12:00", (22, 6), dt.UTC, "2027-01-11T22:00"),
        # After the close: the next day's opening.
        ("2027-01-11T17:00", (9, 17), dt.UTC, "2027-01-12T09:00"),
    ],
)
def test_windows(due: str, window: tuple[int, int], zone: dt.tzinfo, expected: str) -> None:
    moved = windows.in_window(dt.datetime.fromisoformat(due).replace(tzinfo=dt.UTC), *window, zone)
    assert moved == dt.datetime.fromisoformat(expected).replace(tzinfo=dt.UTC)


def test_a_zone_missing_or_unknown_is_utc() -> None:
    assert windows.zone_for(None) is dt.UTC
    assert windows.zone_for("Not/AZone") is dt.UTC
    assert windows.zone_for("../../etc/passwd") is dt.UTC
    assert windows.zone_for("Europe/Berlin") == ZoneInfo("Europe/Berlin")


# -- pause ------------------------------------------------------------------------------------


def test_a_paused_sequence_waits_and_goes_on_when_resumed(engine: Engine) -> None:
    ws = _workspace(engine)
    sequence = _sequence(engine, ws)
    (enrolment,) = _enrol(engine, ws, _lead(engine, ws))
    admin, viewer = _actor(engine, ws), _actor(engine, ws, Role.VIEWER)
    with Session(engine) as session:
        with pytest.raises(PermissionDenied):
            sequences.pause(session, actor=viewer, sequence_id=sequence)
        sequences.pause(session, actor=admin, sequence_id=sequence)
        session.commit()
    assert sequences.run_due(engine, now=T0 + 5 * DAY) == 0
    assert _enrolment(engine, enrolment).status == EnrolmentStatus.ACTIVE
    # A paused sequence enrols nobody new either.
    assert _enrol(engine, ws, _lead(engine, ws, "late@example.com")) == []
    with Session(engine) as session:
        sequences.resume(session, actor=admin, sequence_id=sequence)
        session.commit()
        actions = session.scalars(select(AuditLog.action).order_by(AuditLog.id)).all()
        assert actions == ["sequence.pause", "sequence.resume"]
    assert sequences.run_due(engine, now=T0 + 5 * DAY) == 1


# -- stops ------------------------------------------------------------------------------------


def _sent_first_step(engine: Engine) -> tuple[int, int, int, int]:
    """A workspace, a lead, its enrolment, and the first step's message (marked sent)."""
    ws = _workspace(engine)
    _sequence(engine, ws)
    lead = _lead(engine, ws)
    (enrolment,) = _enrol(engine, ws, lead)
    sequences.run_due(engine, now=T0 + HOUR)
    (message,) = _messages(engine, ws)
    with Session(engine) as session:
        session.execute(
            update(EmailMessage)
            .where(EmailMessage.id == message.id)
            .values(status=EmailStatus.SENT.value, sendgrid_message_id="x1")
        )
        session.commit()
    return ws, lead, enrolment, message.id


def _reply(engine: Engine, ws: int, lead: int, message: int) -> None:
    # What the Inbound Parse handler does with a lead's reply.
    with Session(engine) as session:
        stops.stop_lead_enrolments(
            session, workspace_id=ws, lead_id=lead, reason=stops.REPLIED, at=T0 + 2 * HOUR
        )
        session.commit()


def _conversion(engine: Engine, ws: int, lead: int, message: int) -> None:
    with Session(engine) as session:
        stopped = stops.stop_on_conversion(
            session, workspace_id=ws, lead_id=lead, at=T0 + 2 * HOUR, what="contract signed"
        )
        session.commit()
    assert stopped == 1


def _operator(engine: Engine, ws: int, lead: int, message: int) -> None:
    (enrolment,) = [e.id for e in _lead_enrolments(engine, ws, lead)]
    admin = _actor(engine, ws)
    with Session(engine) as session:
        assert sequences.stop_by_operator(
            session, actor=admin, enrolment_id=enrolment, at=T0 + 2 * HOUR
        )
        session.commit()


def _one_click(engine: Engine, ws: int, lead: int, message: int) -> None:
    with Session(engine) as session:
        unsubscribe.unsubscribe(session, unsubscribe.token_for(message, ws), at=T0 + 2 * HOUR)
        session.commit()


def _preferences(engine: Engine, ws: int, lead: int, message: int) -> None:
    token = preferences.token_for(message, ws)
    with Session(engine) as session:
        preferences.change(
            session, token, group="reminders", action="unsubscribe", at=T0 + 2 * HOUR
        )
        session.commit()


def _lead_enrolments(engine: Engine, ws: int, lead: int) -> list[sequence_views.EnrolmentView]:
    with Session(engine) as session:
        return sequence_views.lead_enrolments(session, workspace_id=ws, lead_id=lead)


@pytest.mark.parametrize(
    ("stop", "reason"),
    [
        (_reply, "The lead replied"),
        (lambda e, ws, lead, m: _sendgrid_event(e, ws, m, "unsubscribe"), "Unsubscribed"),
        (lambda e, ws, lead, m: _sendgrid_event(e, ws, m, "group_unsubscribe"), "Unsubscribed"),
        (lambda e, ws, lead, m: _sendgrid_event(e, ws, m, "bounce"), "The address bounced"),
        (
            lambda e, ws, lead, m: _sendgrid_event(e, ws, m, "spamreport"),
            "The lead reported our mail as spam",
        ),
        (_one_click, "Unsubscribed"),
        (_preferences, "Unsubscribed"),
        (_conversion, "Converted: contract signed"),
        (_operator, "Stopped by Sam"),
    ],
    ids=[
        "reply",
        "unsubscribe",
        "group_unsubscribe",
        "bounce",
        "spam",
        "one_click_link",
        "preferences_page",
        "conversion",
        "operator",
    ],
)
def test_a_stopped_enrolment_sends_nothing_more_and_shows_why(
    engine: Engine, stop: object, reason: str
) -> None:
    ws, lead, enrolment, message = _sent_first_step(engine)
    stop(engine, ws, lead, message)  # type: ignore[operator]
    assert sequences.run_due(engine, now=T0 + 30 * DAY) == 0
    assert len(_messages(engine, ws)) == 1
    (view,) = _lead_enrolments(engine, ws, lead)
    assert (view.id, view.status, view.stop_reason) == (enrolment, "stopped", reason)
    assert view.stopped_at == T0 + 2 * HOUR


def test_a_blocked_bounce_stops_nothing(engine: Engine) -> None:
    ws, _, enrolment, message = _sent_first_step(engine)
    _sendgrid_event(engine, ws, message, "bounce", type="blocked")
    assert _enrolment(engine, enrolment).status == EnrolmentStatus.ACTIVE


def test_a_stop_keeps_its_first_reason_and_an_operator_stops_only_their_workspaces(
    engine: Engine,
) -> None:
    ws, lead, enrolment, message = _sent_first_step(engine)
    other = _workspace(engine, "other")
    outsider = _actor(engine, other)
    with Session(engine) as session:
        assert not stops.stop_enrolment(
            session, workspace_id=other, enrolment_id=enrolment, reason="x", at=T0
        )
        assert not sequences.stop_by_operator(session, actor=outsider, enrolment_id=enrolment)
        assert stops.stop_lead_enrolments(
            session, workspace_id=other, lead_id=lead, reason="x", at=T0
        ) == 0  # fmt: skip
        session.commit()
    assert _enrolment(engine, enrolment).status == EnrolmentStatus.ACTIVE
    _reply(engine, ws, lead, message)
    with Session(engine) as session:
        assert not stops.stop_enrolment(
            session, workspace_id=ws, enrolment_id=enrolment, reason="later", at=T0 + DAY
        )
        session.commit()
    assert _enrolment(engine, enrolment).stop_reason == stops.REPLIED


def test_an_unsubscribed_address_gets_the_step_skipped_and_the_enrolment_stopped(
    engine: Engine,
) -> None:
    ws = _workspace(engine)
    _sequence(engine, ws)
    (enrolment,) = _enrol(engine, ws, _lead(engine, ws))
    with Session(engine) as session:
        # The one-click link's unsubscribe (no SendGrid event comes of it).
        service.suppress(
            session,
            workspace_id=ws,
            email="jane@example.com",
            groups=["marketing"],
            reason="unsubscribe",
        )
        session.commit()
    sequences.run_due(engine, now=T0 + HOUR)
    (message,) = _messages(engine, ws)
    assert message.status == EmailStatus.SKIPPED
    state = _enrolment(engine, enrolment)
    assert (state.status, state.stop_reason) == (EnrolmentStatus.STOPPED, "Unsubscribed")
    with Session(engine) as session:
        assert session.scalar(select(func.count()).select_from(OutboxJob)) == 0


def test_without_marketing_consent_a_follow_up_is_skipped_and_a_reminder_still_goes(
    engine: Engine,
) -> None:
    ws = _workspace(engine)
    _sequence(
        engine,
        ws,
        [StepSpec(0, "sequence_followup"), StepSpec(60, "proposal_reminder")],
    )
    lead = _lead(engine, ws, consent=False)
    (enrolment,) = _enrol(
        engine, ws, lead, context={"proposal_title": "Recital", "proposal_url": "https://p/1"}
    )
    sequences.run_due(engine, now=T0)
    sequences.run_due(engine, now=T0 + HOUR)
    followup, reminder = _messages(engine, ws)
    assert (followup.status, followup.skip_reason) == (EmailStatus.SKIPPED, "No marketing consent")
    assert (reminder.purpose, reminder.status) == ("proposal_reminder", EmailStatus.QUEUED)
    assert _enrolment(engine, enrolment).status == EnrolmentStatus.COMPLETED


def test_a_step_whose_trigger_lacks_its_variables_stops_with_the_reason(engine: Engine) -> None:
    ws = _workspace(engine)
    _sequence(engine, ws, [StepSpec(0, "payment_reminder")])
    (enrolment,) = _enrol(engine, ws, _lead(engine, ws))
    sequences.run_due(engine, now=T0)
    assert _messages(engine, ws) == []
    state = _enrolment(engine, enrolment)
    assert (state.status, state.next_due_at) == (EnrolmentStatus.STOPPED, None)
    assert (
        state.stop_reason
        == "Step 1 needs amount, due_date, payment_url, which its trigger did not give"
    )


# -- workspaces -------------------------------------------------------------------------------


def test_another_workspaces_sequences_are_untouched(engine: Engine) -> None:
    ws, other = _workspace(engine), _workspace(engine, "other")
    mine = _sequence(engine, ws)
    theirs = _sequence(engine, other, name="Theirs")
    (their_enrolment,) = _enrol(engine, other, _lead(engine, other))
    admin = _actor(engine, ws)
    their_lead = _enrolment(engine, their_enrolment).lead_id
    with Session(engine) as session:
        with pytest.raises(NotFound):
            sequences.pause(session, actor=admin, sequence_id=theirs)
        assert [v.id for v in sequence_views.overview(session, workspace_id=ws)] == [mine]
        # A lead id of another workspace enrols nobody.
        assert (
            sequences.enrol(
                session, workspace_id=ws, lead_id=their_lead, trigger="lead_created", at=T0
            )
            == []
        )
        session.commit()
    with Session(engine) as session:
        assert sequence_views.overview(session, workspace_id=other)[0].paused is False
        assert session.scalar(select(func.count()).select_from(SequenceEnrolment)) == 1


def test_the_overview_counts_enrolments_and_each_steps_mail(engine: Engine) -> None:
    ws = _workspace(engine)
    sequence = _sequence(engine, ws, [StepSpec(0, "sequence_followup", 9, 17)])
    leads = [_lead(engine, ws, f"l{n}@example.com") for n in range(4)]
    enrolments = [_enrol(engine, ws, lead)[0] for lead in leads]
    with Session(engine) as session:
        stops.stop_enrolment(
            session, workspace_id=ws, enrolment_id=enrolments[3], reason="x", at=T0
        )
        session.commit()
    sequences.run_due(engine, now=T0)
    _enrol(engine, ws, _lead(engine, ws, "new@example.com"), at=T0 + DAY)
    opened = T0 + HOUR
    with Session(engine) as session:
        rows = session.scalars(select(EmailMessage).order_by(EmailMessage.id)).all()
        assert len(rows) == 3
        rows[0].status, rows[0].first_open_at = EmailStatus.CLICKED.value, opened
        rows[0].first_click_at = opened
        rows[1].status, rows[1].first_open_at = EmailStatus.OPENED.value, opened
        rows[2].status = EmailStatus.DELIVERED.value
        # A message of no step (a proposal) counts for no step.
        session.add(
            EmailMessage(
                workspace_id=ws, purpose="proposal_sent", template="proposal_sent",
                to_email="l0@example.com", status=EmailStatus.CLICKED.value,
                first_open_at=opened, first_click_at=opened,
            )
        )  # fmt: skip
        session.commit()
        (view,) = sequence_views.overview(session, workspace_id=ws)
    assert view.id == sequence
    assert (view.enrolled, view.active, view.completed, view.stopped) == (5, 1, 3, 1)
    (step,) = view.steps
    assert (step.window_start_hour, step.window_end_hour) == (9, 17)
    assert (step.queued, step.sent, step.skipped, step.opened, step.clicked) == (0, 3, 0, 2, 1)


def test_the_scheduler_runs_the_job_every_15_minutes_on_every_scheduler() -> None:
    from backend import jobs

    (job,) = [j for j in jobs.declared() if j.id == "email-sequences"]
    # Not exclusive: each scheduler takes its own enrolments (SKIP LOCKED).
    assert (job.seconds, job.exclusive) == (900, False)
