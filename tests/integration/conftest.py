"""A bus of its own on the real broker for each test that wants one (its fixtures: tests/conftest.py)."""

import contextlib
from collections.abc import AsyncIterator

import pytest

from shared.rabbit_bus import RabbitBus
from shared.topology import Topology
from shared.values import QueueType
from tests.broker import new_prefix, purge


@contextlib.asynccontextmanager
async def private_rabbit_bus(
    amqp_url: str, connection_name: str, queue_type: QueueType = "classic"
) -> AsyncIterator[RabbitBus]:
    """A RabbitBus under a unique exchange prefix, its queues and exchanges deleted afterwards."""
    names = Topology(new_prefix(), queue_type)
    try:
        async with RabbitBus.connect(amqp_url, names=names, connection_name=connection_name) as bus:
            yield bus
    finally:
        await purge(amqp_url, names.prefix)


@pytest.fixture
async def rabbit_bus(amqp_url: str, request: pytest.FixtureRequest) -> AsyncIterator[RabbitBus]:
    async with private_rabbit_bus(amqp_url, request.node.nodeid) as bus:
        yield bus
