"""The kinds of value a configuration holds, checked the same way wherever they come from (the
.ini file, the environment, the command line): time zones, URLs, host names, durations, lists of
words and secrets."""

import os
import re
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BeforeValidator, IPvAnyNetwork, SecretStr
from yarl import URL

MIN_KEY_LENGTH = 16  # an API key's or a link signing secret's: guessing one must be hopeless
DAY = 86400.0
MAX_RETRY_DELAY = 7 * DAY  # longer than RabbitMQ's per-message TTL tiers were meant for


def check_zone(name: str) -> ZoneInfo:
    """The IANA time zone `name`; ValueError saying so when there is none."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r} (use an IANA name such as Europe/Prague)") from None


_HOST = re.compile(r"^[A-Za-z0-9.:_-]*$")  # a name, an IPv4 or an IPv6 address, without brackets


QueueType = Literal["classic", "quorum"]  # how durable queues are declared ([bus] queue_type)


def url_list(value: str) -> tuple[str, ...]:
    """A broker's URLs as `[bus] amqp_url` gives them: comma-separated, one or several."""
    return tuple(url.strip() for url in value.split(","))


def check_url(value: str, schemes: tuple[str, ...]) -> str:
    """`value` if it is a URL of one of `schemes` with a host and a valid port; else ValueError
    that names the problem without repeating the URL (it may hold a password)."""
    try:
        url = URL(value)
        port = url.port  # parsing the port can fail on its own
    except (ValueError, TypeError):
        raise ValueError(
            "not a valid URL (characters such as / # ? @ in a user name or password must be "
            "percent-encoded, e.g. / as %2F)"
        ) from None
    if url.scheme not in schemes:
        raise ValueError(f"must start with {' or '.join(s + '://' for s in schemes)}")
    if not url.host:
        raise ValueError("has no host name")
    if port is not None and not 0 < port < 65536:
        raise ValueError(f"port {port} is not between 1 and 65535")
    return value


def _split_words(value: Any) -> Any:
    """A list in an .ini value or an environment variable: words separated by spaces or commas."""
    return tuple(value.replace(",", " ").split()) if isinstance(value, str) else value


def _host(value: str) -> str:
    if not _HOST.match(value):
        raise ValueError(f"{value!r} is not a host name or an IP address (an IPv6 address without brackets)")
    return value


Host = Annotated[str, AfterValidator(_host)]
Words = Annotated[tuple[str, ...], BeforeValidator(_split_words)]


def _patterns(value: Any) -> Any:
    """Regular expressions in an .ini value: separated by spaces (a pattern may hold commas)."""
    if not isinstance(value, str):
        return value
    patterns = []
    for word in value.split():
        try:
            patterns.append(re.compile(word))
        except re.error as error:
            raise ValueError(f"{word!r} is not a regular expression ({error})") from None
    return tuple(patterns)


Patterns = Annotated[tuple[re.Pattern[str], ...], BeforeValidator(_patterns)]
Networks = Annotated[tuple[IPvAnyNetwork, ...], BeforeValidator(_split_words)]
PRIVATE_NETWORKS = ("127.0.0.0/8", "::1/128", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7")
SecretWords = Annotated[tuple[SecretStr, ...], BeforeValidator(_split_words)]


def _database(value: Any) -> Any:
    """A service's database: a file path (SQLite, this host) or a postgresql:// URL (shared)."""
    text = os.fspath(value) if isinstance(value, os.PathLike) else value
    if isinstance(text, str) and "://" in text:
        check_url(text, ("postgresql", "postgres"))
    return text


DatabaseAddress = Annotated[str, BeforeValidator(_database)]


_UNITS = {"ms": 0.001, "s": 1, "m": 60, "min": 60, "h": 3600, "d": 86400}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|min|m|h|d)?\s*$")


def parse_duration(text: str) -> float:
    """`5s`, `5m`, `2h`, `1.5` (seconds) → seconds."""
    match = _DURATION.match(text)
    if not match:
        raise ValueError(f"{text.strip()!r} is not a duration such as 5s, 30m, 2h")
    return float(match[1]) * _UNITS[match[2] or "s"]
