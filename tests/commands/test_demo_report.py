"""`diffbench demo`, step 4 and its output: the caption report is the one `score captions` gives, and the
progress bars of datasets and transformers stay out of the demo's lines (in-process; the whole demo
runs in tests/commands/test_demo.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from diffbench.data import building, provenance
from diffbench.captions.clevr_change import CLEVR_CHANGE_GROUPS
from diffbench.captions.report import format_table
from diffbench.captions.scoring import score_predictions
from diffbench.commands import demo


@pytest.fixture
def private_cache(tmp_path, monkeypatch) -> Path:
    root = tmp_path / "cache"
    monkeypatch.setattr(building, "cache_root", lambda: root)
    return root


@pytest.mark.slow
def test_human_agreement_is_the_score_captions_report_on_held_out_references(private_cache, capfd):
    with demo.quiet_progress_bars():
        building.build_configs("clevr_change", ["default"], "sample", seed=0, image_size=(32, 24))
    assert "Generating" not in capfd.readouterr().err
    built = building.load_built("clevr_change", None, "test")
    results = demo.human_agreement("clevr_change", "test")

    # The official CLEVR-Change parts, in their order, with the total on top.
    assert results["protocol"]["evaluation"] == "clevr_change_official"
    assert list(results["groups"]) == [g for g in CLEVR_CHANGE_GROUPS if g in results["groups"]]
    assert {"semantic_change", "distractor"} <= set(results["groups"])
    table = format_table(results).splitlines()
    assert table[0] == f"*{provenance.SYNTHETIC_NOTE}*"
    assert table[4].startswith("| total | ") and table[5].startswith("| semantic\\_change | ")

    # The first reference is the prediction and is not among its own references: scoring it against
    # every reference (itself included) agrees more.
    rows = [r for r in built if len(r["captions"]) > 1]
    assert results["samples"] == len(rows)
    with_itself = score_predictions({r["id"]: r["captions"][0] for r in rows},
                                    built.filter(lambda r: len(r["captions"]) > 1, keep_in_memory=True),
                                    metrics=["bleu"])
    assert with_itself["scores"]["Bleu_1"] == pytest.approx(100.0) and results["scores"]["Bleu_1"] < 99
    assert provenance.is_synthetic(results["provenance"])
    # Nothing was written into the build folder (it stays as datasets' fallback dates it).
    assert not list(building.current_build("clevr_change", "default").glob("cache-*.arrow"))


# Builds a sample and loads the default model, with the demo's silencing or without; the bars go to stderr.
_BARS_SCRIPT = """
import contextlib, sys
from transformers import AutoModel
from diffbench.data import building
from diffbench.commands import demo
from diffbench.models.embedded import default_model_path
quiet = sys.argv[1] == "quiet"
with demo.quiet_progress_bars() if quiet else contextlib.nullcontext():
    building.build_configs("vismin", ["bench"], "sample", n=4, seed=0, image_size=(32, 32))
    AutoModel.from_pretrained(str(default_model_path()))
import datasets
from transformers.utils import logging
print(datasets.is_progress_bar_enabled(), logging.is_progress_bar_enabled())
"""


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["quiet", "plain"])
def test_the_demo_silences_the_generating_and_loading_bars_then_restores_them(mode, tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "HF_DATASETS_DISABLE_PROGRESS_BARS"}
    env.update(HF_HOME=str(tmp_path / "hf"), HF_HUB_OFFLINE="1")
    done = subprocess.run([sys.executable, "-c", _BARS_SCRIPT, mode], env=env, cwd=tmp_path, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    bars = [word for word in ("Generating test split", "Loading weights") if word in done.stderr]
    assert bars == ([] if mode == "quiet" else ["Generating test split", "Loading weights"]), done.stderr[-2000:]
    assert done.stdout.split() == ["True", "True"]  # restored after the demo
