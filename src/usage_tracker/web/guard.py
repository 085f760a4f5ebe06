"""The outermost layer of every request (a plain ASGI middleware):

- the client's address and scheme, by the proxy trust rule (:mod:`.proxy`), written into the
  scope so that routes, sign-in and uvicorn's access log all see the same address; the TCP peer
  is kept under ``PEER``;
- the Host header, checked against the allowed hosts (no DNS rebinding of a sign-in-free app);
- HEAD answered wherever GET is, without a body;
- the security headers on every response, errors included;
- a JSON error body, never a bare traceback, when something fails unexpectedly.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from typing import Any

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from usage_tracker.web.proxy import ProxyTrust

log = logging.getLogger(__name__)

PEER = "usage_tracker.peer"
"""Scope key of the TCP peer's address (``scope["client"]`` holds the resolved client)."""

LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1")

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; "
    "form-action 'self'"
)
SECURITY_HEADERS = {
    "content-security-policy": CSP,
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
    "cross-origin-opener-policy": "same-origin",
}


def host_name(host: str) -> str:
    """``example.com:3000`` → ``example.com``; ``[::1]:3000`` → ``::1``."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1:].split("]", 1)[0]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


class HostRule:
    """Allowed Host names: exact names, or ``*.example.com`` for its subdomains; none means any."""

    def __init__(self, allowed: Iterable[str]) -> None:
        self.allowed = tuple(a.strip().lower() for a in allowed if a.strip())

    def allows(self, host: str | None) -> bool:
        if not self.allowed or "*" in self.allowed:
            return True
        name = host_name(host or "")
        return any(name == a or (a.startswith("*.") and name.endswith(a[1:])) for a in self.allowed)


def error_body(message: str, param: str | None = None) -> bytes:
    return json.dumps({"error": {"message": message, "param": param}}).encode()


class Guard:
    def __init__(self, app: ASGIApp, *, trust: ProxyTrust, hosts: HostRule) -> None:
        self.app, self.trust, self.hosts = app, trust, hosts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        peer, port = scope.get("client") or ("", 0)
        client = self.trust.client(peer, headers.getlist("x-forwarded-for"))
        scope[PEER] = peer
        scope["client"] = (client, port)
        scope["scheme"] = self.trust.scheme(peer, scope["scheme"], headers.get("x-forwarded-proto"))
        send = _with_security_headers(send)
        if not self.hosts.allows(headers.get("host")):
            message = (
                f"This server does not answer for the host {headers.get('host', '')!r}; "
                "add it to ALLOWED_HOSTS if it is yours."
            )
            await _send_json(send, 400, error_body(message))
            return
        if scope["method"] == "HEAD":
            scope = {**scope, "method": "GET"}
            send = _without_body(send)
        await self._call_guarded(scope, receive, send)

    async def _call_guarded(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = False

        async def tracking(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracking)
        except Exception:
            log.exception("unexpected error answering %s %s", scope["method"], scope["path"])
            if started:
                raise
            body = error_body("Something went wrong on the server; the log has the details.")
            await _send_json(send, 500, body)


def _with_security_headers(send: Send) -> Send:
    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            present = {k.lower() for k, _ in message.get("headers", [])}
            extra = [
                (k.encode(), v.encode())
                for k, v in SECURITY_HEADERS.items()
                if k.encode() not in present
            ]
            message = {**message, "headers": [*message.get("headers", []), *extra]}
        await send(message)

    return wrapped


def _without_body(send: Send) -> Send:
    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.body":
            message = {**message, "body": b""}
        await send(message)

    return wrapped


async def _send_json(send: Send, status: int, body: bytes, headers: Any = ()) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
