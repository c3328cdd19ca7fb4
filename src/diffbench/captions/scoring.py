"""Scoring predictions against a built difference-captioning dataset: the join and the groups.

:func:`score_predictions` is the one entry point the CLI (``diffbench score captions``), the
evaluation harness and the Space call; :mod:`diffbench.captions.report` writes what it returns. It joins ``{id: caption}`` to the dataset's rows (columns
``id``, ``captions`` and, when present, ``change_types`` and ``distractor``), scores them with
:func:`diffbench.captions.metrics.score_captions` and returns the totals with ``groups``:

- **CLEVR-Change** (rows with a ``distractor`` column): the parts of the official evaluation
  (:mod:`diffbench.captions.clevr_change`),
  Seth-Park/RobustChangeCaptioning ``evaluate.py`` with ``utils/eval_utils.py``
  (``score_generation``, ``score_generation_by_type``): ``semantic_change`` (semantic-change
  captions only, rows with ``distractor`` false), the five types ``color``, ``material``, ``add``,
  ``drop``, ``move`` (semantic rows by ``change_types``, as ``type_mapping.json`` sorts them),
  ``distractor`` (non-semantic captions only) and, at the top level, the total over both. Each part is
  COCOEvalCap re-run on that subset alone there, and equals it here (CIDEr's document frequencies
  from the subset). Predictions may also be keyed the official way: ``test.py`` keys a semantic pair
  by the tail of its default image name, ``"000123.png"``, and its distractor by ``"000123.png_n"``;
  ``"000123"`` / ``"000123_n"`` are accepted too. A type with no row is left out (the official
  script would run COCOEvalCap on an empty set).
- other datasets: one group a change type (a row may carry several; a row with none counts only in
  the total).

``results["provenance"]`` is :func:`diffbench.data.provenance.of_dataset`.
"""

from __future__ import annotations

from diffbench.captions.clevr_change import CLEVR_CHANGE_GROUPS, clevr_change_aliases, clevr_change_groups
from diffbench.captions.metrics import score_captions
from diffbench.data import provenance

class MissingPredictionsError(ValueError):
    """Dataset ids without a prediction, the one problem: each front end says how to score the others
    (``--allow-missing``, a checkbox), or why it cannot."""


def _match_ids(predictions_by_id: dict, ids: list[str], aliases: dict[str, str], where: str) -> dict[str, object]:
    """``{dataset id: prediction}``, official keys translated; a key given twice (as itself and as an
    alias) is an error naming both (``where`` opens it: ``"<predictions file>: "``, or nothing)."""
    known = set(ids)
    out, source = {}, {}
    for key, caption in predictions_by_id.items():
        key = str(key)
        target = key if key in known else aliases.get(key, key)
        if target in out:
            raise ValueError(f"{where}id {target!r} has two predictions (keys {source[target]!r} and {key!r})")
        out[target], source[target] = caption, key
    return out


def score_predictions(predictions_by_id: dict, dataset, metrics=None, *, allow_missing: bool = False,
                      source=None) -> dict:
    """Score ``{id: caption}`` against a built dataset (one split); see the module docstring for the groups.

    Every dataset id needs a prediction unless ``allow_missing`` (then the rows with one are scored,
    and ``num_missing`` says how many were not); an id not in the dataset is an error. ``source`` names
    where the predictions came from (the predictions file): every error about which ids they cover
    opens with it. Returns the metric values of the total, ``num_samples``, ``groups``, ``evaluation``
    (which breakdown) and ``provenance``.
    """
    where = f"{source}: " if source is not None else ""
    if not isinstance(predictions_by_id, dict):
        raise ValueError(f"predictions must map the dataset's id to a caption, got {type(predictions_by_id).__name__}")
    columns = set(dataset.column_names)
    for column in ("id", "captions"):
        if column not in columns:
            raise ValueError(f"the dataset has no {column!r} column (columns: {sorted(columns)})")
    ids = [str(i) for i in dataset["id"]]
    clevr_change = "distractor" in columns
    aliases = {alias: i for i in ids for alias in clevr_change_aliases(i)} if clevr_change else {}
    predictions = _match_ids(predictions_by_id, ids, aliases, where)
    known = set(ids)
    extra = [k for k in predictions if k not in known]
    if extra:
        raise ValueError(f"{where}{len(extra)} predictions have ids not in the dataset, e.g. "
                         f"{[k[:80] for k in extra[:5]]}")
    rows = [n for n, i in enumerate(ids) if i in predictions]
    missing = len(ids) - len(rows)
    if missing and not allow_missing:
        example = [i for i in ids if i not in predictions][:5]
        raise MissingPredictionsError(f"{where}{missing} of {len(ids)} dataset ids have no prediction, e.g. {example}")
    if not rows:
        raise ValueError(f"{where}no prediction matches an id of the dataset")
    change_types = list(dataset["change_types"]) if "change_types" in columns else [[] for _ in ids]
    if clevr_change:
        distractor = list(dataset["distractor"])
        groups = [clevr_change_groups(bool(distractor[n]), change_types[n]) for n in rows]
        evaluation = "clevr_change_official"
    else:
        groups = [list(change_types[n] or []) for n in rows]
        evaluation = "per_change_type"
    references = list(dataset["captions"])
    results = score_captions([predictions[ids[n]] for n in rows], [references[n] for n in rows],
                             groups=groups if any(groups) else None, metrics=metrics,
                             sample_ids=[ids[n] for n in rows])
    if clevr_change:
        found = results.get("groups", {})
        results["groups"] = {g: found[g] for g in CLEVR_CHANGE_GROUPS if g in found}
    results["evaluation"] = evaluation
    if missing:
        results["num_missing"] = missing
    results["provenance"] = provenance.of_dataset(dataset)
    return results
