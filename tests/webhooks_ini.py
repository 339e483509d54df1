"""The configuration a test's `callbridge webhooks` replicas read: the bus, the service and its
signed JSON endpoints (`tests/processes.start_webhooks` starts them)."""

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def endpoint(name: str, url: str, extra: str = "") -> str:
    """A `[webhook:NAME]` section: signed JSON to `url`; `extra`: more of its lines."""
    return f"[webhook:{name}]\nurl = {url}\nformat = json\nsecret = {SECRET}\n{extra}"


def webhooks_ini(
    amqp_url: str,
    exchange: str,
    database: str,
    retry_schedule: str,
    *endpoints: str,
    http_port: str = "0",
    **more: str,
) -> str:
    """`more`: lines added to `bus` or `webhooks`, or another section of their own (`api`)."""
    others = {name: lines for name, lines in more.items() if name not in ("bus", "webhooks")}
    return (
        f"[bus]\namqp_url = {amqp_url}\nexchange = {exchange}\n{more.get('bus', '')}"
        + "".join(f"[{name}]\n{lines}" for name, lines in others.items())
        + f"[webhooks]\nretry_schedule = {retry_schedule}\n{more.get('webhooks', '')}"
        + f"database = {database}\nhttp_port = {http_port}\n"
        + "".join(endpoints)
    )
