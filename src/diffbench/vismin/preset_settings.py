"""A preset (:mod:`diffbench.vismin.presets`: one published VisMin row and how the paper ran it) as run options.

The preset table belongs to :mod:`diffbench.vismin.presets`; this module only maps a :class:`~diffbench.vismin.presets.Preset`
onto :class:`~diffbench.harness.options.RunOptions` fields, and refuses (one line, saying why) a row this
harness cannot run as published.

    >>> settings = preset_settings("llava-1.6-7b")
    >>> settings["image_handling"], settings["max_new_tokens"], settings["dtype"]
    ('combined', 64, 'float16')
    >>> preset_settings("idefics2")["image_splitting"]
    False
    >>> preset_settings("coca")["model"]
    'open_clip:coca_ViT-L-14@laion2b_s13b_b90k'

:func:`apply_preset` is what :class:`~diffbench.harness.options.RunOptions` calls when it is made with a
``preset``: the CLI (``--preset``) and the Python API go through the same merge.
"""

from __future__ import annotations


def open_clip_spec(preset) -> str:
    """What ``open_clip.create_model_and_transforms`` takes for the row: ``NAME@TAG``, or ``NAME@FILE`` with
    the checkpoint file fetched from the Hub (``weights_repo`` / ``weights_file``)."""
    if preset.open_clip_pretrained:
        return f"{preset.model_id}@{preset.open_clip_pretrained}"
    if preset.weights_repo:
        from huggingface_hub import hf_hub_download

        try:
            path = hf_hub_download(preset.weights_repo, preset.weights_file)
        except Exception as err:  # noqa: BLE001 - offline, gated, missing: one line naming the file
            raise ValueError(f"preset {preset.name}: cannot fetch {preset.weights_repo}/{preset.weights_file} "
                             f"({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''})") from None
        return f"{preset.model_id}@{path}"
    return preset.model_id


def preset_settings(name: str, task: str = "vismin", with_model: bool = True) -> dict:
    """RunOptions fields for preset ``name`` (an unknown name: a ValueError listing the valid ones).
    ``with_model=False`` leaves ``model`` out: a row's open_clip checkpoint is then not downloaded."""
    from diffbench.vismin import presets
    from diffbench.harness.models import OPEN_CLIP_PREFIX

    preset = presets.get_preset(name)
    if task != "vismin":
        raise ValueError(f"presets are VisMin's published rows; task {task!r} takes --model")
    settings = {"model": preset.model_id if with_model else None, "dtype": preset.dtype}
    if preset.backend == presets.OPENAI_API:
        settings.update(api_base=preset.api_base, api_key_env=preset.api_key_env)
    elif preset.backend == presets.OPEN_CLIP and with_model:
        settings["model"] = OPEN_CLIP_PREFIX + open_clip_spec(preset)
    if preset.answer:
        settings.update(answer=preset.answer, max_new_tokens=preset.max_new_tokens,
                        image_handling=preset.image_handling, prompt_template=preset.prompt_template)
        kwargs = dict(preset.processor_kwargs)
        if "do_image_splitting" in kwargs:
            settings["image_splitting"] = bool(kwargs.pop("do_image_splitting"))
        if preset.processor_id:
            settings["processor"] = preset.processor_id
        if kwargs:
            raise ValueError(f"preset {preset.name}: processor settings {sorted(kwargs)} are not supported")
    if preset.needs_remote_code:
        settings["needs_remote_code"] = True
    return {k: v for k, v in settings.items() if v is not None}


#: the options a preset may set (each only where the options leave it unset, ``None``)
PRESET_FIELDS = ("model", "revision", "processor", "dtype", "answer", "max_new_tokens", "image_handling",
                 "image_splitting", "prompt_template", "api_base", "api_key_env")


def apply_preset(options) -> None:
    """Fill ``options``' unset fields from its preset's settings (given values win); a row that runs the
    model repository's code is refused unless ``trust_remote_code``."""
    # a model the user gave wins: the row's own (an open_clip checkpoint: a download) is not fetched
    settings = preset_settings(options.preset, options.task, with_model=options.model is None)
    if settings.pop("needs_remote_code", False) and not options.trust_remote_code:
        raise ValueError(f"preset {options.preset} runs code from the model's repository; pass --trust-remote-code "
                         "(trust_remote_code=True) if you trust it")
    for name in PRESET_FIELDS:
        if getattr(options, name) is None and settings.get(name) is not None:
            setattr(options, name, settings[name])
