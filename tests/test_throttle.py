"""Sign-in throttling: counted before the password is checked, in the database (every worker and
replica sees it), per account and, more generously, per address that no client chooses."""

from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Literal

import httpx2
import pytest
from argon2 import PasswordHasher

from usage_tracker.people import access as auth
from usage_tracker.settings import load_settings
from usage_tracker.store import Store
from usage_tracker.web.throttle import PER_ACCOUNT, PER_ADDRESS, LoginThrottle

from .conftest import live_app
from .test_auth import ADMIN, PASSWORD, VIEWER, _add_account, _login


def test_parallel_attempts_on_two_replicas_get_no_more_than_the_allowance(
    database_url: str,
) -> None:
    """Two stores are two replicas' connections to one database: 40 attempts at once, half on
    each, and exactly the allowance is let through to the password check."""
    stores = [Store.open(database_url), Store.open(database_url)]
    try:
        throttles = [LoginThrottle(s, lambda: 1_000_000.0) for s in stores]
        with ThreadPoolExecutor(8) as pool:
            got = list(
                pool.map(lambda i: throttles[i % 2].attempt(ADMIN, f"198.51.100.{i}"), range(40))
            )
        assert sum(a is not None for a in got) == PER_ACCOUNT
        # A success gives its attempt back: one more may try.
        throttles[0].succeeded(next(a for a in got if a is not None))
        assert throttles[1].attempt(ADMIN, "198.51.100.99") is not None
        assert throttles[1].attempt(ADMIN, "198.51.100.99") is None
    finally:
        for store in stores:
            store.close()


def test_the_last_minute_slides_rather_than_resetting_on_the_minute(tmp_path: Path) -> None:
    store = Store.open(f"sqlite:///{tmp_path / 't.db'}")
    now = [1_000_059.0]  # the last second of a minute
    throttle = LoginThrottle(store, lambda: now[0])
    try:
        assert all(throttle.attempt(VIEWER, "a") for _ in range(PER_ACCOUNT))
        now[0] += 2  # a new minute has begun, but the five failures are two seconds old
        assert throttle.attempt(VIEWER, "a") is None
        now[0] += 60
        assert throttle.attempt(VIEWER, "a") is not None
    finally:
        store.close()


def test_thirty_parallel_wrong_passwords_get_five_checks_and_the_rest_wait(
    tmp_path: Path,
) -> None:
    """The outside check's case: 30 wrong passwords at once for one account were all verified
    (the throttle was read before, and written after, the 350 ms check)."""
    url = f"sqlite:///{tmp_path / 'p.db'}"
    Store.open(url).close()
    _add_account(url, ADMIN, "admin")
    with live_app(url, tmp_path, auth_mode="password") as live:

        def attempt(i: int) -> int:
            with httpx2.Client(base_url=live.url, timeout=60) as client:
                password = PASSWORD if i == 29 else f"wrong password {i}"
                return _login(client, ADMIN, password).status_code

        with ThreadPoolExecutor(30) as pool:
            statuses = Counter(pool.map(attempt, range(30)))
    assert statuses[401] + statuses[303] == PER_ACCOUNT
    assert statuses[429] == 30 - PER_ACCOUNT


def test_one_persons_typos_do_not_lock_out_the_next_person_at_the_same_address(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'p.db'}"
    Store.open(url).close()
    _add_account(url, ADMIN, "admin")
    _add_account(url, VIEWER, "viewer")
    with (
        live_app(url, tmp_path, auth_mode="password") as live,
        httpx2.Client(base_url=live.url, timeout=30) as client,
    ):
        for _ in range(PER_ACCOUNT):
            assert _login(client, ADMIN, "wrong password!").status_code == 401
        assert _login(client, ADMIN, PASSWORD).status_code == 429
        assert _login(client, VIEWER, PASSWORD).status_code == 303


def test_a_client_cannot_choose_its_address_with_x_forwarded_for(tmp_path: Path) -> None:
    """In password mode no proxy is trusted unless TRUSTED_PROXIES names it: each attempt
    claiming another address still counts against the real peer's."""
    assert load_settings(auth_mode="password").trusted_proxies == ()
    assert load_settings(auth_mode="header").trusted_proxies == ("127.0.0.1", "::1")
    url = f"sqlite:///{tmp_path / 'p.db'}"
    Store.open(url).close()
    with (
        live_app(url, tmp_path, auth_mode="password") as live,
        httpx2.Client(base_url=live.url, timeout=30) as client,
    ):
        for i in range(PER_ADDRESS):
            forged = {"X-Forwarded-For": f"203.0.113.{i}"}
            answer = _login(client, f"nobody{i}@example.com", "wrong password!", **forged)
            assert answer.status_code == 401
        last = {"X-Forwarded-For": "203.0.113.250"}
        assert _login(client, "nobody@example.com", "wrong password!", **last).status_code == 429


def test_an_account_without_a_password_costs_the_same_verification(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """It answered in 7 ms against ~350 ms for a wrong password: the account's existence showed."""
    from usage_tracker.store import accounts as rows

    url = f"sqlite:///{tmp_path / 'p.db'}"
    store = Store.open(url)
    with store.transaction() as conn:
        rows.save_account(conn, VIEWER, role="viewer", name=None, password_hash=None, now=0)
    store.close()
    _add_account(url, ADMIN, "admin")
    checks: list[str] = []

    class Counting(PasswordHasher):
        def verify(self, hash: str | bytes, password: str | bytes) -> Literal[True]:
            checks.append(str(password))
            return super().verify(hash, password)

    monkeypatch.setattr(auth, "_hasher", Counting())
    with (
        live_app(url, tmp_path, auth_mode="password") as live,
        httpx2.Client(base_url=live.url, timeout=30) as client,
    ):
        for email in (VIEWER, ADMIN, "nobody@example.com"):
            checks.clear()
            assert _login(client, email, "wrong password!").status_code == 401
            assert checks == ["wrong password!"], email
