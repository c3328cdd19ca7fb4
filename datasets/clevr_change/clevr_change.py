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
    DIR/type_mapping.json         {"color"|"material"|"add"|"drop"|"move": [default file names]}

Two rows per default image: ``<stem>_semantic`` (``change_types`` = its type, ``distractor`` false) and
``<stem>_nonsemantic`` (``change_types`` empty, ``distractor`` true); the official evaluation scores
each change type on its subset and the distractors on theirs. ``domain`` ``synthetic``.

The mapping onto the shared schema is all this file holds; the rest is ``diffbench.idc_builder``
(``pip install diffbench``). Why the base is shared that way: the ``diffbench.idc_builder`` docstring.
"""

from __future__ import annotations

from pathlib import Path

import datasets
from diffbench.idc_builder import IDCBuilder, IDCSourceError, Pair, expect, indexed_names, read_json_object

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


class ClevrChange(IDCBuilder):
    """CLEVR-Change, from a local folder in the official layout (no official Hub repo)."""

    DESCRIPTION = _DESCRIPTION
    CITATION = _CITATION
    HOMEPAGE = "https://github.com/Seth-Park/RobustChangeCaptioning"
    LICENSE = "unknown"  # the upstream repository states no license for the data
    CHANGE_TYPES = CHANGE_TYPES
    EXTRA_FEATURES = {"distractor": datasets.Value("bool")}

    def read_pairs(self, root: Path) -> dict[str, list[Pair]]:
        images = root / "images"
        expect(images.is_dir(), root, "no images/ folder (the official CLEVR-Change layout)")
        change = read_json_object(root / "change_captions.json", "file -> captions")
        no_change = read_json_object(root / "no_change_captions.json", "file -> captions")
        type_path = root / "type_mapping.json"
        types: dict[str, str] = {}
        for change_type, names in read_json_object(type_path, "type -> files").items():
            expect(change_type in CHANGE_TYPES, type_path, f"unknown change type {change_type!r}; declared: {CHANGE_TYPES}")
            for name in names:
                types[name] = change_type
        # The split indices point into the sorted names of images/ (as the official loader lists them);
        # every captioned image must be there, so the missing ones are added to the listing and
        # reported by the missing-files check rather than shifting every index.
        names = sorted({p.name for p in images.iterdir() if p.suffix == ".png"} | set(change))
        splits_path = root / "splits.json"
        split_indices = read_json_object(splits_path, "split -> indices")
        splits = {}
        for upstream, split in SPLITS.items():
            pairs = []
            for where, name in indexed_names(splits_path, split_indices, upstream, names, "images/"):
                stem = Path(name).stem
                if name not in types:
                    raise IDCSourceError(type_path, f"{name} (split {upstream!r}) has no change type")
                number = stem.rsplit("_", 1)[-1]
                for kind, after, captions, extra in (
                    ("semantic", root / "sc_images" / f"CLEVR_semantic_{number}.png", change.get(name), False),
                    ("nonsemantic", root / "nsc_images" / f"CLEVR_nonsemantic_{number}.png", no_change.get(name), True),
                ):
                    captions_file = "no_change_captions.json" if extra else "change_captions.json"
                    if not captions:
                        raise IDCSourceError(root / captions_file, f"annotation without captions for {name}")
                    pairs.append(
                        Pair(
                            id=f"{stem}_{kind}",
                            image_before=images / name,
                            image_after=after,
                            captions=list(captions),
                            change_types=[] if extra else [types[name]],
                            domain="synthetic",
                            extras={"distractor": extra},
                            origin=f"{where} ({name}, {captions_file})",
                        )
                    )
            splits[split] = pairs
        return splits
