"""What one ``diffbench eval`` run is asked to do: the options every task shares.

A task reads the fields that concern it (a contrastive model ignores ``answer``; VisMin ignores
``prompt``). ``None`` means "the task's default" (for example ``max_new_tokens``: 128 for VisMin's
answers and for captions, as ``evals/mllm_inference.py`` asks for) and is resolved into the run record
(``run.json``), so a run says what it actually did.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

ANSWER_MODES = ("generate", "likelihood")
IMAGE_HANDLING = ("separate", "combined")
DTYPES = ("auto", "float32", "float16", "bfloat16")


@dataclass
class RunOptions:
    model: str
    out: Path
    task: str = "vismin"
    config: str | None = None  # the dataset configuration (None: the task's default)
    split: str = "test"
    data_files: list | None = None  # parquet files or a save_to_disk folder instead of the built dataset
    limit: int | None = None
    # where and how the model runs
    batch_size: int | None = None
    device: str = "auto"
    dtype: str = "auto"  # auto: float32 for contrastive models (as the official code); chat: bf16 on CUDA
    num_workers: int | None = None
    fast_decode: bool = False
    trust_remote_code: bool = False
    allow_pickle: bool = False  # load .bin/.pt weights (pickle) when a checkpoint has no safetensors
    revision: str | None = None
    processor: str | None = None  # load the processor from here instead of ``model`` (a fine-tune's base)
    # an OpenAI-compatible chat API instead of a local model (diffbench.backends.openai_chat)
    api_base: str | None = None
    api_key_env: str = "OPENAI_API_KEY"
    concurrency: int = 4
    # chat models (VisMin's questions, difference captions)
    answer: str = "generate"
    max_new_tokens: int | None = None
    prompt: str | None = None  # the difference-captioning instruction
    prompt_template: str | None = None  # raw prompt instead of the chat template: {images} and {question}
    image_handling: str | None = None  # separate (default) or combined (both images pasted side by side)
    image_splitting: bool | None = None  # the processor's do_image_splitting (None: off where it exists)
    # the run itself
    overwrite: bool = False
    progress: bool = True
    preset: str | None = None  # recorded: the preset these settings came from
    extra: dict = field(default_factory=dict)  # anything a backend adds to the run record

    def __post_init__(self):
        self.out = Path(self.out)
        if self.answer not in ANSWER_MODES:
            raise ValueError(f"answer must be one of {', '.join(ANSWER_MODES)}, got {self.answer!r}")
        if self.image_handling is not None and self.image_handling not in IMAGE_HANDLING:
            raise ValueError(f"image handling must be one of {', '.join(IMAGE_HANDLING)}, got {self.image_handling!r}")
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, got {self.dtype!r}")
        for name in ("limit", "batch_size", "max_new_tokens"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name.replace('_', '-')} must be at least 1, got {value}")
