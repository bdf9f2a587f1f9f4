"""The ``chat4all`` command: serve, migrate."""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Any

import typer
import uvicorn

from chat4all.config import Settings
from chat4all.observability.logging import configure_logging
from chat4all.observability.tracing import configure_tracing, shutdown_tracing
from chat4all.runtime import ConfigurationError, Role

app = typer.Typer(help="Chat4All: one API for in-app messaging and external channels.", no_args_is_help=True)


@app.command()
def serve(
    role: Role = typer.Argument(Role.ALL, help="all: the embedded profile in one process; api; router; webhooks"),
    host: str | None = typer.Option(None, help="overrides CHAT4ALL_HOST"),
    port: int | None = typer.Option(None, help="overrides CHAT4ALL_PORT"),
) -> None:
    """Runs Chat4All (by default everything in one process on embedded defaults)."""
    overrides: dict[str, Any] = {k: v for k, v in {"host": host, "port": port}.items() if v is not None}
    settings = Settings(**overrides)
    configure_logging(level=settings.log_level, json=settings.log_json)
    configure_tracing(
        endpoint=settings.otlp_endpoint,
        service="chat4all",
        role=role.value,
        node=settings.node_id,
        sample_ratio=settings.trace_sample_ratio,
    )
    from chat4all.runtime import create_app

    try:
        application = create_app(settings, role=role, freeze_heap=True)
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
        proxy_headers=True,
        forwarded_allow_ips=settings.forwarded_allow_ips,
        ws_max_size=settings.ws_max_frame_bytes,  # a larger client frame closes the socket with 1009
    )
    server = uvicorn.Server(config)
    try:
        server.run()
    finally:
        shutdown_tracing()  # sends the spans still buffered
    if not server.started:
        sys.exit(1)


@app.command()
def migrate() -> None:
    """Brings the database schema up to date (run once per release in production)."""
    settings = Settings()
    configure_logging(level=settings.log_level, json=settings.log_json)
    from chat4all.runtime import migrate_database

    asyncio.run(migrate_database(settings))
    typer.echo("database is up to date")


@app.command()
def bench(
    url: str | None = typer.Option(None, help="aim at running API node(s), comma-separated, instead of starting a stack"),
    profile: str = typer.Option(
        "embedded", help="embedded | production | ha (replicated engines, services.sh up --ha): the stack to start when no --url"
    ),
    rate: float = typer.Option(200.0, help="target messages per second (open loop)"),
    duration: float = typer.Option(30.0, help="seconds of load"),
    conversations: int = typer.Option(100, help="conversations the load is spread over"),
    recipients: int = typer.Option(1, help="recipients per conversation, each on a WebSocket that acks"),
    ramp: float = typer.Option(0.0, help="seconds to ramp from 0 to the target rate"),
    drain: float = typer.Option(30.0, help="seconds to wait for deliveries after the last send"),
    out: str = typer.Option("bench-out", help="folder for result.json and chart.png"),
    apis: int = typer.Option(2, help="production, ha: API processes to start"),
    routers: int = typer.Option(1, help="production, ha: router processes to start"),
    flood_rate: float = typer.Option(0.0, help="fan-out scenario: messages/s one more user posts to large groups"),
    flood_groups: int = typer.Option(3, help="fan-out scenario: groups the flooder posts to"),
    flood_members: int = typer.Option(999, help="fan-out scenario: members of each of those groups"),
    warmup: float = typer.Option(
        0.0, min=0.0, help="seconds at the target rate before --duration, on the same users, reported apart (result's warmup)"
    ),
    spike_rate: float = typer.Option(0.0, min=0.0, help="spike: messages/s on top of --rate, in the same conversations"),
    spike_at: float = typer.Option(0.0, min=0.0, help="spike: seconds into the measured load when it starts"),
    spike_duration: float = typer.Option(0.0, min=0.0, help="spike: seconds it lasts"),
    server_python: str = typer.Option(
        "", help="the Python (a virtualenv's) that runs the servers: another checkout's, to compare two commits under the same load generator"
    ),
) -> None:
    """Measures accept and end-to-end latency, throughput, loss, duplicates and order.

    The stacks it starts lift the registration, login and send limits so that the run measures
    the pipeline; with --flood-rate the send limits stay at their defaults, and the result's
    "flood" tells how the flooder was answered while accept_ms is everyone else's. With --warmup
    the warm-up is reported under "warmup" and left out of every other figure; "windows" compares
    the first 10 s of the measured load with the rest; "spike" reports --spike-*; "cpu" is CPU per
    delivered message of the servers, the bench and (production) the engines."""
    import json
    from pathlib import Path

    from chat4all.bench.run import run

    if profile not in ("embedded", "production", "ha"):
        raise typer.BadParameter("profile is embedded, production or ha")
    if spike_rate > 0 and (spike_duration <= 0 or spike_at + spike_duration > duration):
        raise typer.BadParameter("the spike needs --spike-duration > 0 and must end within --duration", param_hint="--spike-*")
    if server_python:
        if not Path(server_python).is_file():
            raise typer.BadParameter(f"no such interpreter: {server_python}", param_hint="--server-python")
        os.environ["CHAT4ALL_BENCH_SERVER_PYTHON"] = server_python
    result = run(
        url=url, profile=None if url else profile, rate=rate, duration=duration, conversations=conversations,
        recipients=recipients, ramp=ramp, drain=drain, out=Path(out), apis=apis, routers=routers,
        flood_rate=flood_rate, flood_groups=flood_groups, flood_members=flood_members,
        warmup=warmup, spike_rate=spike_rate, spike_at=spike_at, spike_duration=spike_duration,
    )
    typer.echo(json.dumps(result, indent=2))


@app.command()
def version() -> None:
    """Prints the version."""
    from chat4all import __version__

    typer.echo(__version__)


files_app = typer.Typer(help="Files: upload maintenance.", no_args_is_help=True)
app.add_typer(files_app, name="files")


@files_app.command("cleanup")
def files_cleanup(
    older_than: float | None = typer.Option(
        None, "--older-than", help="seconds; default CHAT4ALL_FILE_UPLOAD_MAX_AGE_S (24 h)", min=0
    ),
) -> None:
    """Drops uploads still incomplete after the configured age (the servers also do it periodically)."""
    settings = Settings()
    configure_logging(level=settings.log_level, json=settings.log_json)
    from chat4all.runtime import clean_up_uploads

    count = asyncio.run(clean_up_uploads(settings, max_age_s=older_than))
    typer.echo(f"{count} abandoned upload(s) cleaned up")


demo_app = typer.Typer(help="Demonstrations against a real server.", no_args_is_help=True)
app.add_typer(demo_app, name="demo")


@demo_app.command("files")
def demo_files(
    size: str = typer.Option("1.8GB", help="size of the generated file: 1.8GB, 500MiB, …"),
    url: str | None = typer.Option(None, help="a running server; default: start one (embedded profile)"),
    blob_url: str | None = typer.Option(None, help="blob store of the server started here (e.g. s3://…)"),
    server_pid: int | None = typer.Option(None, help="pid of the server at --url, to report its peak RSS"),
    parallel: int = typer.Option(4, min=1, max=64, help="parts uploaded at once"),
    break_at: float = typer.Option(0.4, min=0.0, max=1.0, help="fraction of the bytes sent when the link breaks"),
    workdir: str | None = typer.Option(None, help="where the generated file goes (default: the temp dir)"),
) -> None:
    """A big file to a group over a link that breaks: resume, verify, send, download (R5)."""
    from pathlib import Path

    from chat4all.demos.files import DemoOptions, parse_size, run_demo

    try:
        size_bytes = parse_size(size)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    options = DemoOptions(
        size=size_bytes,
        url=url,
        blob_url=blob_url,
        server_pid=server_pid,
        parallel=parallel,
        break_at=break_at,
        workdir=Path(workdir) if workdir else None,
    )
    asyncio.run(run_demo(options, echo=typer.echo))


@demo_app.command("chat")
def demo_chat(url: str | None = typer.Option(None, help="a running server; default: start one (embedded profile)")) -> None:
    """Two people, a conversation, messages both ways, ticks SENT → DELIVERED → READ."""
    from chat4all.demos.chat import run_chat_demo

    _run_demo(run_chat_demo(url, echo=typer.echo))


@demo_app.command("channels")
def demo_channels(
    url: str | None = typer.Option(None, help="a running server; default: start one (embedded profile)"),
    secret: str | None = typer.Option(None, help="with --url: the simulated WhatsApp's webhook secret there"),
) -> None:
    """One person on WhatsApp and Instagram: a send to "all", per-channel statuses, an answer bridged back."""
    from chat4all.demos.channels import run_channels_demo

    _run_demo(run_channels_demo(url, echo=typer.echo, secret=secret))


@demo_app.command("offline")
def demo_offline(
    url: str | None = typer.Option(None, help="a running server; default: start one (embedded profile)"),
    count: int = typer.Option(5, min=1, max=1000, help="messages sent while the recipient is away"),
) -> None:
    """Messages to someone offline: they connect and receive them first, in order."""
    from chat4all.demos.offline import run_offline_demo

    _run_demo(run_offline_demo(url, echo=typer.echo, count=count))


def _run_demo(demo: Any) -> None:
    import httpx

    from chat4all.demos.narrate import DemoFailed

    try:
        asyncio.run(demo)
    except DemoFailed as exc:
        typer.echo(f"demo FAILED: {exc}", err=True)
        raise typer.Exit(1) from None
    except httpx.TransportError as exc:
        typer.echo(f"demo FAILED: the server could not be reached ({exc!r})", err=True)
        raise typer.Exit(1) from None


connectors_app = typer.Typer(help="External channels: connector configuration (R9.3).", no_args_is_help=True)
app.add_typer(connectors_app, name="connectors")
dlq_app = typer.Typer(help="The dead-letter queue of external deliveries (R14.5).", no_args_is_help=True)
app.add_typer(dlq_app, name="dlq")


def _operator_settings() -> Settings:
    settings = Settings()
    configure_logging(level="WARNING", json=settings.log_json)
    return settings


@connectors_app.command("plugins")
def connectors_plugins() -> None:
    """The connector plugins installed (entry points of the group chat4all.connectors)."""
    from chat4all.connectors.registry import Plugins

    for name, target in Plugins().describe().items():
        typer.echo(f"{name}\t{target}")


@connectors_app.command("list")
def connectors_list(json_output: bool = typer.Option(False, "--json", help="one JSON object per line")) -> None:
    """Every channel's configuration (routers pick up changes within CHAT4ALL_CONNECTORS_REFRESH_INTERVAL_S)."""
    from chat4all.cli_connectors import list_configs

    asyncio.run(list_configs(_operator_settings(), echo=typer.echo, as_json=json_output))


@connectors_app.command("set")
def connectors_set(
    channel: str = typer.Argument(..., help="the channel, e.g. telegram"),
    option: list[str] = typer.Option([], "--option", "-o", help="KEY=VALUE (VALUE parsed as JSON if it can be); repeatable"),
    enable: bool | None = typer.Option(None, "--enable/--disable", help="turn the channel on or off"),
    plugin: str | None = typer.Option(None, help="entry point serving the channel (default: the channel's name)"),
    max_in_flight: int | None = typer.Option(None, min=1, help="sends in flight at once, per router"),
    send_timeout_s: float | None = typer.Option(None, min=0.1, help="a slower send counts as a transient failure"),
    replace: bool = typer.Option(False, help="drop the options not given here (default: merge)"),
) -> None:
    """Creates or changes a channel's connector configuration."""
    from chat4all.cli_connectors import ConfigChange, set_config

    try:
        change = ConfigChange.parse(
            channel, option, enable=enable, plugin=plugin, max_in_flight=max_in_flight,
            send_timeout_s=send_timeout_s, replace=replace,
        )
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    asyncio.run(set_config(_operator_settings(), change, echo=typer.echo))


@connectors_app.command("delete")
def connectors_delete(channel: str) -> None:
    """Removes a channel's configuration (its deliveries then fail: no connector)."""
    from chat4all.cli_connectors import delete_config

    if not asyncio.run(delete_config(_operator_settings(), channel)):
        typer.echo(f"no configuration for {channel}", err=True)
        raise typer.Exit(1)
    typer.echo(f"{channel}: deleted")


@dlq_app.command("list")
def dlq_list(
    channel: str | None = typer.Option(None, help="only this channel"),
    message_id: str | None = typer.Option(None, "--message-id", help="only this message"),
    json_output: bool = typer.Option(False, "--json", help="one JSON object per line"),
) -> None:
    """Deliveries that gave up (newest entry per delivery), with their status now."""
    from chat4all.cli_connectors import list_dead_letters

    asyncio.run(
        list_dead_letters(_operator_settings(), channel=channel, message_id=message_id, echo=typer.echo, as_json=json_output)
    )


@dlq_app.command("replay")
def dlq_replay(
    channel: str | None = typer.Option(None, help="only this channel"),
    message_id: str | None = typer.Option(None, "--message-id", help="only this message"),
    dry_run: bool = typer.Option(False, "--dry-run", help="say what would be replayed"),
) -> None:
    """Puts the dead deliveries that are still FAILED back in the queue; the routers send them again."""
    from chat4all.cli_connectors import replay_dead_letters

    asyncio.run(
        replay_dead_letters(_operator_settings(), channel=channel, message_id=message_id, dry_run=dry_run, echo=typer.echo)
    )
