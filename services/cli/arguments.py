"""What the command line's arguments may be: argparse types that refuse a bad value with a
message naming the rule (the parser turns it into one line and status 2)."""

import argparse
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from pydantic import SecretStr

from shared.values import MIN_KEY_LENGTH, check_url, check_zone
from simulation.scenario import ScenarioError, parse_start

T = TypeVar("T")


def number(low: float, high: float, *, above: bool = False, whole: bool = False) -> Callable[[str], float]:
    """A finite number from `low` (exclusive with `above`) to `high`."""

    def parse(text: str) -> float:
        try:
            value = int(text) if whole else float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a {'whole ' if whole else ''}number") from None
        if not (low < value if above else low <= value) or not value <= high:  # NaN fails too
            lowest = f"more than {low:g}" if above else f"at least {low:g}"
            raise argparse.ArgumentTypeError(f"must be {lowest} and at most {high:g}, not {text}")
        return value

    parse.__name__ = "whole number" if whole else "number"
    return parse


PORT = number(0, 65535, whole=True)  # 0: none


def folder(text: str) -> Path:
    """A folder to write in: made if need be, and tried."""
    path = Path(text)
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as error:
        raise argparse.ArgumentTypeError(f"cannot write in {path}: {error.strerror or error}") from None
    return path


def api_key(text: str) -> SecretStr:
    if len(text) < MIN_KEY_LENGTH:
        raise argparse.ArgumentTypeError(f"an API key must be at least {MIN_KEY_LENGTH} characters")
    return SecretStr(text)


def checked(check: Callable[[str], T], errors: type[Exception] = ValueError) -> Callable[[str], T]:
    """`check` as an argparse type: what it refuses becomes the parser's one-line complaint."""

    def parse(text: str) -> T:
        try:
            return check(text)
        except errors as error:
            raise argparse.ArgumentTypeError(str(error)) from None

    return parse


web_url = checked(lambda text: check_url(text, ("http", "https")))
zone = checked(check_zone)
start_time = checked(parse_start, ScenarioError)
