"""Timing shared by the bench scripts (imported as ``_timing``: a script's own folder is on ``sys.path``)."""

from __future__ import annotations

import statistics
import time


def median_times(fn, values: list[int], runs: int) -> dict[int, float]:
    """The median seconds of ``fn(value)`` for each value, the runs interleaved (1, 1000, 1, 1000, ...): a slow
    phase of the machine (other work, a cold file cache) falls on every value alike, not on one."""
    times: dict[int, list[float]] = {value: [] for value in values}
    for _ in range(runs):
        for value in values:
            started = time.perf_counter()
            fn(value)
            times[value].append(time.perf_counter() - started)
    return {value: statistics.median(seconds) for value, seconds in times.items()}
