"""The recordings service's Prometheus figures."""

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, Metric

from .service import Recordings


class RecordingsMetrics:
    """Prometheus collector over a `Recordings` service's counts (register it in a registry)."""

    def __init__(self, service: Recordings) -> None:
        self._service = service

    def collect(self) -> Iterator[Metric]:
        yield CounterMetricFamily(
            "callbridge_recordings_converted",
            "WAVs converted to MP3 and checked",
            value=self._service.converted,
        )
        yield CounterMetricFamily(
            "callbridge_recordings_failed", "WAVs that could not be converted", value=self._service.failed
        )
