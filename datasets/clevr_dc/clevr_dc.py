"""CLEVR-DC (Kim et al., ICCV 2021): a `datasets` Arrow builder.

CLEVR scenes under drastic viewpoint changes: the camera moves to a random place for every after
image, and one of six actions happens (color, texture, add, remove, move, or nothing: a distractor).
8,000 pairs per action; split 40,800 / 2,400 / 4,800.

Layout read from ``source=DIR`` (the release at github.com/hsgkim/clevr-dc, captions arranged as
CLEVR-Change's)::

    DIR/bef/<name>.png             before images
    DIR/aft/<name>.png             after images (same file names)
    DIR/change_captions.json       <name> -> captions
    DIR/type_mapping.json          action ("color"|"texture"|"add"|"remove"|"move"|"no_change") -> names
    DIR/split.json                 {"train"|"val"|"test": [indices into the sorted bef/ names]}

One row per pair, id = the file stem; ``change_types`` holds the action (``no_change`` for the
distractors, which the official evaluation reports apart). ``domain`` ``synthetic``.

The mapping onto the shared schema is all this file holds; the rest is ``diffbench.idc_builder``
(``pip install diffbench``). Why the base is shared that way: the ``diffbench.idc_builder`` docstring.
"""

from __future__ import annotations

from pathlib import Path

from diffbench.idc_builder import IDCBuilder, IDCSourceError, Pair, expect, indexed_names, read_json_object

_CITATION = """\
@inproceedings{kim2021viewpoint,
  title     = {Viewpoint-Agnostic Change Captioning with Cycle Consistency},
  author    = {Kim, Hoeseong and Kim, Jongseok and Lee, Hyungseok and Park, Hyunsung and Kim, Gunhee},
  booktitle = {Proceedings of the IEEE/CVF International Conference on Computer Vision (ICCV)},
  pages     = {2095--2104},
  year      = {2021}
}
"""

_DESCRIPTION = """\
CLEVR-DC: change captioning under drastic viewpoint changes. Rendered CLEVR scenes where the camera
moves to a random location for the after image, and an object changes color or texture, is added,
removed or moved, or nothing changes (distractor).
"""

CHANGE_TYPES = ("color", "texture", "add", "remove", "move", "no_change")
SPLITS = {"train": "train", "val": "validation", "test": "test"}


class ClevrDC(IDCBuilder):
    """CLEVR-DC, from a local folder (no official Hub repo)."""

    DESCRIPTION = _DESCRIPTION
    CITATION = _CITATION
    HOMEPAGE = "https://github.com/hsgkim/clevr-dc"
    LICENSE = "unknown"  # the upstream repository states no license for the data
    CHANGE_TYPES = CHANGE_TYPES

    def read_pairs(self, root: Path) -> dict[str, list[Pair]]:
        before, after = root / "bef", root / "aft"
        expect(before.is_dir(), root, "no bef/ folder (the CLEVR-DC layout)")
        captions_path, type_path, split_path = root / "change_captions.json", root / "type_mapping.json", root / "split.json"
        captions = read_json_object(captions_path, "file name -> captions")
        actions: dict[str, str] = {}
        for action, names in read_json_object(type_path, "action -> file names").items():
            expect(action in CHANGE_TYPES, type_path, f"unknown action {action!r}; declared: {CHANGE_TYPES}")
            actions.update((name, action) for name in names)
        # Indices point into the sorted bef/ names; captioned images absent from bef/ stay in the
        # listing so the missing-files check reports them instead of every index shifting.
        names = sorted({p.name for p in before.iterdir() if p.suffix == ".png"} | set(captions))
        split_indices = read_json_object(split_path, "split -> indices")
        splits = {}
        for upstream, split in SPLITS.items():
            pairs = []
            for where, name in indexed_names(split_path, split_indices, upstream, names, "bef/"):
                if not captions.get(name):
                    raise IDCSourceError(captions_path, f"annotation without captions for {name}")
                if name not in actions:
                    raise IDCSourceError(type_path, f"{name} (split {upstream!r}) has no action")
                pairs.append(
                    Pair(
                        id=Path(name).stem,
                        image_before=before / name,
                        image_after=after / name,
                        captions=list(captions[name]),
                        change_types=[actions[name]],
                        domain="synthetic",
                        origin=f"{where} ({name})",
                    )
                )
            splits[split] = pairs
        return splits
