"""The run record: what ``run.json`` and ``results.json`` say about where a result came from.

- :func:`weights_fingerprint`: the model revision (a Hub checkpoint: the commit of the cached snapshot)
  or a hash of the weight files (a local folder, an open_clip ``local-dir:`` or checkpoint file; the
  digests cached by path, size and mtime), so that a resumed run notices new weights.
- :func:`dataset_fingerprint`: a hash of the rows' build (the Arrow files' names, sizes and modification
  times, the build's provenance, the row count and columns), so that a resumed run notices a rebuild.
- :func:`environment`: package versions, the date, the Python version.

    >>> sorted(environment())
    ['date', 'packages', 'python']
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

from diffbench.data.provenance import of_dataset
from diffbench.files import sha256

PACKAGES = ("diffbench", "torch", "transformers", "datasets", "evaluate", "accelerate", "tokenizers",
            "safetensors", "pillow", "numpy", "open_clip_torch", "torchvision")
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".gguf")


def package_versions() -> dict[str, str]:
    """Installed versions of the packages a result depends on (absent ones left out)."""
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def environment() -> dict:
    return {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "python": platform.python_version(),
            "packages": package_versions()}


def digest_cache_path() -> Path:
    """Where file digests are kept between runs: ``$XDG_CACHE_HOME/diffbench/weights-sha256.json``."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "diffbench" / "weights-sha256.json"


class DigestCache:
    """sha256 digests of weight files, reused while a file's (resolved path, size, mtime_ns) stay the same:
    a resumed run of an 8B model does not read its 16 GB again. A file rewritten in place gets a new mtime,
    hence a new digest. An unreadable or unwritable cache only costs the hashing."""

    def __init__(self, path: Path | None = None):
        self.path = path or digest_cache_path()
        try:
            self.entries = json.loads(self.path.read_text(encoding="utf-8"))
            if not isinstance(self.entries, dict):
                self.entries = {}
        except (OSError, ValueError):
            self.entries = {}
        self.changed = False

    def sha256(self, file: Path) -> str:
        stat = file.stat()
        key = str(file.resolve())
        entry = self.entries.get(key)
        if isinstance(entry, dict) and entry.get("size") == stat.st_size and entry.get("mtime_ns") == stat.st_mtime_ns:
            return entry["sha256"]
        digest = sha256(file)
        self.entries[key] = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": digest}
        self.changed = True
        return digest

    def save(self) -> None:
        if not self.changed:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_name(f"{self.path.name}.{os.getpid()}.tmp")
            tmp.write_text(json.dumps(self.entries, indent=0, sort_keys=True), encoding="utf-8")
            tmp.replace(self.path)
        except OSError:
            pass


def folder_fingerprint(path: Path, cache: DigestCache | None = None) -> dict:
    """The weight files under ``path`` (or the one file ``path``), hashed by content (digests cached)."""
    cache = cache or DigestCache()
    files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in WEIGHT_SUFFIXES) if path.is_dir() else [path]
    digest = hashlib.sha256()
    for file in files:
        name = file.relative_to(path).as_posix() if path.is_dir() else file.name
        digest.update(f"{name}\0{cache.sha256(file)}\n".encode())
    cache.save()
    return {"files": len(files), "sha256": digest.hexdigest()}


def open_clip_fingerprint(spec: str) -> dict:
    """An open_clip spec, and the weights behind it when they are local: ``local-dir:PATH``'s folder or
    ``NAME@FILE``'s checkpoint file (a pretrained tag or ``hf-hub:`` is named by the spec alone)."""
    fingerprint = {"source": "open_clip", "spec": spec}
    local = None
    if spec.startswith("local-dir:"):
        local = Path(spec.removeprefix("local-dir:")).expanduser()
    elif "@" in spec and not spec.startswith("hf-hub:"):
        local = Path(spec.partition("@")[2]).expanduser()
    if local is not None and (local.is_dir() or local.is_file()):
        fingerprint.update(folder_fingerprint(local))
    elif spec.startswith("hf-hub:"):  # the commit of the cached snapshot, as a transformers Hub model
        fingerprint["revision"] = hub_commit(spec.removeprefix("hf-hub:").partition("@")[0], "open_clip_config.json")
    return fingerprint


def hub_commit(repo: str, filename: str = "config.json", revision: str | None = None) -> str | None:
    """The commit of the Hub cache's snapshot of ``repo`` holding ``filename`` (None: not cached)."""
    try:
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(repo, filename, revision=revision)
    except Exception:  # noqa: BLE001 - a fingerprint is best effort for remote ids; the revision still says
        return None
    return Path(cached).parent.name if isinstance(cached, str) else None  # .../snapshots/<commit>/<file>


def weights_fingerprint(model: str, revision: str | None = None) -> dict:
    """``{"source": "local", "sha256": ...}`` (every weight file of a local folder, hashed by content; the
    digests are cached by path, size and mtime, see :class:`DigestCache`), ``{"source": "open_clip", ...}``
    (the spec, and its local weights), or ``{"source": "hub", "repo": ..., "revision": <commit>}`` (from the
    snapshot the Hub cache holds; ``None`` or the asked revision while nothing is cached yet: the loop
    records the commit once the model is loaded).

    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp()); _ = (folder / "model.safetensors").write_bytes(b"weights")
    >>> weights_fingerprint(str(folder))["sha256"][:12]
    '337cce73f9ed'
    """
    if model.startswith("open_clip:"):
        return open_clip_fingerprint(model.removeprefix("open_clip:"))
    path = Path(model).expanduser()
    if path.is_dir():
        return {"source": "local", **folder_fingerprint(path)}
    return {"source": "hub", "repo": model, "revision": hub_commit(model, "config.json", revision) or revision}


def is_commit(revision) -> bool:
    return isinstance(revision, str) and len(revision) == 40 and all(c in "0123456789abcdef" for c in revision)


def resolves(old: dict, new: dict) -> bool:
    """``new`` is ``old`` once downloaded: the same Hub repo, whose commit was not known yet (a first run
    records the fingerprint before the download) and now is.

    >>> resolves({"source": "hub", "repo": "a/b", "revision": None}, {"source": "hub", "repo": "a/b", "revision": "0" * 40})
    True
    >>> resolves({"source": "hub", "repo": "a/b", "revision": "1" * 40}, {"source": "hub", "repo": "a/b", "revision": "0" * 40})
    False
    """
    if not (isinstance(old, dict) and isinstance(new, dict) and old.get("source") in ("hub", "open_clip")):
        return False
    rest = {k: v for k, v in old.items() if k != "revision"} == {k: v for k, v in new.items() if k != "revision"}
    return rest and not is_commit(old.get("revision")) and is_commit(new.get("revision"))


def from_hub(fingerprint: dict) -> bool:
    """Weights a load may download (a Hub model, an open_clip ``hf-hub:`` spec): their commit is known after."""
    return fingerprint.get("source") == "hub" or str(fingerprint.get("spec", "")).startswith("hf-hub:")


def dataset_fingerprint(dataset, data_files=None) -> str:
    """A short hash that changes when the rows' build changes (a rebuild, other data files).

    >>> import datasets
    >>> a = dataset_fingerprint(datasets.Dataset.from_dict({"id": ["x"]}))
    >>> a == dataset_fingerprint(datasets.Dataset.from_dict({"id": ["y"]}))
    False
    """
    digest = hashlib.sha256()
    files = [Path(f["filename"]) for f in getattr(dataset, "cache_files", None) or []]
    files += [Path(p) for p in data_files or []]
    for file in files:
        targets = sorted(file.rglob("*")) if file.is_dir() else [file]
        for target in targets:
            if target.is_file():
                stat = target.stat()
                digest.update(f"{target.resolve()}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    if not files:
        digest.update(str(getattr(dataset, "_fingerprint", "")).encode())  # an in-memory dataset
    digest.update(json.dumps(of_dataset(dataset), sort_keys=True, default=str).encode())
    digest.update(f"{len(dataset)}\0{dataset.column_names}".encode())
    return digest.hexdigest()[:16]
