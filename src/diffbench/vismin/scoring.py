"""Score an official VisMin submission against the built benchmark, as the paper reports it.

The submission (either official format, either id form) is read, checked and joined to the benchmark's
rows by :mod:`diffbench.vismin.submission`; the scores come from the ``vismin_group_score`` metric
(``metrics/vismin_group_score/``, the official rule); the report (table, figure, results.json) is
:mod:`diffbench.vismin.report`.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from diffbench import __version__
from diffbench.data import provenance
from diffbench.data.building import load_built
from diffbench.data.hub_folders import load_module
from diffbench.vismin.submission import (KINDS, check_coverage, dataset_keys, limits_for, read_submission,
                                         submission_ids, validate_submission)


def metric_module():
    """The ``vismin_group_score`` module (``metrics/vismin_group_score/``, loaded by file path as the Hub does;
    once a process, thread-safe): the official rule as functions (``scores_correct``, ``answers_correct``)."""
    return load_module("metrics", "vismin_group_score")


def metric():
    """The ``vismin_group_score`` metric: per-category text / image / group scores."""
    return metric_module().VisminGroupScore()


def score_submission(
    path_or_frame,
    dataset=None,
    config: str = "bench",
    *,
    parser: str = "lenient",
    allow_missing: bool = False,
) -> dict:
    """Score a submission (a CSV path or a DataFrame) on the built VisMin benchmark.

    ``dataset`` defaults to ``load_built("vismin", config, "test")``. Returns the results dict, with
    the build's ``"provenance"`` (:func:`diffbench.data.provenance.of_dataset`). A CSV far larger than
    the benchmark is refused before it is read (:func:`~diffbench.vismin.submission.limits_for`).
    :mod:`diffbench.vismin.report` writes the results.
    """
    if not isinstance(path_or_frame, pd.DataFrame) and not Path(path_or_frame).is_file():
        raise FileNotFoundError(f"no submission file at {path_or_frame}")  # before loading the benchmark
    if dataset is None:
        dataset = load_built("vismin", config, "test")
    if isinstance(path_or_frame, pd.DataFrame):
        source = "submission"
        frame = validate_submission(path_or_frame, source)
    else:
        source = str(path_or_frame)
        max_bytes, max_rows = limits_for(len(dataset))
        frame = read_submission(path_or_frame, max_bytes=max_bytes, max_rows=max_rows)
    keys = dataset_keys(dataset)
    ids = submission_ids(frame, keys, source)
    missing = check_coverage(ids, keys, source, allow_missing, frame.attrs.get("lines"))
    category_of = dict(zip(keys["id"], keys["category"]))
    categories = [category_of[i] for i in ids]
    kind = frame.attrs["kind"]
    inputs = {column: frame[column].to_numpy() for column in KINDS[kind]}
    if kind == "answers":
        inputs = {column: values.tolist() for column, values in inputs.items()}
    scores = metric().compute(**inputs, categories=categories, parser=parser)

    results = {
        "benchmark": "vismin",
        "config": config,
        "split": "test",
        "submission": source,
        "kind": kind,
        "parser": parser if kind == "answers" else None,
        "num_samples": len(frame),
        "dataset_samples": len(keys),
        "missing_ids": missing,
        "scores": scores,
        "provenance": provenance.of_dataset(dataset),
        "diffbench_version": __version__,
    }
    return results
