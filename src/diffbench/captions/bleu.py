"""BLEU-1..4 as ``pycocoevalcap.bleu.Bleu(4)`` ("closest" reference length), from summed segment counts.

Follows ``pycocoevalcap/bleu/bleu_scorer.py`` (``BleuScorer.compute_score``): a corpus BLEU is
computed from the summed guess / correct counts and lengths; the per-image scores use the same
formula on one segment. :class:`Bleu` has pycocoevalcap's interface, so it drops into ``COCOEvalCap``:

    >>> score, scores = Bleu(4).compute_score({1: ["the red car is gone"]}, {1: ["the red car is gone"]})
    >>> [round(s, 4) for s in score], len(scores), len(scores[0])
    ([1.0, 1.0, 1.0, 1.0], 4, 1)
"""

from __future__ import annotations

import math

import numpy as np

from diffbench.captions.stats import N, Corpus

NAMES = ("Bleu_1", "Bleu_2", "Bleu_3", "Bleu_4")
_SMALL, _TINY = 1e-9, 1e-15  # bleu_scorer.py's guards, so that a zero count still gives 0


def _bleu(testlen: int, reflen: int, guess, correct) -> list[float]:
    bleus, bleu = [], 1.0
    for k in range(N):
        bleu *= float(correct[k] + _TINY) / (guess[k] + _SMALL)
        bleus.append(bleu ** (1.0 / (k + 1)))
    ratio = (testlen + _TINY) / (reflen + _SMALL)
    if ratio < 1:
        bleus = [b * math.exp(1 - 1 / ratio) for b in bleus]
    return bleus


class Bleu:
    """``compute_score(gts, res) -> ([Bleu_1..4], [per-image list for each n])``; ``prepare`` / ``score`` for subsets."""

    names = NAMES

    def __init__(self, n: int = 4):
        if n != N:
            raise ValueError(f"only BLEU up to n = {N} (what COCOEvalCap reports) is implemented, got n = {n}")

    def method(self) -> str:
        return "Bleu"

    def compute_score(self, gts: dict, res: dict, verbose: int = 0):
        corpus, _ = Corpus.of_coco(gts, res)
        self.prepare(corpus)
        everything = np.arange(len(corpus))
        score = [self.score(everything)[name] for name in NAMES]
        per_image = [_bleu(int(t), int(r), g, c) for t, r, g, c in zip(self.testlen, self.reflen, self.guess, self.correct)]
        return score, [list(column) for column in zip(*per_image)]

    def prepare(self, corpus: Corpus) -> None:
        s = corpus.segments
        self.testlen = np.fromiter((x.testlen for x in s), dtype=np.int64, count=len(s))
        self.reflen = np.fromiter((x.reflen for x in s), dtype=np.int64, count=len(s))
        self.guess = np.asarray([x.guess for x in s], dtype=np.int64).reshape(len(s), N)
        self.correct = np.asarray([x.correct for x in s], dtype=np.int64).reshape(len(s), N)

    def score(self, selection: np.ndarray) -> dict[str, float]:
        bleus = _bleu(int(self.testlen[selection].sum()), int(self.reflen[selection].sum()),
                      self.guess[selection].sum(axis=0).tolist(), self.correct[selection].sum(axis=0).tolist())
        return dict(zip(NAMES, bleus))
