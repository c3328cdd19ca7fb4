"""Installing the ``metrics/`` folders where ``evaluate.load(NAME)`` finds them from any directory.

``evaluate.load("vismin_group_score")`` looks for ``./vismin_group_score/vismin_group_score.py``, then
the Hub, then evaluate's module cache, where a Hub download of ``evaluate-metric/NAME`` would have put
the module:

    <HF_MODULES_CACHE>/evaluate_modules/metrics/evaluate-metric--NAME/<hash>/NAME.py

:func:`install_metrics` writes each folder under ``metrics/`` there, as evaluate's own importable-file helper
does: the ``__init__.py`` files that make the path importable, the script under the 64-hex hash of its
code (evaluate's ``files_to_hash``), the metadata file beside it, and the card. evaluate takes the most
recently modified hash folder, so the installed one is touched last. Offline (``HF_HUB_OFFLINE=1``) the
bare name then loads without a network call; online it loads after the Hub says it has no such metric.

``diffbench install-metrics [NAMES...]`` runs it; ``make demo`` does too.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from diffbench.data.hub_folders import available, hub_folder
from diffbench.files import write_atomically

NAMESPACE = "evaluate-metric"  # evaluate's canonical metrics, `evaluate-metric/<name>` on the Hub
EXTRA_FILES = ("README.md",)  # copied beside the script when the folder has them


def modules_root() -> Path:
    """``<HF_MODULES_CACHE>/evaluate_modules``, created (with its ``__init__.py``) as evaluate creates it."""
    from evaluate.loading import init_dynamic_modules  # deferred: see install_metric

    return Path(init_dynamic_modules())


def _local_imports(script: Path) -> list[tuple[str, str]]:
    """(name, path) of the sibling modules a metric script imports, which evaluate copies and hashes."""
    from evaluate.loading import get_imports  # deferred: see install_metric

    imports = []
    for kind, name, path, _ in get_imports(str(script)):
        if kind == "internal":
            imports.append((name, str(script.parent / f"{path}.py")))
    return imports


def install_metric(name: str) -> Path:
    """Install one ``metrics/<name>/`` folder; returns the installed script's path."""
    from evaluate.loading import files_to_hash  # deferred: evaluate imports datasets (seconds)
    from filelock import FileLock

    folder = hub_folder("metrics", name)
    script = folder / f"{name}.py"
    local_imports = _local_imports(script)
    digest = files_to_hash([str(script)] + [path for _, path in local_imports])
    metrics_dir = modules_root() / "metrics"
    module_dir = metrics_dir / f"{NAMESPACE}--{name}"
    hash_dir = module_dir / digest
    # The lock evaluate itself takes around this folder.
    with FileLock(str(module_dir) + ".lock"):
        hash_dir.mkdir(parents=True, exist_ok=True)
        for package in (metrics_dir, module_dir, hash_dir):
            (package / "__init__.py").touch(exist_ok=True)
        for import_name, path in local_imports:
            write_atomically(hash_dir / f"{import_name}.py", Path(path).read_bytes())
        for extra in EXTRA_FILES:
            if (folder / extra).is_file():
                write_atomically(hash_dir / extra, (folder / extra).read_bytes())
        meta = {"original file path": str(script), "local file path": str(hash_dir / script.name)}
        (hash_dir / f"{name}.json").write_text(json.dumps(meta), encoding="utf-8")
        installed = hash_dir / script.name
        write_atomically(installed, script.read_bytes())
        # evaluate picks the newest hash folder by the script's mtime: make this install the newest,
        # also when it reinstalls a version that was there before.
        now = time.time()
        os.utime(installed, (now, now))
    return installed


def install_metrics(names: list[str] | None = None) -> list[Path]:
    """Install the named metric folders (all of them by default); returns the installed scripts."""
    names = list(names) if names else available("metrics")
    for name in names:
        hub_folder("metrics", name)  # unknown names fail before anything is written
    return [install_metric(name) for name in names]
