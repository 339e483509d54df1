"""The monitor's Prometheus figures."""

from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge

if TYPE_CHECKING:
    from .driver import Driver
    from .outbox import Outbox


class MonitorMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.updates = Counter(
            "callbridge_monitor_pbx_updates", "Updates read from the PBX driver", registry=self.registry
        )
        self.events = Counter(
            "callbridge_monitor_events_published",
            "Events published (kept in the outbox, from which they go to RabbitMQ), by type",
            ["type"],
            registry=self.registry,
        )
        self.batches = Counter(
            "callbridge_monitor_batches_sent",
            "Batches of events (pbx.batch: for the api, the recordings ledger) confirmed by RabbitMQ",
            registry=self.registry,
        )
        self.seq = Gauge(
            "callbridge_monitor_seq", "The sequence number of the last event made", registry=self.registry
        )
        self.calls = Gauge("callbridge_monitor_calls", "Calls in progress", registry=self.registry)
        self.commands = Counter(
            "callbridge_monitor_commands",
            "Commands carried out, by outcome",
            ["outcome"],
            registry=self.registry,
        )
        self.outbox_events = Gauge(
            "callbridge_monitor_outbox_events",
            "Events in the outbox not yet confirmed by RabbitMQ",
            registry=self.registry,
        )
        self.outbox_age = Gauge(
            "callbridge_monitor_outbox_oldest_seconds",
            "How long the oldest event in the outbox has waited for RabbitMQ (0: none waits)",
            registry=self.registry,
        )

        self.driver_waiting = Gauge(
            "callbridge_monitor_driver_waiting",
            "Updates read from the PBX that the monitor has not taken yet (the 3CX driver's backlog)",
            registry=self.registry,
        )
        self.driver_on_disk = Gauge(
            "callbridge_monitor_driver_waiting_on_disk",
            "Of those, the updates waiting on disk (beyond the first 5,000)",
            registry=self.registry,
        )

    def watch(self, outbox: "Outbox", driver: "Driver") -> None:
        """Read the outbox's and the driver's backlogs at each scrape."""
        self.outbox_events.set_function(lambda: outbox.backlog().events)
        self.outbox_age.set_function(lambda: outbox.backlog().oldest or 0.0)
        self.driver_waiting.set_function(lambda: driver.waiting()[0])
        self.driver_on_disk.set_function(lambda: driver.waiting()[1])
