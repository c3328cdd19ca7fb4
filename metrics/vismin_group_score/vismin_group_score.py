"""VisMin group score: Winoground-style text / image / group scores, exactly as the official VisMin code scores them.

Each VisMin sample holds two images and two captions that differ in one aspect (an object, an
attribute, a count or a spatial relation). A model is scored on whether it matches each caption to its
image, from either of the two official submission formats:

- similarity scores (contrastive models): ``T0_I0, T0_I1, T1_I0, T1_I1`` with ``Tt_Ii`` the similarity
  of text ``t`` and image ``i``;
- answers of a chat model (multimodal LLMs): ``Text_Q0, Text_Q1, Image_Q0, Image_Q1``, checked against
  the expected ``A, B, First, Second`` with the official lenient answer parser (or a strict one).

Reference implementation: rabiulcste/vismin, ``vismin-bench/metric.py`` and ``evals/metrics/itm.py``.
This file depends only on ``numpy``, ``datasets`` and ``evaluate`` so that the folder can be pushed to
the Hub as an evaluate Space as it is.
"""

from __future__ import annotations

import numpy as np

import datasets
import evaluate

# The rule itself, importable without evaluate (see vismin_rule.py). No comment may follow the import on its
# line: evaluate's get_imports would read it as the URL of an external file.
from .vismin_rule import (
    ANSWER_FIELDS,
    CATEGORIES,
    EXPECTED_ANSWERS,
    FEATURE_NAMES,
    PARSERS,
    REFERENCE_FIELDS,
    SCORE_FIELDS,
    _category_codes,
    _score_column,
    aggregate,
    answer_matches,
    answers_correct,
    columns_correct,
    normalize_inputs,
    score_columns,
    scores_correct,
    split_score_array,
)

_CITATION = """\
@inproceedings{awal2024vismin,
  title     = {VisMin: Visual Minimal-Change Understanding},
  author    = {Awal, Rabiul and Ahmadi, Saba and Zhang, Le and Agrawal, Aishwarya},
  booktitle = {Advances in Neural Information Processing Systems},
  year      = {2024},
  eprint    = {2407.16772},
  archivePrefix = {arXiv}
}
"""

_DESCRIPTION = """\
The VisMin benchmark scores, as the official VisMin code computes them. Every sample has two images and
two captions; the text score counts samples where each image ranks its own caption first, the image
score samples where each caption ranks its own image first, and the group score samples where both
hold. With similarity scores a sample is text-correct iff T0_I0 > T1_I0 and T1_I1 > T0_I1, and
image-correct iff T0_I0 > T0_I1 and T1_I1 > T1_I0 (strict comparisons: ties are wrong). With a chat
model's answers the text task is asked once per image (expected A for image 0, B for image 1) and the
image task once per caption (expected First for caption 0, Second for caption 1); text needs both text
answers right, image both image answers, group all four. Scores are percentages, returned at full
precision; with categories they are also given per category, as the mean of the per-category cells,
and as the published AVG (the mean of the text, image and group cells of every category).
"""

_KWARGS_DESCRIPTION = """
Computes the VisMin text, image and group scores. Give exactly one of the two input modes.

Args:
    T0_I0, T0_I1, T1_I0, T1_I1 (`list` of `float`): similarity scores, one list per field, one value a
        sample: `Tt_Ii` is the similarity of text `t` and image `i` (the official contrastive submission
        columns). Must be finite numbers.
    scores (`array-like` of shape `(N, 2, 2)`): the same scores as one array, `scores[n, t, i]` being
        `Tt_Ii` of sample `n`. An alternative to the four lists.
    Text_Q0, Text_Q1, Image_Q0, Image_Q1 (`list` of `str`): a chat model's answers (the official
        multimodal-LLM submission columns): the text question asked with image 0 and with image 1, and
        the image question asked with caption 0 and with caption 1.
    references (`list` of 4-`list`s of `str`, *optional*): the expected answers of each sample, in the
        order Text_Q0, Text_Q1, Image_Q0, Image_Q1. Defaults to `A, B, First, Second` for every sample
        (the benchmark since its January 2025 update). Answers mode only. The same can be given as four
        lists `reference_Text_Q0`, `reference_Text_Q1`, `reference_Image_Q0`, `reference_Image_Q1`
        (how they are stored).
    categories (`list` of `str`, *optional*): the category of each sample, one of `object`, `attribute`,
        `relation`, `counting`. Adds the per-category scores and the two category averages.
    parser (`str`, *optional*, defaults to `"lenient"`): how answers are read. `"lenient"` is the official
        parser: lower-cased, punctuation dropped, the text inside the first brackets taken, and an answer
        is right when the expected label is one of its words (so "The answer is (A)." counts as A).
        `"strict"`: right only when the answer is the label itself, ignoring case, surrounding blanks
        and a final full stop.

Returns:
    text_score (`float`): percentage of text-correct samples, over all samples.
    image_score (`float`): percentage of image-correct samples, over all samples.
    group_score (`float`): percentage of samples both text- and image-correct, over all samples.
    num_samples (`int`): number of samples scored.
    With `categories` also:
    per_category (`dict`): for each category present, in the order object, attribute, relation,
        counting: `text_score`, `image_score`, `group_score` and `num_samples`.
    category_mean (`dict`): `text_score`, `image_score`, `group_score`, each the mean of its
        per-category values.
    avg_as_published (`float`): the AVG of the published VisMin tables, the mean of the text, image and
        group scores of every category present (12 cells for the full benchmark).

Examples:
    Similarity scores as four lists. The first sample is right both ways; in the second each image
    prefers its own caption, but caption 0 prefers image 1 (text right, image wrong); in the third image
    0 rates both captions 0.5, and a tie is wrong (text wrong, image right):

    >>> import evaluate
    >>> vismin = evaluate.load("vismin_group_score")
    >>> results = vismin.compute(
    ...     T0_I0=[0.9, 0.6, 0.5],
    ...     T0_I1=[0.2, 0.7, 0.1],
    ...     T1_I0=[0.1, 0.5, 0.5],
    ...     T1_I1=[0.8, 0.8, 0.9],
    ... )
    >>> print(results)
    {'text_score': 66.66666666666667, 'image_score': 66.66666666666667, 'group_score': 33.333333333333336, 'num_samples': 3}

    The same scores as one N x 2 x 2 array (`scores[n, t, i]` = similarity of text t and image i), with
    categories; values are full precision, round them only to display:

    >>> import numpy as np
    >>> scores = np.array([[[0.9, 0.2], [0.1, 0.8]], [[0.6, 0.7], [0.5, 0.8]], [[0.5, 0.1], [0.5, 0.9]]])
    >>> results = vismin.compute(scores=scores, categories=["object", "object", "counting"])
    >>> results["per_category"]["object"]
    {'text_score': 100.0, 'image_score': 50.0, 'group_score': 50.0, 'num_samples': 2}
    >>> round(results["group_score"], 2), results["category_mean"]["group_score"], results["avg_as_published"]
    (33.33, 25.0, 50.0)

    Answers of a chat model, read by the official lenient parser, then strictly:

    >>> answers = {
    ...     "Text_Q0": ["The answer is (A).", "A"],
    ...     "Text_Q1": ["B", "A"],
    ...     "Image_Q0": ["First", "first image"],
    ...     "Image_Q1": ["second.", "Second"],
    ... }
    >>> vismin.compute(**answers)
    {'text_score': 50.0, 'image_score': 100.0, 'group_score': 50.0, 'num_samples': 2}
    >>> vismin.compute(**answers, parser="strict")
    {'text_score': 0.0, 'image_score': 50.0, 'group_score': 0.0, 'num_samples': 2}
"""

def _given(column) -> bool:
    """A stored column holds data: evaluate's Arrow round trip turns absent ones into nulls or ""."""
    if column is None:
        return False
    if isinstance(column, np.ndarray) and column.dtype.kind in "iuf":
        return len(column) > 0
    return any(value is not None and value != "" for value in column)


def _all_or_none(name: str, column):
    """A column some batches filled and others left empty cannot be scored."""
    if not _given(column):
        return None
    for i, value in enumerate(column):
        if value is None or value == "":
            raise ValueError(f"{name}[{i}] is missing: {name} was given for some batches and not for others")
    return column


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class VisminGroupScore(evaluate.Metric):
    """VisMin text / image / group scores from similarity scores or a chat model's answers."""

    def _info(self):
        return evaluate.MetricInfo(
            module_type="metric",
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            # One flat schema for both modes (evaluate needs the same column names in every call):
            # a call fills one group; the other is stored as nulls (numbers) or "" (strings, which
            # evaluate refuses as None). `references` is stored as its four columns.
            features=datasets.Features(
                {
                    **{name: datasets.Value("float64") for name in SCORE_FIELDS},
                    **{name: datasets.Value("string") for name in ANSWER_FIELDS + REFERENCE_FIELDS},
                    "categories": datasets.Value("string"),
                }
            ),
            homepage="https://vismin.net",
            codebase_urls=["https://github.com/rabiulcste/vismin"],
            reference_urls=["https://arxiv.org/abs/2407.16772", "https://huggingface.co/datasets/mair-lab/vismin-bench"],
            license="apache-2.0",
        )

    def add_batch(self, **kwargs):
        """Add a batch of samples (one input mode), checked now so that errors name the sample."""
        offset = getattr(self, "_samples_added", 0)
        columns, _ = normalize_inputs(kwargs, offset)
        n = len(columns["T0_I0"] if columns["T0_I0"] is not None else columns["Text_Q0"])
        filled = {}
        for name, column in columns.items():
            empty = None if name in SCORE_FIELDS else ""
            filled[name] = list(column) if column is not None else [empty] * n
        super().add_batch(**filled)
        self._samples_added = offset + n

    def add(self, **kwargs):
        """Add one sample (one input mode)."""
        kwargs = {name: value for name, value in kwargs.items() if value is not None}
        self.add_batch(**{name: [value] for name, value in kwargs.items()})

    def compute(self, *, parser: str = "lenient", **kwargs):
        """Score what was added and the inputs given here; evaluate appends the inputs description below."""
        inputs = {name: value for name, value in kwargs.items() if value is not None}
        if inputs and self.writer is None and self.num_process == 1:
            # Nothing streamed in and a single process: scoring the arrays directly gives the same
            # result without evaluate's Arrow round trip (about 7 s per million samples).
            columns, codes = normalize_inputs(inputs)
            return score_columns(columns, codes, parser)
        if inputs:
            self.add_batch(**inputs)
        self._samples_added = 0
        return super().compute(parser=parser)

    def _compute(
        self,
        T0_I0=None,
        T0_I1=None,
        T1_I0=None,
        T1_I1=None,
        Text_Q0=None,
        Text_Q1=None,
        Image_Q0=None,
        Image_Q1=None,
        reference_Text_Q0=None,
        reference_Text_Q1=None,
        reference_Image_Q0=None,
        reference_Image_Q1=None,
        categories=None,
        parser="lenient",
    ):
        # What evaluate read back from its Arrow cache: the unused mode's columns are nulls or "".
        stored = dict(zip(FEATURE_NAMES, (T0_I0, T0_I1, T1_I0, T1_I1, Text_Q0, Text_Q1, Image_Q0, Image_Q1,
                                          reference_Text_Q0, reference_Text_Q1, reference_Image_Q0,
                                          reference_Image_Q1, categories)))
        scores_given = [_given(stored[name]) for name in SCORE_FIELDS]
        answers_given = [_given(stored[name]) for name in ANSWER_FIELDS]
        if all(scores_given) and not any(answers_given):
            columns = {name: _score_column(name, stored[name]) for name in SCORE_FIELDS}
        elif not any(scores_given):  # answers (all of them may be "", which is wrong, not absent)
            columns = {name: stored[name] for name in ANSWER_FIELDS}
            columns.update({name: _all_or_none(name, stored[name]) for name in REFERENCE_FIELDS})
            columns["T0_I0"] = None
        else:
            raise ValueError("the added batches mix similarity scores and answers: score each mode with its own compute()")
        categories = _all_or_none("categories", categories)
        codes = _category_codes(categories, len(categories)) if categories is not None else None
        return score_columns(columns, codes, parser)
