"""One scoring a run for all of a task's metrics.

lmms-eval aggregates each metric of ``metric_list`` on its own: ``TaskOutput.calculate_aggregate_metric``
(``lmms_eval/evaluator_utils.py``) calls every metric's aggregation with that metric's items. diffbench
scores a run once (one tokenisation for every caption metric; one pass of the VisMin rule), so each
aggregation asks :class:`LastResult`, which computes on the first call and hands the same result to the
calls with the same items.

    >>> calls = []
    >>> scored = LastResult(lambda items: calls.append(1) or sum(items), key=tuple)
    >>> scored([1, 2]), scored([1, 2]), scored([3]), len(calls)
    (3, 3, 3, 2)
"""

from __future__ import annotations

import threading


class LastResult:
    """``function(items)``, kept for the last ``key(items)`` seen (a run's metrics come one after another)."""

    def __init__(self, function, key):
        self.function, self.key = function, key
        self._last = None
        self._lock = threading.Lock()

    def __call__(self, items):
        key = self.key(items)
        with self._lock:
            if self._last is None or self._last[0] != key:
                self._last = (key, self.function(items))
            return self._last[1]
