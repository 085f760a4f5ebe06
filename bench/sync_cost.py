"""What the first backfill costs the machine: ``usage-tracker sync --once`` in a process of its
own against the simulator (in its own process too), its wall time, CPU (user + sys) and peak
RSS, and the database it leaves (issue 22).

    .venv/bin/python -m bench.sync_cost [--days 365] [--keys 200 …] [--latency-ms 0]
        [--profile FILE.svg] [--keep FILE.db]

``--profile`` runs the sync under py-spy (``pip install py-spy``) and writes its flame graph.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from usage_tracker import simulator

from . import harness

DAY = 86400


def measure(
    size: simulator.Size,
    days: int,
    latency_ms: int,
    profile: Path | None = None,
    keep: Path | None = None,
) -> dict[str, Any]:
    """The first backfill of ``days`` of an organization of ``size`` into a new SQLite file
    (kept as ``keep`` if given)."""
    with (
        harness.simulator_process(days, size, latency_ms) as sim,
        tempfile.TemporaryDirectory(dir=harness.ROOT / ".bench") as tmp,
    ):
        database = Path(tmp) / "sync.db"
        env = {
            **os.environ,
            "DATABASE_URL": f"sqlite:///{database}",
            "OPENAI_ADMIN_KEY": simulator.DEFAULT_ADMIN_KEY,
            "OPENAI_BASE_URL": sim.url + "/v1",
            "BACKFILL_DAYS": str(days),
            "LOG_LEVEL": "warning",
            "KEY_MAPPINGS_FILE": str(Path(tmp) / "none.json"),
        }
        command = [*harness.CLI, "sync", "--once"]
        if profile is not None:
            spy = shutil.which("py-spy") or str(Path(harness.CLI[0]).with_name("py-spy"))
            raw = ["--format", "raw"] if profile.suffix == ".txt" else []
            command = [spy, "record", "-o", str(profile), "--rate", "50", *raw, "--", *command]
        started = time.perf_counter()
        process = subprocess.Popen(command, env=env, cwd=tmp)
        _pid, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - started
        if os.waitstatus_to_exitcode(status) != 0:
            raise SystemExit(f"sync --once failed with {status}")
        size_mb = sum(p.stat().st_size for p in Path(tmp).glob("sync.db*")) / 1e6
        if keep is not None:
            shutil.copyfile(database, keep)
    return {
        "days": days,
        "latency_ms": latency_ms,
        "wall_seconds": round(wall, 1),
        "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 1),
        "cpu_user_sys": [round(usage.ru_utime, 1), round(usage.ru_stime, 1)],
        "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
        "database_mb": round(size_mb, 1),
        "load": round(os.getloadavg()[0], 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    harness.add_size_arguments(parser)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--latency-ms", type=int, default=0)
    parser.add_argument("--profile", type=Path)
    parser.add_argument("--keep", type=Path, help="keep the database as this file")
    args = parser.parse_args()
    size = harness.size_of(args)
    (harness.ROOT / ".bench").mkdir(exist_ok=True)
    print(measure(size, args.days, args.latency_ms, args.profile, args.keep))


if __name__ == "__main__":
    main()
