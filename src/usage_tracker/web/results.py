"""Reports computed once per version of the data: what every request of the same question,
scope and data gets, until a write (a sync page, a People change, a new mapping file) moves the
version. Pages and the API read it; nothing here reaches upstream.

The version is read from the database on every request (one indexed row), so a cached answer
is never older than the data, in any process or replica. Each process keeps its own entries.
"""

from __future__ import annotations

import dataclasses
import sys
import threading
from collections import Counter, OrderedDict
from collections.abc import Callable, Hashable
from decimal import Decimal
from typing import Any, TypeVar

from pydantic import TypeAdapter

from usage_tracker import reports
from usage_tracker.people.names import KeyMappings, Names
from usage_tracker.store import Store

T = TypeVar("T")
Version = tuple[int, Hashable]
"""(the store's data version, the mapping file's stamp)."""

_JSON = TypeAdapter(dict[str, Any])


def as_json(result: dict[str, Any]) -> bytes:
    """A report as FastAPI would send it (Decimals as strings), encoded once."""
    return _JSON.dump_json(result)


SAMPLE = 8
"""Items of a container weighed to estimate the rest (:func:`weight`)."""
_ATOMS = (str, bytes, bytearray, int, float, Decimal, bool, type(None))


def weight(value: Any, depth: int = 0) -> int:
    """About how many bytes ``value`` holds: exact for bytes and strings, and for a container
    its own size plus its items' as weighed from up to :data:`SAMPLE` of them, evenly spread
    (the rows of a report are alike). A few thousand objects weighed at most, whatever the
    size of a report."""
    size = sys.getsizeof(value)
    if isinstance(value, _ATOMS) or depth > 6:
        return size
    items: Any
    if isinstance(value, dict):
        items = list(value.values())
    elif isinstance(value, list | tuple | set | frozenset):
        items = value if isinstance(value, list | tuple) else list(value)
    elif dataclasses.is_dataclass(value):
        items = [getattr(value, f.name) for f in dataclasses.fields(value)]
    elif hasattr(value, "__dict__"):
        items = list(vars(value).values())
    else:
        return size
    count = len(items)
    if count == 0:
        return size
    step = max(1, count // SAMPLE)
    sampled = items[::step][:SAMPLE]
    return size + sum(weight(v, depth + 1) for v in sampled) * count // len(sampled)


class Results:
    """A cache of computed reports bounded by their size (``max_bytes``, as :func:`weight`
    estimates it), keyed by the data's version and the question; the least recently used go
    first."""

    def __init__(self, store: Store, mappings: KeyMappings, max_bytes: int = 8 << 20) -> None:
        self.store = store
        self.mappings = mappings
        self.max_bytes = max_bytes
        self.held = 0
        """Bytes held, as :func:`weight` estimates them."""
        self._lock = threading.Lock()
        self._entries: OrderedDict[Hashable, Any] = OrderedDict()
        self._weights: dict[Hashable, int] = {}
        self._seen: Hashable = None
        self._pending: dict[Hashable, _Pending] = {}
        self.computed: Counter[Hashable] = Counter()
        """Values computed, per kind (a key's first part)."""

    def version(self, data_version: int | None = None) -> Version:
        """The version now (``data_version``: the store's, when just read)."""
        if data_version is None:
            data_version = self.store.data_version()
        return data_version, self.mappings.stamp()

    def peek(self, key: tuple[Hashable, ...]) -> Any:
        """The value cached under ``key``, or None (nothing computed, nothing waited for)."""
        with self._lock:
            if key[1] == self._seen and key in self._entries:
                self._entries.move_to_end(key)
                return self._entries[key]
        return None

    def names(self, version: Version) -> Names:
        """The names of keys, users, projects and people as of ``version``."""
        return self.get(
            ("names", version), lambda: reports.load_names(self.store, self.mappings.current())
        )

    def get(self, key: tuple[Hashable, ...], compute: Callable[[], T]) -> T:
        """The value cached under ``key`` (``(kind, version, …)``), else computed now. Another
        version empties the cache. Requests asking at once for a value not yet there wait for
        the first one's computation instead of repeating it (a crowd right after a sync)."""
        with self._lock:
            if key[1] != self._seen:
                self._entries.clear()
                self._weights.clear()
                self.held = 0
                self._seen = key[1]
            if key in self._entries:
                self._entries.move_to_end(key)
                return self._entries[key]  # type: ignore[no-any-return]
            pending = self._pending.get(key)
            first = pending is None
            if pending is None:
                pending = self._pending[key] = _Pending()
                self.computed[key[0]] += 1
        if not first:
            pending.done.wait()
            if pending.ok:
                return pending.value  # type: ignore[no-any-return]
            return self.get(key, compute)  # it failed there: try again here
        try:
            pending.value = compute()
            pending.ok = True
        finally:
            heavy = weight(pending.value) if pending.ok else 0
            with self._lock:
                self._pending.pop(key, None)
                if pending.ok and key[1] == self._seen and heavy <= self.max_bytes:
                    self._keep(key, pending.value, heavy)
            pending.done.set()
        return pending.value  # type: ignore[no-any-return]

    def _keep(self, key: Hashable, value: Any, heavy: int) -> None:
        """Hold ``value`` (of ``heavy`` bytes), letting the least recently used go until all
        fit (with the lock held)."""
        self.held -= self._weights.pop(key, 0)
        self._entries[key] = value
        self._weights[key] = heavy
        self.held += heavy
        while self.held > self.max_bytes:
            old, _ = self._entries.popitem(last=False)
            self.held -= self._weights.pop(old)


class _Pending:
    """A value being computed by one request while others wait for it."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.ok = False
        self.value: Any = None
