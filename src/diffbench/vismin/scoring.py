"""Score an official VisMin submission against the built benchmark, as the paper reports it.

A submission is one of the two official formats (rabiulcste/vismin, ``vismin-bench/README.md``):

- similarity scores of a contrastive model: ``id,T0_I0,T0_I1,T1_I0,T1_I1``;
- answers of a chat model: ``id,Text_Q0,Text_Q1,Image_Q0,Image_Q1``.

``id`` is either ours, ``<category>/<upstream id>`` (the ``id`` column of ``load_dataset("vismin")``),
or the upstream integer id. Upstream ids restart at 0 in each category, so an integer id needs a
``category`` column beside it, unless the file lists every sample in the dataset's order (the official
scorer matches rows by position). Missing, extra and duplicate ids are reported, never skipped
silently. The scores come from the ``vismin_group_score`` metric (``metrics/vismin_group_score/``).

The file is read and checked by :mod:`diffbench.vismin.submission`; the report (table, figure,
results.json) is :mod:`diffbench.vismin.report`.
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
