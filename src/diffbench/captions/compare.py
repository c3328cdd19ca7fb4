"""Two difference-captioning results on the same samples: is B's BLEU / METEOR / ROUGE-L / CIDEr-D different?

A caption metric of a corpus is not a mean of per-sample scores (CIDEr-D's document frequencies come from
the corpus), so the comparison is a paired bootstrap: the same resamples of samples (the same draw counts
for A and B) and on each resample both corpus metrics recomputed from scratch
(:func:`diffbench.captions.intervals.resampled_scores`); B - A's 95% interval is the percentile interval of
the resampled differences, its p-value twice the share of resamples on the far side of zero
(:func:`diffbench.report.uncertainty.paired_bootstrap`). The total resamples all samples; each group (a
change type, CLEVR-Change's parts) resamples its own samples, scored as a corpus of their own as the
scoring's groups are. Not stratified by the combination of groups a sample is in: with many labels most
combinations hold one sample, and a one-sample stratum draws the same sample every time, which would
shrink the interval towards zero width and make any difference look significant.

A's and B's captions are the ``prediction`` of each record of their samples.jsonl; the references are the
records' ``references`` when both carry them (and they must agree), else the built dataset's ``captions``
(:func:`diffbench.data.building.load_built`). ``diffbench compare A B`` calls :func:`compare`;
:mod:`diffbench.report.compare` reads, checks and writes.
"""

from __future__ import annotations

import numpy as np

from diffbench.captions.clevr_change import CLEVR_CHANGE_GROUPS, clevr_change_groups
from diffbench.captions.inputs import METRICS, OUTPUT_NAMES
from diffbench.captions.intervals import CaptionStatistics, CiderResampling, resampled_scores
from diffbench.captions.metrics import group_selections, prepare_corpus
from diffbench.captions.stats import Corpus
from diffbench.report import compare as generic
from diffbench.report.layout import DEFAULT_RESAMPLES, DEFAULT_SEED
from diffbench.report.uncertainty import paired_bootstrap, resample_counts

METHOD = {"interval": "paired bootstrap over samples, the total over all samples and each group within its own: "
                      "A and B scored on the same resamples, every corpus metric recomputed on each (CIDEr-D's "
                      "document frequencies included)",
          "test": "the paired bootstrap (twice the share of resamples whose difference is on the far side of 0)"}


def predictions_of(run: generic.Run, ids: list) -> list[str]:
    """Each sample's caption (``prediction``), checked: a string, else a ValueError naming file, line, id."""
    found = []
    for sample_id in ids:
        caption = run.records[sample_id].get("prediction")
        if not isinstance(caption, str):
            raise ValueError(f"{run.where(sample_id)}: prediction is {caption!r}, not a caption (a string)")
        found.append(caption)
    return found


def recorded_references(run: generic.Run, ids: list) -> list[tuple[str, ...]] | None:
    """The records' ``references`` (``None`` when a record has none), each a non-empty list of strings."""
    found = []
    for sample_id in ids:
        references = run.records[sample_id].get("references")
        if references is None:
            return None
        if not (isinstance(references, list) and references and all(isinstance(r, str) for r in references)):
            raise ValueError(f"{run.where(sample_id)}: references is not a non-empty list of captions")
        found.append(tuple(references))
    return found


def built_references(run: generic.Run, ids: list) -> list[tuple[str, ...]]:
    """The references of ``ids`` in the built dataset the result was scored on."""
    from diffbench.data.building import load_built

    results = run.results
    dataset = load_built(results["benchmark"], results["config"], results["split"])
    by_id = dict(zip((str(i) for i in dataset["id"]), dataset["captions"]))
    missing = [i for i in ids if str(i) not in by_id]
    if missing:
        raise ValueError(f"{len(missing):,} ids of {run.samples_file} are not in the built {results['benchmark']} "
                         f"{results['config']}/{results['split']} (e.g. {missing[0]!r}): it was rebuilt since")
    return [tuple(by_id[str(i)]) for i in ids]


def references_of(a: generic.Run, b: generic.Run, ids: list) -> list[tuple[str, ...]]:
    """The samples' references: recorded by both runs (and the same), else the built dataset's."""
    mine, theirs = recorded_references(a, ids), recorded_references(b, ids)
    if mine is not None and theirs is not None:
        for sample_id, x, y in zip(ids, mine, theirs):
            if x != y:
                raise ValueError(f"{a.where(sample_id)} and {b.where(sample_id)} give different references")
        return mine
    return mine or theirs or built_references(a, ids)


def group_labels(run: generic.Run, ids: list) -> list[list[str]]:
    """Each sample's groups, as the scoring sorts them (:mod:`diffbench.captions.scoring`): its change types,
    or on CLEVR-Change (records with ``distractor``) ``distractor`` or ``semantic_change`` and its type."""
    labels = []
    for sample_id in ids:
        record = run.records[sample_id]
        change_types = record.get("change_types") or []
        if not (isinstance(change_types, list) and all(isinstance(t, str) for t in change_types)):
            raise ValueError(f"{run.where(sample_id)}: change_types is not a list of names")
        if "distractor" in record and not isinstance(record["distractor"], bool):
            raise ValueError(f"{run.where(sample_id)}: distractor is {record['distractor']!r}, not true or false")
        labels.append(clevr_change_groups(record["distractor"], change_types) if "distractor" in record
                      else list(dict.fromkeys(change_types)))
    return labels


def groups_of(labels: list[list[str]]) -> dict[str, np.ndarray]:
    """``{group: the positions of its samples}``: the scoring's groups (CLEVR-Change's parts in the official
    order, others sorted); a sample may be in several, or in none (then only in the total)."""
    selections = group_selections(labels)
    if any(label in CLEVR_CHANGE_GROUPS for label in selections):
        return {g: selections[g] for g in CLEVR_CHANGE_GROUPS if g in selections}
    return selections


def metrics_of(a: generic.Run, b: generic.Run) -> list[str]:
    """The scorers (``bleu``, ``meteor``, ...) whose metrics both results report."""
    chosen = [m for m in METRICS if all(name in run.results["scores"] for run in (a, b) for name in OUTPUT_NAMES[m])]
    if not chosen:
        raise ValueError(f"{a.path} and {b.path} report no caption metric in common")
    return chosen


def statistics(predictions: list[str], references: list, metrics: list[str], ids: list):
    """``(stats, corpus)``: the resampling statistics of one result and its tokenised corpus (for groups)."""
    prepared = prepare_corpus(predictions, references, metrics, sample_ids=[str(i) for i in ids])
    return CaptionStatistics.of_prepared(prepared), prepared.corpus


def subset(stats: CaptionStatistics, corpus: Corpus, members: np.ndarray) -> CaptionStatistics:
    """The statistics of the samples ``members`` as a corpus of their own (CIDEr-D's document frequencies
    from them alone, as the scoring's groups): the per-sample rows taken, nothing tokenised again.

        >>> corpus = Corpus.of(["a red car is gone", "a man appeared", "a red car left"],
        ...                    [("the red car is gone",), ("a dog appeared",), ("the red car has left",)])
        >>> pair = subset(CaptionStatistics.of_corpus(corpus), corpus, np.array([0, 2]))
        >>> alone = Corpus.of(["a red car is gone", "a red car left"], [("the red car is gone",), ("the red car has left",)])
        >>> once = np.ones((1, 2), dtype=np.int32)
        >>> resampled_scores(pair, once)["CIDEr"] == resampled_scores(alone, once)["CIDEr"]
        array([ True])
    """
    def rows(values):
        return None if values is None else values[members]

    cider = None if stats.cider is None else CiderResampling([corpus.segments[i] for i in members], corpus.orders)
    return CaptionStatistics(len(members), bleu=rows(stats.bleu), rouge=rows(stats.rouge), cider=cider,
                             meteor=rows(stats.meteor), spice=rows(stats.spice))


def metric_entries(a: CaptionStatistics, b: CaptionStatistics, counts: np.ndarray) -> dict:
    """Every metric of one corpus: A and B, B - A, its paired bootstrap interval and p-value (A and B on
    the same resamples ``counts``)."""
    once = np.ones((1, a.n), dtype=np.int32)
    observed_a, observed_b = resampled_scores(a, once), resampled_scores(b, once)
    resampled_a, resampled_b = resampled_scores(a, counts), resampled_scores(b, counts)
    entries = {}
    for name in observed_a:
        value_a, value_b = float(observed_a[name][0]), float(observed_b[name][0])
        found = paired_bootstrap(lambda _: resampled_b[name] - resampled_a[name], counts, value_b - value_a)
        entries[name] = generic.difference(value_a, value_b, found["ci95"], "paired-bootstrap", found["p_value"])
    return entries


def compare_captions(a: generic.Run, b: generic.Run, ids: list, resamples: int, seed: int) -> generic.Differences:
    """The :data:`~diffbench.report.compare.Comparer` of the difference-captioning sets: the total, then
    each group (a change type, a CLEVR-Change part), each resampled within its own samples."""
    metrics = metrics_of(a, b)
    references = references_of(a, b, ids)
    stats_a, corpus_a = statistics(predictions_of(a, ids), references, metrics, ids)
    stats_b, corpus_b = statistics(predictions_of(b, ids), references, metrics, ids)
    scores = metric_entries(stats_a, stats_b, resample_counts(len(ids), resamples, seed))
    groups = {}
    for label, members in groups_of(group_labels(a, ids)).items():
        counts = resample_counts(len(members), resamples, seed)
        groups[label] = {"samples": int(len(members)), "scores": metric_entries(
            subset(stats_a, corpus_a, members), subset(stats_b, corpus_b, members), counts)}
    return generic.Differences(scores, groups, METHOD)


def compare(a, b, *, intersect: bool = False, resamples: int = DEFAULT_RESAMPLES, seed: int = DEFAULT_SEED) -> dict:
    """compare.json's content for two caption results (folders or results.json paths, or loaded
    :class:`~diffbench.report.compare.Run`): see the module docstring."""
    a, b = (run if isinstance(run, generic.Run) else generic.load_run(run) for run in (a, b))
    return generic.compare(a, b, compare_captions, intersect=intersect, resamples=resamples, seed=seed)
