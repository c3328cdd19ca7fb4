"""``diffbench train``: the hard-negative recipe trains, saves a loadable model, and the ablation differs only in batching."""

from __future__ import annotations

import json

import numpy as np
import pytest

from diffbench import training


def test_hard_negative_batches_hold_both_halves_of_each_pair():
    sampler = training.PairBatchSampler(num_pairs=50, pairs_per_batch=8, hard_negatives=True, seed=3)
    batches = list(sampler)
    assert sorted(i for b in batches for i in b) == list(range(100))
    for batch in batches:
        assert {i // 2 for i in batch if i % 2 == 0} == {i // 2 for i in batch if i % 2 == 1}
    assert batches != list(sampler)  # a new order each epoch


def test_no_hard_negatives_keeps_pairs_apart_with_the_same_items_and_batch_sizes():
    hard = list(training.PairBatchSampler(48, 8, hard_negatives=True, seed=3))
    apart = list(training.PairBatchSampler(48, 8, hard_negatives=False, seed=3))
    assert sorted(i for b in apart for i in b) == list(range(96))
    assert [len(b) for b in apart] == [len(b) for b in hard] == [16] * 6
    for batch in apart:
        assert not any(i % 2 == 0 and i + 1 in batch for i in batch)


def test_duplicate_captions_are_positives_not_negatives():
    import torch

    # The model matches caption 0 with image 1 and caption 1 with image 0: right if they say the same.
    logits = torch.tensor([[0.0, 5.0, 0.0], [5.0, 0.0, 0.0], [0.0, 0.0, 5.0]])
    shared = training.contrastive_loss(logits, ["two red stars", "two red stars", "one red star"])
    apart = training.contrastive_loss(logits, ["two red stars", "three red stars", "one red star"])
    assert float(shared) < float(apart)


def test_vismin_scores_follow_the_official_rule():
    # right; both wrong; text right but image wrong; ties (strict >) make both wrong
    sims = np.array([[1, 0, 0, 1], [0, 1, 1, 0], [0.5, 0.6, 0.1, 0.7], [1, 0.5, 1, 1]], dtype=float)
    scores = training.vismin_scores(sims, ["object"] * 4)
    assert scores["object"] == {"text": 50.0, "image": 25.0, "group": 25.0, "n": 4}
    assert scores["avg"] == {"text": 50.0, "image": 25.0, "group": 25.0}


@pytest.fixture(scope="module")
def tiny_clip(vismin_built, tmp_path_factory):
    from diffbench import tiny_models
    from diffbench.building import load_built

    pairs = load_built("vismin", "pairs", "train")
    words = tiny_models.words_of(list(pairs["text_0"]) + list(pairs["text_1"]))
    return tiny_models.build_tiny_clip(tmp_path_factory.mktemp("tiny") / "clip", words=words, seed=0,
                                       hidden_size=32, layers=2, projection_dim=32, image_size=32)


def _pairs_loss(path) -> float:
    """The recipe's loss over every training pair at once (one batch of 80 items)."""
    import torch
    from transformers import AutoModel, AutoProcessor

    from diffbench.building import load_built

    model, processor = AutoModel.from_pretrained(path).eval(), AutoProcessor.from_pretrained(path)
    pairs = load_built("vismin", "pairs", "train")
    collate = training.PairCollate(pairs, processor, {"padding": True})
    batch = collate(list(range(2 * len(pairs))))
    texts = batch.pop("texts")
    with torch.inference_mode():
        return float(training.contrastive_loss(model(**batch).logits_per_text, texts))


@pytest.mark.parametrize("hard_negatives", [True, False], ids=["hard-negatives", "no-hard-negatives"])
def test_a_few_steps_lower_the_loss_and_save_a_loadable_model(tiny_clip, tmp_path, hard_negatives):
    from transformers import AutoModel, AutoProcessor, CLIPModel

    before = _pairs_loss(tiny_clip)
    config = training.TrainConfig(model=str(tiny_clip), data="vismin:pairs", out=str(tmp_path / "out"),
                                  max_steps=24, batch_size=10, lr=3e-3, warmup=0.0, weight_decay=0.0,
                                  hard_negatives=hard_negatives, cpu=True, log_every=8)
    result = training.train(config)
    assert result.steps == 24 and len(result.losses) == 24
    out = tmp_path / "out"
    assert (out / "model.safetensors").is_file() and (out / "config.json").is_file()
    assert isinstance(AutoModel.from_pretrained(out), CLIPModel)
    AutoProcessor.from_pretrained(out)
    assert _pairs_loss(out) < before - 0.05
    log = json.loads((out / "training_log.json").read_text())
    assert log["config"]["hard_negatives"] is hard_negatives and log["steps"] == 24


def test_cli_trains_a_tiny_clip_from_scratch_and_scores_it(vismin_built, tmp_path, capsys):
    from transformers import AutoModel

    from diffbench.cli import main

    out = tmp_path / "cli"
    code = main(["train", "--model", "tiny-clip", "--data", "vismin:pairs", "--max-steps", "2", "--batch-size", "8",
                 "--tiny-hidden-size", "32", "--tiny-layers", "1", "--tiny-image-size", "32", "--cpu",
                 "--out", str(out), "--eval", "vismin:bench"])
    assert code == 0
    captured = capsys.readouterr()
    assert str(out) in captured.out and "| counting |" in captured.err
    AutoModel.from_pretrained(out)
    scores = json.loads((out / "eval.json").read_text())["scores"]
    assert set(scores) == {"object", "attribute", "counting", "relation", "avg", "all"}
    assert scores["all"]["n"] == 40


def test_cli_rejects_data_that_is_not_pairs(vismin_built, tmp_path, capsys):
    from diffbench.cli import main

    code = main(["train", "--model", "tiny-clip", "--data", "vismin:train", "--max-steps", "1", "--out", str(tmp_path)])
    assert code == 2
    assert "training needs minimal-change pairs" in capsys.readouterr().err


def test_module_doctests():
    import doctest

    from diffbench import tiny_models

    for module in (training, tiny_models):
        failures, attempted = doctest.testmod(module)
        assert attempted > 0 and failures == 0, module.__name__
