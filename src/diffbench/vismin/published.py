"""The published VisMin results: the project page's two tables (zero-shot, fine-tuned), cell for cell.

One row a model: ``table`` (``zero-shot`` or ``fine-tuned``), ``model`` (as published), the twelve
category cells ``<category>_<text|image|group>`` and ``avg_as_published``. The file is a copy of the
project page's table (``reference/vismin_published_results.csv``, shipped in the package).

One AVG convention: the paper's AVG is the mean of a row's twelve category cells for 14 of its 17 rows;
for three it is not (GPT4-o and Gemini1.0 Pro: the mean of their four group cells; LlaVa1.6 (7B): 38.28,
which is the mean of no natural set of its cells). diffbench's tables, figures and leaderboard compute
every row's AVG as the mean of its cells (:func:`published_rows`) and show the published value beside it,
with :data:`AVG_NOTES` saying how it differs, where it does.

    >>> published_results().loc[lambda t: t.model == "Random Chance", "avg_as_published"].item()
    22.22
"""

from __future__ import annotations

from importlib import resources

from diffbench.vismin.schema import CATEGORIES, SCORE_NAMES


def published_results():
    """The published VisMin tables (project page), a ``pandas.DataFrame``: one row per model, ``table``
    zero-shot or fine-tuned."""
    import pandas as pd  # deferred: half a second, and `diffbench list presets` needs no table

    with resources.files("diffbench").joinpath("reference", "vismin_published_results.csv").open("rb") as f:
        return pd.read_csv(f)


def published_models() -> list[str]:
    """The published row names, in the tables' order (a name in both tables once)."""
    return list(dict.fromkeys(published_results()["model"]))


#: how far a published AVG may sit from a computed one and still be the same number (the cells are
#: printed with two decimals, so their mean carries a rounding of up to half a hundredth)
AVG_TOLERANCE = 0.011
#: why a published AVG differs from the mean of its row's twelve cells (checked against the cells)
AVG_NOTES = {
    "group cells": "the published AVG is the mean of the row's four group cells, not of its twelve cells",
    "unexplained": "the published AVG is the mean of neither the row's twelve cells nor its text, image or group "
                   "cells",
}


def avg_note(cells: dict, published_avg: float) -> str | None:
    """Which :data:`AVG_NOTES` applies to a published row (``None``: its AVG is the mean of its cells).

    ``cells``: ``{(category, score): value}`` of the row's twelve cells.

    >>> cells = {(c, s): v for c in CATEGORIES for s, v in (("text", 90.0), ("image", 60.0), ("group", 30.0))}
    >>> avg_note(cells, 60.0), avg_note(cells, 30.0), avg_note(cells, 12.0)
    (None, 'group cells', 'unexplained')
    """
    if abs(sum(cells.values()) / len(cells) - published_avg) <= AVG_TOLERANCE:
        return None
    groups = [cells[(c, "group")] for c in CATEGORIES]
    return "group cells" if abs(sum(groups) / len(groups) - published_avg) <= AVG_TOLERANCE else "unexplained"


def published_rows() -> list[dict]:
    """Every published row on the one AVG convention of diffbench's tables: ``table``, ``model``, ``cells``
    (``{(category, score): value}``), ``avg`` (the mean of the twelve cells, as the paper computes it for 14 of
    its 17 rows), ``avg_published`` and ``avg_note`` (a key of :data:`AVG_NOTES` where the two differ).

    >>> {row["model"]: (round(row["avg"], 2), row["avg_published"], row["avg_note"]) for row in published_rows()
    ...  if row["avg_note"]}
    {'LlaVa1.6 (7B)': (45.31, 38.28, 'unexplained'), 'Gemini1.0 Pro': (60.0, 49.63, 'group cells'), 'GPT4-o': (80.44, 73.93, 'group cells')}
    """
    rows = []
    for _, row in published_results().iterrows():
        cells = {(c, s): float(row[f"{c}_{s}"]) for c in CATEGORIES for s in SCORE_NAMES}
        rows.append({"table": row["table"], "model": row["model"], "cells": cells,
                     "avg": sum(cells.values()) / len(cells), "avg_published": float(row["avg_as_published"]),
                     "avg_note": avg_note(cells, float(row["avg_as_published"]))})
    return rows
