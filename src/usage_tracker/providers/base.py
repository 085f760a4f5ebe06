"""What every provider's client keeps beside its SDK, whatever the provider."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Protocol, Self


class _Closable(Protocol):
    def close(self) -> None: ...


class SdkClient:
    """A client over one SDK instance: it counts its requests, notes the fields a provider sends
    that this version does not read, and says what is going wrong upstream right now."""

    def __init__(self, sdk: _Closable) -> None:
        self._closes = sdk
        self.requests: Counter[str] = Counter()
        """Attempts per endpoint (``"completions"``, ``"costs"``, ``"projects"``…)."""
        self.new_fields: dict[str, set[str]] = {}
        """Per usage source, the fields of its results this version does not read (ignored)."""
        self._lock = threading.Lock()
        self.trouble: str | None = None
        """What is going wrong with the upstream right now, in words ("rate-limited (429),
        retrying"), from the first fault until a call succeeds: health says it at once."""
        self._trouble_since: float | None = None
        self.on_trouble: Callable[[str | None], object] | None = None
        """Told each time ``trouble`` changes (None: cleared), so that other processes (the
        workers that are not syncing) can say it too."""

    def close(self) -> None:
        self._closes.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _set_trouble(self, words: str | None) -> None:
        """Say ``words`` (None: all is well again), telling ``on_trouble`` when they change."""
        with self._lock:
            if words == self.trouble:
                return
            self.trouble = words
            if words is None:
                self._trouble_since = None
            elif self._trouble_since is None:
                self._trouble_since = time.monotonic()
        if self.on_trouble is not None:
            self.on_trouble(words)
