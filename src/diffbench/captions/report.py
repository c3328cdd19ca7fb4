"""The one difference-captioning report: the table (the total, then one row a change type or official part),
results.json and the figure, written as one set. ``diffbench score captions``, the harness
(``diffbench eval <caption set>``) and the Space all call this, so a set of predictions gives the same
results.json and table whichever way it is scored (:func:`diffbench.captions.scoring.score_predictions`
makes the results).
"""

from __future__ import annotations

import json
from pathlib import Path

from diffbench import files
from diffbench.captions.figure import caption_figure
from diffbench.captions.inputs import METRICS, OUTPUT_NAMES
from diffbench.captions.metrics import ALL_GROUP
from diffbench.data import provenance
from diffbench.text import markdown_text


def format_table(results: dict, *, scale: float = 1, digits: int = 4) -> str:
    """A Markdown table: one row for the total, then one a group (opened by the synthetic-sample note
    when the results carry a synthetic provenance). ``scale`` and ``digits`` only change how numbers
    are shown (the Space shows ×100 with two decimals).

    >>> print(format_table({"CIDEr": 0.43217, "num_samples": 3, "groups": {"a|b": {"CIDEr": 0.5, "num_samples": 1}}},
    ...                    scale=100, digits=2))
    | subset | samples | CIDEr |
    |---|---:|---:|
    | all | 3 | 43.22 |
    | a\\|b | 1 | 50.00 |
    """
    names = [name for metric in METRICS for name in OUTPUT_NAMES[metric] if name in results]
    total = "total" if results.get("evaluation") == "clevr_change_official" else ALL_GROUP
    rows = [(total, results)] + list(results.get("groups", {}).items())
    lines = ["| subset | samples | " + " | ".join(names) + " |", "|---|---:|" + "---:|" * len(names)]
    for label, scores in rows:
        cells = [f"{scale * scores[name]:.{digits}f}" if _is_number(scores.get(name)) else "" for name in names]
        lines.append(f"| {markdown_text(label)} | {scores.get('num_samples', '')} | " + " | ".join(cells) + " |")
    table = "\n".join(lines)
    if provenance.is_synthetic(results.get("provenance") or {}):
        table = f"*{provenance.SYNTHETIC_NOTE}*\n\n{table}"
    return table


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def report_markdown(results: dict, title: str, intro: str = "") -> str:
    """results.md: the title, an introductory line (what was run), then :func:`format_table`."""
    return f"# {title}\n\n" + (f"{intro}\n\n" if intro else "") + format_table(results) + "\n"


def figure_groups(results: dict) -> dict[str, dict[str, float]]:
    """``{subset: {metric: value}}`` for :func:`diffbench.captions.figure.caption_figure`: the total first
    (``all``, or ``total`` for CLEVR-Change's official parts), then each group, the metrics only."""
    names = [name for metric in METRICS for name in OUTPUT_NAMES[metric]]

    def metrics_of(scores: dict) -> dict[str, float]:
        return {name: float(scores[name]) for name in names if _is_number(scores.get(name))}

    total = "total" if results.get("evaluation") == "clevr_change_official" else ALL_GROUP
    groups = {total: metrics_of(results), **{g: metrics_of(s) for g, s in results.get("groups", {}).items()}}
    return {name: values for name, values in groups.items() if values}


def write_report_files(folder, results: dict, title: str, intro: str = "") -> list[Path]:
    """results.json, results.md and the figure (results.png / .svg) in ``folder`` (a staging folder of
    :func:`diffbench.files.staged`: the caller decides what moves in with them)."""
    folder = Path(folder)
    files.write_atomically(folder / "results.json", json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    files.write_atomically(folder / "results.md", report_markdown(results, title, intro))
    figure = caption_figure(folder / "results", figure_groups(results), provenance=results.get("provenance"),
                            title=title, num_samples=results.get("num_samples"))
    return [folder / "results.json", folder / "results.md", *figure]


def write_report(out, results: dict, title: str, intro: str = "", overwrite: bool = False) -> list[Path]:
    """:func:`write_report_files` into ``out`` as one set (never over files diffbench did not write there,
    unless ``overwrite``); returns the paths written."""
    out = Path(out)
    with files.staged(out, overwrite=overwrite) as folder:
        written = write_report_files(folder, results, title, intro)
    return [out / path.name for path in written]
