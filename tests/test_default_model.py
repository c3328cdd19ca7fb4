"""The embedded default model: small, complete, loads like a Hub checkpoint and scores above chance."""

from __future__ import annotations

import doctest
import json

from diffbench import default_model
from diffbench.default_model import default_model_path

CHANCE = {"text": 25.0, "image": 25.0, "group": 100 / 6}


def test_the_folder_is_complete_and_small():
    path = default_model_path()
    names = {p.name for p in path.iterdir()}
    assert {"model.safetensors", "config.json", "tokenizer.json", "processor_config.json", "README.md"} <= names or \
        {"model.safetensors", "config.json", "tokenizer.json", "preprocessor_config.json", "README.md"} <= names
    assert sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) < 10_000_000


def test_the_model_card_records_provenance():
    card = (default_model_path() / "README.md").read_text()
    for fact in ("diffbench train --model tiny-clip", "--seed 0", "bench/train_default_model.py", "--n 2000",
                 "| counting |", "hard negatives"):
        assert fact in card, fact


def test_loads_with_auto_classes_and_scores_the_sample_bench_above_chance(vismin_built):
    from transformers import AutoModel, AutoProcessor, CLIPModel

    from diffbench.training import evaluate_on

    model = AutoModel.from_pretrained(default_model_path())
    processor = AutoProcessor.from_pretrained(default_model_path())
    assert isinstance(model, CLIPModel)
    scores = evaluate_on(model, processor, "vismin:bench")
    assert scores["all"]["n"] == 40
    for name, chance in CHANCE.items():
        assert scores["all"][name] > chance + 15, (name, scores["all"])


def test_recorded_results_beat_chance_on_the_large_synthetic_bench():
    results = json.loads((default_model_path() / "training_results.json").read_text())
    scores = results["hard_negatives"]["bench_96x72"]
    for name, chance in CHANCE.items():
        assert scores["avg"][name] > chance + 15


def test_module_doctest():
    failures, attempted = doctest.testmod(default_model)
    assert attempted > 0 and failures == 0
