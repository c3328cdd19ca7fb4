"""Presets: one per published model row, named as the tables name them, with the paper's protocol."""

from __future__ import annotations

import csv

import pytest

from diffbench.vismin import presets
from diffbench.vismin.presets import PRESETS, UnknownPresetError, get_preset, markdown_table, published_scores

NOT_MODELS = {"Random Chance", "MTurk Human"}


def published_rows(path):
    with open(path, newline="", encoding="utf-8") as f:
        return [(row["table"], row["model"]) for row in csv.DictReader(f) if row["model"] not in NOT_MODELS]


def test_every_published_model_row_has_exactly_one_preset(shared_dir):
    rows = published_rows(shared_dir / "reference" / "vismin_published_results.csv")
    covered = [(p.table, p.table_name) for p in PRESETS.values()]
    assert sorted(covered) == sorted(rows)
    assert covered == rows  # the published order


def test_names_as_the_issue_quotes_them():
    names = {p.table_name for p in PRESETS.values()}
    for name in ("CLIP (ViT-B/32)", "SigLip (ViT-B/16)", "LlaVa1.6 (7B)", "Idefics2", "InternVL1.5",
                 "Gemini1.0 Pro", "GPT4-o", "VisMin-CLIP", "Idefics2-VisMin"):
        assert name in names


def test_each_preset_is_complete_and_consistent():
    for p in PRESETS.values():
        assert p.backend in presets.BACKENDS, p.name
        assert p.id_status in (presets.VERIFIED, presets.INFERRED), p.name
        assert p.evidence, p.name
        assert p.name == p.name.lower() and " " not in p.name
        if p.backend in (presets.TRANSFORMERS_CHAT, presets.OPENAI_API):
            assert p.answer == "generate" and p.image_handling in ("combined", "separate"), p.name
        else:
            assert p.answer is None and p.dtype == "float32", p.name  # the official code scores in float32
        if p.backend == presets.OPENAI_API:
            assert p.api_base and p.api_key_env and not p.public_weights
        if p.id_status == presets.VERIFIED and p.backend != presets.OPENAI_API:
            assert "rabiulcste/vismin" in p.evidence or "mair-lab/" in p.evidence, p.name


def test_the_paper_protocol_of_the_chat_rows():
    llava, idefics2 = get_preset("LlaVa1.6 (7B)"), get_preset("idefics2")
    assert (llava.max_new_tokens, llava.image_handling, llava.dtype) == (64, "combined", "float16")
    assert llava.prompt_template == "<image> [INST] {question} [/INST]"
    assert (idefics2.max_new_tokens, idefics2.image_handling) == (128, "separate")
    assert idefics2.processor_kwargs == {"do_image_splitting": False}
    assert get_preset("idefics2-vismin").processor_id == "HuggingFaceM4/idefics2-8b"
    assert get_preset("internvl-1.5").needs_remote_code
    assert llava.protocol()["answer"] == "generate"


def test_a_contrastive_row_s_protocol_says_what_the_harness_records():
    """A contrastive row has no answer mode: its protocol names the similarity, as run.json does."""
    from types import SimpleNamespace

    from diffbench.harness.options import RunOptions
    from diffbench.vismin.tasks import VisminContrastive

    options = RunOptions(model="m", out="o")
    for name, model_class in (("clip-vit-b32", "CLIPModel"), ("blip", "BlipForImageTextRetrieval")):
        kind = SimpleNamespace(model_class=type(model_class, (), {}))
        recorded = VisminContrastive().protocol(options, kind)
        protocol = get_preset(name).protocol()
        assert "answer" not in protocol and protocol["similarity"] == recorded["similarity"], name


def test_blip_scores_with_its_contrastive_heads_not_itm():
    blip = get_preset("BLIP")
    assert blip.backend == presets.TRANSFORMERS_BLIP_ITC
    assert "ITC" in blip.notes and "not the ITM head" in blip.notes


def test_unknown_preset_lists_the_valid_ones():
    with pytest.raises(UnknownPresetError) as err:
        get_preset("clip-vit-b33")
    message = str(err.value)
    assert "clip-vit-b33" in message and all(name in message for name in PRESETS)
    assert isinstance(err.value, ValueError)  # the CLI turns it into one line


def test_a_row_name_in_both_tables_asks_which():
    with pytest.raises(UnknownPresetError, match="idefics2 .zero-shot.*idefics2-finetune-baseline .fine-tuned"):
        get_preset("Idefics2")
    assert get_preset("VisMin-CLIP").name == "vismin-clip"


def test_published_scores_come_from_the_packaged_table():
    scores = published_scores(get_preset("gpt-4o"))
    assert scores["relation_group"] == pytest.approx(46.78) and scores["avg"] == pytest.approx(73.93)
    zero_shot = published_scores(get_preset("idefics2"))
    assert published_scores(get_preset("idefics2-finetune-baseline")) == zero_shot


def test_markdown_table_has_one_line_per_row_with_its_command():
    lines = markdown_table().splitlines()
    assert len(lines) == 2 + len(PRESETS)
    for line, p in zip(lines[2:], PRESETS.values()):
        assert f"`{p.name}`" in line and f"--preset {p.name}`" in line
        assert line.count("|") - line.count("\\|") == 8  # 7 columns: no cell breaks the table
    assert "GEMINI_API_KEY=..." in markdown_table([get_preset("gemini-1.0-pro")])


def test_a_given_model_wins_and_the_row_s_checkpoint_is_not_fetched(monkeypatch):
    """``--preset vismin-clip --model ./vismin-clip-hf`` (the converted folder) downloads nothing: offline
    the row's 5.1 GB open_clip checkpoint could not be fetched, and it is not needed."""
    from diffbench import tasks
    from diffbench.harness.options import RunOptions

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ValueError, match="cannot fetch mair-lab/vismin-clip-vit-large/model.pt"):
        tasks.resolve(RunOptions(preset="vismin-clip", out="o"))
    options = tasks.resolve(RunOptions(preset="vismin-clip", model="vismin-clip-hf", out="o"))
    assert options.model == "vismin-clip-hf" and options.dtype == get_preset("vismin-clip").dtype
