"""What every command group uses: the parser that fails in one line, and one way to run a
service, print a failure or read a file named on the command line."""

import argparse
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, NoReturn, TypeAlias

from shared import lifecycle
from shared.logging import redact
from shared.settings import ConfigError, Settings

Command = Callable[[argparse.Namespace, Settings], int]


class Parser(argparse.ArgumentParser):
    """argparse, its complaints in one line (with where to look for help) and status 2."""

    def error(self, message: str) -> NoReturn:
        raise ConfigError(f"{self.prog}: {message} (see {self.prog} --help)")


Commands: TypeAlias = "argparse._SubParsersAction[Parser]"  # what a group adds its commands to


def ran(service: Coroutine[Any, Any, None]) -> int:
    lifecycle.run(service)
    return 0


def fail(problem: object, status: int) -> int:
    lines = redact(str(problem)).strip().splitlines() or [type(problem).__name__]
    print(f"callbridge: error: {lines[0]}", file=sys.stderr)
    return status


def read_lines(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"{path}: cannot read: {getattr(error, 'strerror', None) or error}") from None
