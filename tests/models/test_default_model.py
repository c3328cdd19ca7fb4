"""The embedded default model: complete, small, made by the recipe its card names, and above chance
on synthetic scenes it has never seen (scored now, not read from a committed file)."""

from __future__ import annotations

import doctest
import importlib.util
import json

import pytest

from conftest import REPO_ROOT
from diffbench.data.synth.vismin import generate_pairs
from diffbench.models import embedded
from diffbench.models.embedded import default_model_path

CHANCE = {"text_score": 25.0, "image_score": 25.0, "group_score": 100 / 6}


def _recipe() -> dict:
    """RECIPE of bench/train_default_model.py, the script the card says made the model."""
    path = REPO_ROOT / "bench" / "train_default_model.py"
    spec = importlib.util.spec_from_file_location("train_default_model", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.RECIPE


def test_the_folder_is_complete_and_small():
    path = default_model_path()
    names = {p.name for p in path.iterdir()}
    assert {"model.safetensors", "config.json", "tokenizer.json", "README.md"} <= names
    assert names & {"processor_config.json", "preprocessor_config.json"}
    assert sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) < 10_000_000


def test_the_weights_have_the_shape_of_the_recipe_that_the_card_names():
    recipe = _recipe()
    config = json.loads((default_model_path() / "config.json").read_text())
    assert config["vision_config"]["image_size"] == recipe["tiny_image_size"]
    for tower in ("vision_config", "text_config"):
        assert config[tower]["hidden_size"] == recipe["tiny_hidden_size"]
        assert config[tower]["num_hidden_layers"] == recipe["tiny_layers"]


def test_the_tokenizer_knows_every_word_of_the_synthetic_captions():
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(default_model_path())
    texts = [t for *_, t0, t1 in generate_pairs(n=400, seed=12345) for t in (t0, t1)]
    unknown = [t for t in texts if tokenizer.unk_token_id in tokenizer(t)["input_ids"]]
    assert unknown == []


@pytest.mark.parametrize("image_size", [(96, 72), (320, 240)], ids=["training-size", "demo-size"])
def test_scores_above_chance_on_a_held_out_synthetic_bench(image_size):
    from transformers import AutoModel, AutoProcessor, CLIPModel

    # torch and transformers: only the tests that run the model import them
    from diffbench.training.evaluation import evaluate_on
    from diffbench.training.settings import HELD_OUT

    model = AutoModel.from_pretrained(default_model_path())
    processor = AutoProcessor.from_pretrained(default_model_path())
    assert isinstance(model, CLIPModel)
    results = evaluate_on(model, processor, HELD_OUT, n=120, image_size=image_size)
    assert results["num_samples"] == 120 and results["provenance"]["held_out"] is True
    for name, chance in CHANCE.items():
        assert results[name] > chance + 15, (name, results[name])
    # the hard-negative recipe's signature: relation (same words, swapped places) far above chance
    assert results["per_category"]["relation"]["group_score"] > 50


def test_module_doctest():
    failures, attempted = doctest.testmod(embedded)
    assert attempted > 0 and failures == 0
