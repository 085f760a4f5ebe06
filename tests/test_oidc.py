"""Sign-in with OpenID Connect end to end: a real provider process (oidc-provider-mock), the
app served for real, and a real browser (Debian's Chromium)."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest
from playwright.sync_api import Browser

from usage_tracker.store import Store
from usage_tracker.store import accounts as rows

from .conftest import LiveApp, live_app, wait_until_up
from .test_browser import Watched, browser  # noqa: F401 - the shared browser fixture

JANE = "jane.smith@example.com"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def issuer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The provider as a process of its own, with nonces required of every client."""
    port = _free_port()
    log = (tmp_path_factory.mktemp("provider") / "provider.log").open("w")
    proc = subprocess.Popen(
        [
            str(Path(sys.executable).with_name("oidc-provider-mock")),
            "--port",
            str(port),
            "--require-nonce",
            "true",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(url + "/.well-known/openid-configuration", proc)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()


@pytest.fixture(scope="module")
def app(issuer: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveApp]:
    workdir = tmp_path_factory.mktemp("oidc")
    port = _free_port()
    with live_app(
        f"sqlite:///{workdir / 'oidc.db'}",
        workdir,
        auth_mode="oidc",
        oidc_issuer=issuer,
        oidc_client_id="usage-tracker",
        oidc_client_secret="client-secret-for-tests",
        oidc_allowed_domains="example.com",
        oidc_team_claim="groups",
        public_url=f"http://127.0.0.1:{port}",
        port=port,
    ) as live:
        yield live


def _sign_in(page: Watched, app: LiveApp, email: str) -> None:
    page.page.goto(app.url + "/?range=7d")
    assert "/login" in page.page.url
    page.page.click("#oidc-sign-in")
    page.page.fill("input[name=sub]", email)
    page.page.click("button:has-text('Authorize')")
    page.page.wait_for_load_state()


def test_signing_in_with_the_provider_lands_on_the_dashboard_and_signs_out(
    browser: Browser,  # noqa: F811
    app: LiveApp,
) -> None:
    context = browser.new_context(viewport={"width": 1400, "height": 900}, color_scheme="dark")
    page = Watched(context.new_page())
    _sign_in(page, app, JANE)
    assert page.page.url == app.url + "/?range=7d"
    page.errors.clear()  # the provider's own page loads assets from the internet
    page.page.goto(app.url + "/?range=7d")
    footer = page.page.inner_text("footer")
    assert f"signed in as {JANE} (member)" in footer
    page.shot("oidc-member-dashboard")
    page.page.click("footer button:has-text('Sign out')")
    page.page.wait_for_load_state()
    assert page.page.url.startswith(app.url + "/login")
    page.shot("login-oidc")
    page.page.goto(app.url + "/")
    assert "/login" in page.page.url
    assert page.errors == []
    context.close()
    store = Store.open(app.database_url)
    with store.transaction() as conn:
        account = rows.account(conn, JANE)
    store.close()
    assert account is not None
    assert account["role"] == "member"  # OIDC_DEFAULT_ROLE


def test_an_email_outside_the_allowed_domains_is_refused_with_a_clear_page(
    browser: Browser,  # noqa: F811
    app: LiveApp,
) -> None:
    context = browser.new_context()
    page = Watched(context.new_page())
    _sign_in(page, app, "mallory@evil.example")
    text = page.page.inner_text("main")
    assert "mallory@evil.example may not sign in here" in text
    assert "example.com" in text
    page.shot("oidc-refused")
    page.page.goto(app.url + "/api/summary")
    assert "Sign-in required" in page.page.inner_text("body")
    context.close()


def _authorize(client: httpx2.Client, app: LiveApp, email: str) -> tuple[str, str]:
    """Start a flow at the app and let the provider authorize ``email``: (code, state)."""
    start = client.get(app.url + "/login/oidc")
    assert start.status_code == 302
    authorize_url = start.headers["location"]
    assert "code_challenge=" in authorize_url
    assert "code_challenge_method=S256" in authorize_url
    assert "nonce=" in authorize_url
    back = client.post(authorize_url, data={"sub": email})
    assert back.status_code in (302, 303)
    query = dict(httpx2.URL(back.headers["location"]).params)
    return query["code"], query["state"]


def test_a_wrong_state_is_refused(app: LiveApp) -> None:
    with httpx2.Client(timeout=30) as client:
        code, state = _authorize(client, app, JANE)
        forged = client.get(
            app.url + "/login/oidc/callback", params={"code": code, "state": state + "x"}
        )
        assert forged.status_code == 400
        assert "could not be completed" in forged.text
        assert "ut_session" not in forged.headers.get("set-cookie", "")


def test_an_id_token_with_another_flows_nonce_is_refused(app: LiveApp) -> None:
    """Flow A's code (its id_token carries A's nonce) sent back with flow B's state: the
    nonce does not match the one this flow sent, and the sign-in is refused."""
    with httpx2.Client(timeout=30) as client:
        code_a, _state_a = _authorize(client, app, JANE)
        _code_b, state_b = _authorize(client, app, JANE)
        mixed = client.get(
            app.url + "/login/oidc/callback", params={"code": code_a, "state": state_b}
        )
        assert mixed.status_code == 400
        assert "ut_session" not in mixed.headers.get("set-cookie", "")


def test_a_replayed_callback_is_refused(app: LiveApp) -> None:
    with httpx2.Client(timeout=30) as client:
        code, state = _authorize(client, app, JANE)
        params = {"code": code, "state": state}
        first = client.get(app.url + "/login/oidc/callback", params=params)
        assert first.status_code == 303
        assert re.search(r"ut_session=", first.headers["set-cookie"])
        again = client.get(app.url + "/login/oidc/callback", params=params)
        assert again.status_code == 400


def test_oidc_settings_are_checked_at_start_up(tmp_path: Path) -> None:
    from usage_tracker.settings import SettingsError, load_settings

    with pytest.raises(SettingsError, match="OIDC_ISSUER, OIDC_CLIENT_ID, PUBLIC_URL"):
        load_settings(auth_mode="oidc", database_url=f"sqlite:///{tmp_path / 'x.db'}")


def test_the_providers_team_claim_puts_the_person_in_their_team(
    browser: Browser,  # noqa: F811
    app: LiveApp,
    issuer: str,
) -> None:
    """OIDC_TEAM_CLAIM (here ``groups``): the first group the provider names is the person's
    team from their sign-in on; a team from the People page wins over it."""
    from usage_tracker.store import people

    mei = "mei.chen@example.com"
    claims = {"email": mei, "groups": ["Research", "Everyone"]}
    assert httpx2.put(f"{issuer}/users/{mei}", json=claims).status_code < 300
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = Watched(context.new_page())
    _sign_in(page, app, mei)
    cookies = {c["name"]: c["value"] for c in context.cookies()}
    summary = httpx2.get(app.url + "/api/summary?start_time=0", cookies=cookies).json()
    context.close()
    assert {r["team"] for r in summary["by"]["team"]} == {"Research"}  # her keys, her team
    store = Store.open(app.database_url)
    with store.transaction() as conn:
        said = people.person_teams(conn)
    store.close()
    assert [(r["who"], r["source"], r["team"]) for r in said] == [(mei, "oidc", "Research")]
