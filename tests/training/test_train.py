"""``diffbench train``: the hard-negative recipe trains, saves a loadable model, and the ablation differs only in batching."""

from __future__ import annotations

import json

import numpy as np
import pytest

from diffbench import training
from diffbench.training import checkpoints, evaluation, loop, loss, pair_batches, settings


def test_hard_negative_batches_hold_both_halves_of_each_pair():
    sampler = pair_batches.PairBatchSampler(num_pairs=50, pairs_per_batch=8, hard_negatives=True, seed=3)
    batches = list(sampler)
    assert sorted(i for b in batches for i in b) == list(range(100))
    for batch in batches:
        assert {i // 2 for i in batch if i % 2 == 0} == {i // 2 for i in batch if i % 2 == 1}
    assert batches != list(sampler)  # a new order each epoch


def test_no_hard_negatives_keeps_pairs_apart_with_the_same_items_and_batch_sizes():
    hard = list(pair_batches.PairBatchSampler(48, 8, hard_negatives=True, seed=3))
    apart = list(pair_batches.PairBatchSampler(48, 8, hard_negatives=False, seed=3))
    assert sorted(i for b in apart for i in b) == list(range(96))
    assert [len(b) for b in apart] == [len(b) for b in hard] == [16] * 6
    for batch in apart:
        assert not any(i % 2 == 0 and i + 1 in batch for i in batch)


def test_duplicate_captions_are_positives_not_negatives():
    import torch

    # The model matches caption 0 with image 1 and caption 1 with image 0: right if they say the same.
    logits = torch.tensor([[0.0, 5.0, 0.0], [5.0, 0.0, 0.0], [0.0, 0.0, 5.0]])
    shared = loss.contrastive_loss(logits, ["two red stars", "two red stars", "one red star"])
    apart = loss.contrastive_loss(logits, ["two red stars", "three red stars", "one red star"])
    assert float(shared) < float(apart)


def test_scores_come_from_the_metric_with_the_official_rule():
    # right; both wrong; text right but image wrong; ties (strict >) make both wrong
    sims = np.array([[1, 0, 0, 1], [0, 1, 1, 0], [0.5, 0.6, 0.1, 0.7], [1, 0.5, 1, 1]], dtype=float)
    results = evaluation.score_similarities(sims, ["object"] * 4)
    assert results["per_category"]["object"] == {"text_score": 50.0, "image_score": 25.0, "group_score": 25.0,
                                                 "num_samples": 4}
    # the same aggregation as the metric loaded by evaluate, not a copy of the rule
    import evaluate

    from diffbench.data.hub_folders import hub_folder

    metric = evaluate.load(str(hub_folder("metrics", "vismin_group_score")))
    columns = dict(zip(("T0_I0", "T0_I1", "T1_I0", "T1_I1"), sims.T.tolist()))
    assert metric.compute(**columns, categories=["object"] * 4) == results
    assert not hasattr(evaluation, "vismin_scores")


def test_bad_values_name_the_option():
    for kwargs, message in (({"batch_size": 0}, "--batch-size must be a positive whole number, got 0"),
                            ({"epochs": 0}, "--epochs must be a positive number"),
                            ({"max_steps": -1}, "--max-steps must be a positive whole number"),
                            ({"lr": 0.0}, "--lr must be a positive number"),
                            ({"warmup": 1.0}, "--warmup is a fraction"),
                            ({"eval_n": 0}, "--eval-n must be"),
                            ({"eval": "vismin"}, "NAME:CONFIG")):
        with pytest.raises(ValueError, match=message):
            settings.TrainConfig(model="tiny-clip", **kwargs).validate()


@pytest.fixture(scope="module")
def tiny_clip(vismin_built, tmp_path_factory):
    from diffbench.models import tiny as tiny_models
    from diffbench.data.building import load_built

    pairs = load_built("vismin", "pairs", "train")
    words = tiny_models.words_of(list(pairs["text_0"]) + list(pairs["text_1"]))
    return tiny_models.build_tiny_clip(tmp_path_factory.mktemp("tiny") / "clip", words=words, seed=0,
                                       hidden_size=32, layers=2, projection_dim=32, image_size=32)


def _pairs_loss(path) -> float:
    """The recipe's loss over every training pair at once (one batch of 80 items)."""
    import torch
    from transformers import AutoModel, AutoProcessor

    from diffbench.data.building import load_built

    model, processor = AutoModel.from_pretrained(path).eval(), AutoProcessor.from_pretrained(path)
    pairs = load_built("vismin", "pairs", "train")
    collate = pair_batches.PairCollate(pairs, processor, {"padding": True})
    batch = collate(list(range(2 * len(pairs))))
    texts = batch.pop("texts")
    with torch.inference_mode():
        return float(loss.contrastive_loss(model(**batch).logits_per_text, texts))


@pytest.mark.parametrize("hard_negatives", [True, False], ids=["hard-negatives", "no-hard-negatives"])
def test_a_few_steps_lower_the_loss_and_save_a_loadable_model(tiny_clip, tmp_path, hard_negatives):
    from transformers import AutoModel, AutoProcessor, CLIPModel

    before = _pairs_loss(tiny_clip)
    config = settings.TrainConfig(model=str(tiny_clip), data="vismin:pairs", out=str(tmp_path / "out"),
                                  max_steps=24, batch_size=10, lr=3e-3, warmup=0.0, weight_decay=0.0,
                                  hard_negatives=hard_negatives, cpu=True, eval=None)
    result = loop.train(config)
    assert result.steps == 24 and len(result.losses) == 24
    out = tmp_path / "out"
    assert (out / "model.safetensors").is_file() and (out / "config.json").is_file()
    assert isinstance(AutoModel.from_pretrained(out), CLIPModel)
    AutoProcessor.from_pretrained(out)
    assert _pairs_loss(out) < before - 0.05
    log = json.loads((out / "training_log.json").read_text())
    assert log["config"]["hard_negatives"] is hard_negatives and log["steps"] == 24 and log["processes"] == 1
    assert log["final_lr"] == 0.0  # the cosine schedule ran its course over the 24 steps
    assert not (out / "checkpoint").exists()  # the finished model replaces the last epoch's checkpoint


def _weights(path):
    from safetensors.numpy import load_file

    return load_file(str(path / "model.safetensors"))


def test_interrupted_run_resumes_from_its_epoch_checkpoint_to_the_same_model(tiny_clip, tmp_path, monkeypatch):
    # 40 pairs, 10 a batch: 4 steps an epoch, 3 epochs; the interrupted run stops right after epoch 1's checkpoint.
    def config(out, **kwargs):
        return settings.TrainConfig(model=str(tiny_clip), data="vismin:pairs", out=str(out), epochs=3, batch_size=10,
                                    lr=3e-3, warmup=0.25, cpu=True, eval=None, progress=False, **kwargs)

    straight = loop.train(config(tmp_path / "straight"))
    real_save = checkpoints.save_checkpoint

    def save_then_crash(*args, **kwargs):
        real_save(*args, **kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(checkpoints, "save_checkpoint", save_then_crash)
    with pytest.raises(KeyboardInterrupt):
        loop.train(config(tmp_path / "cut"))
    monkeypatch.setattr(checkpoints, "save_checkpoint", real_save)
    state = (tmp_path / "cut" / "checkpoint" / "trainer_state.pt")
    assert state.is_file() and not (tmp_path / "cut" / "model.safetensors").exists()
    with pytest.raises(ValueError, match="holds a checkpoint of an unfinished run: --resume"):
        loop.train(config(tmp_path / "cut"))
    with pytest.raises(ValueError, match=r"other settings: batch_size \(10 -> 8\)"):
        loop.train(settings.TrainConfig(**{**vars(config(tmp_path / "cut")), "batch_size": 8, "resume": True}))

    resumed = loop.train(config(tmp_path / "cut", resume=True))
    assert resumed.resumed_from == 4 and resumed.steps == straight.steps == 12
    assert resumed.losses == pytest.approx(straight.losses, rel=1e-5, abs=1e-6)
    a, b = _weights(tmp_path / "straight"), _weights(tmp_path / "cut")
    assert a.keys() == b.keys()
    for name in a:
        np.testing.assert_allclose(a[name], b[name], rtol=1e-5, atol=1e-6, err_msg=name)
    with pytest.raises(ValueError, match="finished run"):
        loop.train(config(tmp_path / "cut", resume=True))


def test_cli_trains_a_tiny_clip_from_scratch_and_scores_it(vismin_built, tmp_path, capsys):
    from transformers import AutoModel

    from diffbench.cli import main

    out = tmp_path / "cli"
    code = main(["train", "--model", "tiny-clip", "--data", "vismin:pairs", "--epochs", "2", "--batch-size", "8",
                 "--tiny-hidden-size", "32", "--tiny-layers", "1", "--tiny-image-size", "32", "--cpu",
                 "--out", str(out), "--eval-n", "24"])
    assert code == 0
    captured = capsys.readouterr()
    assert captured.out.strip() == str(out)
    # one progress bar, no line per step, no transformers notices or load/save bars
    assert "step 1/" not in captured.err and "training: 100%" in captured.err and "10/10" in captured.err
    assert "torchvision" not in captured.err and "Loading weights" not in captured.err
    assert "held-out synthetic bench (24 samples" in captured.err and "| AVG (category mean) |" in captured.err
    assert "not comparable to published results" in captured.err
    AutoModel.from_pretrained(out)
    results = json.loads((out / "eval.json").read_text())
    assert results["num_samples"] == 24 and results["provenance"]["synthetic"] is True
    assert results["provenance"]["image_size"] == [96, 72]  # the training images' size
    assert set(results["per_category"]) == {"object", "attribute", "counting", "relation"}
    # the held-out bench shares no scene with the training pairs
    from diffbench.data.building import load_built

    held_out, _ = evaluation.held_out_bench(24, (96, 72))
    pairs = load_built("vismin", "pairs", "train")
    train_images = {row["image_0"].tobytes() for row in pairs}
    assert not any(row["image_0"].tobytes() in train_images for row in held_out)


def test_cli_scores_a_built_benchmark_when_asked(vismin_built, tmp_path, capsys):
    from diffbench.cli import main

    out = tmp_path / "built"
    assert main(["train", "--model", "tiny-clip", "--max-steps", "1", "--batch-size", "8", "--tiny-hidden-size", "32",
                 "--tiny-layers", "1", "--tiny-image-size", "32", "--cpu", "--out", str(out), "--eval", "vismin:bench",
                 "--no-progress"]) == 0
    results = json.loads((out / "eval.json").read_text())
    assert results["num_samples"] == 40 and results["data"] == "vismin:bench"
    assert "training:" not in capsys.readouterr().err
    assert main(["train", "--model", "tiny-clip", "--batch-size", "0", "--out", str(tmp_path / "x")]) == 2
    assert "--batch-size must be a positive whole number, got 0" in capsys.readouterr().err


def test_cli_rejects_data_that_is_not_pairs(vismin_built, tmp_path, capsys):
    from diffbench.cli import main

    code = main(["train", "--model", "tiny-clip", "--data", "vismin:train", "--max-steps", "1", "--out", str(tmp_path)])
    assert code == 2
    assert "training needs minimal-change pairs" in capsys.readouterr().err


def test_module_doctests():
    import doctest

    from diffbench.models import tiny as tiny_models

    for module in (training, settings, pair_batches, loss, loop, tiny_models):
        failures, attempted = doctest.testmod(module)
        assert attempted > 0 and failures == 0, module.__name__
