"""The usage-tracker command, run as a real process."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from usage_tracker.store import Store

from .conftest import ADMIN_KEY, NOW


def _run(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "usage_tracker", *args],
        env={**os.environ, **env},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_sync_once_fills_the_database(sim_url: str, tmp_path: Path) -> None:
    db = tmp_path / "usage.db"
    # The simulated organization stops at NOW; the command runs on the wall clock: its week
    # of backfill reaches back to NOW's, whatever day the tests run on.
    days = (int(time.time()) - NOW) // 86400 + 7
    env = {
        "DATABASE_URL": f"sqlite:///{db}",
        "OPENAI_BASE_URL": sim_url,
        "OPENAI_ADMIN_KEY": ADMIN_KEY,
        "BACKFILL_DAYS": str(days),
    }
    done = _run("sync", "--once", env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "synced:" in done.stdout
    store = Store.open(f"sqlite:///{db}")
    assert store.row_count("usage") > 0
    assert all(s["backfill_complete"] for s in store.sync_states())
    store.close()


def test_the_admin_key_can_come_from_a_file(sim_url: str, tmp_path: Path) -> None:
    key_file = tmp_path / "admin-key"
    key_file.write_text(ADMIN_KEY + "\n")
    env = {
        "DATABASE_URL": f"sqlite:///{tmp_path / 'u.db'}",
        "OPENAI_BASE_URL": sim_url,
        "OPENAI_ADMIN_KEY_FILE": str(key_file),
        "BACKFILL_DAYS": "1",
    }
    done = _run("sync", "--once", env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr


def test_a_bad_setting_is_named(tmp_path: Path) -> None:
    done = _run(
        "sync", "--once", env={"BACKFILL_DAYS": "lots", "OPENAI_ADMIN_KEY": "x"}, cwd=tmp_path
    )
    assert done.returncode == 2
    assert "BACKFILL_DAYS" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_missing_key_says_what_to_set(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_ADMIN_KEY")}
    done = subprocess.run(
        [sys.executable, "-m", "usage_tracker", "sync", "--once"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2
    assert "OPENAI_ADMIN_KEY" in done.stderr


def test_a_refused_key_fails_the_sync_clearly_without_echoing_it(
    sim_url: str, tmp_path: Path
) -> None:
    key = "sk-admin-NotTheRightKey0123456789"
    env = {
        "DATABASE_URL": f"sqlite:///{tmp_path / 'u.db'}",
        "OPENAI_BASE_URL": sim_url,
        "OPENAI_ADMIN_KEY": key,
    }
    done = _run("sync", "--once", env=env, cwd=tmp_path)
    assert done.returncode == 1
    assert "rejected the admin key" in done.stderr
    said = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(said) == 1, said  # one message, naming the sources it stopped
    assert "sources: names, completions" in said[0]
    assert key not in done.stderr + done.stdout
    assert key[-6:] not in done.stderr + done.stdout


def test_since_takes_a_date_and_refuses_anything_else(tmp_path: Path) -> None:
    done = _run(
        "sync", "--once", "--since", "last week", env={"OPENAI_ADMIN_KEY": "x"}, cwd=tmp_path
    )
    assert done.returncode == 2
    assert "YYYY-MM-DD" in done.stderr


def test_serve_refuses_to_start_without_a_chosen_sign_in_mode(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "AUTH_MODE"}
    done = subprocess.run(
        [sys.executable, "-m", "usage_tracker", "serve"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "AUTH_MODE" in done.stderr


def _debug_sync(base_url: str, key: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {
        "DATABASE_URL": f"sqlite:///{tmp_path / 'u.db'}",
        "OPENAI_BASE_URL": base_url,
        "OPENAI_ADMIN_KEY": key,
        "LOG_LEVEL": "debug",
        "BACKFILL_DAYS": "1",
    }
    return _run("sync", "--once", env=env, cwd=tmp_path)


def test_debug_logs_show_requests_but_never_the_key(tmp_path: Path) -> None:
    from usage_tracker import simulator
    from usage_tracker.web.serving import BackgroundServer

    key = "sk-admin-DebugLogSentinel0123456789"
    sim = simulator.build(seed=2, days=2, admin_key=key)
    with BackgroundServer(sim) as server:
        done = _debug_sync(server.url + "/v1", key, tmp_path)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-2000:]
    assert "/organization/usage/completions" in output  # debug shows each request…
    assert key not in output  # …never the key
    assert "Sentinel" not in output


def test_debug_logs_never_copy_upstream_headers_even_one_that_echoes_the_key(
    tmp_path: Path,
) -> None:
    from starlette.types import Message, Receive, Scope, Send

    from usage_tracker import simulator
    from usage_tracker.web.serving import BackgroundServer

    key = "sk-admin-EchoedHeaderSentinel0123456789"
    sim = simulator.build(seed=2, days=2, admin_key=key)

    async def echoing(scope: Scope, receive: Receive, send: Send) -> None:
        """A misbehaving upstream: every response echoes the request's Authorization header."""
        auth = dict(scope.get("headers", [])).get(b"authorization", b"")

        async def send_echo(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message["headers"], (b"x-echo", auth)]}
            await send(message)

        await sim(scope, receive, send_echo)

    with BackgroundServer(echoing) as server:
        done = _debug_sync(server.url + "/v1", key, tmp_path)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-2000:]
    assert "GET /v1/organization/usage/completions -> 200" in output
    assert "request id req_" in output  # the request id and status are logged…
    assert "x-echo" not in output.lower()  # …the headers are not
    assert "Sentinel" not in output


def test_simulate_serves_the_contract_and_its_truth(tmp_path: Path) -> None:
    import socket
    import time

    import httpx2

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "usage_tracker",
            "simulate",
            "--port",
            str(port),
            "--seed",
            "3",
            "--days",
            "5",
            "--admin-key",
            "sk-admin-cli-test",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        headers = {"Authorization": "Bearer sk-admin-cli-test"}
        for _ in range(100):
            try:
                httpx2.get(url, timeout=1)
                break
            except httpx2.TransportError:
                time.sleep(0.1)
        now = int(time.time())
        start = now - now % 86400 - 3 * 86400
        page = httpx2.get(
            url + "/v1/organization/usage/completions",
            params={"start_time": start, "end_time": start + 2 * 86400, "limit": 2},
            headers=headers,
        ).json()
        truth = httpx2.get(
            url + "/_simulator/truth",
            params={"source": "completions", "start_time": start, "end_time": start + 2 * 86400},
            headers=headers,
        ).json()
        assert (
            sum(r["input_tokens"] for b in page["data"] for r in b["results"])
            == truth["data"][0]["input_tokens"]
        )
        assert (
            httpx2.get(
                url + "/v1/organization/users", headers={"Authorization": "Bearer sk-admin-other"}
            ).status_code
            == 401
        )
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_simulate_refuses_an_unknown_fault_kind(tmp_path: Path) -> None:
    done = _run("simulate", "--faults", "429,gremlins", env={}, cwd=tmp_path)
    assert done.returncode == 2
    assert "gremlins" in done.stderr


def test_demo_serves_a_populated_dashboard_and_cleans_up(tmp_path: Path) -> None:
    import re
    import signal
    import socket
    import time

    import httpx2

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "usage_tracker", "demo", "--port", str(port)],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 180
        while True:
            # A demo that exited or never came up fails with what it printed, not a bare
            # "connection refused".
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"the demo did not come up on {url}:\n{proc.communicate()[0]}")
            try:
                if httpx2.get(url + "/api/health", timeout=2).status_code == 200:
                    break
            except httpx2.TransportError:
                time.sleep(0.3)
        page = httpx2.get(url + "/?range=7d", timeout=30)
        assert page.status_code == 200
        assert "Jane Smith" in page.text
        assert "Data Platform Team" in page.text  # the demo's mapping file names a service key
        # Today's pools are there; their figures against the truth are test_api's and
        # test_browser's (at any hour: just after midnight the demo's "today" is still empty).
        pools = httpx2.get(url + "/api/tiers", timeout=30).json()["pools"]
        assert pools["small"]["limit"] > 0
        assert pools["small"]["used"] >= 0
        health = httpx2.get(url + "/api/health", timeout=30).json()
        assert health["status"] == "ok"
        assert [c["name"] for c in health["connections"]] == ["openai", "anthropic"]
        week = httpx2.get(url + "/api/summary", params={"start_time": 0}, timeout=30).json()
        providers = {r["provider"]: r["tokens"] for r in week["by"]["provider"]}
        assert set(providers) == {"openai", "anthropic"}
        assert all(providers.values())
    finally:
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, output
    assert f"Dashboard: http://127.0.0.1:{port}" in output
    workdir = re.search(r"database in (\S+)", output)
    assert workdir is not None
    assert not Path(workdir.group(1)).exists()


def test_a_full_disk_is_a_message_not_a_traceback(
    sim_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite's own "database or disk is full" (SQLITE_FULL), from a page limit on the file."""
    from sqlalchemy import Engine, event
    from typer.testing import CliRunner

    from usage_tracker.cli import app

    def small_disk(dbapi_connection: Any, _record: object) -> None:
        cursor = dbapi_connection.cursor()
        pages = cursor.execute("PRAGMA page_count").fetchone()[0]
        # Room for the schema (64 pages, more while migrating), then full during the sync.
        cursor.execute(f"PRAGMA max_page_count = {max(pages, 120) + 2}")
        cursor.close()

    db = tmp_path / "full.db"
    days = (int(time.time()) - NOW) // 86400 + 30  # a month up to NOW, the organization's end
    for name, value in {
        "DATABASE_URL": f"sqlite:///{db}",
        "OPENAI_BASE_URL": sim_url,
        "OPENAI_ADMIN_KEY": ADMIN_KEY,
        "BACKFILL_DAYS": str(days),
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(tmp_path)
    event.listen(Engine, "connect", small_disk)
    try:
        result = CliRunner().invoke(app, ["sync", "--once"])
    finally:
        event.remove(Engine, "connect", small_disk)
    assert result.exit_code == 1, result.output
    assert "error: The database cannot be written: the disk is full" in result.output
    assert "Traceback" not in result.output
    store = Store.open(f"sqlite:///{db}")  # what was written is whole: no half-written page
    for state in store.sync_states():
        stored = store.usage_totals(
            state["backfill_from"], state["done_until"], sources=[state["source"]]
        )
        assert (state["done_until"] > state["backfill_from"]) == bool(stored)
    store.close()


def test_sync_against_an_unreachable_upstream_fails_in_seconds_with_a_message(
    tmp_path: Path,
) -> None:
    import socket
    import time

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {
        "DATABASE_URL": f"sqlite:///{tmp_path / 'u.db'}",
        "OPENAI_BASE_URL": f"http://127.0.0.1:{port}/v1",
        "OPENAI_ADMIN_KEY": ADMIN_KEY,
    }
    started = time.monotonic()
    done = _run("sync", "--once", env=env, cwd=tmp_path)
    took = time.monotonic() - started
    assert done.returncode == 1
    said = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(said) == 1, said  # one line for the one cause, naming every source it stopped
    assert said[0].startswith("error: Cannot connect to 127.0.0.1 (3 attempts)")
    assert "sources: names, completions" in said[0]
    assert "Traceback" not in done.stderr
    print(f"unreachable upstream: sync --once gave up after {took:.1f} s")


def test_serve_with_the_database_down_says_so_in_one_line(tmp_path: Path) -> None:
    env = {"AUTH_MODE": "none", "DATABASE_URL": "postgresql+psycopg://postgres@127.0.0.1:1/x"}
    done = _run("serve", env=env, cwd=tmp_path)
    assert done.returncode == 2
    assert "error: The database is not available" in done.stderr
    assert "Traceback" not in done.stderr


def test_pools_check_lists_the_models_the_table_does_not_classify(tmp_path: Path) -> None:
    import time

    from usage_tracker.providers.records import DIMENSIONS, UsageResult
    from usage_tracker.store import writes

    url = f"sqlite:///{tmp_path / 'pools.db'}"
    hour = int(time.time()) // 3600 * 3600 - 3 * 3600

    def used(model: str, tokens: int) -> UsageResult:
        dims = tuple(model if d == "model" else None for d in DIMENSIONS)
        metrics = {"input_tokens": tokens, "output_tokens": 0, "num_model_requests": 1}
        return UsageResult("completions", hour, hour + 3600, dims, metrics)

    store = Store.open(url)
    with store.transaction() as conn:
        writes.replace_usage(
            conn,
            "completions",
            hour,
            hour + 3600,
            [used("gpt-4.1", 10)],
            estimate=store.prices.estimate,
        )
    store.close()
    env = {"DATABASE_URL": url}
    clean = _run("pools", "check", env=env, cwd=tmp_path)
    assert clean.returncode == 0, clean.stderr
    assert "all 1 models used in the last 30 days are classified" in clean.stdout
    store = Store.open(url)
    with store.transaction() as conn:
        rows = [used("gpt-4.1", 10), used("gpt-from-the-future-9", 12345)]
        writes.replace_usage(
            conn, "completions", hour, hour + 3600, rows, estimate=store.prices.estimate
        )
    store.close()
    stale = _run("pools", "check", env=env, cwd=tmp_path)
    assert stale.returncode == 1
    assert "gpt-from-the-future-9\t12,345 tokens" in stale.stdout
    assert "gpt-4.1\t" not in stale.stdout


def test_every_commands_help_reads_as_plain_text() -> None:
    """No ``<bool>`` beside a flag, no reST backticks: what a person reads in --help."""
    from typer.main import get_command
    from typer.testing import CliRunner

    from usage_tracker.cli import app

    def commands(group: Any, path: list[str]) -> list[list[str]]:
        found = [path]
        if hasattr(group, "commands"):  # a group (Typer's own copy of click's)
            for name, sub in group.commands.items():
                found += commands(sub, [*path, name])
        return found

    every = commands(get_command(app), [])
    assert len(every) > 15
    for path in every:
        shown = CliRunner().invoke(app, [*path, "--help"], terminal_width=100)
        assert shown.exit_code == 0, (path, shown.output)
        assert "<bool>" not in shown.output, path
        assert "``" not in shown.output, path
