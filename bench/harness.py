"""What the benchmarks share: the app and the simulator as real processes, an API token, timing
statistics, resident memory, and a load generator (wrk, from Debian) for the crowd figures."""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx2

from usage_tracker import simulator

ROOT = Path(__file__).resolve().parent.parent
CLI = [sys.executable, "-m", "usage_tracker"]
EMAIL = "bench@example.com"


def add_size_arguments(parser: argparse.ArgumentParser) -> None:
    """--keys, --users … : the simulated organization's size, the large one by default."""
    for field, value in asdict(simulator.Size()).items():
        parser.add_argument(f"--{field.replace('_', '-')}", type=int, default=value)


def size_of(args: argparse.Namespace) -> simulator.Size:
    """The organization's size that :func:`add_size_arguments`' options chose."""
    return simulator.Size(**{k: getattr(args, k) for k in asdict(simulator.Size())})


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def stats(samples: Sequence[float]) -> dict[str, float]:
    """Median and p95 (nearest rank) of ``samples`` in ms, rounded to 0.1."""
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, max(0, round(0.95 * len(ordered)) - 1))]
    return {"median": round(statistics.median(ordered), 1), "p95": round(p95, 1)}


def wait_until_up(url: str, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx2.HTTPError):
            if httpx2.get(url, timeout=2).status_code < 500:
                return
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not come up within {seconds} s")


@dataclass
class Process:
    popen: subprocess.Popen[bytes]
    url: str

    @property
    def pid(self) -> int:
        return self.popen.pid

    def rss_mb(self) -> float:
        """Resident memory of the process and its children (uvicorn's workers), in MB."""
        kb = (status_kb(pid, "VmRSS") for pid in [self.pid, *_children(self.pid)])
        return round(sum(k for k in kb if k is not None) / 1024, 1)

    def peaks_mb(self) -> dict[str, float]:
        """The peak resident memory (VmHWM) so far of the server and of each process it
        started (uvicorn's workers with ``WORKERS`` over 1, multiprocessing's resource
        tracker), in MB: ``serve``, ``worker 1`` …"""
        peaks, workers = {}, 0
        for pid in [self.pid, *_children(self.pid)]:
            try:
                command = Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:
                continue  # gone
            if pid == self.pid:
                name = "serve"
            elif b"resource_tracker" in command:
                name = "resource tracker"
            else:
                workers += 1
                name = f"worker {workers}"
            if (kb := status_kb(pid, "VmHWM")) is not None:
                peaks[name] = round(kb / 1024, 1)
        return peaks


def status_kb(pid: int, field: str) -> int | None:
    """A memory figure of /proc/PID/status in kB (None once the process is gone)."""
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return None
    return next((int(line.split()[1]) for line in lines if line.startswith(f"{field}:")), None)


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    kids = [int(p) for p in text.split()]
    return [*kids, *(g for k in kids for g in _children(k))]


@contextlib.contextmanager
def started(
    args: Sequence[str], env: Mapping[str, str], url: str, health: str
) -> Iterator[Process]:
    """A process of this project's CLI, until the block ends (then SIGTERM, SIGKILL if stuck)."""
    log = open(ROOT / ".bench" / f"{args[0]}-{free_port()}.log", "wb")  # noqa: SIM115
    popen = subprocess.Popen(
        [*CLI, *args],
        env={**os.environ, **env},
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=ROOT / ".bench",
        start_new_session=True,
    )
    try:
        wait_until_up(url + health)
        yield Process(popen, url)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(popen.pid, signal.SIGTERM)
        try:
            popen.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(popen.pid, signal.SIGKILL)
            popen.wait()
        log.close()


def simulator_process(
    days: int, size: simulator.Size, latency_ms: int, extra: Sequence[str] = ()
) -> Any:
    """``usage-tracker simulate`` of an organization of ``size`` (``extra``: more options)."""
    port = free_port()
    args = ["simulate", "--port", str(port), "--days", str(days), "--latency-ms", str(latency_ms)]
    sized = [f"--{k.replace('_', '-')}={v}" for k, v in asdict(size).items()]
    return started(
        [*args, *sized, *extra], {}, f"http://127.0.0.1:{port}", "/v1/organization/projects"
    )


def app_env(database_url: str, **extra: str) -> dict[str, str]:
    return {
        "DATABASE_URL": database_url,
        "AUTH_MODE": "password",
        "SESSION_SECRET": "bench-session-secret-that-is-long-enough-0123456789",
        "LOG_LEVEL": "warning",
        "REFRESH_SECONDS": "0",
        "RECENT_SYNC_SECONDS": "0",
        "KEY_MAPPINGS_FILE": str(ROOT / ".bench" / "no-mappings.json"),
        **extra,
    }


def app_process(database_url: str, workers: int = 1, **extra: str) -> Any:
    port = free_port()
    env = app_env(database_url, PORT=str(port), WORKERS=str(workers), **extra)
    return started(["serve"], env, f"http://127.0.0.1:{port}", "/api/health")


def api_token(database_url: str) -> str:
    """An admin account and a new API token for it, made with the CLI."""
    env = {**os.environ, **app_env(database_url)}
    run = [*CLI, "user", "add", EMAIL, "--role", "admin", "--no-password"]
    subprocess.run(run, env=env, check=True, capture_output=True, cwd=ROOT / ".bench")
    out = subprocess.run(
        [*CLI, "token", "create", EMAIL, "--name", "bench"],
        env=env,
        check=True,
        capture_output=True,
        text=True,
        cwd=ROOT / ".bench",
    ).stdout
    token = re.search(r"\b(ut_[A-Za-z0-9_\-]+)", out)
    if token is None:
        raise RuntimeError(f"no token in {out!r}")
    return token.group(1)


def wrk(url: str, token: str, *, clients: int, seconds: int = 10) -> dict[str, float]:
    """Requests per second and latency percentiles of ``clients`` connections hammering
    ``url`` for ``seconds`` (wrk, two threads)."""
    binary = shutil.which("wrk")
    if binary is None:
        raise RuntimeError("wrk is not installed (make bench installs it from Debian)")
    out = subprocess.run(
        [
            binary,
            "-t2",
            f"-c{clients}",
            f"-d{seconds}s",
            "--latency",
            "-H",
            f"Authorization: Bearer {token}",
            url,
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    figures: dict[str, float] = {}
    rate = re.search(r"Requests/sec:\s+([\d.]+)", out)
    figures["rps"] = round(float(rate.group(1)), 0) if rate else 0.0
    for pct in ("50", "90", "99"):
        found = re.search(rf"^\s+{pct}%\s+([\d.]+)(us|ms|s)\b", out, re.MULTILINE)
        if found:
            value, unit = float(found.group(1)), found.group(2)
            figures[f"p{pct}"] = round(
                value / 1000 if unit == "us" else value * (1000 if unit == "s" else 1), 1
            )
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    figures["errors"] = float(errors.group(1)) if errors else 0.0
    return figures
