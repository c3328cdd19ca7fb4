"""Figures: VisMin beside published rows with chance, sample count and provenance; captioning as small
multiples. The SVG keeps text as text, so what a reader sees is checked in it."""

from __future__ import annotations

import doctest
import re

import pytest

from diffbench.report import figures
from diffbench.data.provenance import SYNTHETIC_NOTE

CELLS = {"object": {"text": 70.5, "image": 60.25, "group": 50.0},
         "attribute": {"text": 80.0, "image": 75.0, "group": 66.67},
         "relation": {"text": 10.0, "image": 5.0, "group": 0.0},
         "counting": {"text": 30.0, "image": 20.0, "group": 12.5}}
SYNTHETIC = {"dataset": "vismin", "config": "bench", "source": "synthetic", "synthetic": True, "n": 160, "seed": 3}
HUB = {"dataset": "vismin", "config": "bench", "source": "hub", "synthetic": False,
       "repo_id": "mair-lab/vismin-bench", "revision": "0123456789abcdef"}
OMNIDIFF_TYPES = ("viewpoint", "illumination", "addition", "disappearance", "removal", "substitution", "size",
                  "color", "orientation", "pose", "text", "counting")
METRICS = ("Bleu_1", "Bleu_2", "Bleu_3", "Bleu_4", "METEOR", "ROUGE_L", "CIDEr")


def _svg_size(path):
    head = path.read_text()[:2000]
    return tuple(float(re.search(rf'{k}="([\d.]+)pt"', head).group(1)) for k in ("width", "height"))


def test_vismin_figure_shows_run_published_chance_count_and_provenance(tmp_path):
    png, svg = figures.vismin_figure(tmp_path / "fig", CELLS, label="my model", provenance=HUB, num_samples=2084,
                                     published=["CLIP (ViT-B/32)", "Idefics2"])
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000
    text = svg.read_text()
    for needle in ("VisMin: my model", "this run: 2,084 samples", "data: the Hub repo mair-lab/vismin-bench at revision 0123456789abcdef",
                   "CLIP (ViT-B/32) (published)", "Idefics2 (zero-shot) (published)",
                   "Idefics2 (fine-tuned) (published)", "text score (chance 25.00)", "group score (chance 16.67)", "AVG", "70.5"):
        assert needle in text, needle
    assert SYNTHETIC_NOTE not in text  # real data: no warning
    assert not list(tmp_path.glob(".*.tmp"))


def test_vismin_figure_of_a_synthetic_run_says_so(tmp_path):
    _, svg = figures.vismin_figure(tmp_path / "fig", CELLS, label="tiny", provenance=SYNTHETIC, num_samples=160)
    text = svg.read_text()
    assert SYNTHETIC_NOTE in text and "data: the synthetic sample (n=160, seed=3)" in text


def test_vismin_figure_rejects_unknown_published_rows_and_empty_cells(tmp_path):
    with pytest.raises(ValueError, match="no published VisMin result for 'CLIP-XL'; known: Random Chance"):
        figures.vismin_figure(tmp_path / "fig", CELLS, label="x", provenance=HUB, num_samples=1, published=["CLIP-XL"])
    with pytest.raises(ValueError, match="no VisMin category scores"):
        figures.vismin_figure(tmp_path / "fig", {}, label="x", provenance=HUB, num_samples=1)
    assert not list(tmp_path.iterdir())  # nothing half-written


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


def test_doctests():
    failures, attempted = doctest.testmod(figures)
    assert attempted and not failures
