"""Configuration of the exchange process, read from the environment (and an optional `.env` file).

`DATABASE_URL` names the PostgreSQL server; everything else is prefixed `EXCHANGE_` (for example
`EXCHANGE_PORT=9000`) so that generic variables such as `HOST` or `PORT` set by a shell or a platform
never reconfigure the exchange by accident. Without a `DATABASE_URL` the exchange runs an embedded
PostgreSQL whose data lives in `pgdata` (by default `<data_dir>/pgdata`).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from ledger.postgres import asyncpg_dsn, normalise_database_url

__all__ = ["Settings", "get_settings", "asyncpg_dsn", "normalise_database_url"]

LogLevel = Literal["debug", "info", "warning", "error", "critical"]


class Settings(BaseSettings):
    """Everything the process needs to know at start-up; build one with `get_settings()` or directly in tests."""

    model_config = SettingsConfigDict(
        env_prefix="EXCHANGE_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        populate_by_name=True,
    )

    database_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("DATABASE_URL", "EXCHANGE_DATABASE_URL", "database_url"),
        description="PostgreSQL server; unset means an embedded PostgreSQL in `pgdata`.",
    )
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    log_level: LogLevel = "info"
    data_dir: Path = Path("./var")
    pgdata: Path | None = Field(default=None, description="Embedded PostgreSQL data; default <data_dir>/pgdata.")

    db_pool_size: int = Field(default=5, ge=1, description="SQLAlchemy engine pool size.")
    pg_pool_max_size: int = Field(default=10, ge=1, description="asyncpg pool maximum size.")
    readiness_timeout_seconds: float = Field(default=1.0, gt=0)
    startup_retry_seconds: float = Field(
        default=2.0, gt=0, description="First wait before retrying start-up when the database is unreachable."
    )

    batch_max: int = Field(default=1_000, ge=1, description="Most commands the sequencer commits in one batch.")
    batch_window_ms: float = Field(
        default=0.0, ge=0, description="How long the sequencer waits for more commands before closing a batch."
    )
    inbox_size: int = Field(default=10_000, ge=1, description="Queued commands before callers get 429.")
    snapshot_every: int = Field(
        default=100_000,
        ge=0,
        description="Journal records between engine snapshots (a restart replays only the tail); 0: none.",
    )
    ws_queue_size: int = Field(default=10_000, ge=1, description="Messages queued per WebSocket client before it is dropped.")
    rate_limit_per_second: float = Field(default=200.0, gt=0, description="Per-key request rate (token bucket).")
    rate_limit_burst: int = Field(default=400, ge=1, description="Per-key burst size (token bucket capacity).")

    @field_validator("database_url", mode="before")
    @classmethod
    def _normalise_database_url(cls, value: object) -> object:
        # An empty DATABASE_URL is how shells and CI scripts say "unset".
        if value is None or (isinstance(value, str) and not value.strip()):
            return None
        if isinstance(value, str):
            return normalise_database_url(value)
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _lower_log_level(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _default_pgdata(self) -> Settings:
        if self.pgdata is None:
            self.pgdata = self.data_dir / "pgdata"
        return self

    @property
    def embedded_pgdata(self) -> Path:
        """Where the embedded PostgreSQL keeps its data (always set after validation)."""
        assert self.pgdata is not None
        return self.pgdata


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment and `.env`."""
    return Settings()
