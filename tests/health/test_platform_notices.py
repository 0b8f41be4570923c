"""The platform's own incident (the scheduler stopped) reaches the team that runs the hub: the
sidecar's watch posts each notice once to HUB_PLATFORM_ALERT_URL, however many sidecars look,
and a post that fails is tried again at the next look."""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from backend.api import scheduler_watch
from backend.health import platform_notices
from backend.platform import heartbeat
from models import Alert, AlertState

T0 = dt.datetime(2025, 3, 1, 12, 0, tzinfo=dt.UTC)


class _Receiver:
    def __init__(self) -> None:
        self.posts: list[dict[str, str]] = []
        self.failing = False


@pytest.fixture
def receiver() -> Iterator[tuple[_Receiver, str]]:
    got = _Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            if got.failing:
                self.send_response(503)
            else:
                got.posts.append(json.loads(body))
                self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield got, f"http://127.0.0.1:{httpd.server_address[1]}/hooks/platform"
    httpd.shutdown()


def _stale(engine: Engine) -> None:
    with Session(engine) as session:
        heartbeat.beat(session, instance="sched-1", now=T0)
        session.commit()


def test_each_notice_is_posted_once_whoever_looks(
    engine: Engine, receiver: tuple[_Receiver, str]
) -> None:
    got, url = receiver
    _stale(engine)
    late = T0 + dt.timedelta(seconds=90)
    assert scheduler_watch.check_once(engine, now=late, alert_url=url) is True
    # Two more sidecars look at once: the notice is taken by one of them only, and was already.
    looks = [
        threading.Thread(
            target=scheduler_watch.check_once,
            args=(engine,),
            kwargs={"now": late, "alert_url": url},
        )
        for _ in range(2)
    ]
    for look in looks:
        look.start()
    for look in looks:
        look.join()
    assert len(got.posts) == 1
    assert got.posts[0]["text"].startswith("New alert [critical] scheduler.stopped")

    # Fresh again: the incident resolves after five minutes clear, and says so once.
    for minutes in (1, 7, 8):
        with Session(engine) as session:
            heartbeat.beat(session, instance="sched-1", now=late + dt.timedelta(minutes=minutes))
            session.commit()
        scheduler_watch.check_once(
            engine, now=late + dt.timedelta(minutes=minutes, seconds=5), alert_url=url
        )
    with Session(engine) as session:
        assert session.scalars(select(Alert.state)).one() is AlertState.RESOLVED
    assert [p["text"].split(" [")[0] for p in got.posts] == ["New alert", "Resolved"]


def test_a_failed_post_is_tried_again(engine: Engine, receiver: tuple[_Receiver, str]) -> None:
    got, url = receiver
    _stale(engine)
    got.failing = True
    late = T0 + dt.timedelta(seconds=90)
    scheduler_watch.check_once(engine, now=late, alert_url=url)
    assert got.posts == []
    got.failing = False
    assert platform_notices.post_due(engine, url) == 1
    assert platform_notices.post_due(engine, url) == 0
    assert len(got.posts) == 1


def test_without_a_url_nothing_is_taken(engine: Engine, receiver: tuple[_Receiver, str]) -> None:
    _, url = receiver
    _stale(engine)
    scheduler_watch.check_once(engine, now=T0 + dt.timedelta(seconds=90))
    assert platform_notices.post_due(engine, url) == 1  # still there for a sidecar that has one
