"""SPICE: pycocoevalcap's ``Spice`` when Stanford CoreNLP 3.6.0 is installed, else one clear error.

pycocoevalcap downloads CoreNLP 3.6.0 (about 400 MB, from nlp.stanford.edu) on first use: it cannot
run offline, so SPICE is opt-in and fails before any work when the jars are absent.

    >>> NAMES
    ('SPICE',)
"""

from __future__ import annotations

import numpy as np

from diffbench.captions.java import pycocoevalcap_dir

NAMES = ("SPICE",)


class SpiceUnavailableError(ValueError):
    """SPICE was asked for but Stanford CoreNLP 3.6.0 is not installed beside pycocoevalcap (a user error)."""


def check_available() -> None:
    lib = pycocoevalcap_dir() / "spice" / "lib"
    needed = [lib / "stanford-corenlp-3.6.0.jar", lib / "stanford-corenlp-3.6.0-models.jar"]
    if any(not p.is_file() for p in needed):
        raise SpiceUnavailableError(
            f"SPICE needs Stanford CoreNLP 3.6.0 in {lib} (absent; pycocoevalcap downloads it, about 400 MB, "
            "network needed): leave 'spice' out of the metrics"
        )


class Spice:
    """``compute_score(gts, res)`` of pycocoevalcap's Spice, after :func:`check_available`."""

    names = NAMES

    def method(self) -> str:
        return "SPICE"

    def compute_score(self, gts: dict, res: dict):
        check_available()
        from pycocoevalcap.spice.spice import Spice as CocoSpice  # only once its CoreNLP jars are known to be there

        return CocoSpice().compute_score(gts, res)

    def prepare(self, corpus) -> None:
        gts = {i: list(refs) for i, refs in enumerate(corpus.references)}
        res = {i: [p] for i, p in enumerate(corpus.predictions)}
        _, scores = self.compute_score(gts, res)
        self.scores = np.asarray([s["All"]["f"] for s in scores], dtype=np.float64)

    def score(self, selection: np.ndarray) -> dict[str, float]:
        return {"SPICE": float(np.mean(self.scores[selection]))}
