"""The PBX's directory from XAPI (the v20 configuration API, OData): users with their state,
queues and their agents, ring groups and their members, IVRs (receptionists), trunks with their
DIDs, named after the inbound rule that routes each DID (docs/3cx.md §2.2)."""

import logging
from dataclasses import dataclass
from typing import Any

from shared.directory import (
    FORWARDING_PROFILES,
    Did,
    Directory,
    Extension,
    ForwardingProfile,
    Ivr,
    Line,
    Queue,
    RingGroup,
)

from .client import PbxClient

logger = logging.getLogger(__name__)

USERS = (
    "/xapi/v1/Users?$select=Id,Number,FirstName,LastName,DisplayName,Enabled,IsRegistered,"
    "CurrentProfileName,QueueStatus,RecordCalls,RecordExternalCallsOnly,Internal"
)
QUEUES = "/xapi/v1/Queues?$select=Id,Number,Name&$expand=Agents($select=Number)"
GROUPS = "/xapi/v1/RingGroups?$select=Id,Number,Name&$expand=Members($select=Number)"
IVRS = "/xapi/v1/Receptionists?$select=Id,Number,Name"
TRUNKS = "/xapi/v1/Trunks?$select=Id,Number,DidNumbers,Gateway"
RULES = "/xapi/v1/InboundRules?$select=Id,RuleName,Data,TrunkDN"


@dataclass(frozen=True, slots=True)
class PbxDirectory:
    directory: Directory
    user_ids: dict[str, int]  # extension number → XAPI user Id (what PATCH Users({Id}) needs)


async def load_directory(client: PbxClient) -> PbxDirectory:
    users, queues, groups, ivrs = (
        _values(await client.get(USERS)),
        _values(await client.get(QUEUES)),
        _values(await client.get(GROUPS)),
        _values(await client.get(IVRS)),
    )
    trunks, rules = _values(await client.get(TRUNKS)), _values(await client.get(RULES))
    directory = Directory(
        extensions=tuple(_extension(u) for u in users if u.get("Number") and not u.get("Internal")),
        queues=tuple(
            Queue(number=q["Number"], name=q.get("Name") or "", agents=_numbers(q.get("Agents")))
            for q in queues
        ),
        groups=tuple(
            RingGroup(number=g["Number"], name=g.get("Name") or "", members=_numbers(g.get("Members")))
            for g in groups
        ),
        ivrs=tuple(Ivr(number=i["Number"], name=i.get("Name") or "") for i in ivrs),
        lines=tuple(_line(t, rules) for t in trunks if t.get("Number")),
    )
    user_ids = {str(u["Number"]): int(u["Id"]) for u in users if "Id" in u and u.get("Number")}
    return PbxDirectory(directory, user_ids)


def _values(answer: Any) -> list[dict[str, Any]]:
    return list(answer.get("value", [])) if isinstance(answer, dict) else []


def _numbers(members: Any) -> tuple[str, ...]:
    return tuple(str(m["Number"]) for m in members or () if m.get("Number"))


def _extension(user: dict[str, Any]) -> Extension:
    name = user.get("DisplayName") or " ".join(
        part for part in (user.get("FirstName"), user.get("LastName")) if part
    )
    recording = (
        "off" if not user.get("RecordCalls") else "external" if user.get("RecordExternalCallsOnly") else "all"
    )
    return Extension(
        number=str(user["Number"]),
        name=name,
        recording=recording,
        enabled=user.get("Enabled", True) is not False,
        registered=bool(user.get("IsRegistered")),
        profile=profile_of(str(user.get("CurrentProfileName") or "")),
        queue_logged_in=user.get("QueueStatus", "LoggedIn") == "LoggedIn",
    )


# 3CX v20 names its five forwarding profiles in two ways (ProfileType and display names)
_PROFILE_NAMES: dict[str, ForwardingProfile] = {
    "default": "Available",
    "available": "Available",
    "away": "Away",
    "outofoffice": "Out of office",
    "available2": "Custom 1",
    "custom1": "Custom 1",
    "outofoffice2": "Custom 2",
    "custom2": "Custom 2",
}


def profile_of(name: str) -> ForwardingProfile:
    """A 3CX profile name as callbridge's classic one (`Out of office`, `Custom 1`, …)."""
    found = _PROFILE_NAMES.get(name.replace(" ", "").lower())
    if found is None:
        logger.warning(
            "3CX forwarding profile %r is not one of %s: read as Available", name, FORWARDING_PROFILES
        )
        return "Available"
    return found


def _line(trunk: dict[str, Any], rules: list[dict[str, Any]]) -> Line:
    number = str(trunk["Number"])
    names: dict[str, str] = {}
    for rule in rules:
        trunk_dn = (rule.get("TrunkDN") or {}).get("Number")
        if rule.get("Data") and trunk_dn in (None, number):
            names[_digits(rule["Data"])] = str(rule.get("RuleName") or rule["Data"])
    gateway = trunk.get("Gateway") or {}
    return Line(
        number=number,
        name=str(gateway.get("Name") or number),
        dids=tuple(Did(number=d, name=names.get(_digits(d), d)) for d in trunk.get("DidNumbers") or ()),
    )


def _digits(number: str) -> str:
    return "".join(c for c in str(number) if c.isdigit())
