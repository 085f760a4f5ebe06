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

from usage_tracker.people.access import new_token
from usage_tracker.store import Store, accounts

from .conftest import live_app

HOOKS = Path(__file__).parent / "schemathesis_hooks.py"
EXAMPLES_PER_OPERATION = 100
"""With the coverage phase, over 400 cases in all (the CI's short form must pass >= 300)."""


def test_schemathesis_finds_no_failure_with_an_admin_token(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'st.db'}"
    store = Store.open(url)
    token = new_token()
    with store.transaction() as conn:
        accounts.save_account(
            conn, "admin@example.com", role="admin", name=None, password_hash=None, now=0
        )
        accounts.create_token(conn, token, "admin@example.com", name=None, now=0)
    store.close()
    with live_app(url, tmp_path, auth_mode="password") as live:
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
                "--header",
                f"Authorization: Bearer {token}",
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
