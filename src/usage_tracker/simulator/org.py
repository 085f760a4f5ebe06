"""A deterministic synthetic organization: its people, projects and keys, and the traffic they make.

Traffic is a list of events, each at a whole minute, generated hour by hour from ``(seed, hour)``
alone, so an hour's events never change when the organization is built with another ``days`` or
when the clock moves on. Every bucket width and grouping a simulated API serves is an aggregation
of these events, and :meth:`Organization.truth` aggregates the same events for tests.
"""

from __future__ import annotations

import math
import random
import threading
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from functools import cached_property

from usage_tracker.providers.openai.contract import SOURCES, WIDTH_SECONDS
from usage_tracker.providers.records import DIMENSIONS
from usage_tracker.simulator.company import (
    DAY,
    HOSTILE_KEY_NAMES,
    HOSTILE_PROJECT_NAMES,
    HOSTILE_USER_NAMES,
    HOUR,
    PEOPLE_NAMES,
    PROJECT_NAMES,
    CostLine,
    Dims,
    Event,
    SimKey,
    SimProject,
    SimUser,
    ident,
)
from usage_tracker.simulator.scale import (
    Size,
    created_before,
    key_models,
    key_weight,
    model_catalogue,
)
from usage_tracker.simulator.stops import Stops
from usage_tracker.simulator.traffic import (
    CHAT_MODELS,
    DECISIONS_RATE,
    MAKERS,
    RATES,
    UNIT_PRICES,
    completion,
    decision,
    dims_of,
    micros,
    poisson,
)


@dataclass
class Organization:
    """The synthetic organization. ``clock`` gives "now"; traffic exists from ``start`` to now.

    ``late_hours``/``revision``: when ``late_hours`` > 0, events in the last ``late_hours`` hours
    before now are reported incomplete (half at revision 0, three quarters at 1, whole from 2),
    usage and billed cost alike, so a later request sees the recent hours revised upward, as
    OpenAI's late data and late-settling costs are.
    """

    seed: int = 1
    days: int = 90
    clock: Callable[[], float] = field(default=lambda: 0.0)
    late_hours: int = 0
    revision: int = 0
    size: Size | None = None
    """A benchmark organization of this size instead of the small hand-written one."""
    hostile_names: bool = False
    """Names as a hostile member of the organization would choose them (see
    :data:`HOSTILE_KEY_NAMES`): formulas, markup, escape sequences, duplicates."""
    users: list[SimUser] = field(init=False)
    projects: dict[str, SimProject] = field(init=False)
    keys: list[SimKey] = field(init=False)
    start: int = field(init=False)
    leaks: dict[int, list[tuple[str, int]]] = field(init=False, default_factory=dict)
    """Scenario bursts (see :meth:`leak`): hour → (key id, extra completions)."""
    stops: Stops = field(init=False, default_factory=Stops)
    """What an admin has stopped through the API (keys paused, project limits written)."""
    _hours: dict[int, tuple[Event, ...]] = field(init=False, default_factory=dict)
    _lock: threading.Lock = field(init=False, default_factory=threading.Lock)

    def __post_init__(self) -> None:
        anchor = int(self.clock())
        self.start = anchor - anchor % DAY - self.days * DAY
        rng = random.Random(f"org:{self.seed}")
        if self.size is not None:
            self._build_scaled(rng, self.size)
            return
        self._build_people(rng)
        self._build_projects(rng, anchor)
        self._build_keys(rng, anchor)
        if self.hostile_names:
            self._rename_hostile()

    @property
    def now(self) -> int:
        return int(self.clock())

    def revise(self) -> None:
        """Report the late hours more completely from now on (see the class docstring)."""
        self.revision += 1

    def leak(self, key_name: str, at: int, requests: int) -> SimKey:
        """Scenario: the key named ``key_name`` makes ``requests`` more completions in the hour
        that holds ``at``, as a leaked key would."""
        key = next(k for k in self.keys if k.name == key_name)
        hour = at - at % HOUR
        with self._lock:
            self.leaks.setdefault(hour, []).append((key.id, requests))
            self._hours.pop(hour, None)
        return key

    def _build_scaled(self, rng: random.Random, size: Size) -> None:
        self.users = [
            SimUser(
                id=ident(rng, "user-", 24),
                name=f"User {i:03d}",
                email=f"user{i:03d}@example.com",
                role="owner" if i == 0 else "reader",
                added_at=self.start - rng.randrange(30, 400) * DAY,
            )
            for i in range(size.users)
        ]
        self.projects = {}
        for i in range(size.projects):
            pid = ident(rng, "proj_", 24)
            stores = (ident(rng, "vs_", 24),)
            self.projects[pid] = SimProject(
                pid, f"Project {i:02d}", self.start - rng.randrange(60, 600) * DAY, None, stores
            )
        pids = list(self.projects)
        catalogue = model_catalogue(CHAT_MODELS, size.models)
        self.keys = []
        for i in range(size.keys):
            service = i % 10 == 9
            user = self.users[i % size.users]
            self.keys.append(
                SimKey(
                    id=ident(rng, "key_", 16),
                    name=f"key-{i:03d}",
                    project_id=pids[i % size.projects],
                    owner_type="service_account" if service else "user",
                    owner_id=ident(rng, "svc_", 24) if service else user.id,
                    owner_name=f"service-{i:03d}" if service else user.name,
                    owner_email=None if service else user.email,
                    created_at=created_before(rng, self.start),
                    deleted_at=None,
                    owner_has_access=True,
                    models=key_models(rng, catalogue),
                    sources=frozenset(SOURCES),
                    weight=key_weight(rng),
                )
            )

    # -- structure --------------------------------------------------------------------------

    def _build_people(self, rng: random.Random) -> None:
        self.users = []
        for i, name in enumerate(PEOPLE_NAMES):
            first, last = name.lower().split(" ", 1)
            self.users.append(
                SimUser(
                    id=ident(rng, "user-", 24),
                    name=name,
                    email=f"{first}.{last.replace(' ', '')}@example.com",
                    role="owner" if i == 0 else "reader",
                    added_at=self.start - rng.randrange(30, 400) * DAY,
                )
            )

    def _build_projects(self, rng: random.Random, anchor: int) -> None:
        self.projects = {}
        for i, name in enumerate(PROJECT_NAMES):
            pid = ident(rng, "proj_", 24)
            archived = None
            if name == "Legacy Chat":
                archived = self.start + int(self.days * 0.7) * DAY + 13 * HOUR
            stores = tuple(ident(rng, "vs_", 24) for _ in range(1 + i % 2))
            self.projects[pid] = SimProject(
                pid, name, self.start - rng.randrange(60, 600) * DAY, archived, stores
            )

    def _build_keys(self, rng: random.Random, anchor: int) -> None:
        pids = list(self.projects)
        all_sources = frozenset(SOURCES)
        small = ("gpt-5-mini", "gpt-5-nano", "gpt-4.1-mini", "gpt-4.1-nano", "gpt-4o-mini")
        big = ("gpt-5", "gpt-5-2025-08-07", "gpt-4.1", "gpt-4o-2024-08-06", "o3")
        plans: list[tuple[int, int | None, str, tuple[str, ...], frozenset[str], float]] = [
            # (owner user index or -1 for a service account, deleted, name, models, sources, weight)
            (0, None, "jane-laptop", small + big[:2], all_sources, 3.0),
            (1, None, "arjun-research", ("o3", "o4-mini", "gpt-5", "o1-pro"), all_sources, 2.0),
            (
                2,
                None,
                "mei-dev",
                ("gpt-4.1-mini", "gpt-4.1", "codex-mini-latest"),
                all_sources,
                2.0,
            ),
            (3, None, "lucas-support", ("gpt-4o-mini", "gpt-4o-2024-08-06"), all_sources, 1.5),
            (4, None, "fatima-eval", ("gpt-5-pro", "gpt-5", "gpt-5-nano"), all_sources, 1.0),
            (
                5,
                None,
                "tom-finetune",
                ("ft:gpt-4o-mini-2024-07-18:acme::Bx7kQ2",),
                all_sources,
                1.0,
            ),
            (6, None, "sofia-voice", ("gpt-realtime", "gpt-4o-mini"), all_sources, 1.0),
            (7, -1, "kwame-old-key", ("gpt-4o-mini", "gpt-4.1-nano"), all_sources, 1.0),
            (-1, None, "ingest-service", ("gpt-5-nano", "gpt-4.1-nano"), all_sources, 2.5),
            (-1, None, "ci-bot", ("gpt-5-mini", "codex-mini-latest"), all_sources, 1.0),
            (0, None, "jane-legacy", ("gpt-4o-mini",), frozenset({"completions"}), 1.0),
            (2, None, "mei-batch", ("gpt-4.1-mini", "gpt-5-mini"), all_sources, 1.0),
        ]
        self.keys = []
        for i, (owner, deleted, name, models, sources, weight) in enumerate(plans):
            legacy = name == "jane-legacy"
            pid = pids[4] if legacy else pids[i % 4]
            if owner >= 0:
                u = self.users[owner]
                otype, oid, oname, oemail = "user", u.id, u.name, u.email
            else:
                otype, oid, oname, oemail = "service_account", ident(rng, "svc_", 24), name, None
            created = self.start - rng.randrange(1, 200) * DAY
            if name == "mei-batch":
                created = self.start + (self.days // 3) * DAY
            deleted_at = None if deleted is None else self.start + int(self.days * 0.6) * DAY
            self.keys.append(
                SimKey(
                    id=ident(rng, "key_", 16),
                    name=name,
                    project_id=pid,
                    owner_type=otype,
                    owner_id=oid,
                    owner_name=oname,
                    owner_email=oemail,
                    created_at=created,
                    deleted_at=deleted_at,
                    owner_has_access=name != "sofia-voice",
                    models=models,
                    sources=sources,
                    weight=weight,
                )
            )

    def _rename_hostile(self) -> None:
        """Every key, user and project renamed as strangers may name them; ids, emails and
        traffic stay as they were."""
        import dataclasses

        self.users = [
            dataclasses.replace(u, name=HOSTILE_USER_NAMES[i % len(HOSTILE_USER_NAMES)])
            for i, u in enumerate(self.users)
        ]
        by_id = {u.id: u.name for u in self.users}
        self.keys = [
            dataclasses.replace(
                k,
                name=HOSTILE_KEY_NAMES[i % len(HOSTILE_KEY_NAMES)],
                owner_name=by_id.get(k.owner_id, HOSTILE_KEY_NAMES[i % len(HOSTILE_KEY_NAMES)]),
            )
            for i, k in enumerate(self.keys)
        ]
        self.projects = {
            pid: dataclasses.replace(p, name=HOSTILE_PROJECT_NAMES[i % len(HOSTILE_PROJECT_NAMES)])
            for i, (pid, p) in enumerate(self.projects.items())
        }

    # -- traffic ----------------------------------------------------------------------------

    def events(self, t0: int, t1: int) -> Iterator[Event]:
        """Every event with ``t0 <= ts < min(t1, now)``, as reported now (late data applied)."""
        now = self.now
        t1 = min(t1, now)
        hour = max(t0, self.start)
        hour -= hour % HOUR
        late_from = now - self.late_hours * HOUR if self.late_hours else now
        while hour < t1:
            for event in self._hour(hour):
                if t0 <= event.ts < t1 and not self.stops.refuses(event, self.generated):
                    yield self._as_reported(event) if event.ts >= late_from else event
            hour += HOUR

    def generated(self, t0: int, t1: int) -> Iterator[Event]:
        """Every event the traffic makes in [t0, t1), before any stop, as it finally is."""
        hour = max(t0, self.start)
        hour -= hour % HOUR
        while hour < t1:
            yield from (e for e in self._hour(hour) if t0 <= e.ts < t1)
            hour += HOUR

    def _as_reported(self, event: Event) -> Event:
        quarters = min(4, 2 + self.revision)
        if quarters == 4:
            return event
        metrics = tuple((k, v * quarters // 4) for k, v in event.metrics)
        # Billed cost settles late as well: the same share of each line item is reported.
        costs = tuple(
            CostLine(c.line_item, c.micros * quarters // 4, c.quantity * quarters // 4, c.unit)
            for c in event.costs
        )
        return Event(event.source, event.ts, event.dims, metrics, costs, event.complimentary)

    def _hour(self, hour: int) -> tuple[Event, ...]:
        cached = self._hours.get(hour)
        if cached is None:
            cached = tuple(sorted(self._generate(hour), key=lambda e: e.ts))
            with self._lock:
                self._hours[hour] = cached
        return cached

    @cached_property
    def _rates(self) -> dict[str, float]:
        if self.size is None:
            return RATES
        # Completions at the chosen rows per hour on average over a week's rhythm.
        week = [self._activity(h * HOUR) for h in range(7 * 24)]
        return {**RATES, "completions": self.size.rows_per_hour * len(week) / sum(week)}

    def _activity(self, hour: int) -> float:
        hod = (hour % DAY) // HOUR
        weekday = (hour // DAY + 3) % 7  # 1970-01-01 was a Thursday; Monday is 0
        daily = 0.12 + 0.88 * math.exp(-(((hod - 16) / 4.5) ** 2))
        return daily * (0.3 if weekday >= 5 else 1.0)

    def _generate(self, hour: int) -> Iterable[Event]:
        rng = random.Random(f"{self.seed}:{hour}")
        active = [k for k in self.keys if k.active(hour, self.projects)]
        activity = self._activity(hour)
        for source, rate in self._rates.items():
            keys = [k for k in active if source in k.sources]
            if not keys:
                continue
            weights = [k.weight for k in keys]
            for _ in range(poisson(rng, rate * activity)):
                key = rng.choices(keys, weights)[0]
                ts = hour + rng.randrange(60) * 60
                yield MAKERS[source](self, rng, key, ts)
        if hour % DAY == 0:
            yield from self._vector_store_samples(rng, hour)
        # A source added later draws from a generator of its own: the others stay as they were.
        later = random.Random(f"{self.seed}:{hour}:decisions")
        keys = [k for k in active if "decisions" in k.sources]
        for _ in range(poisson(later, DECISIONS_RATE * activity) if keys else 0):
            key = later.choices(keys, [k.weight for k in keys])[0]
            yield decision(self, later, key, hour + later.randrange(60) * 60)
        for key_id, requests in self.leaks.get(hour, ()):
            key = next(k for k in self.keys if k.id == key_id)
            for _ in range(requests):
                yield completion(self, rng, key, hour + rng.randrange(60) * 60)

    def _vector_store_samples(self, rng: random.Random, hour: int) -> Iterable[Event]:
        for project in self.projects.values():
            if project.archived_at is not None and hour >= project.archived_at:
                continue
            size = rng.randrange(50, 5000) * 1_000_000
            cost = CostLine(
                "vector store storage",
                micros(size / 1e9, UNIT_PRICES["vector_store_gb_day"]),
                size,
                "",  # bytes have no unit in the contract's list; quantity_unit stays null
            )
            yield Event(
                "vector_stores",
                hour,
                dims_of(project_id=project.id),
                (("usage_bytes", size),),
                (cost,),
            )

    # -- ground truth -----------------------------------------------------------------------

    def truth(
        self,
        source: str,
        start: int,
        end: int,
        group_by: Sequence[str] = (),
        *,
        bucket_width: str | None = None,
    ) -> dict[tuple[object, ...], dict[str, int]]:
        """Totals of ``source`` in [start, end), keyed by the ``group_by`` values (bucket first)."""
        totals: dict[tuple[object, ...], dict[str, int]] = defaultdict(
            lambda: dict.fromkeys(SOURCES[source].metrics, 0)
        )
        for event in self.events(start, end):
            if event.source != source:
                continue
            key = _group_key(event.dims, group_by)
            if bucket_width:
                step = WIDTH_SECONDS[bucket_width]
                key = (event.ts - event.ts % step, *key)
            row = totals[key]
            for name, value in event.metrics:
                row[name] += value
        return dict(totals)

    def cost_truth(
        self, start: int, end: int, group_by: Sequence[str] = ()
    ) -> dict[tuple[object, ...], Decimal]:
        """Billed USD in [start, end) by ``group_by`` among project_id, line_item, api_key_id."""
        micros: dict[tuple[object, ...], int] = defaultdict(int)
        for event, line in self.cost_lines(start, end):
            values = {
                "project_id": event.dims[0],
                "api_key_id": event.dims[2],
                "line_item": line.line_item,
            }
            micros[tuple(values[g] for g in group_by)] += line.micros
        return {k: Decimal(v) / 1_000_000 for k, v in micros.items()}

    def cost_lines(self, start: int, end: int) -> Iterator[tuple[Event, CostLine]]:
        for event in self.events(start, end):
            if not event.complimentary:
                for line in event.costs:
                    yield event, line


def _group_key(dims: Dims, group_by: Sequence[str]) -> tuple[object, ...]:
    return tuple(dims[DIMENSIONS.index(g)] for g in group_by)
