"""Where the Hub folders (``datasets/<name>/``, ``metrics/<name>/``) live, and loading their modules.

The folders are not Python packages: a top-level package named ``datasets`` would shadow the
Hugging Face library. They are loaded by file path, as the Hub loads them. An editable install reads
them from the repository; a wheel carries them under ``diffbench/_hub/``.

    >>> from diffbench.data.hub_folders import hub_folder
    >>> hub_folder("datasets", "vismin").name
    'vismin'
"""

from __future__ import annotations

import importlib.util
import sys
import threading
from pathlib import Path
from types import ModuleType

_PACKAGE_DIR = Path(__file__).resolve().parent.parent  # the diffbench package
_CANDIDATE_ROOTS = (_PACKAGE_DIR / "_hub", _PACKAGE_DIR.parent.parent)  # wheel, then repository
# A module is in sys.modules before its code has run; without the lock another thread (the Space
# serves requests on several) could take it half-executed.
_LOAD_LOCK = threading.RLock()


def hub_root(kind: str) -> Path:
    """The directory holding every folder of one kind (``"datasets"`` or ``"metrics"``)."""
    if kind not in ("datasets", "metrics"):
        raise ValueError(f"kind must be 'datasets' or 'metrics', got {kind!r}")
    for root in _CANDIDATE_ROOTS:
        if (root / kind).is_dir():
            return root / kind
    raise FileNotFoundError(
        f"diffbench's {kind}/ folder is missing from {[str(r) for r in _CANDIDATE_ROOTS]}: reinstall the package"
    )


def available(kind: str) -> list[str]:
    """Names of the folders of one kind, each holding a ``<name>.py`` module."""
    root = hub_root(kind)
    return sorted(p.name for p in root.iterdir() if (p / f"{p.name}.py").is_file())


def hub_folder(kind: str, name: str) -> Path:
    """The folder of one dataset or metric; a clear error naming the known ones otherwise."""
    folder = hub_root(kind) / name
    if not (folder / f"{name}.py").is_file():
        raise ValueError(f"unknown {kind[:-1]} {name!r}; known: {', '.join(available(kind)) or 'none'}")
    return folder


def load_module(kind: str, name: str) -> ModuleType:
    """Import ``<kind>/<name>/<name>.py`` by file path (once per process; thread-safe)."""
    module_name = f"diffbench_hub_{kind}_{name}"
    with _LOAD_LOCK:
        if module_name in sys.modules:
            return sys.modules[module_name]
        path = hub_folder(kind, name) / f"{name}.py"
        spec = importlib.util.spec_from_file_location(module_name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        try:
            spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[module_name]
            raise
        return module
