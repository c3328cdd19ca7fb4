"""Which optional extra of diffbench provides a missing module, and the one-line message that says so.

The core install (``pip install diffbench``) builds the datasets, loads both metrics, scores submission
files and publishes; models, training, the Space and the API backend need extras (``pyproject.toml``).
A command that imports one of those modules without its extra ends with this message, not a traceback:

    >>> err = ModuleNotFoundError("No module named 'torch'", name="torch")
    >>> missing_extra_message(err, "eval")
    "`diffbench eval` needs the [eval] extra: pip install 'diffbench[eval]'"
    >>> missing_extra_message(ModuleNotFoundError("No module named 'gradio.themes'", name="gradio.themes"), "space")
    "`diffbench space` needs the [space] extra: pip install 'diffbench[space]'"
    >>> missing_extra_message(err, "train")  # [train] is [eval] today, named after what the user runs
    "`diffbench train` needs the [train] extra: pip install 'diffbench[train]'"
    >>> missing_extra_message(ModuleNotFoundError("No module named 'yaml'", name="yaml"), "build") is None
    True
"""

from __future__ import annotations

#: a command whose own extra includes [eval]: named instead of [eval] when torch or transformers is missing
EXTRA_OF_COMMAND = {"train": "train"}
#: top-level module -> the extra that installs it
EXTRA_OF_MODULE = {
    "torch": "eval",
    "transformers": "eval",
    "accelerate": "eval",
    "safetensors": "eval",
    "gradio": "space",
    "gradio_client": "space",
    "open_clip": "openclip",
    "torchvision": "openclip",
    "httpx": "api",
    "openai": "api",
}


def extra_for(module: str | None) -> str | None:
    """The extra that provides ``module`` (dotted names count by their top-level package), or ``None``.

    >>> extra_for("transformers.models.clip"), extra_for("numpy")
    ('eval', None)
    """
    if not module:
        return None
    return EXTRA_OF_MODULE.get(module.split(".")[0])


def missing_extra_message(error: ModuleNotFoundError, command: str | None = None) -> str | None:
    """The message for a missing optional dependency, or ``None`` when ``error`` is about something else.

    ``command``: the sub-command that failed (``"eval"``, ``"train"``, ...), named in the message.
    """
    extra = extra_for(getattr(error, "name", None))
    if extra is None:
        return None
    if extra == "eval":
        extra = EXTRA_OF_COMMAND.get(command, extra)
    what = f"`diffbench {command}`" if command else "this feature"
    return f"{what} needs the [{extra}] extra: pip install 'diffbench[{extra}]'"
