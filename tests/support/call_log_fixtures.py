"""The call log in tests: each test starts with an empty buffer (calls another test made are
not its own), and ``calls_written(engine)`` writes what the test's provider calls buffered, as
the process's writer thread does every second, so that a test can read the rows at once."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from sqlalchemy import Engine

from backend.integrations import call_log
from backend.platform import call_log_writer


@pytest.fixture(autouse=True)
def _empty_call_log() -> Iterator[None]:
    call_log.BUFFER.take()
    yield
    call_log.BUFFER.take()


@pytest.fixture
def calls_written() -> Callable[[Engine], int]:
    return call_log_writer.flush
