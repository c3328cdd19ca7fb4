"""``diffbench eval``: end to end through the CLI on the built VisMin sample with tiny random models.

The models are built from configs into a temp folder (no Hub). Their scores are noise; what is tested is
that the harness computes exactly what the official per-sample loop computes, writes the official files,
resumes, splits work over processes without changing a number, and reports bad input clearly.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ENV = {**os.environ, "TRANSFORMERS_VERBOSITY": "error", "TOKENIZERS_PARALLELISM": "false"}


def eval_cli(*args, launcher=None, check=True):
    command = [*(launcher or [sys.executable, "-m"]), "diffbench", "eval", *map(str, args), "--no-progress"]
    done = subprocess.run(command, env=ENV, capture_output=True, text=True, timeout=300)
    if check and done.returncode != 0:
        raise AssertionError(f"{command} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return done


def read_rows(path: Path) -> list[dict]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def bench(vismin_built):
    from diffbench.building import load_built

    return load_built("vismin", "bench", "test")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, bench):
    """Tiny random CLIP, SigLIP and LLaVA (image-text-to-text) folders knowing the sample's words."""
    from diffbench import tiny_models

    words = tiny_models.words_of(list(bench["text_0"]) + list(bench["text_1"]))
    root = tmp_path_factory.mktemp("tiny-models")
    return {
        "clip": tiny_models.build_tiny_clip(root / "clip", words=words, seed=0),
        "siglip": tiny_models.build_tiny_siglip(root / "siglip", words=words, seed=0),
        "llava": tiny_models.build_tiny_image_text_to_text(root / "llava", words=words, seed=0),
    }


def official_loop_scores(model_path, bench) -> list[list[float]]:
    """The official evaluation pattern: one sample at a time through the processor and the model's
    forward, similarities from ``logits_per_text`` (undoing SigLIP's bias and either model's scale)."""
    import torch
    from transformers import AutoModel, AutoProcessor

    model, processor = AutoModel.from_pretrained(model_path).eval(), AutoProcessor.from_pretrained(model_path)
    siglip = "siglip" in model.config.model_type
    text_kwargs = {"padding": "max_length", "max_length": 32} if siglip else {"padding": True}
    scores = []
    with torch.inference_mode():
        for row in bench:
            inputs = processor(text=[row["text_0"], row["text_1"]], images=[row["image_0"], row["image_1"]],
                               return_tensors="pt", **text_kwargs)
            logits = model(**inputs).logits_per_text  # [text, image]
            if siglip:
                logits = logits - model.logit_bias
            logits = logits / model.logit_scale.exp()
            scores.append(logits.flatten().tolist())  # T0_I0, T0_I1, T1_I0, T1_I1
    return scores


def metric_results(scores, categories) -> dict:
    from diffbench.hub_folders import load_module

    columns = dict(zip(("T0_I0", "T0_I1", "T1_I0", "T1_I1"), zip(*scores)))
    metric = load_module("metrics", "vismin_group_score").VisminGroupScore()
    return metric.compute(**{k: list(v) for k, v in columns.items()}, categories=categories)


@pytest.mark.parametrize("kind", ["clip", "siglip"])
def test_contrastive_matches_the_official_loop(kind, tiny, bench, tmp_path):
    out = tmp_path / "run"
    done = eval_cli("vismin", "--model", tiny[kind], "--out", out, "--batch-size", 16, "--num-workers", 2)
    assert "contrastive model" in done.stderr and "| Model |" in done.stdout
    for name in ("vismin_scores.csv", "results.json", "results.md", "results.png", "run.json"):
        assert (out / name).is_file(), name
    assert not (out / "progress").exists()  # saved predictions are folded into the submission
    rows = read_rows(out / "vismin_scores.csv")
    assert list(rows[0]) == ["id", "T0_I0", "T0_I1", "T1_I0", "T1_I1"]
    assert [r["id"] for r in rows] == list(bench["id"])
    ours = [[float(r[c]) for c in ("T0_I0", "T0_I1", "T1_I0", "T1_I1")] for r in rows]
    reference = official_loop_scores(tiny[kind], bench)
    for mine, theirs in zip(ours, reference):
        assert all(math.isclose(a, b, abs_tol=2e-5) for a, b in zip(mine, theirs)), (mine, theirs)
    categories = bench.features["category"].int2str(list(bench["category"]))
    results = json.loads((out / "results.json").read_text())
    expected = metric_results(reference, categories)
    assert results["scores"]["per_category"] == expected["per_category"]
    assert results["scores"]["avg_as_published"] == pytest.approx(expected["avg_as_published"])
    table = (out / "results.md").read_text()
    assert "Object T" in table and "(this run)" in table
    assert (out / "results.png").read_bytes()[:4] == b"\x89PNG"


def test_resume_after_interruption(tiny, bench, tmp_path):
    out = tmp_path / "run"
    eval_cli("vismin", "--model", tiny["clip"], "--out", out, "--batch-size", 8, "--num-workers", 1)
    first = read_rows(out / "vismin_scores.csv")
    # What an interrupted run leaves: run.json and the batches it finished, the last line cut short.
    for name in ("vismin_scores.csv", "results.json", "results.md", "results.png"):
        (out / name).unlink()
    (out / "progress").mkdir()
    lines = [json.dumps({"id": r["id"], **{k: float(v) for k, v in r.items() if k != "id"}}) for r in first[:16]]
    (out / "progress" / "rank-0.jsonl").write_text("\n".join(lines) + "\n" + lines[16 - 1][:20])
    done = eval_cli("vismin", "--model", tiny["clip"], "--out", out, "--batch-size", 8, "--num-workers", 1)
    assert "resuming: 16 of 40 samples already predicted" in done.stderr
    assert read_rows(out / "vismin_scores.csv") == first  # same batches for the rest: identical numbers
    # A finished run is only re-scored; another model in the same folder is refused.
    again = eval_cli("vismin", "--model", tiny["clip"], "--out", out)
    assert "resuming: 40 of 40" in again.stderr and "contrastive model" not in again.stderr
    other = eval_cli("vismin", "--model", tiny["siglip"], "--out", out, check=False)
    assert other.returncode == 2 and "holds predictions of another run" in other.stderr


def test_two_processes_give_the_single_process_result(tiny, tmp_path):
    """``accelerate launch --num_processes 2 --cpu``: batches dealt out to the processes, gathered."""
    launcher = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "-m"]
    multi = eval_cli("vismin", "--model", tiny["clip"], "--out", tmp_path / "multi", "--batch-size", 8,
                     "--num-workers", 1, launcher=launcher)
    assert "2 process(es)" in multi.stderr
    single = eval_cli("vismin", "--model", tiny["clip"], "--out", tmp_path / "single", "--batch-size", 8,
                      "--num-workers", 1)
    assert "1 process(es)" in single.stderr
    assert (tmp_path / "multi" / "vismin_scores.csv").read_bytes() == (tmp_path / "single" / "vismin_scores.csv").read_bytes()
    results = [json.loads((tmp_path / name / "results.json").read_text()) for name in ("multi", "single")]
    assert results[0]["scores"] == results[1]["scores"]


def test_chat_model_both_answer_modes(tiny, bench, tmp_path):
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from diffbench.harness import chat

    likelihood = eval_cli("vismin", "--model", tiny["llava"], "--out", tmp_path / "ll", "--answer", "likelihood",
                          "--batch-size", 5, "--num-workers", 2)
    assert "image-text-to-text model" in likelihood.stderr
    rows = read_rows(tmp_path / "ll" / "vismin_answers.csv")
    assert list(rows[0]) == ["id", "Text_Q0", "Text_Q1", "Image_Q0", "Image_Q1"]
    assert {r["Text_Q0"] for r in rows} | {r["Text_Q1"] for r in rows} <= {"A", "B"}
    assert {r["Image_Q0"] for r in rows} | {r["Image_Q1"] for r in rows} <= {"First", "Second"}
    assert json.loads((tmp_path / "ll" / "results.json").read_text())["answer_mode"] == "likelihood"

    # The batched, padded option log-likelihoods choose what one unpadded sequence at a time chooses.
    model = AutoModelForImageTextToText.from_pretrained(tiny["llava"]).eval()
    processor = AutoProcessor.from_pretrained(tiny["llava"])
    for sample, row in zip(bench.select(range(3)), rows):
        for column, (question, positions, options) in zip(chat.ANSWER_COLUMNS, chat.questions(sample["text_0"], sample["text_1"])):
            prompt = chat.chat_prompt(processor, question, len(positions))
            images = [sample[f"image_{p}"] for p in positions]
            totals = []
            for option in options:
                inputs = processor(text=[prompt + option], images=[images], return_tensors="pt")
                common, count, raw = chat.option_span(processor.tokenizer, prompt, option)
                start = common + inputs["input_ids"].shape[1] - raw
                with torch.inference_mode():
                    logprobs = model(**inputs).logits[0].log_softmax(-1)
                ids = inputs["input_ids"][0]
                totals.append(sum(float(logprobs[p - 1, ids[p]]) for p in range(start, start + count)))
            assert row[column] == options[max(range(len(options)), key=totals.__getitem__)], (row["id"], column)

    generated = eval_cli("vismin", "--model", tiny["llava"], "--out", tmp_path / "gen", "--answer", "generate",
                         "--max-new-tokens", 3, "--batch-size", 8, "--num-workers", 2, "--limit", 12)
    assert "12 samples" in generated.stderr
    rows = read_rows(tmp_path / "gen" / "vismin_answers.csv")
    assert len(rows) == 12 and all(r["Text_Q0"] for r in rows)  # raw generations, parsed when scored
    assert json.loads((tmp_path / "gen" / "results.json").read_text())["num_samples"] == 12


def test_a_model_of_another_kind_is_refused(tmp_path, vismin_built):
    from transformers import BertConfig

    BertConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32).save_pretrained(tmp_path / "bert")
    (tmp_path / "remote").mkdir()
    (tmp_path / "remote" / "config.json").write_text(json.dumps(
        {"model_type": "custom-vlm", "auto_map": {"AutoConfig": "configuration.C", "AutoModel": "modeling.M"}}))
    done = eval_cli("vismin", "--model", tmp_path / "bert", "--out", tmp_path / "out", check=False)
    assert done.returncode == 2
    assert "neither a contrastive nor an image-text-to-text model: found config BertConfig" in done.stderr
    assert "lacks get_image_features/get_text_features" in done.stderr
    from diffbench.harness.models import ModelKindError, detect_kind

    with pytest.raises(ModelKindError, match="pass --trust-remote-code"):
        detect_kind(str(tmp_path / "remote"))


def test_a_corrupt_image_is_reported_with_its_sample(tiny, bench, tmp_path):
    import datasets

    rows = bench.select(range(8)).cast_column("image_1", datasets.Image(decode=False)).to_list()
    rows[5]["image_1"] = {"bytes": b"\xff\xd8\xff\xe0 not a jpeg", "path": None}
    broken = datasets.Dataset.from_list(rows, features=bench.features)
    broken.to_parquet(str(tmp_path / "broken.parquet"))
    out = tmp_path / "run"
    done = eval_cli("vismin", "--model", tiny["clip"], "--data-files", tmp_path / "broken.parquet", "--out", out,
                    "--batch-size", 4, "--num-workers", 1, check=False)
    assert done.returncode == 2
    assert "1 sample(s) have images that cannot be decoded" in done.stderr
    assert f"{rows[5]['id']}: image_1: OSError: Truncated File Read" in done.stderr
    saved = [json.loads(line)["id"] for line in (out / "progress" / "rank-0.jsonl").read_text().splitlines()]
    assert sorted(saved) == sorted(r["id"] for i, r in enumerate(rows) if i != 5)  # the others are kept


def test_out_of_memory_halves_the_batch_and_continues(tiny, bench):
    """A fake device that runs out of memory above 3 samples: same numbers, in smaller chunks."""
    import torch
    from transformers import AutoModel, AutoProcessor

    from diffbench.harness import contrastive, runtime
    from diffbench.harness.data import SampleImages

    model, processor = AutoModel.from_pretrained(tiny["clip"]).eval(), AutoProcessor.from_pretrained(tiny["clip"])
    collate = contrastive.ContrastiveCollate(processor, contrastive.text_padding(model, processor))
    samples = SampleImages(bench, ["image_0", "image_1"], ["text_0", "text_1"])
    batch = collate([samples[i] for i in range(10)])
    plain = contrastive.ContrastiveStep(model, torch.device("cpu"), torch.float32, runtime.ChunkedRunner(10))(batch)

    encode = model.get_image_features

    def small_device(pixel_values, **kwargs):
        if pixel_values.shape[0] > 2 * 3:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return encode(pixel_values=pixel_values, **kwargs)

    model.get_image_features = small_device
    messages = []
    runner = runtime.ChunkedRunner(10, log=messages.append)
    halved = contrastive.ContrastiveStep(model, torch.device("cpu"), torch.float32, runner)(batch)
    assert runner.size == 2 and messages == ["out of memory: batch size halved to 5, continuing",
                                             "out of memory: batch size halved to 2, continuing"]
    assert [i for i, _ in halved] == [i for i, _ in plain]
    for (_, a), (_, b) in zip(halved, plain):
        assert all(math.isclose(a[c], b[c], abs_tol=1e-5) for c in contrastive.SCORE_COLUMNS)


def test_difference_captioning_per_change_type(tiny, tmp_path):
    """A chat model describes OmniDiff sample pairs; COCO metrics overall and per change type."""
    import shutil

    if shutil.which("java") is None:
        pytest.skip("the COCO caption metrics need Java")
    from diffbench import building
    from diffbench.commands.build import build_configs

    build_configs("omnidiff", [building.default_config("omnidiff")], "sample")
    test = building.load_built("omnidiff", None, "test")
    out = tmp_path / "run"
    done = eval_cli("omnidiff", "--model", tiny["llava"], "--out", out, "--max-new-tokens", 6, "--batch-size", 4,
                    "--num-workers", 1, "--limit", 8)
    assert "| all |" in done.stdout
    captions = json.loads((out / "captions.json").read_text())
    assert [c["image_id"] for c in captions] == list(test["id"][:8]) and all(c["caption"] for c in captions)
    results = json.loads((out / "results.json").read_text())
    assert {"Bleu_4", "METEOR", "ROUGE_L", "CIDEr"} <= set(results) and results["num_samples"] == 8
    labels = {label for row in test.select(range(8))["change_types"] for label in row}
    assert set(results["groups"]) == labels
    assert (out / "results.png").read_bytes()[:4] == b"\x89PNG"
    clip = eval_cli("omnidiff", "--model", tiny["clip"], "--out", tmp_path / "clip", check=False)
    assert clip.returncode == 2 and "needs an image-text-to-text model" in clip.stderr
