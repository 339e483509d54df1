"""The XAPI collections the fake 3CX serves, built from a directory, and the commands a
`PATCH Users(id)` body stands for: shaped as docs/3cx.md §2 describes. Pure."""

from collections.abc import Callable
from typing import Any

from services.monitor.threecx.xapi import profile_of
from shared.commands import Command, SetForwarding, SetOptions, SetQueueLogin
from shared.directory import Directory, Extension

Rows = list[dict[str, Any]]
PROFILES = {"Custom 1": "Available2", "Custom 2": "OutOfOffice2", "Out of office": "OutOfOffice"}


def users(directory: Directory) -> Rows:
    return [
        {
            "Id": n,
            "Number": e.number,
            "DisplayName": e.name,
            "Enabled": e.enabled,
            "IsRegistered": e.registered,
            "CurrentProfileName": PROFILES.get(e.profile, e.profile),
            "QueueStatus": "LoggedIn" if e.queue_logged_in else "LoggedOut",
            "RecordCalls": e.recording != "off",
            "RecordExternalCallsOnly": e.recording == "external",
        }
        for n, e in enumerate(directory.extensions, 1)
    ]


def queues(directory: Directory) -> Rows:
    return [
        {"Id": n, "Number": q.number, "Name": q.name, "Agents": [{"Number": a} for a in q.agents]}
        for n, q in enumerate(directory.queues, 100)
    ]


def groups(directory: Directory) -> Rows:
    return [
        {"Id": n, "Number": g.number, "Name": g.name, "Members": [{"Number": m} for m in g.members]}
        for n, g in enumerate(directory.groups, 200)
    ]


def ivrs(directory: Directory) -> Rows:
    return [{"Id": n, "Number": i.number, "Name": i.name} for n, i in enumerate(directory.ivrs, 300)]


def trunks(directory: Directory) -> Rows:
    return [
        {"Id": n, "Number": t.number, "Gateway": {"Name": t.name}, "DidNumbers": [d.number for d in t.dids]}
        for n, t in enumerate(directory.lines, 400)
    ]


def rules(directory: Directory) -> Rows:
    dids = ((line, did) for line in directory.lines for did in line.dids)
    return [
        {"Id": n, "RuleName": did.name, "Data": did.number, "TrunkDN": {"Number": line.number}}
        for n, (line, did) in enumerate(dids, 500)
    ]


COLLECTIONS: dict[str, Callable[[Directory], Rows]] = {
    "Users": users,
    "Queues": queues,
    "RingGroups": groups,
    "Receptionists": ivrs,
    "Trunks": trunks,
    "InboundRules": rules,
}


def user_changes(extension: Extension, body: dict[str, Any]) -> list[Command]:
    """The commands a `PATCH Users(id)` body stands for."""
    number = extension.number
    changes: list[Command] = []
    if "CurrentProfileName" in body:
        changes.append(SetForwarding(extension=number, profile=profile_of(body["CurrentProfileName"])))
    if "QueueStatus" in body:
        logged_in = body["QueueStatus"] == "LoggedIn"
        changes.append(SetQueueLogin(extension=number, queue="all", logged_in=logged_in))
    if {"Enabled", "RecordCalls"} & set(body):
        recording = extension.recording
        if "RecordCalls" in body:
            recording = "all" if body["RecordCalls"] else "off"
            if body["RecordCalls"] and body.get("RecordExternalCallsOnly"):
                recording = "external"
        changes.append(SetOptions(extension=number, enabled=body.get("Enabled"), recording=recording))
    return changes
