"""`callbridge health SERVICE`: ask a service on this host whether it is ready (its own /readyz,
or /healthz with `live`) where the configuration says it listens: the health check of the
compose file and of anyone's monitoring script."""

import httpx

from shared.settings import ConfigError, Settings


def ask(settings: Settings, service: str, *, live: bool = False) -> tuple[bool, str]:
    """(ready?, what it answered, or why there was no answer)."""
    section = getattr(settings, service)
    if not section.http_port:
        raise ConfigError(f"[{service}] http_port is 0: no HTTP server to ask")
    host = "127.0.0.1" if section.http_host in ("", "0.0.0.0", "::") else section.http_host
    scheme = "https" if getattr(section, "tls_cert", None) else "http"
    url = f"{scheme}://{f'[{host}]' if ':' in host else host}:{section.http_port}"
    url += "/healthz" if live else "/readyz"
    try:
        # this host's own server, whose certificate may well be for its public name only
        response = httpx.get(url, timeout=5, verify=False)
    except httpx.HTTPError as error:
        return False, f"{service}: no answer from {url}: {error}"
    return response.status_code == 200, f"{service}: {response.status_code} {response.text}"
