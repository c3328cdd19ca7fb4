"""The caption metrics' figure: small multiples, one panel a metric, one horizontal bar a subset.

``groups``: ``{subset: {metric: value}}``, the total first then one entry a change type (what
:func:`diffbench.captions.report.figure_groups` returns). Each panel on its own scale (CIDEr's 0..10 does
not flatten BLEU's 0..1); subsets as horizontal bars so that any number of change types stays readable;
the total's bar is drawn darker. PNG (200 dpi) and SVG (text kept as text).

    >>> import tempfile
    >>> groups = {"all": {"Bleu_4": 0.31, "CIDEr": 1.9}, "color": {"Bleu_4": 0.4, "CIDEr": 2.5}}
    >>> [p.suffix for p in caption_figure(Path(tempfile.mkdtemp()) / "results", groups, provenance={})]
    ['.png', '.svg']
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path

from diffbench.report.figures import RUN_COLOR, describe_provenance, figure, header, save
from diffbench.text import printable

TOTALS = ("all", "total")  # the total's bar: drawn darker


def caption_figure(stem: Path, groups: Mapping[str, Mapping[str, float]], *, provenance: Mapping | None,
                   title: str | None = None, num_samples: int | None = None) -> list[Path]:
    """One panel per metric (each on its own scale), one horizontal bar per subset (``all``, change types)."""
    names = list(groups)
    metrics = list(dict.fromkeys(m for values in groups.values() for m in values))
    if not names or not metrics:
        raise ValueError("no caption scores to draw")
    columns = min(len(metrics), 4)
    rows_of_panels = math.ceil(len(metrics) / columns)
    panel_height = 0.6 + 0.24 * len(names)
    fig = figure(3.2 * columns, panel_height * rows_of_panels + 1.0)
    axes = fig.subplots(rows_of_panels, columns, squeeze=False, sharey=True)
    positions = list(range(len(names)))
    for k, ax in enumerate(axes.flat):
        if k >= len(metrics):
            ax.set_visible(False)
            continue
        metric = metrics[k]
        values = [float(groups[n].get(metric, math.nan)) for n in names]
        colors = [RUN_COLOR if n in TOTALS else "#7fa3d9" for n in names]
        bars = ax.barh(positions, values, color=colors, height=0.7)
        finite = [v for v in values if math.isfinite(v)]
        top = max(finite, default=0.0)
        ax.set_xlim(0, (top * 1.25) or 1.0)
        ax.bar_label(bars, fmt="%.2f", fontsize=6.5, padding=2)
        ax.set_title(metric, fontsize=10)
        ax.set_yticks(positions, names, fontsize=8)
        ax.invert_yaxis()  # "all" on top, change types in the given order below
        ax.tick_params(axis="x", labelsize=7)
        ax.grid(axis="x", linewidth=0.3, alpha=0.6)
        ax.set_axisbelow(True)
    lines = [describe_provenance(provenance)]
    if num_samples is not None:
        lines.insert(0, f"{num_samples:,} samples")
    header(fig, printable(title or "Difference captioning"), [" · ".join(lines)], provenance)
    return save(fig, stem)
