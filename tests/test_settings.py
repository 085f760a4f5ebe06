"""Settings: validated at start-up, every one documented, secrets never echoed."""

from __future__ import annotations

from pathlib import Path

import pytest

from usage_tracker.settings import Settings, SettingsError, load_settings

from .conftest import ROOT


def test_every_setting_is_in_the_settings_doc_and_the_env_example() -> None:
    names = [name.upper() for name in Settings.model_fields]
    readme = (ROOT / "docs" / "settings.md").read_text()
    example = (ROOT / ".env.example").read_text()
    assert [n for n in names if n not in readme] == []
    assert [n for n in names if n not in example] == []


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        ({"backfill_days": 0}, "BACKFILL_DAYS"),
        ({"usage_tier": "6"}, "USAGE_TIER"),
        ({"database_url": "mysql://x"}, "DATABASE_URL"),
        ({"display_timezone": "Mars/Olympus"}, "DISPLAY_TIMEZONE"),
        ({"port": 70000}, "PORT"),
    ],
)
def test_a_bad_value_is_named(overrides: dict[str, object], named: str) -> None:
    with pytest.raises(SettingsError, match=named):
        load_settings(**overrides)


def test_the_key_file_is_read_and_the_key_is_never_shown(tmp_path: Path) -> None:
    key_file = tmp_path / "key"
    key_file.write_text("sk-admin-FromAFile0123456789\n")
    settings = load_settings(openai_admin_key_file=key_file)
    assert settings.admin_key() == "sk-admin-FromAFile0123456789"
    assert "FromAFile" not in repr(settings)
    assert "FromAFile" not in str(settings.model_dump())


def test_a_missing_key_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="OPENAI_ADMIN_KEY_FILE"):
        load_settings(openai_admin_key_file=tmp_path / "nope")


def test_plain_postgresql_urls_use_psycopg() -> None:
    assert (
        load_settings(database_url="postgresql://u@h/db").database_url
        == "postgresql+psycopg://u@h/db"
    )


def test_an_error_across_settings_never_shows_the_key() -> None:
    with pytest.raises(SettingsError) as raised:
        load_settings(openai_admin_key="sk-admin-MustNotLeak0123456789", host="0.0.0.0")
    assert "HOST=0.0.0.0" in str(raised.value)
    assert "MustNotLeak" not in str(raised.value)


def test_the_tests_never_read_a_checkouts_env_file_and_the_variable_names_another(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The README's `cp .env.example .env` made five tests fail: the suite read it."""
    import os

    from usage_tracker.settings import ENV_FILE_VARIABLE, SettingsError, load_settings

    assert os.environ[ENV_FILE_VARIABLE] == ""  # set by conftest for every test and process
    env = tmp_path / "settings.env"
    env.write_text("SYNC_CONCURRENCY=0\n")
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("SYNC_CONCURRENCY=0\n")
    assert load_settings().sync_concurrency != 0  # the .env here is not read
    monkeypatch.setenv(ENV_FILE_VARIABLE, str(env))
    with pytest.raises(SettingsError, match="SYNC_CONCURRENCY"):
        load_settings()
    monkeypatch.delenv(ENV_FILE_VARIABLE)
    with pytest.raises(SettingsError, match="SYNC_CONCURRENCY"):
        load_settings()  # unset: .env, as for everyone else


def test_a_blank_secret_is_not_set() -> None:
    """``OPENAI_ADMIN_KEY=`` in a compose or env file means no key (serve stored data), not an
    empty key that fails at start-up."""
    settings = load_settings(openai_admin_key="", alert_urls=" ", metrics_token="")
    assert settings.openai_admin_key is None
    assert settings.alert_urls is None
    assert settings.metrics_token is None
