"""The one difference-captioning report: the table (the total, then one row a change type or official part),
results.json, samples.jsonl and the figure, written as one set. ``diffbench score captions``, the harness
(``diffbench eval <caption set>``) and the Space all call this, so a set of predictions gives the same
results.json and table whichever way it is scored (:func:`diffbench.captions.scoring.score` makes the
results, layout v1: :mod:`diffbench.report.layout`).

    >>> from diffbench.report.layout import group, make_results
    >>> results = make_results(benchmark="omnidiff", config=None, split="test", samples=3, dataset_samples=3,
    ...     scores={"CIDEr": 43.217}, ci95={"CIDEr": [20.0, 70.0]}, groups={"a|b": group(1, {"CIDEr": 50.0}, {})},
    ...     uncertainty={"resamples": 1000}, provenance={}, protocol={"evaluation": "per_change_type"})
    >>> print(format_table(results))
    | subset | samples | CIDEr |
    |---|---:|---:|
    | all | 3 | 43.22 ±25.00 |
    | a\\|b | 1 | 50.00 |
"""

from __future__ import annotations

import math
from pathlib import Path

from diffbench import files
from diffbench.captions.figure import SMALL_GROUP, caption_figure
from diffbench.captions.inputs import METRICS, OUTPUT_NAMES
from diffbench.captions.metrics import ALL_GROUP
from diffbench.data import provenance
from diffbench.report.layout import RESULTS_FILE, SAMPLES_FILE, check, dumps, group, samples_jsonl
from diffbench.text import markdown_text

NAMES = [name for metric in METRICS for name in OUTPUT_NAMES[metric]]


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def with_interval(value, interval) -> str:
    """``52.10 ±2.31``: the value and half the width of its 95% interval (the bounds are in results.json)."""
    if not _is_number(value):
        return ""
    if not interval or not all(_is_number(v) for v in interval):
        return f"{value:.2f}"
    return f"{value:.2f} ±{(interval[1] - interval[0]) / 2:.2f}"


def total_name(results: dict) -> str:
    """The total's row name: ``total`` beside CLEVR-Change's official parts, else ``all``."""
    return "total" if (results.get("protocol") or {}).get("evaluation") == "clevr_change_official" else ALL_GROUP


def figure_groups(results: dict) -> dict[str, dict]:
    """``{subset: {"samples", "scores", "ci95"}}`` for :func:`diffbench.captions.figure.caption_figure` and the
    Space's chart: the total first (``all``, or ``total`` for CLEVR-Change's official parts), then each group."""
    check(results)
    total = group(results["samples"], results["scores"], results["ci95"])
    subsets = {total_name(results): total, **results["groups"]}
    return {name: {**values, "scores": {k: v for k, v in values["scores"].items() if _is_number(v)}}
            for name, values in subsets.items() if any(_is_number(v) for v in values["scores"].values())}


def metric_table(scores: dict) -> str:
    """The table of :func:`~diffbench.captions.metrics.score_captions`' own dict (pycocoevalcap's scale, four
    decimals, no interval: what the ``diff_caption_score`` metric returns), the total then each group.

    >>> print(metric_table({"CIDEr": 0.43217, "num_samples": 3, "groups": {"a": {"CIDEr": 0.5, "num_samples": 1}}}))
    | subset | samples | CIDEr |
    |---|---:|---:|
    | all | 3 | 0.4322 |
    | a | 1 | 0.5000 |
    """
    rows = {ALL_GROUP: scores, **scores.get("groups", {})}
    names = [name for name in NAMES if name in scores]
    lines = ["| subset | samples | " + " | ".join(names) + " |", "|---|---:|" + "---:|" * len(names)]
    for label, values in rows.items():
        cells = [f"{values[name]:.4f}" if _is_number(values.get(name)) else "" for name in names]
        lines.append(f"| {markdown_text(label)} | {values.get('num_samples', '')} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def format_table(results: dict) -> str:
    """A Markdown table on the percent scale: one row for the total, then one a group, each value ± half its
    95% interval (opened by the synthetic-sample note when the results carry a synthetic provenance).
    Given :func:`~diffbench.captions.metrics.score_captions`' own dict (no ``schema``): :func:`metric_table`."""
    if "schema" not in results and "num_samples" in results:
        return metric_table(results)
    rows = figure_groups(results)
    names = [name for name in NAMES if any(name in r["scores"] for r in rows.values())]
    lines = ["| subset | samples | " + " | ".join(names) + " |", "|---|---:|" + "---:|" * len(names)]
    for label, values in rows.items():
        cells = [with_interval(values["scores"].get(name), (values.get("ci95") or {}).get(name)) for name in names]
        lines.append(f"| {markdown_text(label)} | {values['samples']} | " + " | ".join(cells) + " |")
    table = "\n".join(lines)
    if provenance.is_synthetic(results.get("provenance") or {}):
        table = f"*{provenance.SYNTHETIC_NOTE}*\n\n{table}"
    return table


def notes(results: dict) -> str:
    """What the numbers are: the scale, the intervals, small groups, missing predictions."""
    uncertainty = results.get("uncertainty") or {}
    said = [f"Metrics x 100 (CIDEr-D can pass 100); ± half the 95% bootstrap interval over samples "
            f"({uncertainty.get('resamples', '?')} resamples, seed {uncertainty.get('seed', '?')}; every corpus "
            "metric recomputed on each resample; the bounds are in results.json)."]
    small = [g for g, v in results["groups"].items() if v["samples"] < SMALL_GROUP]
    if small:
        said.append(f"Groups of fewer than {SMALL_GROUP} samples ({', '.join(map(markdown_text, small))}): each group "
                    "is scored as a corpus of its own, so its CIDEr-D takes that group's document frequencies "
                    "(a one-sample group scores 0 even for a perfect caption).")
    if results.get("num_missing"):
        said.append(f"Scored {results['samples']:,} of {results['dataset_samples']:,} pairs: "
                    f"{results['num_missing']:,} without a prediction.")
    return " ".join(said)


def report_markdown(results: dict, title: str, intro: str = "") -> str:
    """results.md: the title, an introductory line (what was run), :func:`format_table`, :func:`notes`."""
    return (f"# {title}\n\n" + (f"{intro}\n\n" if intro else "") + format_table(results) + "\n\n"
            + notes(results) + "\n")


def write_report_files(folder, results: dict, title: str, intro: str = "", samples=None) -> list[Path]:
    """results.json, results.md, the figure (results.png / .svg) and, given ``samples``
    (:class:`~diffbench.captions.scoring.Scored`'s), samples.jsonl in ``folder`` (a staging folder of
    :func:`diffbench.files.staged`: the caller decides what moves in with them)."""
    folder = Path(folder)
    check(results)
    files.write_atomically(folder / RESULTS_FILE, dumps(results))
    files.write_atomically(folder / "results.md", report_markdown(results, title, intro))
    written = [folder / RESULTS_FILE, folder / "results.md"]
    if samples is not None:
        files.write_atomically(folder / SAMPLES_FILE, samples_jsonl(samples))
        written.append(folder / SAMPLES_FILE)
    written += caption_figure(folder / "results", figure_groups(results), provenance=results.get("provenance"),
                              title=title, num_samples=results["samples"])
    return written


def write_report(out, results: dict, title: str, intro: str = "", overwrite: bool = False, samples=None) -> list[Path]:
    """:func:`write_report_files` into ``out`` as one set (never over files diffbench did not write there,
    unless ``overwrite``); returns the paths written."""
    out = Path(out)
    with files.staged(out, overwrite=overwrite, names=(*files.REPORT_FILES, SAMPLES_FILE)) as folder:
        written = write_report_files(folder, results, title, intro, samples)
    return [out / path.name for path in written]
