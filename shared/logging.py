"""One log format for every service: `time level logger: message`, or one JSON object per line.

Secrets never reach a log line: `redact` masks any `scheme://user:password@`, any `password=`
parameter and any web address's query (where tokens travel), in a URL before it is logged and, by
a filter, in every message. `endpoint_address` names a webhook endpoint in logs and events: its
scheme, host and port only (its path may be a token too).
"""

import json
import logging
import re
import sys
from urllib.parse import urlsplit

# a password runs to the last @ before the next blank: one with an unencoded / or @ is hidden whole
_CREDENTIALS = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)(?P<user>[^:/@\s]*):\S*@", re.I)
_QUERY = re.compile(r"(?P<address>https?://[^\s?#'\"]+)\?[^\s#'\"]+", re.I)
# a password as a parameter: postgresql://host/db?password=…, or libpq's "password=…" conninfo
_PASSWORD = re.compile(r"(?P<key>(?:^|[?&\s])password=)[^&\s'\"]+", re.I)


def redact(text: str) -> str:
    """`amqp://guest:secret@host/` → `amqp://guest:***@host/`; each pattern only where it can match."""
    if "://" in text:  # the first tries a match at every letter: ~40 µs over a webhook's body
        text = _CREDENTIALS.sub(lambda m: f"{m['scheme']}{m['user']}:***@", text)
        text = _QUERY.sub(lambda m: f"{m['address']}?***", text)
    if "password=" in text.casefold():
        text = _PASSWORD.sub(lambda m: f"{m['key']}***", text)
    return text


def endpoint_address(url: str) -> str:
    """`https://crm.example.com/hooks/T0/B0/s3cr3t?token=x` → `https://crm.example.com/…`."""
    parts = urlsplit(url)
    host, port = parts.hostname or "?", f":{parts.port}" if parts.port else ""
    rest = "/…" if parts.path not in ("", "/") or parts.query else "/"
    return f"{parts.scheme}://{host}{port}{rest}"


class _RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        cleaned = redact(message := record.getMessage())
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = redact(self.formatException(record.exc_info))
        return json.dumps(entry)


def configure_logging(level: str = "INFO", json_lines: bool = False) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(_RedactingFilter())
    text = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    handler.setFormatter(_JsonFormatter() if json_lines else text)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for chatty in ("aiormq", "aio_pika"):
        logging.getLogger(chatty).setLevel(max(root.level, logging.WARNING))
