"""The monitor's Prometheus figures."""

from prometheus_client import CollectorRegistry, Counter, Gauge


class MonitorMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.updates = Counter(
            "callbridge_monitor_pbx_updates", "Updates read from the PBX driver", registry=self.registry
        )
        self.events = Counter(
            "callbridge_monitor_events_published",
            "Events published, by type",
            ["type"],
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
