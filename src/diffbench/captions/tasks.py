"""Difference captioning as tasks (OmniDiff, Spot-the-Diff, CLEVR-Change, CLEVR-DC, Image Editing Request):
a chat model describes what changed between the two images of each pair; the descriptions are scored
with the COCO caption metrics (:func:`diffbench.captions.scoring.score`), overall and per change type,
each with its 95% bootstrap interval (``--resamples``, ``--seed``), one line a pair in samples.jsonl.

The prompt is one user turn: the image before, the image after, then :data:`DEFAULT_PROMPT` (or
``--prompt``), rendered by the processor's chat template (or ``--prompt-template``); greedy generation of
up to 128 new tokens. The images can be given separately (default) or pasted side by side
(``--image-handling combined``), as for VisMin (:mod:`~diffbench.harness.chat`).
"""

from __future__ import annotations

import json
from pathlib import Path

from diffbench import files
from diffbench.captions.report import write_report_files
from diffbench.captions.scoring import score
from diffbench.harness import draws, outputs
from diffbench.harness.chat import ChatTask
from diffbench.harness.data import SampleImages
from diffbench.harness.models import ModelKindError
from diffbench.harness.task import Task

DEFAULT_PROMPT = ("The first image is the before image and the second image is the after image. "
                  "Describe the differences between the two images.")
PREDICTIONS_FILE = "captions.json"
DEFAULT_MAX_NEW_TOKENS = 128
REQUIRED_COLUMNS = ("id", "image_before", "image_after", "captions")
#: the difference-captioning datasets (folders under datasets/) and what each holds
DATASETS = {
    "omnidiff": "OmniDiff: real and 3D-synthetic pairs, 12 change types, long human descriptions",
    "spot_the_diff": "Spot-the-Diff: surveillance-camera frames, one or more sentences a pair",
    "clevr_change": "CLEVR-Change: rendered scenes, semantic changes and distractors (viewpoint, lighting)",
    "clevr_dc": "CLEVR-DC: rendered scenes under large viewpoint changes",
    "image_editing_request": "Image Editing Request: photo edits described as requests",
}


class CaptionTurns:
    """One turn a pair: the prompt, both images, no options (a class: it pickles into spawned workers)."""

    def __init__(self, prompt: str):
        self.prompt = prompt

    def __call__(self, item: dict):
        return [(self.prompt, (0, 1), None)]


def caption_record(sample_id, outputs_, turns) -> dict:
    return {"id": sample_id, "caption": " ".join(outputs_[0].split())}


class CaptionTask(ChatTask, Task):
    """One difference-captioning dataset."""

    kinds = ("image-text-to-text",)
    predictions_file = PREDICTIONS_FILE
    unit = "pair"
    #: ``--limit`` draws stratified by change type (:mod:`diffbench.harness.draws`)
    strata_column = "change_types"
    default_batch_size = 8
    default_max_new_tokens = DEFAULT_MAX_NEW_TOKENS

    def __init__(self, dataset: str, summary: str):
        self.name = self.dataset = dataset
        self.summary = summary

    def for_kind(self, kind) -> Task:
        if kind.kind not in self.kinds:
            raise ModelKindError(f"{kind.model_type} is a {kind.kind} model; difference captioning needs an "
                                 "image-text-to-text model")
        return self

    def load(self, options):
        dataset = super().load(options)
        missing = [c for c in REQUIRED_COLUMNS if c not in dataset.column_names]
        if missing:
            raise ValueError(f"{self.name} is not a difference-captioning dataset: it lacks {missing}")
        return dataset

    def samples(self, dataset, draft):
        return SampleImages(dataset, ["image_before", "image_after"], draft=draft)

    def chat_protocol(self, options):
        if options.answer != "generate":
            raise ValueError("difference captioning generates its answer; --answer likelihood is for VisMin")
        return super().chat_protocol(options)

    def turns_of(self, options):
        return CaptionTurns(options.prompt or DEFAULT_PROMPT)

    to_record = staticmethod(caption_record)

    def protocol(self, options, kind=None) -> dict:
        return {**self.chat_protocol(options).record(), "prompt": options.prompt or DEFAULT_PROMPT,
                "chat_template": "processor" if options.prompt_template is None else "prompt_template"}

    def finished(self, out: Path, ids: list) -> dict:
        path = out / PREDICTIONS_FILE
        if not path.exists():
            return {}
        done = {p["image_id"]: {"id": p["image_id"], "caption": p["caption"]}
                for p in json.loads(path.read_text(encoding="utf-8"))}
        return done if set(done) == set(ids) else {}

    def write_predictions(self, out: Path, records: list[dict]) -> None:
        outputs.write_json(out / PREDICTIONS_FILE, [{"image_id": r["id"], "caption": r["caption"]} for r in records])

    def report(self, out: Path, dataset, records: list[dict], run: dict, options) -> dict:
        """captions.json, results.json, results.md, samples.jsonl and the figure: one set, moved into ``out``
        together (:func:`diffbench.files.staged`); the report is :mod:`diffbench.captions.report`'s, as
        ``diffbench score captions`` writes it, with what was run added."""
        scored = score({r["id"]: r["caption"] for r in records}, dataset, benchmark=self.name, config=run["config"],
                       split=run["split"], resamples=options.resamples, seed=options.seed)
        results = scored.results
        run_protocol = {k: run[k] for k in ("kind", "dtype", *self.protocol(options)) if k in run}
        results["protocol"] = {**results["protocol"], **run_protocol, **draws.in_results(run)}
        results.update(model=options.model, prompt=run["prompt"], weights=run["weights"],
                       dataset_fingerprint=run["dataset_fingerprint"], provenance=run["provenance"],
                       preset=run.get("preset"))
        intro = f"{len(records)} pairs; prompt: {run['prompt']!r}; max new tokens {run['max_new_tokens']}"
        with files.staged(out, overwrite=options.overwrite, names=outputs.OUTPUT_FILES) as folder:
            self.write_predictions(folder, records)
            write_report_files(folder, results, f"{self.name}: {options.model}", intro, samples=scored.samples)
        return results


def caption_tasks() -> dict[str, CaptionTask]:
    return {name: CaptionTask(name, summary) for name, summary in DATASETS.items()}
