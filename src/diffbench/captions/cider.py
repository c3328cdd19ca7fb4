"""CIDEr-D as ``pycocoevalcap.cider.Cider``, document frequencies from the scored set's own references.

Follows ``pycocoevalcap/cider/cider_scorer.py`` (``compute_doc_freq``, ``counts2vec``, ``sim``,
``compute_cider``), quirks included: the length penalty compares *bigram* counts, the idf of an n-gram
is ``log(number of segments) - log(max(1, df))``, a segment's score is the mean over n = 1..4 of its
mean over references, times 10. Here the per-segment n-gram tables (:mod:`diffbench.captions.stats`)
are concatenated once, and the score of any subset (document frequencies from that subset, as a
separate pycocoevalcap run on it would take them) is a few ``numpy.bincount`` passes.

    >>> gts = {1: ["the red car is gone"], 2: ["a man appeared"]}
    >>> res = {1: ["the red car is gone"], 2: ["a dog appeared"]}
    >>> score, scores = Cider().compute_score(gts, res)
    >>> round(float(score), 4), [round(float(s), 4) for s in scores]
    (5.8333, [10.0, 1.6667])
"""

from __future__ import annotations

import numpy as np

from diffbench.captions.stats import N, Corpus

NAMES = ("CIDEr",)


class Cider:
    """``compute_score(gts, res) -> (mean, array of segment scores)``; ``prepare`` / ``score`` for subsets."""

    names = NAMES
    sigma = 6.0

    def __init__(self, n: int = 4, sigma: float = 6.0):
        if n != N or sigma != 6.0:
            raise ValueError(f"only pycocoevalcap's CIDEr-D (n = {N}, sigma = 6.0) is implemented")

    def method(self) -> str:
        return "CIDEr"

    def compute_score(self, gts: dict, res: dict):
        corpus, _ = Corpus.of_coco(gts, res)
        self.prepare(corpus)
        scores = self.segment_scores(np.arange(len(corpus)))
        return np.mean(scores), scores

    def prepare(self, corpus: Corpus) -> None:
        s = corpus.segments
        n = len(s)
        self.n_segments = n
        refs_per_segment = np.fromiter((len(x.refs.lengths) for x in s), dtype=np.int64, count=n)
        ref_offset = np.concatenate([[0], np.cumsum(refs_per_segment)[:-1]]).astype(np.int64)
        self.n_refs = int(refs_per_segment.sum())
        self.refs_per_segment = refs_per_segment.astype(np.float64)
        self.ref_segment = np.repeat(np.arange(n), refs_per_segment)
        orders = corpus.orders

        def cat(arrays, dtype):
            return np.concatenate(arrays).astype(dtype, copy=False) if arrays else np.zeros(0, dtype=dtype)

        self.hyp_segment = np.repeat(np.arange(n), [len(x.hyp_ids) for x in s])
        self.hyp_ids = cat([x.hyp_ids for x in s], np.int64)
        self.hyp_tf = cat([x.hyp_tf for x in s], np.float64)
        self.hyp_key = self.hyp_segment * N + orders[self.hyp_ids]
        self.ref_ref = np.repeat(ref_offset, [len(x.refs.ids) for x in s]) + cat([x.refs.local for x in s], np.int64)
        self.ref_ids = cat([x.refs.ids for x in s], np.int64)
        self.ref_tf = cat([x.refs.tf for x in s], np.float64)
        self.ref_key = self.ref_ref * N + orders[self.ref_ids]
        self.match_ref = np.repeat(ref_offset, [len(x.match_ids) for x in s]) + cat([x.match_ref for x in s], np.int64)
        self.match_ids = cat([x.match_ids for x in s], np.int64)
        self.match_h = cat([x.match_h for x in s], np.float64)
        self.match_r = cat([x.match_r for x in s], np.float64)
        self.match_key = self.match_ref * N + orders[self.match_ids]
        self.df_segment = np.repeat(np.arange(n), [len(x.refs.df_ids) for x in s])
        self.df_ids = cat([x.refs.df_ids for x in s], np.int64)
        hyp_len = np.fromiter((x.cider_len for x in s), dtype=np.float64, count=n)
        delta = hyp_len[self.ref_segment] - cat([x.refs.cider_lens for x in s], np.float64)
        self.penalty = np.e ** (-(delta**2) / (2 * self.sigma**2))
        self.vocab_size = len(orders)

    def segment_scores(self, selection: np.ndarray) -> np.ndarray:
        """CIDEr of every selected segment, with the selection as the document-frequency corpus."""
        n, r = self.n_segments, self.n_refs
        chosen = np.zeros(n, dtype=bool)
        chosen[selection] = True
        ref_chosen = chosen[self.ref_segment]
        ref_len = np.log(float(chosen.sum()))
        keep = chosen[self.df_segment]
        df = np.bincount(self.df_ids[keep], minlength=self.vocab_size).astype(np.float64)
        weight = ref_len - np.log(np.maximum(1.0, df))

        keep = chosen[self.hyp_segment]
        vec = self.hyp_tf[keep] * weight[self.hyp_ids[keep]]
        norm_hyp = np.sqrt(np.bincount(self.hyp_key[keep], weights=vec * vec, minlength=n * N)).reshape(n, N)
        keep = ref_chosen[self.ref_ref]
        vec = self.ref_tf[keep] * weight[self.ref_ids[keep]]
        norm_ref = np.sqrt(np.bincount(self.ref_key[keep], weights=vec * vec, minlength=r * N)).reshape(r, N)
        keep = ref_chosen[self.match_ref]
        w = weight[self.match_ids[keep]]
        vec_hyp, vec_ref = self.match_h[keep] * w, self.match_r[keep] * w
        # float64 explicitly: numpy's bincount of an empty selection (no n-gram matches) is int64.
        val = np.bincount(self.match_key[keep], weights=np.minimum(vec_hyp, vec_ref) * vec_ref, minlength=r * N)
        val = val.astype(np.float64).reshape(r, N)
        denominator = norm_hyp[self.ref_segment] * norm_ref
        nonzero = denominator != 0
        val[nonzero] /= denominator[nonzero]
        val *= self.penalty[:, None]
        per_segment = np.zeros((n, N))
        for k in range(N):
            per_segment[:, k] = np.bincount(self.ref_segment, weights=val[:, k], minlength=n)
        scores = per_segment.mean(axis=1) / self.refs_per_segment * 10.0
        return scores[selection]

    def score(self, selection: np.ndarray) -> dict[str, float]:
        return {"CIDEr": float(np.mean(self.segment_scores(selection)))}
