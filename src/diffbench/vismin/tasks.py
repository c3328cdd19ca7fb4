"""VisMin as tasks: a contrastive model's four similarities, or a chat model's four answers.

dataset (built, or --data-files: parquet files or the upstream ``save_to_disk`` folder) -> DataLoader
-> model -> the official submission CSV -> the ``vismin_group_score`` metric -> results.json, results.md
(with the published rows), results.png / .svg; for a chat model also generations.jsonl and per-question
accuracy with the count of unparseable answers.

The paper's protocol (rabiulcste/vismin): contrastive models in float32 (``evals/vlm/clip.py``,
``siglip.py``); chat models generate greedily and the official lenient parser reads the answer
(``evals/mllm_inference.py``, ``evals/metrics/itm.py``), up to 128 new tokens as
``infer_image_text_and_group_task`` asks (LLaVA-1.6's ``predict_batch`` drops that and uses its
``predict`` default of 64: its preset says so). Categories, columns, questions and the rule come from
:mod:`diffbench.vismin.schema`.
"""

from __future__ import annotations

from pathlib import Path

from diffbench import files
from diffbench.harness import draws, models, outputs, runtime
from diffbench.harness.chat import ChatTask
from diffbench.harness.data import SampleImages
from diffbench.harness.options import RunOptions, with_defaults
from diffbench.harness.task import Task
from diffbench.models.embedded import display_name
from diffbench.vismin.contrastive import ContrastiveCollate, ContrastiveStep, OpenClipCollate, text_padding
from diffbench.vismin.presets import SIMILARITY_BLIP_ITC, SIMILARITY_COSINE, apply_preset
from diffbench.vismin.report import write_report_files
from diffbench.vismin.scoring import score
from diffbench.vismin.schema import (ANSWER_COLUMNS, CATEGORIES, EXPECTED_ANSWERS, IMAGE_QUESTION, PUBLISHED_SAMPLES,
                                     QUESTION_OPTIONS, SCORE_COLUMNS, TEXT_QUESTION, answer_matches, parse_answer,
                                     questions)

SUBMISSION_FILES = {"contrastive": "vismin_scores.csv", "image-text-to-text": "vismin_answers.csv"}
GENERATIONS_FILE = "generations.jsonl"
DEFAULT_MAX_NEW_TOKENS = 128  # evals/mllm_inference.py: predict_batch(..., max_new_tokens=128)
REQUIRED_COLUMNS = ("id", "image_0", "image_1", "text_0", "text_1", "category")

def normalize_rows(dataset, source: str = "the dataset"):
    """Rows with ``id`` = ``<category>/<upstream id>``: the built benchmark as it is; the upstream release
    (``mair-lab/vismin-bench``, integer ids restarting at 0 in each category, categories as names) with
    its ids rewritten that way and kept in ``upstream_id``. Only the id columns change (no image is read).
    """
    missing = [c for c in REQUIRED_COLUMNS if c not in dataset.column_names]
    if missing:
        raise ValueError(f"{source} is not a VisMin benchmark: it lacks the columns {missing} "
                         f"(columns: {', '.join(dataset.column_names)})")
    feature = dataset.features["id"]
    if getattr(feature, "dtype", "string") == "string":
        return dataset
    names = dataset.features["category"]
    categories = list(dataset["category"])
    if hasattr(names, "int2str"):
        categories = names.int2str(categories)
    upstream = list(dataset["id"])
    for row, (category, number) in enumerate(zip(categories, upstream)):
        if category not in CATEGORIES or number is None:
            raise ValueError(f"{source}, row {row}: category {category!r}, id {number!r}: VisMin rows need a "
                             f"category among {', '.join(CATEGORIES)} and an integer id")
    ids = [f"{c}/{int(n)}" for c, n in zip(categories, upstream)]
    if len(set(ids)) != len(ids):
        seen, repeated = set(), []
        for row, sample_id in enumerate(ids):
            if sample_id in seen:
                repeated.append(f"{sample_id} (row {row})")
            seen.add(sample_id)
        raise ValueError(f"{source}: {len(repeated)} repeated (category, id) pairs, e.g. {', '.join(repeated[:3])}")
    return dataset.rename_column("id", "upstream_id").add_column("id", ids)


class VisminFamily(Task):
    """``vismin``: the task for the model's kind."""

    name = "vismin"
    dataset = "vismin"
    default_config = "bench"
    kinds = ("contrastive", "image-text-to-text")
    strata_column = "category"  # --limit draws every category in proportion (at least one each)
    summary = (f"VisMin ({PUBLISHED_SAMPLES:,} samples, 4 categories): text / image / group scores; contrastive "
               "models by similarity, chat models by the four official questions")

    def resolve(self, options: RunOptions) -> RunOptions:
        """A published row's settings (``preset``: :func:`diffbench.vismin.presets.apply_preset`), then the defaults."""
        return with_defaults(apply_preset(options))

    def for_kind(self, kind) -> Task:
        super().for_kind(kind)
        return VisminContrastive() if kind.kind == "contrastive" else VisminChat()

    def load(self, options):
        dataset = super().load(options)
        source = str(options.data_files[0]) if options.data_files else "the built VisMin benchmark"
        return normalize_rows(dataset, source)


class VisminTask(VisminFamily):
    """What both VisMin tasks share: the rows, the submission file, scoring and the report."""

    columns: tuple[str, ...] = ()

    def samples(self, dataset, draft):
        return SampleImages(dataset, ["image_0", "image_1"], ["text_0", "text_1"], draft=draft)

    def finished(self, out: Path, ids: list) -> dict:
        path = out / self.predictions_file
        if not path.exists():
            return {}
        rows = outputs.read_csv(path)
        if set(rows) != set(ids):
            return {}
        return {i: {"id": i, **{c: self.value(row[c]) for c in self.columns}} for i, row in rows.items()}

    def value(self, text):
        return text

    def write_predictions(self, out: Path, records: list[dict]) -> None:
        outputs.write_csv(out / self.predictions_file, records, list(self.columns))

    def report(self, out: Path, dataset, records: list[dict], run: dict, options) -> dict:
        """The submission file, results.json, results.md, the figure (and generations.jsonl): one set, moved
        into ``out`` together (:func:`diffbench.files.staged`); the report is :mod:`diffbench.vismin.report`'s,
        as ``diffbench score vismin`` writes it, with what was run added."""
        with files.staged(out, overwrite=options.overwrite, names=outputs.OUTPUT_FILES) as folder:
            self.write_predictions(folder, records)
            scored = score(folder / self.predictions_file, dataset=dataset, config=run["config"],
                           resamples=options.resamples, seed=options.seed)
            results = scored.results
            results["submission"] = str(Path(out) / self.predictions_file)  # where it is once moved in
            run_protocol = {k: run[k] for k in ("kind", "dtype", "similarity", *self.protocol(options)) if k in run}
            results["protocol"] = {**results["protocol"], **run_protocol, **draws.in_results(run)}
            results.update(model=options.model, model_kind=run["kind"], weights=run["weights"],
                           dataset_fingerprint=run["dataset_fingerprint"], provenance=run["provenance"],
                           preset=run.get("preset"))
            self.add_details(folder, dataset, records, results)
            write_report_files(folder, results, f"{display_name(options.model)} (this run)", samples=scored.samples)
        return results

    def add_details(self, out, dataset, records, results) -> None:
        """Anything a task adds to results.json besides the metric's scores."""


class VisminContrastive(VisminTask):
    """The four similarities ``Tt_Ii`` of each sample (cosine of the projected embeddings)."""

    predictions_file = SUBMISSION_FILES["contrastive"]
    columns = SCORE_COLUMNS
    default_batch_size = 64

    def auto_dtype(self, device, kind) -> tuple[str, str, str | None]:
        # float32 unless asked: the official code runs contrastive models in float32, and half precision
        # flips verdicts (1 of 160 on the tiny model: issue 13)
        return "float32", runtime.FROM_DEFAULT, "contrastive models run in float32, as the official code runs them"

    def protocol(self, options, kind=None) -> dict:
        blip = kind is not None and getattr(kind.model_class, "__name__", "") == "BlipForImageTextRetrieval"
        return {"similarity": SIMILARITY_BLIP_ITC if blip else SIMILARITY_COSINE}

    def value(self, text):
        return float(text)

    def build_step(self, model, processor, device, dtype, runner, options):
        if processor is None:  # open_clip: the model preprocesses and tokenises itself
            return OpenClipCollate(model), ContrastiveStep(model, device, dtype, runner), {}
        if not (hasattr(model, "get_image_features") and hasattr(model, "get_text_features")):
            raise models.ModelKindError(f"{options.model} loaded as {type(model).__name__}, "
                                        "which lacks get_image_features/get_text_features")
        return (ContrastiveCollate(processor, text_padding(model, processor)),
                ContrastiveStep(model, device, dtype, runner), {})


def vismin_turns(item: dict):
    """The four official questions of a loaded sample (module level: it pickles into workers)."""
    return questions(*item["texts"])


def answers_record(sample_id, outputs_, turns) -> dict:
    return {"id": sample_id, **dict(zip(ANSWER_COLUMNS, outputs_))}


class VisminChat(ChatTask, VisminTask):
    """The four official questions; generated answers read by the lenient parser (or option likelihoods)."""

    predictions_file = SUBMISSION_FILES["image-text-to-text"]
    columns = ANSWER_COLUMNS
    default_batch_size = 4
    default_max_new_tokens = DEFAULT_MAX_NEW_TOKENS

    def turns_of(self, options):
        return vismin_turns

    to_record = staticmethod(answers_record)

    def protocol(self, options, kind=None) -> dict:
        protocol = self.chat_protocol(options).record()
        if options.answer == "likelihood":
            protocol["max_new_tokens"] = None  # nothing is generated
        return {**protocol, "parser": "lenient" if options.answer == "generate" else None,
                "prompts": {"text": TEXT_QUESTION, "image": IMAGE_QUESTION},
                "chat_template": "processor" if options.prompt_template is None else "prompt_template"}

    def chunk_size(self, batch_size: int) -> int:
        return batch_size * 4  # four questions a sample

    def value(self, text):
        return "" if text is None else str(text)

    def add_details(self, out, dataset, records, results) -> None:
        """Per-question accuracy and unparseable answers; every raw answer in generations.jsonl."""
        texts = dataset.select_columns(["text_0", "text_1"])
        lines, stats = [], {c: {"correct": 0, "unparseable": 0, "ambiguous": 0} for c in ANSWER_COLUMNS}
        for record, text_0, text_1 in zip(records, texts["text_0"], texts["text_1"]):
            for column, (question, _, _), options, expected in zip(ANSWER_COLUMNS, questions(text_0, text_1),
                                                                   QUESTION_OPTIONS, EXPECTED_ANSWERS):
                output = record[column]
                parsed = parse_answer(output, options)
                stats[column]["correct"] += answer_matches(output, expected)
                stats[column]["unparseable"] += parsed is None
                stats[column]["ambiguous"] += parsed == "ambiguous"
                lines.append({"id": record["id"], "question": column, "prompt": question, "output": output,
                              "parsed": parsed, "expected": expected})
        n = len(records)
        results["per_question"] = {c: {"accuracy": s["correct"] * 100 / n, "unparseable": s["unparseable"],
                                       "ambiguous": s["ambiguous"]} for c, s in stats.items()}
        results["unparseable_answers"] = sum(s["unparseable"] for s in stats.values())
        outputs.write_jsonl(out / GENERATIONS_FILE, lines)


VISMIN = VisminFamily()
