"""Logging: structlog, JSON lines by default (journald keeps them), console
rendering on a terminal or on request. Events are snake_case names with
bound context (eid, rloc, nonce, peer); keys never appear (the
configuration keeps them out of repr, and nothing logs them)."""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING,
          "error": logging.ERROR}


SECRET_FIELDS = frozenset({"key", "keys", "secret", "password", "authentication_data"})


def _redact(_logger: object, _name: str, event: MutableMapping[str, Any]) -> Any:
    """A last guard: a field named like a secret never reaches the output."""
    for field in SECRET_FIELDS & event.keys():
        event[field] = "<redacted>"
    return event


def configure(log_format: str, level: str) -> None:
    """`log_format` "auto": console on a terminal, JSON lines otherwise."""
    console = log_format == "console" or (log_format == "auto" and sys.stdout.isatty())
    renderer: structlog.typing.Processor = (
        structlog.dev.ConsoleRenderer(colors=sys.stdout.isatty())
        if console
        else structlog.processors.JSONRenderer()
    )
    structlog.configure(
        processors=[
            _redact,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(LEVELS[level]),
        logger_factory=structlog.PrintLoggerFactory(sys.stdout),
        cache_logger_on_first_use=False,
    )
