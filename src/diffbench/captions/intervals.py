"""Bootstrap intervals of the corpus caption metrics: every metric recomputed on every resample of samples.

A caption metric of a corpus is not a mean of per-sample scores (BLEU sums n-gram counts, METEOR sums
alignment statistics, CIDEr-D takes its document frequencies from the corpus), so an interval has to
recompute the corpus metric on each resample. Each metric reduces to per-sample statistics that a resample
combines with its draw counts (``counts[r, i]``: how many times sample ``i`` is drawn in resample ``r``;
:func:`diffbench.report.uncertainty.resample_counts` draws them):

- BLEU-1..4: ``counts @ [test length, closest reference length, guessed and clipped-correct n-grams]``
  (pycocoevalcap's ``BleuScorer.compute_score`` on the summed counts, option ``closest``);
- ROUGE-L, SPICE: the count-weighted mean of the segment scores (pycocoevalcap averages them);
- METEOR: ``counts @ segment statistics`` (perfect segments with no chunk, as Meteor's ``addStats``
  sums them), each resample's sum scored as Meteor 1.5's ``computeMetrics`` scores a statistics line
  (:func:`diffbench.captions.meteor.score_of_stats`, equal to the JVM's ``EVAL`` answer to within 1e-15):
  Meteor's corpus score of the resampled corpus, no approximation;
- CIDEr-D: document frequencies recomputed from each resample. A sample drawn ``k`` times counts ``k``
  times, in the document frequencies of its reference n-grams and in the number of documents (the
  ``log`` of which opens every idf): the value is pycocoevalcap's CIDEr-D of the resampled corpus written
  out with the duplicates as separate images, which is what a bootstrap resample is (the corpus the
  scorer would have seen had those samples been in the test set ``k`` times). Vectorised: for a block of
  resamples the document frequencies are gathered once per n-gram and every norm and dot product is a
  gather and a segmented sum over the n-gram entries (``numpy.add.reduceat``), no Python loop over samples.

All values are on the layout's percent scale (the metric x 100; :data:`SCALE`).

For the compare helper (a paired bootstrap of two systems on the same samples)::

    stats = CaptionStatistics.of(predictions, references)      # raw captions, one tuple of references a sample
    scores = resampled_scores(stats, counts)                   # {"Bleu_1": [resamples], ..., "CIDEr": [...]}

``CaptionStatistics.of`` tokenises with the PTB tokenizer as :func:`diffbench.captions.metrics.score_captions`
does (``metrics`` and ``meteor_server`` as there); :func:`resampled_scores` also takes a tokenised
:class:`diffbench.captions.stats.Corpus` (BLEU, ROUGE-L and CIDEr-D: no METEOR without its JVM). Drawing
each sample once gives the corpus scores themselves:

    >>> from diffbench.captions.stats import Corpus
    >>> corpus = Corpus.of(["a red car is gone", "a man appeared"], [("the red car is gone",), ("a dog appeared",)])
    >>> {name: round(float(v[0]), 2) for name, v in resampled_scores(corpus, np.ones((1, 2), dtype=np.int32)).items()}
    {'Bleu_1': 75.0, 'Bleu_2': 61.24, 'Bleu_3': 57.24, 'Bleu_4': 55.33, 'ROUGE_L': 73.33, 'CIDEr': 422.92}
"""

from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace

import numpy as np

from diffbench.captions.bleu import NAMES as BLEU_NAMES
from diffbench.captions.meteor import effective_stats, score_of_stats
from diffbench.captions.metrics import prepare_corpus
from diffbench.captions.stats import N, Corpus, Segment
from diffbench.report.uncertainty import LEVEL, percentile_interval

SCALE = 100.0
_SMALL, _TINY = 1e-9, 1e-15  # bleu_scorer.py's guards (as diffbench.captions.bleu)
_SIGMA = 6.0  # CIDEr-D's length penalty
# resamples x n-gram entries computed at once: ~8 MB of float64 a temporary, which stays in cache (measured on
# Spot-the-Diff test, 1,000 resamples: 1.05 s at 1M, 1.5 s at 4M, 2.1 s at 16M on one core)
_BLOCK_ENTRIES = 1_000_000
# blocks are independent and numpy releases the GIL in its loops: two threads use both cores of a small machine
# (0.70 s instead of 1.05 s, same values); more add little as the blocks are memory-bound
_THREADS = min(2, os.cpu_count() or 1)


def _segmented_sum(values: np.ndarray, starts: np.ndarray, rows: np.ndarray, height: int) -> np.ndarray:
    """``[height, B]``: the sums of ``values[starts[k]:starts[k + 1]]`` (rows of ``B`` resamples) put in row
    ``rows[k]`` (``values`` sorted by row; rows without entries stay 0). Entries run down the first axis,
    so each sum adds whole rows (``B`` contiguous values), not strided columns."""
    out = np.zeros((height, values.shape[1]))
    if len(starts):
        out[rows] = np.add.reduceat(values, starts, axis=0)
    return out


def _runs(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The starts and keys of the runs of equal values in sorted ``keys``."""
    if not len(keys):
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    starts = np.flatnonzero(np.concatenate([[True], keys[1:] != keys[:-1]]))
    return starts, keys[starts]


@dataclass
class _Entries:
    """N-gram entries (compact n-gram id, value) sorted by the output column they sum into."""

    ngram: np.ndarray
    value: np.ndarray
    starts: np.ndarray
    columns: np.ndarray
    width: int

    @classmethod
    def of(cls, ngram, value, column, width: int) -> "_Entries":
        order = np.argsort(column, kind="stable")
        starts, columns = _runs(column[order])
        return cls(ngram[order], value[order], starts, columns, width)

    def sums(self, w2: np.ndarray) -> np.ndarray:
        """``[width, B]``: the sum of value x w2[ngram] (``w2``: ``[n-grams, B]``) a column."""
        return _segmented_sum(w2[self.ngram] * self.value[:, None], self.starts, self.columns, self.width)


class CiderResampling:
    """CIDEr-D (pycocoevalcap's ``CiderScorer``) of resampled corpora, from segments' n-gram tables.

    With ``w = log(N) - log(max(1, df))`` (never negative: an n-gram is in at most N documents), a
    reference's similarity at order ``k`` is ``sum w^2 min(h, r) r / (|h w| |r w|)`` times the length
    penalty, so everything is a sum of ``w^2`` times a fixed per-entry value; a resample changes only
    ``N`` and ``df``.
    """

    def __init__(self, segments: list[Segment], orders: np.ndarray):
        self.segments, self.orders = segments, orders
        n = len(segments)
        self.n = n
        refs_per_segment = np.asarray([len(s.refs.lengths) for s in segments], dtype=np.int64)
        self.n_refs = int(refs_per_segment.sum())
        ref_offset = np.concatenate([[0], np.cumsum(refs_per_segment)[:-1]]).astype(np.int64)
        self.ref_starts = ref_offset  # refs are contiguous by segment, each segment has at least one
        self.ref_weight = 10.0 / (N * refs_per_segment)  # mean over orders and references, x 10

        def cat(arrays, dtype):
            return np.concatenate(arrays).astype(dtype, copy=False) if arrays else np.zeros(0, dtype=dtype)

        df_segment = np.repeat(np.arange(n), [len(s.refs.df_ids) for s in segments])
        df_ids = cat([s.refs.df_ids for s in segments], np.int64)
        vocabulary, df_ngram = np.unique(df_ids, return_inverse=True)
        self.vocab = len(vocabulary)  # the reference n-grams; column ``vocab`` of w2: any other n-gram (df 0)
        order = np.argsort(df_ngram, kind="stable")
        self.df_segment = df_segment[order]
        self.df_starts, self.df_columns = _runs(df_ngram[order])

        def compact(ids):  # the compact id of each n-gram; ``vocab`` for one in no reference
            if not len(vocabulary):
                return np.full(len(ids), self.vocab, dtype=np.int64)
            found = np.minimum(np.searchsorted(vocabulary, ids), len(vocabulary) - 1)
            return np.where(vocabulary[found] == ids, found, self.vocab)

        hyp_ids = cat([s.hyp_ids for s in segments], np.int64)
        hyp_segment = np.repeat(np.arange(n), [len(s.hyp_ids) for s in segments])
        hyp_tf = cat([s.hyp_tf for s in segments], np.float64)
        self.hyp = _Entries.of(compact(hyp_ids), hyp_tf**2, hyp_segment * N + orders[hyp_ids], n * N)
        ref_ids = cat([s.refs.ids for s in segments], np.int64)
        ref_ref = np.repeat(ref_offset, [len(s.refs.ids) for s in segments]) + cat([s.refs.local for s in segments], np.int64)
        ref_tf = cat([s.refs.tf for s in segments], np.float64)
        self.ref = _Entries.of(compact(ref_ids), ref_tf**2, ref_ref * N + orders[ref_ids], self.n_refs * N)
        match_ids = cat([s.match_ids for s in segments], np.int64)
        match_ref = np.repeat(ref_offset, [len(s.match_ids) for s in segments]) + cat([s.match_ref for s in segments], np.int64)
        product = np.minimum(cat([s.match_h for s in segments], np.float64), cat([s.match_r for s in segments], np.float64))
        product *= cat([s.match_r for s in segments], np.float64)
        self.match = _Entries.of(compact(match_ids), product, match_ref * N + orders[match_ids], self.n_refs * N)
        self.ref_segment = np.repeat(np.arange(n), refs_per_segment)
        hyp_len = np.asarray([s.cider_len for s in segments], dtype=np.float64)
        delta = hyp_len[self.ref_segment] - cat([s.refs.cider_lens for s in segments], np.float64)
        self.penalty = np.e ** (-(delta**2) / (2 * _SIGMA**2))
        self.entries = len(self.df_segment) + len(self.hyp.ngram) + len(self.ref.ngram) + len(self.match.ngram)

    def segment_scores(self, counts_t: np.ndarray) -> np.ndarray:
        """``[n, B]``: each segment's CIDEr-D (x 10, pycocoevalcap's scale) in each resample's corpus
        (``counts_t``: ``[n, B]``, a block of resamples' draw counts, transposed)."""
        b = counts_t.shape[1]
        log_n = np.log(np.maximum(counts_t.sum(axis=0), 1).astype(np.float64))
        df = _segmented_sum(counts_t[self.df_segment].astype(np.float64), self.df_starts, self.df_columns, self.vocab)
        w2 = np.empty((self.vocab + 1, b))
        w2[:-1] = log_n - np.log(np.maximum(df, 1.0))
        w2[-1] = log_n
        w2 *= w2
        norm_hyp = np.sqrt(self.hyp.sums(w2)).reshape(self.n, N, b)
        norm_ref = np.sqrt(self.ref.sums(w2)).reshape(self.n_refs, N, b)
        value = self.match.sums(w2).reshape(self.n_refs, N, b)
        denominator = norm_hyp[self.ref_segment] * norm_ref
        np.divide(value, denominator, out=value, where=denominator != 0)
        per_ref = value.sum(axis=1) * self.penalty[:, None]  # [refs, B]
        return np.add.reduceat(per_ref, self.ref_starts, axis=0) * self.ref_weight[:, None]

    def resampled(self, counts: np.ndarray) -> np.ndarray:
        """``[resamples]``: CIDEr-D (x 10) of each resampled corpus, in blocks that bound the memory (on up to
        :data:`_THREADS` threads; each block's values do not depend on how the blocks are shared out)."""
        counts = np.asarray(counts)
        block = max(1, _BLOCK_ENTRIES // max(1, self.entries))
        out = np.empty(len(counts))

        def run(start: int) -> None:
            part = np.ascontiguousarray(counts[start : start + block].T)  # [n, B]
            documents = part.sum(axis=0).astype(np.float64)
            with np.errstate(invalid="ignore", divide="ignore"):
                out[start : start + block] = (part * self.segment_scores(part)).sum(axis=0) / documents

        starts = range(0, len(counts), block)
        if _THREADS > 1 and len(starts) > 1:
            with ThreadPoolExecutor(_THREADS) as pool:
                list(pool.map(run, starts))
        else:
            for start in starts:
                run(start)
        return out


def bleu_of_totals(totals: np.ndarray) -> np.ndarray:
    """``[B, 4]``: BLEU-1..4 of summed ``[test length, reference length, guess 1..4, correct 1..4]``
    (pycocoevalcap's ``BleuScorer.compute_score``, vectorised over rows)."""
    testlen, reflen, guess, correct = totals[:, 0], totals[:, 1], totals[:, 2:2 + N], totals[:, 2 + N:]
    bleus = np.empty((len(totals), N))
    bleu = np.ones(len(totals))
    for k in range(N):
        bleu = bleu * ((correct[:, k] + _TINY) / (guess[:, k] + _SMALL))
        bleus[:, k] = bleu ** (1.0 / (k + 1))
    ratio = (testlen + _TINY) / (reflen + _SMALL)
    with np.errstate(divide="ignore", over="ignore"):
        penalty = np.where(ratio < 1, np.exp(1 - 1 / ratio), 1.0)
    return bleus * penalty[:, None]


@dataclass
class CaptionStatistics:
    """The per-sample statistics every corpus caption metric is recomputed from (a metric left out is None).

    ``bleu``: ``[n, 10]`` test length, closest reference length, guessed and correct n-grams (n = 1..4);
    ``rouge`` / ``spice``: segment scores; ``meteor``: Meteor's segment statistics as it sums them (a sum scored
    by :func:`~diffbench.captions.meteor.score_of_stats`); ``cider``: :class:`CiderResampling`.
    """

    n: int
    bleu: np.ndarray | None = None
    rouge: np.ndarray | None = None
    cider: CiderResampling | None = None
    meteor: np.ndarray | None = None
    spice: np.ndarray | None = None

    @classmethod
    def of(cls, predictions: list[str], references: list[tuple[str, ...]], metrics=None,
           meteor_server=None) -> "CaptionStatistics":
        """The statistics of raw captions, tokenised and reduced as :func:`~diffbench.captions.metrics.score_captions`
        does (``metrics``: its names, default BLEU, METEOR, ROUGE-L, CIDEr-D)."""
        return cls.of_prepared(prepare_corpus(predictions, references, metrics, meteor_server=meteor_server))

    @classmethod
    def of_prepared(cls, prepared) -> "CaptionStatistics":
        """From a :class:`~diffbench.captions.metrics.PreparedCorpus` (its scorers' statistics, nothing recomputed)."""
        scorers = prepared.scorers
        stats = cls.of_corpus(prepared.corpus, with_cider="cider" in scorers)
        if "bleu" not in scorers:
            stats.bleu = None
        if "rouge" not in scorers:
            stats.rouge = None
        if "spice" in scorers:
            stats.spice = scorers["spice"].scores
        return stats.with_meteor(scorers["meteor"]) if "meteor" in scorers else stats

    def with_meteor(self, scorer) -> "CaptionStatistics":
        """A copy with the METEOR statistics of a prepared :class:`~diffbench.captions.meteor.Meteor`."""
        return replace(self, meteor=effective_stats(scorer.stats))

    @classmethod
    def of_corpus(cls, corpus: Corpus, with_cider: bool = True) -> "CaptionStatistics":
        """BLEU, ROUGE-L and CIDEr-D statistics of a tokenised corpus."""
        s = corpus.segments
        bleu = np.asarray([(x.testlen, x.reflen, *x.guess, *x.correct) for x in s], dtype=np.float64).reshape(len(s), 2 + 2 * N)
        rouge = np.asarray([x.rouge for x in s], dtype=np.float64)
        return cls(len(s), bleu=bleu, rouge=rouge, cider=CiderResampling(s, corpus.orders) if with_cider else None)

    def subset(self, indices: np.ndarray) -> "CaptionStatistics":
        """The statistics of the samples ``indices`` alone (CIDEr-D's documents: theirs)."""
        def pick(values):
            return None if values is None else values[indices]

        cider = None if self.cider is None else CiderResampling([self.cider.segments[i] for i in indices], self.cider.orders)
        return CaptionStatistics(len(indices), bleu=pick(self.bleu), rouge=pick(self.rouge), cider=cider,
                                 meteor=pick(self.meteor), spice=pick(self.spice))

    def without(self, *metrics: str) -> "CaptionStatistics":
        """A copy without the statistics named (``"bleu"``, ``"meteor"``, ``"rouge"``, ``"cider"``, ``"spice"``)."""
        return replace(self, **{metric: None for metric in metrics})

    def names(self) -> list[str]:
        """The metrics these statistics give, in COCOEvalCap's order."""
        present = [(BLEU_NAMES, self.bleu), (("METEOR",), self.meteor), (("ROUGE_L",), self.rouge),
                   (("CIDEr",), self.cider), (("SPICE",), self.spice)]
        return [name for names, value in present if value is not None for name in names]


def resampled_scores(corpus_or_stats, counts: np.ndarray) -> dict[str, np.ndarray]:
    """``{metric: [resamples]}`` on the percent scale: each corpus metric of each resample (``counts[r, i]``:
    how many times sample ``i`` is drawn in resample ``r``; a resample drawing nothing gives NaN).

    ``corpus_or_stats``: :class:`CaptionStatistics` (of the samples ``counts`` indexes) or a tokenised
    :class:`~diffbench.captions.stats.Corpus`.
    """
    stats = corpus_or_stats if isinstance(corpus_or_stats, CaptionStatistics) else CaptionStatistics.of_corpus(corpus_or_stats)
    counts = np.asarray(counts)
    if counts.ndim != 2 or counts.shape[1] != stats.n:
        raise ValueError(f"counts must be [resamples, {stats.n}], got shape {counts.shape}")
    weights = counts.astype(np.float64)
    drawn = weights.sum(axis=1)
    empty = drawn == 0
    out: dict[str, np.ndarray] = {}
    with np.errstate(invalid="ignore", divide="ignore"):
        if stats.bleu is not None:
            bleus = bleu_of_totals(weights @ stats.bleu) * SCALE
            out.update({name: bleus[:, k] for k, name in enumerate(BLEU_NAMES)})
        if stats.meteor is not None:
            out["METEOR"] = _meteor(stats, weights, empty)
        if stats.rouge is not None:
            out["ROUGE_L"] = SCALE * (weights @ stats.rouge) / drawn
        if stats.cider is not None:
            out["CIDEr"] = SCALE * stats.cider.resampled(counts)
        if stats.spice is not None:
            out["SPICE"] = SCALE * (weights @ stats.spice) / drawn
    for values in out.values():
        values[empty] = np.nan
    return out


def _meteor(stats: CaptionStatistics, weights: np.ndarray, empty: np.ndarray) -> np.ndarray:
    totals = weights[~empty] @ stats.meteor
    out = np.full(len(weights), np.nan)
    if len(totals):
        out[~empty] = SCALE * score_of_stats(totals)  # Meteor's computeMetrics, as its JVM would score each sum
    return out


def resampled_groups(stats: CaptionStatistics, counts: np.ndarray,
                     selections: dict[str, np.ndarray]) -> dict[str | None, dict[str, np.ndarray]]:
    """:func:`resampled_scores` of the whole set (key ``None``) and of each group (``selections``: its
    samples' indices), every group scored as a corpus of its own (CIDEr-D's documents: its resampled
    samples), all on the same resamples ``counts``."""
    out = {None: resampled_scores(stats, counts)}
    for label, indices in selections.items():
        out[label] = resampled_scores(stats.subset(indices), counts[:, indices])
    return out


def percentile_intervals(resampled: dict[str, np.ndarray], level: float = LEVEL) -> dict[str, list[float] | None]:
    """``{metric: [low, high]}``: the percentile interval of each metric's resampled values (``None`` where
    no resample gives a value: JSON has no NaN)."""
    out = {}
    for name, values in resampled.items():
        low, high = percentile_interval(values, level)
        out[name] = None if math.isnan(low) else [low, high]
    return out
