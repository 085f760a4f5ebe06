"""schemathesis against the served OpenAPI document: every check, positive and negative cases,
through a real server over a synced database. The rules that OpenAPI cannot express (end after
start, the limit per bucket width, group_by per source, signed cursors) are taught to the
generator in schemathesis_hooks.py; the API answers 400 when they are broken."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from .conftest import live_app

HOOKS = Path(__file__).parent / "schemathesis_hooks.py"
EXAMPLES_PER_OPERATION = 100
"""With the coverage phase, over 400 cases in all (the CI's short form must pass >= 300)."""


def test_schemathesis_finds_no_failure(tmp_path: Path) -> None:
    with live_app(f"sqlite:///{tmp_path / 'st.db'}", tmp_path) as live:
        done = subprocess.run(
            [
                str(Path(sys.executable).with_name("st")),
                "run",
                f"{live.url}/openapi.json",
                "--checks",
                "all",
                "--max-examples",
                str(EXAMPLES_PER_OPERATION),
                "--seed",
                "20261125",
                "--no-color",
            ],
            env={**os.environ, "SCHEMATHESIS_HOOKS": str(HOOKS)},
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-4000:]
    cases = re.search(r"(\d+) generated, (\d+) passed", output)
    assert cases, output[-2000:]
    assert int(cases[1]) >= 300
    assert cases[1] == cases[2]
