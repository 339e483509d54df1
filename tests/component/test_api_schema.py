"""Schemathesis against /openapi.json: generated requests to every method (the live stream aside,
it never ends) find no 5xx and no answer that breaks its documented schema, status or type.

The API runs on uvicorn in a thread of its own (schemathesis calls it over HTTP, synchronously),
with the monitor's live simulator behind it on the in-memory bus.
"""

import asyncio
import threading
from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from shared.http_server import free_port, serving
from shared.memory_bus import InMemoryBus
from tests.api_stack import KEY, api_stack

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]


@pytest.fixture(scope="module")
def api_url() -> Iterator[str]:
    port = free_port()
    ready = threading.Event()
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()

    async def serve() -> None:
        async with api_stack(InMemoryBus()) as stack, serving(stack.api.app, "127.0.0.1", port):
            ready.set()
            await stop.wait()

    thread = threading.Thread(target=loop.run_until_complete, args=(serve(),), daemon=True)
    thread.start()
    assert ready.wait(30), "the API did not start"
    yield f"http://127.0.0.1:{port}"
    loop.call_soon_threadsafe(stop.set)
    thread.join(30)
    loop.close()


def test_no_5xx_and_every_answer_matches_the_schema(api_url: str) -> None:
    schema = schemathesis.openapi.from_url(f"{api_url}/openapi.json").exclude(path="/events")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 25  # every classic method, and the operational routes
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=30, deadline=None, database=None, suppress_health_check=list(HealthCheck))
        def conforms(case: schemathesis.Case) -> None:
            case.call_and_validate(headers={"X-API-Key": KEY}, checks=CHECKS)

        conforms()
