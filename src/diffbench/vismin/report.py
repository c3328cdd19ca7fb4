"""The one VisMin report: the paper's table with the published rows beside the result, the figure and
results.json, written as one set. ``diffbench score vismin``, the harness (``diffbench eval vismin``) and
the Space all call this, so one submission gives the same table and results.json whichever way it is
scored (:func:`diffbench.vismin.scoring.score_submission` makes the results; the harness adds what it ran).

    >>> from diffbench.report.layout import group, make_results
    >>> cell = group(4, {"text": 50.0, "image": 25.0, "group": 25.0}, {"text": [0.0, 100.0], "image": [0.0, 75.0],
    ...                                                                 "group": [0.0, 75.0]})
    >>> results = make_results(benchmark="vismin", config="bench", split="test", samples=4, dataset_samples=4,
    ...     scores={"text": 50.0, "image": 25.0, "group": 25.0, "avg": 33.33}, ci95={"avg": [8.33, 58.33]},
    ...     groups={"object": cell}, uncertainty={"resamples": 1000}, provenance={}, protocol={})
    >>> print(format_table(results, model="mine", compare=()).splitlines()[2])
    | mine | 50.00 ±50.00 | 25.00 ±37.50 | 25.00 ±37.50 | – | – | – | – | – | – | – | – | – | 33.33 ±25.00 |
"""

from __future__ import annotations

import math
from pathlib import Path

from diffbench import files
from diffbench.data.provenance import SYNTHETIC_NOTE, is_synthetic
from diffbench.report.figures import describe_provenance
from diffbench.report.layout import SAMPLES_FILE, check, dumps, samples_jsonl
from diffbench.text import markdown_text
from diffbench.vismin.figure import DEFAULT_PUBLISHED, intervals, per_category, vismin_figure
from diffbench.vismin.published import AVG_NOTES, published_rows
from diffbench.vismin.schema import CATEGORIES, PUBLISHED_SAMPLES, SCORE_NAMES


def _cell(value) -> str:
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.2f}"


def _with_interval(value, interval) -> str:
    """``52.10 ±2.31``: the value and half the width of its 95% interval (the exact bounds are in results.json)."""
    if value is None or not interval or any(math.isnan(v) for v in interval):
        return _cell(value)
    return f"{value:.2f} ±{(interval[1] - interval[0]) / 2:.2f}"


def _published(compare) -> list[dict]:
    """The published rows named in ``compare`` (``None``: every row), in the tables' order of the names."""
    rows = published_rows()
    if compare is None:
        return rows
    known = list(dict.fromkeys(row["model"] for row in rows))
    unknown = [name for name in compare if name not in known]
    if unknown:
        raise ValueError(f"no published VisMin result for {', '.join(map(repr, unknown))}; known: {', '.join(known)}")
    return [row for name in compare for row in rows if row["model"] == name]


def format_table(results: dict, model: str | None = None, compare=None) -> str:
    """The paper's layout in markdown: text / image / group per category, then AVG, each with ± half its 95%
    interval; below, the published rows (``compare`` names them; ``None``: every one, ``()``: none) on one AVG
    convention (the mean of the twelve cells), the published value beside it where it differs, with a note
    saying how. A result of a synthetic build says :data:`diffbench.data.provenance.SYNTHETIC_NOTE`.

    ``results``: what :func:`~diffbench.vismin.scoring.score_submission` returns (results.json).
    """
    check(results)
    groups, scores, ci95 = results["groups"], results["scores"], results["ci95"]
    header = ["Model"] + [f"{c.capitalize()} {k[0].upper()}" for c in CATEGORIES for k in SCORE_NAMES] + ["AVG"]
    label = model or Path(str(results.get("submission", "submission"))).stem
    run = [markdown_text(label)]
    for c in CATEGORIES:
        cell = groups.get(c, {"scores": {}, "ci95": {}})
        run += [_with_interval(cell["scores"].get(k), cell["ci95"].get(k)) for k in SCORE_NAMES]
    rows = [run + [_with_interval(scores["avg"], ci95.get("avg"))]]
    notes: dict[str, int] = {}
    for row in _published(compare):
        avg = _cell(row["avg"])
        if row["avg_note"]:
            mark = notes.setdefault(row["avg_note"], len(notes) + 1)
            avg += f" (published {row['avg_published']:.2f}{'¹²³⁴'[mark - 1]})"
        rows.append([f"{markdown_text(row['model'])} ({row['table']}, published)"]
                    + [_cell(row["cells"][(c, k)]) for c in CATEGORIES for k in SCORE_NAMES] + [avg])
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    n = results["samples"]
    lines += ["", f"T / I / G: text, image and group scores (%), ± half the 95% bootstrap interval over samples "
                  f"({results['uncertainty'].get('resamples', '?')} resamples; the bounds are in results.json). "
                  "AVG: the mean of the twelve category cells, for every row. "
                  f"Over all {n:,} samples: text {_with_interval(scores['text'], ci95.get('text'))}, "
                  f"image {_with_interval(scores['image'], ci95.get('image'))}, "
                  f"group {_with_interval(scores['group'], ci95.get('group'))}."]
    lines += [f"{'¹²³⁴'[mark - 1]} {AVG_NOTES[note]}." for note, mark in notes.items()]
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
            f"{results['unparseable_answers']} of {4 * results['samples']}.")


def report_markdown(results: dict, label: str, compare=None) -> str:
    """results.md: the title, :func:`format_table` (``label`` beside the published rows), what the rows are
    and how this result was made (its protocol, when a run recorded one), a chat model's questions."""
    table = format_table(results, model=label, compare=compare)
    protocol = results.get("protocol") or {}
    said = ", ".join(f"{k} {v}" for k, v in protocol.items() if k not in ("prompts", "rule") and v is not None)
    note = ("Published rows: the VisMin paper and project page, on the full benchmark "
            f"({PUBLISHED_SAMPLES:,} samples); this result: {results['samples']:,} samples."
            + (f" Protocol: {said}." if said else ""))
    questions = question_table(results)
    return f"# VisMin: {markdown_text(label)}\n\n{table}\n\n{note}\n" + (f"\n{questions}\n" if questions else "")


def write_report_files(folder, results: dict, label: str, compare=None, samples=None) -> list[Path]:
    """results.json, results.md, the figure (results.png / .svg: the result beside ``compare``'s rows, or the
    default few) and, given ``samples`` (:class:`~diffbench.vismin.scoring.Scored`'s), samples.jsonl, in
    ``folder`` (a staging folder of :func:`diffbench.files.staged`: the caller decides what moves in with them)."""
    folder = Path(folder)
    files.write_atomically(folder / "results.json", dumps(results))
    files.write_atomically(folder / "results.md", report_markdown(results, label, compare))
    written = [folder / "results.json", folder / "results.md"]
    if samples is not None:
        files.write_atomically(folder / SAMPLES_FILE, samples_jsonl(samples))
        written.append(folder / SAMPLES_FILE)
    written += vismin_figure(folder / "results", per_category(results), label=label, provenance=results.get("provenance"),
                             num_samples=results["samples"], published=list(compare) if compare else DEFAULT_PUBLISHED,
                             intervals=intervals(results))
    return written


def write_report(out, results: dict, label: str, compare=None, overwrite: bool = False, samples=None) -> list[Path]:
    """:func:`write_report_files` into ``out`` as one set (never over files diffbench did not write there,
    unless ``overwrite``); returns the paths written."""
    out = Path(out)
    format_table(results, model=label, compare=compare)  # an unknown --compare name fails before anything is written
    with files.staged(out, overwrite=overwrite, names=(*files.REPORT_FILES, SAMPLES_FILE)) as folder:
        written = write_report_files(folder, results, label, compare, samples)
    return [out / path.name for path in written]
