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

import re

import numpy as np

import datasets
import evaluate

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

# The published tables list the categories in this order.
CATEGORIES = ("object", "attribute", "relation", "counting")
SCORE_FIELDS = ("T0_I0", "T0_I1", "T1_I0", "T1_I1")
ANSWER_FIELDS = ("Text_Q0", "Text_Q1", "Image_Q0", "Image_Q1")
EXPECTED_ANSWERS = ("A", "B", "First", "Second")  # per ANSWER_FIELDS, since the January 2025 update
PARSERS = ("lenient", "strict")
REFERENCE_FIELDS = tuple(f"reference_{name}" for name in ANSWER_FIELDS)  # `references`, stored by field
FEATURE_NAMES = SCORE_FIELDS + ANSWER_FIELDS + REFERENCE_FIELDS + ("categories",)


# -- similarity scores ----------------------------------------------------------------------------


def _score_column(name: str, values, offset: int = 0) -> np.ndarray:
    """One score field as a float64 vector; a ValueError names the first bad sample."""
    array = np.asarray(values)
    if array.dtype.kind not in "iuf":
        # Strings would be parsed by numpy and None or lists would only fail later: name the culprit.
        for i, value in enumerate(values):
            if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
                raise ValueError(f"{name}[{i + offset}] is {value!r}: similarity scores must be numbers")
        raise ValueError(f"{name} must be a flat list of numbers, got an array of shape {array.shape}")
    if array.ndim != 1:
        raise ValueError(f"{name} must be a flat list of numbers, one a sample; got an array of shape {array.shape}")
    array = array.astype(np.float64, copy=False)
    finite = np.isfinite(array)
    if not finite.all():
        i = int(np.argmin(finite))
        raise ValueError(f"{name}[{i + offset}] is {array[i]}: similarity scores must be finite (NaN and infinity cannot be ranked)")
    return array


def split_score_array(scores) -> dict[str, np.ndarray]:
    """An ``(N, 2, 2)`` array ``scores[n, t, i] = Tt_Ii`` as the four official fields."""
    array = np.asarray(scores)
    if array.ndim != 3 or array.shape[1:] != (2, 2):
        raise ValueError(
            f"scores must have shape (N, 2, 2) with scores[n, t, i] = similarity(text t, image i); got shape {array.shape}"
        )
    if array.dtype.kind not in "iuf":
        raise ValueError(f"scores must hold numbers, got dtype {array.dtype}")
    return {f"T{t}_I{i}": array[:, t, i] for t in (0, 1) for i in (0, 1)}


def scores_correct(T0_I0, T0_I1, T1_I0, T1_I1) -> tuple[np.ndarray, np.ndarray]:
    """Per-sample (text correct, image correct) from similarity scores; strict ``>``, so ties are wrong."""
    text = (T0_I0 > T1_I0) & (T1_I1 > T0_I1)
    image = (T0_I0 > T0_I1) & (T1_I1 > T1_I0)
    return text, image


# -- answers of a chat model ----------------------------------------------------------------------


def _normalize_answer(text: str) -> str:
    """The official ``normalize_model_prediction``: first bracketed text, letter before ')', first line."""
    match = re.search(r"\((.*?)\)", text)
    if match:
        text = match.group(1)
    match = re.search(r"([A-Za-z])\)", text)
    if match:
        text = match.group(1)
    text = text.split("\n")[0]
    text = re.sub(r"[^\w\s]", "", text)
    text = re.sub(r"\s+", " ", text).strip()
    return text.lower()


def answer_matches(answer: str, label: str, parser: str = "lenient") -> bool:
    """Whether one answer gives ``label``: the official ``is_match_with_label``, or an exact match.

    >>> answer_matches("I think (B) fits best.", "B"), answer_matches("I think (B) fits best.", "B", "strict")
    (True, False)
    """
    if parser == "strict":
        return answer.strip().removesuffix(".").strip().casefold() == label.casefold()
    output = _normalize_answer(answer)
    expected = _normalize_answer(label)
    phrase = _normalize_answer(f"ANSWER: {label}")
    return expected in output.split() or re.search(re.escape(phrase), output, re.IGNORECASE) is not None or expected == output


def _check_strings(name: str, values, offset: int = 0) -> None:
    for i, value in enumerate(values):
        if not isinstance(value, str):
            raise ValueError(f"{name}[{i + offset}] is {value!r} ({type(value).__name__}): answers must be strings")


def _answer_column_correct(name: str, answers, labels, parser: str, offset: int = 0) -> np.ndarray:
    """Per-sample correctness of one answer field against a label (one for all, or one a sample).

    Chat answers repeat a lot ("A", "Second", ...), so each distinct (answer, label) pair is parsed
    once and the verdicts are mapped back: a million answers cost about as much as a set and a lookup.
    """
    keys = list(zip(answers, labels)) if not isinstance(labels, str) else answers
    try:
        distinct = set(keys)
    except TypeError:  # an unhashable answer (a list, a dict): not a string, say which one
        _check_strings(name, answers, offset)
        raise
    verdict = {}
    for key in distinct:
        answer, label = key if not isinstance(labels, str) else (key, labels)
        if not isinstance(answer, str):
            _check_strings(name, answers, offset)
        verdict[key] = answer_matches(answer, label, parser)
    return np.fromiter((verdict[key] for key in keys), dtype=bool, count=len(keys))


def _reference_columns(references, n: int, offset: int = 0) -> dict[str, list[str]]:
    """Per-sample 4-lists of expected answers as the four reference columns."""
    if len(references) != n:
        raise ValueError(f"references has {len(references)} samples but the answers have {n}")
    for i, ref in enumerate(references):
        if isinstance(ref, str) or len(ref) != 4 or not all(isinstance(label, str) and label for label in ref):
            raise ValueError(
                f"references[{i + offset}] is {ref!r}: each sample needs four expected answers (non-empty "
                f"strings) for {', '.join(ANSWER_FIELDS)}"
            )
    columns = [list(column) for column in zip(*references)] if n else [[], [], [], []]
    return dict(zip(REFERENCE_FIELDS, columns))


def answers_correct(Text_Q0, Text_Q1, Image_Q0, Image_Q1, labels=EXPECTED_ANSWERS, parser="lenient"):
    """Per-sample (text correct, image correct) from a chat model's four answers.

    ``labels``: the expected answer of each field, one string for all samples or one list a sample.
    """
    columns = dict(zip(ANSWER_FIELDS, (Text_Q0, Text_Q1, Image_Q0, Image_Q1)))
    right = {name: _answer_column_correct(name, columns[name], label, parser) for name, label in zip(ANSWER_FIELDS, labels)}
    return right["Text_Q0"] & right["Text_Q1"], right["Image_Q0"] & right["Image_Q1"]


# -- aggregation ----------------------------------------------------------------------------------


def _category_codes(categories, n: int, offset: int = 0) -> np.ndarray:
    if len(categories) != n:
        raise ValueError(f"categories has {len(categories)} samples but the scores have {n}")
    index = {name: code for code, name in enumerate(CATEGORIES)}
    try:
        return np.fromiter((index[c] for c in categories), dtype=np.intp, count=n)
    except (KeyError, TypeError):
        for i, category in enumerate(categories):
            if not isinstance(category, str) or category not in index:
                raise ValueError(
                    f"categories[{i + offset}] is {category!r}: VisMin categories are {', '.join(CATEGORIES)} "
                    "(pass names; a datasets ClassLabel column converts with .int2str)"
                ) from None
        raise


def _percent(hits, count) -> float:
    # The official formula, correct * 100 / denominator, so the rounded cells match it exactly.
    return float(hits * 100 / count)


def aggregate(text: np.ndarray, image: np.ndarray, category_codes=None) -> dict:
    """Percentages from per-sample correctness, overall and (with categories) per category.

    ``category_codes``: per sample, the index of its category in :data:`CATEGORIES`.
    """
    n = len(text)
    if n == 0:
        raise ValueError("no samples to score")
    group = text & image
    results = {
        "text_score": _percent(int(text.sum()), n),
        "image_score": _percent(int(image.sum()), n),
        "group_score": _percent(int(group.sum()), n),
        "num_samples": n,
    }
    if category_codes is None:
        return results
    codes = category_codes
    counts = np.bincount(codes, minlength=len(CATEGORIES))
    hits = {name: np.bincount(codes, weights=flags, minlength=len(CATEGORIES)).astype(np.int64)
            for name, flags in (("text_score", text), ("image_score", image), ("group_score", group))}
    per_category = {}
    for code, category in enumerate(CATEGORIES):
        if counts[code]:
            cell = {name: _percent(int(hits[name][code]), int(counts[code])) for name in hits}
            per_category[category] = {**cell, "num_samples": int(counts[code])}
    category_mean = {name: float(np.mean([cell[name] for cell in per_category.values()])) for name in hits}
    cells = [cell[name] for cell in per_category.values() for name in hits]
    results.update(per_category=per_category, category_mean=category_mean, avg_as_published=float(np.mean(cells)))
    return results


# -- input normalisation --------------------------------------------------------------------------


def _check_lengths(columns: dict) -> int:
    lengths = {name: len(values) for name, values in columns.items()}
    first = next(iter(lengths))
    for name, length in lengths.items():
        if length != lengths[first]:
            raise ValueError(f"{name} has {length} samples but {first} has {lengths[first]}: give every field one value a sample")
    return lengths[first]


def normalize_inputs(inputs: dict, offset: int = 0) -> tuple[dict, np.ndarray | None]:
    """Check one call's inputs; returns the stored feature columns (absent ones as None) and the
    category codes (None without categories).

    Accepts the four score lists or the ``scores`` array, or the four answer lists with optional
    ``references`` (or the four ``reference_*`` lists); raises a ValueError naming the field and the
    sample for anything the official scorer could not rank.
    """
    inputs = {name: value for name, value in inputs.items() if value is not None}
    unknown = sorted(set(inputs) - set(FEATURE_NAMES) - {"scores", "references"})
    if unknown:
        raise ValueError(
            f"unknown inputs {unknown}; VisMin takes {', '.join(SCORE_FIELDS)} (or scores), or "
            f"{', '.join(ANSWER_FIELDS)} (with optional references), and optional categories"
        )
    if "scores" in inputs:
        if any(name in inputs for name in SCORE_FIELDS):
            raise ValueError("give either scores (an N x 2 x 2 array) or the four lists T0_I0 ... T1_I1, not both")
        inputs.update(split_score_array(inputs.pop("scores")))
    given_scores = [name for name in SCORE_FIELDS if name in inputs]
    given_answers = [name for name in ANSWER_FIELDS if name in inputs]
    if given_scores and given_answers:
        raise ValueError("give either similarity scores (T0_I0 ...) or answers (Text_Q0 ...), not both in one call")
    if not (given_scores or given_answers):
        raise ValueError(f"nothing to score: give {', '.join(SCORE_FIELDS)} (or scores), or {', '.join(ANSWER_FIELDS)}")
    fields = SCORE_FIELDS if given_scores else ANSWER_FIELDS
    missing = [name for name in fields if name not in inputs]
    if missing:
        raise ValueError(f"missing inputs {missing}: every sample needs all of {', '.join(fields)}")
    reference_lists = [name for name in REFERENCE_FIELDS if name in inputs]
    if (reference_lists or "references" in inputs) and fields is SCORE_FIELDS:
        raise ValueError("references are the expected answers of a chat model; similarity scores take none")
    if reference_lists and "references" in inputs:
        raise ValueError("give references either as one list of 4-lists or as the four reference_* lists, not both")
    if reference_lists and len(reference_lists) < 4:
        raise ValueError(f"missing inputs {[n for n in REFERENCE_FIELDS if n not in inputs]}: give all four reference_* lists")
    columns = {name: inputs[name] for name in fields + tuple(reference_lists)}
    if "categories" in inputs:
        columns["categories"] = inputs["categories"]
    n = _check_lengths(columns)
    if fields is SCORE_FIELDS:
        for name in SCORE_FIELDS:
            columns[name] = _score_column(name, columns[name], offset)
    else:
        for name in ANSWER_FIELDS:
            _check_strings(name, columns[name], offset)
        if "references" in inputs:
            columns.update(_reference_columns(inputs["references"], n, offset))
        elif reference_lists:
            _reference_columns(list(zip(*(columns[name] for name in REFERENCE_FIELDS))), n, offset)
    codes = _category_codes(columns["categories"], n, offset) if "categories" in columns else None
    return {name: columns.get(name) for name in FEATURE_NAMES}, codes


def columns_correct(columns: dict, parser: str = "lenient") -> tuple[np.ndarray, np.ndarray]:
    """Per-sample (text correct, image correct) from checked columns (as :func:`normalize_inputs` returns them):
    the official rule for either input mode."""
    if parser not in PARSERS:
        raise ValueError(f"parser must be one of {PARSERS}, got {parser!r}")
    if columns["T0_I0"] is not None:
        return scores_correct(*(columns[name] for name in SCORE_FIELDS))
    references = [columns[name] for name in REFERENCE_FIELDS]
    labels = references if all(r is not None for r in references) else EXPECTED_ANSWERS
    return answers_correct(*(columns[name] for name in ANSWER_FIELDS), labels=labels, parser=parser)


def score_columns(columns: dict, category_codes=None, parser: str = "lenient") -> dict:
    """The metric's result from checked columns (as :func:`normalize_inputs` returns them)."""
    text, image = columns_correct(columns, parser)
    return aggregate(text, image, category_codes)


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
