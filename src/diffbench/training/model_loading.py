"""The model a run starts from: checked before any work, a fresh tiny CLIP or the one asked for, loaded in float32.

The checks are the harness's (:mod:`diffbench.harness.models`, the ones ``diffbench eval`` makes): a
``--model`` that cannot train is refused in one line before the first step.
"""

from __future__ import annotations

from pathlib import Path

from diffbench.harness import models
from diffbench.models import tiny as tiny_models
from diffbench.training.settings import TINY_CLIP, TrainConfig


class quiet_transformers:
    """No load/save progress bars and no "requires torchvision" fallback notice while training: the run's
    own progress bar is the one line that moves (torchvision cannot load beside the CPU torch build; the
    PIL image processor is what runs, and is asked for explicitly)."""

    def __enter__(self):
        from transformers.utils import logging as hf_logging  # deferred: the CLI's start-up imports this module

        self.bars, self.verbosity = hf_logging.is_progress_bar_enabled(), hf_logging.get_verbosity()
        hf_logging.disable_progress_bar()
        hf_logging.set_verbosity_error()
        return self

    def __exit__(self, *exc):
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity(self.verbosity)
        if self.bars:
            hf_logging.enable_progress_bar()


def _processor_kwargs() -> dict:
    from transformers.utils import is_torchvision_available  # deferred, as in quiet_transformers

    return {} if is_torchvision_available() else {"backend": "pil"}


def hub_model_missing(model_id: str, err: BaseException) -> str:
    """One line for a ``--model`` that is no local folder, is not in the local Hub cache, and could not be
    downloaded now (offline, or the Hub unreachable or without that repo), with what to do."""
    from huggingface_hub import constants  # deferred: the CLI's start-up imports this module

    why = ("the Hub is off (HF_HUB_OFFLINE is set)" if constants.HF_HUB_OFFLINE
           else f"the Hub did not provide it ({str(err).splitlines()[0] if str(err) else type(err).__name__})")
    return (f"{model_id}: no such local folder, and not in the local Hub cache ({constants.HF_HUB_CACHE}); {why}; "
            f"download it where the network is reachable (hf download {model_id}), or pass --model a local model folder")


def check_model(model_id: str, allow_pickle: bool = False) -> None:
    """Refuse, before any work, a ``--model`` that cannot train: no such folder, a Hub model neither cached
    nor downloadable, not a contrastive model, corrupt or (unless allowed) pickle-only weights."""
    if model_id == TINY_CLIP:
        return
    try:
        kind = models.detect_kind(model_id)
    except FileNotFoundError as err:  # not a folder, and AutoConfig found nothing in the cache or on the Hub
        raise models.ModelLoadError(hub_model_missing(model_id, err)) from None
    if kind.kind != models.CONTRASTIVE:
        raise models.ModelKindError(f"{model_id} is an {kind.kind} model ({kind.model_type}); "
                                    "training needs a contrastive (CLIP-like) model")
    models.check_loadable(model_id, allow_pickle)


def init_model(config: TrainConfig, dataset, scratch: Path) -> str:
    """The model path to load: ``config.model``, or a fresh tiny CLIP over the training captions' words,
    saved under ``scratch``."""
    if config.model != TINY_CLIP:
        return config.model
    words = tiny_models.words_of(list(dataset["text_0"]) + list(dataset["text_1"]))
    return str(tiny_models.build_tiny_clip(
        scratch, words=words, seed=config.seed, image_size=config.tiny_image_size,
        hidden_size=config.tiny_hidden_size, layers=config.tiny_layers, projection_dim=config.tiny_hidden_size,
    ))


def load_model(path: str, allow_pickle: bool):
    """``(model, processor)`` in float32 (what AdamW keeps; ``--mixed-precision`` is accelerate's autocast)."""
    import torch  # deferred: the CLI imports the training modules to start up, torch only to train
    from transformers import AutoModel, AutoProcessor

    try:
        model = AutoModel.from_pretrained(path, dtype=torch.float32, use_safetensors=None if allow_pickle else True)
        processor = AutoProcessor.from_pretrained(path, **_processor_kwargs())
    except OSError as err:
        if err.errno is not None:  # the machine refused (disk, permissions): the CLI says so
            raise
        # config cached but a weight or tokenizer file not (offline), no safetensors (no --allow-pickle), ...
        raise models.ModelLoadError(f"{path}: cannot load the model ({str(err).splitlines()[0]})") from None
    return model, processor
