"""Faults the simulated OpenAI API injects: 429s, 500s, slow answers, dropped connections and
truncated bodies, at a seeded random rate or on demand."""

from __future__ import annotations

import random
import threading
from collections import Counter, deque
from dataclasses import dataclass, field

FAULT_KINDS = ("429", "500", "slow", "drop", "truncate")


@dataclass
class Faults:
    """Failure injection. ``rate`` of responses fail, with a kind drawn from ``kinds``."""

    rate: float = 0.0
    kinds: tuple[str, ...] = FAULT_KINDS
    seed: int = 0
    slow_seconds: float = 2.0
    latency_seconds: float = 0.0
    retry_after_ms: int = 20
    """Sent as ``retry-after-ms``; ``Retry-After`` carries the same wait rounded up to seconds."""
    forced: deque[str] = field(default_factory=deque)
    injected: Counter[str] = field(default_factory=Counter)
    _rng: random.Random = field(init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self._rng = random.Random(f"faults:{self.seed}")

    def force(self, *kinds: str) -> None:
        """Fail the next requests with these kinds, in order (``"ok"`` lets one through)."""
        self.forced.extend(kinds)

    def draw(self) -> str | None:
        with self._lock:
            if self.forced:
                kind = self.forced.popleft()
            elif self.rate and self._rng.random() < self.rate:
                kind = self._rng.choice(self.kinds)
            else:
                return None
            if kind == "ok":
                return None
            self.injected[kind] += 1
            return kind
