"""The VisMin figure: a result's text / image / group scores per category (and AVG) beside published rows.

One panel per score; in each, one group of bars per category and AVG: the result first, then each
published row named in ``published`` (model names of :func:`diffbench.vismin.published.published_results`;
a name in both tables gives both rows). Chance (the published *Random Chance* row) is a dashed line; the
sample count and the data's provenance are printed under the title, and
:data:`diffbench.data.provenance.SYNTHETIC_NOTE` in red when the data is the synthetic sample. PNG (200 dpi)
and SVG (text kept as text).

    >>> import tempfile
    >>> stem = Path(tempfile.mkdtemp()) / "results"
    >>> cells = {c: {"text": 50.0, "image": 40.0, "group": 30.0} for c in ("object", "attribute")}
    >>> paths = vismin_figure(stem, cells, label="my model", num_samples=80,
    ...                       provenance={"source": "synthetic", "synthetic": True, "n": 80, "seed": 0})
    >>> [p.name for p in paths]
    ['results.png', 'results.svg']
    >>> "synthetic sample: not comparable" in paths[1].read_text()
    True
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

from diffbench.report.figures import PUBLISHED_COLORS, RUN_COLOR, describe_provenance, figure, header, save
from diffbench.text import printable
from diffbench.vismin.published import published_results
from diffbench.vismin.schema import CATEGORIES, PUBLISHED_SAMPLES, SCORE_NAMES

#: published rows drawn beside a result unless the caller picks others
DEFAULT_PUBLISHED = ("CLIP (ViT-B/32)", "GPT4-o", "MTurk Human")
CHANCE_ROW = "Random Chance"


def _published_rows(names: Sequence[str]):
    table = published_results()
    unknown = [n for n in names if n not in set(table["model"])]
    if unknown:
        raise ValueError(f"no published VisMin result for {', '.join(map(repr, unknown))}; "
                         f"known: {', '.join(dict.fromkeys(table['model']))}")
    chance = table[table["model"] == CHANCE_ROW].iloc[0]
    rows = [row for name in names for _, row in table[table["model"] == name].iterrows()]
    duplicated = {n for n in names if (table["model"] == n).sum() > 1}
    labelled = [(f"{r['model']} ({r['table']})" if r["model"] in duplicated else str(r["model"]), r) for r in rows]
    return labelled, chance


def _avg(cells: Mapping[str, Mapping[str, float]], score: str) -> float:
    values = [float(cells[c][score]) for c in cells if score in cells[c]]
    return sum(values) / len(values) if values else math.nan


def per_category(results: Mapping) -> dict[str, dict[str, float]]:
    """The text / image / group scores of each category of VisMin ``results`` (results.json's ``groups``), as
    :func:`vismin_figure` takes them."""
    groups = results["groups"]
    return {c: {s: groups[c]["scores"][s] for s in SCORE_NAMES} for c in CATEGORIES if c in groups}


def intervals(results: Mapping) -> dict[str, dict[str, list[float]]]:
    """The 95% interval of each category's text / image / group score (results.json's ``groups``), for the
    figure's error bars."""
    groups = results["groups"]
    return {c: {s: groups[c]["ci95"][s] for s in SCORE_NAMES} for c in CATEGORIES if c in groups}


def vismin_figure(stem: Path, per_category: Mapping[str, Mapping[str, float]], *, provenance: Mapping | None,
                  num_samples: int, label: str = "this run", published: Sequence[str] = DEFAULT_PUBLISHED,
                  intervals: Mapping[str, Mapping[str, Sequence[float]]] | None = None) -> list[Path]:
    """Text / image / group per category (and their mean, AVG) of a run beside published rows; ``intervals``
    (``{category: {score: [low, high]}}``) draws the run's 95% intervals as error bars. A published row's AVG
    is the mean of its four cells of that score whatever categories the run has (one AVG convention)."""
    categories = [c for c in CATEGORIES if c in per_category]
    if not categories:
        raise ValueError("no VisMin category scores to draw")
    rows, chance = _published_rows(list(published))
    label = printable(label)  # the user's text: no control character drawn (or missing from the font)
    series = [(label, RUN_COLOR, {c: dict(per_category[c]) for c in categories})]
    for n, (name, row) in enumerate(rows):
        cells = {c: {s: float(row[f"{c}_{s}"]) for s in SCORE_NAMES} for c in CATEGORIES}
        series.append((f"{name} (published)", PUBLISHED_COLORS[n % len(PUBLISHED_COLORS)], cells))
    groups = [*categories, "AVG"]
    width = 0.8 / len(series)
    fig = figure(max(9.0, 2.4 + 0.55 * len(groups) * len(series)), 4.2)
    axes = fig.subplots(1, len(SCORE_NAMES), sharey=True)
    for ax, score in zip(axes, SCORE_NAMES):
        for j, (name, color, cells) in enumerate(series):
            values = [float(cells[c][score]) for c in categories] + [_avg(cells, score)]
            xs = [i + (j - (len(series) - 1) / 2) * width for i in range(len(groups))]
            errors = None
            if j == 0 and intervals:  # the run's 95% intervals (the AVG bar has none: it is a mean of bars)
                bounds = [intervals.get(c, {}).get(score) or (math.nan, math.nan) for c in categories]
                errors = [[max(0.0, v - lo) for v, (lo, _) in zip(values, bounds)] + [0.0],
                          [max(0.0, hi - v) for v, (_, hi) in zip(values, bounds)] + [0.0]]
            bars = ax.bar(xs, values, width, color=color, label=name, edgecolor="white", linewidth=0.4,
                          yerr=errors, error_kw={"elinewidth": 0.8, "capsize": 1.5, "ecolor": "#333333"})
            if j == 0:  # the run's own numbers, printed; published ones are in the table
                labels = ax.bar_label(bars, fmt="%.1f", fontsize=6.5, padding=1, rotation=90)
                for text in labels:  # readable where it crosses the chance line
                    text.set_bbox({"facecolor": "white", "edgecolor": "none", "pad": 0.3, "alpha": 0.85})
        level = float(chance[f"{categories[0]}_{score}"])
        ax.axhline(level, color="black", linestyle="--", linewidth=0.9, label="chance (published Random Chance row)")
        ax.set_xticks(range(len(groups)), [g.capitalize() if g != "AVG" else g for g in groups], fontsize=8)
        ax.set_title(f"{score} score (chance {level:.2f})", fontsize=10)
        ax.set_ylim(0, 115)  # room for a rotated "100.0" label under the title
        ax.set_yticks(range(0, 101, 20))
        ax.grid(axis="y", linewidth=0.3, alpha=0.6)
        ax.set_axisbelow(True)
    axes[0].set_ylabel("% correct")
    handles, names = axes[0].get_legend_handles_labels()
    fig.legend(handles, names, loc="outside right center", fontsize=8, frameon=False)
    header(fig, f"VisMin: {label}",
            [f"this run: {num_samples:,} samples" + (", 95% bootstrap intervals" if intervals else "")
             + f" · published rows: the full benchmark ({PUBLISHED_SAMPLES:,} samples); AVG: the mean of the categories",
             describe_provenance(provenance)], provenance)
    return save(fig, stem)
