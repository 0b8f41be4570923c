"""The suite's guard (tests/support/tx_guard.py) catches what it is there for: an adapter called,
or a password hashed, while the calling thread holds an open database transaction; and stays
quiet once the transaction is closed."""

from __future__ import annotations

import contextlib
import os
import textwrap

import httpx
import pytest
from sqlalchemy import Engine, text

from backend.db import session_scope
from backend.integrations.errors import ProviderError
from backend.integrations.slack import SlackAdapter
from backend.security.auth import hash_password
from tests.support import tx_guard
from tests.support.sandbox_fixtures import RunningSandbox


def _slack(sandbox: RunningSandbox) -> SlackAdapter:
    return SlackAdapter("xoxb-guard", base_url=f"{sandbox.url}/slack/api")


def _call(adapter: SlackAdapter) -> None:
    # The sandbox's answer does not matter here, only when the call was made.
    with contextlib.suppress(ProviderError):
        adapter.auth_test()


def test_an_adapter_called_inside_a_transaction_is_reported(
    engine: Engine, sandbox: RunningSandbox
) -> None:
    adapter = _slack(sandbox)
    with tx_guard.caught() as found, session_scope(engine) as session:
        session.execute(text("SELECT 1"))
        assert tx_guard.in_transaction()
        _call(adapter)
    assert len(found) == 1 and found[0].startswith("a call to Slack inside an open database")
    assert "tests/test_tx_guard.py" not in found[0]  # the product's frames only
    assert "backend/integrations/slack.py" in found[0]


def test_the_same_call_after_the_transaction_closed_is_not(
    engine: Engine, sandbox: RunningSandbox
) -> None:
    adapter = _slack(sandbox)
    with tx_guard.caught() as found:
        with session_scope(engine) as session:
            session.execute(text("SELECT 1"))
        assert not tx_guard.in_transaction()
        _call(adapter)
        # A session that has not touched the database holds nothing yet.
        with session_scope(engine):
            _call(adapter)
    assert found == []


def test_a_password_hashed_inside_a_transaction_is_reported(engine: Engine) -> None:
    with tx_guard.caught() as found:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
            hash_password("correct horse battery")
        hash_password("correct horse battery")  # committed: fine
    assert len(found) == 1 and found[0].startswith("a password hash (argon2 hash)")


def test_network_io_from_adapter_code_that_skips_the_deadline_is_reported(
    engine: Engine, sandbox: RunningSandbox
) -> None:
    """The second net: a request made by code of backend/integrations/ without a deadline
    block (here compiled as if it lived there) is caught at the socket."""
    source = "def fetch(url):\n    return httpx.get(url, timeout=10).status_code\n"
    namespace: dict[str, object] = {"httpx": httpx}
    exec(compile(source, tx_guard.ADAPTERS + "guard_probe.py", "exec"), namespace)  # noqa: S102
    fetch = namespace["fetch"]
    assert callable(fetch)
    with tx_guard.caught() as found:
        with session_scope(engine) as session:
            session.execute(text("SELECT 1"))
            fetch(f"{sandbox.url}/_sandbox/requests")
        fetch(f"{sandbox.url}/_sandbox/requests")
    assert found and all("network I/O from an adapter (socket." in f for f in found)


def test_the_guard_fails_a_test_that_calls_a_provider_inside_a_transaction(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = str(tx_guard.ROOT)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([root, os.environ.get("PYTHONPATH", "")]))
    pytester.makepyfile(
        test_inside=textwrap.dedent(
            """
            from sqlalchemy import text

            from backend.db import make_engine, session_scope
            from backend.integrations.errors import ProviderError
            from backend.integrations.slack import SlackAdapter


            def test_calls_slack_holding_the_lock(tmp_path):
                engine = make_engine(f"sqlite:///{tmp_path / 'x.db'}")
                with session_scope(engine) as session:
                    session.execute(text("SELECT 1"))
                    try:
                        SlackAdapter("xoxb-x", base_url="http://127.0.0.1:9").auth_test()
                    except ProviderError:
                        pass


            def test_calls_slack_after_commit(tmp_path):
                engine = make_engine(f"sqlite:///{tmp_path / 'x.db'}")
                with session_scope(engine) as session:
                    session.execute(text("SELECT 1"))
                try:
                    SlackAdapter("xoxb-x", base_url="http://127.0.0.1:9").auth_test()
                except ProviderError:
                    pass
            """
        )
    )
    result = pytester.runpytest_subprocess("-p", "tests.support.tx_guard", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        ["*test_calls_slack_holding_the_lock*", "*a call to Slack inside an open database*"]
    )
