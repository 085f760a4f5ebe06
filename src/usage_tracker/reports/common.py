"""What every report shares: the groupings and the stored column each reads, the error a report
raises, names for display, and the fold of stored rows into groups."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping, Sequence
from operator import add, itemgetter, methodcaller
from typing import Any

from usage_tracker.people.names import Mappings, Names
from usage_tracker.store import Store
from usage_tracker.store.folded import Sums
from usage_tracker.store.schema import from_stored

DAY, HOUR = 86400, 3600

GROUPINGS: dict[str, str] = {
    "connection": "connection",
    "person": "api_key_id",
    "team": "api_key_id",
    "api_key": "api_key_id",
    "user": "user_id",
    "project": "project_id",
    "model": "model",
    "source": "source",
    "service_tier": "service_tier",
    "batch": "batch",
    "day": "day",
    "hour": "hour",
}
"""Report groupings and the stored column each reads. ``person`` merges the keys that map to
the same display name; ``team`` the keys of one team."""


class ReportError(ValueError):
    """A report was asked for something it cannot answer (the message says which and why)."""

    def __init__(self, message: str, param: str | None = None, *, status: int = 400) -> None:
        super().__init__(message)
        self.param = param
        self.status = status
        """400: the request cannot be answered; 404: what it names does not exist."""


def load_names(store: Store, mapping: Mappings | Mapping[str, str] | None = None) -> Names:
    """Names as stored, with the mapping file's (its names and teams; or names alone)."""
    found = mapping if isinstance(mapping, Mappings) else Mappings(names=dict(mapping or {}))
    said = store.person_teams()
    page = {r["who"]: r["team"] for r in said if r["source"] == "page"}
    teams = dataclasses.replace(
        found.teams,
        people={**found.teams.people, **page},
        emails={r["who"]: r["team"] for r in said if r["source"] == "oidc"},
    )
    return Names(
        keys={k["id"]: k for k in store.api_keys()},
        users={u["id"]: u for u in store.users()},
        projects={p["id"]: p for p in store.projects()},
        mapping=found.names,
        owners=store.key_owners(),
        connections=store.connections(),
        teams=teams,
    )


def _label(names: Names, grouping: str, value: Any) -> Any:
    return _labeller(names, grouping)(value)


def _labeller(names: Names, grouping: str) -> Callable[[Any], Any]:
    """How a stored value of ``grouping`` is labelled (chosen once per fold, not per row)."""
    if grouping == "person":
        return names.person
    if grouping == "team":
        return names.team
    if grouping in ("day", "hour"):
        return lambda value: value
    if grouping == "batch":
        return lambda value: from_stored("batch", value)
    return lambda value: value or None


def series_label(names: Names, stack: str, value: Any) -> str:
    """A chart series' label: a key by its name and the end of its id (names repeat: three
    keys may all be called "default")."""
    if stack == "api_key":
        return f"{names.key(value or '')} ({value[-4:]})" if value else names.key("")
    return str(_label(names, stack, value) or "(none)")


def _displayer(names: Names, grouping: str) -> Callable[[str], str] | None:
    """How a value of ``grouping`` is named for display (None: it is its own name)."""
    return {"api_key": names.key, "user": names.user, "project": names.project}.get(grouping)


def check_range(start: int, end: int) -> None:
    if start % HOUR or end % HOUR or end <= start:
        raise ReportError("the range must be whole UTC hours with start before end")


def fold(
    names: Names,
    rows: Iterable[Mapping[str, Any]] | Sums,
    group_by: Sequence[str],
    metrics: Sequence[str],
    *,
    connection: bool = False,
) -> list[dict[str, Any]]:
    """Stored rows (dicts, or the lists of :class:`~usage_tracker.store.folded.Sums`) summed
    per report grouping (several keys may be one person); with ``connection``, each with the
    connection its rows came from (None when several)."""
    each: Iterable[Any]
    if isinstance(rows, Sums):  # each row a list: its places named by the columns
        at: Mapping[str, Any] = {c: i for i, c in enumerate(rows.columns)}
        of_connection: Callable[[Any], Any] = itemgetter(0)
        each = rows.rows
    else:
        at, of_connection, each = _SAME, methodcaller("get", "connection"), rows
    columns = [at[GROUPINGS[g]] for g in group_by]
    labellers = [_labeller(names, g) for g in group_by]
    displays = [
        (f"{g}_name", c, shown)
        for g, c in zip(group_by, columns, strict=True)
        if (shown := _displayer(names, g))
    ]
    pick = _picker([at[m] for m in metrics])
    # Per key: the first row, the sums once a second row came, and the connection of them all
    # (most keys have one row: their sums are read from it, once).
    merged: dict[tuple[Any, ...], list[Any]] = {}
    key_of = _key_of(labellers, columns)
    for row in each:
        key = key_of(row)
        found = merged.get(key)
        if found is None:
            merged[key] = [row, None, of_connection(row)]
            continue
        first, sums, of = found
        found[1] = list(map(add, pick(first) if sums is None else sums, pick(row)))
        if of != of_connection(row):
            found[2] = None
    result = []
    for key, (first, sums, of) in merged.items():
        head = dict(zip(group_by, key, strict=True))
        for field_, c, shown in displays:
            head[field_] = shown(first[c] or "")
        head.update(zip(metrics, pick(first) if sums is None else sums, strict=True))
        if connection:
            head["connection"] = of
        head["tokens"] = head["input_tokens"] + head["output_tokens"]
        result.append(head)
    if group_by and group_by[0] in ("day", "hour"):
        return sorted(result, key=lambda r: r[group_by[0]])
    # Ties (sources without tokens…) in the order of their labels, whatever the rows' order.
    return sorted(
        result,
        key=lambda r: (
            -r["tokens"],
            -r.get("num_model_requests", 0),
            [str(r[g]) for g in group_by],
        ),
    )


class _Same(dict[str, str]):
    """Names as their own places (a dict row is read by name)."""

    def __missing__(self, name: str) -> str:
        return name


_SAME = _Same()


def _key_of(
    labellers: Sequence[Callable[[Any], Any]], columns: Sequence[Any]
) -> Callable[[Any], tuple[Any, ...]]:
    """A row's key in a fold: its label in each grouping (one grouping, most folds: at once)."""
    if len(columns) == 1:
        (label,), (column,) = labellers, columns
        return lambda row: (label(row[column]),)
    pairs = list(zip(labellers, columns, strict=True))
    return lambda row: tuple([label(row[c]) for label, c in pairs])


def _picker(places: Sequence[Any]) -> Callable[[Any], tuple[Any, ...]]:
    """A row's values at ``places`` (names of a dict's, or a list's indices), as a tuple."""
    if len(places) == 1:  # an itemgetter of one gives the value alone
        only = places[0]
        return lambda row: (row[only],)
    return itemgetter(*places)


def connections_where(
    names: Names, connection: str | None, provider: str | None
) -> dict[str, list[str]] | None:
    """The usage filter of ``?connection=`` and ``?provider=`` (None: every connection)."""
    if connection is None and provider is None:
        return None
    known = names.connections
    if connection is not None and connection not in known:
        listed = ", ".join(sorted(known)) or "none yet"
        raise ReportError(
            f"Invalid value for 'connection': no connection named {connection!r} has stored "
            f"data (known: {listed}).",
            "connection",
            status=404,
        )
    picked = [
        name
        for name, of in sorted(known.items())
        if (connection is None or name == connection) and (provider is None or of == provider)
    ]
    return {"connection": picked or ["-"]}
