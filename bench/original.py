"""Side by side with the original tracker's design: a stand-in that answers every page view by
asking the upstream twice, one request after the other (today's usage by key, then today's
costs), as the original did; against this app, which reads its database and syncs apart.

Both face the same simulator, in this process, with the same latency per response; each is
viewed ``views`` times. Counted: page-view latency and the upstream requests made meanwhile
(this app's background sync included)."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import httpx2
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Route

from usage_tracker import simulator
from usage_tracker.providers.openai import AdminClient
from usage_tracker.store import Store
from usage_tracker.sync import SyncWindow, sync_once
from usage_tracker.web.serving import BackgroundServer

from . import harness
from .harness import stats

DAY = 86400


def stand_in(upstream: str, key: str) -> Starlette:
    """The original's page: two sequential upstream requests per view, summed and shown."""
    client = httpx2.Client(base_url=upstream, headers={"Authorization": f"Bearer {key}"})

    def page(request: Request) -> HTMLResponse:
        today = int(time.time()) // DAY * DAY
        usage = client.get(
            "/organization/usage/completions",
            params={"start_time": today, "bucket_width": "1d", "group_by": "api_key_id"},
        ).json()
        costs = client.get("/organization/costs", params={"start_time": today}).json()
        tokens = sum(
            r["input_tokens"] + r["output_tokens"] for b in usage["data"] for r in b["results"]
        )
        dollars = sum(float(r["amount"]["value"]) for b in costs["data"] for r in b["results"])
        return HTMLResponse(f"<h1>Today</h1><p>{tokens:,} tokens, ${dollars:,.2f}</p>")

    return Starlette(routes=[Route("/", page)])


def _views(url: str, views: int, headers: dict[str, str], sim: Any) -> dict[str, Any]:
    before = len(sim.log)
    samples = []
    with httpx2.Client(base_url=url, headers=headers, timeout=60) as http:
        for _ in range(views):
            started = time.perf_counter()
            http.get("/").raise_for_status()
            samples.append((time.perf_counter() - started) * 1000)
    upstream = len(sim.log) - before
    return {**stats(samples), "upstream_per_100_views": round(upstream * 100 / views, 1)}


def side_by_side(views: int, latency_ms: int) -> dict[str, Any]:
    faults = simulator.Faults(latency_seconds=latency_ms / 1000)
    sim = simulator.build(seed=1, days=90, faults=faults)
    key = simulator.DEFAULT_ADMIN_KEY
    out: dict[str, Any] = {"latency_ms": latency_ms, "views": views}
    with (
        tempfile.TemporaryDirectory(dir=harness.ROOT / ".bench") as tmp,
        BackgroundServer(sim) as upstream,
    ):
        database = f"sqlite:///{Path(tmp) / 'side.db'}"
        store = Store.open(database)
        with AdminClient(key, upstream.url + "/v1") as client:
            sync_once(store, client, window=SyncWindow(backfill_days=90, concurrency=3))
        store.close()
        with BackgroundServer(stand_in(upstream.url + "/v1", key)) as original:
            _views(original.url, 3, {}, sim)  # connections warm
            out["original"] = _views(original.url, views, {}, sim)
        token = harness.api_token(database)
        env = {"OPENAI_ADMIN_KEY": key, "OPENAI_BASE_URL": upstream.url + "/v1"}
        env["RECENT_SYNC_SECONDS"] = "60"  # the defaults: recent hours every minute
        with harness.app_process(database, **env) as app:
            headers = {"Authorization": f"Bearer {token}"}
            time.sleep(5)  # the start-up sync under way, as in real life
            _views(app.url, 3, headers, sim)
            out["this app"] = _views(app.url, views, headers, sim)
    return out
