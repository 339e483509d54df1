"""What a PBX driver hands the call tracker: low-level updates shaped like 3CX v20 Call Control.

A `ParticipantUpdate` is one participant entity as `GET /callcontrol/{dn}/participants/{id}`
returns it (snake_case field names as 3CX sends them), stamped with its arrival time (3CX events
carry none), plus the DN's own type from `GET /callcontrol` (`dn_type`). `removed=True` is the
WebSocket's Remove (or a 404 on the GET). Every driver — the simulator, and the 3CX driver —
emits exactly these, so one tracker serves them all.

The external party's leg. Every call with an external party has one participant whose `dn` is
the trunk's DN (`dn_type == "Wexternalline"`): the trunk's view of the call. On it,
`party_caller_id` is the external number, `party_did` the DID it came in on, and `party_dn` /
`party_dn_type` the internal DN the call is currently routed to or connected with. Its
`originated_by_*` tell who started the call (the trunk for incoming calls, the extension for
outgoing ones), and after a blind transfer `referred_by_dn` names the transferor. The leg is
removed when the external party leaves; `reason="callback"` on that removal says the caller
ordered a queue callback (3CX reports this in its CDR, not in Call Control).

Extension participants (`dn_type == "Wextension"`) have the 3CX meaning: the extension's leg,
`status` Dialing / Ringing / Connected, `party_*` describing the other side, `on_behalf_of_*` the
queue or ring group it rings for, `referred_by_*` the transferor when it was connected by a
transfer.
"""

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from shared.directory import Directory, ForwardingProfile, RecordingOption

Status = Literal["Dialing", "Ringing", "Connected"]

EXTERNAL_LINE = "Wexternalline"
EXTENSION = "Wextension"
QUEUE = "Wqueue"
RING_GROUP = "Wringgroup"
IVR = "Wivr"


@dataclass(frozen=True, slots=True)
class ParticipantUpdate:
    at: datetime
    dn: str
    dn_type: str
    id: int
    callid: int
    legid: int
    status: Status
    party_caller_id: str = ""
    party_caller_name: str = ""
    party_dn: str = ""
    party_dn_type: str = ""
    party_did: str = ""
    originated_by_dn: str = ""
    originated_by_type: str = "None"
    referred_by_dn: str = ""
    referred_by_type: str = "None"
    on_behalf_of_dn: str = ""
    on_behalf_of_type: str = "None"
    device_id: str = ""
    direct_control: bool = False
    removed: bool = False
    reason: str = ""

    def same_entity(self, other: "ParticipantUpdate") -> bool:
        """True when `other` says nothing new (3CX routinely sends the same Upsert twice)."""
        fields = ParticipantUpdate.__slots__
        return all(getattr(self, f) == getattr(other, f) for f in fields if f != "at")


@dataclass(frozen=True, slots=True)
class RegistrationUpdate:
    at: datetime
    dn: str
    registered: bool


@dataclass(frozen=True, slots=True)
class ForwardingUpdate:
    at: datetime
    dn: str
    profile: ForwardingProfile


@dataclass(frozen=True, slots=True)
class QueueLoginUpdate:
    at: datetime
    dn: str
    queue: str  # a queue number, or "all" for the global status
    logged_in: bool


@dataclass(frozen=True, slots=True)
class OptionsUpdate:
    at: datetime
    dn: str
    enabled: bool
    external: bool
    recording: RecordingOption


@dataclass(frozen=True, slots=True)
class DirectoryUpdate:
    at: datetime
    directory: Directory


PbxUpdate = (
    ParticipantUpdate
    | RegistrationUpdate
    | ForwardingUpdate
    | QueueLoginUpdate
    | OptionsUpdate
    | DirectoryUpdate
)
