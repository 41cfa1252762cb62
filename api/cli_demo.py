"""`exchange demo`: create the demo market (`api.demo`) in the configured database and print keys to try it with.

It runs the exchange in this process (embedded PostgreSQL when DATABASE_URL is unset, migrations, the sequencer) just
long enough to seed, through the API, then stops. Run it while no server uses the same database: the sequencer must
be the only writer. To seed a server as it starts, use `exchange serve --demo` instead.
"""

from __future__ import annotations

import asyncio

import typer
from pydantic import ValidationError

from api.settings import Settings


async def _seed(settings: Settings):  # -> api.demo.DemoResult
    from api.app import create_app, default_components
    from api.demo import DemoError, seed_demo

    # No trading calendar: the demo opens its instruments itself and must not race the timer.
    components = [c for c in default_components(settings) if c.name != "schedule"]
    app = create_app(settings, components=components)
    async with app.router.lifespan_context(app):
        if not app.state.engine_ready:
            raise DemoError(f"the exchange did not start: {app.state.startup_error}")
        return await seed_demo(app)


def register_demo_command(app: typer.Typer) -> None:
    @app.command()
    def demo() -> None:
        """Fill an empty exchange with a demo market: three impact issuers, funded investors, a book and trades.

        Idempotent: run again, it only prints fresh keys for the demo participants. Stop the server first (one
        writer per database); `exchange serve --demo` seeds at start-up instead.
        """
        from api.demo import DemoError, base_url, welcome
        from api.logging import configure_logging

        try:
            settings = Settings()
        except ValidationError as exc:
            typer.echo(f"invalid configuration:\n{exc}", err=True)
            raise typer.Exit(code=2) from exc
        configure_logging("warning")
        try:
            result = asyncio.run(_seed(settings))
        except DemoError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(code=1) from exc
        typer.echo(welcome(result, base_url(settings)))
