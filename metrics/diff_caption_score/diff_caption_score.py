"""Difference-caption score: BLEU-1..4, METEOR, ROUGE-L and CIDEr exactly as pycocoevalcap 1.2 computes them.

Image difference captioning (OmniDiff, Spot-the-Diff, CLEVR-Change, CLEVR-DC, Image Editing Request)
is scored with the COCO caption pipeline: Stanford PTBTokenizer, Bleu(4), Meteor 1.5, Rouge-L and
CIDEr-D. This module gives the same numbers (to 1e-9; tested against pycocoevalcap on the real
Spot-the-Diff and Image Editing Request annotations) and adds a breakdown by change type that equals
re-running the pipeline on each type's samples alone (CIDEr's document frequencies from that subset,
as CLEVR-Change's official per-type evaluation does), at the cost of little more than one run.

The work is done by ``diffbench.captions.metrics`` (installed with diffbench, which the Space installs
too; one module a scorer with pycocoevalcap's ``compute_score`` interface: ``diffbench.captions.bleu``,
``diffbench.captions.meteor``, ``diffbench.captions.rouge``, ``diffbench.captions.cider``). The module
imports it rather than carrying a copy, on purpose: METEOR and the tokenizer run Java, and the one
METEOR JVM a process may hold, its lock, its statistics cache and its exit hook must be the same object
for this module, the ``diffbench score captions`` command and the demo Space; a second copy loaded by
evaluate from its module cache would start a second JVM and score with a second cache.

Java is required (``default-jdk-headless``): tokenisation identical to PTBTokenizer is not possible
without it, so without Java every metric fails with a clear error instead of drifting silently.
"""

import datasets
import evaluate

from diffbench.captions.metrics import DEFAULT_METRICS, METRICS, score_captions

_CITATION = """\
@inproceedings{chen2015microsoft,
  title     = {Microsoft {COCO} Captions: Data Collection and Evaluation Server},
  author    = {Chen, Xinlei and Fang, Hao and Lin, Tsung-Yi and Vedantam, Ramakrishna and Gupta, Saurabh and Doll{\\'a}r, Piotr and Zitnick, C. Lawrence},
  journal   = {arXiv preprint arXiv:1504.00325},
  year      = {2015}
}
@inproceedings{papineni2002bleu,
  title     = {{BLEU}: a Method for Automatic Evaluation of Machine Translation},
  author    = {Papineni, Kishore and Roukos, Salim and Ward, Todd and Zhu, Wei-Jing},
  booktitle = {ACL},
  year      = {2002}
}
@inproceedings{denkowski2014meteor,
  title     = {Meteor Universal: Language Specific Translation Evaluation for Any Target Language},
  author    = {Denkowski, Michael and Lavie, Alon},
  booktitle = {Workshop on Statistical Machine Translation},
  year      = {2014}
}
@inproceedings{lin2004rouge,
  title     = {{ROUGE}: A Package for Automatic Evaluation of Summaries},
  author    = {Lin, Chin-Yew},
  booktitle = {Text Summarization Branches Out},
  year      = {2004}
}
@inproceedings{vedantam2015cider,
  title     = {{CIDEr}: Consensus-based Image Description Evaluation},
  author    = {Vedantam, Ramakrishna and Zitnick, C. Lawrence and Parikh, Devi},
  booktitle = {CVPR},
  year      = {2015}
}
"""

_DESCRIPTION = """\
The COCO caption metrics every image-difference-captioning paper reports, identical to pycocoevalcap
1.2's pipeline: captions are tokenised with Stanford PTBTokenizer (lower-cased, punctuation dropped),
then scored with BLEU-1..4 (closest reference length, corpus level), METEOR 1.5 (`-l en -norm`, the
corpus score computed by Meteor from summed statistics), ROUGE-L (beta 1.2, mean over samples) and
CIDEr-D (document frequencies from the references of the scored set, so a single sample scores 0).
SPICE is available on request when Stanford CoreNLP 3.6.0 is installed. Optional `groups` (change
types; a sample may have several) add the full score set per group, each equal to scoring that group
alone. Scores are fractions (multiply by 100 for the usual tables).
"""

_KWARGS_DESCRIPTION = """
Scores difference captions against reference captions.

Args:
    predictions (`list` of `str`): one generated caption a sample.
    references (`list` of `list` of `str`): the reference captions of each sample (at least one).
    groups (`list`, optional): the change types of each sample: a string, a list of strings, or
        `None` / `[]` for none. Adds `groups: {type: scores}` to the result.
    metrics (`list` of `str`, optional): scorers to run, among `bleu`, `meteor`, `rouge`, `cider`
        (the default: all four) and `spice` (opt-in: needs Stanford CoreNLP 3.6.0).

Returns:
    `Bleu_1`, `Bleu_2`, `Bleu_3`, `Bleu_4`, `METEOR`, `ROUGE_L`, `CIDEr` (`float`, the chosen metrics),
    `num_samples` (`int`), and with `groups` a dict `groups` of the same per group.

Raises:
    ValueError: lengths that differ, a sample without references, a caption that is not a string, is
        longer than 5,000 characters or holds a lone surrogate, or `spice` without Stanford CoreNLP
        3.6.0 (one line, naming the sample).

Examples:
    >>> diff_caption_score = evaluate.load("diff_caption_score")
    >>> predictions = ["the red car is gone", "a man has appeared near the door", "the blue bike moved"]
    >>> references = [
    ...     ["the red car has been removed", "the red car is no longer there"],
    ...     ["a man is standing by the door now"],
    ...     ["the bicycle is moved to the left", "the blue bike has moved"],
    ... ]
    >>> results = diff_caption_score.compute(predictions=predictions, references=references)
    >>> print({name: round(value, 4) for name, value in results.items()})
    {'Bleu_1': 0.6218, 'Bleu_2': 0.5268, 'Bleu_3': 0.4102, 'Bleu_4': 0.3007, 'METEOR': 0.3521, 'ROUGE_L': 0.6819, 'CIDEr': 2.9343, 'num_samples': 3}

    Per change type, and a chosen subset of metrics:

    >>> results = diff_caption_score.compute(
    ...     predictions=predictions, references=references,
    ...     groups=[["disappearance"], ["addition"], ["disappearance", "orientation"]],
    ...     metrics=["bleu", "cider"],
    ... )
    >>> sorted(results["groups"])
    ['addition', 'disappearance', 'orientation']
    >>> results["groups"]["disappearance"]["num_samples"]
    2
    >>> round(results["groups"]["addition"]["CIDEr"], 4)  # one sample alone: CIDEr-D is 0 by design
    0.0
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class DiffCaptionScore(evaluate.Metric):
    """BLEU-1..4, METEOR, ROUGE-L, CIDEr (and opt-in SPICE) as pycocoevalcap, per change type."""

    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {
                    "predictions": datasets.Value("string"),
                    "references": datasets.Sequence(datasets.Value("string")),
                }
            ),
            codebase_urls=["https://github.com/salaniz/pycocoevalcap", "https://github.com/tylin/coco-caption"],
            reference_urls=["https://arxiv.org/abs/1504.00325", "https://arxiv.org/abs/2503.11093"],
        )

    def _compute(self, predictions, references, groups=None, metrics=None):
        return score_captions(predictions, references, groups=groups, metrics=metrics)


__all__ = ["DiffCaptionScore", "DEFAULT_METRICS", "METRICS"]
