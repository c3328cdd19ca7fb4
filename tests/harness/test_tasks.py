"""The task layer without a model run: the registry, ``diffbench list``, presets as run options, the
chat protocol's pieces (combined images, prompt templates, image splitting), the run record."""

from __future__ import annotations

import argparse
import json

import pytest
from PIL import Image

from diffbench import tasks


def test_every_benchmark_is_a_task_and_unknown_names_list_them():
    assert tasks.task_names() == ["clevr_change", "clevr_dc", "image_editing_request", "omnidiff", "spot_the_diff",
                                  "vismin"]
    assert tasks.get("vismin").kinds == ("contrastive", "image-text-to-text")
    assert all(tasks.get(n).kinds == ("image-text-to-text",) for n in tasks.task_names() if n != "vismin")
    with pytest.raises(tasks.UnknownTaskError, match="unknown task 'visminn'; the tasks are clevr_change"):
        tasks.get("visminn")


def test_vismin_picks_the_task_for_the_model_kind():
    from diffbench.harness.models import IMAGE_TEXT_TO_TEXT, ModelKind
    from diffbench.vismin.tasks import VisminChat, VisminContrastive

    assert isinstance(tasks.get("vismin").for_kind(ModelKind("contrastive", "clip", None)), VisminContrastive)
    assert isinstance(tasks.get("vismin").for_kind(ModelKind(IMAGE_TEXT_TO_TEXT, "llava", None)), VisminChat)


def test_list_prints_tasks_datasets_and_presets(capsys):
    from diffbench.cli import main

    assert main(["list", "tasks"]) == 0
    out = capsys.readouterr().out
    assert "vismin" in out and "contrastive or image-text-to-text models" in out and "spot_the_diff" in out
    assert main(["list", "presets"]) == 0
    out = capsys.readouterr().out
    for row in ("'CLIP (ViT-B/32)'", "'LlaVa1.6 (7B)'", "'Idefics2'", "'GPT4-o'", "'VisMin-CLIP'", "'Idefics2-VisMin'"):
        assert row in out, row
    assert "llava-hf/llava-v1.6-mistral-7b-hf (verified); generate, 64 new tokens, combined images, float16" in out
    assert main(["list", "datasets"]) == 0
    assert "vismin                 configurations: bench, train, pairs (default bench)" in capsys.readouterr().out


def args_for(*argv):
    from diffbench.cli import build_parser

    return build_parser().parse_args(["eval", *argv])


def test_a_preset_sets_the_papers_protocol_and_the_command_line_wins():
    from diffbench.commands.eval import options_from_args

    idefics = options_from_args(args_for("vismin", "--preset", "idefics2"))
    assert (idefics.model, idefics.dtype, idefics.answer, idefics.max_new_tokens, idefics.image_handling,
            idefics.image_splitting) == ("HuggingFaceM4/idefics2-8b", "float16", "generate", 128, "separate", False)
    tuned = options_from_args(args_for("vismin", "--preset", "Idefics2-VisMin"))  # the table's own row name
    assert (tuned.model, tuned.processor) == ("mair-lab/vismin-idefics2-8b", "HuggingFaceM4/idefics2-8b")
    mine = options_from_args(args_for("vismin", "--preset", "llava-1.6-7b", "--max-new-tokens", "8", "--dtype", "float32"))
    assert (mine.max_new_tokens, mine.dtype, mine.image_handling) == (8, "float32", "combined")
    assert str(mine.out) == "runs/vismin-llava-v1.6-mistral-7b-hf"
    api = options_from_args(args_for("vismin", "--preset", "gpt-4o"))
    assert (api.api_base, api.api_key_env, api.model) == ("https://api.openai.com/v1", "OPENAI_API_KEY", "gpt-4o-2024-05-13")
    clip = options_from_args(args_for("vismin", "--preset", "clip-vit-b32"))
    assert (clip.model, clip.dtype) == ("openai/clip-vit-base-patch32", "float32")
    blip = options_from_args(args_for("vismin", "--preset", "blip"))  # its ITC heads: test_eval checks the scores
    assert (blip.model, blip.dtype) == ("Salesforce/blip-itm-base-flickr", "float32")


def test_the_python_api_applies_a_preset_as_the_cli_does(tmp_path):
    """tasks.resolve(RunOptions(preset=...)) gets the row's settings (not only its name in run.json), equal to --preset's."""
    from diffbench.commands.eval import options_from_args
    from diffbench.harness.options import RunOptions

    for name in ("llava-1.6-7b", "idefics2", "gpt-4o", "clip-vit-b32"):
        library = tasks.resolve(RunOptions(task="vismin", preset=name, out=tmp_path))
        assert library == options_from_args(args_for("vismin", "--preset", name, "--out", str(tmp_path))), name
    llava = tasks.resolve(RunOptions(preset="llava-1.6-7b", out=tmp_path, dtype="float32"))
    assert (llava.model, llava.image_handling, llava.max_new_tokens, llava.dtype) == (
        "llava-hf/llava-v1.6-mistral-7b-hf", "combined", 64, "float32")
    assert llava.prompt_template == "<image> [INST] {question} [/INST]"
    assert tasks.resolve(RunOptions(preset="idefics2", out=tmp_path)).image_splitting is False
    with pytest.raises(ValueError, match="runs code from the model's repository"):
        tasks.resolve(RunOptions(preset="internvl-1.5", out=tmp_path))


@pytest.mark.parametrize("name, message", [
    ("nope", "unknown preset 'nope'; valid presets: clip-vit-b32, clip-vit-b16"),
    ("vismin-clip", "preset vismin-clip: cannot fetch mair-lab/vismin-clip-vit-large/model.pt"),  # offline here
    ("internvl-1.5", "runs code from the model's repository; pass --trust-remote-code"),
])
def test_presets_that_cannot_run_as_asked_say_why(name, message):
    from diffbench.commands.eval import options_from_args

    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        options_from_args(args_for("vismin", "--preset", name))


def test_an_api_needs_a_model_name():
    from diffbench.commands.eval import options_from_args

    with pytest.raises(ValueError, match="--api-base needs --model"):
        options_from_args(args_for("vismin", "--api-base", "http://127.0.0.1:9/v1"))


def test_presets_are_vismin_rows():
    from diffbench.commands.eval import options_from_args

    with pytest.raises(ValueError, match="presets are VisMin's published rows"):
        options_from_args(args_for("omnidiff", "--preset", "idefics2"))


def test_combined_images_sit_side_by_side():
    from diffbench.harness.chat import combine_images

    left, right = Image.new("RGB", (4, 2), (255, 0, 0)), Image.new("RGB", (3, 4), (0, 0, 255))
    combined = combine_images([left, right])
    assert combined.size == (7, 4)
    assert combined.getpixel((0, 1)) == (255, 0, 0) and combined.getpixel((6, 0)) == (0, 0, 255)
    assert combined.getpixel((0, 0)) == (255, 255, 255)  # the shorter image is centred on white


def test_prompt_templates_and_the_chat_template(tmp_path):
    from transformers import AutoProcessor

    from diffbench.harness.chat import render_prompt
    from diffbench.models.tiny import build_tiny_image_text_to_text

    processor = AutoProcessor.from_pretrained(build_tiny_image_text_to_text(tmp_path / "llava"))
    assert render_prompt(processor, "Which?", 2) == "user: <image> <image> Which?\nassistant: "
    assert render_prompt(processor, "Which?", 1, "<image> [INST] {question} [/INST]") == "<image> [INST] Which? [/INST]"
    assert render_prompt(processor, "Which?", 2, "{images}\n{question}") == "<image> <image>\nWhich?"


def test_image_splitting_is_set_only_when_asked_where_the_processor_has_it():
    from transformers import Idefics2ImageProcessor

    from diffbench.harness.chat import ChatProtocol, prepare_processor

    processor = argparse.Namespace(image_processor=Idefics2ImageProcessor(do_image_splitting=True))
    assert prepare_processor(processor, ChatProtocol()) == {}  # by default the processor's own (issue 20, item 8)
    assert processor.image_processor.do_image_splitting is True
    assert prepare_processor(processor, ChatProtocol(image_splitting=False)) == {"do_image_splitting": False}
    assert processor.image_processor.do_image_splitting is False
    clip = argparse.Namespace(image_processor=object())
    assert prepare_processor(clip, ChatProtocol(image_splitting=False)) == {}


def test_the_run_record_fingerprints_weights_and_data(tmp_path):
    import datasets

    from diffbench.harness.record import dataset_fingerprint, weights_fingerprint

    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "model.safetensors").write_bytes(b"one")
    first = weights_fingerprint(str(tmp_path / "m"))
    (tmp_path / "m" / "model.safetensors").write_bytes(b"two")
    assert weights_fingerprint(str(tmp_path / "m"))["sha256"] != first["sha256"]
    assert weights_fingerprint("openai/clip-vit-base-patch32", "main") == {
        "source": "hub", "repo": "openai/clip-vit-base-patch32", "revision": "main"}  # nothing cached: as asked
    data = tmp_path / "d.parquet"
    datasets.Dataset.from_dict({"id": ["a", "b"]}).to_parquet(str(data))
    before = dataset_fingerprint(datasets.load_dataset("parquet", data_files=str(data), split="train"), [data])
    datasets.Dataset.from_dict({"id": ["a", "c"]}).to_parquet(str(data))
    after = dataset_fingerprint(datasets.load_dataset("parquet", data_files=str(data), split="train"), [data])
    assert before != after


def test_a_resume_onto_changed_data_is_refused_with_the_reason(tmp_path):
    from diffbench.harness.outputs import RunMismatchError, check_manifest

    check_manifest(tmp_path, {"task": "vismin", "dataset_fingerprint": "a", "environment": {"date": "x"}})
    check_manifest(tmp_path, {"task": "vismin", "dataset_fingerprint": "a", "environment": {"date": "y"}})  # same run
    with pytest.raises(RunMismatchError, match="the data was rebuilt or changed since these predictions were made"):
        check_manifest(tmp_path, {"task": "vismin", "dataset_fingerprint": "b", "environment": {"date": "y"}})
    assert json.loads((tmp_path / "run.json").read_text())["environment"] == {"date": "y"}


@pytest.mark.parametrize("handling", ["separate", "combined"])
def test_the_local_and_api_collates_build_turns_with_one_function(handling):
    """Both collates ask each turn through ``turn_inputs``: the same questions and the same images."""
    from diffbench.harness.chat import ApiCollate, ChatProtocol, turn_inputs
    from diffbench.vismin.tasks import vismin_turns

    item = {"index": 0, "id": "s0", "texts": ("a red box", "a blue box"),
            "images": [Image.new("RGB", (8, 6), "red"), Image.new("RGB", (4, 6), "blue")]}
    protocol = ChatProtocol(image_handling=handling)
    turns = turn_inputs(item, vismin_turns, protocol)
    assert [len(pictures) for _, pictures, _ in turns] == ([1, 1, 1, 1] if handling == "combined" else [1, 1, 2, 2])
    if handling == "combined":
        assert turns[2][1][0].size == (12, 6)  # both images side by side in one
    requests = [request for _, _, request in ApiCollate(protocol, vismin_turns)([item])["requests"]]
    assert [(r.prompt, [i.tobytes() for i in r.images]) for r in requests] == [
        (question, [i.tobytes() for i in pictures]) for question, pictures, _ in turns]


def test_local_weight_digests_are_cached_by_path_size_and_mtime(tmp_path, monkeypatch):
    """A resumed run does not hash a local model's weights again: the digest is reused while the file's
    path, size and mtime_ns stay; a rewrite (new mtime) is hashed afresh."""
    import os

    from diffbench.harness import record

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    folder = tmp_path / "model"
    folder.mkdir()
    weights = folder / "model.safetensors"
    weights.write_bytes(b"weights-1")
    first = record.weights_fingerprint(str(folder))
    assert record.digest_cache_path().is_file() and str(weights.resolve()) in record.digest_cache_path().read_text()
    stat = weights.stat()
    weights.write_bytes(b"weights-2")  # same size; the same mtime put back: only the cache can answer
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert record.weights_fingerprint(str(folder)) == first
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))  # rewritten: a new mtime
    assert record.weights_fingerprint(str(folder))["sha256"] != first["sha256"]


def test_open_clip_local_weights_are_fingerprinted(tmp_path, monkeypatch):
    from diffbench.harness import record

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    folder = tmp_path / "oc"
    folder.mkdir()
    (folder / "open_clip_model.safetensors").write_bytes(b"one")
    checkpoint = tmp_path / "epoch_3.pt"
    checkpoint.write_bytes(b"two")
    by_dir = record.weights_fingerprint(f"open_clip:local-dir:{folder}")
    by_file = record.weights_fingerprint(f"open_clip:ViT-B-32@{checkpoint}")
    assert by_dir["spec"] == f"local-dir:{folder}" and by_dir["files"] == 1 and len(by_dir["sha256"]) == 64
    assert by_file["files"] == 1 and by_file["sha256"] != by_dir["sha256"]
    (folder / "open_clip_model.safetensors").write_bytes(b"new!")
    assert record.weights_fingerprint(f"open_clip:local-dir:{folder}")["sha256"] != by_dir["sha256"]
    assert record.weights_fingerprint("open_clip:ViT-B-32@openai") == {"source": "open_clip", "spec": "ViT-B-32@openai"}
    # an hf-hub: spec records the cached snapshot's commit; unknown before its first download, then the same run
    assert record.weights_fingerprint("open_clip:hf-hub:org/not-cached")["revision"] is None
    spec = {"source": "open_clip", "spec": "hf-hub:org/not-cached"}
    assert record.resolves({**spec, "revision": None}, {**spec, "revision": "a" * 40})
    assert not record.resolves({**spec, "revision": "b" * 40}, {**spec, "revision": "a" * 40})
    assert not record.resolves({**spec, "revision": None}, {**spec, "spec": "hf-hub:org/other", "revision": "a" * 40})


def test_a_run_record_from_before_fast_decode_was_recorded_resumes_only_without_it(tmp_path):
    from diffbench.harness import outputs

    older = {"task": "vismin", "weights": {"source": "local", "sha256": "0" * 64}}
    outputs.write_json(tmp_path / outputs.RUN_FILE, older)
    outputs.check_manifest(tmp_path, {**older, "fast_decode": False})  # the same run: it decoded in full
    with pytest.raises(outputs.RunMismatchError, match="reduced scale.*fast_decode: False -> True"):
        outputs.check_manifest(tmp_path, {**older, "fast_decode": True})
