"""The guard in front of every request: the proxy trust rule, the Host check, HEAD and 405,
security headers and JSON errors, through real servers (``serve`` as a process where the
server's own options matter)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest
from starlette.types import Receive, Scope, Send

from usage_tracker.web.guard import Guard, HostRule
from usage_tracker.web.proxy import ProxyTrust
from usage_tracker.web.serving import BackgroundServer

from .conftest import LiveApp, live_app, serve_process

USER = "X-Forwarded-User"


def _header_mode(tmp_path: Path, **env: str) -> dict[str, str]:
    return {
        "AUTH_MODE": "header",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'guard.db'}",
        "KEY_MAPPINGS_FILE": str(tmp_path / "none.json"),
        **env,
    }


def test_a_forwarded_for_naming_a_trusted_proxy_does_not_sign_anyone_in(tmp_path: Path) -> None:
    """The reported bypass: uvicorn used to rewrite the peer from X-Forwarded-For first."""
    env = _header_mode(tmp_path, TRUSTED_PROXIES="10.9.9.9")
    with serve_process(env, tmp_path) as (url, _log):
        spoofed = httpx2.get(
            url + "/api/summary", headers={USER: "mallory", "X-Forwarded-For": "10.9.9.9"}
        )
        assert spoofed.status_code == 401
        assert spoofed.json()["error"]["message"].startswith("Sign-in required")
        assert httpx2.get(url + "/api/summary", headers={USER: "mallory"}).status_code == 401


def test_a_proxy_that_appends_the_client_address_signs_people_in(tmp_path: Path) -> None:
    """nginx's $proxy_add_x_forwarded_for: the peer is the trusted proxy (127.0.0.1 by
    default), the header ends with the client's address; logs show the client."""
    with serve_process(_header_mode(tmp_path), tmp_path) as (url, log):
        headers = {USER: "jane", "X-Forwarded-For": "198.51.100.23, 203.0.113.7"}
        response = httpx2.get(url + "/api/summary", headers=headers)
        assert response.status_code == 200, response.text
        assert httpx2.get(url + "/", headers=headers).status_code == 200
        assert "203.0.113.7" in log.read_text()  # the access log names the client…
        assert "198.51.100.23" not in log.read_text()  # …not what the client claimed


def test_the_user_header_twice_is_refused(tmp_path: Path) -> None:
    with serve_process(_header_mode(tmp_path), tmp_path) as (url, _log):
        twice = httpx2.get(url + "/api/summary", headers=[(USER, "jane"), (USER, "admin")])
        assert twice.status_code == 400
        assert USER in twice.json()["error"]["message"]


@pytest.mark.parametrize(
    ("peer", "forwarded", "client"),
    [
        ("203.0.113.9", ["10.0.0.1"], "203.0.113.9"),  # an untrusted peer is the client
        ("127.0.0.1", [], "127.0.0.1"),
        ("127.0.0.1", ["203.0.113.7"], "203.0.113.7"),
        ("127.0.0.1", ["6.6.6.6, 203.0.113.7"], "203.0.113.7"),  # a forged first hop is ignored
        ("127.0.0.1", ["203.0.113.7, 10.1.2.3"], "203.0.113.7"),  # trusted hops are skipped
        ("127.0.0.1", ["203.0.113.7", "10.1.2.3"], "203.0.113.7"),  # the header twice
        ("127.0.0.1", ["10.1.2.3"], "10.1.2.3"),  # every hop trusted: the farthest
        ("::1", ["2001:db8::5"], "2001:db8::5"),
        ("127.0.0.1", ["not-an-address"], "not-an-address"),
    ],
)
def test_the_trust_rule_reads_forwarded_addresses_only_through_trusted_hops(
    peer: str, forwarded: list[str], client: str
) -> None:
    trust = ProxyTrust.of(["127.0.0.1", "::1", "10.0.0.0/8"])
    assert trust.client(peer, forwarded) == client


def test_forwarded_proto_is_believed_only_from_a_trusted_peer() -> None:
    trust = ProxyTrust.of(["127.0.0.1"])
    assert trust.scheme("127.0.0.1", "http", "https") == "https"
    assert trust.scheme("203.0.113.9", "http", "https") == "http"
    assert trust.scheme("127.0.0.1", "http", "gopher") == "http"


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveApp]:
    workdir = tmp_path_factory.mktemp("guard")
    with live_app(f"sqlite:///{workdir / 'g.db'}", workdir) as live:
        yield live


@pytest.mark.parametrize("host", ["evil.example", "evil.example:80", "192.168.1.5", "[fe80::1]"])
def test_without_sign_in_only_loopback_host_names_are_served(app: LiveApp, host: str) -> None:
    """DNS rebinding: a page elsewhere whose name resolves to 127.0.0.1 gets nothing."""
    for path in ("/", "/api/summary", "/api/usage?start_time=0", "/static/css/app.css"):
        response = httpx2.get(app.url + path, headers={"Host": host})
        assert response.status_code == 400, path
        assert "ALLOWED_HOSTS" in response.json()["error"]["message"]
        assert response.headers["content-security-policy"]


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1", "[::1]"])
def test_loopback_host_names_are_served(app: LiveApp, host: str) -> None:
    port = app.url.rsplit(":", 1)[1]
    response = httpx2.get(app.url + "/", headers={"Host": f"{host}:{port}"})
    assert response.status_code == 200


def test_asset_urls_never_come_from_the_host_header(app: LiveApp) -> None:
    from html.parser import HTMLParser

    port = app.url.rsplit(":", 1)[1]
    page = httpx2.get(app.url + "/", headers={"Host": f"localhost:{port}"}).text
    urls: list[str] = []

    class Assets(HTMLParser):
        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            urls.extend(v or "" for k, v in attrs if k in ("src", "href") and tag != "a")

    Assets().feed(page)
    assert urls
    assert all(u.startswith("/static/") for u in urls), urls


def test_allowed_hosts_limit_a_signed_in_deployment(tmp_path: Path) -> None:
    settings = {"auth_mode": "header", "allowed_hosts": "tracker.example.com,*.corp.example"}
    with live_app(f"sqlite:///{tmp_path / 'h.db'}", tmp_path, **settings) as live:
        user = {USER: "jane"}
        for host, status in [
            ("tracker.example.com", 200),
            ("eu.corp.example:443", 200),
            ("evil.example", 400),
            ("corp.example.evil", 400),
        ]:
            response = httpx2.get(live.url + "/api/health", headers={**user, "Host": host})
            assert response.status_code == status, host


@pytest.mark.parametrize("path", ["/", "/api/summary", "/api/health", "/api/tiers", "/docs"])
def test_head_works_wherever_get_does(app: LiveApp, path: str) -> None:
    get = httpx2.get(app.url + path)
    head = httpx2.head(app.url + path)
    assert head.status_code == get.status_code == 200
    assert head.content == b""
    assert head.headers["content-type"] == get.headers["content-type"]


def test_a_wrong_method_is_a_405_with_allow_and_the_error_body(app: LiveApp) -> None:
    response = httpx2.post(app.url + "/api/summary")
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, HEAD"
    assert response.json()["error"]["message"]


@pytest.mark.parametrize(
    ("params", "param"),
    [
        ({"start_time": 9223372036854771200}, "start_time"),
        ({"start_time": 3600, "end_time": 9223372036854771200}, "end_time"),
        ({"start_time": 7200, "end_time": 3600}, "end_time"),
        ({"start_time": -3600}, "start_time"),
    ],
)
def test_bad_summary_ranges_are_a_400_with_the_error_body_and_headers(
    app: LiveApp, params: dict[str, int], param: str
) -> None:
    response = httpx2.get(app.url + "/api/summary", params=params)
    assert response.status_code == 400
    assert response.json()["error"]["param"] == param
    assert response.headers["x-content-type-options"] == "nosniff"


def test_an_unexpected_error_is_a_json_500_with_security_headers(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def broken(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            raise RuntimeError("a bug")

    guarded = Guard(broken, trust=ProxyTrust.of([]), hosts=HostRule([]))
    with BackgroundServer(guarded) as server:
        response = httpx2.get(server.url + "/")
    assert response.status_code == 500
    assert response.json()["error"]["message"].startswith("Something went wrong")
    assert "a bug" not in response.text
    assert response.headers["content-security-policy"]
    assert "a bug" in caplog.text  # the details go to the log
