"""The server's logging: one format for securekey's loggers and uvicorn's, text or JSON lines.

``logging_config`` is a ``logging.config.dictConfig`` dictionary; ``serve`` applies it and hands
the same one to uvicorn, so uvicorn's own loggers write through the same handler and formatter.
JSON lines carry ``time``, ``level``, ``logger``, ``message`` and, for audit lines, ``event``
(names and fingerprints only, as the audit log holds them).
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any, Literal

__all__ = ["LOG_FORMATS", "JsonFormatter", "logging_config"]

LOG_FORMATS = ("text", "json")
LogFormat = Literal["text", "json"]
_TEXT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
#: Attributes a LogRecord always has; anything else was passed with ``extra=``.
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "color_message"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line; ``extra=`` fields are kept under their own names."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as one line of JSON."""
        data: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                data[key] = value
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        return json.dumps(data, ensure_ascii=False, default=str)


def logging_config(level: str = "info", fmt: LogFormat = "text") -> dict[str, Any]:
    """The dictConfig for ``level`` and ``fmt``: root, securekey and uvicorn on one handler."""
    if fmt not in LOG_FORMATS:
        raise ValueError(f"log format must be one of {', '.join(LOG_FORMATS)}")
    name = level.upper()
    formatter: dict[str, Any] = (
        {"()": f"{__name__}.JsonFormatter"} if fmt == "json" else {"format": _TEXT}
    )
    # uvicorn's loggers keep no handlers of their own and propagate to the root's one.
    quiet = {"handlers": [], "propagate": True}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"securekey": formatter},
        "handlers": {
            "default": {
                "class": "logging.StreamHandler",
                "formatter": "securekey",
                "stream": "ext://sys.stderr",
            }
        },
        "root": {"handlers": ["default"], "level": name},
        "loggers": {
            "uvicorn": {**quiet, "level": name},
            "uvicorn.error": {**quiet, "level": name},
            "uvicorn.access": {**quiet, "level": name},
        },
    }
