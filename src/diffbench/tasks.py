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
"""

from __future__ import annotations

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
