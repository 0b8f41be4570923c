"""Scheduled jobs are declared next to the code they run, with ``@periodic``.

``scheduler.py`` imports ``backend.jobs`` (which imports every job module) and adds what is
registered here to APScheduler. Tests read the registry to check what is declared.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

JobFunc = Callable[[], None]


@dataclass(frozen=True, slots=True)
class PeriodicJob:
    id: str
    func: JobFunc
    seconds: int
    description: str


_REGISTRY: dict[str, PeriodicJob] = {}


def periodic(*, id: str, seconds: int, description: str) -> Callable[[JobFunc], JobFunc]:
    def register(func: JobFunc) -> JobFunc:
        if id in _REGISTRY and _REGISTRY[id].func is not func:
            raise ValueError(f"two periodic jobs are declared with the id {id!r}")
        _REGISTRY[id] = PeriodicJob(id=id, func=func, seconds=seconds, description=description)
        return func

    return register


def declared() -> list[PeriodicJob]:
    return sorted(_REGISTRY.values(), key=lambda job: job.id)
