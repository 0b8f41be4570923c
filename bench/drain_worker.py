"""One worker process of bench_drain.py: the product's outbox Drainer, as scheduler.py runs it
(``HUB_OUTBOX_THREADS`` threads claiming ``HUB_OUTBOX_BATCH`` jobs at a time), with one extra
job kind, ``bench.noop``.

The no-op job writes its proof of having run in its own transaction: a row in
``bench_drain_effects`` whose primary key is the job id (a second run of a job would fail on
it, and the job with it), and it counts its runs in memory. On SIGTERM the worker stops its
drainer and writes the counts to the file named on its command line.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column  # noqa: E402

from backend.config import get_settings  # noqa: E402
from backend.db import get_engine  # noqa: E402
from backend.jobs.drainer import Drainer  # noqa: E402
from backend.platform import outbox  # noqa: E402

KIND = "bench.noop"
RUNS: Counter[int] = Counter()
_WORKER = f"pid{os.getpid()}"


class _Base(DeclarativeBase):
    pass


class Effect(_Base):
    """A job's proof of having run, written in its transaction (table made by bench_drain)."""

    __tablename__ = "bench_drain_effects"
    job_id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    worker: Mapped[str]


@outbox.job_kind(KIND)
def noop(session: Session, job: outbox.JobContext) -> None:
    RUNS[job.id] += 1
    # Added like any handler's rows (inbox.process adds its IntegrationLog the same way): the
    # session writes a batch's rows together when it flushes.
    session.add(Effect(job_id=job.id, worker=_WORKER))


def main() -> None:
    out = Path(sys.argv[1])
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    settings = get_settings()
    drainer = Drainer(
        get_engine(),
        threads=settings.outbox_threads,
        batch=settings.outbox_batch,
        provider_threads=settings.outbox_provider_threads,
    )
    drainer.start()
    print("READY", flush=True)
    while not stop.wait(0.5):
        pass
    drainer.stop()
    out.write_text(json.dumps({"worker": _WORKER, "runs": sorted(RUNS.items())}))


if __name__ == "__main__":
    main()
