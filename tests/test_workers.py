"""`WORKERS=2` starts cleanly on a busy machine: uvicorn's supervisor pings each worker while it
starts, and a worker that answers too late is killed and started again, which under load meant
restart after restart (issue 22: 9 restarts at a load of 12). And what every serving process
sets up for its memory: glibc's arenas capped at two."""

from __future__ import annotations

import os
import platform
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx2
import pytest

from usage_tracker.store import Store

from .conftest import serve_process

HOGS_PER_CORE = 6


def _env(tmp_path: Path) -> dict[str, str]:
    database_url = f"sqlite:///{tmp_path / 'workers.db'}"
    Store.open(database_url).close()
    return {
        "WORKERS": "2",
        "AUTH_MODE": "none",
        "DATABASE_URL": database_url,
        "KEY_MAPPINGS_FILE": str(tmp_path / "api_key_mappings.json"),
        "LOG_LEVEL": "info",
    }


def _workers(log: str) -> set[str]:
    return set(re.findall(r"Started server process \[(\d+)\]", log))


@pytest.mark.slow
def test_a_worker_that_cannot_answer_for_a_while_is_not_killed(tmp_path: Path) -> None:
    """A worker that gets no CPU for 12 s (stopped, as starved on a machine at a load of 12)
    misses uvicorn's pings meanwhile; it is not killed and started again, and both workers
    answer after."""
    with serve_process(_env(tmp_path), tmp_path, ready_path="/api/health") as (url, log_path):
        deadline = time.monotonic() + 60
        while len(_workers(log_path.read_text())) < 2 and time.monotonic() < deadline:
            time.sleep(0.5)
        first = sorted(_workers(log_path.read_text()))
        assert len(first) == 2
        os.kill(int(first[0]), signal.SIGSTOP)
        time.sleep(12)
        try:
            os.kill(int(first[0]), signal.SIGCONT)
        except ProcessLookupError:
            pytest.fail(f"the stopped worker was killed: {log_path.read_text()}")
        time.sleep(2)
        for _ in range(10):
            assert httpx2.get(url + "/api/health", timeout=30).status_code == 200
        log = log_path.read_text()
    assert "died" not in log, log
    assert sorted(_workers(log)) == first, log


@pytest.mark.slow
def test_two_workers_start_under_a_cpu_hog_and_none_is_restarted(tmp_path: Path) -> None:
    env = _env(tmp_path)
    busy = "while True: pass"
    hogs = [
        subprocess.Popen([sys.executable, "-c", busy])
        for _ in range(HOGS_PER_CORE * (os.cpu_count() or 1))
    ]
    try:
        with serve_process(env, tmp_path, ready_path="/api/health", startup_seconds=180) as (
            url,
            log_path,
        ):
            deadline = time.monotonic() + 180
            while time.monotonic() < deadline:
                started = re.findall(r"Started server process \[(\d+)\]", log_path.read_text())
                if len(set(started)) >= 2:
                    break
                time.sleep(1)
            time.sleep(20)  # the supervisor pings each worker every half second meanwhile
            assert httpx2.get(url + "/api/health", timeout=60).status_code == 200
            log = log_path.read_text()
    finally:
        for hog in hogs:
            hog.kill()
        for hog in hogs:
            hog.wait()
    started = set(re.findall(r"Started server process \[(\d+)\]", log))
    assert "died" not in log, log
    assert "was not ready" not in log, log
    assert len(started) == 2, log


ARENA_PROBE = """
import ctypes, re, sys, threading
if sys.argv[1] == "tuned":
    from usage_tracker.web.serving import tune_memory
    tune_memory()
together = threading.Barrier(16)
def allocate():
    together.wait()  # all at once: glibc gives a contended thread an arena of its own
    for _ in range(200):
        del [bytearray(4096) for _ in range(200)][:]
threads = [threading.Thread(target=allocate) for _ in range(16)]
for t in threads: t.start()
for t in threads: t.join()
libc = ctypes.CDLL("libc.so.6")
libc.fopen.restype = ctypes.c_void_p
out = ctypes.c_void_p(libc.fopen(sys.argv[2].encode(), b"w"))
libc.malloc_info(0, out)
libc.fclose(out)
print(len(re.findall('<heap nr="', open(sys.argv[2]).read())))
"""


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's allocator")
def test_a_serving_process_keeps_two_malloc_arenas_however_many_threads_allocate(
    tmp_path: Path,
) -> None:
    env = {k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"}

    def heaps(how: str) -> int:
        run = [sys.executable, "-c", ARENA_PROBE, how, str(tmp_path / f"{how}.xml")]
        done = subprocess.run(run, env=env, capture_output=True, text=True, check=True)
        return int(done.stdout)

    assert heaps("plain") > 2  # the probe does make arenas: glibc's default would keep them
    assert heaps("tuned") <= 2
