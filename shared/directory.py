"""The PBX's directory as callbridge sees it: extensions (with their current state), queues, ring
groups, IVRs and lines with their DIDs. Carried by `pbx.directory` events, read by every service."""

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

RecordingOption = Literal["off", "external", "all"]
ForwardingProfile = Literal["Available", "Away", "Out of office", "Custom 1", "Custom 2"]
FORWARDING_PROFILES: tuple[str, ...] = ("Available", "Away", "Out of office", "Custom 1", "Custom 2")
RECORDING_OPTIONS: tuple[str, ...] = ("off", "external", "all")


class _Entry(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    number: str
    name: str = ""


class Extension(_Entry):
    recording: RecordingOption = "off"
    enabled: bool = True
    external: bool = True
    registered: bool = True
    profile: ForwardingProfile = "Available"
    queue_logged_in: bool = Field(True, description="the global queue status")
    logged_out_queues: tuple[str, ...] = Field((), description="queues the agent is logged out of")


class Queue(_Entry):
    agents: tuple[str, ...] = ()


class RingGroup(_Entry):
    members: tuple[str, ...] = ()


class Ivr(_Entry):
    pass


class Did(_Entry):
    pass


class Line(_Entry):
    dids: tuple[Did, ...] = ()


class Directory(BaseModel):
    """The PBX's configuration: who can ring, route and carry calls."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    extensions: tuple[Extension, ...] = ()
    queues: tuple[Queue, ...] = ()
    groups: tuple[RingGroup, ...] = ()
    ivrs: tuple[Ivr, ...] = ()
    lines: tuple[Line, ...] = ()
