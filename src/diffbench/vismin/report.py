"""The one VisMin report: the paper's table with the published rows beside the result, the figure and
results.json, written as one set. ``diffbench score vismin``, the harness (``diffbench eval vismin``) and
the Space all call this, so one submission gives the same table and results.json whichever way it is
scored (:func:`diffbench.vismin.scoring.score_submission` makes the results; the harness adds what it ran).

    >>> results = {"scores": {"per_category": {"object": {"text_score": 50.0, "image_score": 25.0,
    ...            "group_score": 25.0}}, "avg_as_published": 33.33, "num_samples": 4, "text_score": 50.0,
    ...            "image_score": 25.0, "group_score": 25.0}}
    >>> print(format_table(results, model="mine", compare=()).splitlines()[2])
    | mine | 50.00 | 25.00 | 25.00 | – | – | – | – | – | – | – | – | – | 33.33 |
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from diffbench import files
from diffbench.data.provenance import SYNTHETIC_NOTE, is_synthetic
from diffbench.report.figures import describe_provenance
from diffbench.text import markdown_text
from diffbench.vismin.figure import DEFAULT_PUBLISHED, per_category, vismin_figure
from diffbench.vismin.published import published_models, published_results
from diffbench.vismin.schema import CATEGORIES, PUBLISHED_SAMPLES


def _cell(value) -> str:
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.2f}"


def format_table(results: dict, model: str | None = None, compare=None) -> str:
    """The paper's layout in markdown: text / image / group per category, then AVG.

    ``results`` is what :func:`~diffbench.vismin.scoring.score_submission` returns (or a metric output with
    categories); ``compare`` names published models (see :func:`~diffbench.vismin.published.published_results`)
    to list below it: ``None`` lists every published row, ``()`` none. A result of a synthetic build says
    :data:`diffbench.data.provenance.SYNTHETIC_NOTE` under the table.
    """
    compare = published_models() if compare is None else compare
    scores = results.get("scores", results)
    if "per_category" not in scores:
        raise ValueError("the results have no per-category scores: score with categories to get the paper's table")
    header = ["Model"] + [f"{c.capitalize()} {k}" for c in CATEGORIES for k in ("T", "I", "G")] + ["AVG"]
    label = model or Path(str(results.get("submission", "submission"))).stem
    rows = [[markdown_text(label)] + [_cell(scores["per_category"].get(c, {}).get(f"{k}_score")) for c in CATEGORIES
                       for k in ("text", "image", "group")] + [_cell(scores["avg_as_published"])]]
    if compare:
        published = published_results()
        for name in compare:
            match = published[published["model"] == name]
            if match.empty:
                raise ValueError(f"no published VisMin result for {name!r}; known: {', '.join(published['model'].unique())}")
            for _, row in match.iterrows():
                cells = [row[f"{c}_{k}"] for c in CATEGORIES for k in ("text", "image", "group")]
                rows.append([f"{name} ({row['table']}, published)"] + [_cell(v) for v in cells] + [_cell(row["avg_as_published"])])
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    n = scores["num_samples"]
    lines += [
        "",
        f"T / I / G: text, image and group scores (%). AVG: the mean of the category cells, as published. "
        f"Over all {n:,} samples: text {scores['text_score']:.2f}, image {scores['image_score']:.2f}, "
        f"group {scores['group_score']:.2f}.",
    ]
    if results.get("missing_ids"):
        lines.append(f"Scored {n:,} of {results['dataset_samples']:,} samples: {len(results['missing_ids']):,} missing.")
    if is_synthetic(results.get("provenance") or {}):
        lines.append(f"**{SYNTHETIC_NOTE}** ({describe_provenance(results['provenance'])}).")
    return "\n".join(lines)


def question_table(results: dict) -> str:
    """A chat model's per-question accuracy and unparseable answers (``""`` for a contrastive model)."""
    rows = results.get("per_question")
    if not rows:
        return ""
    lines = ["| Question | Accuracy (%) | Unparseable | Ambiguous |", "|---|---:|---:|---:|"]
    lines += [f"| {c} | {r['accuracy']:.2f} | {r['unparseable']} | {r['ambiguous']} |" for c, r in rows.items()]
    return ("\n".join(lines) + f"\n\nUnparseable answers (the lenient parser finds neither option; scored wrong): "
            f"{results['unparseable_answers']} of {4 * results['num_samples']}.")


def report_markdown(results: dict, label: str, compare=None) -> str:
    """results.md: the title, :func:`format_table` (``label`` beside the published rows), what the rows are
    and how this result was made (its protocol, when a run recorded one), a chat model's questions."""
    table = format_table(results, model=label, compare=compare)
    protocol = results.get("protocol") or {}
    said = ", ".join(f"{k} {v}" for k, v in protocol.items() if k not in ("prompts",) and v is not None)
    note = ("Published rows: the VisMin paper and project page, on the full benchmark "
            f"({PUBLISHED_SAMPLES:,} samples); this result: {results['scores']['num_samples']:,} samples."
            + (f" Protocol: {said}." if said else ""))
    questions = question_table(results)
    return f"# VisMin: {markdown_text(label)}\n\n{table}\n\n{note}\n" + (f"\n{questions}\n" if questions else "")


def write_report_files(folder, results: dict, label: str, compare=None) -> list[Path]:
    """results.json, results.md and the figure (results.png / .svg: the result beside ``compare``'s rows, or
    the default few) in ``folder`` (a staging folder of :func:`diffbench.files.staged`: the caller decides
    what moves in with them)."""
    folder = Path(folder)
    files.write_atomically(folder / "results.json", json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    files.write_atomically(folder / "results.md", report_markdown(results, label, compare))
    figure = vismin_figure(folder / "results", per_category(results), label=label,
                           provenance=results.get("provenance"), num_samples=results["scores"]["num_samples"],
                           published=list(compare) if compare else DEFAULT_PUBLISHED)
    return [folder / "results.json", folder / "results.md", *figure]


def write_report(out, results: dict, label: str, compare=None, overwrite: bool = False) -> list[Path]:
    """:func:`write_report_files` into ``out`` as one set (never over files diffbench did not write there,
    unless ``overwrite``); returns the paths written."""
    out = Path(out)
    format_table(results, model=label, compare=compare)  # an unknown --compare name fails before anything is written
    with files.staged(out, overwrite=overwrite) as folder:
        written = write_report_files(folder, results, label, compare)
    return [out / path.name for path in written]
