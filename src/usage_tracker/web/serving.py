"""Run an ASGI app with uvicorn on a loopback port, in the foreground or in a background thread."""

from __future__ import annotations

import contextlib
import ctypes
import gc
import os
import platform
import socket
import threading
import time
from types import TracebackType
from typing import Any

import uvicorn

APP_SERVER_OPTIONS: dict[str, Any] = {"proxy_headers": False, "server_header": False}
"""uvicorn must not rewrite the client's address from X-Forwarded-For before the app's own
trust rule (``web.proxy``) has looked at the TCP peer."""


def tune_memory() -> None:
    """For a serving process: what is loaded by now (modules, settings, price tables) is kept
    for good, so the cyclic collector stops walking it (``gc.freeze``); and young collections
    come every 50,000 allocations instead of 700: computing a report makes tens of thousands
    of short-lived rows, and the defaults paused one such request several times (the slowest
    new 30-day summary: 129 ms → 43 ms, measured in bench). glibc's allocator keeps at most
    two arenas instead of eight per core: each of the request threads that computed a report
    kept the memory it had freed in an arena of its own (a first view across three connections
    at 155 MB, 147 MB with two)."""
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)
    _cap_malloc_arenas(2)


M_ARENA_MAX = -8
"""glibc's mallopt parameter for the most arenas (malloc.h)."""


def _cap_malloc_arenas(arenas: int) -> None:
    """As MALLOC_ARENA_MAX=``arenas`` would, unless that is set: nothing where the C library is
    not glibc."""
    if "MALLOC_ARENA_MAX" in os.environ or platform.libc_ver()[0] != "glibc":
        return
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").mallopt(M_ARENA_MAX, arenas)


WORKER_PATIENCE_SECONDS = 60
"""How long uvicorn's supervisor waits for a worker to answer its ping before it kills the worker
and starts another: its default, 5 s, killed workers that were only starting on a busy machine
(a fresh interpreter, the app's imports, its start-up), again and again (issue 22)."""


def run(app: Any, host: str, port: int, log_level: str = "info", *, workers: int = 1) -> None:
    """Serve ``app`` in the foreground until interrupted; with several ``workers``, ``app`` is
    the import string of a factory each worker process calls."""
    tune_memory()
    options = {**APP_SERVER_OPTIONS, "host": host, "port": port, "log_level": log_level}
    if workers > 1:
        uvicorn.run(
            app,
            factory=True,
            workers=workers,
            timeout_worker_healthcheck=WORKER_PATIENCE_SECONDS,
            **options,
        )
    else:
        uvicorn.run(app, **options)


def bind(host: str = "127.0.0.1", port: int = 0) -> socket.socket:
    """A listening socket; port 0 picks a free one."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Accepted sockets inherit this: without it, header and body writes meet delayed ACKs (40 ms).
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((host, port))
    sock.listen(128)
    return sock


class BackgroundServer:
    """Serves ``app`` on ``host:port`` (a free port by default) from a daemon thread.

    Use as a context manager; ``url`` is ``http://host:port``. Stopping waits for the thread.
    """

    def __init__(self, app: Any, host: str = "127.0.0.1", port: int = 0, **config: Any) -> None:
        self._sock = bind(host, port)
        self.host, self.port = self._sock.getsockname()[:2]
        options = {"log_level": "warning", "lifespan": "on", **APP_SERVER_OPTIONS, **config}
        cfg = uvicorn.Config(app, **options)
        self._server = uvicorn.Server(cfg)
        self._thread = threading.Thread(target=self._run, name=f"uvicorn:{self.port}", daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def _run(self) -> None:
        self._server.run(sockets=[self._sock])

    def start(self, timeout: float = 10.0) -> BackgroundServer:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the server on {self.url} did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._sock.close()

    def __enter__(self) -> BackgroundServer:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
