"""Score an official VisMin submission against the built benchmark, as the paper reports it.

The submission (either official format, either id form) is read, checked and joined to the benchmark's
rows by :mod:`diffbench.vismin.submission`; the scores come from the ``vismin_group_score`` metric
(``metrics/vismin_group_score/``, the official rule); the report (table, figure, results.json) is
:mod:`diffbench.vismin.report`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from diffbench import __version__
from diffbench.data import provenance
from diffbench.data.building import load_built
from diffbench.data.hub_folders import load_module
from diffbench.report.layout import DEFAULT_RESAMPLES, DEFAULT_SEED, group, make_results
from diffbench.report.uncertainty import LEVEL, percentile_interval, resample_counts
from diffbench.vismin.schema import ANSWER_COLUMNS, CATEGORIES, QUESTION_OPTIONS, SCORE_NAMES, parse_answer, rule
from diffbench.vismin.submission import (KINDS, check_coverage, dataset_keys, limits_for, read_submission,
                                         submission_ids, validate_submission)

#: the official rule, as results.json's protocol says it (``vismin-bench/metric.py``)
RULE = ("text right iff T0_I0 > T1_I0 and T1_I1 > T0_I1; image right iff T0_I0 > T0_I1 and T1_I1 > T1_I0; "
        "group right iff both (strict >: ties are wrong)")
UNCERTAINTY = "percentile bootstrap over samples, stratified by category (every resample keeps each category's size)"


@dataclass
class Scored:
    """A scored submission: ``results`` (results.json, :mod:`diffbench.report.layout`) and ``samples`` (one
    record a scored sample for samples.jsonl, in the submission's order)."""

    results: dict
    samples: list[dict]


def metric_module():
    """The official rule as functions (``scores_correct``, ``answers_correct``, ``columns_correct``,
    ``aggregate``): ``metrics/vismin_group_score/vismin_rule.py``, what the ``vismin_group_score`` metric
    computes with, loaded without ``evaluate`` (which imports transformers: seconds a scoring)."""
    return rule()


def metric():
    """The ``vismin_group_score`` metric (an ``evaluate.Metric``): per-category text / image / group scores."""
    return load_module("metrics", "vismin_group_score").VisminGroupScore()


def read_frame(path_or_frame, dataset):
    """``(frame, source)``: a checked submission table and the name errors use; a CSV far larger than the
    benchmark is refused before it is read (:func:`~diffbench.vismin.submission.limits_for`)."""
    if isinstance(path_or_frame, pd.DataFrame):
        return validate_submission(path_or_frame, "submission"), "submission"
    max_bytes, max_rows = limits_for(len(dataset))
    return read_submission(path_or_frame, max_bytes=max_bytes, max_rows=max_rows), str(path_or_frame)


def score(path_or_frame, dataset=None, config: str = "bench", *, parser: str = "lenient",
          allow_missing: bool = False, resamples: int = DEFAULT_RESAMPLES, seed: int = DEFAULT_SEED) -> Scored:
    """Score a submission (a CSV path or a DataFrame) on the built VisMin benchmark.

    ``dataset`` defaults to ``load_built("vismin", config, "test")``. The results carry text / image / group
    per category and over all samples, the paper's AVG (the mean of the category cells), a 95% bootstrap
    interval for each (``resamples`` resamples from ``seed``: the same file gives the same interval), the
    build's provenance and the rule. :mod:`diffbench.vismin.report` writes them.
    """
    if not isinstance(path_or_frame, pd.DataFrame) and not Path(path_or_frame).is_file():
        raise FileNotFoundError(f"no submission file at {path_or_frame}")  # before loading the benchmark
    if dataset is None:
        dataset = load_built("vismin", config, "test")
    frame, source = read_frame(path_or_frame, dataset)
    keys = dataset_keys(dataset)
    ids = submission_ids(frame, keys, source)
    missing = check_coverage(ids, keys, source, allow_missing, frame.attrs.get("lines"))
    category_of = dict(zip(keys["id"], keys["category"]))
    categories = [category_of[i] for i in ids]
    kind = frame.attrs["kind"]
    inputs = {column: frame[column].to_numpy() for column in KINDS[kind]}
    if kind == "answers":
        inputs = {column: values.tolist() for column, values in inputs.items()}
    module = metric_module()
    columns, codes = module.normalize_inputs({**inputs, "categories": categories})
    text, image = module.columns_correct(columns, parser)
    correct = np.stack([text, image, text & image], axis=1)
    # resampled in the benchmark's order: the same samples give the same intervals whatever the file's order
    order = np.argsort(keys.reset_index(drop=True).reset_index().set_index("id").loc[ids, "index"].to_numpy())
    scores, ci95, groups = summarise(module.aggregate(text, image, codes), correct[order], codes[order], resamples, seed)
    results = make_results(
        benchmark="vismin", config=config, split="test", samples=len(frame), dataset_samples=len(keys),
        scores=scores, ci95=ci95, groups=groups,
        uncertainty={"method": UNCERTAINTY, "resamples": resamples, "seed": seed, "level": LEVEL},
        provenance=provenance.of_dataset(dataset),
        protocol={"rule": RULE, "parser": parser if kind == "answers" else None},
        submission=source, kind=kind, missing_ids=missing, diffbench_version=__version__)
    return Scored(results, sample_records(ids, categories, frame, kind, correct, parser))


def score_submission(path_or_frame, dataset=None, config: str = "bench", *, parser: str = "lenient",
                     allow_missing: bool = False, resamples: int = DEFAULT_RESAMPLES, seed: int = DEFAULT_SEED) -> dict:
    """The results of :func:`score` (what ``diffbench score vismin`` writes as results.json)."""
    return score(path_or_frame, dataset, config, parser=parser, allow_missing=allow_missing, resamples=resamples,
                 seed=seed).results


def summarise(metric_results: dict, correct: np.ndarray, codes: np.ndarray, resamples: int, seed: int):
    """``(scores, ci95, groups)`` of the layout from the metric's results and the per-sample correctness
    (``[n, 3]``: text, image, group). One set of stratified resamples serves every interval: the pooled
    scores, each category's cells and the AVG (the mean of the cells, resample by resample)."""
    counts = resample_counts(len(correct), resamples, seed, strata=codes)
    present = [c for c, name in enumerate(CATEGORIES) if name in metric_results["per_category"]]
    with np.errstate(invalid="ignore", divide="ignore"):
        pooled = 100.0 * (counts @ correct) / counts.sum(axis=1, keepdims=True)  # [resamples, 3]
        cells = np.stack([100.0 * (counts[:, codes == c] @ correct[codes == c]) / np.sum(codes == c)
                          for c in present], axis=1)  # [resamples, categories, 3]
    scores = {name: metric_results[f"{name}_score"] for name in SCORE_NAMES}
    scores["avg"] = metric_results["avg_as_published"]
    ci95 = {name: percentile_interval(pooled[:, k]) for k, name in enumerate(SCORE_NAMES)}
    ci95["avg"] = percentile_interval(cells.mean(axis=(1, 2)))
    groups = {}
    for j, c in enumerate(present):
        cell = metric_results["per_category"][CATEGORIES[c]]
        groups[CATEGORIES[c]] = group(cell["num_samples"], {name: cell[f"{name}_score"] for name in SCORE_NAMES},
                                      {name: percentile_interval(cells[:, j, k]) for k, name in enumerate(SCORE_NAMES)})
    return scores, ci95, groups


def sample_records(ids, categories, frame: pd.DataFrame, kind: str, correct: np.ndarray, parser: str) -> list[dict]:
    """samples.jsonl: a sample's id, category, what the submission gave (its four similarities, or its four
    answers and what the lenient parser reads in them) and whether its text, image and group are right."""
    records = []
    columns = KINDS[kind]
    values = frame[list(columns)].to_numpy(dtype=object)
    for sample_id, category, row, (text, image, both) in zip(ids, categories, values, correct.tolist()):
        record = {"id": sample_id, "category": category}
        if kind == "scores":
            record["scores"] = {c: float(v) for c, v in zip(columns, row)}
        else:
            record["answers"] = dict(zip(columns, row))
            if parser == "lenient":
                record["parsed"] = {c: parse_answer(v, options) for c, v, options in
                                    zip(ANSWER_COLUMNS, row, QUESTION_OPTIONS)}
        records.append({**record, "text_correct": text, "image_correct": image, "group_correct": both})
    return records
