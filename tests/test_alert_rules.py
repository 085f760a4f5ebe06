"""ALERTS_FILE and ALERT_URLS: read, defaulted, and refused with the file, line and column."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from usage_tracker.alerts.rules import DEFAULT_RULES, AlertRulesError, load_rules, parse_rules
from usage_tracker.settings import SettingsError, load_settings
from usage_tracker.web import create_app

EXAMPLE = Path(__file__).resolve().parent.parent / "docs" / "alerts.example.yaml"


def test_without_a_file_pools_alert_at_50_80_100_and_spikes_at_5x() -> None:
    rules = load_rules(None)
    assert rules == DEFAULT_RULES
    assert rules.pools.thresholds == (50, 80, 100)
    assert [(s.per, s.window, s.factor) for s in rules.spikes] == [("key", "hour", 5)]
    assert rules.budgets == ()
    assert rules.digest is None


def test_the_shipped_example_file_is_valid_and_says_what_it_does() -> None:
    rules = load_rules(EXAMPLE)
    assert rules.budgets
    assert rules.forecasts
    assert rules.digest is not None
    assert rules.pools.run_out_before == 16 * 60


def test_yaml_reads_unquoted_times_as_the_same_minutes() -> None:
    quoted = parse_rules('digest: {at: "17:30"}', "a.yaml")
    unquoted = parse_rules("digest: {at: 17:30}", "a.yaml")  # YAML 1.1: base 60, 1050
    assert quoted.digest == unquoted.digest
    assert quoted.digest is not None
    assert quoted.digest.at == 17 * 60 + 30


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("budgets:\n  - person: A\n    limit: -5\n", "a.yaml, line 3, column 12: budgets.0.limit"),
        ("pools:\n  thresholds: [50, 80\n", "a.yaml, line 3, column 1"),
        ("spikes:\n  - per: team\n", "a.yaml, line 2, column 10: spikes.0.per"),
        ("budgets:\n  - {key: k, project: p, limit: 1}\n", "a.yaml, line 2, column 5: budgets.0"),
        ("digest: {at: '25:00'}\n", "a.yaml, line 1, column 14: digest.at"),
        ("bugdets: []\n", "a.yaml, line 1, column 10: bugdets: Extra inputs"),
        ("- 1\n", "a.yaml, line 1, column 1: expected a mapping"),
    ],
)
def test_a_bad_rule_is_refused_naming_the_line_and_column(text: str, expected: str) -> None:
    with pytest.raises(AlertRulesError) as caught:
        parse_rules(text, "a.yaml")
    assert str(caught.value).startswith(expected), str(caught.value)


def test_json_files_are_read_as_json_with_their_own_positions(tmp_path: Path) -> None:
    path = tmp_path / "alerts.json"
    path.write_text('{\n  "budgets": [\n    {"limit": 10, "unit": "yen"}\n  ]\n}\n')
    with pytest.raises(AlertRulesError, match=r"alerts.json, line 3, column 27: budgets.0.unit"):
        load_rules(path)
    path.write_text('{"budgets": [],}')
    with pytest.raises(AlertRulesError, match=r"alerts.json, line 1, column 16: Expecting"):
        load_rules(path)


def test_a_channel_apprise_cannot_use_is_refused_without_showing_its_url() -> None:
    secret = "onlyonepart-secret"
    with pytest.raises(AlertRulesError) as caught:
        parse_rules(f"channels:\n  - 'slack://{secret}'\n", "a.yaml")
    assert "line 2" in str(caught.value)
    assert "slack://…" in str(caught.value)
    assert secret not in str(caught.value)
    with pytest.raises(SettingsError) as bad_env:
        load_settings(alert_urls=f"json://127.0.0.1/hook nonsense://{secret}").alert_url_list()
    assert "ALERT_URLS: entry 2" in str(bad_env.value)
    assert secret not in str(bad_env.value)


def test_the_app_refuses_to_start_with_a_bad_rules_file(tmp_path: Path) -> None:
    path = tmp_path / "alerts.yaml"
    path.write_text("budgets:\n  - limit: lots\n")
    settings = load_settings(
        database_url=f"sqlite:///{tmp_path / 'db.sqlite'}", auth_mode="none", alerts_file=path
    )
    with pytest.raises(SettingsError, match=r"ALERTS_FILE: .*alerts.yaml, line 2, column 12"):
        create_app(settings)


def test_the_cli_checks_the_rules_file(tmp_path: Path) -> None:
    env = {**os.environ, "ALERTS_FILE": str(EXAMPLE), "DATABASE_URL": "sqlite:///x.db"}
    run = [sys.executable, "-m", "usage_tracker", "alerts", "check"]
    good = subprocess.run(run, env=env, cwd=tmp_path, capture_output=True, text=True, check=False)
    assert good.returncode == 0, good.stderr
    assert "pools: complimentary pools (UTC day): at 50 %, 80 %, 100 %" in good.stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text("pools:\n  thresholds: [0]\n")
    env["ALERTS_FILE"] = str(bad)
    refused = subprocess.run(
        run, env=env, cwd=tmp_path, capture_output=True, text=True, check=False
    )
    assert refused.returncode == 2
    assert f"{bad}, line 2, column 15: pools.thresholds" in refused.stderr
