"""The `exchange` command line: run the server, migrate the database (and, later, replay and verify).

Each command is a function decorated with `@app.command()`; its docstring is its `--help`. A command that
needs the database uses `ledger.postgres.resolved_database(settings.database_url, settings.embedded_pgdata)`
so that it works with `DATABASE_URL` and with the embedded server alike.
"""

from __future__ import annotations

from typing import Annotated

import typer
from pydantic import ValidationError

from api.cli_audit import register_audit_commands
from api.cli_demo import register_demo_command
from api.cli_keys import keys_app
from api.logging import configure_logging
from api.settings import Settings

app = typer.Typer(
    name="exchange",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(keys_app, name="keys")
register_audit_commands(app)  # exchange verify, exchange replay
register_demo_command(app)  # exchange demo


def load_settings(**overrides: object) -> Settings:
    """Settings from the environment and `.env`, with the command-line options that were given on top."""
    try:
        settings = Settings()
    except ValidationError as exc:
        typer.echo(f"invalid configuration:\n{exc}", err=True)
        raise typer.Exit(code=2) from exc
    given = {key: value for key, value in overrides.items() if value is not None}
    return settings.model_copy(update=given) if given else settings


@app.callback()
def main() -> None:
    """Social-impact stock exchange: matching engine, double-entry ledger and HTTP API.

    Configuration comes from the environment (or a .env file). DATABASE_URL selects the PostgreSQL server; unset, an embedded PostgreSQL keeps its data in EXCHANGE_DATA_DIR/pgdata (./var/pgdata).

    Other settings: EXCHANGE_HOST, EXCHANGE_PORT, EXCHANGE_LOG_LEVEL, EXCHANGE_PGDATA.
    """


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Interface to listen on (default: EXCHANGE_HOST, else 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(help="TCP port (default: EXCHANGE_PORT, else 8000).")] = None,
    demo: Annotated[bool, typer.Option("--demo", help="Create the demo market at start-up if it is not there.")] = False,
) -> None:
    """Run the exchange HTTP API.

    Starts the embedded PostgreSQL when DATABASE_URL is unset, applies migrations, then serves. Ctrl-C or SIGTERM stops the server and the embedded PostgreSQL cleanly.
    """
    import uvicorn

    from api.app import create_app

    settings = load_settings(host=host, port=port)
    configure_logging(settings.log_level)
    exchange = create_app(settings)
    if demo:
        from api.demo import add_demo_component

        add_demo_component(exchange, settings)
    uvicorn.run(
        exchange,
        host=settings.host,
        port=settings.port,
        log_config=None,  # our JSON logging is already configured
        access_log=False,  # the access-log middleware writes it, with request ids
        lifespan="on",
        server_header=False,
    )


@app.command()
def migrate() -> None:
    """Apply pending database migrations and print the revision.

    Uses the embedded PostgreSQL when DATABASE_URL is unset.
    """
    from ledger.migrate import upgrade_to_head
    from ledger.postgres import resolved_database

    settings = load_settings()
    configure_logging(settings.log_level)
    with resolved_database(settings.database_url, settings.embedded_pgdata) as url:
        revision = upgrade_to_head(url)
    typer.echo(f"database at revision {revision} (head)")


if __name__ == "__main__":
    app()
