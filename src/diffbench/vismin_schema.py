"""What VisMin is, written once: its categories, its submission columns, its questions and its rule.

Every module of the library that needs one of these imports it from here (the harness, the submission
reader, training, the Space). The self-contained Hub folder ``metrics/vismin_group_score/`` keeps its
own copy, and ``tests/test_vismin_schema.py`` holds the two equal.

Source: rabiulcste/vismin, ``vismin-bench/metric.py`` (the rule and the CSV columns),
``evals/dataset_zoo/task_prompts.py`` (the questions) and the project page (the category order of the
published tables).

    >>> import numpy as np
    >>> text, image = scores_correct(*np.array([[0.9, 0.2, 0.1, 0.8], [0.5, 0.5, 0.1, 0.9]]).T)
    >>> text.tolist(), image.tolist()  # the tie T0_I0 == T0_I1 makes the second image verdict wrong
    ([True, True], [True, False])
"""

from __future__ import annotations

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

#: asked once per image (expected A for image 0, B for image 1)
TEXT_QUESTION = "Does this image best match: (A) {text_0}, or (B) {text_1}? Choices: A, B."
#: asked once per caption, both images given (expected First for text 0, Second for text 1)
IMAGE_QUESTION = 'Which image better aligns with the description: "{caption}"? Choices: First, Second.'
TEXT_OPTIONS = ("A", "B")
IMAGE_OPTIONS = ("First", "Second")


def scores_correct(T0_I0, T0_I1, T1_I0, T1_I1):
    """Per-sample (text correct, image correct) from similarity scores; strict ``>``, so ties are wrong.

    Works on scalars and on numpy arrays alike (element-wise).
    """
    text = (T0_I0 > T1_I0) & (T1_I1 > T0_I1)
    image = (T0_I0 > T0_I1) & (T1_I1 > T1_I0)
    return text, image
