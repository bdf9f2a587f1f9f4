"""Connector plugins (R9.2): discovered through the entry-point group ``chat4all.connectors``.

Every connector — the built-in ones included — is an entry point whose object is a factory
called with a ``ConnectorContext``. Installing a distribution that declares one is all it
takes to add a channel; the list is re-read when the connector configuration is refreshed.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Collection, Iterator
from importlib.metadata import EntryPoint, entry_points

from chat4all.connectors.base import ConnectorFactory
from chat4all.domain.models import Channel

ENTRY_POINT_GROUP = "chat4all.connectors"


class Plugins:
    def __init__(self, group: str = ENTRY_POINT_GROUP) -> None:
        self._group = group
        self._entry_points: dict[str, EntryPoint] = {}
        self._loaded: dict[str, ConnectorFactory] = {}
        self.rescan()

    def rescan(self) -> None:
        """Reads the installed entry points again (a distribution may have been installed)."""
        importlib.invalidate_caches()
        found = {ep.name: ep for ep in entry_points(group=self._group)}
        for name, ep in found.items():
            if name in self._entry_points and self._entry_points[name].value != ep.value:
                self._loaded.pop(name, None)
        self._entry_points = found

    def names(self) -> frozenset[str]:
        return frozenset(self._entry_points)

    def describe(self) -> dict[str, str]:
        """name -> "module:object", for operators."""
        return {name: ep.value for name, ep in sorted(self._entry_points.items())}

    def factory(self, name: str) -> ConnectorFactory:
        """Loads the plugin's factory; LookupError if no such plugin is installed."""
        if name not in self._loaded:
            ep = self._entry_points.get(name)
            if ep is None:
                raise LookupError(f"no connector plugin {name!r} is installed (entry point group {self._group})")
            factory = ep.load()
            if not callable(factory):
                raise LookupError(f"the connector plugin {name!r} ({ep.value}) is not callable")
            self._loaded[name] = factory
        return self._loaded[name]


class ChannelSet(Collection[str]):
    """A live view of channel names (plugins and configuration can change while running)."""

    def __init__(self, names: Callable[[], frozenset[str]]) -> None:
        self._names = names

    def __contains__(self, name: object) -> bool:
        return name in self._names()

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._names()))

    def __len__(self) -> int:
        return len(self._names())


BUILT_IN_CHANNELS = frozenset(c.value for c in Channel)
