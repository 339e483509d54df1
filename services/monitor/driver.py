"""The monitor's driver protocol: where PBX updates come from, and who carries out the API's
commands. The 3CX driver (`threecx/driver.py`) and the simulator (`simulation/driver.py`, outside
the services) both keep it; the monitor knows no other side of either.

A driver is an async iterable of `PbxUpdate`s (`updates.py`) that starts with the directory, and
executes commands (`shared.commands`), whose effects arrive as updates like any others.
"""

from collections.abc import AsyncIterator
from typing import Protocol

from shared.commands import Command, CommandResult

from .updates import ParticipantUpdate, PbxUpdate


class Driver(Protocol):
    def updates(self) -> AsyncIterator[PbxUpdate]: ...

    async def execute(self, command: Command) -> CommandResult: ...

    def ready(self) -> bool:
        """Connected to the PBX (the simulator always is)."""
        ...

    def waiting(self) -> tuple[int, int]:
        """Updates read from the PBX that the monitor has not taken yet: in all, and of those on
        disk (the simulator waits for the monitor instead: none)."""
        ...

    def resume(self, participants: list[ParticipantUpdate]) -> None:
        """Before `updates()`: what a restarted monitor's tracker believes is on the PBX. The
        driver tells from there what changed: a participant it no longer finds comes as removed."""
        ...
