"""``diffbench install-metrics [NAMES...]``: make ``evaluate.load(NAME)`` work from any directory.

``evaluate.load("vismin_group_score")`` looks for ``./vismin_group_score/vismin_group_score.py``, then
the Hub, then evaluate's module cache, where a Hub download of ``evaluate-metric/NAME`` would have put
the module:

    <HF_MODULES_CACHE>/evaluate_modules/metrics/evaluate-metric--NAME/<hash>/NAME.py

This command writes each folder under ``metrics/`` there, as evaluate's own importable-file helper
does: the ``__init__.py`` files that make the path importable, the script under the 64-hex hash of its
code (evaluate's ``files_to_hash``), the metadata file beside it, and the card. evaluate takes the most
recently modified hash folder, so the installed one is touched last. Offline (``HF_HUB_OFFLINE=1``) the
bare name then loads without a network call; online it loads after the Hub says it has no such metric.

    diffbench install-metrics                       # every metric folder
    diffbench install-metrics vismin_group_score    # just these
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

NAMESPACE = "evaluate-metric"  # evaluate's canonical metrics, `evaluate-metric/<name>` on the Hub
EXTRA_FILES = ("README.md",)  # copied beside the script when the folder has them


def modules_root() -> Path:
    """``<HF_MODULES_CACHE>/evaluate_modules``, created (with its ``__init__.py``) as evaluate creates it."""
    from evaluate.loading import init_dynamic_modules

    return Path(init_dynamic_modules())


def _local_imports(script: Path) -> list[tuple[str, str]]:
    """(name, path) of the sibling modules a metric script imports, which evaluate copies and hashes."""
    from evaluate.loading import get_imports

    imports = []
    for kind, name, path, _ in get_imports(str(script)):
        if kind == "internal":
            imports.append((name, str(script.parent / f"{path}.py")))
    return imports


def _write_atomically(source: Path, destination: Path) -> None:
    """Copy so that a reader in another process never sees a half-written file."""
    with tempfile.NamedTemporaryFile(dir=destination.parent, delete=False, prefix=f".{destination.name}.") as tmp:
        tmp.write(source.read_bytes())
    os.replace(tmp.name, destination)


def install_metric(name: str) -> Path:
    """Install one ``metrics/<name>/`` folder; returns the installed script's path."""
    from evaluate.loading import files_to_hash
    from filelock import FileLock

    from diffbench.data.hub_folders import hub_folder

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
            _write_atomically(Path(path), hash_dir / f"{import_name}.py")
        for extra in EXTRA_FILES:
            if (folder / extra).is_file():
                _write_atomically(folder / extra, hash_dir / extra)
        meta = {"original file path": str(script), "local file path": str(hash_dir / script.name)}
        (hash_dir / f"{name}.json").write_text(json.dumps(meta), encoding="utf-8")
        installed = hash_dir / script.name
        _write_atomically(script, installed)
        # evaluate picks the newest hash folder by the script's mtime: make this install the newest,
        # also when it reinstalls a version that was there before.
        now = time.time()
        os.utime(installed, (now, now))
    return installed


def install_metrics(names: list[str] | None = None) -> list[Path]:
    """Install the named metric folders (all of them by default); returns the installed scripts."""
    from diffbench.data.hub_folders import available, hub_folder

    names = list(names) if names else available("metrics")
    for name in names:
        hub_folder("metrics", name)  # unknown names fail before anything is written
    return [install_metric(name) for name in names]


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "install-metrics", help="install the metrics/ folders so that evaluate.load(NAME) works anywhere"
    )
    parser.add_argument("names", nargs="*", metavar="NAME", help="metric folders to install (default: all)")
    parser.set_defaults(func=run)


def run(args) -> int:
    for path in install_metrics(args.names):
        name = path.stem
        print(f"{name}: evaluate.load({name!r}) -> {path.parent}")
    return 0
