"""Settings: validated at start-up, every one documented, secrets never echoed."""

from __future__ import annotations

from pathlib import Path

import pytest

from usage_tracker.settings import Settings, SettingsError, load_settings

from .conftest import ROOT


def test_every_setting_is_in_the_readme_and_the_env_example() -> None:
    names = [name.upper() for name in Settings.model_fields]
    readme = (ROOT / "README.md").read_text()
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
