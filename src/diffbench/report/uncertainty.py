"""How sure a score is: bootstrap intervals over samples, and paired tests between two results on the same data.

- :func:`resample_counts`: the bootstrap's draws as counts, ``[resamples, n]`` (how often each sample is
  drawn in each resample), from a fixed seed, so the same file always gives the same interval; drawn
  within strata when given (VisMin's categories: each resample keeps every category's size, as the
  benchmark does), in one vectorised draw a stratum.
- :func:`percentile_interval`: the 95% (or ``level``) percentile interval of resampled values.
- :func:`mcnemar_exact`: the exact McNemar test of two classifiers on the same samples (a two-sided
  binomial test on the samples where exactly one is right), for VisMin's text / image / group.
- :func:`paired_bootstrap`: the interval of a difference of two corpus metrics resampled together, and
  its two-sided bootstrap p-value, for the caption metrics (whose corpus value is not a mean of samples).

    >>> counts = resample_counts(4, resamples=3, seed=0)
    >>> counts.shape, counts.sum(axis=1).tolist()
    ((3, 4), [4, 4, 4])
    >>> mcnemar_exact([True, True, False, True], [False, False, False, True])
    {'only_a': 2, 'only_b': 0, 'p_value': 0.5}
    >>> percentile_interval([1.0, 2.0, 3.0, 4.0, 5.0])
    [1.1, 4.9]
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from fractions import Fraction

import numpy as np

from diffbench.report.layout import DEFAULT_RESAMPLES, DEFAULT_SEED

LEVEL = 0.95


def resample_counts(n: int, resamples: int = DEFAULT_RESAMPLES, seed: int = DEFAULT_SEED,
                    strata: Sequence | None = None) -> np.ndarray:
    """``[resamples, n]`` int32 counts: sample ``i`` is drawn ``counts[b, i]`` times in resample ``b``.

    Without ``strata`` every resample draws ``n`` samples from all ``n``; with ``strata`` (a label a
    sample) each stratum draws as many as it holds, from its own samples only.
    """
    if resamples < 1:
        raise ValueError(f"resamples must be at least 1, got {resamples}")
    rng = np.random.default_rng(seed)
    counts = np.zeros((resamples, n), dtype=np.int32)
    if n == 0:
        return counts
    labels = np.zeros(n, dtype=np.int64) if strata is None else np.unique(np.asarray(strata), return_inverse=True)[1]
    rows = np.arange(resamples, dtype=np.int64)[:, None]
    for stratum in range(int(labels.max()) + 1):
        members = np.flatnonzero(labels == stratum)
        m = len(members)
        if m:  # m draws with replacement a resample, counted in one bincount over all resamples
            drawn = rng.integers(0, m, size=(resamples, m), dtype=np.int64) + rows * m
            counts[:, members] = np.bincount(drawn.ravel(), minlength=resamples * m).reshape(resamples, m)
    return counts


def percentile_interval(values, level: float = LEVEL) -> list[float]:
    """``[low, high]``: the ``level`` percentile interval of ``values`` (NaN values, from resamples where a
    score is undefined, are left out); ``[nan, nan]`` when none is finite."""
    values = np.asarray(values, dtype=np.float64)
    values = values[np.isfinite(values)]
    if not len(values):
        return [math.nan, math.nan]
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return [float(low), float(high)]


def mean_intervals(correct: np.ndarray, counts: np.ndarray, level: float = LEVEL) -> list[list[float]]:
    """The interval of each column's percentage of ``correct`` (``[n, k]`` booleans) under the resamples
    ``counts`` (``[resamples, n]``): one matrix product for every column and resample."""
    correct = np.asarray(correct, dtype=np.float64).reshape(len(counts[0]), -1)
    drawn = counts.sum(axis=1, keepdims=True).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        percent = 100.0 * (counts @ correct) / drawn  # [resamples, k]
    return [percentile_interval(percent[:, k], level) for k in range(correct.shape[1])]


def mcnemar_exact(a_correct, b_correct) -> dict:
    """The exact McNemar test of ``a`` against ``b`` (per-sample correctness on the same samples): ``only_a``
    and ``only_b`` (the discordant samples) and the two-sided p-value, ``min(1, 2 P[X <= min])`` for
    ``X ~ Binomial(only_a + only_b, 1/2)``, computed exactly (no normal approximation)."""
    a, b = np.asarray(a_correct, dtype=bool), np.asarray(b_correct, dtype=bool)
    if a.shape != b.shape:
        raise ValueError(f"the two results cover different samples ({a.shape} and {b.shape})")
    only_a, only_b = int(np.sum(a & ~b)), int(np.sum(~a & b))
    discordant = only_a + only_b
    if discordant == 0:
        return {"only_a": only_a, "only_b": only_b, "p_value": 1.0}
    tail = sum(math.comb(discordant, k) for k in range(min(only_a, only_b) + 1))
    p_value = min(Fraction(1), 2 * Fraction(tail, 2**discordant))  # exact, then one rounding to float
    return {"only_a": only_a, "only_b": only_b, "p_value": float(p_value)}


def paired_bootstrap(metric: Callable[[np.ndarray], np.ndarray], counts: np.ndarray, observed: float,
                     level: float = LEVEL) -> dict:
    """The difference ``observed`` (a - b) of a corpus metric, its interval and bootstrap p-value.

    ``metric(counts)`` returns the difference a - b for every resample in ``counts`` (both results scored
    on the same resampled samples). The p-value is two-sided: twice the share of resamples on the far
    side of zero, at least ``1 / (resamples + 1)``.
    """
    differences = np.asarray(metric(counts), dtype=np.float64)
    differences = differences[np.isfinite(differences)]
    resamples = len(differences)
    if not resamples:
        return {"difference": observed, "ci95": [math.nan, math.nan], "p_value": math.nan}
    below, above = np.sum(differences <= 0), np.sum(differences >= 0)
    p_value = min(1.0, 2 * (min(below, above) + 1) / (resamples + 1))
    return {"difference": observed, "ci95": percentile_interval(differences, level), "p_value": float(p_value)}


def percent_differences(a_correct, b_correct, counts: np.ndarray) -> np.ndarray:
    """``[resamples, k]``: B's percentage right minus A's in each resample of ``counts`` (``[resamples, n]``),
    for each column of ``a_correct`` / ``b_correct`` (``[n, k]`` booleans of the same samples, or ``[n]``):
    both scored on the same draws, one matrix product.

        >>> percent_differences([[True], [False]], [[True], [True]], np.array([[1, 1], [2, 0], [0, 2]]))[:, 0].tolist()
        [50.0, 0.0, 100.0]
    """
    a = np.asarray(a_correct, dtype=np.float64).reshape(counts.shape[1], -1)
    b = np.asarray(b_correct, dtype=np.float64).reshape(counts.shape[1], -1)
    drawn = counts.sum(axis=1, keepdims=True).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return 100.0 * (counts @ (b - a)) / drawn
