"""The embedded samples: synthetic upstream releases that ``--source sample`` builds from.

Each dataset name maps to a writer that puts a synthetic release, in the upstream layout, into a
folder; the builder then reads that folder exactly as it reads a real download.

    >>> import tempfile
    >>> from pathlib import Path
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     folder = write_sample("vismin", Path(tmp), n=8, image_size=(64, 48))
    ...     sorted(p.name for p in folder.iterdir())
    ['bench', 'train']
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path


def _write_vismin(out_dir: Path, n: int | None, seed: int, image_size: tuple[int, int]) -> Path:
    from diffbench.synth import vismin

    n = n or vismin.DEFAULT_N
    vismin.write_bench(out_dir / "bench", n=n, seed=seed, image_size=image_size)
    vismin.write_train(out_dir / "train", n=n, seed=seed + 1, image_size=image_size)
    return out_dir


def _write_idc(name: str) -> Callable[[Path, int | None, int, tuple[int, int]], Path]:
    """The writer of one image-difference-captioning sample (``diffbench.synth.idc``), imported when used."""

    def write(out_dir: Path, n: int | None, seed: int, image_size: tuple[int, int]) -> Path:
        from diffbench.synth import idc

        return idc.WRITERS[name](out_dir, n, seed, image_size)

    return write


SAMPLE_WRITERS: dict[str, Callable[[Path, int | None, int, tuple[int, int]], Path]] = {
    "vismin": _write_vismin,
    "omnidiff": _write_idc("omnidiff"),
    "spot_the_diff": _write_idc("spot_the_diff"),
    "clevr_change": _write_idc("clevr_change"),
    "clevr_dc": _write_idc("clevr_dc"),
    "image_editing_request": _write_idc("image_editing_request"),
}


def write_sample(name: str, out_dir: Path, n: int | None = None, seed: int = 0, image_size=(320, 240)) -> Path:
    """Write the synthetic release of ``name`` under ``out_dir`` and return the folder to build from."""
    if name not in SAMPLE_WRITERS:
        raise ValueError(f"no embedded sample for {name!r}; samples exist for {sorted(SAMPLE_WRITERS)}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    return SAMPLE_WRITERS[name](out_dir, n, seed, tuple(image_size))
