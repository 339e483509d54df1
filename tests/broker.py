"""The machine's RabbitMQ as the suite uses it: every test that declares anything does it under a
prefix of its own (`test.<12 hex digits>`), and afterwards everything under that prefix is
deleted, whatever declared it (the test, a service it started as a process, a retry tier made
on the way), also when the test failed. At the end of the run nothing under this run's prefixes
may remain (tests/conftest.py fails the run otherwise); names under other prefixes were left by a
run that was killed before it could clean up, and are deleted then. The names are listed with
`rabbitmqctl`, as the reconnect tests already need the broker on this machine."""

import asyncio
import os
import shutil
import subprocess
from uuid import uuid4

import aio_pika

from shared.bus import Bus, DeadLetter

PREFIX = "test."
OWNERS: dict[str, str] = {}  # prefix -> the test that took it, to name it if it leaves names behind


def new_prefix() -> str:
    prefix = f"{PREFIX}{uuid4().hex[:12]}"
    OWNERS[prefix] = os.environ.get("PYTEST_CURRENT_TEST", "outside a test").split(" ")[0]
    return prefix


def _prefix(name: str) -> str:
    return ".".join(name.split(".")[:2])


def owners(names: list[str]) -> list[str]:
    """The tests whose prefixes `names` are under."""
    return sorted({OWNERS[_prefix(name)] for name in names})


def ours(names: list[str]) -> list[str]:
    """Those of `names` under a prefix this run took (the others were left by an earlier run)."""
    return [name for name in names if _prefix(name) in OWNERS]


async def purge_earlier(amqp_url: str, names: list[str]) -> None:
    """Delete what an earlier run left under prefixes of its own."""
    for prefix in sorted({_prefix(name) for name in names} - OWNERS.keys()):
        await purge(amqp_url, prefix)


def _listed(what: str, *columns: str) -> list[list[str]]:
    """`rabbitmqctl <what>`'s rows, each the `columns` asked for (by default the name)."""
    ctl = shutil.which("rabbitmqctl")
    assert ctl, "rabbitmqctl is needed to list what the tests left on the broker"
    listing = subprocess.run(
        [ctl, "-q", what, "--no-table-headers", *(columns or ("name",))],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return [line.strip().split("\t") for line in listing.stdout.splitlines() if line.strip()]


def bindings_of(queue: str) -> set[str]:
    """The routing keys that bind `queue` to an exchange (the default exchange's aside)."""
    rows = _listed("list_bindings", "source_name", "destination_name", "routing_key")
    return {row[-1] for row in rows if len(row) == 3 and row[0] and row[1] == queue}


def messages_in(queue: str) -> int:
    """What `queue` holds, ready or delivered and not acked yet."""
    rows = _listed("list_queues", "name", "messages")
    return next(int(row[1]) for row in rows if row[0] == queue)


def left_on_broker(prefix: str = PREFIX) -> tuple[list[str], list[str]]:
    """The queues and the exchanges whose names start with `prefix`."""
    queues = [name for (name,) in _listed("list_queues") if name.startswith(prefix)]
    exchanges = [name for (name,) in _listed("list_exchanges") if name.startswith(prefix)]
    return queues, exchanges


async def purge(amqp_url: str, prefix: str) -> None:
    """Delete every queue and exchange under `prefix` (`prefix.…`)."""
    queues, exchanges = left_on_broker(prefix + ".")
    if not queues and not exchanges:
        return
    connection = await aio_pika.connect(amqp_url, client_properties={"connection_name": f"purge {prefix}"})
    async with connection:
        channel = await connection.channel()
        for queue in queues:
            await channel.queue_delete(queue)
        for exchange in exchanges:
            await channel.exchange_delete(exchange)


async def dead_letters(bus: Bus, count: int) -> list[DeadLetter]:
    """Dead-lettering is asynchronous on RabbitMQ and nothing announces it: poll the dead-letter
    queue (basic.get) until the letters are there."""
    found: list[DeadLetter] = []
    async with asyncio.timeout(10):
        while len(found) < count:
            found += await bus.take_dead_letters()
            if len(found) < count:
                await asyncio.sleep(0.02)
    return found


def close_connection(name: str) -> None:
    """Have the broker drop our connection, as a broker restart or a network cut would."""
    listing = subprocess.run(
        ["rabbitmqctl", "-q", "list_connections", "pid", "client_properties"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    pids = [line.split("\t")[0] for line in listing.splitlines() if name in line]
    assert pids, f"connection {name} not found in: {listing[:500]}"
    for pid in pids:
        subprocess.run(
            ["rabbitmqctl", "-q", "close_connection", pid, "test: dropped"], check=True, capture_output=True
        )


def rabbitmq_app(action: str) -> None:
    """Stop or start RabbitMQ's application (the node stays up to be started again)."""
    subprocess.run(["rabbitmqctl", "-q", action], check=True, capture_output=True, timeout=120)
    if action == "start_app":
        subprocess.run(["rabbitmqctl", "-q", "await_startup"], check=True, capture_output=True, timeout=120)
