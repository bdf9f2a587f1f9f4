"""What ``chat4all connectors ...`` and ``chat4all dlq ...`` do (``cli.py`` parses the arguments)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from chat4all.config import Settings
from chat4all.domain.connectors import (
    ConnectorConfig,
    ConnectorLimits,
    is_valid_channel_name,
)
from chat4all.domain.ids import utcnow
from chat4all.runtime import operations

Echo = Callable[[str], None]
_SECRET_WORDS = ("token", "secret", "password", "key")


@dataclass(frozen=True, slots=True)
class ConfigChange:
    channel: str
    options: dict[str, Any]
    enable: bool | None
    plugin: str | None
    limits: dict[str, Any]
    replace: bool

    @classmethod
    def parse(
        cls,
        channel: str,
        options: Sequence[str],
        *,
        enable: bool | None,
        plugin: str | None,
        max_in_flight: int | None,
        send_timeout_s: float | None,
        replace: bool,
    ) -> ConfigChange:
        if not is_valid_channel_name(channel):
            raise ValueError(f"{channel!r} is not a channel name (a-z, 0-9, '_' and '-', at most 32)")
        parsed: dict[str, Any] = {}
        for item in options:
            key, sep, raw = item.partition("=")
            if not sep or not key.strip():
                raise ValueError(f"--option takes KEY=VALUE, not {item!r}")
            try:
                parsed[key.strip()] = orjson.loads(raw)
            except orjson.JSONDecodeError:
                parsed[key.strip()] = raw
        limits = {k: v for k, v in {"max_in_flight": max_in_flight, "send_timeout_s": send_timeout_s}.items() if v is not None}
        return cls(channel, parsed, enable, plugin, limits, replace)

    def apply(self, current: ConnectorConfig | None) -> ConnectorConfig:
        base = current.model_dump() if current is not None else {"channel": self.channel}
        options = self.options if self.replace or current is None else {**current.options, **self.options}
        limits = {**(current.limits.model_dump() if current is not None else {}), **self.limits}
        return ConnectorConfig.model_validate(
            {
                **base,
                "options": options,
                "limits": ConnectorLimits(**limits),
                "enabled": base.get("enabled", True) if self.enable is None else self.enable,
                "plugin": self.plugin if self.plugin is not None else base.get("plugin"),
                "updated_at": utcnow(),
            }
        )


def masked(config: ConnectorConfig) -> dict[str, Any]:
    """The configuration as shown to operators: credentials replaced by '***'."""
    view = config.model_dump(mode="json")
    view["options"] = {
        k: "***" if any(w in k.lower() for w in _SECRET_WORDS) and v else v for k, v in config.options.items()
    }
    return view


async def list_configs(settings: Settings, *, echo: Echo, as_json: bool) -> None:
    async with operations(settings) as ops:
        configs = await ops.configs.list_configs()
    for config in configs:
        view = masked(config)
        if as_json:
            echo(orjson.dumps(view).decode())
            continue
        state = "enabled" if config.enabled else "disabled"
        options = " ".join(f"{k}={orjson.dumps(v).decode()}" for k, v in sorted(view["options"].items()))
        limits = f"max_in_flight={config.limits.max_in_flight} send_timeout_s={config.limits.send_timeout_s:g}"
        echo(f"{config.channel}\t{state}\tplugin={config.plugin_name}\t{limits}\t{options}")


async def set_config(settings: Settings, change: ConfigChange, *, echo: Echo) -> None:
    async with operations(settings) as ops:
        if (change.plugin or change.channel) not in ops.plugins.names():
            echo(f"warning: no connector plugin {change.plugin or change.channel!r} is installed here")
        config = change.apply(await ops.configs.get_config(change.channel))
        await ops.configs.put_config(config)
    state = "enabled" if config.enabled else "disabled"
    echo(f"{config.channel}: {state} (routers pick it up within {settings.connectors_refresh_interval_s:g} s)")


async def delete_config(settings: Settings, channel: str) -> bool:
    async with operations(settings) as ops:
        return await ops.configs.delete_config(channel)


async def list_dead_letters(
    settings: Settings, *, channel: str | None, message_id: str | None, echo: Echo, as_json: bool
) -> None:
    async with operations(settings) as ops:
        entries = await ops.dead_letters.entries(channel=channel, message_id=message_id)
    for e in entries:
        status = e.status.value if e.status is not None else None
        if e.letter is None:
            line: dict[str, Any] = {"partition": e.partition, "offset": e.offset, "type": "unreadable record"}
            echo(orjson.dumps(line).decode() if as_json else f"{e.partition}/{e.offset}\t(a record that is not a dead letter)")
            continue
        if as_json:
            echo(orjson.dumps(e.letter.model_dump(mode="json") | {"status": status, "replayable": e.replayable}).decode())
            continue
        letter = e.letter
        echo(
            f"{letter.failed_at.isoformat()}\t{letter.channel}\t{letter.username}\t{letter.message_id}\t"
            f"attempts={letter.attempts}\tnow={status}\t{letter.reason}"
        )
    if not as_json:
        replayable = sum(e.replayable for e in entries)
        echo(f"{len(entries)} dead letter(s), {replayable} still FAILED (replayable)")


async def replay_dead_letters(
    settings: Settings, *, channel: str | None, message_id: str | None, dry_run: bool, echo: Echo
) -> None:
    async with operations(settings) as ops:
        keys = await ops.dead_letters.replay(channel=channel, message_id=message_id, dry_run=dry_run)
    for key in keys:
        echo(f"{'would replay' if dry_run else 'replayed'}\t{key.channel}\t{key.username}\t{key.message_id}")
    echo(f"{len(keys)} delivery(ies) {'would be ' if dry_run else ''}replayed")
