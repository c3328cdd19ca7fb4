"""lmms-eval's difference-captioning tasks (``omnidiff``, ``spot_the_diff``, ``clevr_change``, ``clevr_dc``,
``image_editing_request``), as ``diffbench eval NAME`` runs them (:class:`diffbench.captions.tasks.CaptionTask`).

One doc a pair: the image before, the image after, then
:data:`~diffbench.captions.tasks.DEFAULT_PROMPT` (``lmms_eval_specific_kwargs: {prompt: ...}`` replaces
it, as ``--prompt`` does); the caption is the generated text with its blanks collapsed (a newline would
break METEOR's line protocol: :func:`diffbench.captions.tasks.caption_record`).

Scored once a run, in the aggregation, by :func:`diffbench.captions.scoring.score`, the function
``diffbench eval`` and ``diffbench score captions`` report with: the corpus tokenised once by the PTB
tokenizer for every metric, BLEU-1..4, METEOR, ROUGE-L and CIDEr-D equal to pycocoevalcap 1.2, each
change type (and CLEVR-Change's official parts: ``semantic_change``, the five types, ``distractor``) a
corpus of its own. lmms-eval's own caption tasks (``lmms_eval/tasks/coco_cap/utils.py``) tokenise and
score the whole corpus again for each metric. The scores are percentages (pycocoevalcap's values x 100,
results.json's scale); ``groups`` and ``ci95`` are results.json's, as dicts.

    >>> process_results({"id": "p1", "captions": ["a car left"], "change_types": ["removal"]},
    ...                 ["  the car\\nhas gone "])["CIDEr"]["caption"]
    'the car has gone'
"""

from __future__ import annotations

import datasets

from diffbench.captions.scoring import score
from diffbench.captions.tasks import DEFAULT_PROMPT, caption_record
from diffbench.harness.chat import combine_images
from diffbench.harness.data import decode_image
from diffbench.lmms_eval_tasks.memo import LastResult
from diffbench.lmms_eval_tasks.provenance_note import warn_if_synthetic

#: the scalar metrics of the YAML files (results.json's ``scores``), then its two dicts
METRICS = ("Bleu_1", "Bleu_2", "Bleu_3", "Bleu_4", "METEOR", "ROUGE_L", "CIDEr")
DICT_METRICS = ("groups", "ci95")


def process_docs(dataset: datasets.Dataset) -> datasets.Dataset:
    """The rows as they are; a warning in the log when they are diffbench's synthetic sample."""
    warn_if_synthetic(dataset)
    return dataset


def doc_to_visual(doc: dict, lmms_eval_specific_kwargs=None) -> list:
    """The image before, the image after (RGB, as diffbench's harness decodes them), or the two side by side."""
    images = [decode_image(doc["image_before"]), decode_image(doc["image_after"])]
    if (lmms_eval_specific_kwargs or {}).get("image_handling") == "combined":
        return [combine_images(images)]
    return images


def doc_to_text(doc: dict, lmms_eval_specific_kwargs=None) -> str:
    return (lmms_eval_specific_kwargs or {}).get("prompt") or DEFAULT_PROMPT


def doc_to_target(doc: dict) -> str:
    return doc["captions"][0] if doc["captions"] else ""


def process_results(doc: dict, results: list) -> dict:
    """The pair's caption with what scoring needs of the doc, the same record under every metric."""
    answer = results[0] if results else ""
    answer = getattr(answer, "text", answer)  # a chat model's GenerationResult, or the text itself
    record = {"id": str(doc["id"]), "caption": caption_record(doc["id"], ["" if answer is None else str(answer)], None)["caption"],
              "references": list(doc["captions"]), "change_types": list(doc.get("change_types") or [])}
    if "distractor" in doc:  # CLEVR-Change: its official parts
        record["distractor"] = bool(doc["distractor"])
    return {metric: record for metric in (*METRICS, *DICT_METRICS)}


def score_items(items: list[dict]) -> dict:
    """diffbench's results.json for the run's captions (the references and groups from the docs)."""
    columns = {"id": [i["id"] for i in items], "captions": [i["references"] for i in items],
               "change_types": [i["change_types"] for i in items]}
    if any("distractor" in i for i in items):
        columns["distractor"] = [bool(i.get("distractor")) for i in items]
    rows = datasets.Dataset.from_dict(columns)
    return score({i["id"]: i["caption"] for i in items}, rows).results


_SCORED = LastResult(score_items, key=lambda items: tuple((i["id"], i["caption"]) for i in items))


def _aggregation(metric: str):
    def aggregate(items: list[dict]):
        results = _SCORED(items)
        return results[metric] if metric in DICT_METRICS else results["scores"][metric]

    aggregate.__name__ = aggregate.__qualname__ = f"aggregate_{metric}"
    return aggregate


# One aggregation a metric (lmms-eval calls each with the metric's items; all share one scoring a run).
for _metric in (*METRICS, *DICT_METRICS):
    globals()[f"aggregate_{_metric}"] = _aggregation(_metric)
