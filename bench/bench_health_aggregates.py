"""The Health page's 7-day aggregates over 1,000,000 logged provider calls, on PostgreSQL.

Three workspaces, seven providers, three operations each, a week of calls (1,000,000 rows in
``integration_logs``) with a realistic mix of outcomes and latencies; the minute and hour
rollups are built from them the way the writer sums them (checked: their totals equal the raw
rows'). Then, for one workspace, as the console calls them (a fresh session per call, warm
caches, ``--repeat`` timed calls):

- the page's aggregates through the rollups (``backend.health.page.read`` for the 7-day window,
  as the Health page calls it: every connected provider's tile with its calls, outcomes,
  p50/p95/p99 and status, the chart's series, webhook intake and the outbox now);
- beside it, the same tile figures computed by scanning the raw logs (``percentile_cont``
  over the week's rows), which is what the page would cost without the rollups.

Target (issue 14): p95 ≤ 100 ms through the rollups.

    .venv/bin/python bench/bench_health_aggregates.py
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import CpuMeter, conditions, database, log, print_conditions, verdict
from loadgen import percentile
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from models import Integration, IntegrationStatus, Plan, Workspace, utcnow

TARGET_MS = 100.0
CALLS = 1_000_000
WORKSPACES = 3
PROVIDERS = ("stripe", "sendgrid", "slack", "messenger", "google_drive", "zoho_books", "webhooks")
OPERATIONS = ("GET /v1/{id}", "POST /v1/create", "POST /v1/{id}/update")
BUCKETS = (10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000)

# One statement makes the week: provider, operation and workspace by position, outcome and
# latency drawn so that about 3% fail and latencies spread over the histogram.
_GENERATE = """
INSERT INTO integration_logs
    (workspace_id, provider, operation, outcome, http_status, latency_ms, error, at)
SELECT
    (:first_ws + g % :workspaces),
    (CAST(:providers AS text[]))[1 + (g / 3) % :n_providers],
    (CAST(:operations AS text[]))[1 + g % 3],
    o.outcome,
    CASE o.outcome WHEN 'ok' THEN 200 WHEN 'rate_limited' THEN 429 WHEN 'rejected' THEN 400
        WHEN 'unavailable' THEN 503 ELSE NULL END,
    (20 + 600 * random() ^ 3)::int,
    CASE WHEN o.outcome = 'ok' THEN NULL ELSE 'HTTP 503 Service Unavailable' END,
    now() - (g::float / :calls) * interval '7 days'
FROM generate_series(1, :calls) AS g,
LATERAL (SELECT CASE
    WHEN r < 0.970 THEN 'ok' WHEN r < 0.980 THEN 'rate_limited' WHEN r < 0.990 THEN 'rejected'
    WHEN r < 0.997 THEN 'unavailable' ELSE 'timeout' END AS outcome
    FROM (SELECT random() + g * 0 AS r) AS x) AS o
"""


def _rollup_sql(table: str, column: str, unit: str) -> str:
    outcomes = ", ".join(
        f"count(*) FILTER (WHERE outcome = '{o}')"
        for o in ("ok", "rejected", "rate_limited", "unavailable", "timeout")
    )
    lower = [0, *BUCKETS]
    buckets = ", ".join(
        f"count(*) FILTER (WHERE latency_ms > {lo} AND latency_ms <= {hi})"
        for lo, hi in zip(lower, BUCKETS, strict=False)
    )
    # Names from this file's constants only.
    sql = f"""
INSERT INTO {table} (workspace_id, provider, operation, {column}, ok, rejected, rate_limited,
    unavailable, timeout, latency_ms_sum, {", ".join(f"le_{b}" for b in BUCKETS)}, le_inf)
SELECT workspace_id, provider, operation, date_trunc('{unit}', at), {outcomes},
    sum(latency_ms), {buckets}, count(*) FILTER (WHERE latency_ms > {BUCKETS[-1]})
FROM integration_logs WHERE workspace_id IS NOT NULL
GROUP BY workspace_id, provider, operation, date_trunc('{unit}', at)
"""  # noqa: S608
    return sql


def seed(engine: Engine) -> int:
    """The workspaces and their week of calls; returns the measured workspace's id."""
    with Session(engine) as session:
        rows = [Workspace(name=f"Bench {n}", slug=f"bench-{n}", plan=Plan.PRO) for n in range(3)]
        session.add_all(rows)
        session.flush()
        # Every provider connected: the page draws one tile each.
        session.add_all(
            Integration(
                workspace_id=w.id,
                provider=p,
                status=IntegrationStatus.ACTIVE,
                display_name=p,
                connected_at=utcnow() - dt.timedelta(days=30),
            )
            for w in rows
            for p in PROVIDERS
        )
        session.commit()
        ids = [w.id for w in rows]
    started = time.perf_counter()
    with engine.begin() as conn:
        conn.execute(
            text(_GENERATE),
            {
                "first_ws": ids[0],
                "workspaces": WORKSPACES,
                "providers": list(PROVIDERS),
                "n_providers": len(PROVIDERS),
                "operations": list(OPERATIONS),
                "calls": CALLS,
            },
        )
        conn.execute(text(_rollup_sql("integration_call_minutes", "minute", "minute")))
        conn.execute(text(_rollup_sql("integration_call_hours", "hour", "hour")))
        raw = conn.execute(text("SELECT count(*) FROM integration_logs")).scalar_one()
        for table in ("integration_call_minutes", "integration_call_hours"):
            summed = conn.execute(
                text(
                    f"SELECT sum(ok + rejected + rate_limited + unavailable + timeout) FROM {table}"  # noqa: S608 - one of two names above
                )
            ).scalar_one()
            assert summed == raw == CALLS, (table, summed, raw)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE"))
    log(f"seeded {CALLS:,} calls and their rollups in {time.perf_counter() - started:.1f} s")
    return ids[1]


_RAW_SCAN = text(
    """
SELECT provider, count(*), count(*) FILTER (WHERE outcome <> 'ok'),
    percentile_cont(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP (ORDER BY latency_ms)
FROM integration_logs
WHERE workspace_id = :ws AND at >= now() - interval '7 days'
GROUP BY provider
"""
)


def _tiles_drawn(found: object) -> None:
    tiles = getattr(found, "tiles", [])
    assert len(tiles) == len(PROVIDERS), f"{len(tiles)} tiles"
    assert sum(t.window.calls for t in tiles) > CALLS // WORKSPACES // 2, "the week's calls counted"


def _parts(engine: Engine, workspace_id: int, repeat: int) -> dict[str, list[float]]:
    """Where the page's time goes, part by part (the same calls ``page.read`` makes)."""
    from backend.health import figures, intake, queue, tiles

    week = dt.timedelta(days=7)

    def start() -> dt.datetime:
        return utcnow().replace(minute=0, second=0, microsecond=0) - week

    return {
        "tiles": timed(
            engine,
            lambda s: tiles.provider_tiles(s, workspace_id=workspace_id, window=week),
            repeat,
        ),
        "chart series": timed(
            engine,
            lambda s: figures.series(
                s,
                workspace_id=workspace_id,
                provider="stripe",
                start=start(),
                step=dt.timedelta(hours=2),
                count=84,
                hourly=True,
            ),
            repeat,
        ),
        "webhook intake": timed(
            engine,
            lambda s: intake.webhook_intake(
                s, workspace_id=workspace_id, start=start(), step=dt.timedelta(hours=2), count=84
            ),
            repeat,
        ),
        "outbox now": timed(
            engine, lambda s: queue.queue_now(s, workspace_id=workspace_id), repeat
        ),
    }


def timed(engine: Engine, call: Callable[[Session], object], repeat: int) -> list[float]:
    for _ in range(3):  # warm
        with Session(engine) as session:
            call(session)
    times = []
    for _ in range(repeat):
        with Session(engine) as session:
            started = time.perf_counter()
            call(session)
            times.append((time.perf_counter() - started) * 1000)
    return sorted(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=30)
    args = parser.parse_args()
    from backend.health import page

    with database(durable=False) as db:
        workspace_id = seed(db.engine)
        meter = CpuMeter(db, [])
        meter.start()
        rollups = timed(
            db.engine,
            lambda s: _tiles_drawn(page.read(s, workspace_id=workspace_id, window="7d")),
            args.repeat,
        )
        parts = _parts(db.engine, workspace_id, args.repeat)
        raw = timed(
            db.engine,
            lambda s: s.execute(_RAW_SCAN, {"ws": workspace_id}).all(),
            max(5, args.repeat // 6),
        )
        cpu = meter.stop()
        facts = conditions(
            db,
            data=f"{CALLS:,} calls over 7 days, {WORKSPACES} workspaces, {len(PROVIDERS)} "
            f"providers x {len(OPERATIONS)} operations; measured: one workspace's week",
            calls=f"{len(rollups)} timed through the rollups, {len(raw)} raw scans, "
            "3 untimed first, a fresh ORM session each",
            cpu_during_run=cpu,
        )
    p95 = percentile(rollups, 95)
    print(
        f"through the rollups: p50 {statistics.median(rollups):.1f} ms, p95 {p95:.1f} ms, "
        f"max {max(rollups):.1f} ms ({len(rollups)} calls)"
    )
    for name, times in parts.items():
        print(f"  of which {name}: p50 {statistics.median(times):.1f} ms")
    print(
        f"raw scan of the week: p50 {statistics.median(raw):.1f} ms, "
        f"p95 {percentile(raw, 95):.1f} ms ({len(raw)} calls)"
    )
    print_conditions(facts)
    return verdict([("7-day aggregates p95", p95 <= TARGET_MS, f"{p95:.1f} ms ≤ {TARGET_MS} ms")])


if __name__ == "__main__":
    raise SystemExit(main())
