"""``diffbench eval``: end to end on the built VisMin sample with tiny random models.

The models are built from configs into a temp folder (no Hub). Their scores are noise; what is tested is
that the harness computes exactly what the official per-sample loop computes, writes the official files
and the run record, resumes (and refuses to resume onto other data or weights), splits work over
processes without changing a number, and reports bad input in one line.

Commands run in this process through ``diffbench.cli.main`` (what the console script calls); only the
multi-process test starts subprocesses, since that is what it is about.
"""

from __future__ import annotations

import csv
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from diffbench.vismin.schema import ANSWER_COLUMNS, SCORE_COLUMNS

pytestmark = pytest.mark.slow

ENV = {**os.environ, "TRANSFORMERS_VERBOSITY": "error", "TOKENIZERS_PARALLELISM": "false"}


def drawn(dataset, limit, column="category"):
    """The rows ``--limit`` takes (stratified, in the dataset's order): what the run is compared with."""
    from diffbench.harness import draws

    return draws.draw(dataset, limit, column)


def read_rows(path: Path) -> list[dict]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def bench(vismin_built):
    from diffbench.data.building import load_built

    return load_built("vismin", "bench", "test")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, bench):
    """Tiny random CLIP, SigLIP and LLaVA (image-text-to-text) folders knowing the sample's words."""
    from diffbench.models import tiny as tiny_models

    words = tiny_models.words_of(list(bench["text_0"]) + list(bench["text_1"]))
    root = tmp_path_factory.mktemp("tiny-models")
    return {
        "clip": tiny_models.build_tiny_clip(root / "clip", words=words, seed=0),
        "siglip": tiny_models.build_tiny_siglip(root / "siglip", words=words, seed=0),
        "llava": tiny_models.build_tiny_image_text_to_text(root / "llava", words=words, seed=0),
    }


def official_loop_scores(model_path, bench) -> list[list[float]]:
    """The official evaluation pattern: one sample at a time through the processor and the model's
    forward in float32, similarities from ``logits_per_text`` (undoing SigLIP's bias and the scale)."""
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
    from diffbench.data.hub_folders import load_module

    columns = dict(zip(SCORE_COLUMNS, zip(*scores)))
    metric = load_module("metrics", "vismin_group_score").VisminGroupScore()
    return metric.compute(**{k: list(v) for k, v in columns.items()}, categories=categories)


@pytest.mark.parametrize("kind", ["clip", "siglip"])
def test_contrastive_matches_the_official_loop(kind, tiny, bench, tmp_path, eval_cli):
    out = tmp_path / "run"
    done = eval_cli("vismin", "--model", tiny[kind], "--out", out, "--batch-size", 16, "--num-workers", 2)
    assert "contrastive model" in done.stderr and "in float32" in done.stderr and "| Model |" in done.stdout
    for name in ("vismin_scores.csv", "results.json", "results.md", "results.png", "results.svg", "run.json"):
        assert (out / name).is_file(), name
    assert not (out / "progress").exists()  # saved predictions are folded into the submission
    rows = read_rows(out / "vismin_scores.csv")
    assert list(rows[0]) == ["id", *SCORE_COLUMNS]
    assert [r["id"] for r in rows] == list(bench["id"])
    ours = [[float(r[c]) for c in SCORE_COLUMNS] for r in rows]
    reference = official_loop_scores(tiny[kind], bench)
    for mine, theirs in zip(ours, reference):
        assert all(math.isclose(a, b, abs_tol=2e-5) for a, b in zip(mine, theirs)), (mine, theirs)
    categories = bench.features["category"].int2str(list(bench["category"]))
    results = json.loads((out / "results.json").read_text())
    expected = metric_results(reference, categories)
    assert {c: {f"{k}_score": v for k, v in cell["scores"].items()} | {"num_samples": cell["samples"]}
            for c, cell in results["groups"].items()} == expected["per_category"]
    assert results["scores"]["avg"] == pytest.approx(expected["avg_as_published"])
    assert results["provenance"]["synthetic"] is True and results["protocol"]["dtype"] == "float32"
    table = (out / "results.md").read_text()
    assert "Object T" in table and "(this run)" in table and "synthetic sample: not comparable" in table
    assert (out / "results.png").read_bytes()[:4] == b"\x89PNG"
    run = json.loads((out / "run.json").read_text())
    assert run["dtype"] == "float32" and run["weights"]["source"] == "local" and len(run["weights"]["sha256"]) == 64
    assert run["provenance"] == results["provenance"] and len(run["dataset_fingerprint"]) == 16
    assert {"torch", "transformers", "datasets"} <= set(run["environment"]["packages"])
    assert run["environment"]["image_backend"] in ("pil", "torchvision") and run["environment"]["date"]


def test_blip_is_scored_by_its_itc_heads_as_the_paper_did(bench, tmp_path, eval_cli):
    """A BlipForImageTextRetrieval checkpoint (the paper's BLIP row): similarities are the ITC scores that
    ``forward(use_itm_head=False)`` gives one sample at a time, not BlipModel's untrained projections."""
    import torch
    from transformers import AutoProcessor, BlipForImageTextRetrieval

    from diffbench.models import tiny as tiny_models

    words = tiny_models.words_of(list(bench["text_0"]) + list(bench["text_1"]))
    path = tiny_models.build_tiny_blip_retrieval(tmp_path / "blip", words=words, seed=0)
    out = tmp_path / "run"
    eval_cli("vismin", "--model", path, "--out", out, "--limit", 6, "--num-workers", 0)
    assert json.loads((out / "run.json").read_text())["similarity"].startswith("BLIP ITC")
    model, processor = BlipForImageTextRetrieval.from_pretrained(path).eval(), AutoProcessor.from_pretrained(path)
    for row, sample in zip(read_rows(out / "vismin_scores.csv"), drawn(bench, 6), strict=True):
        with torch.inference_mode():
            for t in (0, 1):
                for i in (0, 1):
                    inputs = processor(text=[sample[f"text_{t}"]], images=[sample[f"image_{i}"]], return_tensors="pt")
                    itc = float(model(**inputs, use_itm_head=False).itm_score)
                    assert math.isclose(float(row[f"T{t}_I{i}"]), itc, abs_tol=1e-5), (row["id"], t, i)


def test_resume_after_interruption_and_refusals(tiny, bench, tmp_path, eval_cli):
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
    again = eval_cli("vismin", "--model", tiny["clip"], "--out", out, "--num-workers", 0)
    assert "resuming: 40 of 40" in again.stderr and "contrastive model" not in again.stderr
    other = eval_cli("vismin", "--model", tiny["siglip"], "--out", out, check=False)
    assert other.returncode == 2 and "holds predictions of another run" in other.stderr
    # New weights in the same folder: refused, saying why.
    moved = tmp_path / "clip"
    shutil.copytree(tiny["clip"], moved)
    eval_cli("vismin", "--model", moved, "--out", tmp_path / "moved", "--limit", 4, "--num-workers", 0)
    from transformers import AutoModel

    model = AutoModel.from_pretrained(moved)
    with __import__("torch").no_grad():
        model.logit_scale.add_(1.0)
    model.save_pretrained(moved)
    changed = eval_cli("vismin", "--model", moved, "--out", tmp_path / "moved", "--limit", 4, check=False)
    assert changed.returncode == 2 and "the model's weights changed" in changed.stderr
    # Other data under the same --data-files path: refused, saying why; --overwrite recomputes.
    data = tmp_path / "bench.parquet"
    bench.select(range(6)).to_parquet(str(data))
    eval_cli("vismin", "--model", tiny["clip"], "--data-files", data, "--out", tmp_path / "data", "--num-workers", 0)
    bench.select(range(1, 7)).to_parquet(str(data))
    rebuilt = eval_cli("vismin", "--model", tiny["clip"], "--data-files", data, "--out", tmp_path / "data", check=False)
    assert rebuilt.returncode == 2 and "the data was rebuilt or changed" in rebuilt.stderr


def test_fast_decode_is_recorded_and_checked_on_resume(tiny, tmp_path, eval_cli):
    """--fast-decode decodes other pixels: run.json says so, and a resume with the other setting is refused."""
    out = tmp_path / "fast"
    eval_cli("vismin", "--model", tiny["clip"], "--out", out, "--limit", 4, "--num-workers", 0, "--fast-decode")
    assert json.loads((out / "run.json").read_text())["fast_decode"] is True
    full = eval_cli("vismin", "--model", tiny["clip"], "--out", out, "--limit", 4, "--num-workers", 0, check=False)
    assert full.returncode == 2 and "reduced scale" in full.stderr and "fast_decode: True -> False" in full.stderr


def hub_snapshot(hf_home, repo: str, folder, commit: str):
    """``folder`` placed in the Hub cache as ``repo`` at ``commit`` (what a download leaves), refs/main -> commit."""
    cache = hf_home / "hub" / f"models--{repo.replace('/', '--')}"
    shutil.copytree(folder, cache / "snapshots" / commit, dirs_exist_ok=True)
    (cache / "refs").mkdir(parents=True, exist_ok=True)
    (cache / "refs" / "main").write_text(commit)


def test_a_hub_model_s_first_run_resumes_once_its_commit_is_known(tiny, hf_home, tmp_path, eval_cli):
    """A first run records the weights before the model is downloaded (no commit yet); the next run knows
    the commit: the same run, resumed and recorded with its commit, not refused. Loading writes the
    commit into run.json."""
    from types import SimpleNamespace

    from diffbench.harness import outputs
    from diffbench.harness.loop import confirm_weights

    repo, commit = "diffbench-tests/tiny-clip", "ab" * 20
    hub_snapshot(hf_home, repo, tiny["clip"], commit)
    out = tmp_path / "hub"
    eval_cli("vismin", "--model", repo, "--out", out, "--limit", 4, "--num-workers", 0)
    run = json.loads((out / "run.json").read_text())
    assert run["weights"] == {"source": "hub", "repo": repo, "revision": commit}
    first = read_rows(out / "vismin_scores.csv")
    # What the first run wrote before its download: no commit. The model must load again (no submission).
    run["weights"]["revision"] = None
    (out / "run.json").write_text(json.dumps(run))
    (out / "vismin_scores.csv").unlink()
    done = eval_cli("vismin", "--model", repo, "--out", out, "--limit", 4, "--num-workers", 0)
    assert "holds predictions of another run" not in done.stderr
    assert json.loads((out / "run.json").read_text())["weights"]["revision"] == commit
    assert read_rows(out / "vismin_scores.csv") == first
    # Once loaded, the loop records the commit the download gave (run.json had none) ...
    record = {"weights": {"source": "hub", "repo": repo, "revision": None}}
    outputs.write_json(out / "run.json", record)
    procs = SimpleNamespace(is_main=True)
    options = SimpleNamespace(model=repo, revision=None)
    confirm_weights(record, options, out, procs, resumed=True)
    assert json.loads((out / "run.json").read_text())["weights"]["revision"] == commit
    # ... and refuses a resume whose download is another commit than the saved predictions'.
    record = {"weights": {"source": "hub", "repo": repo, "revision": "cd" * 20}}
    with pytest.raises(outputs.RunMismatchError, match="the model's weights changed"):
        confirm_weights(record, options, out, procs, resumed=True)


def test_two_processes_give_the_single_process_result(tiny, tmp_path, eval_cli):
    """``accelerate launch --num_processes 2 --cpu``: batches dealt out to the processes, gathered."""
    args = ["vismin", "--model", tiny["clip"], "--batch-size", 8, "--num-workers", 1]
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "-m", "diffbench", "eval",
               *map(str, args), "--out", str(tmp_path / "multi"), "--no-progress"]
    multi = subprocess.run(command, env=ENV, capture_output=True, text=True, timeout=300)
    assert multi.returncode == 0, multi.stderr[-3000:]
    assert "2 process(es)" in multi.stderr
    single = eval_cli(*args, "--out", tmp_path / "single")
    assert "1 process(es)" in single.stderr
    assert (tmp_path / "multi" / "vismin_scores.csv").read_bytes() == (tmp_path / "single" / "vismin_scores.csv").read_bytes()
    results = [json.loads((tmp_path / name / "results.json").read_text()) for name in ("multi", "single")]
    assert results[0]["scores"] == results[1]["scores"]


def test_chat_model_by_likelihood_matches_one_sequence_at_a_time(tiny, bench, tmp_path, eval_cli):
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from diffbench.harness import chat
    from diffbench.vismin.schema import questions

    likelihood = eval_cli("vismin", "--model", tiny["llava"], "--out", tmp_path / "ll", "--answer", "likelihood",
                          "--batch-size", 5, "--num-workers", 2, "--limit", 10)
    assert "image-text-to-text model" in likelihood.stderr
    rows = read_rows(tmp_path / "ll" / "vismin_answers.csv")
    assert list(rows[0]) == ["id", *ANSWER_COLUMNS]
    assert {r["Text_Q0"] for r in rows} | {r["Text_Q1"] for r in rows} <= {"A", "B"}
    assert {r["Image_Q0"] for r in rows} | {r["Image_Q1"] for r in rows} <= {"First", "Second"}
    results = json.loads((tmp_path / "ll" / "results.json").read_text())
    assert results["protocol"]["answer"] == "likelihood" and results["unparseable_answers"] == 0

    # The batched, padded option log-likelihoods choose what one unpadded sequence at a time chooses.
    model = AutoModelForImageTextToText.from_pretrained(tiny["llava"]).eval()
    processor = AutoProcessor.from_pretrained(tiny["llava"])
    for sample, row in zip(drawn(bench, 10).select(range(3)), rows):
        for column, (question, positions, options) in zip(ANSWER_COLUMNS, questions(sample["text_0"], sample["text_1"])):
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


def per_sample_generations(model_path, bench, template, combined, max_new_tokens, splitting=None) -> list[list[str]]:
    """The paper's loop (evals/vlm/llava.py ``predict``): one question at a time, greedy ``generate``."""
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from diffbench.harness.chat import combine_images, render_prompt
    from diffbench.vismin.schema import questions

    model = AutoModelForImageTextToText.from_pretrained(model_path).eval()
    processor = AutoProcessor.from_pretrained(model_path)
    if splitting is not None:
        processor.image_processor.do_image_splitting = splitting
    answers = []
    for sample in bench:
        row = []
        for question, positions, _ in questions(sample["text_0"], sample["text_1"]):
            images = [sample[f"image_{p}"].convert("RGB") for p in positions]
            if combined and len(images) > 1:
                images = [combine_images(images)]
            prompt = render_prompt(processor, question, len(images), template)
            inputs = processor(text=[prompt], images=[images], return_tensors="pt")
            with torch.inference_mode():
                out = model.generate(**inputs, do_sample=False, max_new_tokens=max_new_tokens)
            row.append(processor.decode(out[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True).strip())
        answers.append(row)
    return answers


def test_chat_model_generates_by_default_and_reports_every_answer(tiny, bench, tmp_path, eval_cli):
    """The paper's protocol: greedy generation, the lenient parser, per-question accuracy, unparseable
    answers counted, every raw answer in generations.jsonl; batched = one question at a time."""
    from diffbench.vismin.schema import EXPECTED_ANSWERS, QUESTION_OPTIONS, answer_matches, parse_answer

    out = tmp_path / "gen"
    done = eval_cli("vismin", "--model", tiny["llava"], "--out", out, "--max-new-tokens", 3, "--batch-size", 3,
                    "--num-workers", 1, "--limit", 6)
    assert "6 samples" in done.stderr and "Unparseable answers" in done.stdout
    rows = read_rows(out / "vismin_answers.csv")
    expected = per_sample_generations(tiny["llava"], drawn(bench, 6), None, False, 3)
    assert [[r[c] for c in ANSWER_COLUMNS] for r in rows] == expected
    run = json.loads((out / "run.json").read_text())
    assert (run["answer"], run["max_new_tokens"], run["image_handling"], run["parser"]) == ("generate", 3, "separate", "lenient")
    assert run["prompts"]["text"].startswith("Does this image best match: (A) {text_0}, or (B) {text_1}?")
    results = json.loads((out / "results.json").read_text())
    lines = [json.loads(line) for line in (out / "generations.jsonl").read_text().splitlines()]
    assert len(lines) == 4 * 6 and set(lines[0]) == {"id", "question", "prompt", "output", "parsed", "expected"}
    assert [line["output"] for line in lines] == [answer for row in expected for answer in row]
    unparseable = sum(parse_answer(line["output"], QUESTION_OPTIONS[ANSWER_COLUMNS.index(line["question"])]) is None
                      for line in lines)
    assert results["unparseable_answers"] == unparseable == sum(line["parsed"] is None for line in lines)
    for column, expected_answer in zip(ANSWER_COLUMNS, EXPECTED_ANSWERS):
        right = sum(answer_matches(r[column], expected_answer) for r in rows)
        assert results["per_question"][column]["accuracy"] == pytest.approx(right * 100 / 6)
    assert "Text_Q0" in (out / "results.md").read_text()


def test_a_preset_runs_the_papers_llava_protocol(tiny, bench, tmp_path, eval_cli):
    """--preset llava-1.6-7b: combined images, the hand-written [INST] prompt, 64 new tokens; --model and
    --dtype given beside it win. Outputs equal the paper's one-question-at-a-time loop."""
    out = tmp_path / "preset"
    eval_cli("vismin", "--preset", "llava-1.6-7b", "--model", tiny["llava"], "--dtype", "float32", "--out", out,
             "--max-new-tokens", 2, "--limit", 3, "--num-workers", 1)
    run = json.loads((out / "run.json").read_text())
    assert run["preset"] == "llava-1.6-7b" and run["image_handling"] == "combined" and run["dtype"] == "float32"
    assert run["settings"]["dtype"] == {"value": "float32", "from": "option"}  # given beside the preset: it wins
    assert run["prompt_template"] == "<image> [INST] {question} [/INST]" and run["max_new_tokens"] == 2
    rows = read_rows(out / "vismin_answers.csv")
    expected = per_sample_generations(tiny["llava"], drawn(bench, 3), run["prompt_template"], True, 2)
    assert [[r[c] for c in ANSWER_COLUMNS] for r in rows] == expected
    unknown = eval_cli("vismin", "--preset", "gpt4", "--out", tmp_path / "x", check=False)
    assert unknown.returncode == 2 and "valid presets: clip-vit-b32" in unknown.stderr
    assert len(unknown.stderr.strip().splitlines()) == 1


def test_idefics2_gets_two_images_without_image_splitting(bench, tmp_path, eval_cli):
    """The paper's Idefics2 protocol (evals/vlm/idefics2.py): two separate images, do_image_splitting=False,
    though the checkpoint's processor splits by default; equal to one question at a time under it."""
    from diffbench.models import tiny as tiny_models

    words = tiny_models.words_of(list(bench["text_0"]) + list(bench["text_1"]))
    path = tiny_models.build_tiny_idefics2(tmp_path / "idefics2", words=words)
    out = tmp_path / "run"
    eval_cli("vismin", "--preset", "idefics2", "--model", path, "--dtype", "float32", "--max-new-tokens", 2,
             "--limit", 2, "--num-workers", 0, "--out", out)
    run = json.loads((out / "run.json").read_text())
    assert (run["image_handling"], run["image_splitting"]) == ("separate", False)
    assert run["environment"]["processor_settings"] == {"do_image_splitting": False}
    assert run["settings"] == {"image_splitting": {"value": False, "from": "preset"},
                               "dtype": {"value": "float32", "from": "option"}}
    rows = read_rows(out / "vismin_answers.csv")
    expected = per_sample_generations(path, drawn(bench, 2), None, False, 2, splitting=False)
    assert [[r[c] for c in ANSWER_COLUMNS] for r in rows] == expected


def test_without_a_preset_idefics2_splits_as_its_processor_says(bench, tmp_path, eval_cli):
    """Issue 20, item 8: no preset, no option: the processor's own do_image_splitting (on for this one) and the
    config's dtype, run.json saying so; --no-image-splitting turns it off, recorded as the option's."""
    from diffbench.models import tiny as tiny_models

    words = tiny_models.words_of(list(bench["text_0"]) + list(bench["text_1"]))
    path = tiny_models.build_tiny_idefics2(tmp_path / "idefics2", words=words)
    out = tmp_path / "own"
    args = ("vismin", "--model", path, "--max-new-tokens", 2, "--limit", 2, "--num-workers", 0)
    eval_cli(*args, "--out", out)
    run = json.loads((out / "run.json").read_text())
    assert run["image_splitting"] is None and "processor_settings" not in run["environment"]  # left as it is
    assert run["settings"] == {"image_splitting": {"value": True, "from": "processor"},
                               "dtype": {"value": "float32", "from": "model config"}}
    rows = read_rows(out / "vismin_answers.csv")
    assert [[r[c] for c in ANSWER_COLUMNS] for r in rows] == per_sample_generations(path, drawn(bench, 2), None,
                                                                                      False, 2, splitting=True)
    again = eval_cli(*args, "--out", out)  # re-scored without loading the processor: what it said stays recorded
    assert "resuming: 2 of 2" in again.stderr and "image-text-to-text model" not in again.stderr
    assert json.loads((out / "run.json").read_text())["settings"] == run["settings"]
    eval_cli(*args, "--no-image-splitting", "--out", tmp_path / "off")
    off = json.loads((tmp_path / "off" / "run.json").read_text())
    assert off["settings"]["image_splitting"] == {"value": False, "from": "option"}
    assert off["environment"]["processor_settings"] == {"do_image_splitting": False}
    refused = eval_cli(*args, "--no-image-splitting", "--out", out, check=False)  # not what `out` predicted with
    assert refused.returncode == 2 and "other settings (image_splitting: None -> False)" in refused.stderr


def test_a_chat_model_runs_in_the_dtype_its_config_names(tiny, tmp_path, eval_cli):
    """Issue 20, item 8: ``auto`` is the config's dtype (float32 here: "model config"); a config naming bfloat16
    runs in float32 on the CPU, run.json saying why (on a CUDA GPU with bfloat16: bfloat16, "model config")."""
    import torch

    out = tmp_path / "f32"
    eval_cli("vismin", "--model", tiny["llava"], "--max-new-tokens", 2, "--limit", 2, "--num-workers", 0, "--out", out)
    run = json.loads((out / "run.json").read_text())
    assert run["dtype"] == "float32" and run["settings"]["dtype"] == {"value": "float32", "from": "model config"}
    assert run["settings"]["image_splitting"] == {"value": None, "from": "processor"}  # LLaVA's has none
    half = tmp_path / "llava-bf16"
    shutil.copytree(tiny["llava"], half)
    config = json.loads((half / "config.json").read_text())
    (half / "config.json").write_text(json.dumps({**config, "dtype": "bfloat16"}))
    out = tmp_path / "bf16"
    done = eval_cli("vismin", "--model", half, "--max-new-tokens", 2, "--limit", 2, "--num-workers", 0, "--out", out)
    setting = json.loads((out / "run.json").read_text())["settings"]["dtype"]
    if torch.cuda.is_available() and torch.cuda.is_bf16_supported():
        assert setting == {"value": "bfloat16", "from": "model config"} and "in bfloat16" in done.stderr
    else:
        assert setting == {"value": "float32", "from": "default",
                           "why": "the model config says bfloat16; on the CPU float32 (half precision there is "
                                  "slow or unsupported)"}
        assert "on cpu in float32" in done.stderr


def test_bad_models_and_names_are_one_line_errors(tiny, tmp_path, eval_cli, vismin_built):
    """Issue 14 item 5: exit 2, one line, no traceback, nothing loaded before the check."""
    import torch
    from transformers import AutoModel, BertConfig

    BertConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32).save_pretrained(tmp_path / "bert")
    corrupt, pickled = tmp_path / "corrupt", tmp_path / "pickled"
    shutil.copytree(tiny["clip"], corrupt)
    (corrupt / "model.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00not safetensors")
    shutil.copytree(tiny["clip"], pickled)
    torch.save(AutoModel.from_pretrained(tiny["clip"]).state_dict(), pickled / "pytorch_model.bin")
    (pickled / "model.safetensors").unlink()
    cases = {
        (tmp_path / "nonexistent",): "no such model folder",
        (tmp_path / "bert",): "neither a contrastive nor an image-text-to-text model: found config BertConfig",
        (corrupt,): "model.safetensors: the weight file is corrupt or unreadable (SafetensorError",
        (pickled,): "only pickle weights (pytorch_model.bin)",
    }
    for (model,), message in cases.items():
        done = eval_cli("vismin", "--model", model, "--out", tmp_path / "out", "--overwrite", check=False)
        assert done.returncode == 2 and message in done.stderr, done.stderr
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    try:
        from diffbench.backends.open_clip_model import import_open_clip

        import_open_clip()
    except ImportError:  # here open_clip cannot run (no torchvision for this torch): said in one line
        done = eval_cli("vismin", "--model", "open_clip:ViT-B-32@openai", "--out", tmp_path / "oc", check=False)
        assert done.returncode == 2 and "open_clip cannot be imported here" in done.stderr
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    allowed = eval_cli("vismin", "--model", pickled, "--allow-pickle", "--out", tmp_path / "pk", "--limit", 2)
    assert allowed.returncode == 0
    unknown = eval_cli("no_such_task", "--out", tmp_path / "t", check=False)
    assert unknown.returncode == 2 and "unknown task 'no_such_task'; the tasks are clevr_change" in unknown.stderr
    assert "diffbench build" not in unknown.stderr
    clip_on_captions = eval_cli("omnidiff", "--model", tiny["clip"], "--out", tmp_path / "c", check=False)
    assert clip_on_captions.returncode == 2 and "needs an image-text-to-text model" in clip_on_captions.stderr
    from diffbench.harness.models import ModelKindError, detect_kind

    (tmp_path / "remote").mkdir()
    (tmp_path / "remote" / "config.json").write_text(json.dumps(
        {"model_type": "custom-vlm", "auto_map": {"AutoConfig": "configuration.C", "AutoModel": "modeling.M"}}))
    with pytest.raises(ModelKindError, match="pass --trust-remote-code"):
        detect_kind(str(tmp_path / "remote"))


def test_the_upstream_save_to_disk_release_runs_to_the_end(tiny, bench, tmp_path, eval_cli):
    """``--data-files`` on a folder laid out as ``mair-lab/vismin-bench`` (integer ids restarting per
    category, category names): scored, with our ``<category>/<id>`` ids in the submission."""
    import datasets

    rows = bench.select(range(8))
    categories = rows.features["category"].int2str(list(rows["category"]))
    upstream = (rows.remove_columns(["id", "category"])
                .add_column("category", categories)
                .add_column("id", [int(i.split("/")[1]) for i in rows["id"]]))
    upstream = upstream.select_columns(["image_0", "text_0", "image_1", "text_1", "category", "id"])
    datasets.DatasetDict({"test": upstream}).save_to_disk(str(tmp_path / "vismin-bench"))
    out = tmp_path / "run"
    eval_cli("vismin", "--model", tiny["clip"], "--data-files", tmp_path / "vismin-bench", "--out", out)
    assert [r["id"] for r in read_rows(out / "vismin_scores.csv")] == list(rows["id"])
    assert json.loads((out / "results.json").read_text())["samples"] == 8


def test_a_corrupt_image_is_reported_with_its_sample(tiny, bench, tmp_path, eval_cli):
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

    from diffbench.harness import runtime
    from diffbench.vismin import contrastive
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
        assert all(math.isclose(a[c], b[c], abs_tol=1e-5) for c in SCORE_COLUMNS)


def test_difference_captioning_per_change_type(tiny, tmp_path, eval_cli):
    """A chat model describes OmniDiff sample pairs; COCO metrics overall and per change type."""
    if shutil.which("java") is None:
        pytest.skip("the COCO caption metrics need Java")
    from diffbench.data import building
    from diffbench.data.building import build_configs

    build_configs("omnidiff", [building.default_config("omnidiff")], "sample", overwrite=True)
    test = building.load_built("omnidiff", None, "test")
    out = tmp_path / "run"
    done = eval_cli("omnidiff", "--model", tiny["llava"], "--out", out, "--max-new-tokens", 6, "--batch-size", 4,
                    "--num-workers", 1, "--limit", 8, "--image-handling", "combined")
    assert "| all |" in done.stdout and "8 pairs" in done.stderr
    captions = json.loads((out / "captions.json").read_text())
    pairs = drawn(test, 8, "change_types")
    assert [c["image_id"] for c in captions] == list(pairs["id"]) and all(c["caption"] for c in captions)
    results = json.loads((out / "results.json").read_text())
    assert {"Bleu_4", "METEOR", "ROUGE_L", "CIDEr"} <= set(results["scores"]) and results["samples"] == 8
    assert results["protocol"]["sample_draw"] == f"8 of {len(test)} samples (--limit 8), stratified by change_types"
    labels = {label for row in pairs["change_types"] for label in row}
    assert set(results["groups"]) == labels
    assert results["protocol"]["image_handling"] == "combined" and results["provenance"]["synthetic"] is True
    assert (out / "results.png").read_bytes()[:4] == b"\x89PNG"
    from diffbench.data.provenance import SYNTHETIC_NOTE

    assert (out / "results.md").read_text().count(SYNTHETIC_NOTE) == 1  # said once, above the table
    # without --limit over the same folder: extended, the 8 captions kept as they were, only the rest asked
    done = eval_cli("omnidiff", "--model", tiny["llava"], "--out", out, "--max-new-tokens", 6, "--batch-size", 4,
                    "--num-workers", 1, "--image-handling", "combined")
    assert f"resuming: 8 of {len(test)} pairs already predicted" in done.stderr
    assert json.loads((out / "run.json").read_text())["environment"]["predictions"] == {"kept": 8,
                                                                                        "predicted": len(test) - 8}
    extended = json.loads((out / "captions.json").read_text())
    assert [c for c in extended if c["image_id"] in set(pairs["id"])] == captions and len(extended) == len(test)


def test_processes_leave_the_process_group(tmp_path):
    """Each process destroys its gloo group itself: left to interpreter exit it can abort the process."""
    script = tmp_path / "leave.py"
    script.write_text("import torch.distributed as dist\n"
                      "from diffbench.harness.runtime import processes\n"
                      "procs = processes('cpu')\n"
                      "assert procs.count == 2 and dist.is_initialized()\n"
                      "procs.gather([procs.index])\n"
                      "procs.close()\n"
                      "state = 'left' if not dist.is_initialized() else 'still in the group'\n"
                      f"open(f'{tmp_path}/rank{{procs.index}}', 'w').write(state)\n")
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", str(script)]
    done = subprocess.run(command, env=ENV, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert [(tmp_path / f"rank{i}").read_text() for i in (0, 1)] == ["left", "left"]
