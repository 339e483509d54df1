"""The real broker: RabbitMQ at $AMQP_URL. A test that needs it fails loudly when it is absent."""

import contextlib
import os
import socket
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import pytest

from shared.rabbit_bus import RabbitBus
from shared.topology import Topology
from tests.broker import new_prefix, purge

AMQP_URL = os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")


@pytest.fixture(scope="session")
def amqp_url() -> str:
    parts = urlsplit(AMQP_URL)
    try:
        socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 5672), timeout=3).close()
    except OSError as error:
        pytest.fail(
            f"RabbitMQ not reachable at {parts.hostname}:{parts.port or 5672} ({error}); start it with "
            "`rabbitmq-server -detached` or set AMQP_URL. Deselect with -m 'not rabbitmq'."
        )
    return AMQP_URL


@pytest.fixture
async def broker_prefix(amqp_url: str) -> AsyncIterator[str]:
    """A prefix of this test's own on the broker; whatever is under it is deleted afterwards."""
    prefix = new_prefix()
    try:
        yield prefix
    finally:
        await purge(amqp_url, prefix)


@contextlib.asynccontextmanager
async def private_rabbit_bus(amqp_url: str, connection_name: str) -> AsyncIterator[RabbitBus]:
    """A RabbitBus under a unique exchange prefix, its queues and exchanges deleted afterwards."""
    names = Topology(new_prefix())
    try:
        async with RabbitBus.connect(amqp_url, names=names, connection_name=connection_name) as bus:
            yield bus
    finally:
        await purge(amqp_url, names.prefix)


@pytest.fixture
async def rabbit_bus(amqp_url: str, request: pytest.FixtureRequest) -> AsyncIterator[RabbitBus]:
    async with private_rabbit_bus(amqp_url, request.node.nodeid) as bus:
        yield bus
