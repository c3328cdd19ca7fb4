"""``diffbench eval vismin``: a model on the VisMin benchmark, end to end.

dataset (built) -> DataLoader -> model (contrastive similarities, or chat answers) -> the official
submission CSV -> the VisMin metric -> results.json, results.md (with the published rows), results.png.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from diffbench.harness import outputs
from diffbench.harness.data import BadImagesError

CATEGORIES = ("object", "attribute", "relation", "counting")  # the published tables' order
SUBMISSION_FILES = {"contrastive": "vismin_scores.csv", "image-text-to-text": "vismin_answers.csv"}


@dataclass
class EvalOptions:
    model: str
    out: Path
    config: str = "bench"
    split: str = "test"
    batch_size: int | None = None
    device: str = "auto"
    dtype: str = "auto"
    num_workers: int | None = None
    answer: str = "likelihood"
    max_new_tokens: int = 16
    fast_decode: bool = False
    trust_remote_code: bool = False
    revision: str | None = None
    limit: int | None = None
    overwrite: bool = False
    progress: bool = True
    data_files: list | None = None  # parquet files or a save_to_disk folder instead of the built dataset


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def load_vismin(options: EvalOptions):
    """The benchmark rows: the built dataset, or ``data_files`` (parquet files / a ``save_to_disk`` folder)."""
    from diffbench.harness.data import load_rows

    return load_rows("vismin", options.config, options.split, options.data_files, options.limit)


def run(options: EvalOptions) -> dict:
    """Evaluate ``options.model`` on VisMin; returns the results (also written to ``options.out``)."""
    import torch

    from diffbench.harness import models, runtime
    from diffbench.harness.data import SampleImages, draft_size
    from diffbench.harness.running import predict

    procs = runtime.processes(options.device)
    kind = models.detect_kind(options.model, options.trust_remote_code, options.revision)
    dataset = load_vismin(options)
    out = Path(options.out)
    manifest = {"task": "vismin", "config": options.config, "split": options.split, "model": options.model,
                "kind": kind.kind, "answer": options.answer if kind.kind != models.CONTRASTIVE else None,
                "limit": options.limit, "data_files": [str(p) for p in options.data_files or []] or None}
    if procs.is_main:
        outputs.check_manifest(out, manifest, options.overwrite)
    procs.barrier()
    submission = out / SUBMISSION_FILES[kind.kind]
    ids = list(dataset.select_columns(["id"])["id"])
    store = outputs.ProgressStore(out, procs.index)
    done = outputs.read_csv(submission) if submission.exists() else {}
    if set(done) != set(ids):
        done = store.load()
    todo = [i for i, sample_id in enumerate(ids) if sample_id not in done]
    if done and procs.is_main:
        log(f"resuming: {len(ids) - len(todo)} of {len(ids)} samples already predicted in {out}")

    if todo:
        device = runtime.pick_device(options.device, procs)
        dtype = runtime.pick_dtype(options.dtype, device)
        if procs.is_main:
            log(f"{options.model}: {kind.kind} model ({kind.model_type}) on {device} in {str(dtype).split('.')[-1]}, "
                f"{len(todo)} samples, {procs.count} process(es)")
        model, processor = models.load(options.model, kind, device, dtype, options.trust_remote_code, options.revision)
        if kind.kind == models.CONTRASTIVE and not (hasattr(model, "get_image_features")
                                                     and hasattr(model, "get_text_features")):
            raise models.ModelKindError(f"{options.model} loaded as {type(model).__name__}, "
                                        "which lacks get_image_features/get_text_features")
        draft = draft_size(processor.image_processor) if options.fast_decode else None
        samples = SampleImages(dataset, ["image_0", "image_1"], ["text_0", "text_1"], draft=draft)
        default_batch = 64 if kind.kind == models.CONTRASTIVE else 4
        batch_size = options.batch_size or default_batch
        runner = runtime.ChunkedRunner(batch_size if kind.kind == models.CONTRASTIVE else batch_size * 4, log)
        if kind.kind == models.CONTRASTIVE:
            from diffbench.harness.contrastive import ContrastiveCollate, ContrastiveStep, text_padding

            collate = ContrastiveCollate(processor, text_padding(model, processor))
            step = ContrastiveStep(model, device, dtype, runner)
        else:
            from diffbench.harness.chat import ChatCollate, ChatStep

            collate = ChatCollate(processor, options.answer)
            step = ChatStep(model, processor, device, dtype, runner, options.answer, options.max_new_tokens)
        workers = runtime.default_workers(procs) if options.num_workers is None else options.num_workers
        records, bad = predict(samples, todo, batch_size, collate, step, store, procs, workers,
                               pin_memory=device.type == "cuda", desc="vismin", show_progress=options.progress)
        del model
        if device.type == "cuda":
            torch.cuda.empty_cache()
    else:
        records, bad = [], []
    if not procs.is_main:
        return {}
    if bad:
        raise BadImagesError.listing(bad, "sample", out)
    by_id = {**done, **{r["id"]: r for r in records}}
    columns = list(step_columns(kind.kind))
    rows = [{"id": i, **{c: _value(by_id[i][c], kind.kind) for c in columns}} for i in ids]
    outputs.write_csv(submission, rows, columns)
    store.remove_all()
    results = score(submission, dataset, options.config)
    results.update(model=options.model, model_kind=kind.kind)
    if kind.kind != models.CONTRASTIVE:
        results["answer_mode"] = options.answer
    from diffbench.default_model import display_name

    write_reports(out, results, display_name(options.model))
    return results


def step_columns(kind: str):
    if kind == "contrastive":
        from diffbench.harness.contrastive import SCORE_COLUMNS

        return SCORE_COLUMNS
    from diffbench.harness.chat import ANSWER_COLUMNS

    return ANSWER_COLUMNS


def _value(value, kind: str):
    return float(value) if kind == "contrastive" else ("" if value is None else str(value))


def score(submission: Path, dataset, config: str) -> dict:
    """The submission scored by the project's VisMin scorer (the ``vismin_group_score`` metric)."""
    from diffbench.vismin_submission import score_submission

    return score_submission(submission, dataset=dataset, config=config)


def per_category(results: dict) -> dict[str, dict[str, float]]:
    cells = results["scores"].get("per_category") or {}
    return {c: {m: cells[c][f"{m}_score"] for m in ("text", "image", "group")} for c in CATEGORIES if c in cells}


def write_reports(out: Path, results: dict, model_name: str) -> None:
    """results.json; results.md: this run in the paper's layout with every published row below it;
    results.png: text / image / group per category."""
    from diffbench.vismin_submission import format_table, published_results

    outputs.write_json(out / "results.json", results)
    published = list(dict.fromkeys(published_results()["model"]))
    title = f"VisMin: {model_name}"
    table = format_table(results, model=f"{model_name} (this run)", compare=published)
    note = ("Published rows: the VisMin paper and project page, on the full benchmark (2,084 samples); "
            f"this run: {results['num_samples']:,} samples.")
    (out / "results.md").write_text(f"# {title}\n\n{table}\n\n{note}\n", encoding="utf-8")
    outputs.plot_bars(out / "results.png", per_category(results), title)
