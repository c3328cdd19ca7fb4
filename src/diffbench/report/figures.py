"""Figures a paper can use: the VisMin table as bars beside published rows, and caption metrics as small
multiples. Each function writes ``<stem>.png`` (200 dpi) and ``<stem>.svg`` (text kept as text) and
returns those two paths.

Stable signatures (the harness, the CLI and the Space call these):

- ``vismin_figure(stem, per_category, *, provenance, num_samples, label="this run", published=DEFAULT_PUBLISHED)``
  ``per_category``: ``{category: {"text": %, "image": %, "group": %}}`` (what
  ``diffbench.vismin.tasks.per_category`` returns). One panel per score (text, image, group); in
  each, one group of bars per category and AVG: this run first, then each published row named in
  ``published`` (model names of ``vismin_submission.published_results()``; a name in both tables gives
  both rows). Chance (the published *Random Chance* row) is a dashed line; the sample count and the
  data's provenance are printed under the title, and :data:`diffbench.data.provenance.SYNTHETIC_NOTE` in red
  when the data is the synthetic sample.
- ``caption_figure(stem, groups, *, provenance, title=None, num_samples=None)``
  ``groups``: ``{subset: {metric: value}}``, ``"all"`` first then one entry per change type (what
  ``diffbench.captions.tasks.change_type_scores`` returns). One panel per metric, each on its own
  scale (CIDEr's 0..10 does not flatten BLEU's 0..1), subsets as horizontal bars so that any number of
  change types stays readable; the ``all`` bar is drawn darker.

    >>> import tempfile
    >>> stem = Path(tempfile.mkdtemp()) / "results"
    >>> cells = {c: {"text": 50.0, "image": 40.0, "group": 30.0} for c in ("object", "attribute")}
    >>> paths = vismin_figure(stem, cells, label="my model", num_samples=80,
    ...                       provenance={"source": "synthetic", "synthetic": True, "n": 80, "seed": 0})
    >>> [p.name for p in paths]
    ['results.png', 'results.svg']
    >>> "synthetic sample: not comparable" in paths[1].read_text()
    True
    >>> groups = {"all": {"Bleu_4": 0.31, "CIDEr": 1.9}, "color": {"Bleu_4": 0.4, "CIDEr": 2.5}}
    >>> [p.suffix for p in caption_figure(stem.with_name("captions"), groups, provenance={})]
    ['.png', '.svg']

Figures are drawn on a ``matplotlib.figure.Figure`` (no pyplot, no global state, no display needed),
so they are safe in the Space's threads.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

from diffbench.data.provenance import SYNTHETIC_NOTE, describe, is_synthetic
from diffbench.text import printable
from diffbench.vismin.schema import CATEGORIES, PUBLISHED_SAMPLES, SCORE_NAMES

#: published rows drawn beside a run unless the caller picks others
DEFAULT_PUBLISHED = ("CLIP (ViT-B/32)", "GPT4-o", "MTurk Human")
CHANCE_ROW = "Random Chance"
DPI = 200
RUN_COLOR = "#1f4e9c"
PUBLISHED_COLORS = ("#9aa5b1", "#e3a857", "#6fb07f", "#c77dba", "#7fb6d6", "#d98b8b")
NOTE_COLOR = "#b00020"


def describe_provenance(provenance: Mapping | None) -> str:
    """One line saying where the data came from (:func:`diffbench.data.provenance.describe`).

    >>> describe_provenance({"source": "synthetic", "synthetic": True, "n": 160, "seed": 0})
    'data: the synthetic sample (n=160, seed=0)'
    >>> describe_provenance(None)
    'data: an unknown source (a build that recorded none)'
    """
    return f"data: {describe(dict(provenance or {}))}"


def _save(fig, stem: Path) -> list[Path]:
    import matplotlib

    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = [stem.with_name(stem.name + ".png"), stem.with_name(stem.name + ".svg")]
    with matplotlib.rc_context({"svg.fonttype": "none"}):  # SVG text stays text: editable, searchable
        for path in paths:
            tmp = path.with_name(f".{path.name}.tmp")
            fig.savefig(tmp, dpi=DPI, format=path.suffix[1:], bbox_inches="tight")
            tmp.replace(path)  # never half a figure under the final name
    return paths


def _figure(width: float, height: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def _header(fig, title: str, lines: list[str], provenance: Mapping | None) -> None:
    """Title, then the sample/provenance line, then the synthetic warning (in red) when it applies."""
    text = "\n".join(lines)
    fig.suptitle(f"{title}\n{text}", fontsize=10)
    if is_synthetic(dict(provenance or {})):
        # supxlabel is laid out by the constrained layout engine: never cropped, never over the legend
        fig.supxlabel(SYNTHETIC_NOTE, color=NOTE_COLOR, fontsize=10, fontweight="bold")


def _published_rows(names: Sequence[str]):
    from diffbench.vismin.submission import published_results

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
    """The text / image / group scores of each category of VisMin ``results`` (what the metric and the
    submission scorer return), as :func:`vismin_figure` takes them."""
    cells = results["scores"].get("per_category") or {}
    return {c: {m: cells[c][f"{m}_score"] for m in SCORE_NAMES} for c in CATEGORIES if c in cells}


def vismin_figure(stem: Path, per_category: Mapping[str, Mapping[str, float]], *, provenance: Mapping | None,
                  num_samples: int, label: str = "this run",
                  published: Sequence[str] = DEFAULT_PUBLISHED) -> list[Path]:
    """Text / image / group per category (and their mean, AVG) of a run beside published rows."""
    categories = [c for c in CATEGORIES if c in per_category]
    if not categories:
        raise ValueError("no VisMin category scores to draw")
    rows, chance = _published_rows(list(published))
    label = printable(label)  # the user's text: no control character drawn (or missing from the font)
    series = [(label, RUN_COLOR, {c: dict(per_category[c]) for c in categories})]
    for n, (name, row) in enumerate(rows):
        cells = {c: {s: float(row[f"{c}_{s}"]) for s in SCORE_NAMES} for c in categories}
        series.append((f"{name} (published)", PUBLISHED_COLORS[n % len(PUBLISHED_COLORS)], cells))
    groups = [*categories, "AVG"]
    width = 0.8 / len(series)
    fig = _figure(max(9.0, 2.4 + 0.55 * len(groups) * len(series)), 4.2)
    axes = fig.subplots(1, len(SCORE_NAMES), sharey=True)
    for ax, score in zip(axes, SCORE_NAMES):
        for j, (name, color, cells) in enumerate(series):
            values = [float(cells[c][score]) for c in categories] + [_avg(cells, score)]
            xs = [i + (j - (len(series) - 1) / 2) * width for i in range(len(groups))]
            bars = ax.bar(xs, values, width, color=color, label=name, edgecolor="white", linewidth=0.4)
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
    fig.legend(handles, names, loc="outside right upper", fontsize=8, frameon=False)
    _header(fig, f"VisMin: {label}",
            [f"this run: {num_samples:,} samples · published rows: the full benchmark ({PUBLISHED_SAMPLES:,} samples)",
             describe_provenance(provenance)], provenance)
    return _save(fig, stem)


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
    fig = _figure(3.2 * columns, panel_height * rows_of_panels + 1.0)
    axes = fig.subplots(rows_of_panels, columns, squeeze=False, sharey=True)
    positions = list(range(len(names)))
    for k, ax in enumerate(axes.flat):
        if k >= len(metrics):
            ax.set_visible(False)
            continue
        metric = metrics[k]
        values = [float(groups[n].get(metric, math.nan)) for n in names]
        colors = [RUN_COLOR if n == "all" else "#7fa3d9" for n in names]
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
    _header(fig, printable(title or "Difference captioning"), [" · ".join(lines)], provenance)
    return _save(fig, stem)
