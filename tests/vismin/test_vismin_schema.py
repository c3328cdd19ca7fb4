"""The library's VisMin definitions (``diffbench.vismin.schema``) and the self-contained metric folder's
own copy (``metrics/vismin_group_score``, pushed to the Hub as it is) say the same thing.

Checked: the categories and their order, both submission formats' columns, the expected answers, the
correctness rule of similarity scores (ties included), and the official lenient answer parser
(rabiulcste/vismin ``evals/metrics/itm.py``) on hand-picked answers and on arbitrary text.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from diffbench.vismin import schema


@pytest.fixture(scope="module")
def metric_module():
    from diffbench.data.hub_folders import load_module

    return load_module("metrics", "vismin_group_score")


def test_the_metric_keeps_the_same_names(metric_module):
    assert metric_module.CATEGORIES == schema.CATEGORIES == ("object", "attribute", "relation", "counting")
    assert metric_module.SCORE_FIELDS == schema.SCORE_COLUMNS
    assert metric_module.ANSWER_FIELDS == schema.ANSWER_COLUMNS
    assert metric_module.EXPECTED_ANSWERS == schema.EXPECTED_ANSWERS == ("A", "B", "First", "Second")


def test_the_metric_widget_reads_the_metric_module():
    import importlib.util

    from diffbench.data.hub_folders import hub_folder

    spec = importlib.util.spec_from_file_location("vismin_app", hub_folder("metrics", "vismin_group_score") / "app.py")
    app = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(app)
    assert (tuple(app.SCORE_COLUMNS), tuple(app.ANSWER_COLUMNS), tuple(app.CATEGORIES)) == (
        schema.SCORE_COLUMNS, schema.ANSWER_COLUMNS, schema.CATEGORIES)


def test_the_same_rule_on_scores_with_ties(metric_module):
    rng = np.random.default_rng(0)
    scores = rng.integers(0, 3, size=(4, 5000)).astype(float)  # three levels: many ties
    ours, theirs = schema.scores_correct(*scores), metric_module.scores_correct(*scores)
    assert all(np.array_equal(a, b) for a, b in zip(ours, theirs))
    tie = schema.scores_correct(0.5, 0.5, 0.1, 0.9)
    assert tie == (True, False)  # T0_I0 == T0_I1: the image verdict is wrong


ANSWERS = ["A", "B", "a", "(A)", "(B) a dog", "The answer is (A).", "A)", "b) the second", "ANSWER: B", "answer: a",
           "First", "second.", "The first image", "Second image\nFirst", "first or second", "A or B", "", "  ",
           "I cannot tell", "Both", "(c)", "Option A", "B.", "First!", "The Second one.", "firstly", "AB"]


@pytest.mark.parametrize("answer", ANSWERS)
def test_the_same_lenient_parser(answer, metric_module):
    for label in ("A", "B", "First", "Second"):
        assert schema.answer_matches(answer, label) == metric_module.answer_matches(answer, label, "lenient"), (answer, label)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=40), st.sampled_from(["A", "B", "First", "Second"]))
def test_the_same_lenient_parser_on_any_text(answer, label):
    from diffbench.data.hub_folders import load_module

    metric = load_module("metrics", "vismin_group_score")
    assert schema.answer_matches(answer, label) == metric.answer_matches(answer, label, "lenient")


def test_parse_answer_counts_unparseable_and_ambiguous_answers():
    assert [schema.parse_answer(a, schema.TEXT_OPTIONS) for a in ("(A) a cat", "B", "A or B", "neither", "")] == [
        "A", "B", schema.AMBIGUOUS, None, None]
    assert [schema.parse_answer(a, schema.IMAGE_OPTIONS) for a in ("The first image.", "second", "cat")] == [
        "First", "Second", None]
    # The official rule counts an ambiguous answer right, whichever label was expected.
    assert schema.answer_matches("A or B", "A") and schema.answer_matches("A or B", "B")


def test_the_questions_are_the_official_prompts():
    """``evals/dataset_zoo/task_prompts.py``: ``get_text_task_prompt([c0, c1])`` and ``get_image_task_prompt(c)``."""
    asked = schema.questions("a cat", "a dog")
    assert [q for q, _, _ in asked] == [
        "Does this image best match: (A) a cat, or (B) a dog? Choices: A, B.",
        "Does this image best match: (A) a cat, or (B) a dog? Choices: A, B.",
        'Which image better aligns with the description: "a cat"? Choices: First, Second.',
        'Which image better aligns with the description: "a dog"? Choices: First, Second.',
    ]
    assert [options for _, _, options in asked] == list(schema.QUESTION_OPTIONS)
