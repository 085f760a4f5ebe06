"""Sign-in, roles and the member scope, through a real server in AUTH_MODE=password."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import httpx2
import pytest

from usage_tracker.people.access import digest, hash_password
from usage_tracker.providers.openai.contract import SOURCES
from usage_tracker.store import Store
from usage_tracker.store import accounts as rows
from usage_tracker.store import people as rows_people

from .conftest import LiveApp, live_app

DAY, HOUR = 86400, 3600
PASSWORD = "correct horse battery"
ADMIN, VIEWER, JANE = "admin@example.com", "viewer@example.com", "jane.smith@example.com"
"""Jane is a member; OpenAI reports her as the owner of two keys (jane-laptop, jane-legacy)."""


def _add_account(database_url: str, email: str, role: str) -> None:
    store = Store.open(database_url)
    with store.transaction() as conn:
        rows.save_account(
            conn, email, role=role, name=None, password_hash=hash_password(PASSWORD), now=0
        )
    store.close()


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveApp]:
    workdir = tmp_path_factory.mktemp("auth")
    url = f"sqlite:///{workdir / 'auth.db'}"
    Store.open(url).close()
    for email, role in ((ADMIN, "admin"), (VIEWER, "viewer"), (JANE, "member")):
        _add_account(url, email, role)
    # The tests' own requests stand for a same-host proxy (one test says HTTPS through it).
    with live_app(url, workdir, auth_mode="password", trusted_proxies=("127.0.0.1",)) as live:
        yield live


class _Inputs(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.values: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "input" and found.get("name"):
            self.values[str(found["name"])] = found.get("value") or ""


def _form_values(html: str) -> dict[str, str]:
    parser = _Inputs()
    parser.feed(html)
    return parser.values


@contextmanager
def signed_in(app: LiveApp, email: str, password: str = PASSWORD) -> Iterator[httpx2.Client]:
    with httpx2.Client(base_url=app.url, timeout=30) as client:
        response = _login(client, email, password)
        assert response.status_code == 303, response.text
        yield client


def _login(
    client: httpx2.Client, email: str, password: str, next_: str = "/", **headers: str
) -> httpx2.Response:
    form = _form_values(client.get("/login").text)
    form.update(email=email, password=password, next=next_)
    return client.post("/login", data=form, headers=headers)


def _flattened(routes: list[Any]) -> Iterator[Any]:
    """Routes, with FastAPI's included routers opened up (none is included with a prefix)."""
    for route in routes:
        if hasattr(route, "original_router"):
            yield from _flattened(route.original_router.routes)
        else:
            yield route


def test_every_route_needs_sign_in_except_the_open_ones(app: LiveApp, tmp_path: Path) -> None:
    """From the router itself, so a new route is covered the day it is added."""
    from starlette.routing import Mount

    from usage_tracker.settings import load_settings
    from usage_tracker.web import create_app

    settings = load_settings(database_url=f"sqlite:///{tmp_path / 'r.db'}", auth_mode="password")
    routes = list(_flattened(create_app(settings, run_sync=False).routes))
    open_routes = {("GET", "/login"), ("HEAD", "/login"), ("POST", "/login")}
    checked = 0
    with httpx2.Client(base_url=app.url, timeout=30) as client:
        for route in routes:
            if isinstance(route, Mount):
                assert route.path == "/static"  # assets are open; nothing else is mounted
                continue
            path = getattr(route, "path", "")
            for method in sorted(getattr(route, "methods", None) or ()):
                if (method, path) in open_routes:
                    continue
                url = path.replace("{token_id}", "1").replace("{email}", JANE)
                url = url.replace("{token}", "not-a-link")
                response = client.request(method, url, params={"start_time": 0})
                checked += 1
                if path == "/setup/{token}":  # open, but only with a link's own token
                    assert response.status_code in (400, 404), (method, response.text)
                    assert "used, has expired" in response.text or response.status_code == 400
                    continue
                if path == "/api/health":
                    assert response.status_code == 200
                    assert response.json() == {"status": response.json()["status"]}
                    continue
                if response.status_code == 303:
                    assert response.headers["location"].startswith("/login?next=")
                else:
                    assert response.status_code == 401, (method, path, response.text)
                    assert response.json()["error"]["message"]
    assert checked >= 10


def test_signing_in_sets_a_safe_session_cookie_and_signing_out_ends_it(app: LiveApp) -> None:
    with httpx2.Client(base_url=app.url, timeout=30) as client:
        response = _login(client, ADMIN, PASSWORD, next_="/?range=7d")
        assert response.status_code == 303
        assert response.headers["location"] == "/?range=7d"
        cookie = response.headers["set-cookie"]
        assert "ut_session=" in cookie
        assert "HttpOnly" in cookie
        assert "SameSite=lax" in cookie
        assert "Secure" not in cookie  # plain HTTP here
        page = client.get("/")
        assert page.status_code == 200
        assert "signed in as admin@example.com (admin)" in page.text
        csrf = _form_values(page.text)["csrf_token"]
        assert client.post("/logout").status_code == 403  # no CSRF token
        assert client.post("/logout", data={"csrf_token": csrf}).status_code == 303
        assert client.get("/").status_code == 303
        assert client.get("/api/summary").status_code == 401


def test_signing_out_everywhere_ends_every_session_of_the_account(app: LiveApp) -> None:
    with signed_in(app, VIEWER) as laptop, signed_in(app, VIEWER) as phone:
        csrf = _form_values(laptop.get("/").text)["csrf_token"]
        done = laptop.post("/logout", data={"csrf_token": csrf, "everywhere": "true"})
        assert done.status_code == 303
        assert phone.get("/api/summary").status_code == 401
        assert laptop.get("/api/summary").status_code == 401


def test_the_cookie_is_secure_when_a_trusted_proxy_says_https(app: LiveApp) -> None:
    with httpx2.Client(base_url=app.url, timeout=30) as client:
        response = _login(client, ADMIN, PASSWORD, **{"X-Forwarded-Proto": "https"})
        assert response.status_code == 303
        assert "Secure" in response.headers["set-cookie"]


def test_a_wrong_password_and_an_unknown_email_get_the_same_answer(app: LiveApp) -> None:
    with httpx2.Client(base_url=app.url, timeout=30) as client:
        wrong = _login(client, VIEWER, "not the password")
        unknown = _login(client, "nobody@example.com", PASSWORD)
    assert wrong.status_code == unknown.status_code == 401
    assert "do not match an account" in wrong.text
    assert "do not match an account" in unknown.text


def test_the_sixth_wrong_password_in_a_minute_is_refused_even_with_the_right_one(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'throttle.db'}"
    Store.open(url).close()
    _add_account(url, ADMIN, "admin")
    with (
        live_app(url, tmp_path, auth_mode="password") as live,
        httpx2.Client(base_url=live.url, timeout=30) as client,
    ):
        for _ in range(5):
            assert _login(client, ADMIN, "wrong password!").status_code == 401
        refused = _login(client, ADMIN, PASSWORD)
        assert refused.status_code == 429
        assert "Too many failed sign-ins" in refused.text
        assert client.get("/api/summary").status_code == 401


def test_next_never_leads_off_the_site(app: LiveApp) -> None:
    with httpx2.Client(base_url=app.url, timeout=30) as client:
        for target in ("//evil.example/", "https://evil.example/", "/\\evil.example"):
            response = _login(client, ADMIN, PASSWORD, next_=target)
            assert response.headers["location"] == "/"


def test_an_expired_or_forged_login_form_is_refused(app: LiveApp) -> None:
    with httpx2.Client(base_url=app.url, timeout=30) as client:
        response = client.post(
            "/login", data={"email": ADMIN, "password": PASSWORD, "login_token": "forged"}
        )
        assert response.status_code == 403
        assert "ut_session" not in response.headers.get("set-cookie", "")


def test_admins_create_and_revoke_tokens_on_the_page_with_csrf(app: LiveApp) -> None:
    with signed_in(app, ADMIN) as admin:
        page = admin.get("/tokens")
        csrf = _form_values(page.text)["csrf_token"]
        assert admin.post("/tokens", data={"email": VIEWER, "name": "x"}).status_code == 403
        created = admin.post("/tokens", data={"email": VIEWER, "name": "x", "csrf_token": csrf})
        token = created.text.split('id="new-token">', 1)[1].split("<", 1)[0]
        assert token.startswith("ut_")
        bearer = {"Authorization": f"Bearer {token}"}
        assert httpx2.get(app.url + "/api/summary", headers=bearer).status_code == 200
        store = Store.open(app.database_url)
        with store.transaction() as conn:
            stored = rows.token(conn, digest(token))
        store.close()
        assert stored is not None
        assert token not in str(stored)  # only the hash is kept
        revoke = f"/tokens/{stored['id']}/revoke"
        assert admin.post(revoke).status_code == 403
        assert admin.post(revoke, data={"csrf_token": csrf}).status_code == 303
    revoked = httpx2.get(app.url + "/api/summary", headers=bearer)
    assert revoked.status_code == 401
    assert "revoked" in revoked.json()["error"]["message"]


@pytest.mark.parametrize("email", [VIEWER, JANE])
def test_only_admins_manage_tokens(app: LiveApp, email: str) -> None:
    with signed_in(app, email) as client:
        assert client.get("/tokens").status_code == 403
        csrf = _form_values(client.get("/").text)["csrf_token"]
        response = client.post("/tokens", data={"email": email, "csrf_token": csrf})
        assert response.status_code == 403


def test_a_viewer_sees_everything_the_admin_sees(app: LiveApp) -> None:
    params = {"start_time": app.now - app.now % DAY - 7 * DAY}
    with signed_in(app, ADMIN) as admin, signed_in(app, VIEWER) as viewer:
        assert (
            viewer.get("/api/summary", params=params).json()
            == admin.get("/api/summary", params=params).json()
        )


def test_a_session_unused_for_too_long_ends(app: LiveApp) -> None:
    with signed_in(app, VIEWER) as client:
        token = client.cookies["ut_session"]
        store = Store.open(app.database_url)
        with store.transaction() as conn:
            conn.execute(
                rows.schema.sessions.update()
                .where(rows.schema.sessions.c.token_hash == digest(token))
                .values(last_seen_at=int(time.time()) - 9 * 3600)
            )
        store.close()
        assert client.get("/api/summary").status_code == 401


# -- the member scope -----------------------------------------------------------------------


def _jane_keys(app: LiveApp) -> set[str]:
    return {k.id for k in app.org.keys if getattr(k, "owner_email", None) == JANE}


def _truth_for(app: LiveApp, source: str, start: int, end: int, groups: tuple[str, ...]) -> Any:
    """The truth over [start, end) of Jane's keys only, summed per ``groups``."""
    spec = SOURCES[source]
    dims = list(dict.fromkeys([*groups, "api_key_id"]))
    out: dict[tuple[Any, ...], dict[str, int]] = {}
    for key, metrics in app.org.truth(source, start, end, dims).items():
        values = dict(zip(dims, key, strict=True))
        if values["api_key_id"] not in _jane_keys(app):
            continue
        folded = out.setdefault(tuple(values[g] for g in groups), dict.fromkeys(spec.metrics, 0))
        for m in spec.metrics:
            folded[m] += metrics.get(m, 0)
    return {k: v for k, v in out.items() if any(v.values())}


def test_a_member_sees_only_their_own_keys_everywhere(app: LiveApp) -> None:
    """Every route x group_by x source x range tried: only Jane's keys, equal to the truth."""
    assert len(_jane_keys(app)) == 2
    today = app.now - app.now % DAY
    ranges = [
        (today, None),
        (today - DAY, today),
        (today - 7 * DAY + 1800, app.now),
        (today - 30 * DAY, today - 20 * DAY),
    ]
    tried = 0
    with signed_in(app, JANE) as jane:
        for source, (start, end) in itertools.product(SOURCES, ranges):
            spec = SOURCES[source]
            stop = end or app.now
            groups_tried = [(), ("api_key_id",), ("model",)] + [
                (g,) for g in spec.group_by if g not in ("api_key_id", "model")
            ]
            for groups in groups_tried:
                if not set(groups) <= set(spec.group_by):
                    continue
                params: list[tuple[str, Any]] = [
                    ("start_time", start),
                    ("bucket_width", "1d"),
                    ("source", source),
                    ("limit", 31),
                ]
                params += [("end_time", end)] if end else []
                params += [("group_by", g) for g in groups] or [("group_by", "none")]
                body = jane.get("/api/usage", params=params).json()
                got: dict[tuple[Any, ...], dict[str, int]] = {}
                for bucket in body["data"]:
                    for r in bucket["results"]:
                        assert r.get("api_key_id") in (None, *_jane_keys(app))
                        row = got.setdefault(
                            tuple(r[g] for g in groups), dict.fromkeys(spec.metrics, 0)
                        )
                        for m in spec.metrics:
                            row[m] += r[m]
                first = body["data"][0]["start_time"] if body["data"] else start
                hi = body["data"][-1]["end_time"] if body["data"] else stop
                expected = _truth_for(app, source, first, hi, groups)
                assert {k: v for k, v in got.items() if any(v.values())} == expected, (
                    source,
                    groups,
                    start,
                )
                tried += 1
        for start, end in ranges:
            params_s = {"start_time": start, **({"end_time": end} if end else {})}
            summary = jane.get("/api/summary", params=params_s).json()
            people = {r["person"] for r in summary["by"]["person"]}
            assert people <= {"Jane Smith"}, people
            keys = {r["api_key"] for r in summary["by"]["api_key"]}
            assert keys <= _jane_keys(app)
            truth = _truth_for(app, "completions", summary["start_time"], summary["end_time"], ())
            expected_input = truth.get((), {}).get("input_tokens", 0)
            completions = [r for r in summary["by"]["source"] if r["source"] == "completions"]
            assert (completions[0]["input_tokens"] if completions else 0) == expected_input
            tried += 1
        page = jane.get("/", params={"range": "30d"}).text
        assert "Jane Smith" in page
        for other in ("Arjun Patel", "Mei Chen", "ingest-service", "Fatima Al-Sayed"):
            assert other not in page
        tiers = jane.get("/api/tiers").json()
        for pool in tiers["pools"].values():
            assert {c["name"] for c in pool["top_consumers"]} <= {"Jane Smith", "everyone else"}
        minute = jane.get("/api/usage", params={"start_time": app.now - 600, "bucket_width": "1m"})
        assert minute.status_code == 403
    assert tried >= 200


def test_the_cli_manages_accounts_and_tokens_without_passwords_in_arguments(
    app: LiveApp, tmp_path: Path
) -> None:
    env = {**os.environ, "DATABASE_URL": app.database_url}

    def run(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "usage_tracker", *args],
            input=stdin,
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    new = "ops@example.com"
    added = run(
        "user",
        "add",
        new,
        "--role",
        "viewer",
        "--name",
        "Ops",
        "--password-stdin",
        stdin="a long enough password\n",
    )
    assert added.returncode == 0, added.stderr
    assert "ops@example.com\tviewer\tOps\tpassword" in run("user", "list").stdout
    short = run("user", "add", "x@example.com", "--password-stdin", stdin="short\n")
    assert short.returncode == 2
    assert "at least 10 characters" in short.stderr
    with signed_in(app, new, "a long enough password") as ops:
        assert ops.get("/api/summary").status_code == 200
        token = run("token", "create", new, "--name", "cron").stdout.strip()
        bearer = {"Authorization": f"Bearer {token}"}
        assert httpx2.get(app.url + "/api/summary", headers=bearer).status_code == 200
        changed = run("user", "passwd", new, "--password-stdin", stdin="another long password\n")
        assert changed.returncode == 0
        assert ops.get("/api/summary").status_code == 401  # signed out everywhere
    assert run("user", "remove", new).returncode == 0
    assert httpx2.get(app.url + "/api/summary", headers=bearer).status_code == 401
    assert run("token", "create", new).returncode == 2


# -- people -----------------------------------------------------------------------------------


def _people(client: httpx2.Client) -> dict[str, dict[str, Any]]:
    """The People table as {person: {"email", "team", "keys"}}, parsed from the page."""

    class Table(HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.rows: list[list[str]] = []
            self._cell: list[str] | None = None
            self._in = False

        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            if tag == "table" and ("id", "people") in attrs:
                self._in = True
            elif self._in and tag == "tr":
                self.rows.append([])
            elif self._in and tag in ("td", "th"):
                self._cell = []

        def handle_endtag(self, tag: str) -> None:
            if tag == "table":
                self._in = False
            elif self._in and tag in ("td", "th") and self._cell is not None:
                self.rows[-1].append(" ".join("".join(self._cell).split()))
                self._cell = None

        def handle_data(self, data: str) -> None:
            if self._cell is not None:
                self._cell.append(data)

    table = Table()
    table.feed(client.get("/people").text)
    return {
        r[0]: {"email": r[1], "team": r[2], "keys": r[3]}
        for r in table.rows[1:]
        if len(r) == 8 and r[0] != "Total"  # the tfoot's totals
    }


def test_admins_rename_assign_and_merge_people_and_each_change_is_recorded(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'people.db'}"
    Store.open(url).close()
    _add_account(url, ADMIN, "admin")
    _add_account(url, "mei.chen@example.com", "member")
    with live_app(url, tmp_path, auth_mode="password") as live, signed_in(live, ADMIN) as admin:
        before = _people(admin)
        assert before["Jane Smith"]["email"] == JANE  # learned from OpenAI's key owner
        assert "jane-laptop" in before["Jane Smith"]["keys"]
        assert "ingest-service" in before  # a service account's key by its name
        csrf = _form_values(admin.get("/people").text)["csrf_token"]
        assert (
            admin.post(
                "/people/rename", data={"person": "Jane Smith", "new_name": "J. Smith"}
            ).status_code
            == 403
        )
        done = admin.post(
            "/people/rename",
            data={"person": "Jane Smith", "new_name": "J. Smith", "csrf_token": csrf},
        )
        assert done.status_code == 303
        ci_bot = next(k.id for k in live.org.keys if k.name == "ci-bot")
        assigned = admin.post(
            "/people/assign",
            data={"key_id": ci_bot, "person": "Mei Chen", "csrf_token": csrf},
        )
        assert assigned.status_code == 303
        merged = admin.post(
            "/people/merge",
            data={"person": "Arjun Patel", "into": "J. Smith", "csrf_token": csrf},
        )
        assert merged.status_code == 303
        bad = admin.post(
            "/people/assign",
            data={"key_id": "key_nope", "person": "X", "csrf_token": csrf},
        )
        assert bad.status_code == 400
        assert bad.json()["error"]["message"] == "There is no key 'key_nope'."
        empty = admin.post(
            "/people/rename", data={"person": "Mei Chen", "new_name": "", "csrf_token": csrf}
        )
        assert empty.status_code == 400
        after = _people(admin)
        assert "Jane Smith" not in after
        assert "Arjun Patel" not in after
        assert "arjun-research" in after["J. Smith"]["keys"]
        assert after["J. Smith"]["email"] == JANE
        assert "ci-bot" in after["Mei Chen"]["keys"]
        summary = admin.get("/api/summary", params={"start_time": live.now - 7 * DAY}).json()
        assert "J. Smith" in {r["person"] for r in summary["by"]["person"]}
        page = admin.get("/people").text
        assert "rename: &#39;Jane Smith&#39; is now &#39;J. Smith&#39;" in page
        assert "admin@example.com" in page
    store = Store.open(url)
    with store.transaction() as conn:
        changes = rows_people.recent_changes(conn)
    store.close()
    assert [c["action"] for c in changes] == ["merge", "assign", "rename"]
    assert {c["actor"] for c in changes} == {ADMIN}
    # the changes survive a restart, and a member's keys follow the person's email
    with live_app(url, tmp_path, auth_mode="password") as live:
        with signed_in(live, ADMIN) as admin:
            assert "ci-bot" in _people(admin)["Mei Chen"]["keys"]
        with signed_in(live, "mei.chen@example.com") as mei:
            mine = _people(mei)
            assert set(mine) == {"Mei Chen"}
            assert "ci-bot" in mine["Mei Chen"]["keys"]
            assert (
                mei.post("/people/rename", data={"person": "Mei Chen", "new_name": "M"}).status_code
                == 403
            )


def test_a_key_openai_no_longer_lists_can_be_assigned_and_its_person_renamed(
    tmp_path: Path,
) -> None:
    """The People page offered such a key (it has usage) and its forms then refused it."""
    from usage_tracker.providers.records import DIMENSIONS, UsageResult
    from usage_tracker.store import writes

    url = f"sqlite:///{tmp_path / 'unlisted.db'}"
    Store.open(url).close()
    _add_account(url, ADMIN, "admin")
    with live_app(url, tmp_path, auth_mode="password") as live, signed_in(live, ADMIN) as admin:
        hour = live.now - live.now % 3600 - 10 * DAY
        values = {"api_key_id": "key_unlisted", "model": "text-embedding-3-small"}
        row = UsageResult(
            "embeddings",
            hour,
            hour + 3600,
            tuple(values.get(d) for d in DIMENSIONS),
            {"input_tokens": 1234, "num_model_requests": 1},
        )
        store = Store.open(url)
        with store.transaction() as conn:
            writes.replace_usage(
                conn, "embeddings", hour, hour + 3600, [row], estimate=store.prices.estimate
            )
        store.close()
        assert "key_unlisted" in _people(admin)  # offered on the page, as its id
        csrf = _form_values(admin.get("/people").text)["csrf_token"]
        renamed = admin.post(
            "/people/rename",
            data={"person": "key_unlisted", "new_name": "Old Intern", "csrf_token": csrf},
        )
        assert renamed.status_code == 303, renamed.text
        assigned = admin.post(
            "/people/assign",
            data={"key_id": "key_unlisted", "person": "Mei Chen", "csrf_token": csrf},
        )
        assert assigned.status_code == 303, assigned.text
        assert "key_unlisted" in _people(admin)["Mei Chen"]["keys"]
