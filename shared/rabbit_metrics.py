"""The bus's figures on every service's `/metrics`: the connection, and per consumed queue the
messages acked, dead-lettered, handled again after a passing fault, and waiting."""

from collections.abc import Iterator
from typing import Protocol

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from .rabbit_consumer import WAITING_EVERY, Consumed


class Connection(Protocol):
    @property
    def connected(self) -> bool: ...

    @property
    def reconnects(self) -> int: ...


class BusCollector(Collector):
    def __init__(self, bus: Connection) -> None:
        self._bus = bus

    def collect(self) -> Iterator[Metric]:
        connected = GaugeMetricFamily("callbridge_bus_connected", "1 while connected to RabbitMQ")
        connected.add_metric([], 1.0 if self._bus.connected else 0.0)
        reconnects = CounterMetricFamily(
            "callbridge_bus_reconnects", "Connections to RabbitMQ re-established"
        )
        reconnects.add_metric([], self._bus.reconnects)
        acked = CounterMetricFamily(
            "callbridge_bus_consumed", "Messages handled and acked, per queue", labels=["queue"]
        )
        dead = CounterMetricFamily(
            "callbridge_bus_dead_lettered",
            "Messages rejected to the dead-letter queue (unparsable, or their handler failed)",
            labels=["queue"],
        )
        retried = CounterMetricFamily(
            "callbridge_bus_retried",
            "Messages handled again after their handler failed in passing (broker away, disk full)",
            labels=["queue"],
        )
        for family, counts in (
            (acked, Consumed.acked),
            (dead, Consumed.dead_lettered),
            (retried, Consumed.retried),
        ):
            for queue, count in counts.items():
                family.add_metric([queue], count)
        waiting = GaugeMetricFamily(
            "callbridge_bus_queue_waiting",
            f"Messages waiting in a consumed queue: its lag (asked every {WAITING_EVERY:g} s)",
            labels=["queue"],
        )
        for queue, count in Consumed.waiting.items():
            waiting.add_metric([queue], count)
        yield from (connected, reconnects, acked, dead, retried, waiting)
