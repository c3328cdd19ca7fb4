"""Where the Hub folders (``datasets/<name>/``, ``metrics/<name>/``) live, and loading their modules.

The folders are not Python packages of the project: a top-level package named ``datasets`` would shadow the
Hugging Face library. Each is loaded from its path as a package of its own, as the Hub loads them. An editable install reads
them from the repository; a wheel carries them under ``diffbench/_hub/``.

    >>> from diffbench.data.hub_folders import hub_folder
    >>> hub_folder("datasets", "vismin").name
    'vismin'
"""

from __future__ import annotations

import importlib
import importlib.machinery
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


def load_module(kind: str, name: str, module: str | None = None) -> ModuleType:
    """Import ``<kind>/<name>/<module>.py`` (``module`` defaults to ``name``), once per process, thread-safe.

    The folder is imported as a package of its own (``diffbench_hub_<kind>_<name>``), so that a script's
    local imports (``from .vismin_rule import ...``) resolve as they do when ``evaluate``/``datasets`` load
    the folder from the Hub.
    """
    package = f"diffbench_hub_{kind}_{name}"
    qualified = f"{package}.{module or name}"
    with _LOAD_LOCK:
        if qualified in sys.modules:
            return sys.modules[qualified]
        folder = hub_folder(kind, name)
        if package not in sys.modules:
            spec = importlib.machinery.ModuleSpec(package, None, is_package=True)
            spec.submodule_search_locations = [str(folder)]
            sys.modules[package] = importlib.util.module_from_spec(spec)
        return importlib.import_module(qualified)  # a module that fails to run is not left in sys.modules
