"""running totals per grouping, value and day (usage_running, costs_running) in place of the
folded blocks of 2 to 256 days: a range of whole days is the totals at its end less those at its
start

A year's summary over three large connections read its eleven longest blocks, 9,500 rows, in
25-33 ms on SQLite; the two days' running totals are 1,443 rows, 5.9 ms. Each value has a row on
every day after its first use (that is what lets a read find a day's rows by equality), up to
the day after the last day stored: about as many rows as the longer blocks had.

Revision ID: 0022
Revises: 0021
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None

DAY = 86400
RUNNING = {"usage_folded": "usage_running", "costs_folded": "costs_running"}
KEY = ("grouping", "value", "connection")
LONGER = (48, 96, 192, 384, 768, 1536, 3072, 6144)
"""The lengths, in hours, of the blocks this replaces (each summed from the one before it)."""


def _summed(folded: sa.Table) -> list[sa.Column[object]]:
    return [c for c in folded.columns if c.name not in ("hours", "start", *KEY)]


def _quoted(names: list[str], prefix: str = "") -> str:
    return ", ".join(f'{prefix}"{n}"' for n in names)


def upgrade() -> None:
    bind = op.get_bind()
    sqlite = bind.dialect.name == "sqlite"
    op.execute(sa.text("DELETE FROM usage_folded WHERE hours NOT IN (6, 24, 168)"))
    op.execute(sa.text("DELETE FROM costs_folded WHERE hours <> 24"))
    for name, running in RUNNING.items():
        folded = sa.Table(name, sa.MetaData(), autoload_with=bind)
        summed = _summed(folded)
        options = {"sqlite_with_rowid": False} if sqlite else {}
        op.create_table(
            running,
            sa.Column("day", sa.BigInteger, nullable=False),
            *(sa.Column(k, folded.c[k].type, nullable=False) for k in KEY),
            *(
                # every default there is is zero
                sa.Column(c.name, c.type, nullable=False, server_default=c.server_default and "0")
                for c in summed
            ),
            sa.PrimaryKeyConstraint("day", *KEY, name=f"pk_{running}"),
            **options,
        )
        # Every value's totals on each day after its first use, to the day after the last day
        # (its first use: its first totals not all zero; a block of a rewritten day may be).
        names = [c.name for c in summed]
        sums = ", ".join(
            f'SUM(COALESCE(b."{n}", 0)) OVER (PARTITION BY {_quoted(list(KEY), "f.")} '
            f'ORDER BY d.day) AS "{n}"'
            for n in names
        )
        same = " AND ".join(f'b."{k}" = f."{k}"' for k in KEY)
        used = " OR ".join(f'"{n}" <> 0' for n in names)
        op.execute(
            sa.text(
                f'INSERT INTO {running} ("day", {_quoted(list(KEY))}, {_quoted(names)}) '  # noqa: S608
                "WITH RECURSIVE firsts AS ("
                f"  SELECT {_quoted(list(KEY))}, MIN(start) AS first FROM {name}"
                f"  WHERE hours = 24 GROUP BY {_quoted(list(KEY))}"
                "), days(day) AS ("
                f"  SELECT CAST(MIN(first) + {DAY} AS BIGINT) FROM firsts"
                f"  UNION ALL SELECT day + {DAY} FROM days"
                f"  WHERE day <= (SELECT MAX(start) FROM {name} WHERE hours = 24)"
                "), totals AS ("
                f"  SELECT d.day, {_quoted(list(KEY), 'f.')}, {sums}"
                "   FROM firsts f JOIN days d ON d.day > f.first"
                f"  LEFT JOIN {name} b ON b.hours = 24 AND b.start = d.day - {DAY} AND {same}"
                ") "
                f'SELECT "day", {_quoted(list(KEY))}, {_quoted(names)} FROM totals WHERE {used} '
                # in the key's order: a day's rows on a few pages of PostgreSQL's, not one each
                f'ORDER BY "day", {_quoted(list(KEY))}'
            )
        )
        if not sqlite:  # the planner's statistics of the new rows (VACUUM waits for autovacuum)
            op.execute(sa.text(f"ANALYZE {running}"))


def downgrade() -> None:
    bind = op.get_bind()
    for name, running in RUNNING.items():
        op.drop_table(running)
        folded = sa.Table(name, sa.MetaData(), autoload_with=bind)
        names = [c.name for c in _summed(folded)]
        for shorter, length in zip((24, *LONGER), LONGER, strict=False):
            start = f"start - start % {length * 3600}"
            op.execute(
                sa.text(
                    f"INSERT INTO {name} (hours, start, {_quoted(list(KEY))}, {_quoted(names)}) "  # noqa: S608
                    f"SELECT {length}, {start}, {_quoted(list(KEY))}, "
                    f"{', '.join(f'SUM({q})' for q in _quoted(names).split(', '))} "
                    f"FROM {name} WHERE hours = {shorter} "
                    f"GROUP BY {start}, {_quoted(list(KEY))}"
                )
            )
