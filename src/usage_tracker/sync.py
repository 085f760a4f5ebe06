"""Copy upstream usage, costs and names into the store: incremental, idempotent, resumable.

Each page of upstream buckets is written in one transaction together with the watermark it
reaches, so a sync killed at any point leaves whole buckets and a watermark that tells the next
run where to resume. Finished sources re-fetch a recent window (``lookback_hours``) every run,
because OpenAI revises recent hours, and replace those buckets whole.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection

from usage_tracker.providers import ProviderClient
from usage_tracker.providers.errors import (
    ENDS_SYNC,
    AdminKeyError,
    RefusedDimensionError,
    SourceNotAvailableError,
    UpstreamError,
)
from usage_tracker.providers.openai.contract import LATER_DIMENSIONS, SOURCES, align_down, align_up
from usage_tracker.store import Store, StoreUnavailableError, writes
from usage_tracker.store.schema import DEFAULT_CONNECTION

log = logging.getLogger(__name__)

HOUR, DAY = 3600, 86400
COSTS = "costs"
ALL = (*SOURCES, COSTS)
"""What a sync copies: every usage source, then daily costs."""

RECHECK_SECONDS = DAY
"""How long what the API refused (a dimension, a whole source) is taken as its answer before
asking again."""

Progress = Callable[[str, int, int, int], None]
"""progress(source, done_until, start, end), called after each page is stored."""


@dataclass
class SourceOutcome:
    source: str
    pages: int = 0
    rows: int = 0
    error: str | None = None
    fatal: bool = False
    """The admin key was refused, or the URL does not lead to OpenAI: asking again for other
    sources is pointless this run."""
    unavailable: bool = False
    """The organization has no such source (404): not an error; asked again daily."""


@dataclass
class SyncReport:
    skipped: bool = False
    outcomes: dict[str, SourceOutcome] = field(default_factory=dict)
    """Per source; per ``connection/source`` in the report of several connections."""
    names_error: str | None = None
    limits_error: str | None = None
    """Why the limits were not read this pass (they are not a source: the sync goes on)."""

    @property
    def errors(self) -> list[str]:
        found = [f"{key}: {o.error}" for key, o in self.outcomes.items() if o.error]
        return ([f"names: {self.names_error}"] if self.names_error else []) + found


@dataclass(frozen=True)
class SyncWindow:
    backfill_days: int = 90
    lookback_hours: int = 48
    costs_lookback_days: int = 3
    """Costs settle late: the last days of costs are fetched again on every run."""
    since: int | None = None
    """Fetch from this time this run (``sync --since``), even if it is already stored."""
    concurrency: int = 1
    """Sources fetched at once (each one's pages stay in order, so its watermark stays exact)."""


@dataclass(frozen=True)
class Feed:
    """One connection as the sync reads it: its name, its provider's client, its window."""

    connection: str
    client: ProviderClient
    window: SyncWindow = field(default_factory=SyncWindow)


def sync_each(
    store: Store,
    feeds: Sequence[Feed],
    run: Callable[[Feed], SyncReport],
) -> SyncReport:
    """``run`` (a full or a recent pass) for every connection, one after the other: a failing
    one is recorded in its own sync state and never stops the next. One connection's report is
    returned as it is; several are merged, each outcome under ``connection/source``."""
    if len(feeds) == 1:
        return run(feeds[0])
    merged = SyncReport()
    names = []
    for feed in feeds:
        report = run(feed)
        if report.skipped:
            merged.skipped = True  # another process syncs: it will do the rest
            break
        for source, outcome in report.outcomes.items():
            merged.outcomes[f"{feed.connection}/{source}"] = outcome
        if report.names_error:
            names.append(f"{feed.connection}: {report.names_error}")
    merged.names_error = "; ".join(names) or None
    return merged


class Notes:
    """What the API refused of each source, as last checked (``upstream_notes``): a refused
    dimension is left out of ``group_by`` and an unavailable source is not asked for, until
    RECHECK_SECONDS have passed; then the full request is tried again."""

    def __init__(self, store: Store, now: int, connection: str = DEFAULT_CONNECTION) -> None:
        self.now = now
        self.rows = [r for r in store.upstream_notes() if r["connection"] == connection]

    def _recent(self, source: str, kind: str) -> list[str]:
        return [
            r["detail"]
            for r in self.rows
            if r["source"] == source
            and r["kind"] == kind
            and self.now - r["noted_at"] < RECHECK_SECONDS
        ]

    def unavailable(self, source: str) -> bool:
        return bool(self._recent(source, "unavailable"))

    def group_by(self, source: str) -> tuple[str, ...]:
        """OpenAI's dimensions of ``source`` less those refused (none for another provider's
        source: its client chooses its own)."""
        refused = set(self._recent(source, "refused_dimension"))
        spec = SOURCES.get(source)
        return () if spec is None else tuple(d for d in spec.group_by if d not in refused)

    def noted(self, source: str, kind: str) -> set[str]:
        return {r["detail"] for r in self.rows if r["source"] == source and r["kind"] == kind}


def describe_note(note: dict[str, Any]) -> str:
    """An ``upstream_notes`` row in words, for health and the CLI."""
    source, detail = note["source"], note["detail"]
    if note["kind"] == "refused_dimension":
        return (
            f"OpenAI did not accept {detail} for {source}; counting without it (asked again daily)"
        )
    if note["kind"] == "unavailable":
        return f"{source}: not available for this organization (asked again daily)"
    return f"OpenAI sent a field this version ignores: {source}.{detail}"


def sync_once(
    store: Store,
    client: ProviderClient,
    *,
    window: SyncWindow | None = None,
    now: int | None = None,
    sources: Sequence[str] | None = None,
    progress: Progress | None = None,
    connection: str = DEFAULT_CONNECTION,
) -> SyncReport:
    """One bounded pass over ``connection``'s names and every source. Returns at once
    (``skipped``) when another process holds the sync lock. Upstream faults are recorded per
    source, never raised."""
    window = window or SyncWindow()
    sources = client.sources if sources is None else sources  # every one the provider has
    with store.sync_lock() as held:
        if not held:
            log.info("another process is syncing; skipping this run")
            return SyncReport(skipped=True)
        now = int(time.time()) if now is None else now
        with store.transaction() as conn:
            writes.add_connection(conn, connection, client.provider, now)
        report = SyncReport()
        fatal: str | None = None
        projects: list[str] = []
        try:
            projects = refresh_names(
                store, client, now, concurrency=window.concurrency, connection=connection
            )
        except UpstreamError as e:
            report.names_error = str(e)
            fatal = str(e) if isinstance(e, ENDS_SYNC) else None
            log.warning("names not refreshed: %s", e)
        ended = threading.Event()  # a fatal error (a revoked key…) ends the run for every source
        reasons: list[str] = [fatal] if fatal is not None else []
        if fatal is not None:
            ended.set()

        writer = _Writer(store, capacity=2 * max(1, window.concurrency))
        notes = Notes(store, now, connection)

        def one(source: str) -> SourceOutcome:
            if ended.is_set():
                return _record_failure(
                    store, source, window, now, reasons[0], connection=connection
                )
            if source != COSTS and notes.unavailable(source):
                return SourceOutcome(source, unavailable=True)
            outcome = _sync_source(
                store,
                client,
                source,
                window,
                now,
                connection=connection,
                writer=writer,
                progress=progress,
                notes=notes,
            )
            if outcome.fatal and outcome.error is not None:
                reasons.append(outcome.error)
                ended.set()
            return outcome

        try:
            if window.concurrency <= 1:
                outcomes = [one(source) for source in sources]
            else:
                with ThreadPoolExecutor(window.concurrency, thread_name_prefix="sync") as pool:
                    outcomes = list(pool.map(one, sources))
        finally:
            writer.close()  # every page handed over is written (or the failure raised) first
        report.outcomes.update(zip(sources, outcomes, strict=True))
        _note_new_fields(store, client, connection, notes)
        if report.names_error is None and not ended.is_set():  # after the usage: it matters more
            report.limits_error = refresh_limits(store, client, projects, now, connection)
        # What the backfills left to sum once (also what a killed one left: readers take the
        # six-hour blocks there until then).
        store.settle_blocks()  # the figures stay as they are: no new version
        return report


def refresh_names(
    store: Store,
    client: ProviderClient,
    now: int,
    *,
    concurrency: int = 1,
    connection: str = DEFAULT_CONNECTION,
) -> list[str]:
    """Projects (archived too), every project's keys and the users, upserted: rows of keys and
    projects deleted upstream stay, so history keeps its names. The keys of ``concurrency``
    projects (and the users) are asked for at once. Returns the ids of the projects not
    archived."""
    projects = client.projects()
    with ThreadPoolExecutor(max(1, concurrency), thread_name_prefix="names") as pool:
        users_ = pool.submit(client.users)
        keys = [
            key for keys_ in pool.map(client.api_keys, [p.id for p in projects]) for key in keys_
        ]
        users = users_.result()
    with store.transaction() as conn:
        writes.upsert_projects(conn, connection, projects, now)
        writes.upsert_api_keys(conn, connection, keys, now)
        writes.upsert_users(conn, connection, users, now)
    return [p.id for p in projects if p.archived_at is None]


LIMITS_SECONDS = 900
"""Limits are read at most this often (each project's are a few requests)."""


def refresh_limits(
    store: Store, client: ProviderClient, project_ids: Sequence[str], now: int, connection: str
) -> str | None:
    """The organization's and its projects' limits, in place of those stored, unless read
    less than LIMITS_SECONDS ago. A failure (a key without the scope for them, an outage) is
    noted for health and the page and returned; the limits stored before stay."""
    last = next(
        (r["limits_read_at"] for r in store.connection_rows() if r["name"] == connection), None
    )
    if last is not None and now - last < LIMITS_SECONDS:
        return None
    try:
        limits = client.limits(project_ids)
    except UpstreamError as e:
        words = str(e)
        if isinstance(e, AdminKeyError):  # the key reads usage but may not read limits
            words = (
                f"{client.provider} refused this admin key the limits (HTTP {e.status_code}): "
                "give the key the permission to read them, or leave them unread"
            )
        log.warning("limits not read: %s", words)
        with store.transaction() as conn:
            writes.limits_failed(conn, connection, words)
        return words
    with store.transaction() as conn:
        writes.replace_limits(conn, connection, limits, now)
    return None


def _start(
    store: Store, connection: str, source: str, window: SyncWindow, now: int
) -> tuple[int, bool]:
    """Record the attempt; the time this run fetches from, and whether it backfills."""
    grain = "1d" if source == COSTS else "1h"
    backfill_from = align_down(now, "1d") - window.backfill_days * DAY
    with store.transaction() as conn:
        writes.start_sync_state(conn, connection, source, backfill_from, now)
    state = store.sync_state(source, connection)
    assert state is not None
    resume = int(state["done_until"])
    if window.since is not None:
        since = align_down(window.since, grain)
        # An unfinished backfill is never skipped over: its gap is fetched too.
        if state["backfill_complete"]:
            return since, False
        return min(since, resume), True
    if not state["backfill_complete"]:
        return resume, True  # resume an interrupted backfill where it stopped
    back = window.costs_lookback_days * DAY if source == COSTS else window.lookback_hours * HOUR
    lookback = int(state["done_until"]) - back
    return align_down(max(int(state["backfill_from"]), lookback), grain), False


class _Writer:
    """Writes what the fetching threads hand over, one transaction after another in the order
    handed over, on a thread of its own: the next pages are on their way while earlier ones are
    written, and writers never queue for the database's lock (SQLite writes one at a time
    anyway). Each source's pages are handed over in order, so each watermark stays exact."""

    def __init__(self, store: Store, capacity: int) -> None:
        self._store = store
        self._queue: queue.Queue[
            tuple[Callable[[Connection], object], Callable[[], object]] | None
        ] = queue.Queue(maxsize=capacity)
        self.failure: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="sync-writer", daemon=True)
        self._thread.start()

    def put(self, job: Callable[[Connection], object], then: Callable[[], object]) -> None:
        """Run ``job`` in a transaction of its own, then ``then`` (waits while ``capacity``
        jobs are pending). Raises the failure of an earlier job: fetching more is pointless."""
        if self.failure is not None:
            raise self.failure
        self._queue.put((job, then))

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            if self.failure is not None:
                continue  # drained, not written: the sync ends with the failure
            job, then = item
            try:
                with self._store.transaction() as conn:
                    job(conn)
                then()
            except BaseException as e:  # raised by close(), in the syncing thread
                self.failure = e

    def close(self) -> None:
        """Wait until every job handed over is done; raise the first failure."""
        self._queue.put(None)
        self._thread.join()
        if self.failure is not None:
            raise self.failure


def _sync_source(
    store: Store,
    client: ProviderClient,
    source: str,
    window: SyncWindow,
    now: int,
    *,
    connection: str,
    writer: _Writer,
    progress: Progress | None,
    notes: Notes,
) -> SourceOutcome:
    """Fetch ``source``'s pages and hand them to ``writer``; the outcome's counts are complete
    once the writer is closed. A dimension the API refuses is noted and left out (the source is
    counted without it); a source it does not have (404) is noted, and is no error."""
    outcome = SourceOutcome(source)
    start, backfilling = _start(store, connection, source, window, now)
    end = align_up(now + 1, "1d" if source == COSTS else "1h")
    group_by = None if source == COSTS else notes.group_by(source)

    def page(lo: int, hi: int, rows: list[Any]) -> tuple[Callable[[Connection], object], Any]:
        def job(conn: Connection) -> None:
            outcome.rows += write(conn, lo, hi, rows)
            writes.advance_sync_state(conn, connection, source, hi)

        def then() -> None:
            outcome.pages += 1
            if progress:
                progress(source, hi, start, end)

        return job, then

    while True:
        pages, write = _reader_and_writer(
            client,
            source,
            start,
            end,
            store.prices.estimate,
            connection=connection,
            defer_blocks=backfilling,
            group_by=group_by,
        )
        try:
            for lo, hi, rows in pages:
                writer.put(*page(lo, hi, rows))
        except RefusedDimensionError as e:
            refused = _refused(e, group_by or ())
            if group_by is None or refused is None:
                outcome.error = str(e)
                log.warning("%s: sync stopped: %s", source, e)
                break
            log.warning(
                "%s: OpenAI did not accept group_by %s; counting without it", source, refused
            )
            writer.put(_note(connection, source, "refused_dimension", refused, now), _nothing)
            group_by = tuple(d for d in group_by if d != refused)
            continue
        except SourceNotAvailableError:
            outcome.unavailable = True
            log.info("%s: not available for this organization; asking again in a day", source)
            writer.put(_note(connection, source, "unavailable", "", now), _nothing)
        except UpstreamError as e:
            outcome.error, outcome.fatal = str(e), isinstance(e, ENDS_SYNC)
            log.warning("%s: sync stopped: %s", source, e)
        break
    # Asked in full and answered: what was refused before is accepted now.
    accepted = notes.noted(source, "refused_dimension").intersection(group_by or ())
    was_unavailable = "" in notes.noted(source, "unavailable")

    def finish(conn: Connection) -> None:
        complete = outcome.error is None and not outcome.unavailable
        writes.finish_sync_state(
            conn, connection, source, now, error=outcome.error, backfill_complete=complete
        )
        if complete and was_unavailable:
            writes.forget_upstream_note(conn, connection, source, "unavailable")
        for dimension in accepted if complete else ():
            writes.forget_upstream_note(conn, connection, source, "refused_dimension", dimension)

    def logged() -> None:
        log.info("%s: %d pages, %d rows stored", source, outcome.pages, outcome.rows)

    writer.put(finish, logged)
    return outcome


def _refused(error: RefusedDimensionError, group_by: Sequence[str]) -> str | None:
    """The dimension to leave out: the one the API named, else the newest one asked for."""
    if error.dimension is not None:
        return error.dimension if error.dimension in group_by else None
    return next((d for d in reversed(LATER_DIMENSIONS) if d in group_by), None)


def _note(
    connection: str, source: str, kind: str, detail: str, now: int
) -> Callable[[Connection], object]:
    def job(conn: Connection) -> None:
        writes.note_upstream(conn, source, kind, detail, now, connection=connection)

    return job


def _nothing() -> None:
    pass


def _note_new_fields(store: Store, client: ProviderClient, connection: str, notes: Notes) -> None:
    """Fields the API sent that this version ignores: noted (and logged) once each."""
    if not client.new_fields:
        return
    with store.transaction() as conn:
        for source, fields in sorted(client.new_fields.items()):
            known = notes.noted(source, "new_field")
            for name in sorted(fields):
                if name not in known:
                    log.info("%s: OpenAI sent a field this version ignores: %s", source, name)
                writes.note_upstream(
                    conn, source, "new_field", name, notes.now, connection=connection
                )


Page = tuple[int, int, list[Any]]
Writer = Callable[[Connection, int, int, list[Any]], int]


def _reader_and_writer(
    client: ProviderClient,
    source: str,
    start: int,
    end: int,
    estimate: writes.Estimator,
    *,
    connection: str,
    defer_blocks: bool = False,
    group_by: Sequence[str] | None = None,
) -> tuple[Iterator[Page], Writer]:
    """Upstream pages as (first bucket start, last bucket end, results), and what stores one
    (see ``writes.replace_usage`` for ``defer_blocks``); usage grouped by ``group_by`` (every
    dimension the source has when None)."""
    if source == COSTS:
        cost_pages = (
            (b[0].start_time, b[-1].end_time, [r for x in b for r in x.results])
            for b in client.cost_pages(start, end)
            if b
        )

        def write_costs(conn: Connection, lo: int, hi: int, rows: list[Any]) -> int:
            return writes.replace_costs(conn, lo, hi, rows, connection=connection)

        return cost_pages, write_costs
    usage_pages = (
        (b[0].start_time, b[-1].end_time, [r for x in b for r in x.results])
        for b, _cursor in client.usage_pages(
            source, start, end, bucket_width="1h", group_by=group_by
        )
        if b
    )

    def write(conn: Connection, lo: int, hi: int, rows: list[Any]) -> int:
        return writes.replace_usage(
            conn,
            source,
            lo,
            hi,
            rows,
            estimate=estimate,
            connection=connection,
            defer_blocks=defer_blocks,
        )

    return usage_pages, write


def _record_failure(
    store: Store, source: str, window: SyncWindow, now: int, error: str, *, connection: str
) -> SourceOutcome:
    _start(store, connection, source, window, now)
    with store.transaction() as conn:
        writes.finish_sync_state(
            conn, connection, source, now, error=error, backfill_complete=False
        )
    return SourceOutcome(source, error=error)


def sync_recent(
    store: Store,
    client: ProviderClient,
    *,
    now: int | None = None,
    sources: Sequence[str] | None = None,
    connection: str = DEFAULT_CONNECTION,
) -> SyncReport:
    """Re-fetch the previous and the current hour of every usage source: one request each, so
    that today's figures stay about a minute behind OpenAI between full syncs. Sources whose
    backfill is not complete are left to the full sync (which owns the watermarks)."""
    with store.sync_lock() as held:
        if not held:
            return SyncReport(skipped=True)
        now = int(time.time()) if now is None else now
        start, end = align_down(now, "1h") - HOUR, align_up(now + 1, "1h")
        complete = {
            s["source"]
            for s in store.sync_states()
            if s["backfill_complete"] and s["connection"] == connection
        }
        notes = Notes(store, now, connection)
        report = SyncReport()
        usage = [s for s in client.sources if s != COSTS] if sources is None else sources
        for source in (s for s in usage if s in complete):
            outcome = report.outcomes[source] = SourceOutcome(source)
            try:
                pages, write = _reader_and_writer(
                    client,
                    source,
                    start,
                    end,
                    store.prices.estimate,
                    connection=connection,
                    group_by=notes.group_by(source),
                )
                for lo, hi, rows in pages:
                    with store.transaction() as conn:
                        outcome.rows += write(conn, lo, hi, rows)
                        writes.mark_fresh(conn, connection, source, now)
                    outcome.pages += 1
            except UpstreamError as e:
                outcome.error = str(e)
                log.warning("%s: recent hours not refreshed: %s", source, e)
                if isinstance(e, ENDS_SYNC):
                    break
        return report


@dataclass
class LoopStatus:
    """What the sync loop last went through, for health and the page banner: the failure of
    the last run in plain words (None after a run that completed), and when."""

    error: str | None = None
    failed_at: int | None = None
    last_run_at: int | None = None

    def record(self, error: str | None) -> None:
        now = int(time.time())
        self.last_run_at = now
        self.error, self.failed_at = (error, now) if error else (None, None)


def guarded(run: Callable[[], SyncReport], status: LoopStatus) -> None:
    """Run one sync; a failure of the database or of the program is recorded in ``status`` in
    plain words and logged, never raised."""
    try:
        report = run()
    except StoreUnavailableError as e:
        log.error("sync: %s", e)
        status.record(str(e))
        return
    except Exception as e:
        log.exception("sync failed unexpectedly; will try again")
        status.record(f"The sync failed unexpectedly ({type(e).__name__}); the log has details.")
        return
    for error in report.errors:
        log.warning("sync: %s", error)
    # The sources' failures are in their own sync state; the names' would be nowhere else.
    names = report.names_error
    status.record(
        f"Names of keys, users and projects were not refreshed: {names}" if names else None
    )


def run_forever(
    sync: Callable[[], SyncReport],
    interval_seconds: float,
    stopping: threading.Event,
    *,
    status: LoopStatus | None = None,
    recent: Callable[[], SyncReport] | None = None,
    recent_seconds: float = 60,
    after: Callable[[], object] | None = None,
) -> None:
    """``while not stopping: sync(); sleep``, with ``recent()`` every ``recent_seconds`` in
    between, and ``after()`` (the alerts, which this module never imports) after each of them.
    A run that raises is recorded in ``status`` and logged, never fatal."""
    status = status or LoopStatus()

    def then(run: Callable[[], SyncReport]) -> None:
        guarded(run, status)
        if after is not None:
            after()

    while not stopping.is_set():
        then(sync)
        next_full = time.monotonic() + interval_seconds
        while recent is not None and not stopping.is_set():
            wait = min(recent_seconds, next_full - time.monotonic())
            if wait <= 0 or stopping.wait(wait) or time.monotonic() >= next_full:
                break
            then(recent)
        stopping.wait(max(0.0, next_full - time.monotonic()))
