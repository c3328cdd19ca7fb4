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


@pytest.mark.parametrize("n_types", [1, 5, 12, 40])
def test_caption_figure_is_small_multiples_for_any_number_of_change_types(tmp_path, n_types):
    types = [*OMNIDIFF_TYPES, *(f"type {i}" for i in range(40))][:n_types]
    groups = {"all": {m: (4.2 if m == "CIDEr" else 0.42) for m in METRICS}}
    groups.update({t: {m: (1.0 + i / 10 if m == "CIDEr" else 0.1 + i / 100) for m in METRICS}
                   for i, t in enumerate(types)})
    png, svg = figures.caption_figure(tmp_path / "cap", groups, provenance=SYNTHETIC, title="omnidiff: model",
                                      num_samples=999)
    text = svg.read_text()
    # One titled panel a metric: one axes each, titled with the metric's name (the SVG keeps text as text).
    assert len(re.findall(r'<g id="axes_\d+"', text)) == len(METRICS) and all(f">{m}<" in text for m in METRICS)
    assert all(t in text for t in types) and "4.20" in text and "999 samples" in text and SYNTHETIC_NOTE in text
    width, height = _svg_size(svg)
    # Four panels a row at most: the figure grows downwards with the change types, never into a strip.
    assert width < 1100 and height < 250 + 2 * 18 * (n_types + 1) and width / height < 4.5


@pytest.mark.parametrize("module", [figures, shared])
def test_doctests(module):
    failures, attempted = doctest.testmod(module)
    assert attempted and not failures
