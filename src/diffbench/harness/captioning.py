"""``diffbench eval NAME`` for the image-difference-captioning sets (OmniDiff, Spot-the-Diff, CLEVR-Change,
CLEVR-DC, Image Editing Request): a chat model describes what changed between the two images of each
pair; the descriptions are scored with the COCO caption metrics, overall and per change type.

The prompt is one user turn: the image before, the image after, then :data:`DEFAULT_PROMPT` (or
``--prompt``), rendered by the processor's chat template; greedy generation.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from diffbench.harness import outputs

DEFAULT_PROMPT = ("The first image is the before image and the second image is the after image. "
                  "Describe the differences between the two images.")
PREDICTIONS_FILE = "captions.json"


@dataclass
class CaptionOptions:
    name: str
    model: str
    out: Path
    config: str | None = None
    split: str = "test"
    prompt: str = DEFAULT_PROMPT
    batch_size: int | None = None
    device: str = "auto"
    dtype: str = "auto"
    num_workers: int | None = None
    max_new_tokens: int = 128
    fast_decode: bool = False
    trust_remote_code: bool = False
    revision: str | None = None
    limit: int | None = None
    overwrite: bool = False
    progress: bool = True
    data_files: list | None = None


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class CaptionCollate:
    """Runs in a DataLoader worker: the processor over a batch's (before, after, prompt) turns."""

    def __init__(self, processor, prompt: str):
        self.processor, self.prompt = processor, prompt

    def __call__(self, items: list[dict]) -> dict:
        from diffbench.harness.chat import chat_prompt
        from diffbench.harness.data import split_good_bad

        good, bad = split_good_bad(items)
        batch = {"indices": [item["index"] for item in good], "ids": [item["id"] for item in good], "bad": bad}
        if good:
            text = chat_prompt(self.processor, self.prompt, 2)
            self.processor.tokenizer.padding_side = "left"
            batch["inputs"] = dict(self.processor(text=[text] * len(good), images=[item["images"] for item in good],
                                                  padding=True, return_tensors="pt"))
        return batch


class CaptionStep:
    columns = ("caption",)

    def __init__(self, model, processor, device, dtype, runner, max_new_tokens: int):
        self.model, self.processor, self.device, self.dtype = model, processor, device, dtype
        self.runner, self.max_new_tokens = runner, max_new_tokens

    def __call__(self, batch: dict) -> list[tuple[int, dict]]:
        import torch

        from diffbench.harness.data import slice_inputs, to_device

        n = len(batch["indices"])
        if not n:
            return []
        inputs = to_device(batch["inputs"], self.device, self.dtype)
        length = inputs["input_ids"].shape[1]

        def chunk(start, stop):
            out = self.model.generate(**slice_inputs(inputs, n, start, stop), do_sample=False,
                                      max_new_tokens=self.max_new_tokens)
            return out[:, length:]

        with torch.inference_mode():
            pieces = [p.cpu() for p in self.runner.run(chunk, n)]
        texts = [t for p in pieces for t in self.processor.batch_decode(p, skip_special_tokens=True)]
        return [(index, {"id": sample_id, "caption": " ".join(text.split())})
                for index, sample_id, text in zip(batch["indices"], batch["ids"], texts)]


def load_pairs(options: CaptionOptions):
    from diffbench.harness.data import load_rows

    dataset = load_rows(options.name, options.config, options.split, options.data_files)
    missing = {"id", "image_before", "image_after", "captions"} - set(dataset.column_names)
    if missing:
        raise ValueError(f"{options.name} is not a difference-captioning dataset: it lacks {sorted(missing)}")
    if options.limit:
        dataset = dataset.select(range(min(options.limit, len(dataset))))
    return dataset


def run(options: CaptionOptions) -> dict:
    from diffbench.harness import models, runtime
    from diffbench.harness.data import SampleImages, draft_size
    from diffbench.harness.running import predict

    procs = runtime.processes(options.device)
    kind = models.detect_kind(options.model, options.trust_remote_code, options.revision)
    if kind.kind != models.IMAGE_TEXT_TO_TEXT:
        raise models.ModelKindError(f"{options.model} is a {kind.kind} model ({kind.model_type}); difference "
                                    "captioning needs an image-text-to-text model")
    dataset = load_pairs(options)
    out = Path(options.out)
    manifest = {"task": options.name, "config": options.config, "split": options.split, "model": options.model,
                "kind": kind.kind, "prompt": options.prompt, "max_new_tokens": options.max_new_tokens,
                "limit": options.limit, "data_files": [str(p) for p in options.data_files or []] or None}
    if procs.is_main:
        outputs.check_manifest(out, manifest, options.overwrite)
    procs.barrier()
    ids = list(dataset.select_columns(["id"])["id"])
    store = outputs.ProgressStore(out, procs.index)
    done = {}
    predictions_path = out / PREDICTIONS_FILE
    if predictions_path.exists():
        import json

        done = {p["image_id"]: {"id": p["image_id"], "caption": p["caption"]}
                for p in json.loads(predictions_path.read_text(encoding="utf-8"))}
    if set(done) != set(ids):
        done = store.load()
    todo = [i for i, sample_id in enumerate(ids) if sample_id not in done]
    if done and procs.is_main:
        log(f"resuming: {len(ids) - len(todo)} of {len(ids)} pairs already described in {out}")
    records, bad = [], []
    if todo:
        device = runtime.pick_device(options.device, procs)
        dtype = runtime.pick_dtype(options.dtype, device)
        if procs.is_main:
            log(f"{options.model}: {kind.model_type} on {device} in {str(dtype).split('.')[-1]}, {len(todo)} pairs")
        model, processor = models.load(options.model, kind, device, dtype, options.trust_remote_code, options.revision)
        draft = draft_size(processor.image_processor) if options.fast_decode else None
        samples = SampleImages(dataset, ["image_before", "image_after"], draft=draft)
        batch_size = options.batch_size or 8
        runner = runtime.ChunkedRunner(batch_size, log)
        workers = runtime.default_workers(procs) if options.num_workers is None else options.num_workers
        records, bad = predict(samples, todo, batch_size, CaptionCollate(processor, options.prompt),
                               CaptionStep(model, processor, device, dtype, runner, options.max_new_tokens),
                               store, procs, workers, pin_memory=device.type == "cuda", desc=options.name,
                               show_progress=options.progress)
    if not procs.is_main:
        return {}
    if bad:
        from diffbench.harness.data import BadImagesError

        raise BadImagesError.listing(bad, "pair", out)
    by_id = {**done, **{r["id"]: r for r in records}}
    predictions = {i: by_id[i]["caption"] for i in ids}
    outputs.write_json(predictions_path, [{"image_id": i, "caption": c} for i, c in predictions.items()])
    store.remove_all()
    from diffbench import caption_scoring

    results = caption_scoring.score_predictions(predictions, dataset)
    results = {**results, "model": options.model, "dataset": options.name, "prompt": options.prompt}
    outputs.write_json(out / "results.json", results)
    table = caption_scoring.format_table(results)
    title = f"{options.name}: {options.model}"
    (out / "results.md").write_text(f"# {title}\n\n{len(ids)} pairs; prompt: {options.prompt!r}\n\n{table}\n",
                                    encoding="utf-8")
    outputs.plot_bars(out / "results.png", change_type_scores(results), title, ylabel="score")
    return results


def change_type_scores(results: dict) -> dict[str, dict[str, float]]:
    """``{group: {metric: value}}`` for the plot: overall first, then each change type (whatever key the
    scorer keeps them under: a dict of dicts of numbers)."""
    def numbers(values):
        return {k: float(v) for k, v in values.items() if isinstance(v, (int, float)) and not isinstance(v, bool)
                and k.lower() not in ("num_samples", "count", "n")}

    overall = results.get("overall") if isinstance(results.get("overall"), dict) else results
    groups = {"all": numbers(overall)}
    for key in ("per_change_type", "change_types", "per_group", "groups"):
        value = results.get(key)
        if isinstance(value, dict) and all(isinstance(v, dict) for v in value.values()):
            groups.update({name: numbers(v) for name, v in value.items()})
            break
    return {name: values for name, values in groups.items() if values}
