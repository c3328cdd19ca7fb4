"""What VisMin is, written once: its categories, its submission columns, its questions and its rule.

Every module of the library that needs one of these imports it from here (the harness, the submission
reader, training, the Space). The rule itself (scores and answers) is the Hub metric's own,
``metrics/vismin_group_score/vismin_rule.py``, called through :func:`rule`; the metric folder, pushed to the
Hub as it is, keeps its copy of the names, and ``tests/vismin/test_vismin_schema.py`` holds the two equal.

Source: rabiulcste/vismin, ``vismin-bench/metric.py`` (the rule and the CSV columns),
``evals/dataset_zoo/task_prompts.py`` (the questions) and the project page (the category order of the
published tables).

    >>> import numpy as np
    >>> text, image = scores_correct(*np.array([[0.9, 0.2, 0.1, 0.8], [0.5, 0.5, 0.1, 0.9]]).T)
    >>> text.tolist(), image.tolist()  # the tie T0_I0 == T0_I1 makes the second image verdict wrong
    ([True, True], [True, False])
"""

from __future__ import annotations

import functools

from diffbench.data.hub_folders import load_module

#: the order of the published tables (the upstream ``category`` column holds the same four names)
CATEGORIES = ("object", "attribute", "relation", "counting")
#: a contrastive submission: ``Tt_Ii`` = similarity of text t and image i
SCORE_COLUMNS = ("T0_I0", "T0_I1", "T1_I0", "T1_I1")
#: a chat submission: the answers to the two text questions, then the two image questions
ANSWER_COLUMNS = ("Text_Q0", "Text_Q1", "Image_Q0", "Image_Q1")
#: the expected answer of each of ``ANSWER_COLUMNS`` (every row, since the January 2025 update)
EXPECTED_ANSWERS = ("A", "B", "First", "Second")
#: the three scores of every table cell
SCORE_NAMES = ("text", "image", "group")
#: the full benchmark's size: every published row was scored on it
PUBLISHED_SAMPLES = 2084

#: asked once per image (expected A for image 0, B for image 1)
TEXT_QUESTION = "Does this image best match: (A) {text_0}, or (B) {text_1}? Choices: A, B."
#: asked once per caption, both images given (expected First for text 0, Second for text 1)
IMAGE_QUESTION = 'Which image better aligns with the description: "{caption}"? Choices: First, Second.'
TEXT_OPTIONS = ("A", "B")
IMAGE_OPTIONS = ("First", "Second")


@functools.cache
def rule():
    """The official rule's module, ``metrics/vismin_group_score/vismin_rule.py`` (numpy and ``re`` only): the
    one copy of the rule, which the Hub metric computes with and the library reads answers with."""
    return load_module("metrics", "vismin_group_score", "vismin_rule")


def scores_correct(T0_I0, T0_I1, T1_I0, T1_I1):
    """Per-sample (text correct, image correct) from similarity scores; strict ``>``, so ties are wrong.

    Works on scalars and on numpy arrays alike (element-wise).
    """
    return rule().scores_correct(T0_I0, T0_I1, T1_I0, T1_I1)


# -- reading a chat model's answer ----------------------------------------------------------------
# The official lenient parser, rabiulcste/vismin ``evals/metrics/itm.py`` (``normalize_model_prediction``
# and ``is_match_with_label``), the rule the paper's chat-model numbers used, as the metric has it.


def normalize_answer(text: str) -> str:
    """The official ``normalize_model_prediction``: the text inside the first brackets, the letter before
    a ``)``, the first line, punctuation dropped, blanks collapsed, lower-cased.

    >>> normalize_answer("The answer is (A) a red car.\\nBecause ...")
    'a'
    """
    return rule().normalize_answer(text)


def answer_matches(output: str, label: str) -> bool:
    """The official ``is_match_with_label``: ``label`` counts as given when it is a word of the normalised
    output, the whole of it, or the phrase ``answer: <label>`` appears in it.

    >>> answer_matches("Second image.", "Second"), answer_matches("I think B", "A")
    (True, False)
    """
    return rule().answer_matches(output, label)


#: :func:`parse_answer`'s verdict for an output that names both options (the official rule counts it
#: right, since it holds the expected label)
AMBIGUOUS = "ambiguous"


def parse_answer(output: str, options: tuple[str, str]) -> str | None:
    """Which option an output gives under the lenient parser: the option, :data:`AMBIGUOUS` when it
    matches both, ``None`` when it matches neither (unparseable: scored wrong, and counted).

    >>> parse_answer("(B) two dogs", TEXT_OPTIONS), parse_answer("A or B", TEXT_OPTIONS)
    ('B', 'ambiguous')
    >>> parse_answer("I cannot tell.", IMAGE_OPTIONS) is None
    True
    """
    found = [option for option in options if answer_matches(output, option)]
    if len(found) == 1:
        return found[0]
    return AMBIGUOUS if found else None


#: the options of each of :data:`ANSWER_COLUMNS`
QUESTION_OPTIONS = (TEXT_OPTIONS, TEXT_OPTIONS, IMAGE_OPTIONS, IMAGE_OPTIONS)


def questions(text_0: str, text_1: str) -> list[tuple[str, tuple[int, ...], tuple[str, str]]]:
    """The four questions of a sample in :data:`ANSWER_COLUMNS` order: ``(question, image positions, options)``.

    >>> [q[1] for q in questions("a cat", "a dog")]
    [(0,), (1,), (0, 1), (0, 1)]
    """
    text_question = TEXT_QUESTION.format(text_0=text_0, text_1=text_1)
    return [
        (text_question, (0,), TEXT_OPTIONS),
        (text_question, (1,), TEXT_OPTIONS),
        (IMAGE_QUESTION.format(caption=text_0), (0, 1), IMAGE_OPTIONS),
        (IMAGE_QUESTION.format(caption=text_1), (0, 1), IMAGE_OPTIONS),
    ]
