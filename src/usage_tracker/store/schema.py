"""The database schema (SQLAlchemy Core). Changes to it go through an Alembic migration.

Dimensions that do not apply, or were null upstream, are stored as ``""`` rather than NULL: both
SQLite and PostgreSQL treat NULLs as distinct in a unique key, which would let a re-synced bucket
be stored twice. Amounts are stored as whole multiples of a small unit (see :class:`Scaled`) so
that sums are exact on both backends.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.sql.expression import false

from usage_tracker.providers.records import DIMENSIONS, METRICS

metadata = MetaData(
    naming_convention={
        "pk": "pk_%(table_name)s",
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    }
)

USAGE_DIMENSIONS = tuple("image_source" if d == "source" else d for d in DIMENSIONS)
"""Stored dimension columns: the contract's, with the images endpoint's ``source`` field stored as
``image_source`` (``source`` is the column naming the usage endpoint)."""

STORED_AS = dict(zip(DIMENSIONS, USAGE_DIMENSIONS, strict=True))
"""Contract dimension -> stored column."""


def to_stored(value: str | bool | None) -> str:
    """A dimension's value as stored: absent as "", booleans (batch) as "true" / "false"."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return value


def from_stored(column: str, stored: str) -> str | bool | None:
    """The inverse of :func:`to_stored` for the value of ``column``."""
    if column == "batch":
        return {"true": True, "false": False}.get(stored)
    return stored or None


class Scaled(TypeDecorator[Decimal]):
    """A Decimal stored as an integer count of 10^-places units: exact sums on SQLite too
    (whose NUMERIC is a float). With 10 places, 64 bits hold sums up to 922 million dollars."""

    impl = BigInteger
    cache_ok = True

    def __init__(self, places: int) -> None:
        super().__init__()
        self._unit = Decimal(10) ** places

    def process_bind_param(self, value: Decimal | None, dialect: Dialect) -> int | None:
        return None if value is None else int((value * self._unit).to_integral_value())

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        return None if value is None else self.from_units(value)

    def from_units(self, units: Any) -> Decimal:
        """The amount ``units`` (as stored, or a sum of them) stand for."""
        return Decimal(int(units)) / self._unit


DEFAULT_CONNECTION = "openai"
"""The connection of an installation with one OpenAI admin key (OPENAI_ADMIN_KEY), and of every
row stored before connections existed."""


def _connection(primary_key: bool = True) -> Column[Any]:
    """The connection a row came from: the outermost part of every stored key."""
    return Column("connection", String(100), primary_key=primary_key)


# The large tables (usage, costs and their folded blocks) are stored in the order of their key
# on SQLite (sqlite_with_rowid=False: WITHOUT ROWID): their key is most of each row, and a
# table with a rowid keeps it twice (the table, and the index of its key).


def _usage_table() -> Table:
    dimensions = [Column(d, String(200)) for d in USAGE_DIMENSIONS]
    return Table(
        "usage",
        metadata,
        _connection(primary_key=False),
        Column("source", String(40)),
        Column("bucket_start", BigInteger),
        *dimensions,
        *(Column(m, BigInteger, nullable=False, server_default="0") for m in METRICS),
        *_estimate_columns(),
        # The hour first: reads of a range of hours find them by the key, in its order.
        PrimaryKeyConstraint("bucket_start", "connection", "source", *USAGE_DIMENSIONS),
        sqlite_with_rowid=False,
    )


def _estimate_columns() -> list[Column[Any]]:
    return [
        Column("estimated_usd", Scaled(10), nullable=False, server_default="0"),
        Column("unpriced_tokens", BigInteger, nullable=False, server_default="0"),
    ]


ESTIMATES = ("estimated_usd", "unpriced_tokens")
"""Stored with every usage row when it is written: its cost at the list prices of its UTC day,
and its tokens when the model has no list price (the estimate then leaves them out)."""

usage = _usage_table()
"""One row per 1h bucket and combination of every dimension the source allows."""

FOLDED = {
    "connection": "connection",
    "api_key": "api_key_id",
    "user": "user_id",
    "project": "project_id",
    "model": "model",
    "source": "source",
}
"""The groupings kept folded (report grouping -> stored column): what the summary shows."""

BLOCK_HOURS = (6, 24)
"""The lengths, in hours, of the folded blocks: a quarter of a UTC day and a day. A block starts
at a multiple of its length since 1970; a range longer than a few days reads its whole days as
the difference of two days' running totals (:data:`usage_running`)."""


WEEK_HOURS = 7 * 24
"""The length of usage_folded's week blocks: Monday to Monday, UTC, each summed from its days.
Not one of the aligned blocks of any range: only a long range's chart (a bar per week) reads
them, a row per week and key instead of seven."""


def _value_key(value_length: int) -> list[Column[Any]]:
    """The end of a folded row's key: a grouping, a value, and the connection (last: reads
    across every connection find their rows by the rest)."""
    return [
        Column("grouping", String(20), primary_key=True),
        Column("value", String(value_length), primary_key=True),
        _connection(),
    ]


def _block_key(value_length: int) -> list[Column[Any]]:
    """A folded row's key: the block (its length in hours, its start), then a value's."""
    return [
        Column("hours", Integer, primary_key=True),
        Column("start", BigInteger, primary_key=True),
        *_value_key(value_length),
    ]


def _usage_sums() -> list[Column[Any]]:
    """What a folded row of usage sums: every counter and the estimates."""
    counters = [Column(m, BigInteger, nullable=False, server_default="0") for m in METRICS]
    return [*counters, *_estimate_columns()]


usage_folded = Table(
    "usage_folded",
    metadata,
    *_block_key(200),
    *_usage_sums(),
    sqlite_with_rowid=False,
)
"""The usage summed per grouping alone (about 300 rows for 200 keys) over blocks of
:data:`BLOCK_HOURS`, and over weeks (:data:`WEEK_HOURS`). Kept in the same transaction as each
write: the six-hour blocks by the difference the write made, the longer ones summed again from
the blocks they hold."""

Index(
    "ix_usage_folded_value",
    usage_folded.c.grouping,
    usage_folded.c.value,
    usage_folded.c.hours,
    usage_folded.c.start,
    # What a chart counts (``reports.charts.TOKENS``): its days read from the index alone.
    usage_folded.c.input_tokens,
    usage_folded.c.output_tokens,
)

COSTS_FOLDED = {
    "connection": "connection",
    "api_key": "api_key_id",
    "project": "project_id",
    "line_item": "line_item",
}
"""The groupings of billed cost kept folded (the summary's per key, project and model)."""

costs_folded = Table(
    "costs_folded",
    metadata,
    *_block_key(300),
    Column("amount", Scaled(10), nullable=False),
    sqlite_with_rowid=False,
)
"""Billed cost summed per grouping alone over UTC days (blocks of 24 hours)."""

Index("ix_costs_folded_days", costs_folded.c.grouping, costs_folded.c.hours, costs_folded.c.start)


def _running_key(value_length: int) -> list[Column[Any]]:
    """A running total's key: the day it runs up to (first: a read takes a day's rows), then a
    value's."""
    return [Column("day", BigInteger, primary_key=True), *_value_key(value_length)]


usage_running = Table(
    "usage_running",
    metadata,
    *_running_key(200),
    *_usage_sums(),
    sqlite_with_rowid=False,
)
"""usage_folded's day blocks added up per grouping, value and connection: each row holds what
its value was used before the UTC day ``day`` starts. Every day has a row of every value used
before it, up to the day after the last day stored, so that any run of whole days is the row
at its end less the row at its start (a year of three large connections: about 1,500 rows read,
where its longest blocks were 9,500)."""

costs_running = Table(
    "costs_running",
    metadata,
    *_running_key(300),
    Column("amount", Scaled(10), nullable=False),
    sqlite_with_rowid=False,
)
"""costs_folded's day blocks added up the same way."""

store_state = Table(
    "store_state",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("data_version", BigInteger, nullable=False, server_default="0"),
    Column("prices", Text, nullable=False, server_default=""),
    Column("blocks_from", BigInteger),
    Column("blocks_until", BigInteger),
)
"""One row: ``data_version`` goes up with every write that changes what a report shows (what
cached results are keyed by; taking its row lock also puts writers of the rollups in line),
``prices`` names the prices the stored estimates were made with, and [``blocks_from``,
``blocks_until``) is where usage_folded's blocks longer than six hours, and the running totals
from there on, are not yet summed again (a first backfill sums them once at its end; readers take
six-hour blocks there, and no running totals)."""

costs = Table(
    "costs",
    metadata,
    _connection(primary_key=False),
    Column("day", BigInteger),
    Column("project_id", String(200)),
    Column("line_item", String(300)),
    Column("api_key_id", String(200)),
    Column("amount", Scaled(10), nullable=False),
    Column("currency", String(10), nullable=False),
    Column("quantity", Scaled(6)),
    Column("quantity_unit", String(40)),
    PrimaryKeyConstraint("day", "connection", "project_id", "line_item", "api_key_id"),
    sqlite_with_rowid=False,
)

projects = Table(
    "projects",
    metadata,
    _connection(),
    Column("id", String(200), primary_key=True),
    Column("name", Text),
    Column("created_at", BigInteger),
    Column("archived_at", BigInteger),
    Column("status", String(40)),
    Column("last_seen_at", BigInteger, nullable=False),
)

api_keys = Table(
    "api_keys",
    metadata,
    _connection(),
    Column("id", String(200), primary_key=True),
    Column("project_id", String(200), nullable=False),
    Column("name", Text),
    Column("redacted_value", String(100)),
    Column("created_at", BigInteger),
    Column("last_used_at", BigInteger),
    Column("owner_type", String(40)),
    Column("owner_id", String(200)),
    Column("owner_name", Text),
    Column("owner_email", Text),
    Column("last_seen_at", BigInteger, nullable=False),
)
"""Keys as last seen upstream; rows stay after a key is deleted so history keeps its name."""

users = Table(
    "users",
    metadata,
    _connection(),
    Column("id", String(200), primary_key=True),
    Column("name", Text),
    Column("email", Text),
    Column("role", String(40)),
    Column("last_seen_at", BigInteger, nullable=False),
)

sync_state = Table(
    "sync_state",
    metadata,
    _connection(),
    Column("source", String(40), primary_key=True),
    Column("backfill_from", BigInteger, nullable=False),
    Column("done_until", BigInteger, nullable=False),
    Column("backfill_complete", Boolean, nullable=False, server_default=false()),
    Column("last_attempt_at", BigInteger),
    Column("last_success_at", BigInteger),
    Column("last_error", Text),
    Column("runs", Integer, nullable=False, server_default="0"),
)
"""Per connection and source (and ``costs``): everything in [backfill_from, done_until) is
stored."""

upstream_notes = Table(
    "upstream_notes",
    metadata,
    _connection(),
    Column("source", String(40), primary_key=True),
    Column("kind", String(40), primary_key=True),
    Column("detail", String(200), primary_key=True),
    Column("noted_at", BigInteger, nullable=False),
)
"""What a connection's provider told us about itself, per source, and when it was last checked:
``refused_dimension`` (a ``group_by`` value it rejected: fetched without it), ``unavailable``
(404: the organization has no such source), ``new_field`` (a field this version ignores)."""

limits = Table(
    "limits",
    metadata,
    _connection(),
    Column("kind", String(20), primary_key=True),
    Column("project_id", String(100), primary_key=True),
    Column("ident", String(200), primary_key=True),
    Column("amount_usd", Scaled(10)),
    Column("interval", String(20)),
    Column("enforcing", Boolean),
    Column("model", String(200)),
    Column("figures", Text),
    Column("read_at", BigInteger, nullable=False),
)
"""The limits each connection's provider reported at ``read_at`` (replaced whole on each read):
``spend_limit``, ``spend_alert`` and ``rate_limit`` (``figures``: its maxima as JSON), of the
organization (``project_id`` "") or of a project."""

connections = Table(
    "connections",
    metadata,
    Column("name", String(100), primary_key=True),
    Column("provider", String(40), nullable=False),
    Column("first_seen_at", BigInteger, nullable=False),
    Column("limits_read_at", BigInteger),
    Column("limits_error", String(200)),
)
"""Every connection whose rows are stored (its identity: a name, and its provider), kept after
it leaves the settings, so that its history keeps its provider; when its limits were last read,
and why the last try failed (None: it did not)."""

accounts = Table(
    "accounts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("email", String(320), nullable=False, unique=True),
    Column("name", Text),
    Column("role", String(20), nullable=False),
    Column("password_hash", Text),
    Column("created_at", BigInteger, nullable=False),
    Column("team", Text),
)
"""People who may sign in: email (lower case), role, and an argon2id hash in password mode;
``team``: the team a lead sees (the mapping file's teams)."""

sessions = Table(
    "sessions",
    metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("email", String(320), nullable=False, index=True),
    Column("csrf", String(64), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("last_seen_at", BigInteger, nullable=False),
)
"""Server-side sessions: the cookie holds a random token, the database only its SHA-256."""

api_tokens = Table(
    "api_tokens",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("prefix", String(20), nullable=False),
    Column("email", String(320), nullable=False),
    Column("name", Text),
    Column("created_at", BigInteger, nullable=False),
    Column("last_used_at", BigInteger),
    Column("revoked_at", BigInteger),
)
"""Bearer tokens for scripts; they act with their account's role."""

login_attempts = Table(
    "login_attempts",
    metadata,
    Column("throttle_key", String(400), primary_key=True),
    Column("window_start", BigInteger, primary_key=True),
    Column("attempts", Integer, nullable=False),
)
"""Sign-in attempts per account or address and minute, where every worker and replica sees
them: an attempt is counted before its password is checked, and given back when it succeeds."""

app_secrets = Table(
    "app_secrets",
    metadata,
    Column("name", String(100), primary_key=True),
    Column("value", Text, nullable=False),
)
"""Secrets generated once and shared by every replica (the session secret)."""

key_owners = Table(
    "key_owners",
    metadata,
    Column("key_id", String(200), primary_key=True),
    Column("person", Text, nullable=False),
    Column("email", String(320)),
    Column("changed_by", String(320), nullable=False),
    Column("changed_at", BigInteger, nullable=False),
)
"""Who a key belongs to, as an admin said on the People page (over OpenAI and the mapping)."""

person_teams = Table(
    "person_teams",
    metadata,
    Column("who", String(400), primary_key=True),
    Column("source", String(10), primary_key=True),
    Column("team", Text, nullable=False),
    Column("changed_by", String(320), nullable=False),
    Column("changed_at", BigInteger, nullable=False),
)
"""A person's team as an admin said on the People page (``source`` ``page``, ``who`` the
person's name) or as the OpenID provider said at sign-in (``oidc``, ``who`` their email)."""

audit_log = Table(
    "audit_log",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", BigInteger, nullable=False, index=True),
    Column("actor", String(320), nullable=False),
    Column("action", String(40), nullable=False),
    Column("detail", Text, nullable=False),
)
"""Every change an admin makes from the page: who, what, when."""

alerts_sent = Table(
    "alerts_sent",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("org", String(100), nullable=False, default=""),
    Column("dedupe_key", String(400), nullable=False),
    Column("rule", String(200), nullable=False),
    Column("kind", String(40), nullable=False),
    Column("period", String(20), nullable=False),
    Column("fired_at", BigInteger, nullable=False, index=True),
    Column("title", Text, nullable=False),
    Column("message", Text, nullable=False),
    Column("payload", Text, nullable=False),
    Column("superseded", Boolean, nullable=False, default=False),
    UniqueConstraint("org", "dedupe_key"),
)
"""Every alert that fired, recorded before it is sent: the unique (org, dedupe_key), which
names the rule, the subject, the threshold and the period, is what makes an alert fire once
whatever the restarts, re-syncs and replicas."""

alert_settings = Table(
    "alert_settings",
    metadata,
    Column("name", String(100), primary_key=True),
    Column("value", Text, nullable=False),
    Column("changed_by", String(320), nullable=False),
    Column("changed_at", BigInteger, nullable=False),
)
"""What admins set on the Alerts page: ``rules`` (the text of an alerts file, YAML) and
``channel:<sha256 of the URL>`` (an Apprise URL, which holds credentials: never shown, only
its redacted form). ALERTS_FILE, when set, wins over the stored rules; channels add to
ALERT_URLS."""

alert_deliveries = Table(
    "alert_deliveries",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("alert_id", Integer, ForeignKey("alerts_sent.id"), nullable=False, index=True),
    Column("channel", String(64), nullable=False),
    Column("channel_label", Text, nullable=False),
    Column("recipient", String(320), nullable=False, default=""),
    Column("status", String(20), nullable=False, index=True),
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", BigInteger, nullable=False),
    Column("claimed_until", BigInteger, nullable=False, default=0),
    Column("last_error", Text),
    Column("sent_at", BigInteger),
    UniqueConstraint("alert_id", "channel", "recipient"),
)
"""One message of an alert to one channel. ``channel`` is the SHA-256 of the channel's URL
(which holds its credentials, so it is never stored) and ``channel_label`` its redacted form;
``status`` is pending, sent or failed (gave up after the last retry)."""

actions = Table(
    "actions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("connection", String(100), nullable=False),
    Column("rule", String(200), nullable=False),
    Column("subject", String(400), nullable=False),
    Column("period", String(20), nullable=False),
    Column("kind", String(20), nullable=False),
    Column("mode", String(10), nullable=False),
    Column("state", String(20), nullable=False, index=True),
    Column("reason", Text, nullable=False),
    Column("targets", Text, nullable=False),
    Column("previous", Text),
    Column("last_error", Text),
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", BigInteger, nullable=False, default=0),
    Column("claimed_until", BigInteger, nullable=False, default=0),
    Column("created_at", BigInteger, nullable=False),
    Column("decided_by", String(320)),
    Column("decided_at", BigInteger),
    Column("done_at", BigInteger),
    Column("resumed_by", String(320)),
    Column("resumed_at", BigInteger),
    UniqueConstraint("connection", "rule", "subject", "period"),
)
"""What a budget rule asked to be done at a provider, recorded before anything is written: the
unique (connection, rule, subject, period) makes it happen once whatever the restarts and
replicas. ``targets`` (JSON) are the keys or the project it changes; ``previous`` (JSON) what
each was before, stored before the write, and written back by resume. ``state``: proposed,
approved (to be done), done, failed (gave up), dismissed, resuming (to be undone), resumed."""

statements = Table(
    "statements",
    metadata,
    Column("month", String(7), primary_key=True),
    Column("closed_at", BigInteger, nullable=False),
    Column("allocation", String(200), nullable=False),
    Column("body", Text, nullable=False),
    Column("team_totals", Text, nullable=False),
)
"""Each month's statement as it was when the month closed (the providers' revision window,
COSTS_LOOKBACK_DAYS, after its end): never changed after. ``team_totals`` (JSON) holds each
team's exact amount, against which a later revision is an adjustment in a later month."""
