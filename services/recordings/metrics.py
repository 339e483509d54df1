"""The recordings service's Prometheus figures."""

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, Metric

from .service import Recordings
from .work import Pool


class RecordingsMetrics:
    """Prometheus collector over a `Recordings` service's counts (register it in a registry)."""

    def __init__(self, service: Recordings, pool: Pool) -> None:
        self._service = service
        self._pool = pool

    def collect(self) -> Iterator[Metric]:
        yield CounterMetricFamily(
            "callbridge_recordings_converted",
            "WAVs converted to MP3 and checked",
            value=self._service.converted,
        )
        yield CounterMetricFamily(
            "callbridge_recordings_failed", "WAVs that could not be converted", value=self._service.failed
        )
        yield CounterMetricFamily(
            "callbridge_recordings_pool_restarts",
            "Times the conversion pool was started again after one of its processes died",
            value=self._pool.restarts,
        )
        failures = CounterMetricFamily(
            "callbridge_chore_failures", "Turns of a recurring chore that failed (logged)", labels=["chore"]
        )
        for chore in self._service.chores:
            failures.add_metric([chore.name], chore.failures)
        yield failures
