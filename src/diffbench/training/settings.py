"""What a training run does: :class:`TrainConfig` (the ``diffbench train`` options) and its checks.

Light on purpose: the CLI imports it to build its parser (no torch, no datasets).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from diffbench.training.pair_batches import parse_data_spec

TINY_CLIP = "tiny-clip"  # --model value: a fresh tiny CLIP (diffbench.models.tiny), trained from scratch
HELD_OUT = "held-out"  # --eval value: a synthetic bench generated for the evaluation (the default)

# What must match for --resume to continue a checkpoint (threads, workers, eval may change).
RUN_FIELDS = ("model", "data", "epochs", "batch_size", "lr", "weight_decay", "warmup", "hard_negatives", "seed",
              "max_steps", "mixed_precision", "tiny_image_size", "tiny_hidden_size", "tiny_layers")


@dataclass
class TrainConfig:
    """What ``diffbench train`` does; saved beside the model in ``training_log.json``."""

    model: str
    data: str = "vismin:pairs"
    out: str = "runs/train"
    epochs: float = 1.0
    batch_size: int = 32  # pairs a batch: 2x this many images and captions
    lr: float | None = None  # default: 5e-4 from scratch (tiny-clip), 1e-5 fine-tuning
    weight_decay: float = 0.05
    warmup: float = 0.05  # fraction of the steps
    hard_negatives: bool = True
    seed: int = 0
    max_steps: int | None = None
    num_workers: int = 0
    mixed_precision: str = "no"
    cpu: bool = False  # accelerate's cpu=True: train on the CPU even when a GPU is there
    eval: str | None = HELD_OUT  # scored after training, written to eval.json; None: no evaluation
    eval_n: int = 400  # samples of the held-out synthetic bench
    tiny_image_size: int = 48  # tiny-clip only: input size, width, depth
    tiny_hidden_size: int = 64
    tiny_layers: int = 3
    threads: int | None = None  # torch CPU threads (default: torch's choice); 1 is best on a busy machine
    resume: bool = False  # continue from OUT/checkpoint (saved at the end of every epoch)
    progress: bool = True  # a tqdm progress bar on stderr
    allow_pickle: bool = False  # load pickle weights (pytorch_model.bin), which can run code: only if trusted

    def validate(self) -> None:
        """Raise ValueError naming the option for a value that cannot work.

        >>> TrainConfig(model="tiny-clip", batch_size=0).validate()
        Traceback (most recent call last):
        ...
        ValueError: --batch-size must be a positive whole number, got 0
        >>> TrainConfig(model="tiny-clip", weight_decay=float("inf")).validate()
        Traceback (most recent call last):
        ...
        ValueError: --weight-decay must be a finite number, 0 or more, got inf
        """
        positive_ints = {"--batch-size": self.batch_size, "--eval-n": self.eval_n,
                         "--tiny-image-size": self.tiny_image_size, "--tiny-hidden-size": self.tiny_hidden_size,
                         "--tiny-layers": self.tiny_layers}
        if self.max_steps is not None:
            positive_ints["--max-steps"] = self.max_steps
        if self.threads is not None:
            positive_ints["--threads"] = self.threads
        for flag, value in positive_ints.items():
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{flag} must be a positive whole number, got {value}")
        if not (self.epochs > 0 and math.isfinite(self.epochs)):
            raise ValueError(f"--epochs must be a positive number, got {self.epochs}")
        if self.lr is not None and not (self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError(f"--lr must be a positive number, got {self.lr}")
        if not 0 <= self.warmup < 1:
            raise ValueError(f"--warmup is a fraction of the steps, from 0 up to (not including) 1, got {self.warmup}")
        if not (self.weight_decay >= 0 and math.isfinite(self.weight_decay)):  # nan fails both comparisons
            raise ValueError(f"--weight-decay must be a finite number, 0 or more, got {self.weight_decay}")
        if self.num_workers < 0:
            raise ValueError(f"--num-workers must not be negative, got {self.num_workers}")
        if self.eval not in (None, HELD_OUT):
            parse_data_spec(self.eval)

    def learning_rate(self) -> float:
        """``lr``, or its default: 5e-4 for a tiny CLIP trained from scratch, 1e-5 for fine-tuning."""
        if self.lr is not None:
            return self.lr
        return 5e-4 if self.model == TINY_CLIP else 1e-5
