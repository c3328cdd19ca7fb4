"""The caption metrics' figure: small multiples for any number of change types. The SVG keeps text as
text, so what a reader sees is checked in it."""

from __future__ import annotations

import doctest
import re

import pytest

from diffbench.captions import figure as figures
from diffbench.data.provenance import SYNTHETIC_NOTE
from diffbench.report import figures as shared

SYNTHETIC = {"dataset": "omnidiff", "config": "default", "source": "synthetic", "synthetic": True, "n": 160, "seed": 3}
OMNIDIFF_TYPES = ("viewpoint", "illumination", "addition", "disappearance", "removal", "substitution", "size",
                  "color", "orientation", "pose", "text", "counting")
METRICS = ("Bleu_1", "Bleu_2", "Bleu_3", "Bleu_4", "METEOR", "ROUGE_L", "CIDEr")


def _svg_size(path):
    head = path.read_text()[:2000]
    return tuple(float(re.search(rf'{k}="([\d.]+)pt"', head).group(1)) for k in ("width", "height"))


def _group(samples, scores, half=2.0):
    return {"samples": samples, "scores": scores, "ci95": {m: [max(0.0, v - half), v + half] for m, v in scores.items()}}


@pytest.mark.parametrize("n_types", [1, 5, 12, 40])
def test_caption_figure_is_small_multiples_for_any_number_of_change_types(tmp_path, n_types):
    types = [*OMNIDIFF_TYPES, *(f"type {i}" for i in range(40))][:n_types]
    groups = {"all": _group(999, {m: (142.0 if m == "CIDEr" else 42.0) for m in METRICS})}
    groups.update({t: _group(50, {m: (100.0 + 10 * i if m == "CIDEr" else 10.0 + i) for m in METRICS})
                   for i, t in enumerate(types)})
    png, svg = figures.caption_figure(tmp_path / "cap", groups, provenance=SYNTHETIC, title="omnidiff: model",
                                      num_samples=999)
    text = svg.read_text()
    # One titled panel a metric: one axes each, titled with the metric's name (the SVG keeps text as text).
    assert len(re.findall(r'<g id="axes_\d+"', text)) == len(METRICS) and all(f">{m}<" in text for m in METRICS)
    assert all(t in text for t in types) and "142.00" in text and "999 samples" in text and SYNTHETIC_NOTE in text
    width, height = _svg_size(svg)
    # Four panels a row at most: the figure grows downwards with the change types, never into a strip.
    assert width < 1100 and height < 280 + 2 * 18 * (n_types + 1) and width / height < 4.5


def test_axes_are_fixed_and_small_groups_are_flagged(tmp_path):
    """Near-zero BLEU draws on 0..100 (no axis rescaled to 1e-13), CIDEr-D on 0..max(100, data); a group under
    the threshold is hatched grey and the caption says why its CIDEr-D misleads."""
    from matplotlib.figure import Figure

    scores = {"Bleu_4": 3e-13, "ROUGE_L": 12.0, "CIDEr": 250.0}
    groups = {"all": _group(200, scores), "color": _group(120, {**scores, "CIDEr": 80.0}),
              "tiny": _group(1, {**scores, "CIDEr": 0.0}, half=0.0)}
    _, svg = figures.caption_figure(tmp_path / "cap", groups, provenance={}, num_samples=200)
    text = svg.read_text()
    assert "1e" not in re.sub(r"<[^>]+>", "", text).replace("1e-13", "")  # no offset or exponent on any axis
    assert f"fewer than {figures.SMALL_GROUP} samples (tiny)" in text and "document frequencies" in text
    assert "tiny (n=1)" in text and "color (n=120)" in text
    assert figures.axis_top("Bleu_4", [3e-13]) == 100 and figures.axis_top("CIDEr", [250.0]) == 250.0 * 1.05
    assert figures.axis_top("CIDEr", [0.0, 40.0]) == 100 * 1.05
    fig = Figure()
    ax = fig.subplots()
    figures._panel(ax, "Bleu_4", list(groups), groups, {"tiny"})
    assert ax.get_xlim() == (0.0, 100.0)
    hatches = [bar.get_hatch() for bar in ax.patches]
    assert hatches == [None, None, "///"]
    big = {"all": _group(200, scores), "color": _group(120, scores)}
    assert "fewer than" not in figures.caption_figure(tmp_path / "big", big, provenance={})[1].read_text()


@pytest.mark.parametrize("module", [figures, shared])
def test_doctests(module):
    failures, attempted = doctest.testmod(module)
    assert attempted and not failures
