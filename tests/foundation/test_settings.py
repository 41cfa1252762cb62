"""Settings: where configuration comes from and how database URLs are normalised."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from api.settings import Settings, asyncpg_dsn

_VARIABLES = ("DATABASE_URL", "EXCHANGE_DATABASE_URL", "EXCHANGE_HOST", "EXCHANGE_PORT", "EXCHANGE_LOG_LEVEL",
              "EXCHANGE_DATA_DIR", "EXCHANGE_PGDATA", "HOST", "PORT")


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in _VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)  # no stray .env from the developer's checkout


def test_defaults_listen_on_localhost_8000_with_embedded_database() -> None:
    settings = Settings()
    assert (settings.database_url, settings.host, settings.port, settings.log_level) == (None, "127.0.0.1", 8000, "info")
    assert settings.data_dir == Path("var")
    assert settings.pgdata == Path("var") / "pgdata"


def test_pgdata_follows_data_dir_unless_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EXCHANGE_DATA_DIR", "/srv/exchange")
    assert Settings().pgdata == Path("/srv/exchange/pgdata")
    monkeypatch.setenv("EXCHANGE_PGDATA", "/fast-disk/pg")
    assert Settings().pgdata == Path("/fast-disk/pg")


def test_database_url_is_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql+asyncpg://u:p@db.example:5433/exchange")
    assert Settings().database_url == "postgresql+asyncpg://u:p@db.example:5433/exchange"


@pytest.mark.parametrize("scheme", ["postgres", "postgresql", "postgresql+asyncpg", "PostgreSQL"])
def test_database_url_schemes_are_normalised_to_asyncpg(scheme: str) -> None:
    settings = Settings(database_url=f"{scheme}://u@h:5432/db?sslmode=require")
    assert settings.database_url == "postgresql+asyncpg://u@h:5432/db?sslmode=require"


@pytest.mark.parametrize("url", ["mysql://u@h/db", "postgresql+psycopg://u@h/db", "u@h/db"])
def test_other_database_drivers_are_rejected(url: str) -> None:
    with pytest.raises(ValidationError, match="database URL must start with"):
        Settings(database_url=url)


def test_empty_database_url_means_embedded_database(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "  ")
    assert Settings().database_url is None


def test_dotenv_file_in_working_directory_is_read(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("DATABASE_URL=postgres://u@h/db\nEXCHANGE_PORT=9100\nEXCHANGE_LOG_LEVEL=DEBUG\n")
    settings = Settings()
    assert (settings.database_url, settings.port, settings.log_level) == ("postgresql+asyncpg://u@h/db", 9100, "debug")


def test_environment_wins_over_dotenv_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("EXCHANGE_PORT=9100\n")
    monkeypatch.setenv("EXCHANGE_PORT", "9200")
    assert Settings().port == 9200


def test_unprefixed_host_and_port_variables_are_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOST", "0.0.0.0")
    monkeypatch.setenv("PORT", "1")
    assert (Settings().host, Settings().port) == ("127.0.0.1", 8000)


def test_invalid_log_level_is_rejected() -> None:
    with pytest.raises(ValidationError):
        Settings(log_level="chatty")


def test_asyncpg_dsn_drops_the_driver_and_keeps_the_rest() -> None:
    assert asyncpg_dsn("postgresql+asyncpg://postgres@/postgres?host=/tmp/pg&port=5432") == (
        "postgresql://postgres@/postgres?host=/tmp/pg&port=5432"
    )
    assert asyncpg_dsn("postgres://u@h/db") == "postgresql://u@h/db"
