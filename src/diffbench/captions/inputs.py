"""Input checks of the caption scorers: metric names, caption lists, predictions files. Bounded, one-line errors.

Everything a user hands to the scorers passes here first, and every refusal is a :class:`ValueError`
of one line naming the sample (index and id), the file and the entry:

- captions are strings of at most :data:`MAX_CAPTION_CHARS` characters (a 300,000-word caption
  crashed the METEOR JVM), encodable as UTF-8 (a lone surrogate is named, not passed to Java);
- a predictions file is refused before it is read when it is larger than the dataset could need
  (:func:`max_predictions_bytes`); a repeated id is an error naming it (``object_pairs_hook``), as
  is an id that is not a string or an integer (no silent float-to-int), or a caption that is not a
  string. An integer too long for Python (past ``sys.get_int_max_str_digits()``, 4,300 digits by
  default: ``json.loads`` itself would fail, naming neither file nor entry) is read as an
  :class:`OverlongInteger` (:func:`parse_json_int`), which the checks then name like any wrong value.

    >>> normalize_metrics(["CIDEr", "bleu_4", "METEOR"])
    ['bleu', 'meteor', 'cider']
    >>> check_caption("a red car", "sample 0 (id 'p0'): the prediction")
    >>> check_caption("\\ud800", "sample 0 (id 'p0'): the prediction")
    Traceback (most recent call last):
    ...
    ValueError: sample 0 (id 'p0'): the prediction holds a lone surrogate (U+D800) at character 0, not text
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from diffbench.data.image_checks import special_file_kind

METRICS = ("bleu", "meteor", "rouge", "cider", "spice")
DEFAULT_METRICS = ("bleu", "meteor", "rouge", "cider")
OUTPUT_NAMES = {
    "bleu": ("Bleu_1", "Bleu_2", "Bleu_3", "Bleu_4"),
    "meteor": ("METEOR",),
    "rouge": ("ROUGE_L",),
    "cider": ("CIDEr",),
    "spice": ("SPICE",),
}
_ALIASES = {name.lower(): metric for metric, names in OUTPUT_NAMES.items() for name in names}
_ALIASES.update({"rouge-l": "rouge", "rougel": "rouge", "cider-d": "cider"})

#: Longest caption accepted (characters). Published difference captions run to a few hundred words.
MAX_CAPTION_CHARS = int(os.environ.get("DIFFBENCH_MAX_CAPTION_CHARS", "5000"))
#: Most references a sample may carry.
MAX_REFERENCES = 100


def normalize_metrics(metrics=None) -> list[str]:
    """Scorer names in pipeline order from names like ``"bleu"``, ``"Bleu_4"``, ``"CIDEr"``, ``"rouge_l"``."""
    if metrics is None:
        return list(DEFAULT_METRICS)
    if isinstance(metrics, str):
        metrics = [metrics]
    if not hasattr(metrics, "__iter__"):
        raise ValueError(f"metrics must be a list of names, got {type(metrics).__name__}")
    chosen = set()
    for name in metrics:
        if not isinstance(name, str):
            raise ValueError(f"metric names must be strings, got {type(name).__name__}")
        key = name.strip().lower()
        metric = key if key in METRICS else _ALIASES.get(key)
        if metric is None:
            raise ValueError(f"unknown metric {name[:50]!r}; choose from {', '.join(METRICS)}")
        chosen.add(metric)
    if not chosen:
        raise ValueError(f"no metric chosen; choose from {', '.join(METRICS)}")
    return [m for m in METRICS if m in chosen]


def sample_label(i: int, sample_ids=None) -> str:
    return f"sample {i}" + (f" (id {str(sample_ids[i])[:80]!r})" if sample_ids is not None else "")


def check_caption(text, what: str) -> None:
    """A ValueError naming ``what`` unless ``text`` is a string the pipeline can take."""
    if not isinstance(text, str):
        raise ValueError(f"{what} must be a string, got {_kind(text)}")
    if len(text) > MAX_CAPTION_CHARS:
        raise ValueError(f"{what} has {len(text):,} characters; the limit is {MAX_CAPTION_CHARS:,}")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as err:
        code = ord(text[err.start])
        raise ValueError(f"{what} holds a lone surrogate (U+{code:04X}) at character {err.start}, not text") from None


def validate_inputs(predictions, references, groups=None, sample_ids=None):
    """``(predictions, references, groups)`` as checked lists; a ValueError names the first bad sample."""
    for name, value in (("predictions", predictions), ("references", references)):
        if isinstance(value, (str, bytes, dict)) or not hasattr(value, "__len__") or not hasattr(value, "__iter__"):
            raise ValueError(f"{name} must be a list (one entry a sample), got {type(value).__name__}")
    predictions, references = list(predictions), list(references)
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions but {len(references)} reference lists: one of each a sample")
    if not predictions:
        raise ValueError("no samples to score")
    for i, prediction in enumerate(predictions):
        check_caption(prediction, f"{sample_label(i, sample_ids)}: the prediction")
    checked_refs = []
    for i, refs in enumerate(references):
        if isinstance(refs, (str, bytes, dict)) or not hasattr(refs, "__iter__"):
            raise ValueError(f"{sample_label(i, sample_ids)}: references must be a list of strings, got {type(refs).__name__}")
        refs = list(refs)
        if not refs:
            raise ValueError(f"{sample_label(i, sample_ids)}: no reference")
        if len(refs) > MAX_REFERENCES:
            raise ValueError(f"{sample_label(i, sample_ids)}: {len(refs)} references; the limit is {MAX_REFERENCES}")
        for j, ref in enumerate(refs):
            check_caption(ref, f"{sample_label(i, sample_ids)}: reference {j}")
        checked_refs.append(refs)
    return predictions, checked_refs, _check_groups(groups, len(predictions), sample_ids)


def _check_groups(groups, n: int, sample_ids):
    if groups is None:
        return None
    if isinstance(groups, (str, bytes, dict)) or not hasattr(groups, "__len__") or len(groups) != n:
        got = type(groups).__name__ if isinstance(groups, (str, bytes, dict)) or not hasattr(groups, "__len__") else len(groups)
        raise ValueError(f"groups must be a list with one entry a sample ({n}), got {got}")
    checked = []
    for i, labels in enumerate(groups):
        if labels is None:
            labels = []
        elif isinstance(labels, str):
            labels = [labels]
        elif isinstance(labels, (bytes, dict)) or not hasattr(labels, "__iter__"):
            raise ValueError(f"{sample_label(i, sample_ids)}: group labels must be a string or a list of strings")
        labels = list(labels)
        for label in labels:
            if not isinstance(label, str) or not label or len(label) > 200:
                raise ValueError(f"{sample_label(i, sample_ids)}: group labels must be non-empty strings "
                                 f"(at most 200 characters), got {str(label)[:50]!r}")
            check_caption(label, f"{sample_label(i, sample_ids)}: a group label")
        checked.append(labels)
    return checked


# -- predictions files ------------------------------------------------------------------------------
class OverlongInteger:
    """A JSON integer with more digits than Python converts (``sys.get_int_max_str_digits()``).

    ``json.loads`` raises a bare ``ValueError`` on one ("Exceeds the limit (4300 digits) for integer
    string conversion"), naming neither the file nor the entry; read through :func:`parse_json_int`,
    it becomes this placeholder, which is no ``int`` and no ``str``, so a reader's own type checks
    refuse it where it stands, naming file, entry and field. The caption builders
    (:mod:`diffbench.data.caption_builder`) read their JSON so too.

        >>> OverlongInteger("-" + "1" * 5000)
        an integer of 5,000 digits
    """

    def __init__(self, text: str):
        self.digits = len(text.lstrip("-"))

    def __repr__(self) -> str:
        return f"an integer of {self.digits:,} digits"


def parse_json_int(text: str):
    """``json.loads``'s ``parse_int``: the integer, or an :class:`OverlongInteger` where Python refuses it.

        >>> import json
        >>> json.loads("[7, " + "9" * 5000 + "]", parse_int=parse_json_int)
        [7, an integer of 5,000 digits]
    """
    try:
        return int(text)
    except ValueError:
        return OverlongInteger(text)


def max_predictions_bytes(n_samples: int) -> int:
    """The largest predictions file a dataset of ``n_samples`` could need: every caption at the length
    limit, written with ``\\uXXXX`` escapes, plus its id and punctuation."""
    return 64 * 1024 + n_samples * (6 * MAX_CAPTION_CHARS + 1024)


def _unique_keys(path):
    def hook(pairs):
        seen = {}
        for key, value in pairs:
            if key in seen:
                raise ValueError(f"{path}: {str(key)[:80]!r} appears twice in one object (each id may have one caption)")
            seen[key] = value
        return seen

    return hook


def _kind(value) -> str:
    """How a wrong value is named: ``null``, ``float``, ``an integer of 5,000 digits``."""
    if isinstance(value, OverlongInteger):
        return repr(value)
    return "null" if value is None else type(value).__name__


def _entry_id(value, where: str, field: str) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise ValueError(f"{where}: the id must be a string or an integer, got {_kind(value)} (field {field!r})")
    return str(value)


def read_predictions(path, max_bytes: int | None = None) -> dict[str, str]:
    """``{id: caption}`` from a predictions JSON file; a one-line ValueError says what is wrong and where.

    Accepted: an object ``{"id": "caption"}``, or a list of objects with the id under ``id`` or
    ``image_id`` (the official COCO results layout that CLEVR-Change's ``test.py`` writes) and the
    caption under ``caption`` or ``prediction``. ``max_bytes`` refuses a larger file before reading.
    """
    path = Path(path)
    try:
        info = path.stat()
    except FileNotFoundError:
        raise FileNotFoundError(f"no predictions file {path}") from None
    special = special_file_kind(info.st_mode)
    if special is not None:  # never opened: a FIFO would block, a device never end
        raise ValueError(f"{path}: not a regular file ({special}); predictions are a JSON file")
    size = info.st_size
    if max_bytes is not None and size > max_bytes:
        raise ValueError(f"{path}: {size:,} bytes, more than the {max_bytes:,} this dataset could need: not read")
    try:
        with path.open("rb") as handle:
            raw = handle.read() if max_bytes is None else handle.read(max_bytes + 1)
        if max_bytes is not None and len(raw) > max_bytes:
            raise ValueError(f"{path}: more than the {max_bytes:,} bytes this dataset could need: not read")
        text = raw.decode("utf-8")
        data = json.loads(text, object_pairs_hook=_unique_keys(path), parse_int=parse_json_int)
    except UnicodeDecodeError as err:
        raise ValueError(f"{path}: not UTF-8 text (byte {err.start})") from None
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from None
    except RecursionError:
        raise ValueError(f"{path}: JSON nested too deeply") from None
    if isinstance(data, dict):
        out = data
        where = {key: f"{path}: id {key[:80]!r}" for key in out}
    elif isinstance(data, list):
        out, where = {}, {}
        for n, row in enumerate(data):
            if not isinstance(row, dict):
                raise ValueError(f"{path}: entry {n} must be an object with 'id' (or 'image_id') and 'caption'")
            id_keys = [k for k in ("id", "image_id") if k in row]
            caption_keys = [k for k in ("caption", "prediction") if k in row]
            if len(id_keys) != 1 or len(caption_keys) != 1:
                raise ValueError(f"{path}: entry {n} must have one of 'id' / 'image_id' and one of 'caption' / 'prediction'")
            key = _entry_id(row[id_keys[0]], f"{path}: entry {n}", id_keys[0])
            if key in out:
                raise ValueError(f"{path}: id {key[:80]!r} appears twice (entries {where[key]} and {n})")
            out[key], where[key] = row[caption_keys[0]], n
        where = {key: f"{path}: entry {n} (id {key[:80]!r})" for key, n in where.items()}
    else:
        raise ValueError(f"{path}: expected an object {{id: caption}} or a list of {{id, caption}}")
    for key, caption in out.items():
        check_caption(caption, f"{where[key]}: the caption")
    return out
