"""ROUGE-L (beta 1.2) as ``pycocoevalcap.rouge.Rouge``: the mean of the segment scores.

Follows ``pycocoevalcap/rouge/rouge.py``; the segment score (:func:`diffbench.captions.stats.rouge_l`)
uses a bit-parallel LCS equal to its ``my_lcs``. Drops into ``COCOEvalCap``:

    >>> score, scores = Rouge().compute_score({1: ["the car is gone"]}, {1: ["the car has gone"]})
    >>> round(float(score), 4), scores.shape
    (0.75, (1,))
"""

from __future__ import annotations

import numpy as np

from diffbench.captions.stats import Corpus

NAMES = ("ROUGE_L",)


class Rouge:
    """``compute_score(gts, res) -> (mean, array of segment scores)``; ``prepare`` / ``score`` for subsets."""

    names = NAMES

    def method(self) -> str:
        return "Rouge"

    def compute_score(self, gts: dict, res: dict):
        corpus, _ = Corpus.of_coco(gts, res)
        self.prepare(corpus)
        return np.mean(self.scores), self.scores.copy()

    def prepare(self, corpus: Corpus) -> None:
        self.scores = np.fromiter((x.rouge for x in corpus.segments), dtype=np.float64, count=len(corpus))

    def score(self, selection: np.ndarray) -> dict[str, float]:
        return {"ROUGE_L": float(np.mean(self.scores[selection]))}
