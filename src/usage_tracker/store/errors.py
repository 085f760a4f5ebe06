"""The one error the store raises when the database itself fails, in plain words.

A full disk, a database that is down or restarting, a lost connection: each becomes a
:class:`StoreUnavailableError` whose message says what happened and what to do, and never holds
the connection URL (which may carry a password).
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator

from sqlalchemy.exc import DBAPIError, IntegrityError, SQLAlchemyError

_PASSWORD = re.compile(r"(password=|://[^:/@\s]*:)[^@\s]*", re.IGNORECASE)


class StoreUnavailableError(Exception):
    """The database could not be read or written; stored data is unchanged."""

    def __init__(self, message: str, *, full: bool = False) -> None:
        super().__init__(message)
        self.full = full


def explain(error: SQLAlchemyError) -> StoreUnavailableError:
    detail = str(getattr(error, "orig", None) or error).strip().splitlines()
    first = _PASSWORD.sub(r"\1[redacted]", detail[0] if detail else type(error).__name__)
    if "full" in first.lower() or "no space" in first.lower():
        return StoreUnavailableError(
            f"The database cannot be written: the disk is full ({first}). Free some space; "
            "stored data is unchanged and the next sync will try again.",
            full=True,
        )
    return StoreUnavailableError(
        f"The database is not available ({first}). It may be restarting; stored data is "
        "unchanged and pages will show it again when the database is back."
    )


@contextlib.contextmanager
def translated() -> Iterator[None]:
    """Re-raise a database failure as :class:`StoreUnavailableError`."""
    try:
        yield
    except IntegrityError:
        raise  # a constraint the caller expects (a row another process inserted first)
    except DBAPIError as e:
        raise explain(e) from None
    except SQLAlchemyError as e:
        if "connect" in type(e).__name__.lower() or "timeout" in type(e).__name__.lower():
            raise explain(e) from None
        raise
