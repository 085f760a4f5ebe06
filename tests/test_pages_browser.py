"""Every page in a real browser, signed in with each role: the site's navigation by role, text
that meets WCAG AA contrast in both themes, nothing cut on a 360 px phone, and a screenshot of
each (test-artifacts/pages/) for a person to look at."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page

from usage_tracker.store import Store

from .conftest import LiveApp, latest, live_app
from .test_auth import ADMIN, JANE, PASSWORD, VIEWER, _add_account
from .test_browser import ARTIFACTS, Watched, browser  # noqa: F401 - the fixture

NEWCOMER = "newcomer@example.com"
"""A member whose email owns no key."""
PAGES = {
    "admin": [
        "/",
        "/people",
        "/reconciliation",
        "/limits",
        "/statements",
        "/alerts",
        "/accounts",
        "/tokens",
        "/docs",
    ],
    "viewer": ["/", "/people", "/reconciliation", "/limits", "/statements", "/docs"],
    "member": ["/", "/people", "/reconciliation"],
    "newcomer": ["/", "/people"],
}
NAV = {
    "admin": PAGES["admin"],
    "viewer": PAGES["viewer"],
    "member": ["/", "/people", "/reconciliation", "/docs"],
    "newcomer": ["/", "/people", "/reconciliation", "/docs"],
}
"""The navigation each role sees (a member's has no Limits nor Statements)."""
EMAILS = {"admin": ADMIN, "viewer": VIEWER, "member": JANE, "newcomer": NEWCOMER}
CONTRAST = (Path(__file__).parent / "js" / "contrast.js").read_text()


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveApp]:
    workdir = tmp_path_factory.mktemp("pages")
    url = f"sqlite:///{workdir / 'pages.db'}"
    Store.open(url).close()
    for email, role in (
        (ADMIN, "admin"),
        (VIEWER, "viewer"),
        (JANE, "member"),
        (NEWCOMER, "member"),
    ):
        _add_account(url, email, role)
    with live_app(url, workdir, now=latest(18), auth_mode="password") as live:
        yield live


def new_page(chromium: Browser, width: int, scheme: str) -> Watched:
    """A page in a context of its own, ``width`` px wide (a phone's below 600) in the
    ``scheme`` colour scheme; close it with ``watched.page.context.close()``."""
    context = chromium.new_context(
        viewport={"width": width, "height": 900},
        color_scheme=scheme,  # type: ignore[arg-type]
        is_mobile=width < 600,
        device_scale_factor=2 if width < 600 else 1,
    )
    return Watched(context.new_page())


def _signed_in(chromium: Browser, app: LiveApp, role: str, width: int, scheme: str) -> Watched:
    watched = new_page(chromium, width, scheme)
    page = watched.page
    page.goto(app.url + "/login")
    page.fill("input[name=email]", EMAILS[role])
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(app.url + "/")
    return watched


def _cut(page: Page) -> list[str]:
    """What does not fit: the page wider than the screen, a table wider than its box."""
    return page.evaluate(
        """() => {
          const cut = [];
          if (document.documentElement.scrollWidth > window.innerWidth) cut.push("page");
          for (const box of document.querySelectorAll("#content .scroll")) {
            const table = box.querySelector("table");
            const shown = table && table.getBoundingClientRect().width;
            if (shown && box.scrollWidth > box.clientWidth + 1)
              cut.push((table.id || table.dataset.table || table.closest("section").id || "table")
                + ` ${box.scrollWidth}/${box.clientWidth}`);
          }
          return cut;
        }"""
    )


@pytest.mark.slow
@pytest.mark.parametrize("role", list(PAGES))
def test_every_page_by_role_navigates_reads_and_fits(
    app: LiveApp,
    browser: Browser,  # noqa: F811
    role: str,
) -> None:
    shots = ARTIFACTS / "pages"
    shots.mkdir(parents=True, exist_ok=True)
    for scheme in ("dark", "light"):
        for width in (1440, 360):
            watched = _signed_in(browser, app, role, width, scheme)
            page = watched.page
            for path in PAGES[role]:
                page.goto(app.url + path)
                page.wait_for_load_state("networkidle")
                where = f"{role} {path} {width} {scheme}"
                nav = page.locator('nav[aria-label="Pages"] a')
                links = nav.evaluate_all("(links) => links.map((a) => a.getAttribute('href'))")
                expected = NAV[role]
                assert links == expected, where
                current = page.locator('nav[aria-label="Pages"] a[aria-current="page"]')
                assert current.get_attribute("href") == path, where
                assert page.locator("html").get_attribute("data-theme") == scheme
                if path != "/docs":
                    assert page.evaluate(CONTRAST) == [], where
                    assert _cut(page) == [], where
                if path in ("/", "/people", "/reconciliation"):  # dates as the page writes them
                    shown = page.locator('input[name="start"]').input_value()
                    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", shown), (where, shown)
                name = path.strip("/") or "dashboard"
                page.screenshot(path=shots / f"{name}-{role}-{width}-{scheme}.png", full_page=True)
            for path in ("/?range=lastquarter", "/people?range=lastquarter"):  # big figures
                page.goto(app.url + path)
                assert _cut(page) == [], f"{role} {path} {width} {scheme}"
            assert watched.errors == [], role
            if role != "admin":
                page.goto(app.url + "/accounts")  # the browser logs the 403 itself
                assert page.locator("h2").inner_text() == "Not for your role"
                assert "ask an admin" in page.locator(".banner").inner_text()
            page.context.close()


def test_the_reconciliation_reads_on_a_phone(app: LiveApp, browser: Browser) -> None:  # noqa: F811
    watched = _signed_in(browser, app, "admin", 360, "dark")
    page = watched.page
    page.goto(app.url + "/reconciliation")
    height = page.evaluate("document.documentElement.scrollHeight")
    assert height < 8000  # the per-day table folds away (42,626 px before)
    assert _cut(page) == []
    page.locator("#per-day summary").click()
    assert page.locator("#reconciliation-day").is_visible()
    assert _cut(page) == []
    page.context.close()
    assert watched.errors == []
