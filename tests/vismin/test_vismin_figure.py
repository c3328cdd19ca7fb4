"""The VisMin figure: a result beside published rows with chance, sample count and provenance. The SVG
keeps text as text, so what a reader sees is checked in it."""

from __future__ import annotations

import doctest

import pytest

from diffbench.data.provenance import SYNTHETIC_NOTE
from diffbench.vismin import figure as figures

CELLS = {"object": {"text": 70.5, "image": 60.25, "group": 50.0},
         "attribute": {"text": 80.0, "image": 75.0, "group": 66.67},
         "relation": {"text": 10.0, "image": 5.0, "group": 0.0},
         "counting": {"text": 30.0, "image": 20.0, "group": 12.5}}
SYNTHETIC = {"dataset": "vismin", "config": "bench", "source": "synthetic", "synthetic": True, "n": 160, "seed": 3}
HUB = {"dataset": "vismin", "config": "bench", "source": "hub", "synthetic": False,
       "repo_id": "mair-lab/vismin-bench", "revision": "0123456789abcdef"}


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


def test_doctests():
    failures, attempted = doctest.testmod(figures)
    assert attempted and not failures
