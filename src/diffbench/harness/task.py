"""Tasks: what a benchmark asks of a model, declared once; :mod:`~diffbench.harness.loop` runs any of them.

A task names its dataset and the model kinds it takes, loads and checks its rows, names the column
``--limit`` stratifies by, declares its protocol (prompts, generation settings, dtype: written to
``run.json``), builds the collate function and the model step for the DataLoader, and turns the gathered
predictions into its submission file, scores and report. Resume, the ``--limit`` draw
(:mod:`~diffbench.harness.draws`), devices, processes, batching, out-of-memory back-off, bad images and
progress belong to the loop. A new benchmark is a new :class:`Task`, not a new loop.

The tasks themselves live with their benchmarks (:mod:`diffbench.vismin.tasks`,
:mod:`diffbench.captions.tasks`); :mod:`diffbench.tasks` names them. The harness knows none of them.
"""

from __future__ import annotations

from pathlib import Path

from diffbench.data import building
from diffbench.harness import runtime
from diffbench.harness.data import load_rows
from diffbench.harness.models import ModelKindError
from diffbench.harness.options import RunOptions, with_defaults


class Task:
    """The base of every task. Subclasses set the class attributes and override the hooks."""

    name: str = ""
    dataset: str = ""  # the dataset it reads (``diffbench build <dataset>``)
    summary: str = ""
    kinds: tuple[str, ...] = ()  # the model kinds it takes (harness.models.CONTRASTIVE, IMAGE_TEXT_TO_TEXT)
    default_config: str | None = None
    predictions_file: str = ""
    unit: str = "sample"  # what a row is called in messages
    strata_column: str | None = None  # --limit draws stratified by this column (None: one stratum)
    default_batch_size: int = 8

    def resolve(self, options: RunOptions) -> RunOptions:
        """``options`` with what the task knows filled in, then the defaults (:func:`with_defaults`); a task
        that knows presets applies them here (VisMin's published rows)."""
        if options.preset:
            raise ValueError(f"presets are VisMin's published rows; task {self.name!r} takes --model")
        return with_defaults(options)

    def for_kind(self, kind) -> Task:
        """The task that runs a model of this kind (a family such as VisMin has one per kind)."""
        if kind.kind not in self.kinds:
            raise ModelKindError(f"{self.name} takes {' or '.join(self.kinds)} models; this one is a "
                                 f"{kind.kind} model ({kind.model_type})")
        return self

    # -- data --------------------------------------------------------------------------------------
    def load(self, options):
        """Every row of the split, checked (the loop draws ``options.limit`` of them: the fingerprint a
        resumed run compares is the whole split's, so that runs of other limits extend one another)."""
        configs = building.config_names(self.dataset)
        if not options.data_files and options.config and options.config not in configs:
            raise ValueError(f"{self.dataset} has no configuration {options.config!r}; its configurations are "
                             f"{', '.join(configs)}")
        return load_rows(self.dataset, options.config or self.default_config, options.split, options.data_files)

    def samples(self, dataset, draft):
        """The torch dataset the DataLoader reads (decoded images, texts)."""
        raise NotImplementedError

    # -- the model ---------------------------------------------------------------------------------
    def auto_dtype(self, device, kind) -> tuple[str, str, str | None]:
        """``(dtype, source, why)`` for ``--dtype auto`` (see :func:`~diffbench.harness.runtime.config_dtype`):
        here bfloat16 (else float16) on CUDA, float32 elsewhere, by default."""
        name = str(runtime.pick_dtype("auto", device)).removeprefix("torch.")
        return name, runtime.FROM_DEFAULT, None

    def settings(self, options, processor=None) -> dict:
        """Settings besides the dtype that run.json's ``settings`` records with where each came from
        (``{name: {"value": ..., "from": ...}}``); ``processor``: the loaded one (None: not loaded yet)."""
        return {}

    def protocol(self, options, kind=None) -> dict:
        """What defines the predictions besides the model and the data (recorded, checked on resume);
        ``kind``: the model's :class:`~diffbench.harness.models.ModelKind`."""
        return {}

    def chunk_size(self, batch_size: int) -> int:
        """Sequences a model call takes at most (the out-of-memory back-off halves it)."""
        return batch_size

    def build_step(self, model, processor, device, dtype, runner, options):
        """``(collate, step, applied)``: the collate runs in DataLoader workers; ``step(batch)`` returns
        ``[(row index, record), ...]`` with ``record["id"]`` the sample id; ``applied``: the processor settings
        the task set (recorded in run.json's environment; ``{}`` for none)."""
        raise NotImplementedError

    # -- outputs -----------------------------------------------------------------------------------
    def finished(self, out: Path, ids: list) -> dict:
        """Records from a complete predictions file of an earlier run (``{}`` when there is none)."""
        return {}

    def write_predictions(self, out: Path, records: list[dict]) -> None:
        raise NotImplementedError

    def report(self, out: Path, dataset, records: list[dict], run: dict, options) -> dict:
        """Score, write results.json / results.md / the figure; returns the results."""
        raise NotImplementedError
