"""``usage-tracker pools check``: the models seen lately that the pool table does not classify,
so that a stale table is noticed (and TIERS_FILE amended) before it miscounts."""

from __future__ import annotations

import time
from typing import Annotated

import typer

from usage_tracker import runtime
from usage_tracker.providers.openai.pools import UNCLASSIFIED, PoolTableError, load_pool_table
from usage_tracker.settings import SettingsError, load_settings
from usage_tracker.store import StoreUnavailableError
from usage_tracker.text.untrusted import terminal

DAY = 86400
pools = typer.Typer(help="The complimentary-token pool table.")


@pools.command("check")
def check(
    days: Annotated[int, typer.Option(min=1, max=366, help="How far back to look.")] = 30,
) -> None:
    """List the models used in the last DAYS days that no rule of the pool table classifies
    (exit 1 when there are any, for a cron job)."""
    try:
        settings = load_settings()
        table = load_pool_table(settings.tiers_file)
        store = runtime.open_store(settings)
    except (SettingsError, PoolTableError, StoreUnavailableError) as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None
    now = int(time.time())
    end = now - now % 3600 + 3600
    try:
        rows = store.usage_totals(
            end - days * DAY, end, ["model"], metrics=["input_tokens", "output_tokens"]
        )
    finally:
        store.close()
    seen = {r["model"]: r["input_tokens"] + r["output_tokens"] for r in rows if r["model"]}
    unknown = sorted((m for m in seen if table.classify(m) == UNCLASSIFIED), key=lambda m: -seen[m])
    if not unknown:
        typer.echo(
            f"all {len(seen)} models used in the last {days} days are classified "
            f"(pool table of {table.as_of})"
        )
        return
    typer.echo(
        f"{len(unknown)} of {len(seen)} models are in no rule of the table of {table.as_of}:"
    )
    for model in unknown:
        typer.echo(f"  {terminal(model)}\t{seen[model]:,} tokens")
    typer.echo("add a rule for each to TIERS_FILE (pool large, small, or null: not eligible)")
    raise typer.Exit(1)
