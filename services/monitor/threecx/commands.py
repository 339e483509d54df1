"""The API's commands on a real 3CX: makecall through Call Control, the forwarding profile, the
queue status (all queues) and the recording option through XAPI (`PATCH Users`); what has no v20
API is refused with that reason. Each command that changed the PBX returns the update it makes,
as the driver's other updates come."""

from datetime import datetime
from typing import Any
from urllib.parse import quote

from shared.commands import (
    Command,
    CommandResult,
    MakeCall,
    SetForwarding,
    SetOptions,
    SetQueueLogin,
    extension_of,
)
from shared.directory import Extension

from ..updates import ForwardingUpdate, OptionsUpdate, PbxUpdate, QueueLoginUpdate
from .client import PbxClient, PbxError
from .known import KnownDirectory, lower_keys

ONE_QUEUE = (
    "3CX v20 offers no API to log an agent in or out of one queue (only its web client can); log in or "
    "out of all queues with ext.queueglobal.set"
)
NO_EXTERNAL = "3CX's XAPI has no setting for outside calls per extension"
Done = tuple[CommandResult, list[PbxUpdate]]


async def carry_out(client: PbxClient, known: KnownDirectory, command: Command, now: datetime) -> Done:
    who = extension_of(command)
    if who not in known.user_ids:
        return CommandResult.failed("not_found", f"extension {who} does not exist"), []
    try:
        if isinstance(command, MakeCall):
            return await _makecall(client, command), []
        return await _configure(client, known, command, now)
    except PbxError as error:
        return CommandResult.failed("refused", str(error)), []


async def _makecall(client: PbxClient, command: MakeCall) -> CommandResult:
    path = f"/callcontrol/{quote(command.first)}/makecall"
    answer = lower_keys(await client.request("POST", path, {"destination": command.second}) or {})
    status = str(answer.get("finalstatus", "Success")).lower()
    if status not in ("1", "success"):
        reason = answer.get("reasontext") or answer.get("reason") or status
        return CommandResult.failed("refused", str(reason))
    result = lower_keys(answer.get("result") or {})
    return CommandResult(ok=True, call_number=result.get("callid"))


async def _configure(client: PbxClient, known: KnownDirectory, command: Command, now: datetime) -> Done:
    extension = known.extension(extension_of(command))
    if isinstance(command, SetForwarding):
        await _patch_user(client, known, extension, {"CurrentProfileName": command.profile})
        known.swap(extension, profile=command.profile)
        return CommandResult(ok=True), [ForwardingUpdate(now, extension.number, command.profile)]
    if isinstance(command, SetQueueLogin):
        if command.queue != "all":
            return CommandResult.failed("refused", ONE_QUEUE), []
        status = "LoggedIn" if command.logged_in else "LoggedOut"
        await _patch_user(client, known, extension, {"QueueStatus": status})
        known.swap(extension, queue_logged_in=command.logged_in)
        return CommandResult(ok=True), [QueueLoginUpdate(now, extension.number, "all", command.logged_in)]
    assert isinstance(command, SetOptions)
    if command.external is not None:
        return CommandResult.failed("refused", NO_EXTERNAL), []
    body: dict[str, Any] = {}
    if command.enabled is not None:
        body["Enabled"] = command.enabled
    if command.recording is not None:
        body["RecordCalls"] = command.recording != "off"
        body["RecordExternalCallsOnly"] = command.recording == "external"
    await _patch_user(client, known, extension, body)
    changed = known.swap(
        extension,
        enabled=extension.enabled if command.enabled is None else command.enabled,
        recording=command.recording or extension.recording,
    )
    options = (changed.enabled, changed.external, changed.recording)
    return CommandResult(ok=True), [OptionsUpdate(now, changed.number, *options)]


async def _patch_user(client: PbxClient, known: KnownDirectory, who: Extension, body: dict[str, Any]) -> None:
    await client.request("PATCH", f"/xapi/v1/Users({known.user_ids[who.number]})", body)
