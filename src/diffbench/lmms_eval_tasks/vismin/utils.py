"""lmms-eval's ``vismin`` task: the paper's protocol, as ``diffbench eval vismin`` runs it for a chat model.

Four questions a sample (:func:`diffbench.vismin.schema.questions`, rabiulcste/vismin
``evals/dataset_zoo/task_prompts.py``): the text question once with each image, the image question once
for each caption with both images, images first, then the question, as
:class:`diffbench.vismin.tasks.VisminChat` asks them. The generated answers go through the official
lenient parser and the ``vismin_group_score`` metric's own rule (``metrics/vismin_group_score/
vismin_rule.py``), by :func:`diffbench.vismin.scoring.score`, the function ``diffbench eval`` and
``diffbench score vismin`` report with: text / image / group over all samples and per category, and the
AVG as diffbench reports it (the mean of the category cells: 12 on the full benchmark).

Four docs a sample. lmms-eval asks one question a doc (``ConfigurableTask.construct_requests`` in
``lmms_eval/api/task.py`` makes one ``generate_until`` Instance a doc, and ``process_results`` sees that
doc's one answer), so :func:`process_docs` (which ``ConfigurableTask.download`` applies to the split)
gives each sample four rows, ``vismin_question`` 0..3, sample by sample (``--limit`` a multiple of 4
takes whole samples), and the aggregation regroups the answers by sample id. The rows are four
memory-mapped views of the same Arrow table put in order by an index mapping: no image is copied or
re-encoded. The other mechanisms do not fit: ``generate_until_multi_round`` puts earlier answers in the
context of later rounds (the paper asks each question afresh), ``repeats`` repeats one prompt, and a
``multiple_choice`` task ranks options by likelihood instead of parsing a generated answer.

``lmms_eval_specific_kwargs: {image_handling: combined}`` pastes the two images of an image question
side by side (:func:`diffbench.harness.chat.combine_images`: the paper's LLaVA-1.6 protocol, as
``diffbench eval --image-handling combined`` does).

    >>> from datasets import Dataset
    >>> docs = process_docs(Dataset.from_dict({"id": ["object/0"], "category": ["object"], "image_0": [None],
    ...                                        "image_1": [None], "text_0": ["a cat"], "text_1": ["a dog"]}))
    >>> [doc_to_text(doc) for doc in docs][2]
    'Which image better aligns with the description: "a cat"? Choices: First, Second.'
    >>> [doc_to_target(doc) for doc in docs]
    ['A', 'B', 'First', 'Second']
"""

from __future__ import annotations

import logging
import math

import datasets
import pandas as pd

from diffbench.harness.chat import combine_images
from diffbench.harness.data import decode_image
from diffbench.lmms_eval_tasks.memo import LastResult
from diffbench.lmms_eval_tasks.provenance_note import warn_if_synthetic
from diffbench.vismin.schema import ANSWER_COLUMNS, CATEGORIES, EXPECTED_ANSWERS, SCORE_NAMES, questions
from diffbench.vismin.scoring import score
from diffbench.vismin.tasks import normalize_rows

logger = logging.getLogger(__name__)

#: the question a row asks: its index in :data:`~diffbench.vismin.schema.ANSWER_COLUMNS`
QUESTION = "vismin_question"
#: the row's category by name (the build stores a ClassLabel, which a doc gives as its integer)
CATEGORY = "vismin_category"
#: the scalar metrics of the YAML, in results.json's names: the pooled scores, the AVG, then each cell
METRICS = (*SCORE_NAMES, "avg", *(f"{category}_{name}" for category in CATEGORIES for name in SCORE_NAMES))


def process_docs(dataset: datasets.Dataset) -> datasets.Dataset:
    """Four rows a sample, ``vismin_question`` 0..3, sample by sample, with ``vismin_category`` (the
    category's name); ids as ``<category>/<id>`` (the upstream release's integer ids rewritten, as
    ``diffbench eval`` does: :func:`normalize_rows`)."""
    warn_if_synthetic(dataset)
    dataset = normalize_rows(dataset, "lmms-eval's vismin dataset")
    n = len(dataset)
    if dataset._indices is not None:  # add_column would copy a selection's rows: give it its own table once
        dataset = dataset.flatten_indices()
    feature = dataset.features["category"]
    names = dataset["category"]
    dataset = dataset.add_column(CATEGORY, feature.int2str(names) if hasattr(feature, "int2str") else names)
    copies = [dataset.add_column(QUESTION, [q] * n) for q in range(len(ANSWER_COLUMNS))]
    stacked = datasets.concatenate_datasets(copies)
    return stacked.select([q * n + i for i in range(n) for q in range(len(ANSWER_COLUMNS))])


def _question(doc: dict):
    return questions(doc["text_0"], doc["text_1"])[doc[QUESTION]]


def doc_to_visual(doc: dict, lmms_eval_specific_kwargs=None) -> list:
    """The images of the row's question, decoded to RGB as diffbench's harness decodes them."""
    _, positions, _ = _question(doc)
    images = [decode_image(doc[f"image_{p}"]) for p in positions]
    if len(images) > 1 and (lmms_eval_specific_kwargs or {}).get("image_handling") == "combined":
        return [combine_images(images)]
    return images


def doc_to_text(doc: dict, lmms_eval_specific_kwargs=None) -> str:
    """The official question, nothing added (the model's chat template wraps it)."""
    return _question(doc)[0]


def doc_to_target(doc: dict) -> str:
    """The expected answer (A, B, First, Second)."""
    return EXPECTED_ANSWERS[doc[QUESTION]]


def process_results(doc: dict, results: list) -> dict:
    """The row's answer, the same record under every metric (each aggregation regroups all of them)."""
    answer = results[0] if results else ""
    answer = getattr(answer, "text", answer)  # a chat model's GenerationResult, or the text itself
    record = {"id": str(doc["id"]), "category": doc[CATEGORY], "question": int(doc[QUESTION]),
              "answer": "" if answer is None else str(answer)}
    return {metric: record for metric in (*METRICS, "ci95")}


def answers_frame(items: list[dict]) -> tuple[pd.DataFrame, list[str]]:
    """``(submission, categories)``: one row a sample whose four answers are all present, in the order
    the samples first appear; a sample missing some (a ``--limit`` that is not a multiple of 4) is left
    out, with a warning naming how many."""
    samples: dict[str, dict] = {}
    for item in items:
        sample = samples.setdefault(item["id"], {"category": item["category"], "answers": {}})
        sample["answers"][item["question"]] = item["answer"]
    complete = {i: s for i, s in samples.items() if len(s["answers"]) == len(ANSWER_COLUMNS)}
    if len(complete) < len(samples):
        logger.warning("vismin: %d of %d samples lack some of their four answers (a --limit that is not a multiple "
                       "of 4?): scored without them", len(samples) - len(complete), len(samples))
    if not complete:
        raise ValueError("vismin: no sample has all four answers; give --limit a multiple of 4")
    rows = [{"id": i, **{c: s["answers"][q] for q, c in enumerate(ANSWER_COLUMNS)}} for i, s in complete.items()]
    return pd.DataFrame(rows, columns=["id", *ANSWER_COLUMNS]), [s["category"] for s in complete.values()]


def score_items(items: list[dict]) -> dict:
    """diffbench's results.json for the run's answers (:func:`diffbench.vismin.scoring.score`, lenient parser)."""
    frame, categories = answers_frame(items)
    keys = datasets.Dataset.from_dict({"id": frame["id"].tolist(), "category": categories})
    return score(frame, dataset=keys).results


_SCORED = LastResult(score_items, key=lambda items: tuple((i["id"], i["question"], i["answer"]) for i in items))


def flat_scores(results: dict) -> dict:
    """results.json's scores as the YAML's metrics; a category absent from the run is ``None`` (N/A)."""
    flat = dict(results["scores"])
    for category in CATEGORIES:
        cell = results["groups"].get(category)
        for name in SCORE_NAMES:
            flat[f"{category}_{name}"] = None if cell is None else cell["scores"][name]
    return flat


def _aggregation(metric: str):
    def aggregate(items: list[dict]):
        results = _SCORED(items)
        if metric == "ci95":
            return results["ci95"]
        value = flat_scores(results)[metric]
        return value if value is None or not math.isnan(value) else None

    aggregate.__name__ = aggregate.__qualname__ = f"aggregate_{metric}"
    return aggregate


# One aggregation a metric (lmms-eval calls each with the metric's items; all share one scoring a run).
for _metric in (*METRICS, "ci95"):
    globals()[f"aggregate_{_metric}"] = _aggregation(_metric)
