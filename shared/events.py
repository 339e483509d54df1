"""The bus contract: every message that travels between callbridge services.

The monitor publishes them; api, webhooks and recordings consume them. No service keeps a copy.
A message's `type` is both its pydantic discriminator and its routing key on the topic exchange
(`shared.topology.EVENTS_EXCHANGE`).

Every message carries `event_id` (a UUID, the consumers' idempotency key), `occurred_at` (an
aware PBX timestamp), `source` (the publishing monitor's id) and `seq` (that monitor's sequence
number, 1, 2, 3… in publish order) so that a consumer can notice a gap and ask for a snapshot.

Evolve additively: a new field gets a default; a changed meaning is a new message type. The
JSON schema of `Message` is snapshotted in tests/unit/shared/event_schema.json.
"""

from collections.abc import Sequence
from typing import Annotated, Any, Literal, TypeAlias

from pydantic import Field, TypeAdapter

from .call_state import CallState
from .directory import Directory, ForwardingProfile, RecordingOption
from .event_base import Event

ChainDirection = Literal["inbound", "outbound"]
UserType = Literal["queue", "ext", "other"]
TransferType = Literal["NotDef", "Blind", "Accomp"]
RoutedType = Literal["extension", "queue", "group", "ivr", "external"]


# --- call events ------------------------------------------------------------------------------


class CallEvent(Event):
    """A fact about one call chain: an external party's call from arrival until it leaves."""

    chain_id: str = Field(description="YYMMDDhhmmss_N: PBX-local arrival time and PBX call number")
    call_number: int = Field(description="the PBX's call number N (3CX callid)")
    direction: ChainDirection
    external_number: str = Field(description="the external party's number")
    did_name: str = Field("", description="name of the DID rule (inbound); empty for outbound")
    did_number: str = Field("", description="the DID number the call came in on (inbound)")

    def chain_fields(self) -> dict[str, Any]:
        """The chain's identity, to carry over into another event of the same chain."""
        return self.model_dump(include=set(CallEvent.model_fields) - set(Event.model_fields))

    @property
    def call_id(self) -> str:
        """The classic id of this event's link, `chain_id-link`; chain-level events have no link."""
        link = getattr(self, "link", None)
        return self.chain_id if link is None else f"{self.chain_id}-{link}"


class CallStarted(CallEvent):
    """The chain began: an external call arrived, or an extension dialled out."""

    type: Literal["call.started"] = "call.started"
    routed_to: str = Field(description="the DN the call is routed to (inbound) or the dialling extension")


class CallRinging(CallEvent):
    """An extension's phone started ringing for the chain."""

    type: Literal["call.ringing"] = "call.ringing"
    link: int
    extension: str
    user_type: UserType


class CallAnswered(CallEvent):
    """A conversation began on a new link (an answer, or a completed attended transfer)."""

    type: Literal["call.answered"] = "call.answered"
    link: int
    extension: str
    transfer_type: TransferType


class CallEnded(CallEvent):
    """A link ended; `chain_ended` says whether the chain went with it."""

    type: Literal["call.ended"] = "call.ended"
    link: int
    extension: str = Field(
        description="the link's extension; for an unanswered link, the DN the call was routed to "
        "(inbound) or the dialling extension (outbound)"
    )
    answered: bool = Field(description="classic finishtype: Ok when true, Missed when false")
    transferred: bool = Field(description="the link ended because the call was transferred on")
    chain_ended: bool
    duration: float = Field(ge=0, description="seconds: talk time (answered) or link lifetime (missed)")
    routed_type: RoutedType = Field(description="type of the DN the call was routed to when it ended")
    callback_requested: bool = False


class RecordingReady(CallEvent):
    """A link's recordings are converted and downloadable; sent once per recorded link, after the
    chain ended. `files` are the download URLs (with their token), in recording order."""

    type: Literal["recording.ready"] = "recording.ready"
    link: int
    files: tuple[str, ...]
    ended: CallEnded = Field(description="the link's call end, for endpoints that want its fields too")


# --- PBX state events ------------------------------------------------------------------------


class ExtensionEvent(Event):
    extension: str


class ExtensionRegistration(ExtensionEvent):
    type: Literal["extension.registration"] = "extension.registration"
    registered: bool


class ExtensionPresence(ExtensionEvent):
    """Busy while the extension has a call in progress (dialling or talking), free otherwise."""

    type: Literal["extension.presence"] = "extension.presence"
    busy: bool


class ExtensionForwarding(ExtensionEvent):
    type: Literal["extension.forwarding"] = "extension.forwarding"
    profile: ForwardingProfile


class ExtensionQueueLogin(ExtensionEvent):
    """An agent logged in or out of one queue, or of all of them (`queue == "all"`)."""

    type: Literal["extension.queue_login"] = "extension.queue_login"
    queue: str
    logged_in: bool


class ExtensionOptions(ExtensionEvent):
    type: Literal["extension.options"] = "extension.options"
    enabled: bool
    external: bool = Field(description="may make and take external calls")
    recording: RecordingOption


# --- directory snapshot -----------------------------------------------------------------------


class DirectorySnapshot(Event):
    """The whole directory, with each extension's current state; sent at start and on change."""

    type: Literal["pbx.directory"] = "pbx.directory"
    directory: Directory


# --- operational events -------------------------------------------------------------------------


class WebhookEndpointDisabled(Event):
    """The webhooks service switched an endpoint off (it answered 410 Gone)."""

    type: Literal["webhooks.endpoint_disabled"] = "webhooks.endpoint_disabled"
    endpoint: str
    reason: str


class RecordingConverted(Event):
    """A recordings worker finished a conversion job (internal to the recordings service: it goes
    back to the replica that keeps the ledger of links and files)."""

    type: Literal["recording.converted"] = "recording.converted"
    chain_id: str
    link: int
    wav: str
    mp3: str
    ok: bool
    seconds: float = 0.0
    reason: str = ""


class RecordingFailed(Event):
    """A PBX recording could not be converted (corrupt, empty, unreadable); it is skipped."""

    type: Literal["recording.failed"] = "recording.failed"
    path: str
    reason: str


class CallsChanged(Event):
    """What the calls changed lately, one message for many (the monitor gathers it for up to
    `[monitor] states_every` seconds): the state of each call that changed (a `pbx.call`) and the
    presence of each extension that turned busy or free (an `extension.presence`), each once as it
    stands, in the order of their last change, numbered with this message's `seq`. After a monitor
    resumed, the first names every call in progress (`in_progress`: any other has ended) and every
    busy extension (`busy`: any other is free)."""

    type: Literal["pbx.calls"] = "pbx.calls"
    calls: tuple[CallState, ...]
    presence: tuple[ExtensionPresence, ...] = ()
    in_progress: tuple[int, ...] | None = None
    busy: tuple[str, ...] | None = None


def unpacked(event: Event) -> tuple[Event, ...]:
    """`event`, or what a `pbx.calls` carries (as a listener sees it, one by one)."""
    return (*event.calls, *event.presence) if isinstance(event, CallsChanged) else (event,)


Single: TypeAlias = (  # every message but a batch of them
    CallStarted
    | CallRinging
    | CallAnswered
    | CallEnded
    | RecordingReady
    | ExtensionRegistration
    | ExtensionPresence
    | ExtensionForwarding
    | ExtensionQueueLogin
    | ExtensionOptions
    | DirectorySnapshot
    | CallState
    | CallsChanged
    | WebhookEndpointDisabled
    | RecordingConverted
    | RecordingFailed
)


class EventBatch(Event):
    """The monitor's events once more, many to a message, for the consumers that take every one
    of them (each api replica) or a few of every call's (the recordings ledger): each as it went
    out alone, in order; an event waits at most `[monitor] states_every` seconds for its batch,
    which goes at once with the calls' states. The batch's own `seq` and `source` are its last event's."""

    type: Literal["pbx.batch"] = "pbx.batch"
    events: tuple[Annotated[Single, Field(discriminator="type")], ...]


BATCH_KEY = "pbx.batch"  # an EventBatch's type, and so its routing key


Message = Annotated[Single | EventBatch, Field(discriminator="type")]

MESSAGE_ADAPTER: TypeAdapter[Message] = TypeAdapter(Message)


def parse_event(body: bytes) -> Message:
    """Decode one message body. Raises pydantic.ValidationError for anything else."""
    return MESSAGE_ADAPTER.validate_json(body)


def encode_event(event: Event) -> bytes:
    return event.model_dump_json().encode()


def encode_batch(bodies: Sequence[bytes], last: Event) -> bytes:
    """The `pbx.batch` of events encoded already (`bodies`, as the monitor's outbox keeps them),
    without decoding them again; `last`: the last of them."""
    head = EventBatch(occurred_at=last.occurred_at, source=last.source, seq=last.seq, events=())
    empty = head.model_dump_json().encode()
    assert empty.endswith(b'"events":[]}'), "EventBatch.events must be its last field"
    return empty[:-2] + b",".join(bodies) + b"]}"


def each_event(message: Event) -> tuple[Event, ...]:
    """The events of a `pbx.batch`, or the message itself."""
    return message.events if isinstance(message, EventBatch) else (message,)


def ordering_scope(event: Event) -> str:
    """What a receiver must see in order: a call chain, an extension's state, or the event type."""
    if isinstance(event, CallEvent):
        return event.chain_id
    if isinstance(event, ExtensionEvent):
        return f"extension:{event.extension}"
    return event.type
