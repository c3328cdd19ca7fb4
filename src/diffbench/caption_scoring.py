"""COCO caption metrics for difference captions, equal to pycocoevalcap 1.2, with a per-group breakdown.

:func:`score_captions` gives what ``COCOEvalCap.evaluate()`` gives (``Bleu_1..4``, ``METEOR``,
``ROUGE_L``, ``CIDEr``; ``SPICE`` on request) for one prediction and a list of references a sample, and,
given ``groups`` (change types; a sample may carry several), the same score set for each group, equal
to re-running the whole pipeline on that group's samples alone: CIDEr's document frequencies come from
the group's own references, as in CLEVR-Change's official per-type evaluation.

How the work is shared so that a breakdown costs little more than one overall score:

- every caption is tokenised once (:mod:`diffbench.caption_tokenizer`);
- each sample is reduced once to its sufficient statistics: BLEU's clipped n-gram counts and lengths,
  its ROUGE-L score, METEOR's statistics line (:mod:`diffbench.caption_meteor`, one JVM) and CIDEr's
  n-gram tables; a group then sums BLEU counts, averages ROUGE-L, asks the JVM for the METEOR of its
  summed statistics, and recomputes CIDEr's tf-idf weights from its own document frequencies with a
  few vectorised passes;
- sample statistics are kept per process (bounded caches), so a second call on the same captions only
  aggregates.

The scorers are small classes in pycocoevalcap's spirit (:class:`Bleu`, :class:`Meteor`,
:class:`Rouge`, :class:`Cider`, :class:`Spice`): ``prepare(corpus)`` once, ``score(selection)`` per
subset. Their arithmetic follows pycocoevalcap's line for line, quirks included (CIDEr's length penalty
counts bigrams; ROUGE-L splits on single spaces, so two empty captions match); the parity tests run
pycocoevalcap beside them.

    >>> from diffbench.caption_scoring import normalize_metrics
    >>> normalize_metrics(["CIDEr", "bleu_4", "METEOR"])
    ['bleu', 'meteor', 'cider']
"""

from __future__ import annotations

import math
import threading
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from diffbench.caption_meteor import MeteorServer, aggregate_stats, get_meteor, parse_stats
from diffbench.caption_tokenizer import find_java, get_tokenizer, pycocoevalcap_dir

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
ALL_GROUP = "all"
_N = 4  # n-gram orders of BLEU and CIDEr


class SpiceUnavailableError(RuntimeError):
    """SPICE was asked for but Stanford CoreNLP 3.6.0 is not installed beside pycocoevalcap."""


def normalize_metrics(metrics=None) -> list[str]:
    """Scorer names in pipeline order from names like ``"bleu"``, ``"Bleu_4"``, ``"CIDEr"``, ``"rouge_l"``."""
    if metrics is None:
        return list(DEFAULT_METRICS)
    if isinstance(metrics, str):
        metrics = [metrics]
    chosen = set()
    for name in metrics:
        if not isinstance(name, str):
            raise ValueError(f"metric names must be strings, got {name!r}")
        key = name.strip().lower()
        metric = key if key in METRICS else _ALIASES.get(key)
        if metric is None:
            raise ValueError(f"unknown metric {name!r}; choose from {', '.join(METRICS)}")
        chosen.add(metric)
    if not chosen:
        raise ValueError(f"no metric chosen; choose from {', '.join(METRICS)}")
    return [m for m in METRICS if m in chosen]


# -- input checking --------------------------------------------------------------------------------
def _label(i: int, sample_ids) -> str:
    return f"sample {i}" + (f" (id {sample_ids[i]!r})" if sample_ids is not None else "")


def validate_inputs(predictions, references, groups=None, sample_ids=None):
    """Lists checked and copied; a ValueError names the first bad sample."""
    for name, value in (("predictions", predictions), ("references", references)):
        if isinstance(value, (str, bytes)) or not hasattr(value, "__len__"):
            raise ValueError(f"{name} must be a list (one entry a sample), got {type(value).__name__}")
    predictions, references = list(predictions), list(references)
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions but {len(references)} reference lists: one of each a sample")
    if not predictions:
        raise ValueError("no samples to score")
    for i, prediction in enumerate(predictions):
        if not isinstance(prediction, str):
            raise ValueError(f"{_label(i, sample_ids)}: the prediction must be a string, got {type(prediction).__name__}")
    checked_refs = []
    for i, refs in enumerate(references):
        if isinstance(refs, (str, bytes)) or not hasattr(refs, "__iter__"):
            raise ValueError(f"{_label(i, sample_ids)}: references must be a list of strings, got {type(refs).__name__}")
        refs = list(refs)
        if not refs:
            raise ValueError(f"{_label(i, sample_ids)}: no reference")
        for ref in refs:
            if not isinstance(ref, str):
                raise ValueError(f"{_label(i, sample_ids)}: references must be strings, got {type(ref).__name__}")
        checked_refs.append(refs)
    checked_groups = None
    if groups is not None:
        if isinstance(groups, (str, bytes)) or len(groups) != len(predictions):
            raise ValueError(f"groups must be a list with one entry a sample ({len(predictions)}), got {len(groups) if not isinstance(groups, (str, bytes)) else 'a string'}")
        checked_groups = []
        for i, labels in enumerate(groups):
            if labels is None:
                labels = []
            elif isinstance(labels, str):
                labels = [labels]
            labels = list(labels)
            for label in labels:
                if not isinstance(label, str) or not label:
                    raise ValueError(f"{_label(i, sample_ids)}: group labels must be non-empty strings, got {label!r}")
            checked_groups.append(labels)
    return predictions, checked_refs, checked_groups


# -- per-sample statistics -------------------------------------------------------------------------
def _ngram_counts(sentence: str) -> dict[tuple, int]:
    """pycocoevalcap's ``precook``: n-gram counts (n = 1..4) over whitespace tokens."""
    words = sentence.split()
    counts: dict[tuple, int] = defaultdict(int)
    for k in range(1, _N + 1):
        for i in range(len(words) - k + 1):
            counts[tuple(words[i : i + k])] += 1
    return counts


def _lcs(a: list[str], b: list[str]) -> int:
    """Length of the longest common subsequence (bit-parallel; equal to pycocoevalcap's ``my_lcs``)."""
    if len(a) < len(b):
        a, b = b, a
    masks: dict[str, int] = {}
    for i, token in enumerate(b):
        masks[token] = masks.get(token, 0) | (1 << i)
    full = (1 << len(b)) - 1
    row = full
    for token in a:
        match = row & masks.get(token, 0)
        row = ((row + match) | (row - match)) & full
    return len(b) - row.bit_count()


def rouge_l(candidate: str, refs: list[str], beta: float = 1.2) -> float:
    """pycocoevalcap's ``Rouge.calc_score`` for one tokenised candidate."""
    token_c = candidate.split(" ")
    prec, rec = [], []
    for reference in refs:
        token_r = reference.split(" ")
        lcs = _lcs(token_r, token_c)
        prec.append(lcs / float(len(token_c)))
        rec.append(lcs / float(len(token_r)))
    prec_max, rec_max = max(prec), max(rec)
    if prec_max != 0 and rec_max != 0:
        return ((1 + beta**2) * prec_max * rec_max) / float(rec_max + beta**2 * prec_max)
    return 0.0


class _Vocabulary:
    """N-gram -> integer id, shared by the cached samples of a process."""

    LIMIT = 5_000_000

    def __init__(self):
        self.ids: dict[tuple, int] = {}
        self.orders: list[int] = []

    def id(self, ngram: tuple) -> int:
        found = self.ids.get(ngram)
        if found is None:
            found = self.ids[ngram] = len(self.orders)
            self.orders.append(len(ngram) - 1)
        return found


@dataclass
class _Sample:
    """What every metric needs from one (tokenised prediction, tokenised references)."""

    testlen: int
    reflen: int  # BLEU's "closest" reference length
    guess: tuple
    correct: tuple
    rouge: float
    cider_len: int  # pycocoevalcap's CIDEr length: the number of bigrams
    ref_cider_lens: np.ndarray
    hyp_ids: np.ndarray
    hyp_tf: np.ndarray
    ref_local: np.ndarray  # which reference each ref entry belongs to
    ref_ids: np.ndarray
    ref_tf: np.ndarray
    match_ref: np.ndarray  # (reference, n-gram) pairs present in both
    match_ids: np.ndarray
    match_h: np.ndarray
    match_r: np.ndarray
    df_ids: np.ndarray  # distinct n-grams over the references (document frequency)


def _prepare_sample(hyp: str, refs: tuple[str, ...], vocab: _Vocabulary, counts_of) -> _Sample:
    hyp_counts = counts_of(hyp)
    ref_counts = [counts_of(r) for r in refs]
    testlen = len(hyp.split())
    reflens = [len(r.split()) for r in refs]
    # BLEU (bleu_scorer.cook_refs / cook_test, "closest")
    maxcounts: dict[tuple, int] = {}
    for counts in ref_counts:
        for ngram, count in counts.items():
            if count > maxcounts.get(ngram, 0):
                maxcounts[ngram] = count
    correct = [0] * _N
    for ngram, count in hyp_counts.items():
        correct[len(ngram) - 1] += min(maxcounts.get(ngram, 0), count)
    reflen = min((abs(length - testlen), length) for length in reflens)[1]
    guess = tuple(max(0, testlen - k + 1) for k in range(1, _N + 1))
    # CIDEr tables
    vid = vocab.id
    hyp_ids = np.fromiter((vid(g) for g in hyp_counts), dtype=np.int64, count=len(hyp_counts))
    hyp_tf = np.fromiter(hyp_counts.values(), dtype=np.float64, count=len(hyp_counts))
    ref_local, ref_ids, ref_tf = [], [], []
    match_ref, match_ids, match_h, match_r = [], [], [], []
    for j, counts in enumerate(ref_counts):
        for ngram, count in counts.items():
            ref_local.append(j)
            ref_ids.append(vid(ngram))
            ref_tf.append(count)
        for ngram, h in hyp_counts.items():
            r = counts.get(ngram)
            if r:
                match_ref.append(j)
                match_ids.append(vid(ngram))
                match_h.append(h)
                match_r.append(r)
    df_ids = np.unique(np.asarray(ref_ids, dtype=np.int64))
    return _Sample(
        testlen=testlen,
        reflen=reflen,
        guess=guess,
        correct=tuple(correct),
        rouge=rouge_l(hyp, list(refs)),
        cider_len=max(0, testlen - 1),
        ref_cider_lens=np.asarray([max(0, n - 1) for n in reflens], dtype=np.float64),
        hyp_ids=hyp_ids,
        hyp_tf=hyp_tf,
        ref_local=np.asarray(ref_local, dtype=np.int64),
        ref_ids=np.asarray(ref_ids, dtype=np.int64),
        ref_tf=np.asarray(ref_tf, dtype=np.float64),
        match_ref=np.asarray(match_ref, dtype=np.int64),
        match_ids=np.asarray(match_ids, dtype=np.int64),
        match_h=np.asarray(match_h, dtype=np.float64),
        match_r=np.asarray(match_r, dtype=np.float64),
        df_ids=df_ids,
    )


class _SampleCache:
    """Per-process store of :class:`_Sample` by (prediction, references), tokenised."""

    LIMIT = 200_000

    def __init__(self):
        self.lock = threading.Lock()
        self.vocab = _Vocabulary()
        self.samples: dict[tuple, _Sample] = {}

    def get(self, keys: list[tuple]) -> tuple[list[_Sample], np.ndarray]:
        """The samples of these keys and the n-gram orders of the vocabulary their ids refer to."""
        with self.lock:
            missing = [k for k in dict.fromkeys(keys) if k not in self.samples]
            if len(self.samples) + len(missing) > self.LIMIT or len(self.vocab.ids) > self.vocab.LIMIT:
                self.samples.clear()
                self.vocab = _Vocabulary()
                missing = list(dict.fromkeys(keys))
            memo: dict[str, dict] = {}

            def counts_of(sentence: str):
                found = memo.get(sentence)
                if found is None:
                    found = memo[sentence] = _ngram_counts(sentence)
                return found

            for key in missing:
                self.samples[key] = _prepare_sample(key[0], key[1], self.vocab, counts_of)
            return [self.samples[k] for k in keys], np.asarray(self.vocab.orders, dtype=np.int64)


_SAMPLES = _SampleCache()


@dataclass
class Corpus:
    """A tokenised corpus and its per-sample statistics, ready for scoring any subset."""

    predictions: list[str]
    references: list[tuple[str, ...]]
    samples: list[_Sample]
    orders: np.ndarray  # n-gram id -> n - 1

    def __len__(self) -> int:
        return len(self.predictions)


# -- scorers ---------------------------------------------------------------------------------------
class Bleu:
    """BLEU-1..4 as ``pycocoevalcap.bleu.Bleu(4)`` ("closest" reference length), from summed counts."""

    names = OUTPUT_NAMES["bleu"]

    def prepare(self, corpus: Corpus) -> None:
        s = corpus.samples
        self.testlen = np.fromiter((x.testlen for x in s), dtype=np.int64, count=len(s))
        self.reflen = np.fromiter((x.reflen for x in s), dtype=np.int64, count=len(s))
        self.guess = np.asarray([x.guess for x in s], dtype=np.int64).reshape(len(s), _N)
        self.correct = np.asarray([x.correct for x in s], dtype=np.int64).reshape(len(s), _N)

    def score(self, selection: np.ndarray) -> dict[str, float]:
        small, tiny = 1e-9, 1e-15
        testlen = int(self.testlen[selection].sum())
        reflen = int(self.reflen[selection].sum())
        guess = self.guess[selection].sum(axis=0).tolist()
        correct = self.correct[selection].sum(axis=0).tolist()
        bleus, bleu = [], 1.0
        for k in range(_N):
            bleu *= float(correct[k] + tiny) / (guess[k] + small)
            bleus.append(bleu ** (1.0 / (k + 1)))
        ratio = (testlen + tiny) / (reflen + small)
        if ratio < 1:
            bleus = [b * math.exp(1 - 1 / ratio) for b in bleus]
        return dict(zip(self.names, bleus))


class Rouge:
    """ROUGE-L (beta 1.2) as ``pycocoevalcap.rouge.Rouge``: the mean of the sample scores."""

    names = OUTPUT_NAMES["rouge"]

    def prepare(self, corpus: Corpus) -> None:
        self.scores = np.fromiter((x.rouge for x in corpus.samples), dtype=np.float64, count=len(corpus))

    def score(self, selection: np.ndarray) -> dict[str, float]:
        return {"ROUGE_L": float(np.mean(self.scores[selection]))}


class Cider:
    """CIDEr-D as ``pycocoevalcap.cider.Cider``, document frequencies from the scored subset's references."""

    names = OUTPUT_NAMES["cider"]
    sigma = 6.0

    def prepare(self, corpus: Corpus) -> None:
        s = corpus.samples
        n = len(s)
        self.n_samples = n
        refs_per_sample = np.fromiter((len(x.ref_cider_lens) for x in s), dtype=np.int64, count=n)
        ref_offset = np.concatenate([[0], np.cumsum(refs_per_sample)[:-1]])
        self.n_refs = int(refs_per_sample.sum())
        self.refs_per_sample = refs_per_sample.astype(np.float64)
        self.ref_sample = np.repeat(np.arange(n), refs_per_sample)
        orders = corpus.orders

        def cat(arrays):
            return np.concatenate(arrays) if arrays else np.zeros(0)

        self.hyp_sample = np.repeat(np.arange(n), [len(x.hyp_ids) for x in s])
        self.hyp_ids = cat([x.hyp_ids for x in s]).astype(np.int64)
        self.hyp_tf = cat([x.hyp_tf for x in s])
        self.hyp_key = self.hyp_sample * _N + orders[self.hyp_ids]
        ref_counts = [len(x.ref_ids) for x in s]
        self.ref_ref = np.repeat(ref_offset, ref_counts) + cat([x.ref_local for x in s]).astype(np.int64)
        self.ref_ids = cat([x.ref_ids for x in s]).astype(np.int64)
        self.ref_tf = cat([x.ref_tf for x in s])
        self.ref_key = self.ref_ref * _N + orders[self.ref_ids]
        match_counts = [len(x.match_ids) for x in s]
        self.match_ref = np.repeat(ref_offset, match_counts) + cat([x.match_ref for x in s]).astype(np.int64)
        self.match_ids = cat([x.match_ids for x in s]).astype(np.int64)
        self.match_h = cat([x.match_h for x in s])
        self.match_r = cat([x.match_r for x in s])
        self.match_key = self.match_ref * _N + orders[self.match_ids]
        self.df_sample = np.repeat(np.arange(n), [len(x.df_ids) for x in s])
        self.df_ids = cat([x.df_ids for x in s]).astype(np.int64)
        hyp_len = np.fromiter((x.cider_len for x in s), dtype=np.float64, count=n)
        delta = hyp_len[self.ref_sample] - cat([x.ref_cider_lens for x in s])
        self.penalty = np.e ** (-(delta**2) / (2 * self.sigma**2))
        self.vocab_size = len(orders)

    def sample_scores(self, selection: np.ndarray) -> np.ndarray:
        """CIDEr of every selected sample, with the selection as the document-frequency corpus."""
        n, r = self.n_samples, self.n_refs
        chosen = np.zeros(n, dtype=bool)
        chosen[selection] = True
        ref_chosen = chosen[self.ref_sample]
        ref_len = np.log(float(chosen.sum()))
        keep = chosen[self.df_sample]
        df = np.bincount(self.df_ids[keep], minlength=self.vocab_size).astype(np.float64)
        weight = ref_len - np.log(np.maximum(1.0, df))

        keep = chosen[self.hyp_sample]
        vec = self.hyp_tf[keep] * weight[self.hyp_ids[keep]]
        norm_hyp = np.sqrt(np.bincount(self.hyp_key[keep], weights=vec * vec, minlength=n * _N)).reshape(n, _N)
        keep = ref_chosen[self.ref_ref]
        vec = self.ref_tf[keep] * weight[self.ref_ids[keep]]
        norm_ref = np.sqrt(np.bincount(self.ref_key[keep], weights=vec * vec, minlength=r * _N)).reshape(r, _N)
        keep = ref_chosen[self.match_ref]
        w = weight[self.match_ids[keep]]
        vec_hyp, vec_ref = self.match_h[keep] * w, self.match_r[keep] * w
        # float64 explicitly: numpy's bincount of an empty selection (no n-gram matches) is int64.
        val = np.bincount(self.match_key[keep], weights=np.minimum(vec_hyp, vec_ref) * vec_ref, minlength=r * _N)
        val = val.astype(np.float64).reshape(r, _N)
        denominator = norm_hyp[self.ref_sample] * norm_ref
        nonzero = denominator != 0
        val[nonzero] /= denominator[nonzero]
        val *= self.penalty[:, None]
        per_sample = np.zeros((n, _N))
        for k in range(_N):
            per_sample[:, k] = np.bincount(self.ref_sample, weights=val[:, k], minlength=n)
        scores = per_sample.mean(axis=1) / self.refs_per_sample * 10.0
        return scores[selection]

    def score(self, selection: np.ndarray) -> dict[str, float]:
        return {"CIDEr": float(np.mean(self.sample_scores(selection)))}


class Meteor:
    """METEOR 1.5 as ``pycocoevalcap.meteor.Meteor``: the JVM's score of the subset's summed statistics."""

    names = OUTPUT_NAMES["meteor"]

    def __init__(self, server: MeteorServer | None = None):
        self.server = server or get_meteor()

    def segment_stats(self, corpus: Corpus) -> list[str]:
        return self.server.segment_stats(list(zip(corpus.predictions, corpus.references)))

    def prepare(self, corpus: Corpus, stats: list[str] | None = None) -> None:
        self.stats = parse_stats(self.segment_stats(corpus) if stats is None else stats)

    def score(self, selection: np.ndarray) -> dict[str, float]:
        return {"METEOR": self.server.score_summed(aggregate_stats(self.stats[selection]))}


class Spice:
    """SPICE via ``pycocoevalcap.spice.Spice`` (opt-in): the mean of the sample F-scores."""

    names = OUTPUT_NAMES["spice"]

    @staticmethod
    def check_available() -> None:
        lib = pycocoevalcap_dir() / "spice" / "lib"
        needed = [lib / "stanford-corenlp-3.6.0.jar", lib / "stanford-corenlp-3.6.0-models.jar"]
        absent = [p.name for p in needed if not p.is_file()]
        if absent:
            raise SpiceUnavailableError(
                f"SPICE needs Stanford CoreNLP 3.6.0 ({', '.join(absent)}) in {lib}, and it is absent. "
                "pycocoevalcap fetches it (about 400 MB, from nlp.stanford.edu, network needed) with "
                "`python -c 'from pycocoevalcap.spice.get_stanford_models import get_stanford_models; "
                "get_stanford_models()'`; SPICE also needs about 8 GB of Java heap. "
                "Leave 'spice' out of metrics to score without it."
            )

    def prepare(self, corpus: Corpus) -> None:
        self.check_available()
        from pycocoevalcap.spice.spice import Spice as CocoSpice

        gts = {i: list(refs) for i, refs in enumerate(corpus.references)}
        res = {i: [p] for i, p in enumerate(corpus.predictions)}
        _, scores = CocoSpice().compute_score(gts, res)
        self.scores = np.asarray([s["All"]["f"] for s in scores], dtype=np.float64)

    def score(self, selection: np.ndarray) -> dict[str, float]:
        return {"SPICE": float(np.mean(self.scores[selection]))}


# -- the public entry points -----------------------------------------------------------------------
def tokenize_corpus(predictions: list[str], references: list[list[str]]) -> tuple[list[str], list[tuple[str, ...]]]:
    """PTB-tokenise predictions and references in one batch."""
    flat = list(predictions)
    for refs in references:
        flat.extend(refs)
    tokens = get_tokenizer().tokenize(flat)
    hyps = tokens[: len(predictions)]
    refs_out, position = [], len(predictions)
    for refs in references:
        refs_out.append(tuple(tokens[position : position + len(refs)]))
        position += len(refs)
    return hyps, refs_out


def _group_selections(groups: list[list[str]] | None, n: int) -> dict[str, np.ndarray]:
    if groups is None:
        return {}
    members: dict[str, list[int]] = defaultdict(list)
    for i, labels in enumerate(groups):
        for label in dict.fromkeys(labels):
            members[label].append(i)
    return {label: np.asarray(members[label], dtype=np.int64) for label in sorted(members)}


def score_captions(predictions, references, groups=None, metrics=None, *, sample_ids=None, meteor_server=None) -> dict:
    """COCO caption metrics of ``predictions`` (one string a sample) against ``references`` (a list a sample).

    Returns ``{"Bleu_1": .., "Bleu_2": .., "Bleu_3": .., "Bleu_4": .., "METEOR": .., "ROUGE_L": ..,
    "CIDEr": .., "num_samples": N}`` (the chosen ``metrics`` only) and, when ``groups`` is given (one
    label or list of labels a sample; ``None`` or ``[]`` for none), ``"groups": {label: {same keys}}``,
    each equal to scoring that group's samples alone. ``sample_ids`` only name samples in errors.
    """
    predictions, references, groups = validate_inputs(predictions, references, groups, sample_ids)
    chosen = normalize_metrics(metrics)
    if "spice" in chosen:
        Spice.check_available()
    find_java()  # every metric needs the PTB tokenizer: fail early and clearly without Java
    meteor = Meteor(meteor_server) if "meteor" in chosen else None
    if meteor is not None:
        meteor.server.start()  # loads in the background while the captions are tokenised
    hyps, refs = tokenize_corpus(predictions, references)

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="diffbench-meteor") as pool:
        meteor_stats = None
        if meteor is not None:
            meteor_stats = pool.submit(meteor.server.segment_stats, list(zip(hyps, refs)))
        keys = list(zip(hyps, refs))
        samples, orders = _SAMPLES.get(keys)
        corpus = Corpus(hyps, refs, samples, orders)
        scorers = []
        for name in chosen:
            if name == "meteor":
                meteor.prepare(corpus, meteor_stats.result())
                scorers.append(meteor)
                continue
            scorer = {"bleu": Bleu, "rouge": Rouge, "cider": Cider, "spice": Spice}[name]()
            scorer.prepare(corpus)
            scorers.append(scorer)
        if meteor_stats is not None:
            meteor_stats.result()  # surface a METEOR error even when another scorer failed first

    def score_subset(selection: np.ndarray) -> dict:
        out = {}
        for scorer in scorers:
            out.update(scorer.score(selection))
        out["num_samples"] = int(len(selection))
        return out

    results = score_subset(np.arange(len(corpus)))
    selections = _group_selections(groups, len(corpus))
    if groups is not None:
        results["groups"] = {label: score_subset(selection) for label, selection in selections.items()}
    return results


def score_predictions(predictions_by_id: dict, dataset, metrics=None) -> dict:
    """Score ``{id: caption}`` against a dataset with columns ``id``, ``captions`` and (optionally)
    ``change_types``; per change type when any row has one. Every dataset id needs a prediction."""
    if not isinstance(predictions_by_id, dict):
        raise ValueError(f"predictions must map the dataset's id to a caption, got {type(predictions_by_id).__name__}")
    columns = set(dataset.column_names)
    for column in ("id", "captions"):
        if column not in columns:
            raise ValueError(f"the dataset has no {column!r} column (columns: {sorted(columns)})")
    ids = [str(i) for i in dataset["id"]]
    references = list(dataset["captions"])
    predictions_by_id = {str(k): v for k, v in predictions_by_id.items()}
    missing = [i for i in ids if i not in predictions_by_id]
    if missing:
        raise ValueError(f"{len(missing)} of {len(ids)} dataset ids have no prediction, e.g. {missing[:5]}")
    extra = sorted(set(predictions_by_id) - set(ids))
    if extra:
        raise ValueError(f"{len(extra)} predictions have ids not in the dataset, e.g. {extra[:5]}")
    groups = None
    if "change_types" in columns:
        change_types = [list(labels or []) for labels in dataset["change_types"]]
        if any(change_types):
            groups = change_types
    predictions = [predictions_by_id[i] for i in ids]
    return score_captions(predictions, references, groups=groups, metrics=metrics, sample_ids=ids)


def format_table(results: dict) -> str:
    """A Markdown table: one row for all samples, then one a group."""
    names = [name for metric in METRICS for name in OUTPUT_NAMES[metric] if name in results]
    rows = [(ALL_GROUP, results)] + list(results.get("groups", {}).items())
    lines = ["| subset | samples | " + " | ".join(names) + " |", "|---|---:|" + "---:|" * len(names)]
    for label, scores in rows:
        cells = [f"{scores[name]:.4f}" if isinstance(scores.get(name), float) else "" for name in names]
        lines.append(f"| {label} | {scores.get('num_samples', '')} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_results(results: dict, directory: Path, stem: str = "results") -> tuple[Path, Path]:
    """``<stem>.json`` and ``<stem>.md`` (the table) in ``directory``."""
    import json

    directory.mkdir(parents=True, exist_ok=True)
    json_path, md_path = directory / f"{stem}.json", directory / f"{stem}.md"
    json_path.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    md_path.write_text(format_table(results) + "\n", encoding="utf-8")
    return json_path, md_path
