"""diffbench's lmms-eval tasks, run by lmms-eval itself on a tiny LLaVA through its own ``llava_hf`` model.

Compared with ``diffbench eval`` on the same samples and the same model, question by question: the same
answers and the same scores. lmms-eval's ``llava_hf`` asks one prompt at a time, so ``diffbench eval``
runs with ``--batch-size 1`` (left-padded batches of a random tiny model can flip a greedy token).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import require_module  # noqa: E402

# skipped outside CI where lmms-eval is missing; under CI a failure: `make test` installs it ([dev] holds [lmms])
lmms_eval = require_module("lmms_eval", "lmms-eval comes with the [lmms] extra (in [dev]); it needs torchvision, "
                                        "which make test installs (torch 2.14.1, torchvision 0.29.1)")

from diffbench.lmms_eval_tasks import TAG, TASKS, path  # noqa: E402

MAX_NEW_TOKENS = 8  # enough for varied answers from the tiny model, few enough for seconds
TINY_SEED = 1  # a seed whose random LLaVA answers differ from question to question (asserted below)


def task_manager():
    from lmms_eval.tasks import TaskManager

    return TaskManager(include_path=str(path()), include_defaults=False)


def run_lmms_eval(model_dir: Path, task: str, limit=None) -> dict:
    """lmms-eval's Python API on ``task``, through its ``llava_hf`` model on the CPU."""
    from lmms_eval.evaluator import simple_evaluate

    # device_map: llava_hf's default "" is refused by transformers 5's from_pretrained
    return simple_evaluate(model="llava_hf", model_args=f"pretrained={model_dir},device=cpu,device_map=cpu",
                           tasks=[task], task_manager=task_manager(), limit=limit, log_samples=True,
                           bootstrap_iters=0, gen_kwargs=f"max_new_tokens={MAX_NEW_TOKENS}")


def lmms_scores(out: dict, task: str) -> dict:
    """A task's results as ``{metric: value}`` (lmms-eval names them ``metric,filter``)."""
    return {key.split(",")[0]: value for key, value in out["results"][task].items()
            if "," in key and "_stderr" not in key}


def run_diffbench_eval(task: str, model_dir: Path, out: Path) -> dict:
    from diffbench.cli import main

    code = main(["eval", task, "--model", str(model_dir), "--out", str(out), "--batch-size", "1",
                 "--num-workers", "0", "--max-new-tokens", str(MAX_NEW_TOKENS), "--no-progress"])
    assert code == 0
    return json.loads((out / "results.json").read_text())


def test_the_yaml_ships_in_the_package_and_lmms_eval_lists_the_six_tasks():
    import diffbench

    folder = path()
    assert folder.parent == Path(diffbench.__file__).resolve().parent
    assert (folder / "vismin" / "vismin.yaml").is_file()
    manager = task_manager()
    assert set(TASKS) <= set(manager.all_subtasks)
    assert TAG in manager.all_tags
    assert set(manager.all_tasks) == {*TASKS, TAG}  # nothing else in the folder: no stray YAML


def test_the_command_prints_the_folder(capsys):
    from diffbench.cli import main

    assert main(["lmms-eval", "path"]) == 0
    assert Path(capsys.readouterr().out.strip()) == path()


@pytest.fixture(scope="module")
def bench(vismin_built):
    from diffbench.data.building import load_built

    return load_built("vismin", "bench", "test")


@pytest.fixture(scope="module")
def tiny_llava(tmp_path_factory, bench):
    from diffbench.captions.tasks import DEFAULT_PROMPT
    from diffbench.models import tiny

    words = tiny.words_of(list(bench["text_0"]) + list(bench["text_1"]) + [DEFAULT_PROMPT])
    return tiny.build_tiny_image_text_to_text(tmp_path_factory.mktemp("tiny") / "llava", words=words, seed=TINY_SEED)


def test_vismin_same_answers_and_scores_as_diffbench_eval(bench, tiny_llava, tmp_path):
    from diffbench.vismin.schema import ANSWER_COLUMNS

    out = run_lmms_eval(tiny_llava, "vismin")
    ours = run_diffbench_eval("vismin", tiny_llava, tmp_path / "run")

    logged = out["samples"]["vismin"]
    assert len(logged) == 4 * len(bench)
    generations = [json.loads(line) for line in (tmp_path / "run" / "generations.jsonl").read_text().splitlines()]
    asked = {(g["id"], g["question"]): g for g in generations}
    docs = out["samples"]["vismin"]
    for sample in docs:
        doc = bench[sample["doc_id"] // 4]
        question = ANSWER_COLUMNS[sample["doc_id"] % 4]
        mine = asked[(doc["id"], question)]
        assert sample["arguments"][0] == mine["prompt"]  # the question text lmms-eval sent
        assert sample["filtered_resps"][0] == mine["output"], (doc["id"], question)
    answers = [g["output"] for g in generations]
    assert len(set(answers)) >= 5  # the answers depend on the question and images: a real comparison

    scores = lmms_scores(out, "vismin")
    assert {name: scores[name] for name in ours["scores"]} == ours["scores"]
    for category, cell in ours["groups"].items():
        assert {name: scores[f"{category}_{name}"] for name in cell["scores"]} == cell["scores"], category
    assert scores["ci95"] == ours["ci95"]


def test_lmms_evals_chat_prompt_is_the_one_diffbench_renders(bench, tiny_llava):
    """lmms-eval's chat ``llava_hf`` (``lmms_eval/models/chat/llava_hf.py``) renders the messages the task
    builds (``ConfigurableMessagesTask._auto_doc_to_messages``: the images, then the text, one user turn)
    with the processor's chat template, as :func:`diffbench.harness.chat.render_prompt` does: the same text."""
    from lmms_eval.protocol import ChatMessages
    from lmms_eval.tasks import get_task_dict
    from transformers import AutoProcessor

    from diffbench.harness.chat import render_prompt
    from diffbench.vismin.schema import questions

    task = get_task_dict(["vismin"], task_manager(), task_type="chat")["vismin"]
    processor = AutoProcessor.from_pretrained(tiny_llava)
    docs = task.test_docs()
    for n in range(8):
        messages = ChatMessages(messages=task.doc_to_messages(docs[n])).model_dump()["messages"]
        theirs = processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        question, positions, _ = questions(bench[n // 4]["text_0"], bench[n // 4]["text_1"])[n % 4]
        assert theirs == render_prompt(processor, question, len(positions))
        assert theirs.count("<image>") == len(positions)


def test_vismin_aggregation_is_the_metrics_rule_sample_by_sample(bench):
    """The aggregation regroups four docs a sample and scores them with the ``vismin_group_score`` metric:
    answers right, wrong, ambiguous and unparseable, in every category, against the metric itself."""
    from diffbench.lmms_eval_tasks.vismin import utils
    from diffbench.vismin.schema import EXPECTED_ANSWERS, QUESTION_OPTIONS
    from diffbench.vismin.scoring import metric

    docs = utils.process_docs(bench)
    assert len(docs) == 4 * len(bench) and docs[5][utils.QUESTION] == 1 and docs[5]["id"] == bench[1]["id"]
    right = [lambda q: EXPECTED_ANSWERS[q], lambda q: f"({EXPECTED_ANSWERS[q]}) I think",
             lambda q: " or ".join(QUESTION_OPTIONS[q])]  # the official rule counts an ambiguous answer right
    wrong = [lambda q: [o for o in QUESTION_OPTIONS[q] if o != EXPECTED_ANSWERS[q]][0], lambda q: "no idea"]
    # sample i: every answer right (i % 3 == 0), or one of its four wrong or unparseable
    answers = [wrong[n % 2](n % 4) if (n // 4) % 3 and n % 4 == (n // 4) % 4 else right[n % 3](n % 4)
               for n in range(len(docs))]
    items = [utils.process_results(doc, [answer])["group"] for doc, answer in zip(docs.remove_columns(["image_0", "image_1"]), answers)]
    items.reverse()  # lmms-eval gathers in any order: regrouped by id
    flat = {name: getattr(utils, f"aggregate_{name}")(items) for name in utils.METRICS}

    columns = {c: [answers[4 * i + q] for i in range(len(bench))] for q, c in enumerate(("Text_Q0", "Text_Q1", "Image_Q0", "Image_Q1"))}
    categories = bench.features["category"].int2str(list(bench["category"]))
    expected = metric().compute(**columns, categories=categories)
    assert flat["group"] == expected["group_score"] and flat["text"] == expected["text_score"]
    assert flat["avg"] == pytest.approx(expected["avg_as_published"])
    for category, cell in expected["per_category"].items():
        for name in ("text", "image", "group"):
            assert flat[f"{category}_{name}"] == cell[f"{name}_score"]
    assert 0 < flat["group"] < 100 and len(expected["per_category"]) == 4


def test_a_caption_task_scores_once_as_diffbench_eval_does(tiny_llava, tmp_path, monkeypatch):
    """OmniDiff's sample build, by bare name: the same captions and the same scores (every metric, every
    group) as ``diffbench eval``, from one scoring of the run for all its metrics."""
    from diffbench.data.building import build_configs, load_built
    from diffbench.lmms_eval_tasks.captions import utils

    build_configs("omnidiff", ["default"], "sample", n=24, seed=0, image_size=(32, 32), overwrite=True)
    pairs = load_built("omnidiff", "default", "test")
    calls = []
    scored = utils._SCORED.function
    monkeypatch.setattr(utils._SCORED, "function", lambda items: calls.append(len(items)) or scored(items))

    out = run_lmms_eval(tiny_llava, "omnidiff")
    assert calls == [len(pairs)]  # one scoring for the seven metrics, the groups and the intervals
    ours = run_diffbench_eval("omnidiff", tiny_llava, tmp_path / "run")
    predictions = {p["image_id"]: p["caption"] for p in json.loads((tmp_path / "run" / "captions.json").read_text())}
    logged = out["samples"]["omnidiff"]
    assert [predictions[pairs[s["doc_id"]]["id"]] for s in logged] == [" ".join(s["filtered_resps"][0].split()) for s in logged]
    scores = lmms_scores(out, "omnidiff")
    assert {name: scores[name] for name in ours["scores"]} == ours["scores"]
    assert scores["groups"] == ours["groups"] and scores["ci95"] == ours["ci95"]
    assert ours["groups"] and any(value > 0 for value in ours["scores"].values())


def test_a_yaml_of_ones_own_reads_a_published_folder_with_images_side_by_side(bench, tiny_llava, tmp_path,
                                                                             monkeypatch):
    """The README's recipe: a YAML that includes ours, points ``dataset_path`` at a folder ``diffbench publish``
    wrote and sets ``image_handling: combined``. lmms-eval reads the published parquet (with a datasets cache
    that holds no build, where the bare name could not load), an image question gets its two images pasted
    side by side (``diffbench.harness.chat.combine_images``), and the run is scored in whole samples."""
    import datasets
    from lmms_eval.tasks import TaskManager, get_task_dict

    from diffbench.data import publishing
    from diffbench.harness.chat import combine_images
    from diffbench.harness.data import decode_image

    published = publishing.publish("vismin", tmp_path / "published", configs=["bench"])
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "vismin_published.yaml").write_text(
        f"include: {path() / 'vismin' / 'vismin.yaml'}\n"
        "task: vismin_published\n"
        f"dataset_path: {published}\n"
        "lmms_eval_specific_kwargs:\n"
        "  default:\n"
        "    image_handling: combined\n")
    empty = tmp_path / "datasets-cache"  # no build here: only the published folder can give the rows
    monkeypatch.setenv("HF_DATASETS_CACHE", str(empty))
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", empty)
    with pytest.raises(Exception):  # noqa: B017 -- whatever datasets raises offline: the bare name is gone
        datasets.load_dataset("vismin", "bench", split="test")

    manager = TaskManager(include_path=[str(path()), str(mine)], include_defaults=False)
    task = get_task_dict(["vismin_published"], manager)["vismin_published"]
    docs = task.test_docs()
    assert len(docs) == 4 * len(bench) and [docs[4 * i]["id"] for i in range(len(bench))] == bench["id"]
    for n in range(8):  # text questions: the one image; image questions: both, side by side, as one
        doc, row = docs[n], bench[n // 4]
        shown = task.doc_to_visual(doc)
        images = [decode_image(row["image_0"]), decode_image(row["image_1"])]
        expected = [images[n % 2]] if n % 4 < 2 else [combine_images(images)]
        assert [image.tobytes() for image in shown] == [image.tobytes() for image in expected], n

    from lmms_eval.evaluator import simple_evaluate

    out = simple_evaluate(model="llava_hf", model_args=f"pretrained={tiny_llava},device=cpu,device_map=cpu",
                          tasks=["vismin_published"], task_manager=manager, limit=8, log_samples=True,
                          bootstrap_iters=0, gen_kwargs=f"max_new_tokens={MAX_NEW_TOKENS}")
    logged = out["samples"]["vismin_published"]
    assert sorted(s["doc_id"] for s in logged) == list(range(8))  # two whole samples
    scores = lmms_scores(out, "vismin_published")
    assert all(scores[name] in (0.0, 50.0, 100.0) for name in ("text", "image", "group")), scores


def test_a_synthetic_build_is_said_in_the_log(bench, caplog):
    """lmms-eval's results hold numbers only: reading a synthetic build, the tasks warn (once a load), and
    leave the rows as they are; rows with no build behind them get no warning."""
    import logging

    import datasets

    from diffbench.data.provenance import SYNTHETIC_NOTE
    from diffbench.lmms_eval_tasks.captions import utils as caption_utils
    from diffbench.lmms_eval_tasks.vismin import utils as vismin_utils

    plain = datasets.Dataset.from_dict({"id": ["p1"], "captions": [["a car left"]], "change_types": [["removal"]]})
    with caplog.at_level(logging.WARNING, logger="diffbench.lmms_eval_tasks"):
        assert len(vismin_utils.process_docs(bench)) == 4 * len(bench)
        assert caption_utils.process_docs(plain) is plain
    said = [record.getMessage() for record in caplog.records]
    assert len(said) == 1 and f"synthetic sample of vismin ({SYNTHETIC_NOTE})" in said[0], said
    assert "diffbench build vismin --source hub" in said[0]
