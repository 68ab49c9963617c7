"""Settings from the environment, as an operator starting the platform meets them: the database
addresses people actually paste, the refusals that stop a misconfigured process before it serves
anything, and the development secret key that survives restarts."""

from __future__ import annotations

import stat

import pytest

from config import settings
from config.settings import SettingsError


def _load(tmp_path, **environ):
    return settings.load(environ, tmp_path / "instance")


@pytest.mark.parametrize(
    ("given", "used"),
    [
        ("postgresql://u@h/db", "postgresql+psycopg://u@h/db"),
        ("postgres://u:pw@h:5433/db", "postgresql+psycopg://u:pw@h:5433/db"),
        ("postgresql+psycopg://u@h/db", "postgresql+psycopg://u@h/db"),
        ("sqlite:////var/lib/coalition/coalition.db", "sqlite:////var/lib/coalition/coalition.db"),
    ],
)
def test_the_usual_database_addresses_are_accepted_and_postgresql_goes_through_psycopg(
    tmp_path, given, used
):
    assert _load(tmp_path, DATABASE_URL=given)["SQLALCHEMY_DATABASE_URI"] == used


@pytest.mark.parametrize("given", ["mysql://u@h/db", "postgresql+psycopg2://u@h/db", "h/db"])
def test_a_database_the_platform_does_not_support_is_refused_by_name(tmp_path, given):
    with pytest.raises(SettingsError, match="DATABASE_URL") as refused:
        _load(tmp_path, DATABASE_URL=given)
    assert repr(given.split(":", 1)[0]) in str(refused.value)


def test_without_a_database_address_the_platform_keeps_a_sqlite_file_in_its_instance_folder(
    tmp_path,
):
    config = _load(tmp_path)

    assert config["SQLALCHEMY_DATABASE_URI"] == f"sqlite:///{tmp_path / 'instance'}/coalition.db"
    assert config["COALITION_ENV"] == "development"
    assert config["REDIS_URL"] is None
    assert config["COALITION_TIMEZONE"] == "UTC"


def test_production_refuses_to_start_without_a_secret_key(tmp_path):
    with pytest.raises(SettingsError, match="SECRET_KEY is required in production"):
        _load(tmp_path, COALITION_ENV="production", DATABASE_URL="postgresql://u@h/db")
    assert not (tmp_path / "instance" / "secret_key").exists()


def test_production_uses_the_secret_key_it_is_given(tmp_path):
    config = _load(tmp_path, COALITION_ENV="production", SECRET_KEY="from-the-vault")

    assert config["SECRET_KEY"] == "from-the-vault"
    assert not (tmp_path / "instance" / "secret_key").exists()


def test_development_makes_a_private_secret_key_once_and_keeps_it_across_restarts(tmp_path):
    first = _load(tmp_path, COALITION_ENV="development")["SECRET_KEY"]
    keyfile = tmp_path / "instance" / "secret_key"

    assert len(first) >= 32
    assert keyfile.read_text() == first
    assert stat.S_IMODE(keyfile.stat().st_mode) == 0o600
    assert _load(tmp_path, COALITION_ENV="development")["SECRET_KEY"] == first


def test_two_fresh_instances_get_different_secret_keys(tmp_path):
    one = settings.load({}, tmp_path / "one")["SECRET_KEY"]
    other = settings.load({}, tmp_path / "other")["SECRET_KEY"]

    assert one != other


def test_the_coalition_time_zone_is_an_iana_zone(tmp_path):
    assert _load(tmp_path, COALITION_TIMEZONE="Europe/Berlin")["COALITION_TIMEZONE"] == (
        "Europe/Berlin"
    )
    for wrong in ("Mars/Olympus_Mons", "CEST+1", "../etc/passwd"):
        with pytest.raises(SettingsError, match="not an IANA time zone"):
            _load(tmp_path, COALITION_TIMEZONE=wrong)


def test_the_environment_must_be_one_the_platform_knows(tmp_path):
    for known in settings.ENVIRONMENTS:
        assert _load(tmp_path, COALITION_ENV=known, SECRET_KEY="k")["COALITION_ENV"] == known
    with pytest.raises(SettingsError, match="development, production, testing"):
        _load(tmp_path, COALITION_ENV="staging")


def test_the_log_level_is_taken_in_any_case(tmp_path):
    assert _load(tmp_path, LOG_LEVEL="warning")["LOG_LEVEL"] == "WARNING"
    assert _load(tmp_path)["LOG_LEVEL"] == "INFO"


def test_an_unknown_log_level_is_refused(tmp_path):
    with pytest.raises(SettingsError, match="LOG_LEVEL"):
        _load(tmp_path, LOG_LEVEL="LOUD")
