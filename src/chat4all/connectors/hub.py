"""The connectors a process runs: built from the configuration in the metadata store and
rebuilt when it changes (R9.3), each with its own circuit breaker and in-flight limit (R9.4).

Every ``refresh_interval_s`` the hub reads the configuration (one query / one etcd range) and
the installed plugins; a channel whose configuration changed gets a new connector (and a fresh
breaker), and the old one is disconnected once its sends in flight are done. A connector that
cannot connect stays registered — its sends fail transiently (or permanently, for a credential
the provider refuses) and it tries again at most every ``reconnect_every_s``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from chat4all.connectors.base import (
    Connector,
    ConnectorContext,
    ConnectorError,
    TransientError,
)
from chat4all.connectors.registry import BUILT_IN_CHANNELS, ChannelSet, Plugins
from chat4all.connectors.resilience import BreakerState, CircuitBreaker
from chat4all.domain.connectors import ConnectorConfig
from chat4all.domain.errors import Unavailable
from chat4all.domain.models import INTERNAL
from chat4all.observability import metrics
from chat4all.observability.logging import get_logger
from chat4all.ports import ConnectorConfigStore

log = get_logger(__name__)
RETIRE_WAIT_S = 60.0


@dataclass(frozen=True, slots=True)
class BreakerRules:
    failure_threshold: int = 5
    open_s: float = 5.0


@dataclass(eq=False)
class LiveConnector:
    """One channel's connector in this process, with what protects the others from it."""

    config: ConnectorConfig
    connector: Connector
    breaker: CircuitBreaker
    reconnect_every_s: float
    connected: bool = False
    connect_error: str | None = None
    in_flight: int = 0  # deliveries claimed for it and not finished
    _next_connect: float = 0.0
    _connecting: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def channel(self) -> str:
        return self.config.channel

    @property
    def free_slots(self) -> int:
        return max(0, self.config.limits.max_in_flight - self.in_flight)

    async def ensure_connected(self) -> None:
        """Connects if not yet connected (not more often than every ``reconnect_every_s``)."""
        if self.connected:
            return
        async with self._connecting:
            if self.connected:
                return
            if time.monotonic() < self._next_connect:
                raise TransientError(f"the {self.channel} connector is not connected: {self.connect_error}")
            self._next_connect = time.monotonic() + self.reconnect_every_s
            try:
                async with asyncio.timeout(self.config.limits.send_timeout_s):
                    await self.connector.connect()
            except ConnectorError as exc:
                self.connect_error = exc.reason
                raise
            except TimeoutError:
                self.connect_error = "connecting timed out"
                raise TransientError(f"the {self.channel} connector could not connect: timed out") from None
            except Exception as exc:  # a plugin's bug must not take the dispatcher down
                self.connect_error = f"{type(exc).__name__}: {exc}"
                log.exception("connector failed to connect", channel=self.channel)
                raise TransientError(f"the {self.channel} connector could not connect: {self.connect_error}") from exc
            self.connected, self.connect_error = True, None
            log.info("connector connected", channel=self.channel, plugin=self.config.plugin_name)


class ConnectorHub:
    def __init__(
        self,
        *,
        store: ConnectorConfigStore,
        plugins: Plugins,
        public_base_url: str,
        refresh_interval_s: float,
        breaker: BreakerRules,
        defaults: Sequence[ConnectorConfig] = (),
        reconnect_every_s: float = 5.0,
    ) -> None:
        self._store = store
        self.plugins = plugins
        self._public_base_url = public_base_url.rstrip("/")
        self._refresh_interval_s = refresh_interval_s
        self._breaker = breaker
        self._defaults = list(defaults)
        self._reconnect_every_s = reconnect_every_s
        self._live: dict[str, LiveConnector] = {}
        self._configs: dict[str, ConnectorConfig] = {}
        self._problems: dict[str, str] = {}  # channel -> why it has no connector
        self._retiring: set[asyncio.Task[None]] = set()
        self._refreshing = asyncio.Lock()  # one refresh at a time: a connector is built once
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.external_channels = ChannelSet(lambda: self._channel_names() - {INTERNAL})
        self.all_channels = ChannelSet(self._channel_names)

    # lifecycle (a runtime Component) --------------------------------------------------------

    async def start(self) -> None:
        for config in self._defaults:
            if await self._store.add_config(config):
                log.info("connector configured with its defaults", channel=config.channel)
        await self.refresh()
        self._stopping.clear()
        self._task = asyncio.create_task(self._refresh_forever(), name="connector-refresh")

    async def close(self) -> None:
        self._stopping.set()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        for live in list(self._live.values()):
            self._retire(live)
        self._live.clear()
        if self._retiring:
            await asyncio.gather(*self._retiring, return_exceptions=True)

    async def ping(self) -> None:
        if self._task is None or self._task.done():
            raise Unavailable("connector configuration is not being refreshed")

    # what the dispatcher and the webhook route ask ------------------------------------------

    def get(self, channel: str) -> LiveConnector | None:
        """The channel's connector if it is enabled and built."""
        return self._live.get(channel)

    def enabled_channels(self) -> list[str]:
        return sorted(self._live)

    def unavailable_reason(self, channel: str) -> str:
        if channel in self._problems:
            return self._problems[channel]
        config = self._configs.get(channel)
        if config is not None and not config.enabled:
            return f"the {channel} connector is disabled"
        return f"no connector is configured for the channel {channel!r}"

    def configs(self) -> list[ConnectorConfig]:
        return [self._configs[c] for c in sorted(self._configs)]

    def _channel_names(self) -> frozenset[str]:
        return BUILT_IN_CHANNELS | self.plugins.names() | frozenset(self._configs)

    # refreshing -----------------------------------------------------------------------------

    async def _refresh_forever(self) -> None:
        while not self._stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self._refresh_interval_s)
            if self._stopping.is_set():
                return
            try:
                await self.refresh()
            except Exception:
                log.exception("refreshing the connector configuration failed; keeping the current one")

    async def refresh(self) -> None:
        """Reads the configuration and rebuilds the connectors whose configuration changed."""
        async with self._refreshing:
            await self._refresh()

    async def _refresh(self) -> None:
        try:
            configs = await self._store.list_configs()
        except Exception as exc:  # noqa: BLE001 - any store failure: keep the connectors running
            log.warning("connector configuration could not be read; keeping the current one", error=str(exc))
            return
        self.plugins.rescan()
        self._configs = {c.channel: c for c in configs}
        wanted = {c.channel: c for c in configs if c.enabled}
        for channel, live in list(self._live.items()):
            if not live.config.same_setup(wanted.get(channel)):
                del self._live[channel]
                self._retire(live)
                log.info("connector configuration changed", channel=channel, enabled=channel in wanted)
        for channel in list(self._problems):
            if channel not in wanted:
                del self._problems[channel]
        built = [self._build(c) for ch, c in sorted(wanted.items()) if ch not in self._live]
        for new in built:
            if new is not None:
                self._live[new.channel] = new
        # connect the new ones together: a slow provider does not hold up the others
        await asyncio.gather(*(self._connect_quietly(new) for new in built if new is not None))

    def _build(self, config: ConnectorConfig) -> LiveConnector | None:
        channel = config.channel
        try:
            factory = self.plugins.factory(config.plugin_name)
            context = ConnectorContext(
                channel=channel,
                options=dict(config.options),
                webhook_url=f"{self._public_base_url}/v1/connectors/{channel}/webhook",
            )
            connector = factory(context)
        except Exception as exc:  # noqa: BLE001 - a plugin's constructor may raise anything
            reason = f"the {channel} connector could not be built: {exc}"
            if self._problems.get(channel) != reason:
                log.error("connector could not be built", channel=channel, plugin=config.plugin_name, error=str(exc))
            self._problems[channel] = reason
            return None
        self._problems.pop(channel, None)
        metrics.CONNECTOR_BREAKER.labels(channel).set(BreakerState.CLOSED)
        metrics.CONNECTOR_CONFIG.labels(channel).set(config.updated_at.timestamp())
        breaker = CircuitBreaker(
            failure_threshold=self._breaker.failure_threshold,
            open_s=self._breaker.open_s,
            on_change=functools.partial(_breaker_changed, channel),
        )
        return LiveConnector(
            config=config, connector=connector, breaker=breaker, reconnect_every_s=self._reconnect_every_s
        )

    async def _connect_quietly(self, live: LiveConnector) -> None:
        try:
            await live.ensure_connected()
        except ConnectorError as exc:
            log.warning("connector could not connect; sends will retry", channel=live.channel, error=exc.reason)

    def _retire(self, live: LiveConnector) -> None:
        task = asyncio.create_task(self._disconnect_when_idle(live), name=f"connector-retire-{live.channel}")
        self._retiring.add(task)
        task.add_done_callback(self._retiring.discard)

    async def _disconnect_when_idle(self, live: LiveConnector) -> None:
        deadline = time.monotonic() + RETIRE_WAIT_S
        while live.in_flight and time.monotonic() < deadline:  # noqa: ASYNC110 - a counter, polled with a deadline
            await asyncio.sleep(0.05)
        try:
            await live.connector.disconnect()
        except Exception:
            log.exception("connector failed to disconnect", channel=live.channel)


def _breaker_changed(channel: str, state: BreakerState) -> None:
    metrics.CONNECTOR_BREAKER.labels(channel).set(state)
    log.warning("connector circuit breaker changed", channel=channel, state=state.name.lower())
