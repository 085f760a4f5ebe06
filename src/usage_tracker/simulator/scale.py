"""Organizations of a chosen size, for benchmarks: so many keys, users, projects and models, and
about so many stored hourly rows per hour of completions. Deterministic from the seed, like the
small organization (whose people and keys are written out by hand in :mod:`.org`)."""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

DAY = 86400
DATED = re.compile(r"-2026-\d\d-\d\d$")


@dataclass(frozen=True, slots=True)
class Size:
    keys: int = 200
    users: int = 50
    projects: int = 10
    models: int = 30
    rows_per_hour: int = 60
    """Completion rows an hour holds on average (an hour's distinct key × model × tier × batch)."""

    def __post_init__(self) -> None:
        if min(self.keys, self.users, self.projects, self.models, self.rows_per_hour) < 1:
            raise ValueError("every size must be at least 1")


def model_catalogue(chat_models: tuple[str, ...], n: int) -> tuple[str, ...]:
    """``n`` chat models: the known ones, then dated snapshots of them (priced as their base)."""
    models = list(chat_models[:n])
    i = 0
    while len(models) < n:
        base = chat_models[i % len(chat_models)]
        models.append(f"{base}-2026-{1 + i // 28 % 12:02d}-{1 + i % 28:02d}")
        i += 1
    return tuple(models)


def base_model(model: str) -> str:
    """The model a dated snapshot of :func:`model_catalogue` is priced as."""
    return DATED.sub("", model)


def key_models(rng: random.Random, catalogue: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(rng.sample(catalogue, min(len(catalogue), rng.randint(2, 6))))


def key_weight(rng: random.Random) -> float:
    """A few heavy keys and a long tail, as in real organizations."""
    return round(rng.lognormvariate(0.0, 1.0), 3)


def created_before(rng: random.Random, start: int) -> int:
    return start - rng.randrange(1, 200) * DAY
