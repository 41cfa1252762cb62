"""`exchange keys create` and `exchange keys revoke`: the first operator key is made from the command line, printed
once, stored hashed, and works against the API; revoked, it stops working."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest
from click.testing import Result
from typer.testing import CliRunner

from api.cli import app as cli
from api.cli_keys import participant_id_from_name
from api.settings import Settings
from tests.support import running_app


@pytest.fixture(autouse=True)
def _keep_root_logging() -> Iterator[None]:
    # The command configures JSON logging on the root logger, as a real process would; undo that for later tests.
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)


async def exchange(db_url: str, *args: str) -> Result:
    """Run `exchange ARGS` against `db_url` (in a thread: the command runs its own event loop)."""
    env = {"DATABASE_URL": db_url, "EXCHANGE_LOG_LEVEL": "warning"}
    return await asyncio.to_thread(CliRunner().invoke, cli, list(args), env=env)


def printed(result: Result, field: str) -> str:
    (line,) = [line for line in result.stdout.splitlines() if line.startswith(field + " ")]
    return line.split()[1]


async def whoami(db_url: str, tmp_path: Path, token: str) -> tuple[int, dict]:
    settings = Settings(_env_file=None, database_url=db_url, data_dir=tmp_path / "var")
    async with running_app(settings, components=[]) as (_, client):
        response = await client.get("/v1/me", headers={"Authorization": f"Bearer {token}"})
    return response.status_code, response.json()


def test_a_participant_id_is_made_from_the_name() -> None:
    assert participant_id_from_name("Ops desk") == "ops-desk"
    assert participant_id_from_name("  Banca Etica S.p.A.  ") == "banca-etica-s.p.a"


async def test_keys_create_makes_an_operator_whose_key_works(db_url: str, pg_dsn: str, tmp_path: Path) -> None:
    result = await exchange(db_url, "keys", "create", "--role", "operator", "--name", "Ops desk", "--id", "ops")
    assert result.exit_code == 0, result.output
    token, key_id = printed(result, "api_key"), printed(result, "key_id")
    assert result.output.count(token) == 1
    assert await whoami(db_url, tmp_path, token) == (
        200,
        {"participant_id": "ops", "role": "operator", "category": None, "key_id": key_id},
    )


async def test_keys_create_stores_only_the_hash_of_the_token(db_url: str, pg_dsn: str) -> None:
    result = await exchange(db_url, "keys", "create", "--role", "operator", "--name", "Ops desk")
    token = printed(result, "api_key")
    conn = await asyncpg.connect(pg_dsn)
    try:
        row = await conn.fetchrow("SELECT participant_id, key_hash, row_to_json(k)::text AS everything FROM api_keys k")
        name = await conn.fetchval("SELECT name FROM participants WHERE participant_id = 'ops-desk'")
    finally:
        await conn.close()
    assert (row["participant_id"], name) == ("ops-desk", "Ops desk")
    assert bytes(row["key_hash"]) == hashlib.sha256(token.encode()).digest()
    assert token not in row["everything"]


async def test_keys_create_adds_a_key_to_an_existing_participant(db_url: str, pg_dsn: str) -> None:
    args = ("keys", "create", "--role", "investor", "--category", "retail", "--name", "Anna", "--id", "anna")
    first, second = await exchange(db_url, *args), await exchange(db_url, *args)
    assert (first.exit_code, second.exit_code) == (0, 0)
    assert "created" in first.output and "created" not in second.output
    conn = await asyncpg.connect(pg_dsn)
    try:
        keys = await conn.fetchval("SELECT count(*) FROM api_keys WHERE participant_id = 'anna'")
    finally:
        await conn.close()
    assert keys == 2


async def test_keys_create_refuses_an_existing_participant_with_another_role(db_url: str) -> None:
    await exchange(db_url, "keys", "create", "--role", "issuer", "--name", "Coop", "--id", "coop")
    result = await exchange(db_url, "keys", "create", "--role", "operator", "--name", "Coop", "--id", "coop")
    assert result.exit_code == 1
    assert "exists with role issuer" in result.stderr


@pytest.mark.parametrize(
    ("args", "complaint"),
    [
        (("--role", "investor", "--name", "Bob"), "needs --category"),
        (("--role", "issuer", "--name", "Coop", "--category", "retail"), "only investors"),
        (("--role", "issuer", "--name", "Coop", "--id", "Not Valid"), "invalid participant id"),
        (("--role", "issuer", "--name", "!!!"), "invalid participant id"),
    ],
)
async def test_keys_create_refuses_bad_options_without_touching_the_database(
    db_url: str, pg_dsn: str, args: tuple[str, ...], complaint: str
) -> None:
    result = await exchange(db_url, "keys", "create", *args)
    conn = await asyncpg.connect(pg_dsn)
    try:
        participants = await conn.fetchval("SELECT count(*) FROM participants")
    finally:
        await conn.close()
    assert (result.exit_code, participants) == (1, 0)
    assert complaint in result.stderr


async def test_keys_create_prints_json_for_scripts(db_url: str, tmp_path: Path) -> None:
    result = await exchange(db_url, "keys", "create", "--role", "regulator", "--name", "Consob", "--json")
    issued = json.loads(result.stdout)
    assert (issued["participant_id"], issued["role"]) == ("consob", "regulator")
    assert (await whoami(db_url, tmp_path, issued["api_key"]))[1]["key_id"] == issued["key_id"]


async def test_keys_revoke_stops_the_key_working(db_url: str, tmp_path: Path) -> None:
    created = await exchange(db_url, "keys", "create", "--role", "operator", "--name", "Ops", "--json")
    issued = json.loads(created.stdout)
    revoked = await exchange(db_url, "keys", "revoke", issued["key_id"])
    assert (revoked.exit_code, revoked.stdout.strip()) == (0, f"revoked {issued['key_id']}")
    status, body = await whoami(db_url, tmp_path, issued["api_key"])
    assert (status, body["error"]["code"]) == (401, "INVALID_API_KEY")


async def test_keys_revoke_of_an_unknown_key_fails(db_url: str) -> None:
    result = await exchange(db_url, "keys", "revoke", "key_0123456789abcdef")
    assert result.exit_code == 1
    assert "no active key" in result.stderr
