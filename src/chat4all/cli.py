"""The ``chat4all`` command: serve, migrate."""

from __future__ import annotations

import asyncio
import sys

import typer
import uvicorn

from chat4all.config import Settings
from chat4all.observability.logging import configure_logging
from chat4all.runtime import ConfigurationError, Role

app = typer.Typer(help="Chat4All: one API for in-app messaging and external channels.", no_args_is_help=True)


@app.command()
def serve(
    role: Role = typer.Argument(Role.ALL, help="all: the embedded profile in one process; api; router"),
    host: str | None = typer.Option(None, help="overrides CHAT4ALL_HOST"),
    port: int | None = typer.Option(None, help="overrides CHAT4ALL_PORT"),
) -> None:
    """Runs Chat4All (by default everything in one process on embedded defaults)."""
    overrides = {k: v for k, v in {"host": host, "port": port}.items() if v is not None}
    settings = Settings(**overrides)
    configure_logging(level=settings.log_level, json=settings.log_json)
    from chat4all.api.app import create_app

    try:
        application = create_app(settings, role=role)
    except ConfigurationError as exc:
        typer.echo(f"configuration error: {exc}", err=True)
        raise typer.Exit(2) from None
    config = uvicorn.Config(
        application,
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=10,
        ws_ping_interval=20,
        ws_ping_timeout=20,
    )
    server = uvicorn.Server(config)
    server.run()
    if not server.started:
        sys.exit(1)


@app.command()
def migrate() -> None:
    """Brings the database schema up to date (run once per release in production)."""
    settings = Settings()
    configure_logging(level=settings.log_level, json=settings.log_json)
    from chat4all.adapters.sql.database import Database
    from chat4all.adapters.sql.migrate import upgrade

    async def run() -> None:
        db = Database(settings.resolved_database_url)
        try:
            await upgrade(db)
        finally:
            await db.close()

    asyncio.run(run())
    typer.echo("database is up to date")


@app.command()
def version() -> None:
    """Prints the version."""
    from chat4all import __version__

    typer.echo(__version__)
