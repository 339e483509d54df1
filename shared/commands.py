"""Commands the API sends the monitor over RPC (JSON, never pickle), and their answers.

RPC methods (`shared.bus.Bus.call`): `snapshot` (no arguments; answers a
`shared.pbx_state.StateSnapshot`) and `command` (a `Command`; answers a `CommandResult`).
"""

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from .directory import ForwardingProfile, RecordingOption

SNAPSHOT = "snapshot"
COMMAND = "command"


class _Command(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class MakeCall(_Command):
    """Ring extension `first`; once it answers, dial `second` (an extension or an outside number)."""

    command: Literal["makecall"] = "makecall"
    first: str
    second: str


class SetForwarding(_Command):
    command: Literal["forwarding"] = "forwarding"
    extension: str
    profile: ForwardingProfile


class SetQueueLogin(_Command):
    """Log an agent in or out of one queue, or of all of them (`queue == "all"`)."""

    command: Literal["queue_login"] = "queue_login"
    extension: str
    queue: str
    logged_in: bool


class SetOptions(_Command):
    """Change one to three of an extension's options; the others stay as they are."""

    command: Literal["options"] = "options"
    extension: str
    enabled: bool | None = None
    external: bool | None = None
    recording: RecordingOption | None = None


Command = Annotated[MakeCall | SetForwarding | SetQueueLogin | SetOptions, Field(discriminator="command")]


def extension_of(command: Command) -> str:
    """The extension a command is about (a makecall's: the one that rings first)."""
    return command.first if isinstance(command, MakeCall) else command.extension


COMMAND_ADAPTER: TypeAdapter[Command] = TypeAdapter(Command)

# why a command failed: something named does not exist; the request makes no sense; the PBX said no
Failure = Literal["not_found", "invalid", "refused"]


class CommandResult(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    ok: bool
    failure: Failure | None = None
    reason: str = ""
    call_number: int | None = Field(None, description="the PBX call number a makecall started")

    @classmethod
    def failed(cls, failure: Failure, reason: str) -> "CommandResult":
        return cls(ok=False, failure=failure, reason=reason)
