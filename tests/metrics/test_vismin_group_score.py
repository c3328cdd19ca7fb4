"""The `vismin_group_score` evaluate module: the official VisMin rules, both input modes, bad input.

The metric is loaded by file path, as evaluate (and the Hub) load it; its `_KWARGS_DESCRIPTION`
examples run as doctests, as evaluate's own common metric test runs them.
"""

from __future__ import annotations

import doctest
import importlib.util
import importlib
import inspect
import re
from collections import defaultdict

import numpy as np
import pandas as pd
import pytest

import evaluate
from diffbench.vismin import schema
from diffbench.data.hub_folders import hub_folder

METRIC_DIR = hub_folder("metrics", "vismin_group_score")
# Written once in the library (tests/vismin/test_vismin_schema.py holds the metric's own copy equal to it).
CATEGORIES = list(schema.CATEGORIES)  # the published order
FIELDS = list(schema.SCORE_COLUMNS)
ANSWERS = list(schema.ANSWER_COLUMNS)


@pytest.fixture(scope="module")
def metric_module():
    module_path = evaluate.loading.evaluation_module_factory(str(METRIC_DIR)).module_path
    return importlib.import_module(module_path)


@pytest.fixture(scope="module")
def metric():
    return evaluate.load(str(METRIC_DIR))


def official_contrastive(samples, categories):
    """The official per-sample loop (vismin-bench/metric.py, with the post-2025 solution relations)."""
    counts = defaultdict(lambda: {"text": 0, "image": 0, "group": 0, "count": 0})
    for s, category in zip(samples, categories):
        text = s["T0_I0"] > s["T1_I0"] and s["T1_I1"] > s["T0_I1"]
        image = s["T0_I0"] > s["T0_I1"] and s["T1_I1"] > s["T1_I0"]
        counts[category]["text"] += text
        counts[category]["image"] += image
        counts[category]["group"] += text and image
        counts[category]["count"] += 1
    return {
        c: {k: round(v[k] * 100 / v["count"], 2) for k in ("text", "image", "group")} for c, v in counts.items()
    }


def test_doctests_of_the_inputs_description(metric_module, monkeypatch):
    # As evaluate's common test: bare names in the examples load the local folder.
    real_load = evaluate.load
    monkeypatch.setattr(evaluate, "load", lambda name, *a, **k: real_load(str(METRIC_DIR) if name == "vismin_group_score" else name, *a, **k))
    results = doctest.testmod(metric_module, raise_on_error=False, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert results.failed == 0
    assert results.attempted > 10
    cls = evaluate.loading.import_main_class(metric_module.__name__)
    parameters = inspect.signature(cls._compute).parameters.values()
    assert all(p.kind != p.VAR_KEYWORD for p in parameters)  # explicit keyword arguments only


def test_info_declares_typed_features(metric):
    features = metric.features
    assert {name: features[name].dtype for name in FIELDS} == dict.fromkeys(FIELDS, "float64")
    assert {name: features[name].dtype for name in ANSWERS} == dict.fromkeys(ANSWERS, "string")
    assert features["categories"].dtype == "string"
    assert "awal2024vismin" in metric.citation


@pytest.mark.parametrize("seed", [0, 1])
def test_matches_the_official_loop_with_ties(metric, seed):
    rng = np.random.default_rng(seed)
    n = 4000
    # Small integers: many ties, which the official strict `>` counts as wrong.
    scores = rng.integers(0, 4, size=(n, 4)).astype(float)
    categories = [CATEGORIES[i] for i in rng.integers(0, 4, n)]
    samples = [dict(zip(FIELDS, row)) for row in scores]
    results = metric.compute(**{f: scores[:, j].tolist() for j, f in enumerate(FIELDS)}, categories=categories)
    official = official_contrastive(samples, categories)
    for category, cells in official.items():
        ours = results["per_category"][category]
        assert [round(ours[f"{k}_score"], 2) for k in ("text", "image", "group")] == list(cells.values())
    assert list(results["per_category"]) == CATEGORIES  # the published order
    assert results["num_samples"] == n
    assert sum(c["num_samples"] for c in results["per_category"].values()) == n
    text_overall = sum(s["T0_I0"] > s["T1_I0"] and s["T1_I1"] > s["T0_I1"] for s in samples) * 100 / n
    assert results["text_score"] == text_overall  # full precision, not rounded


def test_category_averages(metric):
    results = metric.compute(
        T0_I0=[1, 1, 0, 1], T0_I1=[0, 0, 1, 0], T1_I0=[0, 0, 1, 0], T1_I1=[1, 0, 0, 1],
        categories=["object", "object", "relation", "counting"],
    )
    cells = [v for c in results["per_category"].values() for k, v in c.items() if k != "num_samples"]
    assert len(cells) == 9
    assert results["avg_as_published"] == pytest.approx(sum(cells) / 9)
    assert results["category_mean"]["group_score"] == pytest.approx((50 + 0 + 100) / 3)
    assert results["group_score"] == 50.0  # 2 of 4 samples: the sample mean differs from the category mean
    assert "attribute" not in results["per_category"]


def test_ties_are_wrong(metric):
    assert metric.compute(T0_I0=[0.5], T0_I1=[0.5], T1_I0=[0.5], T1_I1=[0.5]) == {
        "text_score": 0.0, "image_score": 0.0, "group_score": 0.0, "num_samples": 1,
    }


def test_array_input_equals_four_lists(metric):
    rng = np.random.default_rng(3)
    array = rng.random((50, 2, 2))
    lists = {f"T{t}_I{i}": array[:, t, i].tolist() for t in (0, 1) for i in (0, 1)}
    assert metric.compute(scores=array) == metric.compute(**lists)
    assert metric.compute(scores=array.tolist()) == metric.compute(**lists)


def test_streaming_through_evaluate_equals_one_call(metric):
    rng = np.random.default_rng(4)
    scores = rng.integers(0, 3, size=(30, 4)).astype(float)
    categories = [CATEGORIES[i % 4] for i in range(30)]
    for start in (0, 10, 20):
        metric.add_batch(**{f: scores[start:start + 10, j] for j, f in enumerate(FIELDS)}, categories=categories[start:start + 10])
    streamed = metric.compute()
    assert streamed == metric.compute(**{f: scores[:, j] for j, f in enumerate(FIELDS)}, categories=categories)
    metric.add(Text_Q0="A", Text_Q1="B", Image_Q0="First", Image_Q1="first")
    metric.add_batch(Text_Q0=["A"], Text_Q1=["B"], Image_Q0=["Second"], Image_Q1=["Second"])
    assert metric.compute() == {"text_score": 100.0, "image_score": 0.0, "group_score": 0.0, "num_samples": 2}


# The official lenient parser (evals/metrics/itm.py, is_match_with_label), case by case.
LENIENT_CASES = [
    ("A", "A", True),
    ("a.", "A", True),
    ("The answer is (A).", "A", True),
    ("Answer: B", "B", True),
    ("option A) is right", "A", True),
    ("A or B", "B", True),  # any word counts: the official parser's leniency
    ("answer alpha", "A", True),  # the "answer a" phrase is searched without word bounds
    ("(B) not (A)", "A", False),  # only the first bracket is read
    ("Second\nFirst", "First", False),  # only the first line is read
    ("Firstly", "First", False),
    ("the first image", "First", True),
    ("", "A", False),
    ("C", "A", False),
]


@pytest.mark.parametrize("answer,label,expected", LENIENT_CASES)
def test_lenient_parser_is_the_official_one(metric_module, answer, label, expected):
    assert metric_module.answer_matches(answer, label) is expected


@pytest.mark.parametrize("answer,label,expected", [("A", "A", True), (" second. ", "Second", True), ("The answer is A", "A", False), ("(A)", "A", False)])
def test_strict_parser(metric_module, answer, label, expected):
    assert metric_module.answer_matches(answer, label, "strict") is expected


def test_answers_mode_text_image_group(metric):
    answers = {
        "Text_Q0": ["A", "A", "B", "A"],
        "Text_Q1": ["B", "B", "B", "B"],
        "Image_Q0": ["First", "Second", "First", "First"],
        "Image_Q1": ["Second", "Second", "Second", "Second"],
    }
    results = metric.compute(**answers, categories=["object", "object", "counting", "counting"])
    assert (results["text_score"], results["image_score"], results["group_score"]) == (75.0, 75.0, 50.0)
    assert results["per_category"]["counting"]["text_score"] == 50.0


def test_answers_with_references(metric):
    # Before the January 2025 update some samples expected B, A, Second, First.
    answers = {"Text_Q0": ["B", "A"], "Text_Q1": ["A", "B"], "Image_Q0": ["Second", "First"], "Image_Q1": ["First", "Second"]}
    refs = [["B", "A", "Second", "First"], ["A", "B", "First", "Second"]]
    assert metric.compute(**answers, references=refs)["group_score"] == 100.0
    assert metric.compute(**answers)["group_score"] == 50.0
    by_field = {f"reference_{f}": [r[j] for r in refs] for j, f in enumerate(ANSWERS)}
    assert metric.compute(**answers, **by_field)["group_score"] == 100.0


def _scores(n=3, **override):
    base = {f: [0.1 * (j + 1)] * n for j, f in enumerate(FIELDS)}
    base.update(override)
    return base


BAD_INPUTS = [
    ("nan", _scores(T0_I1=[0.1, float("nan"), 0.2]), r"T0_I1\[1\].*finite"),
    ("inf", _scores(T1_I1=[0.1, 0.2, float("inf")]), r"T1_I1\[2\].*finite"),
    ("string score", _scores(T1_I0=[0.1, "0.2", 0.3]), r"T1_I0\[1\] is '0.2'.*numbers"),
    ("None score", _scores(T0_I0=[None, 0.2, 0.3]), r"T0_I0\[0\] is None"),
    ("lengths", _scores(T1_I1=[0.1, 0.2]), r"T1_I1 has 2 samples but T0_I0 has 3"),
    ("nested list", _scores(T0_I0=[[0.1], [0.2], [0.3]]), r"T0_I0 must be a flat list.*shape \(3, 1\)"),
    ("shape", {"scores": np.zeros((3, 2, 3))}, r"scores must have shape \(N, 2, 2\).*\(3, 2, 3\)"),
    ("shape 2d", {"scores": np.zeros((3, 4))}, r"shape \(3, 4\)"),
    ("unknown category", {**_scores(), "categories": ["object", "colour", "object"]}, r"categories\[1\] is 'colour'"),
    ("integer category", {**_scores(), "categories": [0, 1, 2]}, r"categories\[0\] is 0.*int2str"),
    ("category lengths", {**_scores(), "categories": ["object"]}, r"categories has 1 samples but T0_I0 has 3"),
    ("answer not str", {"Text_Q0": ["A", 1], "Text_Q1": ["B", "B"], "Image_Q0": ["First"] * 2, "Image_Q1": ["Second"] * 2}, r"Text_Q0\[1\] is 1 \(int\).*strings"),
    ("answer None", {"Text_Q0": ["A", "A"], "Text_Q1": ["B", "B"], "Image_Q0": ["First", None], "Image_Q1": ["Second"] * 2}, r"Image_Q0\[1\] is None"),
    ("missing field", {f: [0.1] for f in FIELDS[:3]}, r"missing inputs \['T1_I1'\]"),
    ("both modes", {**_scores(1), "Text_Q0": ["A"]}, r"either similarity scores .* or answers"),
    ("nothing", {"categories": ["object"]}, r"nothing to score"),
    ("unknown input", {**_scores(), "predictions": [1, 2, 3]}, r"unknown inputs \['predictions'\]"),
    ("bad reference", {"Text_Q0": ["A"], "Text_Q1": ["B"], "Image_Q0": ["First"], "Image_Q1": ["Second"], "references": [["A", "B"]]}, r"references\[0\].*four expected answers"),
    ("references with scores", {**_scores(1), "references": [["A", "B", "First", "Second"]]}, r"similarity scores take none"),
]


@pytest.mark.parametrize("inputs,message", [pytest.param(i, m, id=name) for name, i, m in BAD_INPUTS])
def test_bad_input_names_the_field_and_sample(metric, inputs, message):
    with pytest.raises(ValueError, match=message):
        metric.compute(**inputs)


def test_bad_input_in_a_later_batch_names_its_global_index(metric):
    metric.add_batch(**_scores(3))
    with pytest.raises(ValueError, match=r"T0_I1\[4\]"):
        metric.add_batch(**_scores(3, T0_I1=[0.1, float("nan"), 0.1]))
    metric.compute()  # scores what was added; resets the stream


def test_mixed_modes_across_batches(metric):
    metric.add_batch(**_scores(2))
    metric.add_batch(Text_Q0=["A"], Text_Q1=["B"], Image_Q0=["First"], Image_Q1=["Second"])
    with pytest.raises(ValueError, match="mix similarity scores and answers"):
        metric.compute()


def test_categories_in_some_batches_only(metric):
    metric.add_batch(**_scores(2), categories=["object", "counting"])
    metric.add_batch(**_scores(1))
    with pytest.raises(ValueError, match=r"categories\[2\] is missing: categories was given for some batches"):
        metric.compute()


def test_streamed_empty_answers_are_wrong_not_absent(metric):
    metric.add_batch(Text_Q0=[""], Text_Q1=[""], Image_Q0=[""], Image_Q1=[""])
    assert metric.compute()["group_score"] == 0.0


def test_unknown_parser(metric):
    with pytest.raises(ValueError, match=re.escape("parser must be one of ('lenient', 'strict')")):
        metric.compute(**_scores(), parser="fuzzy")


# -- the metric card and the widget ----------------------------------------------------------------


def test_card_front_matter_and_published_values():
    import yaml

    from diffbench.vismin.published import published_results

    text = (METRIC_DIR / "README.md").read_text()
    front = yaml.safe_load(text.split("---")[1])
    assert front["app_file"] == "app.py" and front["sdk"] == "gradio" and "evaluate" in front["tags"]
    assert str(front["sdk_version"]).startswith("6.")
    published = published_results().query("table == 'zero-shot'").set_index("model")
    rows = [line for line in text.splitlines() if line.startswith("| ") and not line.startswith("| Model")]
    card_rows = {cells[0]: [float(v) for v in cells[1:]] for cells in
                 ([c.strip() for c in line.strip("|").split("|")] for line in rows) if cells[0] in published.index}
    assert len(card_rows) >= 5
    columns = [f"{c}_{k}" for c in CATEGORIES for k in ("text", "image", "group")] + ["avg_as_published"]
    for model, values in card_rows.items():
        assert values == pytest.approx(published.loc[model, columns].tolist()), model


def test_card_examples_run(metric):
    text = (METRIC_DIR / "README.md").read_text()
    test = doctest.DocTestParser().get_doctest(text, {"vismin": metric}, "README.md", str(METRIC_DIR / "README.md"), 0)
    runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE)
    runner.run(test)
    assert runner.summarize(verbose=False) == doctest.TestResults(0, len(test.examples)) and test.examples


@pytest.fixture(scope="module")
def app():
    spec = importlib.util.spec_from_file_location("vismin_group_score_app", METRIC_DIR / "app.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_widget_scores_tables_in_both_formats(app):
    markdown, results = app.score_table(app.EXAMPLE)
    assert results["num_samples"] == 4 and set(results["per_category"]) == set(CATEGORIES)
    assert "| **all samples** | 75.00 | 50.00 | 50.00 | 4 |" in markdown
    assert "AVG as published (mean of the 12 category cells): **58.33**" in markdown
    answers = pd.DataFrame({"Text_Q0": ["(A)", ""], "Text_Q1": ["B", "B"], "Image_Q0": ["First", "First"],
                            "Image_Q1": ["Second", "Second"], "category": ["", ""]})
    _, lenient = app.score_table(answers)
    _, strict = app.score_table(answers, parser="strict")
    assert (lenient["text_score"], strict["text_score"], "per_category" in lenient) == (50.0, 0.0, False)
    with pytest.raises(ValueError, match=r"row 1, column T0_I1: 'x' is not a number"):
        app.score_table(app.EXAMPLE.astype(object).assign(T0_I1=[0.1, "x", 0.2, 0.3]))
    with pytest.raises(ValueError, match="the table needs the columns"):
        app.score_table(pd.DataFrame({"a": [1]}))


def test_widget_builds_with_gradio_6(app):
    import gradio as gr

    assert int(gr.__version__.split(".")[0]) >= 6
    demo = app.build_demo()
    assert isinstance(demo, gr.Blocks)
    assert any(getattr(fn, "name", "") == "_score" for fn in demo.fns.values())
