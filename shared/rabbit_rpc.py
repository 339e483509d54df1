"""Requests and answers on RabbitMQ (the API asks the monitor for its snapshot and to carry out
commands): aio-pika's JSON RPC, never pickle, on a channel of its own made on first use. A method's
queue lives with its server (auto-delete), so a call while nobody serves it comes back at once."""

import asyncio
import logging
import math
from collections.abc import Awaitable, Callable
from typing import Any

import aio_pika
import aiormq
from aio_pika.abc import AbstractRobustConnection
from aio_pika.patterns import JsonRPC

from .bus import RpcHandler, RpcUnavailable
from .topology import Topology

logger = logging.getLogger(__name__)


class RabbitRpc:
    def __init__(self, connection: AbstractRobustConnection, names: Topology) -> None:
        self._connection = connection
        self._names = names
        self._rpc: JsonRPC | None = None
        self._lock = asyncio.Lock()
        self._served: dict[str, Callable[..., Awaitable[dict[str, Any]]]] = {}

    async def _json_rpc(self) -> JsonRPC:
        async with self._lock:
            if self._rpc is None:
                rpc = await JsonRPC.create(await self._connection.channel())
                assert isinstance(rpc, JsonRPC)
                self._rpc = rpc
            return self._rpc

    async def serve(self, method: str, handler: RpcHandler) -> None:
        """Answer `method` with `handler` (in place of an earlier handler of this connection)."""

        async def answer(**payload: Any) -> dict[str, Any]:
            return await handler(payload)

        rpc = await self._json_rpc()
        previous = self._served.pop(method, None)
        if previous is not None:
            await rpc.unregister(previous)
        await rpc.register(self._names.queue(f"rpc.{method}"), answer, auto_delete=True, durable=False)
        self._served[method] = answer

    async def call(self, method: str, payload: dict[str, Any], answer_within: float) -> dict[str, Any]:
        rpc = await self._json_rpc()
        try:
            async with asyncio.timeout(answer_within):
                name = self._names.queue(f"rpc.{method}")
                answer = await rpc.call(name, kwargs=payload, expiration=math.ceil(answer_within))
        except aio_pika.exceptions.MessageProcessError:
            raise RpcUnavailable(f"nobody serves {method}") from None
        except TimeoutError:
            raise RpcUnavailable(f"{method}: no answer within {answer_within:g} s") from None
        except aio_pika.patterns.rpc.JsonRPCError as error:
            logger.error("rpc %s failed on the server: %s", method, error.args[1:])
            raise RpcUnavailable(f"{method} failed on the server") from None
        except (aiormq.exceptions.AMQPError, ConnectionError) as error:
            raise RpcUnavailable(f"{method}: the broker connection failed ({type(error).__name__})") from None
        if not isinstance(answer, dict):
            raise RpcUnavailable(f"{method}: the answer is not a JSON object")
        return answer
