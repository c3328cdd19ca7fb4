"""Two VisMin results on the same samples: is B's text / image / group score different from A's?

From each result's samples.jsonl (:func:`diffbench.vismin.scoring.sample_records`: ``category``,
``text_correct``, ``image_correct``, ``group_correct``), overall and per category:

- the scores of A and B, recomputed by the official rule's aggregation (the metric module's
  ``aggregate``: the same numbers as results.json on the same samples);
- the difference B - A and its 95% interval: a paired bootstrap, both results scored on the same
  resampled samples, stratified by category as the scoring's intervals are (seeded: reproducible);
- the exact McNemar test on the per-sample correctness (a two-sided binomial test on the samples where
  exactly one of the two is right: ``b01`` A wrong and B right, ``b10`` A right and B wrong);
- for the AVG (the mean of the category cells, not a share of samples) the paired bootstrap's p-value.

``diffbench compare A B`` calls :func:`compare`; :mod:`diffbench.report.compare` reads, checks and
writes. Comparing a result with itself gives every difference 0 and every p-value 1.

    >>> from pathlib import Path
    >>> def run(right):  # a result on four object samples, each right (1) or wrong (0) on text, image, group
    ...     records = {f"object/{i}": {"id": f"object/{i}", "category": "object", "text_correct": bool(r),
    ...                                "image_correct": bool(r), "group_correct": bool(r)} for i, r in enumerate(right)}
    ...     return generic.Run("x", Path("results.json"), {"benchmark": "vismin"}, records, dict.fromkeys(records, 1))
    >>> found = compare_vismin(run([1, 0, 0, 0]), run([1, 1, 1, 0]), ["object/0", "object/1", "object/2", "object/3"],
    ...                        resamples=100, seed=0)
    >>> group = found.scores["group"]
    >>> group["a"], group["b"], group["difference"], group["b01"], group["b10"], group["p_value"]
    (25.0, 75.0, 50.0, 2, 0, 0.5)
"""

from __future__ import annotations

import numpy as np

from diffbench.report import compare as generic
from diffbench.report.layout import DEFAULT_RESAMPLES, DEFAULT_SEED
from diffbench.report.uncertainty import (mcnemar_exact, paired_bootstrap, percent_differences, percentile_interval,
                                          resample_counts)
from diffbench.vismin.schema import CATEGORIES, SCORE_NAMES
from diffbench.vismin.scoring import metric_module

CORRECT_FIELDS = tuple(f"{name}_correct" for name in SCORE_NAMES)  # text_correct, image_correct, group_correct
METHOD = {"interval": "paired bootstrap over samples, stratified by category: A and B scored on the same resamples",
          "test": "the exact McNemar test for text, image and group (two-sided binomial on the samples where "
                  "exactly one of A and B is right); the paired bootstrap for the AVG"}


def correctness(run: generic.Run, ids: list) -> tuple[np.ndarray, list[str]]:
    """``(correct, categories)``: ``[n, 3]`` booleans (text, image, group) of ``ids`` and their categories,
    each record checked (a missing or non-boolean field, an unknown category, a group that is not text and
    image: a ValueError naming the file, line and id)."""
    correct, categories = np.zeros((len(ids), len(CORRECT_FIELDS)), dtype=bool), []
    for row, sample_id in enumerate(ids):
        record = run.records[sample_id]
        if record.get("category") not in CATEGORIES:
            raise ValueError(f"{run.where(sample_id)}: category {record.get('category')!r} is not one of "
                             f"{', '.join(CATEGORIES)}")
        for column, field in enumerate(CORRECT_FIELDS):
            if not isinstance(record.get(field), bool):
                raise ValueError(f"{run.where(sample_id)}: {field} is {record.get(field)!r}, not true or false")
            correct[row, column] = record[field]
        if correct[row, 2] != (correct[row, 0] and correct[row, 1]):
            raise ValueError(f"{run.where(sample_id)}: group_correct contradicts text_correct and image_correct")
        categories.append(record["category"])
    return correct, categories


def score_entries(a: np.ndarray, b: np.ndarray, a_scores: dict, b_scores: dict, counts: np.ndarray) -> dict:
    """text / image / group of one set of samples: A, B, B - A with its paired bootstrap interval, McNemar."""
    differences = percent_differences(a, b, counts)
    entries = {}
    for k, name in enumerate(SCORE_NAMES):
        test = mcnemar_exact(a[:, k], b[:, k])
        entries[name] = generic.difference(a_scores[f"{name}_score"], b_scores[f"{name}_score"],
                                           percentile_interval(differences[:, k]), "mcnemar-exact",
                                           test["p_value"], b01=test["only_b"], b10=test["only_a"])
    return entries


def avg_entry(a: np.ndarray, b: np.ndarray, codes: np.ndarray, counts: np.ndarray, a_avg: float, b_avg: float) -> dict:
    """The AVG (the mean of the category cells present), B - A, its interval and p-value, resample by resample."""
    members = [codes == c for c in np.unique(codes)]

    def avg_differences(draws: np.ndarray) -> np.ndarray:
        cells = [percent_differences(a[m], b[m], draws[:, m]) for m in members]  # [resamples, 3] a category
        return np.mean(np.stack(cells, axis=1), axis=(1, 2))

    found = paired_bootstrap(avg_differences, counts, b_avg - a_avg)
    return generic.difference(a_avg, b_avg, found["ci95"], "paired-bootstrap", found["p_value"])


def compare_vismin(a: generic.Run, b: generic.Run, ids: list, resamples: int, seed: int) -> generic.Differences:
    """The :data:`~diffbench.report.compare.Comparer` of VisMin: overall and per category."""
    for run in (a, b):
        if run.results["benchmark"] != "vismin":
            raise ValueError(f"{run.path} holds {run.results['benchmark']!r} results, not VisMin's")
    a_correct, categories = correctness(a, ids)
    b_correct, b_categories = correctness(b, ids)
    for sample_id, mine, theirs in zip(ids, categories, b_categories):
        if mine != theirs:
            raise ValueError(f"{a.where(sample_id)} says category {mine!r}, {b.where(sample_id)} {theirs!r}")
    codes = np.array([CATEGORIES.index(c) for c in categories])
    aggregate = metric_module().aggregate  # the official rule's percentages: results.json's numbers
    a_scores = aggregate(a_correct[:, 0], a_correct[:, 1], codes)
    b_scores = aggregate(b_correct[:, 0], b_correct[:, 1], codes)
    counts = resample_counts(len(ids), resamples, seed, strata=codes)
    scores = score_entries(a_correct, b_correct, a_scores, b_scores, counts)
    scores["avg"] = avg_entry(a_correct, b_correct, codes, counts, a_scores["avg_as_published"],
                              b_scores["avg_as_published"])
    groups = {}
    for c, category in enumerate(CATEGORIES):
        m = codes == c
        if m.any():
            groups[category] = {"samples": int(m.sum()), "scores": score_entries(
                a_correct[m], b_correct[m], a_scores["per_category"][category], b_scores["per_category"][category],
                counts[:, m])}
    return generic.Differences(scores, groups, METHOD)


def compare(a, b, *, intersect: bool = False, resamples: int = DEFAULT_RESAMPLES, seed: int = DEFAULT_SEED) -> dict:
    """compare.json's content for two VisMin results (folders or results.json paths, or loaded
    :class:`~diffbench.report.compare.Run`): see the module docstring."""
    a, b = (run if isinstance(run, generic.Run) else generic.load_run(run) for run in (a, b))
    return generic.compare(a, b, compare_vismin, intersect=intersect, resamples=resamples, seed=seed)
