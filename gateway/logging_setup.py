"""Logging of the gateway process: one line per record on stderr, as text or as JSON for log shippers.

`[logging] format = "json"` writes one JSON object per line (`ts`, `level`, `logger`, `msg`, and `exc` with the
traceback when there is one), which journald, Docker and Loki/Elasticsearch shippers take as they are.
aiosmtpd logs every SMTP command and reply at INFO (five lines per mail, with addresses): its `mail.log`
logger is kept at WARNING unless the gateway's level is DEBUG.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import datetime, timezone

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        doc = {
            "ts": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return json.dumps(doc, ensure_ascii=False, default=str)


def setup(level: str = "INFO", fmt: str = "text") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    # aiosmtpd's per-command lines: DEBUG for us (they cost ~9 % of SMTP intake at INFO, issue 14 §8).
    logging.getLogger("mail.log").setLevel(logging.DEBUG if level == "DEBUG" else logging.WARNING)


def banner() -> str:
    """The version line written at start."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        v = version("helpdesk-gateway")
    except PackageNotFoundError:
        v = "unknown"
    return f"helpdesk-gateway {v} (Python {sys.version.split()[0]})"
