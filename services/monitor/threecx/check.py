"""`callbridge pbx check`: connect to the configured 3CX and say what callbridge sees there."""

import aiohttp

from shared.settings import ConfigError, PbxSettings

from .client import PbxClient, PbxError, TokenManager
from .xapi import load_directory


def session(settings: PbxSettings) -> aiohttp.ClientSession:
    """The HTTP session for one PBX: TLS verified unless [pbx] verify_tls = false; 10 s per request."""
    connector = aiohttp.TCPConnector(ssl=settings.verify_tls)
    return aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=10))


def check_pbx_settings(settings: PbxSettings) -> None:
    missing = [key for key in ("url", "client_id", "client_secret") if not getattr(settings, key)]
    if missing:
        raise ConfigError(f"[pbx] {', '.join(missing)}: needed to reach a 3CX (see callbridge.example.ini)")


def connect(settings: PbxSettings, http: aiohttp.ClientSession) -> PbxClient:
    check_pbx_settings(settings)
    assert settings.client_secret is not None
    tokens = TokenManager(http, settings.url, settings.client_id, settings.client_secret)
    return PbxClient(http, settings.url, tokens)


async def check(settings: PbxSettings) -> list[str]:
    """What the PBX shows, a line each; raises PbxError (in plain words) when it cannot be used."""
    async with session(settings) as http:
        client = connect(settings, http)
        status = await client.get("/xapi/v1/SystemStatus") or {}
        directory = (await load_directory(client)).directory
        dns = await client.get("/callcontrol") or []
    if not isinstance(dns, list) or not all(isinstance(dn, dict) for dn in dns):
        raise PbxError("3CX's /callcontrol did not answer a list of DNs: is [pbx] url a 3CX v20?")
    extensions = directory.extensions
    calls = {p.get("callid") for dn in dns for p in dn.get("participants", [])}
    report = [
        f"3CX {client.version or status.get('Version', '?')} at {client.where} ({status.get('FQDN', '')})",
        f"extensions: {len(extensions)} ({sum(e.registered for e in extensions)} registered)",
    ]
    report += [f"queue {q.number} {q.name}: agents {', '.join(q.agents) or 'none'}" for q in directory.queues]
    report += [
        f"ring group {g.number} {g.name}: {', '.join(g.members) or 'no members'}" for g in directory.groups
    ]
    report += [f"IVR {i.number} {i.name}" for i in directory.ivrs]
    for line in directory.lines:
        dids = ", ".join(f"{d.number} ({d.name})" for d in line.dids) or "none"
        report.append(f"trunk {line.number} {line.name}: DIDs {dids}")
    report.append(f"Call Control: {len(dns)} DNs monitored, {len(calls)} calls in progress")
    if not dns:
        report.append("  no DN is monitored: add extensions to the API client (Integrations → API)")
    return report
