"""What one ``diffbench eval`` run is asked to do: the options every task shares.

A task reads the fields that concern it (a contrastive model ignores ``answer``; VisMin ignores
``prompt``). ``None`` means "the task's default" (for example ``max_new_tokens``: 128 for VisMin's
answers and for captions, as ``evals/mllm_inference.py`` asks for) and is resolved into the run record
(``run.json``), so a run says what it actually did.

Making the options checks what was given; :func:`with_defaults` fills what was left unset (the embedded
default model, ``runs/TASK-MODEL``, ``auto`` dtype, ``generate``). A task may fill fields first from what
it knows: VisMin's published rows (``preset``) are applied by :mod:`diffbench.vismin.presets`, through
``Task.resolve`` (``diffbench.tasks.resolve`` for the CLI and the Python API alike).

    >>> options = with_defaults(RunOptions(model="m"))
    >>> options.out, options.dtype, options.answer
    (PosixPath('runs/vismin-m'), 'auto', 'generate')
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from diffbench.backends.api_access import check_base_url
from diffbench.harness.runtime import FROM_CONFIG_FILE, FROM_OPTION, FROM_PRESET
from diffbench.models.embedded import DEFAULT_MODEL_NAME, default_model_path
from diffbench.report.layout import DEFAULT_RESAMPLES, DEFAULT_SEED

ANSWER_MODES = ("generate", "likelihood")
IMAGE_HANDLING = ("separate", "combined")
DTYPES = ("auto", "float32", "float16", "bfloat16")


def default_out(task: str, model: str) -> Path:
    """``runs/TASK-MODEL`` (the model's last path part), where a run writes when no ``out`` is given."""
    return Path("runs") / f"{task}-{Path(model.rstrip('/')).name or 'model'}"


@dataclass
class RunOptions:
    model: str | None = None  # None: the preset's model, else the embedded tiny CLIP (diffbench-tiny-clip)
    out: Path | None = None  # None: runs/TASK-MODEL
    task: str = "vismin"
    config: str | None = None  # the dataset configuration (None: the task's default)
    split: str = "test"
    data_files: list | None = None  # parquet files or a save_to_disk folder instead of the built dataset
    limit: int | float | None = None  # N samples, or a fraction in (0, 1): a stratified, nested draw (harness.draws)
    # where and how the model runs
    batch_size: int | None = None
    device: str = "auto"
    dtype: str | None = None  # None: the preset's, else auto. auto: float32 for contrastive models (as the official code); chat: the model config's
    num_workers: int | None = None
    fast_decode: bool = False
    trust_remote_code: bool = False
    allow_pickle: bool = False  # load .bin/.pt weights (pickle) when a checkpoint has no safetensors
    revision: str | None = None
    processor: str | None = None  # load the processor from here instead of ``model`` (a fine-tune's base)
    # an OpenAI-compatible chat API instead of a local model (diffbench.backends.openai_chat)
    api_base: str | None = None
    api_key_env: str | None = None  # None: the preset's, else OPENAI_API_KEY
    concurrency: int = 4
    # chat models (VisMin's questions, difference captions)
    answer: str | None = None  # None: the preset's, else generate
    max_new_tokens: int | None = None
    prompt: str | None = None  # the difference-captioning instruction
    prompt_template: str | None = None  # raw prompt instead of the chat template: {images} and {question}
    image_handling: str | None = None  # separate (default) or combined (both images pasted side by side)
    image_splitting: bool | None = None  # the processor's do_image_splitting (None: as the processor says)
    # the report
    resamples: int = DEFAULT_RESAMPLES  # the bootstrap's resamples for the 95% intervals
    seed: int = DEFAULT_SEED  # and its seed: the same predictions always give the same interval
    # the run itself
    overwrite: bool = False
    progress: bool = True
    preset: str | None = None  # a published row: its settings fill the fields left None (and it is recorded)
    from_preset: tuple[str, ...] = ()  # the fields the preset filled (run.json says where each setting came from)
    # where the options came from, recorded in run.json's invocation (diffbench eval --config, --tasks)
    config_file: dict | None = None  # {"path", "sha256"} of the YAML file that set some of them
    from_config_file: tuple[str, ...] = ()  # the fields that file set (the command line overrode the rest)
    tasks: tuple[str, ...] = ()  # every task of the call that ran this one (--tasks a,b), in order

    def __post_init__(self):
        if self.api_base and not self.model and not self.preset:
            raise ValueError("--api-base needs --model: the model name the API serves")
        if self.api_base:
            check_base_url(self.api_base, "--api-base")  # http(s)://host, before the data is loaded
        if self.answer is not None and self.answer not in ANSWER_MODES:
            raise ValueError(f"answer must be one of {', '.join(ANSWER_MODES)}, got {self.answer!r}")
        if self.image_handling is not None and self.image_handling not in IMAGE_HANDLING:
            raise ValueError(f"image handling must be one of {', '.join(IMAGE_HANDLING)}, got {self.image_handling!r}")
        if self.dtype is not None and self.dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, got {self.dtype!r}")
        check_limit(self.limit)
        for name in ("batch_size", "max_new_tokens", "resamples"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name.replace('_', '-')} must be at least 1, got {value}")


def source_of(options: RunOptions, name: str) -> str:
    """Where a given field's value came from: ``preset`` (filled by the preset), ``config file`` (set by
    ``--config``'s YAML file) or ``option`` (given).

    >>> from_file = RunOptions(dtype="float16", from_config_file=("dtype",))
    >>> source_of(RunOptions(dtype="float16"), "dtype"), source_of(from_file, "dtype")
    ('option', 'config file')
    """
    if name in options.from_preset:
        return FROM_PRESET
    return FROM_CONFIG_FILE if name in options.from_config_file else FROM_OPTION


LIMIT_EXPECTED = "a number of samples (20) or a fraction of them between 0 and 1 (0.1)"


def check_limit(limit) -> None:
    """``limit`` is ``None``, a whole number of samples (at least 1) or a fraction in (0, 1)."""
    if limit is None:
        return
    whole = isinstance(limit, int) and not isinstance(limit, bool)
    if whole and limit >= 1 or isinstance(limit, float) and 0 < limit < 1:
        return
    raise ValueError(f"limit must be {LIMIT_EXPECTED}, got {limit!r}")


def parse_limit(text: str) -> int | float:
    """``--limit``'s value: ``20`` (samples) or ``0.1`` (a fraction of them).

    >>> parse_limit("20"), parse_limit("0.1")
    (20, 0.1)
    >>> parse_limit("1.5")
    Traceback (most recent call last):
    ...
    ValueError: limit must be a number of samples (20) or a fraction of them between 0 and 1 (0.1), got 1.5
    """
    try:
        value = int(text)
    except ValueError:
        try:
            value = float(text)
        except ValueError:
            raise ValueError(f"limit must be {LIMIT_EXPECTED}, got {text!r}") from None
    check_limit(value)
    return value


def with_defaults(options: RunOptions) -> RunOptions:
    """A copy of ``options`` with what was left unset filled: the embedded default model (named
    ``diffbench-tiny-clip`` in the default ``out``), ``runs/TASK-MODEL``, dtype ``auto``, answer
    ``generate``, the key in ``OPENAI_API_KEY``."""
    model, named = options.model, options.model
    if options.api_base and not model:
        raise ValueError("--api-base needs --model: the model name the API serves")
    if model is None:
        model, named = str(default_model_path()), DEFAULT_MODEL_NAME
    return dataclasses.replace(
        options, model=model, out=Path(options.out) if options.out is not None else default_out(options.task, named),
        dtype=options.dtype or "auto", answer=options.answer or "generate",
        api_key_env=options.api_key_env or "OPENAI_API_KEY")
