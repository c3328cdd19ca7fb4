"""CLEVR-Change (Park, Darrell & Rohrbach, ICCV 2019): a `datasets` Arrow builder.

Rendered CLEVR scenes: each "default" image has a semantic change (``sc_images``: one of five change
types) and a distractor (``nsc_images``: only the viewpoint or the lighting moves).

Official layout (github.com/Seth-Park/RobustChangeCaptioning), read from ``source=DIR``::

    DIR/images/CLEVR_default_000000.png        before images
    DIR/sc_images/CLEVR_semantic_000000.png    after, semantic change
    DIR/nsc_images/CLEVR_nonsemantic_000000.png  after, distractor
    DIR/change_captions.json      default file name -> captions of the semantic change
    DIR/no_change_captions.json   default file name -> captions of the distractor ("no change")
    DIR/splits.json               {"train"|"val"|"test": [indices into the sorted images/ names]}
    DIR/type_mapping.json         {"color"|"material"|"add"|"drop"|"move": ["000123.png", ...]}

(``DIR/data/...``, the folder the official ``clevr_change.tar.gz`` extracts to, is read too.) As the
official loader (``datasets/rcc_dataset.py``), the split indices point into the sorted ``images/``
names, and ``type_mapping.json`` lists the numbered tails of the default names, parsed as
``int(x.split('.')[0])``; full names (``CLEVR_default_000123.png``) are read as well, by their tail.

Two rows per default image: ``<stem>_semantic`` (``change_types`` = [its type], ``distractor`` false)
and ``<stem>_nonsemantic`` (``change_types`` empty, ``distractor`` true). The official evaluation
(``test.py``, ``utils/eval_utils.py``, ``evaluate.py``) keys a result by the default name's tail
``name.split('_')[-1]``: ``CLEVR_default_000123_semantic`` is ``"000123.png"`` there and
``CLEVR_default_000123_nonsemantic`` is ``"000123.png_n"``. ``domain`` ``synthetic``.

The mapping onto the shared schema is all this file holds; the rest is ``diffbench.data.caption_builder``
(``pip install diffbench``). Why the base is shared that way: the ``diffbench.data.caption_builder`` docstring.
"""

from __future__ import annotations

from pathlib import Path

import datasets
from diffbench.data.caption_builder import (
    CaptionBuilder, CaptionSourceError, Pair, decimal_number, expect, indexed_names, inside, list_folder,
    read_json_object, shown,
)

_CITATION = """\
@inproceedings{park2019robust,
  title     = {Robust Change Captioning},
  author    = {Park, Dong Huk and Darrell, Trevor and Rohrbach, Anna},
  booktitle = {Proceedings of the IEEE/CVF International Conference on Computer Vision (ICCV)},
  pages     = {4624--4633},
  year      = {2019}
}
"""

_DESCRIPTION = """\
CLEVR-Change: rendered CLEVR scenes with a semantic change (color, material, add, drop, move) or a
distractor (viewpoint / lighting only), each with captions. Tests whether a model describes real
changes and ignores distractors.
"""

CHANGE_TYPES = ("color", "material", "add", "drop", "move")
SPLITS = {"train": "train", "val": "validation", "test": "test"}


class ClevrChange(CaptionBuilder):
    """CLEVR-Change, from a local folder in the official layout (no official Hub repo)."""

    DESCRIPTION = _DESCRIPTION
    CITATION = _CITATION
    HOMEPAGE = "https://github.com/Seth-Park/RobustChangeCaptioning"
    LICENSE = "unknown"  # the upstream repository states no license for the data
    CHANGE_TYPES = CHANGE_TYPES
    EXTRA_FEATURES = {"distractor": datasets.Value("bool")}

    def read_pairs(self, root: Path) -> dict[str, list[Pair]]:
        if not (root / "images").is_dir() and (root / "data" / "images").is_dir():
            root = root / "data"  # the folder the official archive extracts to
        images = root / "images"
        expect(images.is_dir(), root, "no images/ folder (the official CLEVR-Change layout)")
        change = read_json_object(root / "change_captions.json", "file -> captions")
        no_change = read_json_object(root / "no_change_captions.json", "file -> captions")
        types = self._types(root / "type_mapping.json")
        # The split indices point into the sorted names of images/ (as the official loader lists them);
        # every captioned image must be there, so the missing ones are added to the listing and
        # reported by the missing-files check rather than shifting every index.
        names = sorted(set(list_folder(images, ".png")) | set(change))
        splits_path = root / "splits.json"
        split_indices = read_json_object(splits_path, "split -> indices")
        splits = {}
        for upstream, split in SPLITS.items():
            pairs = []
            for where, name in indexed_names(splits_path, split_indices, upstream, names, "images/"):
                stem = Path(name).stem
                number = _number(name)
                if number not in types:
                    raise CaptionSourceError(root / "type_mapping.json",
                                         f"{shown(name)} (split {upstream!r}, {where}) has no change type")
                for kind, folder, prefix, captions, distractor in (
                    ("semantic", "sc_images", "CLEVR_semantic_", change.get(name), False),
                    ("nonsemantic", "nsc_images", "CLEVR_nonsemantic_", no_change.get(name), True),
                ):
                    captions_file = "no_change_captions.json" if distractor else "change_captions.json"
                    if captions is None:
                        raise CaptionSourceError(root / captions_file, f"annotation without captions for {name}")
                    origin = f"{root / captions_file}, entry {name!r} (from {where})"
                    tail = stem.rsplit("_", 1)[-1]
                    pairs.append(
                        Pair(
                            id=f"{stem}_{kind}",
                            image_before=inside(images, name, f"{where} ({name})", "'image_before'"),
                            image_after=inside(root / folder, f"{prefix}{tail}.png", origin, "'image_after'"),
                            captions=captions,
                            change_types=[] if distractor else [types[number]],
                            domain="synthetic",
                            extras={"distractor": distractor},
                            origin=origin,
                        )
                    )
            splits[split] = pairs
        return splits

    @staticmethod
    def _types(path: Path) -> dict[int, str]:
        """Image number -> change type, from the official ``type_mapping.json``."""
        types: dict[int, str] = {}
        for change_type, names in read_json_object(path, "type -> files").items():
            expect(change_type in CHANGE_TYPES, path, f"unknown change type {change_type!r}; declared: {CHANGE_TYPES}")
            expect(isinstance(names, list), f"{path}, entry {change_type!r}", f"expected a list of file names, got {names!r}")
            for position, name in enumerate(names):
                where = f"{path}, {change_type!r} entry {position}"
                number = _number(name) if isinstance(name, str) else None
                if number is None:
                    raise CaptionSourceError(where, f"expected a numbered image name like '000123.png', got {shown(name)}")
                if types.setdefault(number, change_type) != change_type:
                    raise CaptionSourceError(where, f"{name!r} is listed under both {types[number]!r} and {change_type!r}")
        return types


def _number(name: str) -> int | None:
    """The image number of ``"000123.png"`` (the official tail, read as ``int(x.split('.')[0])``) or of a
    full name ``"CLEVR_default_000123.png"``; ``None`` when there is none.

        >>> _number("000123.png"), _number("CLEVR_default_000123.png"), _number("abc.png")
        (123, 123, None)
    """
    return decimal_number(name.rsplit("_", 1)[-1].split(".")[0])
