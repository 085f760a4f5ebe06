"""/metrics: Prometheus' own parser reads it, and its figures equal the database's."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import httpx2
import pytest
from prometheus_client.parser import text_string_to_metric_families

from usage_tracker import reports
from usage_tracker.store import Store

from .conftest import LiveApp, latest, live_app

DAY = 86400
TOKEN = "scraper-token-for-tests-0123456789"


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveApp]:
    workdir = tmp_path_factory.mktemp("metrics")
    url = f"sqlite:///{workdir / 'm.db'}"
    # 18:00 UTC of the last day that reached it: today has traffic whatever the hour the tests
    # run at (the simulated organization is quiet after midnight, and Jane with it).
    with live_app(url, workdir, now=latest(18), auth_mode="password", metrics_token=TOKEN) as live:
        yield live


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def test_metrics_parse_and_equal_the_database(app: LiveApp) -> None:
    response = httpx2.get(app.url + "/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples = _samples(response.text)
    store = Store.open(app.database_url)
    names = reports.load_names(store)
    today = app.now - app.now % DAY
    day = reports.summary(store, names, today, app.now - app.now % 3600 + 3600)
    store.close()

    ids = {  # (group, display name) → the series' id, from the name info
        (labels["group"], labels["name"]): labels["id"]
        for labels in (dict(k) for (n, k) in samples if n == "usage_tracker_name_info")
    }

    def value(metric: str, window: str, group: str, name: str) -> float:
        ident = "all" if group == "organization" else ids[group, name]
        labels = (("group", group), ("id", ident), ("window", window))
        return samples[(metric, labels)]

    assert value("usage_tracker_tokens", "day", "organization", "all") == day["totals"]["tokens"]
    for row in day["by"]["person"]:
        assert value("usage_tracker_tokens", "day", "person", row["person"]) == row["tokens"]
        if row["billed_cost"] is not None:
            got = Decimal(str(value("usage_tracker_billed_usd", "day", "person", row["person"])))
            assert got == pytest.approx(row["billed_cost"])
    for row in day["by"]["api_key"]:
        assert ids["api_key", row["api_key_name"]] == (row["api_key"] or "(none)")
    jane = next(r for r in day["by"]["person"] if r["person"] == "Jane Smith")
    assert ids["person", jane["person"]] == "jane.smith@example.com"  # her email, not her name
    for row in day["by"]["model"]:
        name = row["model"] or "(none)"
        assert value("usage_tracker_requests", "day", "model", name) == row["num_model_requests"]
    assert samples[("usage_tracker_pool_limit_tokens", (("pool", "large"),))] > 0
    ages = [v for (n, _), v in samples.items() if n == "usage_tracker_sync_age_seconds"]
    assert len(ages) == 12  # every usage source and costs
    assert samples[("usage_tracker_sync_loop_error", ())] == 0


def test_metrics_need_sign_in_or_the_scraper_token(app: LiveApp, tmp_path: Path) -> None:
    assert httpx2.get(app.url + "/metrics").status_code == 401
    wrong = httpx2.get(app.url + "/metrics", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401


def test_the_grafana_dashboard_reads_only_metrics_that_exist(app: LiveApp) -> None:
    import json
    import re

    from .conftest import ROOT

    dashboard = json.loads((ROOT / "docs" / "grafana-dashboard.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    used = {m for e in exprs for m in re.findall(r"usage_tracker_[a-z_]+", e)}
    text = httpx2.get(app.url + "/metrics", headers={"Authorization": f"Bearer {TOKEN}"}).text
    families = list(text_string_to_metric_families(text))
    served = {f.name for f in families} | {s.name for f in families for s in f.samples}
    assert used
    assert used <= served
