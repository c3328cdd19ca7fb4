"""The published VisMin results: the project page's two tables (zero-shot, fine-tuned), cell for cell.

One row a model: ``table`` (``zero-shot`` or ``fine-tuned``), ``model`` (as published), the twelve
category cells ``<category>_<text|image|group>`` and ``avg_as_published``. The file is a copy of the
project page's table (``reference/vismin_published_results.csv``, shipped in the package).

    >>> published_results().loc[lambda t: t.model == "Random Chance", "avg_as_published"].item()
    22.22
"""

from __future__ import annotations

from importlib import resources


def published_results():
    """The published VisMin tables (project page), a ``pandas.DataFrame``: one row per model, ``table``
    zero-shot or fine-tuned."""
    import pandas as pd  # deferred: half a second, and `diffbench list presets` needs no table

    with resources.files("diffbench").joinpath("reference", "vismin_published_results.csv").open("rb") as f:
        return pd.read_csv(f)


def published_models() -> list[str]:
    """The published row names, in the tables' order (a name in both tables once)."""
    return list(dict.fromkeys(published_results()["model"]))
