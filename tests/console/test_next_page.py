"""After login, only a same-site path is followed."""

from __future__ import annotations

import pytest

from console.state.next_page import login_url, next_from, safe_next


def test_login_url_carries_the_page_and_its_query() -> None:
    assert login_url("http://127.0.0.1:3000/jobs") == "/login?next=%2Fjobs"
    assert login_url("http://127.0.0.1:3000/jobs/") == "/login?next=%2Fjobs"
    assert login_url("http://h/shows/4?tab=invoices") == "/login?next=%2Fshows%2F4%3Ftab%3Dinvoices"
    assert next_from("http://h/login?next=%2Fshows%2F4%3Ftab%3Dinvoices") == "/shows/4?tab=invoices"
    # Nothing to come back to: the dashboard is where login lands anyway.
    assert login_url("http://h/") == "/login"
    assert login_url("http://h/login?next=%2Fjobs") == "/login"


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        "//evil.example/jobs",
        "https://evil.example/",
        "javascript:alert(1)",
        "/\\evil.example",
        "/\t/evil.example",
        "jobs",
        "/login",
        "/login/?next=/x",
    ],
)
def test_anything_but_a_same_site_path_goes_to_the_dashboard(value: str | None) -> None:
    assert safe_next(value) == "/"


def test_a_site_path_is_kept() -> None:
    assert safe_next("/jobs") == "/jobs"
    assert safe_next("/integrations/stripe?connected=1") == "/integrations/stripe?connected=1"
