"""Logging set up once per process (dictConfig). JSON lines by default, one per state change.

Loggers: ``ivr.*`` at the configured level; ``uvicorn.access`` and ``panoramisk`` at WARNING.
Fields passed with ``extra=`` (``call_id``, ``uniqueid``, ``state`` ...) become JSON keys.
Caller numbers are masked by whoever logs them (:func:`mask_number`).
"""

from __future__ import annotations

import json
import logging
import logging.config
from typing import Any

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                doc[key] = value if isinstance(value, str | int | float | bool) else str(value)
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return json.dumps(doc, ensure_ascii=False)


def setup_logging(level: str = "INFO", json_lines: bool = True) -> None:
    logging.config.dictConfig(
        {
            "version": 1,
            "disable_existing_loggers": False,
            "formatters": {
                "json": {"()": JsonFormatter},
                "plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"},
            },
            "handlers": {
                "stderr": {
                    "class": "logging.StreamHandler",
                    "formatter": "json" if json_lines else "plain",
                }
            },
            "loggers": {
                "ivr": {"level": level},
                "panoramisk": {"level": "WARNING"},
                "uvicorn.access": {"level": "WARNING"},
            },
            "root": {"handlers": ["stderr"], "level": "WARNING"},
        }
    )


def mask_number(number: str) -> str:
    """Keep the first 3 and last 2 digits: ``13800138000`` -> ``138******00``.

    >>> mask_number("13800138000")
    '138******00'
    >>> mask_number("110")
    '***'
    """
    if len(number) <= 5:
        return "*" * len(number)
    return number[:3] + "*" * (len(number) - 5) + number[-2:]
