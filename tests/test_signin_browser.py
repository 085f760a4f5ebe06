"""The sign-in page and the tokens page in a real browser: dark and light, desktop and 360 px,
no console errors, no sideways scrolling. Screenshots land in test-artifacts/."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser

from usage_tracker.store import Store

from .conftest import LiveApp, live_app
from .test_auth import ADMIN, JANE, PASSWORD, _add_account
from .test_browser import Watched, browser  # noqa: F401 - the shared browser fixture


def sign_in(page: Watched, app: LiveApp, email: str, then: str = "/") -> None:
    page.page.goto(app.url + "/login")
    page.page.fill("input[name=email]", email)
    page.page.fill("input[name=password]", PASSWORD)
    page.page.click("button[type=submit]")
    page.page.wait_for_url(app.url + then)


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveApp]:
    workdir = tmp_path_factory.mktemp("signin-browser")
    url = f"sqlite:///{workdir / 'b.db'}"
    Store.open(url).close()
    _add_account(url, ADMIN, "admin")
    _add_account(url, JANE, "member")
    with live_app(url, workdir, auth_mode="password") as live:
        yield live


@pytest.mark.parametrize(("theme", "width"), [("dark", 1400), ("light", 1400), ("dark", 360)])
def test_the_sign_in_page_works_in_each_theme_and_on_a_phone(
    browser: Browser,  # noqa: F811
    app: LiveApp,
    theme: str,
    width: int,
) -> None:
    context = browser.new_context(viewport={"width": width, "height": 800}, color_scheme="dark")
    page = Watched(context.new_page())
    page.page.goto(app.url + "/login")
    page.page.evaluate(f"localStorage.setItem('usage-tracker-theme', '{theme}')")
    page.page.goto(app.url + "/?range=30d")
    assert "/login?next=" in page.page.url
    assert page.page.evaluate("document.documentElement.dataset.theme") == theme
    scroll = page.page.evaluate("document.documentElement.scrollWidth")
    assert scroll <= width
    page.shot(f"login-{theme}-{width}")
    page.page.fill("input[name=email]", ADMIN)
    page.page.fill("input[name=password]", "wrong password!")
    page.page.click("button[type=submit]")
    assert "do not match an account" in page.page.inner_text("main")
    page.errors.clear()  # the 401 of the failed sign-in is logged by the browser, rightly
    page.page.fill("input[name=password]", PASSWORD)
    page.page.click("button[type=submit]")
    page.page.wait_for_url(app.url + "/?range=30d")
    assert "signed in as admin@example.com (admin)" in page.page.inner_text("footer")
    assert page.errors == []
    context.close()


def test_an_admin_creates_a_token_on_the_page(
    browser: Browser,  # noqa: F811
    app: LiveApp,
) -> None:
    context = browser.new_context(viewport={"width": 1400, "height": 900}, color_scheme="dark")
    page = Watched(context.new_page())
    sign_in(page, app, ADMIN)
    page.page.click("footer a:has-text('API tokens')")
    page.page.fill("input[name=name]", "nightly export")
    page.page.click("button:has-text('Create token')")
    token = page.page.inner_text("#new-token")
    assert token.startswith("ut_")
    page.shot("tokens-admin")
    page.page.goto(app.url + "/people")
    page.page.fill("form[action='/people/rename'] input[name=new_name]", "Jane S.")
    page.page.select_option("form[action='/people/rename'] select[name=person]", "Jane Smith")
    page.page.click("form[action='/people/rename'] button")
    page.page.wait_for_url(app.url + "/people")
    assert "Jane S." in page.page.inner_text("#people")
    page.shot("people-admin")
    assert page.errors == []
    context.close()


def test_a_member_sees_only_themselves_on_the_people_page_on_a_phone(
    browser: Browser,  # noqa: F811
    app: LiveApp,
) -> None:
    context = browser.new_context(viewport={"width": 360, "height": 800}, color_scheme="dark")
    page = Watched(context.new_page())
    page.page.goto(app.url + "/login")
    page.page.evaluate("localStorage.setItem('usage-tracker-theme', 'light')")
    sign_in(page, app, JANE)
    page.page.goto(app.url + "/people")
    rows = page.page.locator("#people tbody tr").count()
    assert rows == 1
    assert page.page.locator("form[action='/people/rename']").count() == 0
    page.shot("people-member-phone-light")
    assert page.errors == []
    context.close()
