"""The ``usage-tracker`` command: thin wrappers that parse options and call library functions."""

from __future__ import annotations

from typing import Annotated

import typer

from . import __version__

app = typer.Typer(
    help="OpenAI Usage Tracker: who used what in a shared OpenAI organization.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(__version__)
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    """OpenAI Usage Tracker."""


@app.command()
def simulate(
    port: Annotated[int, typer.Option(envvar="SIM_PORT", help="Port to listen on.")] = 8765,
    host: Annotated[str, typer.Option(envvar="SIM_HOST", help="Address to bind.")] = "127.0.0.1",
    seed: Annotated[int, typer.Option(envvar="SIM_SEED", help="Seed of the organization.")] = 1,
    days: Annotated[int, typer.Option(envvar="SIM_DAYS", min=1, help="Days of history.")] = 90,
    admin_key: Annotated[
        str, typer.Option(envvar="SIM_ADMIN_KEY", help="The one admin key accepted.")
    ] = "sk-admin-simulator",
    fault_rate: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Share of responses that fail.")
    ] = 0.0,
    latency_ms: Annotated[int, typer.Option(min=0, help="Latency added to each response.")] = 0,
    late_hours: Annotated[
        int, typer.Option(min=0, help="Recent hours reported incomplete, as OpenAI's late data.")
    ] = 0,
) -> None:
    """Serve a simulated organization on the OpenAI admin API contract (base URL .../v1)."""
    import uvicorn

    from . import simulator

    faults = simulator.Faults(rate=fault_rate, seed=seed, latency_seconds=latency_ms / 1000)
    sim = simulator.build(
        seed=seed, days=days, admin_key=admin_key, faults=faults, late_hours=late_hours
    )
    typer.echo(f"Simulated OpenAI admin API at http://{host}:{port}/v1 (seed {seed}, {days} days)")
    uvicorn.run(sim, host=host, port=port, log_level="warning")


def main() -> None:
    app()
