"""Push in memory: a Push that records what it was asked to send and hands it to a hub."""

from __future__ import annotations

from collections.abc import Sequence

from chat4all.domain.errors import Unavailable
from chat4all.domain.frames import Frame
from chat4all.ports import FrameSink


class RecordingPush:
    """Records every ``send``; delivers to ``sink`` (a hub) if given; ``down`` makes it raise
    Unavailable like a push backend that cannot be reached."""

    def __init__(self, sink: FrameSink | None = None) -> None:
        self._sink = sink
        self.calls: list[list[tuple[str, Frame]]] = []
        self.down = False

    async def send(self, frames: Sequence[tuple[str, Frame]]) -> None:
        if self.down:
            raise Unavailable("push is unavailable")
        self.calls.append(list(frames))
        if self._sink is not None:
            self._sink.deliver(frames)

    @property
    def frames(self) -> list[tuple[str, Frame]]:
        return [item for call in self.calls for item in call]


class RecordingSubscriber:
    """A socket's queue as the hub sees it (``services.hub.Subscriber``)."""

    def __init__(self) -> None:
        self.frames: list[Frame] = []
        self.missed_count = 0

    def offer(self, frame: Frame) -> None:
        self.frames.append(frame)

    def missed(self) -> None:
        self.missed_count += 1
