"""The caption metrics' figure: small multiples, one panel a metric, one horizontal bar a subset.

``groups``: ``{subset: {"samples": n, "scores": {metric: value}, "ci95": {metric: [low, high]}}}`` on the
percent scale, the total first then one entry a change type (what
:func:`diffbench.captions.report.figure_groups` returns from results.json). Every panel has a fixed,
labelled axis: 0..100 for BLEU, METEOR, ROUGE-L and SPICE, 0..max(100, the data) for CIDEr-D (which can
pass 100), so a near-zero value draws as a near-zero bar; error bars are the 95% intervals. A group of
fewer than :data:`SMALL_GROUP` samples is drawn hatched and grey, and the caption says why its numbers
mislead: CIDEr-D on a subset takes that subset's document frequencies (a one-sample group scores CIDEr-D
0 even for a perfect prediction). The total's bar is drawn darker. PNG (200 dpi) and SVG (text as text).

    >>> import tempfile
    >>> groups = {"all": {"samples": 40, "scores": {"Bleu_4": 31.0, "CIDEr": 190.0},
    ...                   "ci95": {"Bleu_4": [25.0, 37.0], "CIDEr": [150.0, 230.0]}},
    ...           "color": {"samples": 3, "scores": {"Bleu_4": 40.0, "CIDEr": 0.0}, "ci95": {}}}
    >>> [p.suffix for p in caption_figure(Path(tempfile.mkdtemp()) / "results", groups, provenance={})]
    ['.png', '.svg']
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path

from diffbench.report.figures import NOTE_COLOR, RUN_COLOR, describe_provenance, figure, header, save
from diffbench.text import printable

TOTALS = ("all", "total")  # the total's bar: drawn darker
#: groups of fewer samples are drawn hatched and grey: their intervals are wide and their CIDEr-D's
#: document frequencies come from a handful of references
SMALL_GROUP = 30
GROUP_COLOR, SMALL_COLOR = "#7fa3d9", "#c8c8c8"
PERCENT_TOP = 100.0
AXIS_LABELS = {"CIDEr": "CIDEr-D (x100)", "ROUGE_L": "ROUGE-L (%)", "METEOR": "METEOR (%)", "SPICE": "SPICE (%)"}


def axis_top(metric: str, values) -> float:
    """The panel's fixed upper limit: 100, or for CIDEr-D the largest value or interval end above it."""
    finite = [v for v in values if isinstance(v, (int, float)) and math.isfinite(v)]
    return max(PERCENT_TOP, *finite) * 1.05 if metric == "CIDEr" and finite else PERCENT_TOP


def small_caveat(small: list[str], threshold: int = SMALL_GROUP) -> str:
    """The caption line for the hatched groups (empty when there is none)."""
    if not small:
        return ""
    return (f"hatched grey: fewer than {threshold} samples ({', '.join(small)}): wide intervals, and CIDEr-D on a "
            "subset takes that subset's document frequencies (a one-sample group scores 0 even for a perfect caption)")


def _panel(ax, metric: str, names: list[str], groups: Mapping, small: set[str]) -> None:
    values = [float(groups[n]["scores"].get(metric, math.nan)) for n in names]
    intervals = [groups[n].get("ci95", {}).get(metric) for n in names]
    # a percentile interval need not hold the corpus value (BLEU's brevity penalty is not linear): no negative bar
    low = [max(0.0, v - i[0]) if i else 0.0 for v, i in zip(values, intervals)]
    high = [max(0.0, i[1] - v) if i else 0.0 for v, i in zip(values, intervals)]
    colors = [RUN_COLOR if n in TOTALS else SMALL_COLOR if n in small else GROUP_COLOR for n in names]
    positions = list(range(len(names)))
    bars = ax.barh(positions, values, color=colors, height=0.7, xerr=[low, high],
                   error_kw={"elinewidth": 0.8, "capsize": 2, "ecolor": "#333333"})
    for bar, name in zip(bars, names):
        if name in small:
            bar.set_hatch("///")
            bar.set_edgecolor("#888888")
    ends = values + [i[1] for i in intervals if i]
    ax.set_xlim(0, axis_top(metric, ends))
    ax.bar_label(bars, fmt="%.2f", fontsize=6.5, padding=2)
    ax.set_title(metric, fontsize=10)
    ax.set_xlabel(AXIS_LABELS.get(metric, f"{metric} (%)"), fontsize=7)
    ax.set_yticks(positions, [f"{n} (n={groups[n].get('samples', '?')})" for n in names], fontsize=8)
    ax.invert_yaxis()  # "all" on top, change types in the given order below
    ax.tick_params(axis="x", labelsize=7)
    ax.grid(axis="x", linewidth=0.3, alpha=0.6)
    ax.set_axisbelow(True)


def caption_figure(stem: Path, groups: Mapping[str, Mapping], *, provenance: Mapping | None,
                   title: str | None = None, num_samples: int | None = None,
                   small_group: int = SMALL_GROUP) -> list[Path]:
    """One panel per metric on its fixed axis, one horizontal bar per subset (``all``, change types) with its
    interval; groups under ``small_group`` samples hatched, with the caveat in the caption."""
    names = list(groups)
    metrics = list(dict.fromkeys(m for values in groups.values() for m in values["scores"]))
    if not names or not metrics:
        raise ValueError("no caption scores to draw")
    small = [n for n in names if n not in TOTALS and groups[n].get("samples", 0) < small_group]
    columns = min(len(metrics), 4)
    rows_of_panels = math.ceil(len(metrics) / columns)
    panel_height = 0.8 + 0.24 * len(names)
    fig = figure(3.2 * columns, panel_height * rows_of_panels + 1.2)
    axes = fig.subplots(rows_of_panels, columns, squeeze=False, sharey=True)
    for k, ax in enumerate(axes.flat):
        if k >= len(metrics):
            ax.set_visible(False)
            continue
        _panel(ax, metrics[k], names, groups, set(small))
    lines = [describe_provenance(provenance)]
    if num_samples is not None:
        lines.insert(0, f"{num_samples:,} samples; bars: 95% bootstrap intervals")
    caveat = small_caveat(small, small_group)
    header(fig, printable(title or "Difference captioning"), [" · ".join(lines)], provenance)
    if caveat:
        fig.text(0.01, -0.01, printable(caveat), fontsize=7, color=NOTE_COLOR, ha="left", va="top", wrap=True)
    return save(fig, stem)
