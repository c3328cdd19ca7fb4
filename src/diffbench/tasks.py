"""The evaluation tasks by name (``diffbench eval TASK``, ``diffbench list tasks``), and running one.

VisMin (:mod:`diffbench.vismin.tasks`) and one difference-captioning task a dataset
(:mod:`diffbench.captions.tasks`) on the one run loop (:mod:`diffbench.harness.loop`), which knows no
benchmark: it is handed the task.

    >>> task_names()[:3]
    ['clevr_change', 'clevr_dc', 'image_editing_request']
    >>> get("nope")
    Traceback (most recent call last):
    ...
    diffbench.tasks.UnknownTaskError: unknown task 'nope'; the tasks are clevr_change, clevr_dc, image_editing_request, omnidiff, spot_the_diff, vismin
    >>> resolve(RunOptions(preset="idefics2", out="runs/x")).image_splitting  # VisMin applies its published rows
    False

Several tasks on one loaded model (``diffbench eval --tasks``): :func:`run_tasks`, each task writing
``OUT/<task>/`` (or its own default ``runs/TASK-MODEL`` without ``out``):

    >>> parse_task_list("vismin,omnidiff")
    ['vismin', 'omnidiff']
    >>> [str(o.out) for o in resolve_tasks(["vismin", "omnidiff"], RunOptions(model="m", out="runs/all"))]
    ['runs/all/vismin', 'runs/all/omnidiff']
    >>> [str(o.out) for o in resolve_tasks(["vismin", "omnidiff"], RunOptions(model="m"))]  # as single-task runs
    ['runs/vismin-m', 'runs/omnidiff-m']
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from diffbench.captions.tasks import caption_tasks
from diffbench.harness import loop
from diffbench.harness.options import RunOptions
from diffbench.harness.task import Task
from diffbench.vismin.tasks import VISMIN


class UnknownTaskError(ValueError):
    """No task has this name."""


def registry() -> dict[str, Task]:
    """Task name -> task: ``vismin`` and the difference-captioning sets."""
    return {VISMIN.name: VISMIN, **caption_tasks()}


def task_names() -> list[str]:
    return sorted(registry())


def get(name: str) -> Task:
    tasks = registry()
    if name not in tasks:
        raise UnknownTaskError(f"unknown task {name!r}; the tasks are {', '.join(sorted(tasks))}")
    return tasks[name]


def resolve(options: RunOptions) -> RunOptions:
    """``options`` as the run will use them: its task's knowledge (VisMin's presets) and the defaults."""
    return get(options.task).resolve(options)


def run(options: RunOptions) -> dict:
    """Run ``options.task`` (resolved first); returns the results, written to the resolved ``out``."""
    task = get(options.task)
    return loop.run(task, task.resolve(options))


def parse_task_list(text: str) -> list[str]:
    """``--tasks``' value: task names separated by commas, each known and named once.

    >>> parse_task_list("vismin, vismin")
    Traceback (most recent call last):
    ...
    ValueError: --tasks names vismin twice
    """
    names = [name.strip() for name in text.split(",")]
    if not all(names):
        raise ValueError(f"--tasks takes task names separated by commas (vismin,omnidiff), got {text!r}")
    for name in names:
        get(name)  # an unknown name lists the tasks
        if names.count(name) > 1:
            raise ValueError(f"--tasks names {name} twice")
    return names


def resolve_tasks(names: list[str], options: RunOptions) -> list[RunOptions]:
    """Each task's options, resolved (:func:`resolve`; a preset is refused by a task that has none, before
    anything runs): ``options.out`` is the folder holding one folder a task, ``OUT/<task>/`` (a complete
    single-task run folder: ``diffbench eval TASK --out OUT/TASK`` resumes it); without it each task's
    default, ``runs/TASK-MODEL``, the folder a single-task run of it writes."""
    resolved = []
    for name in names:
        out = Path(options.out) / name if options.out is not None else None
        resolved.append(resolve(dataclasses.replace(options, task=name, out=out, tasks=tuple(names))))
    return resolved


def run_tasks(names: list[str], options: RunOptions) -> dict[str, dict]:
    """Run the tasks ``names`` on one loaded model (:func:`diffbench.harness.loop.run_tasks`: each task's model
    kind, data and folder checked before any runs); returns each task's results by name."""
    runs = [(get(name), task_options) for name, task_options in zip(names, resolve_tasks(names, options))]
    return dict(zip(names, loop.run_tasks(runs)))
