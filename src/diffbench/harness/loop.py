"""The one run loop behind ``diffbench eval``: any :class:`~diffbench.harness.task.Task`, any model.

    task (given: :mod:`diffbench.tasks` names them) + resolved options -> model kind (from its config)
    -> the task for that kind -> rows (built dataset or --data-files) -> the --limit draw
    (:mod:`~diffbench.harness.draws`) -> run.json (checked against an earlier run in --out)
    -> saved predictions (resume; an earlier, smaller draw's are kept) -> model loaded only if something
    is left
    -> DataLoader + the task's step, batch by batch, saved as it goes, over accelerate processes
    -> gathered on the main process -> the task's submission file, scores and report

The loop owns resume, devices, processes, batching, out-of-memory back-off, bad images and progress;
the task owns prompts, generation settings, parsing, scoring and the report.

Several tasks in one call (:func:`run_tasks`, ``diffbench eval --tasks``) are each checked up to the
model load first (model kind, data, ``--out``: every refusal before any prediction), then run one after
the other on one loaded model (:class:`SharedModel`).
"""

from __future__ import annotations

import dataclasses
import json
import sys
from dataclasses import dataclass
from pathlib import Path

from diffbench.backends.openai_chat import OpenAIChatClient
from diffbench.data.provenance import of_dataset
from diffbench.harness import draws, models, outputs, record, runtime
from diffbench.harness.data import BadImagesError, draft_size
from diffbench.harness.options import source_of
from diffbench.harness.running import predict


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def image_backend(processor) -> dict:
    """The image-processing backend the processor runs (transformers 5: ``pil`` or ``torchvision``)."""
    image_processor = getattr(processor, "image_processor", None)
    if image_processor is None:
        return {}
    return {"image_processor": type(image_processor).__name__,
            "image_backend": str(getattr(image_processor, "backend", None) or
                                 ("torchvision" if "Fast" in type(image_processor).__name__ else "pil"))}


def run_record(task, options, kind, rows, dataset, dtype, settings: dict) -> dict:
    """``run.json``: what defines the predictions (compared on resume), the draw (``limit``, ``samples``:
    checked to only grow), and the ``settings`` with their sources and the environment (not compared).
    ``rows``: the whole split (its fingerprint), ``dataset``: the rows drawn from it."""
    return {
        "task": task.name, "dataset": task.dataset, "config": options.config or task.default_config,
        "split": options.split, "model": options.model, "revision": options.revision,
        "processor": options.processor, "kind": kind.kind,
        "model_type": kind.model_type, "preset": options.preset,
        "limit": options.limit, "samples": len(dataset), "split_samples": len(rows),
        "sample_draw": draws.record(task.strata_column) if len(dataset) < len(rows) else None,
        "data_files": [str(p) for p in options.data_files or []] or None,
        # reduced-scale JPEG decoding gives other pixels: part of what defines the predictions
        "fast_decode": bool(options.fast_decode) and not options.api_base,
        "dtype": str(dtype).removeprefix("torch.") if dtype is not None else None, **task.protocol(options, kind),
        "weights": (record.weights_fingerprint(options.model, options.revision) if not options.api_base else
                    {"source": "api", "api_base": options.api_base, "model": options.model}),
        "dataset_fingerprint": record.dataset_fingerprint(rows, options.data_files),
        "provenance": of_dataset(rows),
        "settings": settings,
        "invocation": invocation(options),
        "environment": record.environment(),
    }


def invocation(options) -> dict:
    """run.json's ``invocation`` (recorded, not compared): every option as the run resolved it, which of
    them a config file (``--config``) or a preset set, the config file's path and sha256, and the tasks of
    the call (``--tasks``)."""
    resolved = {field.name: getattr(options, field.name) for field in dataclasses.fields(options)
                if field.name not in ("config_file", "from_config_file", "from_preset", "tasks")}
    return {"options": json.loads(json.dumps(resolved, default=str)),
            "config_file": options.config_file, "from_config_file": list(options.from_config_file),
            "from_preset": list(options.from_preset), "tasks": list(options.tasks or [options.task])}


def choose_dtype(task, options, device, kind):
    """``(torch dtype, its settings entry)``: as given (option or preset), else the task's ``auto``."""
    if options.dtype != "auto":
        return runtime.dtype_by_name(options.dtype), {"value": options.dtype, "from": source_of(options, "dtype")}
    name, source, why = task.auto_dtype(device, kind)
    return runtime.dtype_by_name(name), {"value": name, "from": source, **({"why": why} if why else {})}


def confirm_weights(run: dict, options, out: Path, procs, resumed: bool) -> None:
    """A Hub model's commit, once loaded (downloaded): recorded where run.json did not know it yet; a
    resumed run whose download is another commit than its saved predictions' is refused."""
    if not record.from_hub(run["weights"]):
        return
    loaded = record.weights_fingerprint(options.model, options.revision)
    if loaded == run["weights"]:
        return
    if resumed and not record.resolves(run["weights"], loaded):
        raise outputs.RunMismatchError(
            f"{out} holds predictions of another run: {outputs.WEIGHTS_CHANGED} (weights: {run['weights']!r} -> "
            f"{loaded!r}); {outputs.PROCEED}")
    run["weights"] = loaded
    if procs.is_main:
        outputs.update_record(out, {"weights": loaded})


API_CACHE_DIR = "api-cache"


def ask_api(task, options, dataset, todo, store, procs, out):
    """The loop's prediction step for an OpenAI-compatible endpoint (every answer cached under --out)."""
    protocol = task.chat_protocol(options)
    if procs.is_main:
        log(f"{options.model} at {options.api_base}: {len(todo)} {task.unit}s, {options.concurrency} requests in flight")
    with OpenAIChatClient(options.api_base, options.model, api_key_env=options.api_key_env,
                          cache_dir=out / API_CACHE_DIR, concurrency=options.concurrency,
                          max_new_tokens=protocol.max_new_tokens) as client:
        collate, step = task.build_api_step(client, options)
        workers = runtime.default_workers(procs) if options.num_workers is None else options.num_workers
        predicted = predict(task.samples(dataset, None), todo, options.batch_size or 16, collate, step, store, procs,
                            workers, pin_memory=False, desc=task.name, show_progress=options.progress)
    # malformed answers (over-size, not JSON, no text) are empty, so scored unparseable, and not cached:
    # said here and kept in run.json's environment; a resumed run counts those it asked, not earlier ones
    malformed = sum(procs.gather([client.malformed_answers]))
    if procs.is_main:
        outputs.update_record(out, {"api_malformed_answers": malformed}, section="environment")
        if malformed:
            log(f"{malformed} malformed answers (over-size, not JSON, or no text; the warnings above name them): "
                "recorded as empty answers, scored unparseable, not cached (--overwrite asks them again)")
    return predicted


def run(task, options) -> dict:
    """Run ``task`` with ``options.model`` (``options`` resolved: :func:`diffbench.tasks.resolve`); returns the
    results (written to ``options.out``). Non-main processes return ``{}``. An API run (``api_base``) imports
    no torch."""
    return run_tasks([(task, options)])[0]


def run_tasks(runs: list[tuple]) -> list[dict]:
    """Run each ``(task, resolved options)`` of ``runs`` (``diffbench eval --tasks``): every one checked up to
    the model load first (its model kind, data and ``--out``), so a refusal comes before any prediction;
    then run in order, one loaded model serving all that ask for the same one. Returns their results."""
    devices = {options.device for _, options in runs}
    if len(devices) > 1:
        raise ValueError(f"the tasks of one call run on one device, not {', '.join(sorted(devices))}")
    procs = runtime.processes(runs[0][1].device)
    shared = SharedModel(say=log if procs.is_main else None)
    try:
        kinds = [model_kind(options) for _, options in runs]
        for (family, _), kind in zip(runs, kinds):
            check_kind(family, kind, several=len(runs) > 1)  # every task's model kind before anything runs
        plans = [plan_run(family, options, kind, procs) for (family, options), kind in zip(runs, kinds)]
        for plan in plans:  # every task's data loaded and checked before any --out is written to
            claim_out(plan, procs)
        # a model no later task shares is let go once predicted, before its task's report (as one task's run)
        keep = [any(plan_key(later) == plan_key(plan) for later in plans[index + 1:])
                for index, plan in enumerate(plans)]
        return [execute(plan, procs, shared, kept) for plan, kept in zip(plans, keep)]
    finally:
        shared.release()
        procs.close()


def model_kind(options) -> models.ModelKind:
    """What the model is (from its config), checked loadable (corrupt, pickle, no open_clip) before any work."""
    if options.api_base:  # an OpenAI-compatible endpoint answers: a chat model without local weights
        return models.ModelKind(models.IMAGE_TEXT_TO_TEXT, "openai-api", None)
    kind = models.detect_kind(options.model, options.trust_remote_code, options.revision)
    models.check_loadable(options.model, options.allow_pickle)
    return kind


def check_kind(family, kind, several: bool) -> None:
    """``family`` takes this model kind; refused naming the task when it is one of several."""
    try:
        family.for_kind(kind)
    except models.ModelKindError as err:
        if not several:
            raise
        raise models.ModelKindError(f"task {family.name}: {err}; no task was run") from None


def saved_predictions(task, out: Path, rows, ids: list, earlier: dict | None, store) -> dict:
    """The predictions ``out`` holds for ``ids``: the submission file of this draw or of the earlier, smaller
    one it extends (the same seeded draw, so the earlier rows are found again), and the progress files."""
    saved = task.finished(out, ids)
    if not saved and earlier and 0 < (earlier.get("samples") or 0) < len(ids):
        earlier_ids = draws.draw(rows, earlier["samples"], task.strata_column).select_columns(["id"])["id"]
        saved = task.finished(out, list(earlier_ids))
    wanted = set(ids)
    return {i: r for i, r in {**saved, **store.load()}.items() if i in wanted}


@dataclass
class Plan:
    """One task's run, checked up to the model load: its rows and draw, device, dtype and run record."""

    task: object
    options: object
    kind: models.ModelKind
    rows: object  # the whole split
    dataset: object  # the rows drawn from it (--limit)
    device: object
    dtype: object
    run: dict  # run.json as written
    earlier: dict | None = None  # the earlier run.json in --out (None: none), known once claimed


def plan_run(family, options, kind, procs) -> Plan:
    """Everything that can refuse a run before a prediction and the model load, but ``--out``'s run.json
    (:func:`claim_out`): the task for the model kind, the data and its draw, device and dtype."""
    task = family.for_kind(kind)
    rows = task.load(options)
    dataset = draws.draw(rows, options.limit, task.strata_column)
    device, dtype, settings = None, None, task.settings(options)
    if not options.api_base:
        device = runtime.pick_device(options.device, procs)
        dtype, settings["dtype"] = choose_dtype(task, options, device, kind)
    run = run_record(task, options, kind, rows, dataset, dtype, settings)
    return Plan(task, options, kind, rows, dataset, device, dtype, run)


def claim_out(plan: Plan, procs) -> None:
    """``--out``'s run.json written, or an earlier one checked to describe the same run (refused otherwise);
    ``plan.earlier`` is the earlier one (every process learns which draw it extends)."""
    options = plan.options
    earlier = outputs.check_manifest(Path(options.out), plan.run, options.overwrite) if procs.is_main else None
    plan.earlier = procs.gather([earlier] if procs.is_main else [])[0]


def plan_key(plan: Plan) -> tuple | None:
    """What :class:`SharedModel` loads for ``plan`` (None: an API run loads nothing)."""
    return None if plan.options.api_base else SharedModel.key_of(plan.options, plan.kind, plan.device, plan.dtype)


def execute(plan: Plan, procs, shared: SharedModel, keep_model: bool = False) -> dict:
    """Predict what ``plan``'s ``--out`` lacks, then score and report (the main process; others return ``{}``)."""
    task, options, dataset = plan.task, plan.options, plan.dataset
    out = Path(options.out)
    ids = list(dataset.select_columns(["id"])["id"])
    store = outputs.ProgressStore(out, procs.index)
    done = saved_predictions(task, out, plan.rows, ids, plan.earlier, store)
    # Every process reads what --out holds before any writes to it, so all find the same samples to do: under
    # --tasks the others start the next task while the main process still reports the last one.
    procs.barrier()
    todo = [i for i, sample_id in enumerate(ids) if sample_id not in done]
    if done and procs.is_main:
        log(f"resuming: {len(ids) - len(todo)} of {len(ids)} {task.unit}s already predicted in {out}")
    if procs.is_main:
        outputs.update_record(out, {"predictions": {"kept": len(ids) - len(todo), "predicted": len(todo)}},
                              section="environment")
    records, bad = [], []
    if todo and options.api_base:
        records, bad = ask_api(task, options, dataset, todo, store, procs, out)
    elif todo:
        records, bad = predict_locally(plan, todo, store, procs, shared, resumed=bool(done))
        if not keep_model:
            shared.release()
    if not procs.is_main:
        return {}
    if bad:
        raise BadImagesError.listing(bad, task.unit, out)
    by_id = {**done, **{r["id"]: r for r in records}}
    results = task.report(out, dataset, [by_id[i] for i in ids], plan.run, options)  # the submission file with it
    store.remove_all()  # the predictions file now holds them all
    return results


class SharedModel:
    """The model (and processor) the tasks of one call share: loaded when a task first has something to
    predict, kept for the next task that asks for the same weights, settings and device (``--tasks``: one
    load), released at the end. A task whose options load it otherwise gets its own load.

    The processor is shared too: a task's protocol sets its image splitting, which is part of the key.
    """

    def __init__(self, say=None):
        self.key, self.model, self.processor, self.loaded_for, self.device = None, None, None, None, None
        self.say = say or (lambda message: None)  # the main process says what it loads

    @staticmethod
    def key_of(options, kind, device, dtype) -> tuple:
        return (options.model, options.revision, options.processor, options.trust_remote_code, options.allow_pickle,
                kind.kind, str(device), str(dtype), options.image_splitting)

    def get(self, task_name: str, options, kind, device, dtype) -> tuple:
        """``(model, processor, note)``: ``note`` says for run.json whether this task loaded it or reused it."""
        key = self.key_of(options, kind, device, dtype)
        if key == self.key:
            self.say(f"reusing {options.model}, loaded for {self.loaded_for}")
            return self.model, self.processor, f"reused (loaded for {self.loaded_for})"
        self.release()
        self.say(f"loading {options.model}")
        self.model, self.processor = models.load(options.model, kind, device, dtype, options.trust_remote_code,
                                                 options.revision, options.allow_pickle, options.processor)
        self.key, self.loaded_for, self.device = key, task_name, device
        return self.model, self.processor, "loaded"

    def release(self) -> None:
        """Let the model go (and its GPU memory)."""
        loaded_on_cuda = getattr(self.device, "type", None) == "cuda"
        self.key, self.model, self.processor, self.loaded_for, self.device = None, None, None, None, None
        if loaded_on_cuda:
            import torch  # only where a GPU ran: an API run never imports torch

            torch.cuda.empty_cache()


def predict_locally(plan: Plan, todo, store, procs, shared: SharedModel, resumed: bool):
    """The loop's prediction step for a local model: loaded (or shared), its environment recorded, run over
    ``todo``."""
    task, options, device, dtype, run = plan.task, plan.options, plan.device, plan.dtype, plan.run
    out = Path(options.out)
    if procs.is_main:
        log(f"{options.model}: {plan.kind.kind} model ({plan.kind.model_type}) on {device} in {run['dtype']}, "
            f"{len(todo)} {task.unit}s, {procs.count} process(es)")
    model, processor, load_note = shared.get(task.name, options, plan.kind, device, dtype)
    confirm_weights(run, options, out, procs, resumed=resumed)
    batch_size = options.batch_size or task.default_batch_size
    runner = runtime.ChunkedRunner(task.chunk_size(batch_size), log)
    collate, step, applied = task.build_step(model, processor, device, dtype, runner, options)
    if procs.is_main:  # what is known once the model is loaded: its environment, the settings its processor has
        environment = (image_backend(processor) if processor is not None else
                       {"image_processor": "open_clip", **getattr(model, "preprocess_cfg", {})})
        environment["model_load"] = load_note
        if applied:
            environment["processor_settings"] = applied
        outputs.update_record(out, environment, section="environment")
        outputs.update_record(out, task.settings(options, processor), section="settings")
    draft = draft_size(processor.image_processor) if options.fast_decode and processor is not None else None
    workers = runtime.default_workers(procs) if options.num_workers is None else options.num_workers
    return predict(task.samples(plan.dataset, draft), todo, batch_size, collate, step, store, procs, workers,
                   pin_memory=device.type == "cuda", desc=task.name, show_progress=options.progress)
