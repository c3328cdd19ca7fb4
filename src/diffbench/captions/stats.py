"""Per-segment statistics that BLEU, ROUGE-L and CIDEr share, computed once per (prediction, references).

A *segment* is one tokenised prediction with its tokenised references (pycocoevalcap's ``res[id][0]``
and ``gts[id]``). Everything a scorer needs from a segment is reduced here once, following
pycocoevalcap 1.2 line for line (``bleu/bleu_scorer.py``: ``precook``, ``cook_refs``, ``cook_test``;
``rouge/rouge.py``: ``calc_score``; ``cider/cider_scorer.py``: ``counts2vec`` inputs):

- BLEU: the hypothesis length, the "closest" reference length, guessed and clipped-correct n-gram
  counts (n = 1..4); a corpus BLEU is a sum of these;
- ROUGE-L: the segment score (a corpus ROUGE-L is their mean);
- CIDEr: n-gram term frequencies of hypothesis and references as integer-id arrays, the matching
  (reference, n-gram) pairs and the distinct reference n-grams (document frequency), so that CIDEr of
  any subset is a few vectorised passes (:mod:`diffbench.captions.cider`).

Statistics are kept per process in bounded caches: the reference side by references (a benchmark's
references do not change between calls), the segment by (prediction, references). METEOR's segment
statistics come from its JVM (:mod:`diffbench.captions.meteor`).

    >>> sorted(ngram_counts("a b a").items())
    [(('a',), 2), (('a', 'b'), 1), (('a', 'b', 'a'), 1), (('b',), 1), (('b', 'a'), 1)]
    >>> lcs("a b c d".split(), "b d".split())
    2
    >>> round(rouge_l("the car is gone", ["the car has gone", "nothing"]), 4)
    0.75
"""

from __future__ import annotations

import threading
from itertools import chain
from dataclasses import dataclass

import numpy as np

N = 4  # n-gram orders of BLEU and CIDEr (ngram_counts spells the four out)

try:
    from collections import _count_elements  # the C helper behind Counter.update
except ImportError:  # pragma: no cover - another Python implementation
    def _count_elements(mapping, iterable):
        get = mapping.get
        for element in iterable:
            mapping[element] = get(element, 0) + 1


def ngram_counts(sentence: str) -> dict[tuple, int]:
    """pycocoevalcap's ``precook``: n-gram counts (n = 1..4) over whitespace tokens, in its insertion order
    (n first, then position: the order CIDEr's sums run in)."""
    w = sentence.split()
    counts: dict[tuple, int] = {}
    # Counter.update's C helper straight into a dict (Counter.update's Mapping check costs more here)
    _count_elements(counts, zip(w))
    _count_elements(counts, zip(w, w[1:]))
    _count_elements(counts, zip(w, w[1:], w[2:]))
    _count_elements(counts, zip(w, w[1:], w[2:], w[3:]))
    return counts


def lcs(a: list[str], b: list[str]) -> int:
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
    """pycocoevalcap's ``Rouge.calc_score`` for one tokenised candidate (split on single spaces, as there)."""
    token_c = candidate.split(" ")
    prec, rec = [], []
    for reference in refs:
        token_r = reference.split(" ")
        common = lcs(token_r, token_c)
        prec.append(common / float(len(token_c)))
        rec.append(common / float(len(token_r)))
    prec_max, rec_max = max(prec), max(rec)
    if prec_max != 0 and rec_max != 0:
        return ((1 + beta**2) * prec_max * rec_max) / float(rec_max + beta**2 * prec_max)
    return 0.0


class Vocabulary:
    """N-gram -> integer id, shared by the cached segments of a process."""

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
class References:
    """The reference side of a segment (independent of the prediction)."""

    counts: list[dict]
    lengths: list[int]
    maxcounts: dict  # BLEU's clipping counts (cook_refs)
    local: np.ndarray  # which reference each (reference, n-gram) entry belongs to
    ids: np.ndarray
    tf: np.ndarray
    cider_lens: np.ndarray  # pycocoevalcap's CIDEr length: the number of bigrams
    df_ids: np.ndarray  # distinct n-grams over the references (document frequency)


def _references(refs: tuple[str, ...], vocab: Vocabulary) -> References:
    counts = [ngram_counts(r) for r in refs]
    if len(counts) == 1:
        maxcounts = counts[0]  # read only
    else:
        maxcounts = dict(counts[0])
        for c in counts[1:]:
            for ngram, count in c.items():
                if count > maxcounts.get(ngram, 0):
                    maxcounts[ngram] = count
    sizes = [len(c) for c in counts]
    total = sum(sizes)
    ids_array = np.asarray(_ids(list(chain.from_iterable(counts)), vocab), dtype=np.int64)
    lengths = [len(r.split()) for r in refs]
    return References(
        counts=counts,
        lengths=lengths,
        maxcounts=maxcounts,
        local=np.repeat(np.arange(len(counts), dtype=np.int64), sizes),
        ids=ids_array,
        tf=np.fromiter(chain.from_iterable(c.values() for c in counts), dtype=np.float64, count=total),
        cider_lens=np.asarray([max(0, n - 1) for n in lengths], dtype=np.float64),
        # one reference's n-grams are distinct already; bincount needs no order
        df_ids=ids_array if len(counts) == 1 else np.unique(ids_array),
    )


@dataclass
class Segment:
    """What every metric needs from one (tokenised prediction, tokenised references)."""

    testlen: int
    reflen: int  # BLEU's "closest" reference length
    guess: tuple
    correct: tuple
    rouge: float
    cider_len: int
    refs: References
    hyp_ids: np.ndarray
    hyp_tf: np.ndarray
    match_ref: np.ndarray  # (reference, n-gram) pairs present in both
    match_ids: np.ndarray
    match_h: np.ndarray
    match_r: np.ndarray


def _ids(ngrams, vocab: Vocabulary) -> list[int]:
    ids = list(map(vocab.ids.get, ngrams))
    if None in ids:
        ids = [vocab.id(g) if i is None else i for g, i in zip(ngrams, ids)]
    return ids


def _segment(hyp: str, refs: References, ref_texts: tuple[str, ...], vocab: Vocabulary) -> Segment:
    hyp_counts = ngram_counts(hyp)
    testlen = len(hyp.split())
    maxcounts = refs.maxcounts
    correct = [0] * N
    for ngram in hyp_counts.keys() & maxcounts.keys():  # the others clip to 0
        correct[len(ngram) - 1] += min(maxcounts[ngram], hyp_counts[ngram])
    reflen = min((abs(length - testlen), length) for length in refs.lengths)[1]
    hyp_ngrams = list(hyp_counts)
    hyp_ids = np.asarray(_ids(hyp_ngrams, vocab), dtype=np.int64)
    hyp_tf = np.fromiter(hyp_counts.values(), dtype=np.float64, count=len(hyp_counts))
    match_ref, match_ids, match_h, match_r = [], [], [], []
    hyp_keys = hyp_counts.keys()
    for j, counts in enumerate(refs.counts):
        common = hyp_keys & counts.keys()
        if common:
            for ngram in hyp_ngrams:  # in the hypothesis' order, as CIDEr's sums run
                if ngram in common:
                    match_ref.append(j)
                    match_ids.append(vocab.ids[ngram])
                    match_h.append(hyp_counts[ngram])
                    match_r.append(counts[ngram])
    return Segment(
        testlen=testlen,
        reflen=reflen,
        guess=tuple(max(0, testlen - k + 1) for k in range(1, N + 1)),
        correct=tuple(correct),
        rouge=rouge_l(hyp, list(ref_texts)),
        cider_len=max(0, testlen - 1),
        refs=refs,
        hyp_ids=hyp_ids,
        hyp_tf=hyp_tf,
        match_ref=np.asarray(match_ref, dtype=np.int64),
        match_ids=np.asarray(match_ids, dtype=np.int64),
        match_h=np.asarray(match_h, dtype=np.float64),
        match_r=np.asarray(match_r, dtype=np.float64),
    )


class StatsCache:
    """Per-process store of :class:`Segment` by (prediction, references) and :class:`References` by references."""

    LIMIT = 200_000

    def __init__(self):
        self.lock = threading.Lock()
        self.clear()

    def clear(self) -> None:
        self.vocab = Vocabulary()
        self.segments: dict[tuple, Segment] = {}
        self.references: dict[tuple, References] = {}

    def get(self, keys: list[tuple[str, tuple[str, ...]]]) -> tuple[list[Segment], np.ndarray]:
        """The segments of these (prediction, references) keys and the n-gram orders their ids refer to."""
        with self.lock:
            missing = [k for k in dict.fromkeys(keys) if k not in self.segments]
            too_many = len(self.segments) + len(missing) > self.LIMIT or len(self.references) > self.LIMIT
            if too_many or len(self.vocab.ids) > self.vocab.LIMIT:
                self.clear()  # ids are per vocabulary: everything goes together
                missing = list(dict.fromkeys(keys))
            for hyp, refs in missing:
                ref_stats = self.references.get(refs)
                if ref_stats is None:
                    ref_stats = self.references[refs] = _references(refs, self.vocab)
                self.segments[(hyp, refs)] = _segment(hyp, ref_stats, refs, self.vocab)
            return [self.segments[k] for k in keys], np.asarray(self.vocab.orders, dtype=np.int64)


STATS = StatsCache()


@dataclass
class Corpus:
    """A tokenised corpus and its per-segment statistics, ready for scoring any subset of it."""

    predictions: list[str]
    references: list[tuple[str, ...]]
    segments: list[Segment]
    orders: np.ndarray  # n-gram id -> n - 1

    def __len__(self) -> int:
        return len(self.predictions)

    @classmethod
    def of(cls, predictions: list[str], references: list[tuple[str, ...]], cache: StatsCache = STATS) -> "Corpus":
        """The statistics of tokenised ``predictions`` and ``references`` (one tuple a segment)."""
        references = [tuple(r) for r in references]
        segments, orders = cache.get(list(zip(predictions, references)))
        return cls(list(predictions), references, segments, orders)

    @classmethod
    def of_coco(cls, gts: dict, res: dict) -> tuple["Corpus", list]:
        """A corpus from pycocoevalcap's tokenised dicts (see :func:`check_coco_dicts`) and its ids, in
        ``gts`` order (the order pycocoevalcap's per-image scores follow)."""
        ids = check_coco_dicts(gts, res)
        return cls.of([res[k][0] for k in ids], [tuple(gts[k]) for k in ids]), ids


def check_coco_dicts(gts: dict, res: dict) -> list:
    """The ids of pycocoevalcap's ``gts = {id: [ref, ...]}`` and ``res = {id: [hyp]}``, checked as its
    scorers assert (same ids, one hypothesis, at least one reference), with a ValueError instead."""
    if not isinstance(gts, dict) or not isinstance(res, dict) or gts.keys() != res.keys():
        raise ValueError("gts and res must be dicts with the same ids")
    for key in gts:
        hypo, refs = res[key], gts[key]
        if not isinstance(hypo, list) or len(hypo) != 1 or not isinstance(hypo[0], str):
            raise ValueError(f"id {key!r}: res must hold a list of exactly one caption")
        if not isinstance(refs, list) or not refs or not all(isinstance(r, str) for r in refs):
            raise ValueError(f"id {key!r}: gts must hold a non-empty list of captions")
    return list(gts.keys())
