"""Real local receivers for what alerts send: an HTTP server that keeps every webhook body, and
an SMTP server (aiosmtpd) that keeps every email."""

from __future__ import annotations

import email
import email.policy
import json
import socket
import threading
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session


class WebhookReceiver:
    """Answers every POST with ``status`` (200 by default) and keeps the JSON bodies it
    accepted, and the ``Idempotency-Key`` header of every attempt."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.attempt_keys: list[str | None] = []
        self.status = 200
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(length) or b"null")
                with receiver.lock:
                    receiver.attempt_keys.append(self.headers.get("Idempotency-Key"))
                    status = receiver.status
                    if status < 300:
                        receiver.bodies.append(body)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def apprise_url(self) -> str:
        return f"json://127.0.0.1:{self.port}/hook"

    def __enter__(self) -> WebhookReceiver:
        self.thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.server.shutdown()
        self.server.server_close()


class _Keep:
    def __init__(self, messages: list[EmailMessage]) -> None:
        self.messages = messages

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.content if isinstance(envelope.content, bytes) else b""
        message = email.message_from_bytes(content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        message["X-Envelope-To"] = ", ".join(envelope.rcpt_tos)
        self.messages.append(message)
        return "250 OK"


def _free_port() -> int:
    """aiosmtpd checks its server by connecting to the port it was given, so not 0."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class SmtpReceiver:
    """A real SMTP server on a free local port; ``messages`` are the emails it accepted."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.controller = Controller(_Keep(self.messages), hostname="127.0.0.1", port=_free_port())

    def apprise_url(self, to: str = "ops@example.com") -> str:
        return f"mailto://127.0.0.1:{self.controller.port}?from=alerts@example.com&to={to}"

    def __enter__(self) -> SmtpReceiver:
        self.controller.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.controller.stop()
