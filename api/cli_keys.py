"""`exchange keys`: issue and revoke API keys from the command line, which is how the first operator key is made.

`exchange keys create --role operator --name "Ops desk"` registers the participant if it does not exist yet and
issues a key for it; the token is printed once and only its SHA-256 is stored. `exchange keys revoke KEY_ID`
revokes a key. Both work on `DATABASE_URL`, or on the embedded PostgreSQL when it is unset (as `exchange serve`
does), and apply pending migrations first.
"""

from __future__ import annotations

import asyncio
import json
import re
from typing import Annotated

import asyncpg
import typer
from pydantic import ValidationError

from api.auth import PARTICIPANT_ID, InvestorCategory, Role, create_key, create_participant, revoke_key
from api.errors import ApiError
from api.logging import configure_logging
from api.settings import Settings
from ledger.postgres import asyncpg_dsn

keys_app = typer.Typer(name="keys", help="Issue and revoke API keys.", no_args_is_help=True)

_NOT_AN_ID_CHARACTER = re.compile(r"[^a-z0-9_.-]+")


def participant_id_from_name(name: str) -> str:
    """A participant id made from a display name: "Ops desk" -> "ops-desk"."""
    slug = _NOT_AN_ID_CHARACTER.sub("-", name.lower()).strip("-_.")[:64].rstrip("-_.")
    return slug


def _settings() -> Settings:
    # Not api.cli.load_settings: api.cli imports this module to register the command group.
    try:
        return Settings()
    except ValidationError as exc:
        typer.echo(f"invalid configuration:\n{exc}", err=True)
        raise typer.Exit(code=2) from exc


def _fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code=1)


async def _create(
    url: str, participant_id: str, name: str, role: Role, category: InvestorCategory | None, label: str
) -> tuple[bool, str, str]:
    """(participant created?, key id, token)."""
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        async with conn.transaction():
            row = await conn.fetchrow(
                "SELECT role, category FROM participants WHERE participant_id = $1 FOR UPDATE", participant_id
            )
            created = row is None
            if created:
                await create_participant(conn, participant_id, name, role, category)
            else:
                if row["role"] != role.value:
                    raise ApiError(409, "ROLE_MISMATCH", f"participant {participant_id} exists with role {row['role']}")
                if category is not None and row["category"] != category.value:
                    raise ApiError(
                        409, "CATEGORY_MISMATCH", f"participant {participant_id} exists with category {row['category']}"
                    )
            key_id, token = await create_key(conn, participant_id, label)
    finally:
        await conn.close()
    return created, key_id, token


async def _revoke(url: str, key_id: str) -> bool:
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        return await revoke_key(conn, key_id)
    finally:
        await conn.close()


@keys_app.command("create")
def create(
    role: Annotated[Role, typer.Option(help="The participant's role.", case_sensitive=False)],
    name: Annotated[str, typer.Option(help="Display name of the participant, e.g. \"Ops desk\".")],
    participant_id: Annotated[
        str | None, typer.Option("--id", help="Participant id (a-z, 0-9, '_', '.', '-'); default: made from the name.")
    ] = None,
    category: Annotated[
        InvestorCategory | None, typer.Option(help="Investors only: retail or professional.", case_sensitive=False)
    ] = None,
    label: Annotated[str, typer.Option(help="What the key is for.")] = "",
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object (for scripts).")] = False,
) -> None:
    """Issue an API key, registering the participant first if it does not exist. The key is printed only once.

    Uses the embedded PostgreSQL when DATABASE_URL is unset; applies pending migrations first.
    """
    from ledger.migrate import upgrade_to_head
    from ledger.postgres import resolved_database

    participant_id = participant_id if participant_id is not None else participant_id_from_name(name)
    if not PARTICIPANT_ID.fullmatch(participant_id):
        raise _fail(f"invalid participant id {participant_id!r}: use 1-64 of a-z, 0-9, '_', '.', '-' (pass --id)")
    if not name.strip() or len(name) > 200 or any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise _fail("the name must be 1-200 printable characters")
    if role is Role.INVESTOR and category is None:
        raise _fail("an investor needs --category retail or --category professional")
    if role is not Role.INVESTOR and category is not None:
        raise _fail("only investors have a category")
    settings = _settings()
    configure_logging(settings.log_level)
    try:
        with resolved_database(settings.database_url, settings.embedded_pgdata) as url:
            upgrade_to_head(url)
            created, key_id, token = asyncio.run(_create(url, participant_id, name, role, category, label))
    except ApiError as exc:
        raise _fail(exc.message) from None
    if as_json:
        issued = {"participant_id": participant_id, "role": role.value, "key_id": key_id, "api_key": token}
        typer.echo(json.dumps(issued))
        return
    typer.echo(f"participant  {participant_id} ({role.value}{', ' + category.value if category else ''})"
               f"{' created' if created else ''}")
    typer.echo(f"key_id       {key_id}")
    typer.echo(f"api_key      {token}")
    typer.echo("The API key is shown only this once: store it now (send it as 'Authorization: Bearer <api key>').")


@keys_app.command("revoke")
def revoke(key_id: Annotated[str, typer.Argument(help="The key id printed when the key was created.")]) -> None:
    """Revoke an API key. A running server stops accepting it once its in-memory key cache is cleared
    (revoking through DELETE /v1/participants/{id}/keys/{key_id} does that at once).

    Uses the embedded PostgreSQL when DATABASE_URL is unset; applies pending migrations first.
    """
    from ledger.migrate import upgrade_to_head
    from ledger.postgres import resolved_database

    settings = _settings()
    configure_logging(settings.log_level)
    with resolved_database(settings.database_url, settings.embedded_pgdata) as url:
        upgrade_to_head(url)
        revoked = asyncio.run(_revoke(url, key_id))
    if not revoked:
        raise _fail(f"no active key {key_id} (unknown or already revoked)")
    typer.echo(f"revoked {key_id}")
