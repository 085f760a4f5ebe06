"""Accounts without a shell: the first admin's one-time setup link (or ADMIN_PASSWORD_FILE),
and the Accounts page where admins add people, change roles and remove them."""

from __future__ import annotations

import re
from pathlib import Path

import httpx2
import pytest

from usage_tracker.settings import SettingsError, load_settings
from usage_tracker.store import Store
from usage_tracker.store import accounts as rows
from usage_tracker.store import people as audit
from usage_tracker.web.accounts import first_admin

from .conftest import live_app
from .test_auth import PASSWORD, _form_values, _login

LINK = re.compile(r"/setup/([A-Za-z0-9_-]{20,})")


def _store(tmp_path: Path) -> Store:
    return Store.open(f"sqlite:///{tmp_path / 'accounts.db'}")


def _link(lines: list[str]) -> str:
    found = LINK.search("\n".join(lines))
    assert found, lines
    return found.group(1)


def test_with_no_admin_serve_prints_a_setup_link_and_only_the_newest_works_once(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'accounts.db'}"
    Store.open(url).close()
    settings = load_settings(database_url=url, auth_mode="password", host="0.0.0.0", port=3000)
    store = Store.open(url)
    older = _link(first_admin(settings, store))
    lines = first_admin(settings, store)  # a restart: a new link, the older one forgotten
    assert lines[-1].strip().startswith("http://localhost:3000/setup/")
    newest = _link(lines)
    store.close()
    with (
        live_app(url, tmp_path, auth_mode="password") as app,
        httpx2.Client(base_url=app.url, timeout=30) as client,
    ):
        assert client.get(f"/setup/{older}").status_code == 404
        form = client.get(f"/setup/{newest}")
        assert form.status_code == 200
        assert "Create the admin" in form.text
        assert form.headers["cache-control"] == "no-store"
        differ = {"email": "ops@example.com", "password": PASSWORD, "password_again": "other!"}
        refused = client.post(f"/setup/{newest}", data=differ)
        assert refused.status_code == 400
        assert "differ" in refused.text
        done = client.post(
            f"/setup/{newest}",
            data={"email": "Ops@Example.com", "password": PASSWORD, "password_again": PASSWORD},
        )
        assert done.status_code == 303, done.text
        assert client.get("/accounts").status_code == 200  # signed in, as an admin
        again = {"email": "evil@example.com", "password": PASSWORD, "password_again": PASSWORD}
        assert client.post(f"/setup/{newest}", data=again).status_code == 404
    store = Store.open(url)
    with store.transaction() as conn:
        assert [(a["email"], a["role"]) for a in rows.accounts(conn)] == [
            ("ops@example.com", "admin")
        ]
        assert audit.recent_changes(conn)[0]["action"] == "account.add"
    assert first_admin(settings, store) == []  # an admin can sign in: no link any more
    store.close()


def test_admin_password_file_creates_the_first_admin_once(tmp_path: Path) -> None:
    secret = tmp_path / "admin-password"
    secret.write_text("a long enough password\n")
    store = _store(tmp_path)
    settings = load_settings(
        database_url=str(store.engine.url),
        auth_mode="password",
        admin_emails="ops@example.com",
        admin_password_file=secret,
    )
    assert first_admin(settings, store) == [
        "created the first admin, ops@example.com, with the password in ADMIN_PASSWORD_FILE"
    ]
    assert first_admin(settings, store) == []
    with store.transaction() as conn:
        account = rows.account(conn, "ops@example.com")
    assert account is not None
    assert account["role"] == "admin"
    assert account["password_hash"]
    store.close()
    short = tmp_path / "short"
    short.write_text("short")
    (tmp_path / "fresh").mkdir()
    fresh = _store(tmp_path / "fresh")
    with pytest.raises(SettingsError, match="ADMIN_PASSWORD_FILE: a password needs at least"):
        first_admin(settings.model_copy(update={"admin_password_file": short}), fresh)
    fresh.close()


def test_admin_password_file_needs_an_email(tmp_path: Path) -> None:
    secret = tmp_path / "admin-password"
    secret.write_text("a long enough password")
    store = _store(tmp_path)
    settings = load_settings(
        database_url=str(store.engine.url), auth_mode="password", admin_password_file=secret
    )
    with pytest.raises(SettingsError, match="ADMIN_PASSWORD_FILE needs ADMIN_EMAILS"):
        first_admin(settings, store)
    store.close()


def _csrf(client: httpx2.Client, path: str = "/accounts") -> str:
    return _form_values(client.get(path).text)["csrf_token"]


def test_admins_add_change_and_remove_accounts_on_the_page(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'accounts.db'}"
    store = Store.open(url)
    with store.transaction() as conn:
        from usage_tracker.people.access import hash_password

        rows.save_account(
            conn,
            "ops@example.com",
            role="admin",
            name=None,
            password_hash=hash_password(PASSWORD),
            now=0,
        )
    store.close()
    with (
        live_app(url, tmp_path, auth_mode="password") as app,
        httpx2.Client(base_url=app.url, timeout=30) as admin,
    ):
        assert _login(admin, "ops@example.com", PASSWORD).status_code == 303
        csrf = _csrf(admin)
        forged = admin.post("/accounts", data={"email": "x@example.com", "role": "member"})
        assert forged.status_code == 403
        added = admin.post(
            "/accounts",
            data={"email": "Jane.Smith@example.com", "role": "member", "csrf_token": csrf},
        )
        assert added.status_code == 200
        assert added.headers["cache-control"] == "no-store"
        link = LINK.search(added.text)
        assert link, added.text
        # Jane chooses her password through the link and lands signed in, as a member.
        with httpx2.Client(base_url=app.url, timeout=30) as jane:
            form = jane.get(f"/setup/{link.group(1)}")
            assert "jane.smith@example.com" in form.text
            assert 'name="email"' not in form.text
            chosen = {"password": PASSWORD, "password_again": PASSWORD}
            assert jane.post(f"/setup/{link.group(1)}", data=chosen).status_code == 303
            refused = jane.get("/accounts", headers={"Accept": "text/html"})
            assert refused.status_code == 403
            assert "text/html" in refused.headers["content-type"]
            assert "Not for your role" in refused.text
            assert 'aria-label="Pages"' in refused.text
            assert 'href="/accounts"' not in refused.text  # a member's navigation has no admin page
            assert jane.get("/api/alerts").json()["error"]["message"]  # scripts still get JSON
        with httpx2.Client(base_url=app.url, timeout=30) as jane:
            assert _login(jane, "jane.smith@example.com", PASSWORD).status_code == 303
            # Made a viewer, then removed: her session ends with the account.
            role = {"email": "jane.smith@example.com", "role": "viewer", "csrf_token": csrf}
            assert admin.post("/accounts", data=role).status_code == 303
            assert jane.get("/reconciliation").status_code == 200
            removed = admin.post(
                "/accounts/jane.smith@example.com/remove", data={"csrf_token": csrf}
            )
            assert removed.status_code == 303
            assert jane.get("/api/summary").status_code == 401
        # The last admin cannot be demoted, nor remove themselves.
        demote = {"email": "ops@example.com", "role": "viewer", "csrf_token": csrf}
        refused = admin.post("/accounts", data=demote)
        assert refused.status_code == 400
        assert "last admin" in refused.text
        self_removal = admin.post("/accounts/ops@example.com/remove", data={"csrf_token": csrf})
        assert self_removal.status_code == 400
    store = Store.open(url)
    with store.transaction() as conn:
        assert [a["email"] for a in rows.accounts(conn)] == ["ops@example.com"]
        actions = [c["action"] for c in reversed(audit.recent_changes(conn))]
    store.close()
    assert actions == ["account.add", "account.password", "account.role", "account.remove"]
