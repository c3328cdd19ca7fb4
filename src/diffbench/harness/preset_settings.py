"""A preset (:mod:`diffbench.presets`: one published VisMin row and how the paper ran it) as run options.

The preset table belongs to :mod:`diffbench.presets`; this module only maps a :class:`~diffbench.presets.Preset`
onto :class:`~diffbench.harness.options.RunOptions` fields, and refuses (one line, saying why) a row this
harness cannot run as published.

    >>> settings = preset_settings("llava-1.6-7b")
    >>> settings["image_handling"], settings["max_new_tokens"], settings["dtype"]
    ('combined', 64, 'float16')
    >>> preset_settings("idefics2")["image_splitting"]
    False
"""

from __future__ import annotations


def preset_settings(name: str, task: str = "vismin") -> dict:
    """RunOptions fields for preset ``name`` (an unknown name: a ValueError listing the valid ones)."""
    from diffbench import presets

    preset = presets.get_preset(name)
    if task != "vismin":
        raise ValueError(f"presets are VisMin's published rows; task {task!r} takes --model")
    settings = {"model": preset.model_id, "dtype": preset.dtype}
    if preset.backend == presets.OPENAI_API:
        settings.update(api_base=preset.api_base, api_key_env=preset.api_key_env)
    elif preset.backend == presets.OPEN_CLIP:
        raise ValueError(f"preset {preset.name} ({preset.table_name}) runs through open_clip, which this harness "
                         "does not load; convert the checkpoint with `diffbench convert open-clip` and pass "
                         "--model FOLDER")
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
    if preset.trust_remote_code:
        settings["needs_remote_code"] = True
    return {k: v for k, v in settings.items() if v is not None}
