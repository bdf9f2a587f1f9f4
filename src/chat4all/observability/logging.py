"""JSON logs (R13.3): one object per line with timestamp, level, event, trace_id and context."""

from __future__ import annotations

import logging
import re
import sys

import structlog


def configure_logging(*, level: str = "INFO", json: bool = True) -> None:
    shared: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer = structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(colors=False)
    structlog.configure(
        # filter first, so a debug call on a hot path costs almost nothing when debug is off
        processors=[structlog.stdlib.filter_by_level, *shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            renderer,
        ],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    handler.addFilter(RedactQueryStrings())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True
    logging.getLogger("uvicorn.access").disabled = True  # the app logs each request itself
    # httpx logs every request it makes at INFO, URL included: Telegram's carries the bot token
    logging.getLogger("httpx").setLevel(max(logging.WARNING, root.level))


_QUERY_VALUE = re.compile(r"=[^&\s\"]*")


def redact_target(target: str) -> str:
    """``/v1/ws?token=eyJ...&x=1`` → ``/v1/ws?token=[redacted]&x=[redacted]``: query strings
    carry credentials (a WebSocket's ``?token=``, signed file URLs), so no log keeps their values."""
    path, sep, query = target.partition("?")
    return f"{path}?{_QUERY_VALUE.sub('=[redacted]', query)}" if sep else target


class RedactQueryStrings(logging.Filter):
    """Redacts the query string of every request target in a log record's arguments: uvicorn's
    access lines and its WebSocket handshake lines (``"WebSocket /v1/ws?token=..." [accepted]``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and any(isinstance(a, str) and "?" in a for a in record.args):
            record.args = tuple(redact_target(a) if isinstance(a, str) and a.startswith("/") else a for a in record.args)
        if isinstance(record.msg, str) and "?" in record.msg and not record.args:
            record.msg = re.sub(r"(/\S*?)\?(\S+)", lambda m: redact_target(m.group(0)), record.msg)
        return True


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    return structlog.get_logger(name)
