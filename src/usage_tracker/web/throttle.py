"""Sign-in throttling that holds under parallel attempts, across workers and replicas.

An attempt is counted in the database *before* its password is checked (argon2 takes a third of
a second: counting after would let every attempt that arrives meanwhile through), and given back
when it succeeds, so only failures use up the allowance. Counts are per minute with the previous
minute weighted by how much of it is still inside the last 60 s (a sliding window).

Two allowances: per account (a few: guessing one account's password) and per address (many:
behind a proxy that is not trusted, every person shares its address, and one person's typos
must not lock the others out).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from usage_tracker.store import Store
from usage_tracker.store import accounts as rows

WINDOW = 60
PER_ACCOUNT = 5
PER_ADDRESS = 30


class _Refused(Exception):
    """Rolls the attempt's counting back: a refused attempt is not counted."""


@dataclass(frozen=True)
class Attempt:
    """A counted sign-in attempt: what :meth:`LoginThrottle.succeeded` gives back."""

    keys: tuple[str, ...]
    window_start: int


class LoginThrottle:
    def __init__(
        self,
        store: Store,
        clock: Callable[[], float],
        *,
        per_account: int = PER_ACCOUNT,
        per_address: int = PER_ADDRESS,
    ) -> None:
        self.store, self.clock = store, clock
        self.per_account, self.per_address = per_account, per_address

    def attempt(self, email: str, address: str) -> Attempt | None:
        """Count an attempt to sign in as ``email`` from ``address``; None (and nothing
        counted) when either allowance is used up."""
        now = self.clock()
        window = int(now) - int(now) % WINDOW
        # The share of the previous minute still inside the last WINDOW seconds.
        previous_weight = 1 - (now - window) / WINDOW
        limits = {
            f"account:{email.lower()}": self.per_account,
            f"address:{address}": self.per_address,
        }
        try:
            with self.store.transaction() as conn:
                for key, limit in limits.items():
                    count = rows.count_attempt(conn, key, window)
                    earlier = rows.attempts(conn, key, window - WINDOW)
                    if count + earlier * previous_weight > limit:
                        raise _Refused
                    if count == 1:  # the first of its minute: clear what no window reads
                        rows.forget_attempts(conn, window - WINDOW)
        except _Refused:
            return None
        return Attempt(tuple(limits), window)

    def succeeded(self, attempt: Attempt) -> None:
        """The password was right: the attempt does not count against either allowance."""
        with self.store.transaction() as conn:
            for key in attempt.keys:
                rows.count_attempt(conn, key, attempt.window_start, step=-1)
