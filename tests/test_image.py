"""The Docker image, tested without Docker (images can be neither pulled nor built here): the
Dockerfile's settings, the wheel it installs holding every file the app reads, and that wheel
served with the image's settings, reached from another address as a browser would reach a
container."""

from __future__ import annotations

import re
import shlex
import socket
import subprocess
import sys
import zipfile
from pathlib import Path

import httpx2
import pytest

from usage_tracker.settings import SettingsError, load_settings

from .conftest import ADMIN_KEY, serve_process
from .test_accounts import LINK

ROOT = Path(__file__).parent.parent
PASSWORD = "correct horse battery"


def _instructions() -> list[tuple[str, str]]:
    """(instruction, arguments) of the Dockerfile, continuation lines joined."""
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    found = []
    for raw in text.splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            found.append((word.upper(), rest.strip()))
    return found


def image_environment() -> dict[str, str]:
    env: dict[str, str] = {}
    for word, rest in _instructions():
        if word == "ENV":
            env.update(pair.split("=", 1) for pair in shlex.split(rest))
    return env


def test_the_image_signs_in_with_passwords_and_checks_its_health() -> None:
    instructions = dict(_instructions())
    assert re.fullmatch(r"python:\d+\.\d+\.\d+-slim-\w+", instructions["FROM"])  # a release
    env = image_environment()
    settings = load_settings(**{k.lower(): v for k, v in env.items() if k.isupper()})
    assert settings.auth_mode == "password"
    assert settings.host == "0.0.0.0"
    assert '"usage-tracker", "healthcheck"' in instructions["HEALTHCHECK"]
    assert instructions["USER"] == "tracker"


def test_header_mode_beyond_loopback_needs_trusted_proxies() -> None:
    with pytest.raises(SettingsError, match=r"AUTH_MODE=header on HOST=0\.0\.0\.0 needs TRUSTED"):
        load_settings(auth_mode="header", host="0.0.0.0")
    named = load_settings(auth_mode="header", host="0.0.0.0", trusted_proxies="172.16.0.0/12")
    assert named.trusted_proxies == ("172.16.0.0/12",)
    loopback = load_settings(auth_mode="header")  # a proxy on this host
    assert loopback.trusted_proxies == ("127.0.0.1", "::1")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(ROOT)],
        check=True,
        capture_output=True,
    )
    (built,) = out.glob("usage_tracker-*.whl")
    return built


def test_the_wheel_holds_every_file_of_the_package(wheel: Path) -> None:
    """What `pip install .` in the image installs: every file under src/usage_tracker that
    git knows, templates, assets, data and migrations included."""
    listed = subprocess.run(
        ["git", "ls-files", "src/usage_tracker"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    tracked = {p.removeprefix("src/") for p in listed}
    untracked = subprocess.run(
        ["git", "ls-files", "--others", "--exclude-standard", "src/usage_tracker"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    tracked |= {
        p.removeprefix("src/") for p in untracked
    }  # new files of a change not yet committed
    with zipfile.ZipFile(wheel) as archive:
        shipped = {n for n in archive.namelist() if n.startswith("usage_tracker/")}
    assert tracked - shipped == set()
    assert {"usage_tracker/web/templates/setup.html", "usage_tracker/data/pools.json"} <= shipped


def _outward_address() -> str:
    """This machine's address on its network (not loopback), as a container's is."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect(("192.0.2.1", 9))  # no packet is sent: this only picks the interface
        address = s.getsockname()[0]
    assert not address.startswith("127."), "this machine has no address besides loopback"
    return str(address)


def test_the_wheel_served_as_the_image_serves_it_lets_the_first_admin_in(
    wheel: Path, tmp_path: Path, sim_url: str
) -> None:
    """The README's `docker run`, without Docker: the built wheel alone on the import path,
    the image's settings, HOST=0.0.0.0, and every request from a non-loopback address. It
    must answer the login page (not 401), print a setup link, and let the admin in."""
    target = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "-q",
            "--target",
            str(target),
            str(wheel),
        ],
        check=True,
        capture_output=True,
    )
    address = _outward_address()
    key = tmp_path / "openai-admin-key"
    key.write_text(ADMIN_KEY + "\n")
    env = {
        **image_environment(),
        "PYTHONPATH": str(target),  # ahead of the checkout's editable install
        "DATABASE_URL": f"sqlite:///{tmp_path / 'data.db'}",
        "KEY_MAPPINGS_FILE": str(tmp_path / "api_key_mappings.json"),
        "ADMIN_EMAILS": "ops@example.com",
        "OPENAI_ADMIN_KEY_FILE": str(key),  # the compose file's secret
        "OPENAI_BASE_URL": sim_url,
    }
    env.pop("HOST")
    env.pop("PORT")
    with serve_process(env, tmp_path, host="0.0.0.0", reach=address) as (url, log):
        with httpx2.Client(base_url=url, timeout=30) as browser:
            page = browser.get("/", headers={"Accept": "text/html"})
            assert page.status_code == 303
            assert page.headers["location"].startswith("/login")
            assert browser.get("/login").status_code == 200
            output = log.read_text()
            link = LINK.search(output)
            assert link, output
            form = browser.get(f"/setup/{link.group(1)}")
            assert 'value="ops@example.com"' in form.text
            created = browser.post(
                f"/setup/{link.group(1)}",
                data={"email": "ops@example.com", "password": PASSWORD, "password_again": PASSWORD},
            )
            assert created.status_code == 303
            assert browser.get("/", headers={"Accept": "text/html"}).status_code == 200
        port = url.rsplit(":", 1)[1]
        health = subprocess.run(
            [sys.executable, "-m", "usage_tracker", "healthcheck"],
            env={**env, "PORT": port, "PATH": "/usr/bin:/bin"},
            cwd=tmp_path,
            capture_output=True,
            text=True,
            check=False,
        )
        assert health.returncode == 0, health.stderr
        assert '"status"' in health.stdout
    imported = subprocess.run(
        [sys.executable, "-c", "import usage_tracker; print(usage_tracker.__file__)"],
        env={"PYTHONPATH": str(target)},
        capture_output=True,
        text=True,
        check=True,
    )
    assert imported.stdout.startswith(str(target))
    stopped = subprocess.run(
        [sys.executable, "-m", "usage_tracker", "healthcheck"],
        env={**env, "PORT": port},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert stopped.returncode == 1
    assert "nothing answers" in stopped.stderr


def test_compose_runs_the_image_on_sqlite_or_beside_postgresql() -> None:
    """What can be checked without Docker: the services, the secret, the volume, the profile."""
    import yaml

    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    tracker = compose["services"]["tracker"]
    assert tracker["build"] == "."
    assert tracker["environment"]["AUTH_MODE"] == "password"
    assert tracker["environment"]["OPENAI_ADMIN_KEY_FILE"] == "/run/secrets/openai-admin-key"
    assert "OPENAI_ADMIN_KEY" not in tracker["environment"]  # a secret file, never a variable
    assert tracker["volumes"] == ["tracker-data:/data"]
    assert tracker["environment"]["DATABASE_URL"].endswith(":-sqlite:////data/usage-tracker.db}")
    postgres = compose["services"]["postgres"]
    assert postgres["profiles"] == ["postgres"]
    assert tracker["depends_on"]["postgres"] == {"condition": "service_healthy", "required": False}
    assert "ports" not in postgres  # reachable only by the tracker
    env = image_environment()
    assert env["DATABASE_URL"] == "sqlite:////data/usage-tracker.db"
