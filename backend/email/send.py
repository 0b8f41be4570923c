"""The ``email.send`` job: mails its message and the batch it heads (the workspace's other
queued messages of the same template, up to SendGrid's 1,000 personalizations a request, no
address twice in one request), paced by the workspace's SendGrid rate limit.

Never twice: SendGrid has no idempotency key, so the messages a job takes are marked
``unknown`` and committed *before* the request leaves; only an answer moves them on (``sent``
with SendGrid's X-Message-Id, ``failed`` on a refusal, back to ``queued`` when SendGrid said
it did not take them: a 5xx, a 429, a connection refused). A timeout after the request left,
or a crash mid-request, leaves them ``unknown`` (the crash's reason written when the job runs
again after its lease ran out), and no retry sends an ``unknown`` message again: this errs
toward a missed e-mail over a duplicate (docs/DESIGN.md, "Email").

Tested in tests/email/test_send.py and tests/email/test_crash.py (a scheduler killed mid-send).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from jinja2 import TemplateError
from sqlalchemy import (
    ARRAY,
    ColumnElement,
    Integer,
    String,
    any_,
    bindparam,
    case,
    or_,
    select,
    update,
)
from sqlalchemy.orm import Session
from sqlalchemy.types import TypeEngine

from backend.connections import credentials, providers
from backend.email import preferences, render, service, unsubscribe
from backend.integrations import sendgrid
from backend.integrations.errors import (
    ProviderConnectionLost,
    ProviderRateLimited,
    ProviderRejected,
    ProviderTimeout,
    ProviderUnavailable,
)
from backend.platform.outbox import JobContext, PermanentFailure
from backend.platform.provider_failures import describe
from models import EmailMessage, EmailStatus, JobStatus, OutboxJob, utcnow

# A request of 1,000 personalizations takes SendGrid a while to accept: a generous deadline.
SEND_SECONDS = 30.0
# What a job looks at to fill a request: room for repeated addresses, which wait for the next.
CANDIDATES = sendgrid.MAX_PERSONALIZATIONS + 200
# SendGrid allows 10,000 bytes of substitutions per personalization; a message larger than
# this goes alone, its content in the request itself.
SUBSTITUTION_BUDGET = 9_000
HTML_TAG = "%hub_html%"
TEXT_TAG = "%hub_text%"
UNKNOWN_REASON = (
    "SendGrid did not answer after the request left (a timeout or a broken connection): it may "
    "have been sent. It is not sent again automatically (that could mail it twice); SendGrid's "
    "events settle it."
)
CRASH_REASON = (
    "The worker sending it stopped (killed or crashed) before SendGrid's answer was recorded: "
    "it may have been sent. It is not sent again automatically (that could mail it twice); "
    "SendGrid's events settle it."
)


@dataclass
class Request:
    """One mail/send request: its messages and how they are mailed."""

    messages: list[EmailMessage]
    envelopes: list[sendgrid.Envelope] = field(default_factory=list)
    html: str | None = None
    text: str | None = None
    template_id: str | None = None

    @property
    def ids(self) -> list[int]:
        return [m.id for m in self.messages]


def send(session: Session, job: JobContext) -> None:
    assert job.workspace_id is not None
    workspace_id = job.workspace_id
    own = session.scalars(
        select(EmailMessage).where(
            EmailMessage.id == int(job.payload["message_id"]),
            EmailMessage.workspace_id == workspace_id,
        )
    ).first()
    if own is None:
        return  # its workspace was removed
    sender = _sender(session, workspace_id)
    if job.attempt > 1:
        _note_crash(session, job.id)
    taken = _take(session, own, job.id)
    if not taken:
        # Sent by another job's batch, skipped, or ``unknown`` after a timeout or a crash:
        # nothing to do, and above all nothing to send again.
        return
    taken = _drop_suppressed(session, taken)
    requests = _requests(taken)
    if not requests:
        return
    adapter = _adapter(session, workspace_id, sender["api_key"])
    for index, request in enumerate(requests):
        try:
            x_message_id = job.call_provider(
                lambda request=request: adapter.send_batch(  # type: ignore[misc]
                    from_email=sender["from_email"],
                    from_name=sender["from_name"],
                    envelopes=request.envelopes,
                    html=request.html,
                    text=request.text,
                    template_id=request.template_id,
                    categories=[request.messages[0].purpose],
                )
            )
        except (ProviderTimeout, ProviderConnectionLost):
            # The request may have been taken: the messages stay ``unknown``, never resent.
            _set(session, request.ids, failure_reason=UNKNOWN_REASON)
            _requeue(session, _ids(requests[index + 1 :]))
            job.release()
            raise
        except (ProviderUnavailable, ProviderRateLimited):
            # SendGrid answered that it took nothing (5xx, 429), or no connection was made:
            # safe to resend.
            _requeue(session, _ids(requests[index:]))
            job.release()
            raise
        except ProviderRejected as exc:
            _set(
                session,
                _ids(requests[index:]),
                status=EmailStatus.FAILED.value,
                failure_reason=describe(exc),
            )
            job.release()
            raise
        _set(
            session,
            request.ids,
            status=EmailStatus.SENT.value,
            sendgrid_message_id=x_message_id or None,
            sent_at=utcnow(),
            failure_reason=None,
        )


def on_dead(session: Session, payload: dict[str, Any], error: str) -> None:
    """A job that gave up: its messages still waiting are failed, with the reason."""
    session.execute(
        update(EmailMessage)
        .where(
            EmailMessage.status == EmailStatus.QUEUED.value,
            or_(
                EmailMessage.id == int(payload["message_id"]),
                EmailMessage.send_job_id == _job_of(session, payload),
            ),
        )
        .values(status=EmailStatus.FAILED.value, failure_reason=error)
        .execution_options(synchronize_session=False)
    )


def _job_of(session: Session, payload: dict[str, Any]) -> int | None:
    return session.scalars(
        select(OutboxJob.id).where(
            OutboxJob.idempotency_key == service.send_key(int(payload["message_id"]))
        )
    ).first()


def _note_crash(session: Session, job_id: int) -> None:
    """This job's messages ``unknown`` without a reason were taken by an earlier run of it that
    never recorded SendGrid's answer: its worker died mid-send. Say so; never resend them."""
    session.execute(
        update(EmailMessage)
        .where(
            EmailMessage.send_job_id == job_id,
            EmailMessage.status == EmailStatus.UNKNOWN.value,
            EmailMessage.failure_reason.is_(None),
        )
        .values(failure_reason=CRASH_REASON)
        .execution_options(synchronize_session=False)
    )


def _take(session: Session, own: EmailMessage, job_id: int) -> list[EmailMessage]:
    """Mark this job's batch ``unknown`` (committed with the provider call's release, before
    the request leaves): the own message first, then queued siblings of the same template,
    each address once. Siblings' own jobs are settled: this one mails for them."""
    candidates = (
        select(EmailMessage.id, EmailMessage.to_email)
        .where(
            EmailMessage.workspace_id == own.workspace_id,
            EmailMessage.template == own.template,
            EmailMessage.status == EmailStatus.QUEUED.value,
            # Not another job's (it took them and asked to retry them itself).
            or_(EmailMessage.send_job_id.is_(None), EmailMessage.send_job_id == job_id),
        )
        .order_by(case((EmailMessage.id == own.id, 0), else_=1), EmailMessage.id)
        .limit(CANDIDATES)
    )
    if session.get_bind().dialect.name == "postgresql":
        # Two jobs of one template at once take different messages, neither waiting.
        candidates = candidates.with_for_update(skip_locked=True)
    chosen: dict[str, int] = {}
    for message_id, address in session.execute(candidates):
        if address not in chosen and len(chosen) < sendgrid.MAX_PERSONALIZATIONS:
            chosen[address] = message_id
    if not chosen:
        return []
    ids = list(chosen.values())
    taken_ids = set(
        session.scalars(
            update(EmailMessage)
            .where(
                _among(session, EmailMessage.id, ids, Integer),
                EmailMessage.status == EmailStatus.QUEUED.value,
            )
            .values(status=EmailStatus.UNKNOWN.value, send_job_id=job_id)
            .returning(EmailMessage.id)
            .execution_options(synchronize_session=False)
        )
    )
    _settle_siblings(session, [i for i in taken_ids if i != own.id])
    rows = session.scalars(
        select(EmailMessage)
        .where(_among(session, EmailMessage.id, list(taken_ids), Integer))
        .execution_options(populate_existing=True)
    ).all()
    order = {message_id: n for n, message_id in enumerate(ids)}
    return sorted(rows, key=lambda m: order[m.id])


def _settle_siblings(session: Session, message_ids: Sequence[int]) -> None:
    """The taken messages' own send jobs, still pending: done without running, in this
    transaction (this job mails for them; run, each would only find its message taken). One
    already claimed is left to run and find nothing to do."""
    if message_ids:
        session.execute(
            update(OutboxJob)
            .where(
                _among(
                    session,
                    OutboxJob.idempotency_key,
                    [service.send_key(i) for i in message_ids],
                    String,
                ),
                OutboxJob.status == JobStatus.PENDING,
            )
            .values(status=JobStatus.DONE, finished_at=utcnow(), last_error=None)
            .execution_options(synchronize_session=False)
        )


def _drop_suppressed(session: Session, messages: list[EmailMessage]) -> list[EmailMessage]:
    """An unsubscribe (or a bounce) since the message was queued still stops it."""
    first = messages[0]
    found = service.suppressions(
        session,
        workspace_id=first.workspace_id,
        emails=[m.to_email for m in messages],
        purpose=first.purpose,
    )
    for message in messages:
        if message.to_email in found:
            message.status = EmailStatus.SKIPPED.value
            message.skip_reason = service.skip_reason(found[message.to_email])
    return [m for m in messages if m.to_email not in found]


def _sender(session: Session, workspace_id: int) -> dict[str, str]:
    row = providers.connected_integration(session, workspace_id=workspace_id, provider="sendgrid")
    settings = row.settings or {}
    if not settings.get("from_email"):
        raise PermanentFailure("SendGrid has no sender address; set one under Integrations")
    return {
        "api_key": credentials.unseal(row).get("api_key") or "",
        "from_email": str(settings["from_email"]),
        "from_name": str(settings.get("from_name") or ""),
    }


def _adapter(session: Session, workspace_id: int, api_key: str) -> sendgrid.SendGridAdapter:
    engine = session.get_bind().engine
    context = providers.provider_context("sendgrid", engine, workspace_id=workspace_id)
    host = f"{context.sandbox_url}/sendgrid" if context.sandbox_url else sendgrid.LIVE_HOST
    return sendgrid.SendGridAdapter(
        api_key.strip(), host=host, throttle=context.throttle, seconds=SEND_SECONDS
    )


def _envelope(message: EmailMessage, url: str, **extra: Any) -> sendgrid.Envelope:
    """``url``: the message's unsubscribe link (signed once a message: in its content too)."""
    return sendgrid.Envelope(
        to_email=message.to_email,
        to_name=message.to_name,
        headers=unsubscribe.headers_for(url),
        # Opaque ids only: SendGrid keeps custom args with every event, unredactable.
        custom_args={
            "hub_message_id": str(message.id),
            "hub_workspace_id": str(message.workspace_id),
        },
        **extra,
    )


def _requests(messages: Sequence[EmailMessage]) -> list[Request]:
    """The batch as requests: one for every message that fits in substitutions (or a dynamic
    template's data), one each for the rare message too large for them. A message its
    template cannot render (a variable missing from its context) fails alone, with the
    reason: it must not hold its batch back."""
    if not messages:
        return []
    first = messages[0]
    if first.template.startswith(service.SENDGRID_TEMPLATE_PREFIX):
        batch = Request(
            list(messages), template_id=first.template[len(service.SENDGRID_TEMPLATE_PREFIX) :]
        )
        for message in messages:
            url = unsubscribe.url_for(message.id, message.workspace_id)
            data = {
                **message.context,
                "unsubscribe_url": url,
                "preferences_url": preferences.url_for(message.id, message.workspace_id),
            }
            batch.envelopes.append(_envelope(message, url, dynamic_data=data))
        return [batch]
    batch = Request([], html=HTML_TAG, text=TEXT_TAG)
    alone: list[Request] = []
    for message in messages:
        url = unsubscribe.url_for(message.id, message.workspace_id)
        try:
            rendered = render.render(
                message.purpose,
                message.context,
                unsubscribe_url=url,
                preferences_url=preferences.url_for(message.id, message.workspace_id),
            )
        except (TemplateError, ValueError) as exc:
            message.status = EmailStatus.FAILED.value
            message.failure_reason = f"The template {message.purpose} could not be made: {exc}"
            continue
        size = len(rendered.html.encode()) + len(rendered.text.encode())
        if size > SUBSTITUTION_BUDGET:
            single = Request([message], html=rendered.html, text=rendered.text)
            single.envelopes.append(_envelope(message, url, subject=rendered.subject))
            alone.append(single)
            continue
        batch.messages.append(message)
        batch.envelopes.append(
            _envelope(
                message,
                url,
                subject=rendered.subject,
                substitutions={HTML_TAG: rendered.html, TEXT_TAG: rendered.text},
            )
        )
    return ([batch] if batch.messages else []) + alone


def _among(
    session: Session, column: Any, values: Sequence[Any], kind: type[TypeEngine[Any]]
) -> ColumnElement[bool]:
    """``column IN values``; on PostgreSQL as one array parameter (``= ANY``): a batch's
    thousand ids as a thousand parameters cost the driver more to parse than the statement
    costs the database."""
    if session.get_bind().dialect.name == "postgresql":
        return column == any_(bindparam(None, list(values), ARRAY(kind)))  # type: ignore[no-any-return]
    return column.in_(list(values))  # type: ignore[no-any-return]


def _ids(requests: Sequence[Request]) -> list[int]:
    return [i for request in requests for i in request.ids]


def _set(session: Session, ids: Sequence[int], **values: Any) -> None:
    if ids:
        session.execute(
            update(EmailMessage)
            .where(_among(session, EmailMessage.id, list(ids), Integer))
            .values(**values)
            .execution_options(synchronize_session=False)
        )


def _requeue(session: Session, ids: Sequence[int]) -> None:
    """Back to queued, still this job's: its retry sends them (their own jobs are settled)."""
    _set(session, ids, status=EmailStatus.QUEUED.value)
