"""Build a dataset folder's builder into the Hugging Face datasets cache, atomically.

After :func:`build`, ``load_dataset(NAME)`` and ``load_dataset(NAME, CONFIG)`` work from any directory
in a fresh interpreter (with ``HF_HUB_OFFLINE=1``, or whenever the Hub has no repo of that name):
datasets falls back to a build of that name in its cache, at
``<cache>/<name>/<config>/<version>/<hash>/``.

Why the detour through a staging folder: datasets writes a build into ``<hash>.incomplete`` beside its
final place, and its cache fallback globs ``<cache>/<name>/*/*/*``, which includes that half-written
folder. Building under ``<cache>/.diffbench_staging/`` and renaming the finished folder into place
means a reader sees the last good build or none, never a partial one, even when a build is killed.

Which configuration a bare ``load_dataset(NAME)`` gives: datasets takes the most recently modified
build of that name. The default configuration's folder is therefore dated far in the future
(:data:`DEFAULT_CONFIG_MTIME`), so building another configuration later does not change what the bare
name loads.

    >>> from diffbench.building import build_hash
    >>> len(build_hash("vismin", "bench"))
    16
"""

from __future__ import annotations

import hashlib
import os
import shutil
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from diffbench.hub_folders import hub_folder, load_module

DEFAULT_CONFIG_MTIME = 4102444800  # 2100-01-01: keeps the default config the newest build of its name
STAGING_DIRNAME = ".diffbench_staging"


class NotBuiltError(FileNotFoundError):
    """The dataset (or configuration) has not been built into the cache yet."""


@dataclass
class BuildSummary:
    """What one build wrote."""

    name: str
    config: str
    path: Path
    rows: dict[str, int]
    num_bytes: int
    seconds: float
    counts: dict[str, dict[str, int]] = field(default_factory=dict)  # split -> label -> rows

    def format(self) -> str:
        lines = [f"{self.name}/{self.config}: built in {self.seconds:.2f} s, {self.num_bytes / 1e6:.1f} MB -> {self.path}"]
        for split, rows in self.rows.items():
            lines.append(f"  {split}: {rows:,} rows")
            for label, count in self.counts.get(split, {}).items():
                lines.append(f"    {label or '(none)':<14} {count:>8,}")
        return "\n".join(lines)


def cache_root() -> Path:
    """The HF datasets cache in use (``HF_DATASETS_CACHE`` or ``HF_HOME/datasets``)."""
    import datasets.config

    return Path(datasets.config.HF_DATASETS_CACHE).expanduser()


def builder_class(name: str):
    """The ``DatasetBuilder`` subclass defined in ``datasets/<name>/<name>.py``."""
    import datasets

    module = load_module("datasets", name)
    for value in vars(module).values():
        if isinstance(value, type) and issubclass(value, datasets.DatasetBuilder) and value.__module__ == module.__name__:
            return value
    raise ValueError(f"datasets/{name}/{name}.py defines no DatasetBuilder")


def config_names(name: str) -> list[str]:
    return [config.name for config in builder_class(name).BUILDER_CONFIGS]


def default_config(name: str) -> str:
    cls = builder_class(name)
    return cls.DEFAULT_CONFIG_NAME or cls.BUILDER_CONFIGS[0].name


def build_hash(name: str, config: str) -> str:
    """A hash per builder source and configuration: distinct configs never share a cache folder."""
    source = (hub_folder("datasets", name) / f"{name}.py").read_bytes()
    return hashlib.sha256(source + b"\0" + config.encode()).hexdigest()[:16]


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove_stale_staging(staging_root: Path) -> None:
    """Delete what killed builds left in the staging folder (their process is gone)."""
    for entry in staging_root.glob("*-*"):
        pid = entry.name.split("-", 1)[0]
        if entry.is_dir() and pid.isdigit() and not _pid_alive(int(pid)):
            shutil.rmtree(entry, ignore_errors=True)


def build(name: str, config: str, num_proc: int | None = None, **config_kwargs) -> BuildSummary:
    """Run ``datasets/<name>/<name>.py`` for one configuration into the datasets cache.

    ``config_kwargs`` go to the builder's config (for example ``source=``). Errors raised while
    reading the source come out as they are (not wrapped), and leave the previous build in place.
    """
    import datasets
    from filelock import FileLock

    cls = builder_class(name)
    if config not in config_names(name):
        raise ValueError(f"{name} has no configuration {config!r}; choose from {config_names(name)}")
    root = cache_root()
    staging_root = root / STAGING_DIRNAME
    staging_root.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    with FileLock(str(staging_root / f"{name}-{config}.lock")):
        _remove_stale_staging(staging_root)
        staging = staging_root / f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        try:
            digest = build_hash(name, config)
            builder = cls(
                config_name=config,
                dataset_name=name,
                hash=digest,
                cache_dir=str(staging / "cache"),
                **config_kwargs,
            )
            try:
                builder.download_and_prepare(
                    output_dir=str(staging / "final"),
                    num_proc=num_proc,
                    download_mode=datasets.DownloadMode.FORCE_REDOWNLOAD,
                )
            except datasets.exceptions.DatasetGenerationError as err:
                # Surface the builder's own error (it names file, row and column).
                raise (err.__cause__ or err) from None
            destination = root / name / config / str(builder.info.version or cls.VERSION) / digest
            _swap_into_place(staging / "final", destination, staging)
            if config == default_config(name):
                os.utime(destination, (DEFAULT_CONFIG_MTIME, DEFAULT_CONFIG_MTIME))
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    info = builder.info
    return BuildSummary(
        name=name,
        config=config,
        path=destination,
        rows={split: split_info.num_examples for split, split_info in (info.splits or {}).items()},
        num_bytes=sum(f.stat().st_size for f in destination.glob("*.arrow")),
        seconds=time.perf_counter() - started,
    )


def _swap_into_place(finished: Path, destination: Path, staging: Path) -> None:
    """Replace the build at ``destination`` (and any older build of that config) by ``finished``."""
    config_dir = destination.parent.parent
    config_dir.mkdir(parents=True, exist_ok=True)
    old_builds = [p for p in config_dir.glob("*/*") if p.is_dir()]
    for i, old in enumerate(old_builds):
        old.rename(staging / f"old-{i}")  # out of the glob's sight first, then deleted with staging
    destination.parent.mkdir(parents=True, exist_ok=True)
    finished.rename(destination)


def load_built(name: str, config: str | None = None, split: str | None = None):
    """A built dataset, read from the cache without touching the network.

    The same data ``load_dataset(name, config)`` gives after ``diffbench build``; a
    :class:`NotBuiltError` says which command builds it when it is missing.
    """
    import logging

    from datasets.packaged_modules.cache import cache

    logger = logging.getLogger(cache.__name__)
    level = logger.level
    logger.setLevel(logging.ERROR)  # its "found the latest cached configuration" warning is noise here
    try:
        builder = cache.Cache(
            dataset_name=name, config_name=config, version="auto", hash="auto", cache_dir=str(cache_root())
        )
    except ValueError as err:
        if "Couldn't find cache" not in str(err):
            raise
        option = f" --config {config}" if config else ""
        raise NotBuiltError(f"{name}{'/' + config if config else ''} is not built: run `diffbench build {name}{option}`") from None
    finally:
        logger.setLevel(level)
    return builder.as_dataset(split=split)
