"""Where alerts go: one Apprise URL per channel (Slack, Teams, Discord, email, ntfy, a JSON
webhook…). A channel's URL holds its credentials, so it is never stored, logged or shown: the
database keeps its SHA-256 and people see Apprise's redacted form."""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import apprise
from apprise.plugins.custom_json import NotifyJSON

PATH_IS_SECRET = frozenset({"json", "jsons", "xml", "xmls", "form", "forms", "ntfy", "ntfys"})
"""Schemes whose URL path Apprise shows in its privacy form but that grants access."""


def valid_url(url: str) -> bool:
    """Whether Apprise knows ``url``'s service and can use it as given."""
    with _quiet():
        return apprise.Apprise.instantiate(url) is not None


def check_urls(urls: tuple[str, ...]) -> tuple[str, ...]:
    """``urls`` when Apprise can use each; else a ValueError naming the first bad one by its
    position and scheme (never the URL: it holds the channel's credentials)."""
    for i, url in enumerate(urls):
        if not valid_url(url):
            raise ValueError(
                f"entry {i + 1} ({scheme_of(url)}://…) is not a URL Apprise can use; see "
                "https://appriseit.com/services/ for each service's form"
            )
    return urls


def scheme_of(url: str) -> str:
    """What may be said of a URL that is not valid: its scheme alone."""
    return url.split("://", 1)[0][:20] if "://" in url else "(no scheme)"


@dataclass(frozen=True)
class Channel:
    url: str

    def __repr__(self) -> str:  # the URL is a credential
        return f"Channel({self.label})"

    @property
    def id(self) -> str:
        return hashlib.sha256(self.url.encode()).hexdigest()

    @property
    def label(self) -> str:
        with _quiet():
            plugin = apprise.Apprise.instantiate(self.url)
        if plugin is None:
            return scheme_of(self.url) + "://…"
        label = str(plugin.url(privacy=True)).split("?", 1)[0]  # type: ignore[no-untyped-call]  # Apprise's own options: noise
        scheme, _, rest = label.partition("://")
        if scheme in PATH_IS_SECRET and "/" in rest.rstrip("/"):
            # A webhook's path is often its secret, and an ntfy topic is its password.
            return f"{scheme}://{rest.split('/', 1)[0]}/…"
        return label

    def send(
        self,
        title: str,
        body: str,
        payload: dict[str, Any],
        recipient: str = "",
        *,
        idempotency_key: str | None = None,
    ) -> str | None:
        """Send one message; None when it was accepted, else what went wrong (in Apprise's
        words, which never include the channel's credentials).

        ``body`` is plain text and is sent as such: a channel that renders HTML (e-mail) gets
        it escaped by Apprise, so a name in it never becomes markup. A JSON webhook also gets
        ``idempotency_key`` (the same on every attempt of one delivery) as a header and in its
        body, so that a receiver can drop the copy sent again after a kill."""
        url = _with_recipient(self.url, recipient) if recipient else self.url
        with _quiet():
            plugin = apprise.Apprise.instantiate(url)
        if plugin is None:
            return "this channel's URL is no longer valid"
        if isinstance(plugin, NotifyJSON):
            # Webhooks get the alert's figures too, beside Apprise's title and message.
            extras: dict[str, Any] = {"alert": payload}
            if idempotency_key:
                extras["idempotency_key"] = idempotency_key
                plugin.headers = {**plugin.headers, "Idempotency-Key": idempotency_key}
            plugin.payload_extras = {**plugin.payload_extras, **extras}
        with _captured() as problems:
            try:
                ok = plugin.notify(body=body, title=title, body_format=apprise.NotifyFormat.TEXT)
            except Exception as e:  # a plugin bug must not stop the other deliveries
                return f"{type(e).__name__} in the {scheme_of(url)} plugin"
        if ok:
            return None
        return problems[-1] if problems else "the channel refused the message"


def _with_recipient(url: str, recipient: str) -> str:
    """An email channel's URL addressed to ``recipient`` instead of its own ``to``."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k != "to"] + [("to", recipient)]
    return urlunsplit(parts._replace(query=urlencode(query)))


class Channels:
    """The configured channels, by id: what a stored delivery is resolved against."""

    def __init__(self, urls: Iterable[str]) -> None:
        self._by_id = {c.id: c for c in (Channel(u) for u in urls)}
        self._labels = {i: c.label for i, c in self._by_id.items()}

    def get(self, channel_id: str) -> Channel | None:
        return self._by_id.get(channel_id)

    def label(self, channel_id: str) -> str:
        """A configured channel's redacted form (worked out once: Apprise parses the URL)."""
        return self._labels.get(channel_id, "(no longer configured)")


class _ThreadCapture(logging.Handler):
    """Apprise's warnings and errors raised on this thread (another thread may be sending too)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.thread = threading.get_ident()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread == self.thread:
            self.messages.append(record.getMessage())


@contextmanager
def _captured() -> Iterator[list[str]]:
    handler = _ThreadCapture()
    logger = logging.getLogger("apprise")
    logger.addHandler(handler)
    try:
        yield handler.messages
    finally:
        logger.removeHandler(handler)


class _NotThisThread(logging.Filter):
    def __init__(self) -> None:
        super().__init__()
        self.thread = threading.get_ident()

    def filter(self, record: logging.LogRecord) -> bool:
        return record.thread != self.thread


@contextmanager
def _quiet() -> Iterator[None]:
    """Apprise logs a URL it cannot parse, and that URL may hold a credential: drop what it
    logs on this thread meanwhile."""
    logger = logging.getLogger("apprise")
    drop = _NotThisThread()
    logger.addFilter(drop)
    try:
        yield
    finally:
        logger.removeFilter(drop)


def payload_json(payload: dict[str, Any]) -> str:
    return json.dumps(payload, sort_keys=True, default=str)
