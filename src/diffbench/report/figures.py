"""What every benchmark's figure shares: the canvas, the header (sample count, provenance, the synthetic
warning) and saving as PNG (200 dpi) and SVG (text kept as text), each file whole or not at all.

VisMin's figure is :mod:`diffbench.vismin.figure`, the caption metrics' :mod:`diffbench.captions.figure`.
Figures are drawn on a ``matplotlib.figure.Figure`` (no pyplot, no global state, no display needed), so
they are safe in the Space's threads.

    >>> import tempfile
    >>> fig = figure(3, 2)
    >>> header(fig, "a title", ["100 samples"], {"source": "synthetic", "synthetic": True, "n": 100, "seed": 0})
    >>> [p.name for p in save(fig, Path(tempfile.mkdtemp()) / "results")]
    ['results.png', 'results.svg']
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from pathlib import Path

from diffbench.data.provenance import SYNTHETIC_NOTE, describe, is_synthetic
from diffbench.files import write_atomically

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


def save(fig, stem: Path) -> list[Path]:
    """``<stem>.png`` and ``<stem>.svg``, each written whole (:func:`diffbench.files.write_atomically`)."""
    import matplotlib  # deferred: the CLI's start-up path never draws

    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = [stem.with_name(stem.name + ".png"), stem.with_name(stem.name + ".svg")]
    with matplotlib.rc_context({"svg.fonttype": "none"}):  # SVG text stays text: editable, searchable
        for path in paths:
            buffer = io.BytesIO()
            fig.savefig(buffer, dpi=DPI, format=path.suffix[1:], bbox_inches="tight")
            write_atomically(path, buffer.getvalue())
    return paths


def figure(width: float, height: float):
    """A blank figure, laid out by matplotlib's constrained layout (never cropped)."""
    from matplotlib.figure import Figure  # deferred: see save

    return Figure(figsize=(width, height), layout="constrained")


def header(fig, title: str, lines: list[str], provenance: Mapping | None) -> None:
    """Title, then the sample/provenance line, then the synthetic warning (in red) when it applies."""
    text = "\n".join(lines)
    fig.suptitle(f"{title}\n{text}", fontsize=10)
    if is_synthetic(dict(provenance or {})):
        # supxlabel is laid out by the constrained layout engine: never cropped, never over the legend
        fig.supxlabel(SYNTHETIC_NOTE, color=NOTE_COLOR, fontsize=10, fontweight="bold")
