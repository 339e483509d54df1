"""Short garbage-collector pauses in a service that holds many objects (ten thousand calls, a
directory of twenty thousand extensions).

CPython's full collection walks every object that survived earlier ones: with ~300,000 of them
it stops the event loop for 200-300 ms, every 20 s or so at 67 new calls a second, while the
objects it walks are almost never garbage (a call's state is freed by reference counting when
the call ends). So every FREEZE_EVERY the objects that are still alive are set aside
(`gc.freeze()`: later collections skip them; reference counting still frees them) and a
collection walks only what is younger. A cycle that becomes garbage after it was set aside
would wait for ever, so every THAW_EVERY everything is taken back and collected once: one long
pause an hour instead of several a minute. `collector()` shows the pauses on `/metrics`.

What is freed goes back to the C library's heap, which keeps it: the monitor's RSS held ~29 MB
that its start-up (the directory) had freed, the recordings service's ~11 MB. So every TRIM_EVERY
(the first once the service has started) glibc's `malloc_trim` hands back to the system the
pages no allocation uses (where the C library has it: not on macOS, musl or Windows). It walks
the heap: ~10 ms for a heap of ~100 MB.

Whatever stops the event loop (a collection, a long statement, a CPU shared with busier
processes) delays everything the service does. `probe_lag` wakes every LAG_EVERY and measures
how late it woke, for `/metrics` (`callbridge_event_loop_lag_seconds`).
"""

import asyncio
import ctypes
import gc
import logging
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from .chores import Chore, every
from .clock import Clock

logger = logging.getLogger(__name__)

FREEZE_EVERY = timedelta(seconds=5)
THAW_EVERY = timedelta(hours=1)
TRIM_EVERY = timedelta(seconds=15)
LAG_EVERY = 0.1  # seconds between the loop-lag probe's wake-ups
LAG_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)  # seconds late


def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's `malloc_trim`, where the C library is glibc (the process's own symbols)."""
    try:
        trim: Callable[[int], int] = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError, TypeError):  # not glibc; Windows loads no process symbols
        return None
    return trim


MALLOC_TRIM = _malloc_trim()


class _Pauses:
    """The time collections took, by generation, since the process started (one per process; how
    many there were, `gc.get_stats()` tells)."""

    def __init__(self) -> None:
        self.seconds = [0.0, 0.0, 0.0]
        self.longest = 0.0
        self.trimming = 0.0  # seconds spent handing freed memory back to the system
        # objects set aside since the last thaw, counted as they go: `gc.get_freeze_count()`
        # walks them all (~23 ms for the monitor's ~3 million), which stopped it at every scrape
        self.frozen = 0
        self.late = [0] * (len(LAG_BUCKETS) + 1)  # the probe's wake-ups by how late: per bucket, then later
        self.late_seconds = 0.0
        self._began = 0.0

    def woke(self, late: float) -> None:
        self.late[next((n for n, le in enumerate(LAG_BUCKETS) if late <= le), len(LAG_BUCKETS))] += 1
        self.late_seconds += late

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._began = time.perf_counter()
            return
        took = time.perf_counter() - self._began
        self.seconds[info["generation"]] += took
        self.longest = max(self.longest, took)


_pauses = _Pauses()


async def probe_lag() -> None:
    """Wake every LAG_EVERY and note how late (until cancelled)."""
    while True:
        await wake_up()


async def wake_up() -> None:
    """One wake-up of the probe, noted."""
    due = time.monotonic() + LAG_EVERY
    await asyncio.sleep(LAG_EVERY)
    _pauses.woke(max(0.0, time.monotonic() - due))


class HeapKeeper:
    """Sets aside what survived, takes everything back once an hour, hands freed memory back to
    the system (see the module's text)."""

    def __init__(self, clock: Clock, trim: Callable[[int], int] | None = MALLOC_TRIM) -> None:
        self._clock = clock
        self._thawed = clock.now()
        self._trim = trim
        self._trimmed = clock.now()
        if _pauses not in gc.callbacks:
            gc.callbacks.append(_pauses)

    def chore(self) -> Chore:
        return Chore("keeping the heap", self.turn, every(FREEZE_EVERY))

    async def turn(self) -> None:
        now = self._clock.now()
        if now - self._thawed >= THAW_EVERY:
            self._thaw(now)
        gc.collect(1)  # the young cycles that are garbage already go before the rest is set aside
        _pauses.frozen += len(gc.get_objects())  # those not set aside yet: what came since the last turn
        gc.freeze()
        if self._trim is not None and now - self._trimmed >= TRIM_EVERY:
            began = time.perf_counter()
            self._trim(0)
            _pauses.trimming += time.perf_counter() - began
            self._trimmed = now

    def _thaw(self, now: datetime) -> None:
        began = time.perf_counter()
        gc.unfreeze()
        _pauses.frozen = 0
        found = gc.collect()
        logger.info(
            "full garbage collection: %d unreachable objects freed in %.0f ms",
            found,
            (time.perf_counter() - began) * 1000,
        )
        self._thawed = now


class HeapCollector(Collector):
    def collect(self) -> Iterator[Metric]:
        count = CounterMetricFamily(
            "callbridge_gc_collections", "Garbage collections, by generation", labels=["generation"]
        )
        seconds = CounterMetricFamily(
            "callbridge_gc_pause_seconds",
            "Time the process stood still for garbage collections, by generation",
            labels=["generation"],
        )
        for generation, stats in enumerate(gc.get_stats()):
            count.add_metric([str(generation)], stats["collections"])
            seconds.add_metric([str(generation)], _pauses.seconds[generation])
        yield count
        yield seconds
        yield GaugeMetricFamily(
            "callbridge_gc_longest_pause_seconds", "The longest collection since start", _pauses.longest
        )
        yield GaugeMetricFamily(
            "callbridge_gc_frozen_objects",
            "Objects set aside from collections since the hourly thaw (some freed since)",
            _pauses.frozen,
        )
        yield CounterMetricFamily(
            "callbridge_heap_trim_seconds",
            "Time the process stood still handing freed memory back to the system",
            _pauses.trimming,
        )
        cumulative = [sum(_pauses.late[: n + 1]) for n in range(len(LAG_BUCKETS))]
        yield HistogramMetricFamily(
            "callbridge_event_loop_lag_seconds",
            f"How late the event loop ran a wake-up due every {LAG_EVERY} s",
            buckets=[
                *((str(le), c) for le, c in zip(LAG_BUCKETS, cumulative, strict=True)),
                ("+Inf", sum(_pauses.late)),
            ],
            sum_value=_pauses.late_seconds,
        )
