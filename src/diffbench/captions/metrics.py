"""COCO caption metrics of difference captions, equal to pycocoevalcap 1.2, for a corpus and any of its subsets.

:func:`score_captions` gives what ``COCOEvalCap.evaluate()`` gives (``Bleu_1..4``, ``METEOR``,
``ROUGE_L``, ``CIDEr``; ``SPICE`` on request) for one prediction and a list of references a sample,
and, given ``groups`` (labels; a sample may carry several), the same score set for each group, equal
to re-running the whole pipeline on that group's samples alone (CIDEr's document frequencies from the
group's own references, as CLEVR-Change's official per-type evaluation does).

The pieces, one module each, with pycocoevalcap's ``compute_score(gts, res) -> (score, scores)`` so
each drops into ``COCOEvalCap`` unchanged:

- :mod:`diffbench.captions.tokenizer` (PTBTokenizer, a keep-alive JVM),
  :mod:`diffbench.captions.stats` (per-segment statistics, cached),
  :mod:`diffbench.captions.java` (finding Java, the drivers, the JVMs' pipes),
- :mod:`diffbench.captions.bleu`, :mod:`diffbench.captions.meteor` (one METEOR JVM scoring on every core),
  :mod:`diffbench.captions.rouge`, :mod:`diffbench.captions.cider`, :mod:`diffbench.captions.spice`,
- :mod:`diffbench.captions.inputs` (checks and bounds), :mod:`diffbench.captions.scoring` (a built
  dataset's groups, CLEVR-Change's official parts, tables and result files).

Here a corpus is tokenised once and reduced once; each scorer then scores any subset from the
statistics (``prepare(corpus)`` once, ``score(selection)`` a subset), so a breakdown costs little more
than one score.

    >>> SCORERS["cider"].__name__, SCORERS["meteor"].__module__
    ('Cider', 'diffbench.captions.meteor')
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from diffbench.captions.bleu import Bleu, _bleu
from diffbench.captions.cider import Cider
from diffbench.captions.inputs import DEFAULT_METRICS, METRICS, OUTPUT_NAMES, normalize_metrics, validate_inputs
from diffbench.captions.java import find_java, pycocoevalcap_dir
from diffbench.captions.meteor import Meteor, MeteorPool, MeteorServer, get_meteor
from diffbench.captions.rouge import Rouge
from diffbench.captions.spice import Spice, SpiceUnavailableError, check_available
from diffbench.captions.stats import Corpus
from diffbench.captions.tokenizer import tokenize_corpus

SCORERS = {"bleu": Bleu, "meteor": Meteor, "rouge": Rouge, "cider": Cider, "spice": Spice}
ALL_GROUP = "all"

__all__ = [
    "ALL_GROUP", "DEFAULT_METRICS", "METRICS", "OUTPUT_NAMES", "SCORERS", "SpiceUnavailableError",
    "PreparedCorpus", "normalize_metrics", "prepare_corpus", "pycocoevalcap_dir", "score_captions", "score_corpus",
]


def group_selections(groups: list[list[str]] | None) -> dict[str, np.ndarray]:
    """``{label: indices of its samples}``, labels sorted."""
    if groups is None:
        return {}
    members: dict[str, list[int]] = defaultdict(list)
    for i, labels in enumerate(groups):
        for label in dict.fromkeys(labels):
            members[label].append(i)
    return {label: np.asarray(members[label], dtype=np.int64) for label in sorted(members)}


@dataclass
class PreparedCorpus:
    """A tokenised corpus with its scorers prepared (``scorers``: ``{metric: scorer}``, in pipeline order):
    :meth:`score` gives the metrics of any subset, :mod:`diffbench.captions.intervals` resamples their
    statistics, :meth:`segment_scores` gives each sample's own."""

    corpus: Corpus
    scorers: dict
    meanwhile: object = None  # what score_corpus' ``meanwhile`` returned

    def __len__(self) -> int:
        return len(self.corpus)

    def score(self, selection: np.ndarray) -> dict:
        """``{name: value, num_samples}`` of the selected samples, as a pycocoevalcap run on them alone."""
        out = {}
        for scorer in self.scorers.values():
            out.update(scorer.score(selection))
        out["num_samples"] = int(len(selection))
        return out

    def segment_scores(self) -> dict[str, np.ndarray]:
        """``{name: [n]}``: what pycocoevalcap's ``compute_score`` gives each image (its second value) on the
        whole corpus: BLEU-4 of the segment alone, METEOR's score of the segment's statistics line, ROUGE-L,
        the segment's CIDEr-D with the corpus' document frequencies, SPICE's F-score."""
        out = {}
        if "bleu" in self.scorers:
            bleu = self.scorers["bleu"]
            out["Bleu_4"] = np.asarray([_bleu(int(t), int(r), g, c)[-1] for t, r, g, c in
                                        zip(bleu.testlen, bleu.reflen, bleu.guess.tolist(), bleu.correct.tolist())])
        if "meteor" in self.scorers:
            meteor = self.scorers["meteor"]
            out["METEOR"] = np.asarray(meteor.server.score_summed_many(meteor.stats), dtype=np.float64)
        if "rouge" in self.scorers:
            out["ROUGE_L"] = self.scorers["rouge"].scores.copy()
        if "cider" in self.scorers:
            out["CIDEr"] = self.scorers["cider"].segment_scores(np.arange(len(self.corpus)))
        if "spice" in self.scorers:
            out["SPICE"] = self.scorers["spice"].scores.copy()
        return out


def score_corpus(hyps: list[str], refs: list[tuple[str, ...]], chosen: list[str],
                 meteor_server: MeteorPool | MeteorServer | None = None,
                 meanwhile: Callable[[PreparedCorpus], object] | None = None) -> PreparedCorpus:
    """The prepared scorers of a tokenised corpus (:class:`PreparedCorpus`).

    METEOR's segments go to its JVM while the other statistics are computed here, and then
    ``meanwhile(prepared)`` runs on the others (METEOR left out; its result is ``prepared.meanwhile``):
    the JVM's start and scoring take seconds this thread would otherwise wait.
    """
    meteor = Meteor(meteor_server) if "meteor" in chosen else None
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="diffbench-meteor") as pool:
        meteor_stats = pool.submit(meteor.server.segment_stats, list(zip(hyps, refs))) if meteor else None
        try:
            corpus = Corpus.of(hyps, refs)
            scorers = {name: SCORERS[name]() for name in chosen if name != "meteor"}
            for scorer in scorers.values():
                scorer.prepare(corpus)
            prepared = PreparedCorpus(corpus, scorers)
            prepared.meanwhile = meanwhile(prepared) if meanwhile is not None else None
            if meteor is not None:
                meteor.prepare(corpus, meteor_stats.result())
                prepared.scorers = {name: meteor if name == "meteor" else scorers[name] for name in chosen}
        finally:
            if meteor_stats is not None:
                meteor_stats.result()  # surface a METEOR error even when another scorer failed first
    return prepared


def prepare_corpus(predictions, references, metrics=None, *, sample_ids=None, meteor_server=None,
                   meanwhile=None) -> PreparedCorpus:
    """Check, tokenise and prepare raw captions (``predictions``: one string a sample, ``references``: a
    list a sample) for the chosen ``metrics`` (:func:`score_captions`' arguments; ``meanwhile``:
    :func:`score_corpus`')."""
    predictions, references, _ = validate_inputs(predictions, references, None, sample_ids)
    return _prepare_checked(predictions, references, metrics, meteor_server, meanwhile)


def _prepare_checked(predictions: list, references: list, metrics, meteor_server, meanwhile=None) -> PreparedCorpus:
    chosen = normalize_metrics(metrics)
    if "spice" in chosen:
        check_available()
    find_java()  # every metric needs the PTB tokenizer: fail early and clearly without Java
    server = meteor_server
    if "meteor" in chosen:
        server = server or get_meteor()
        # the JVM loads in the background while the captions are tokenised
        server.start(len(predictions)) if isinstance(server, MeteorPool) else server.start()
    hyps, refs = tokenize_corpus(predictions, references)
    return score_corpus(hyps, refs, chosen, server, meanwhile)


def score_captions(predictions, references, groups=None, metrics=None, *, sample_ids=None, meteor_server=None) -> dict:
    """COCO caption metrics of ``predictions`` (one string a sample) against ``references`` (a list a sample).

    Returns ``{"Bleu_1": .., "Bleu_2": .., "Bleu_3": .., "Bleu_4": .., "METEOR": .., "ROUGE_L": ..,
    "CIDEr": .., "num_samples": N}`` (the chosen ``metrics`` only, on pycocoevalcap's scale: 0..1,
    CIDEr-D 0..10) and, when ``groups`` is given (one label or list of labels a sample; ``None`` or ``[]``
    for none), ``"groups": {label: {same keys}}``, each equal to scoring that group's samples alone.
    ``sample_ids`` only name samples in errors.
    """
    predictions, references, groups = validate_inputs(predictions, references, groups, sample_ids)
    prepared = _prepare_checked(predictions, references, metrics, meteor_server)
    results = prepared.score(np.arange(len(prepared)))
    if groups is not None:
        results["groups"] = {label: prepared.score(selection) for label, selection in group_selections(groups).items()}
    return results
