"""Structured logs: one line per event with the ids that matter, secrets redacted.

Every line is ``<time> <level> <module> <event> key=value ...`` (or one JSON object with the
same fields), so a log shipper or a grep finds an event id across all three modules. Redaction
runs on the final text, tracebacks included, so a secret in an exception message is caught too.
"""

from __future__ import annotations

import json
import logging
import math
import re
import sys
from datetime import UTC, datetime
from typing import Any

# Every pattern runs in time linear in the text, whatever the text (a log line or a reported
# value may be a hostile 30 kB twin string): a scheme is at most 32 characters, and a URL's path
# cannot run across another "://", so no match attempt rescans what an earlier one read.
_URL = r"\b[A-Za-z][A-Za-z0-9+.-]{0,31}://"
_PATH = r"(?:[^\s?#\"':]|:(?!//))*"
_SECRETS = [
    # A URL's user:password, and its whole query string: a SAS token is the query string, and
    # no query string of a model or blob URL is needed to recognise it in a log or report.
    re.compile(rf"({_URL})[^\s/@\"']+(?=@)"),
    re.compile(rf"({_URL}{_PATH}\?)[^\s#\"']+"),
    re.compile(r"(SharedAccessKey=)[^;\s\"']+", re.IGNORECASE),
    re.compile(r"(AccountKey=)[^;\s\"']+", re.IGNORECASE),
    re.compile(r"([?&]sig=)[^&\s\"']+", re.IGNORECASE),
    re.compile(r"(SharedAccessSignature=)[^;\s\"']+", re.IGNORECASE),
    re.compile(r"(SharedAccessSignature )[^;\s\"']+", re.IGNORECASE),
    # Custom Vision's key header, as a header line or a dumped header map shows it.
    re.compile(r"(Prediction[-_]Key[\"']?[:=] ?[\"']?)[^\s\"',;}]+", re.IGNORECASE),
]
REDACTED = "***"
#: How much of an outside value an error, a log line or a report quotes.
EXCERPT_CHARS = 200
# Redaction looks this far into a value before it is cut, so that a secret which starts inside
# the excerpt is recognised by the text that follows it (the ``@`` after a URL's password).
_REDACT_WINDOW = 4096
# Loggers of the product's own packages; a line from any other logger names it.
_OWN_LOGGERS = ("config", "edge_link", "infra", "contracts", "cli", "camera_module",
                "detector_module", "uploader_module")


def redact(text: str) -> str:
    """The text with connection-string keys, SAS signatures, URL query strings and URL
    credentials replaced by ``***``."""
    for pattern in _SECRETS:
        text = pattern.sub(lambda m: m.group(1) + REDACTED, text)
    return text


def redact_value(value: Any) -> Any:
    """Redact strings inside a JSON-like value, keys included (for reported properties and
    messages: a per-label map's keys come from the twin too)."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {redact(k) if isinstance(k, str) else k: redact_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact_value(v) for v in value]
    return value


def excerpt(value: Any, limit: int = EXCERPT_CHARS) -> Any:
    """What an error, a log line or a report may quote of a value from outside: numbers,
    booleans and None as they are (a non-finite float as its name, which JSON cannot carry);
    strings, and anything else as its JSON text, redacted and cut to ``limit`` characters
    with their full length said, so a 30 kB twin value never travels whole."""
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if isinstance(value, str):
        text = value
    else:
        try:
            text = json.dumps(value, default=lambda o: type(o).__name__)
        except (RecursionError, ValueError):
            text = f"<{type(value).__name__}>"
    shown = redact(text[:_REDACT_WINDOW])
    if len(text) <= limit and len(shown) <= limit:
        return shown
    return f"{shown[:limit]}... ({len(text)} characters)"


def event(logger: logging.Logger, level: int, name: str, /, **fields: Any) -> None:
    """Log one event line: a dotted event name plus key=value fields (any names, ``name``
    included: the first three parameters are positional-only)."""
    if logger.isEnabledFor(level):
        logger.log(level, name, extra={"fields": fields})


def event_with_traceback(logger: logging.Logger, level: int, name: str, exc: BaseException,
                         /, **fields: Any) -> None:
    """:func:`event` for an unexpected exception: the same line, then its traceback."""
    if logger.isEnabledFor(level):
        logger.log(level, name, extra={"fields": fields}, exc_info=exc)


def _kv(value: Any) -> str:
    """A field value that cannot end the line or fake another field: anything with a space,
    a quote, ``=``, or a character that is not printable (newline, carriage return, escape
    sequences) is written as a JSON string, escapes and all."""
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    if text == "" or any(c in text for c in ' "=') or not text.isprintable():
        return json.dumps(text)
    return text


class _Context(logging.Filter):
    """Adds the module name and its ids (device_id, train_id, camera_id) to every record."""

    def __init__(self, module: str, ids: dict[str, str]) -> None:
        super().__init__()
        self.module = module
        self.ids = ids

    def filter(self, record: logging.LogRecord) -> bool:
        record.module_name = self.module
        record.ids = self.ids
        return True


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    """The event's fields, then the process ids (device_id, ...) it does not set itself."""
    fields = dict(getattr(record, "fields", {}))
    for key, value in getattr(record, "ids", {}).items():
        fields.setdefault(key, value)
    return fields


class KeyValueFormatter(logging.Formatter):
    """``2026-11-21T10:00:00.123Z INFO camera settings.applied version=3 device=train-1``."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = datetime.fromtimestamp(record.created, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")
        fields = _fields(record)
        parts = [f"{stamp[:-3]}Z", record.levelname, getattr(record, "module_name", "-"),
                 record.getMessage()]
        parts += [f"{k}={_kv(v)}" for k, v in fields.items() if v is not None]
        if record.name and not record.name.startswith(_OWN_LOGGERS):
            parts.append(f"logger={record.name}")
        line = " ".join(parts)
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return redact(line)


class JsonFormatter(logging.Formatter):
    """One JSON object per line with ts, level, module, event and the fields."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "module": getattr(record, "module_name", None),
            "event": record.getMessage(),
            "logger": record.name,
            **_fields(record),
        }
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        return redact(json.dumps(doc, default=str))


def setup_logging(module: str, *, level: str = "INFO", fmt: str = "kv",
                  ids: dict[str, str] | None = None) -> None:
    """Send every log record of the process to stderr in the chosen format."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else KeyValueFormatter())
    handler.addFilter(_Context(module, dict(ids or {})))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    # The SDK and its MQTT layer are chatty at INFO; their warnings still show.
    for noisy in ("azure", "paho", "urllib3", "watchdog"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))


def apply_logging_settings(level: str, fmt: str) -> None:
    """Change level and format live (the logging section applies without restart)."""
    root = logging.getLogger()
    root.setLevel(level)
    for handler in root.handlers:
        handler.setFormatter(JsonFormatter() if fmt == "json" else KeyValueFormatter())
