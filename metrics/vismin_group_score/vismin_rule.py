"""The VisMin rule: which samples a model gets right, and the text / image / group percentages, exactly as the
official VisMin code scores them (rabiulcste/vismin, ``vismin-bench/metric.py`` and ``evals/metrics/itm.py``).

``vismin_group_score.py`` wraps these functions in an ``evaluate.Metric``; they live here, in a module that
needs only ``numpy`` and ``re``, so that a program that only scores (``diffbench score vismin``, the Space)
need not import ``evaluate`` (which imports ``transformers``: seconds). evaluate copies this file beside the
metric script as it copies any local import (``from .vismin_rule import ...``).

    >>> import numpy as np
    >>> text, image = scores_correct(np.array([0.9]), np.array([0.2]), np.array([0.1]), np.array([0.8]))
    >>> aggregate(text, image)
    {'text_score': 100.0, 'image_score': 100.0, 'group_score': 100.0, 'num_samples': 1}
"""

from __future__ import annotations

import re

import numpy as np

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


def normalize_answer(text: str) -> str:
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
    output = normalize_answer(answer)
    expected = normalize_answer(label)
    phrase = normalize_answer(f"ANSWER: {label}")
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
