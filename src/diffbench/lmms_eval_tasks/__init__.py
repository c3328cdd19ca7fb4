"""lmms-eval task folders for VisMin and the five difference-captioning sets, shipped inside the package.

Point lmms-eval at :func:`path` (``--include_path "$(diffbench lmms-eval path)"``, or
``TaskManager(include_path=path())`` in Python) and it finds six tasks, all tagged ``diffbench``:

- ``vismin`` (:mod:`diffbench.lmms_eval_tasks.vismin.utils`): the paper's four questions a sample, read
  by the official lenient parser, scored by the ``vismin_group_score`` metric's own rule;
- ``omnidiff``, ``spot_the_diff``, ``clevr_change``, ``clevr_dc``, ``image_editing_request``
  (:mod:`diffbench.lmms_eval_tasks.captions.utils`): a difference caption a pair, scored once a run with
  diffbench's pycocoevalcap-exact pipeline, per change type and CLEVR-Change's official parts.

The data are the builds of ``diffbench build NAME`` (lmms-eval's ``datasets.load_dataset(dataset_path,
dataset_name)`` by bare name falls back to them, offline with ``HF_HUB_OFFLINE=1``); a YAML of your own
that ``include``\\ s one of these and sets ``dataset_path`` reads a published folder instead.

The YAML files name their functions by absolute module path (``!function
diffbench.lmms_eval_tasks.vismin.utils.doc_to_text``): lmms-eval's ``import_function``
(``lmms_eval/utils.py``) executes a relative ``utils.py`` afresh for every ``!function`` tag, which would
give each metric's aggregation a module of its own; the absolute form imports one module, so the metrics
of a task share one scoring of the run.

    >>> sorted(p.name for p in path().rglob("*.yaml"))[:2]
    ['clevr_change.yaml', 'clevr_dc.yaml']
    >>> TASKS
    ('vismin', 'omnidiff', 'spot_the_diff', 'clevr_change', 'clevr_dc', 'image_editing_request')
"""

from __future__ import annotations

from pathlib import Path

#: the lmms-eval task names this folder defines
TASKS = ("vismin", "omnidiff", "spot_the_diff", "clevr_change", "clevr_dc", "image_editing_request")
#: the tag every task carries (``--tasks diffbench`` runs all six)
TAG = "diffbench"


def path() -> Path:
    """The folder to give lmms-eval's ``--include_path`` (inside the installed package)."""
    return Path(__file__).resolve().parent
