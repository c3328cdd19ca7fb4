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

The results are results.json's layout v1 (:mod:`diffbench.report.layout`): every metric x 100, as
papers print them (CIDEr-D can pass 100), each with its 95% bootstrap interval
(:mod:`diffbench.captions.intervals`: every corpus metric recomputed on each of ``resamples`` resamples
from ``seed``, stratified by a sample's combination of groups, so that every group keeps its size in
every resample, the combinations of fewer than :data:`MIN_STRATUM` samples pooled), the same for each group, the data's provenance
(:func:`diffbench.data.provenance.of_dataset`) and how the scores were made (``protocol``).
:func:`score` also gives one record a sample for samples.jsonl: its id, change types (and
``distractor`` on CLEVR-Change), prediction, references and pycocoevalcap's per-image values (BLEU-4
of the sample alone, METEOR of its statistics line, ROUGE-L, its CIDEr-D within the whole corpus).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np

from diffbench import __version__
from diffbench.captions.clevr_change import CLEVR_CHANGE_GROUPS, clevr_change_aliases, clevr_change_groups
from diffbench.captions.inputs import validate_inputs
from diffbench.captions.intervals import SCALE, CaptionStatistics, percentile_intervals, resampled_groups
from diffbench.captions.metrics import group_selections, prepare_corpus
from diffbench.data import provenance
from diffbench.report.layout import DEFAULT_RESAMPLES, DEFAULT_SEED, group, make_results
from diffbench.report.uncertainty import LEVEL, resample_counts

#: how results.json's ``protocol`` names the scoring (verified against pycocoevalcap 1.2's sources)
PROTOCOL = {
    "tokenizer": "pycocoevalcap 1.2 PTBTokenizer (Stanford CoreNLP 3.4.1), punctuation removed",
    "metrics": {"Bleu_1..4": "pycocoevalcap Bleu(4), option closest", "METEOR": "METEOR 1.5 (-l en -norm)",
                "ROUGE_L": "pycocoevalcap Rouge (beta 1.2)", "CIDEr": "pycocoevalcap Cider (CIDEr-D, sigma 6)",
                "SPICE": "pycocoevalcap Spice 1.0"},
}
EVALUATIONS = {
    "clevr_change_official": "CLEVR-Change's official evaluation (RobustChangeCaptioning evaluate.py): the total, "
                             "semantic_change, the five types and distractor, each a COCOEvalCap run of its own",
    "per_change_type": "the total, then each change type scored as a corpus of its own",
}
UNCERTAINTY = ("percentile bootstrap over samples, each corpus metric recomputed on each resample (BLEU from the "
               "summed counts, METEOR by its JVM from the summed statistics, ROUGE-L the mean, CIDEr-D with the "
               "resample's document frequencies: a sample drawn k times counts k times)")


class MissingPredictionsError(ValueError):
    """Dataset ids without a prediction, the one problem: each front end says how to score the others
    (``--allow-missing``, a checkbox), or why it cannot."""


@dataclass
class Scored:
    """Scored predictions: ``results`` (results.json, :mod:`diffbench.report.layout`) and ``samples`` (one
    record a scored sample for samples.jsonl, in the dataset's order)."""

    results: dict
    samples: list[dict]


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


def _scored_rows(predictions_by_id: dict, dataset, allow_missing: bool, where: str):
    """``(predictions, rows, ids)``: the predictions by dataset id, the dataset rows that have one, every id."""
    if not isinstance(predictions_by_id, dict):
        raise ValueError(f"predictions must map the dataset's id to a caption, got {type(predictions_by_id).__name__}")
    columns = set(dataset.column_names)
    for column in ("id", "captions"):
        if column not in columns:
            raise ValueError(f"the dataset has no {column!r} column (columns: {sorted(columns)})")
    ids = [str(i) for i in dataset["id"]]
    aliases = {alias: i for i in ids for alias in clevr_change_aliases(i)} if "distractor" in columns else {}
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
    return predictions, rows, ids


#: a combination of groups held by fewer samples than this is pooled with the other small ones: a stratum of
#: one sample redraws that sample in every resample and adds no spread (multi-label OmniDiff has many)
MIN_STRATUM = 10
STRATA = (f"each sample's combination of groups; the combinations of fewer than {MIN_STRATUM} samples "
          "pooled into one stratum")


def strata_of(labels: list[list[str]]) -> list[str]:
    """One stratum a sample: its combination of groups (so that every group keeps its size in every resample),
    or, where fewer than :data:`MIN_STRATUM` samples share it, one pooled stratum of all such samples.

    >>> strata_of([["color"]] * 10 + [["add", "drop"], ["move"]])[9:]
    ['color', '', '']
    """
    keys = ["|".join(sorted(label)) for label in labels]
    sizes = Counter(keys)
    return [key if sizes[key] >= MIN_STRATUM and key else "" for key in keys]


def score(predictions_by_id: dict, dataset, metrics=None, *, allow_missing: bool = False, source=None,
          benchmark: str | None = None, config=None, split: str | None = None,
          resamples: int = DEFAULT_RESAMPLES, seed: int = DEFAULT_SEED) -> Scored:
    """Score ``{id: caption}`` against a built dataset (one split); see the module docstring for the groups.

    Every dataset id needs a prediction unless ``allow_missing`` (then the rows with one are scored,
    and ``num_missing`` says how many were not); an id not in the dataset is an error. ``source`` names
    where the predictions came from (the predictions file): every error about which ids they cover
    opens with it. ``benchmark``, ``config`` and ``split`` name the data in the results (default: what
    its build recorded). ``resamples`` and ``seed``: the intervals' bootstrap.
    """
    where = f"{source}: " if source is not None else ""
    predictions, rows, ids = _scored_rows(predictions_by_id, dataset, allow_missing, where)
    columns = set(dataset.column_names)
    clevr_change = "distractor" in columns
    change_types = list(dataset["change_types"]) if "change_types" in columns else [[] for _ in ids]
    distractor = list(dataset["distractor"]) if clevr_change else None
    if clevr_change:
        labels = [clevr_change_groups(bool(distractor[n]), change_types[n]) for n in rows]
    else:
        labels = [list(dict.fromkeys(change_types[n] or [])) for n in rows]
    all_references = list(dataset["captions"])
    hyps, refs, _ = validate_inputs([predictions[ids[n]] for n in rows], [all_references[n] for n in rows],
                                    None, [ids[n] for n in rows])
    selections = group_selections(labels) if any(labels) else {}
    if clevr_change:
        selections = {g: selections[g] for g in CLEVR_CHANGE_GROUPS if g in selections}
    counts = resample_counts(len(rows), resamples, seed, strata=strata_of(labels) if selections else None)
    prepared = prepare_corpus(hyps, refs, metrics, sample_ids=[ids[n] for n in rows], meanwhile=lambda p: resampled_groups(
        CaptionStatistics.of_prepared(p), counts, selections))
    resampled = prepared.meanwhile
    if "meteor" in prepared.scorers:  # scored by its JVM, once it has every segment's statistics
        meteor = resampled_groups(CaptionStatistics(len(rows)).with_meteor(prepared.scorers["meteor"]), counts, selections)
        resampled = {key: _in_order(prepared, {**values, **meteor[key]}) for key, values in resampled.items()}
    totals = _percent(prepared.score(np.arange(len(rows))))
    groups = {label: group(len(selection), _percent(prepared.score(selection)), percentile_intervals(resampled[label]))
              for label, selection in selections.items()}
    prov = provenance.of_dataset(dataset)
    evaluation = "clevr_change_official" if clevr_change else "per_change_type"
    extra = {"num_missing": len(ids) - len(rows)} if len(rows) < len(ids) else {}
    results = make_results(
        benchmark=benchmark or prov.get("dataset") or "captions", config=config if config is not None else prov.get("config"),
        split=split or str(getattr(dataset, "split", None) or "test"), samples=len(rows), dataset_samples=len(ids),
        scores=totals, ci95=percentile_intervals(resampled[None]), groups=groups,
        uncertainty={"method": UNCERTAINTY, "resamples": resamples, "seed": seed, "level": LEVEL,
                     "strata": STRATA if selections else None},
        provenance=prov, protocol={**PROTOCOL, "evaluation": evaluation, "evaluation_rule": EVALUATIONS[evaluation]},
        **extra, diffbench_version=__version__)
    records = sample_records([ids[n] for n in rows], [change_types[n] for n in rows],
                             [distractor[n] for n in rows] if clevr_change else None, hyps, refs, prepared)
    return Scored(results, records)


def _percent(scores: dict) -> dict[str, float]:
    """The metrics of :meth:`~diffbench.captions.metrics.PreparedCorpus.score` on the percent scale."""
    return {name: SCALE * float(value) for name, value in scores.items() if name != "num_samples"}


def _in_order(prepared, resampled: dict) -> dict:
    """``resampled`` in COCOEvalCap's order of the metrics."""
    names = [name for scorer in prepared.scorers.values() for name in scorer.names]
    return {name: resampled[name] for name in names if name in resampled}


def sample_records(ids, change_types, distractor, predictions, references, prepared) -> list[dict]:
    """samples.jsonl: a sample's id, change types (and ``distractor`` on CLEVR-Change), its prediction and
    references as given, and pycocoevalcap's per-image values x 100
    (:meth:`~diffbench.captions.metrics.PreparedCorpus.segment_scores`)."""
    per_sample = {name: (SCALE * values).tolist() for name, values in prepared.segment_scores().items()}
    records = []
    for k, sample_id in enumerate(ids):
        record = {"id": sample_id, "change_types": list(change_types[k] or [])}
        if distractor is not None:
            record["distractor"] = bool(distractor[k])
        record.update(prediction=predictions[k], references=list(references[k]))
        record.update({name: values[k] for name, values in per_sample.items()})
        records.append(record)
    return records


def score_predictions(predictions_by_id: dict, dataset, metrics=None, *, allow_missing: bool = False,
                      source=None, **options) -> dict:
    """The results of :func:`score` (results.json); ``options``: its keyword arguments."""
    return score(predictions_by_id, dataset, metrics, allow_missing=allow_missing, source=source, **options).results
