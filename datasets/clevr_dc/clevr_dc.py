"""CLEVR-DC (Kim et al., ICCV 2021): a `datasets` Arrow builder.

CLEVR scenes under drastic viewpoint changes: the camera moves to a random place for every after
image, and one of six actions happens (color, texture, add, remove, move, or nothing: a distractor).
8,000 pairs per action; split 40,800 / 2,400 / 4,800.

Official layout (github.com/hsgkim/clevr-dc, as published), read from ``source=DIR``::

    DIR/captions.json      {"0": [captions], "1": [...], ...}   keyed by the bare image number
    DIR/split.json         {"train"|"val"|"test": [image numbers]}   (0..47,999 in all)
    DIR/bef/N.png          the before image of number N (unpadded: 0.png, 1.png, ... 47999.png)
    DIR/aft/N.png          its after image

Each number pairs its own two images and its own captions (names are built from the number, never
matched through a sorted listing, where "10.png" sorts before "2.png"). One row per number, id = the
number (``"123"``), in the order ``split.json`` lists them.

The action: the README says 8,000 images were generated per action and lists the actions in the order
color, texture, add, remove, move, no change; the release states no per-image action. This builder
takes the action of number N as ``ACTIONS[N // 8000]``: that block k holds action k is INFERRED
(the split confirms the blocks: each block of 8,000 splits 6,800 / 400 / 800). The build checks it
against the captions (:func:`check_action_blocks`) and stops when a block disagrees.

The zero-padded variant that third-party code writes from the release (``change_captions.json``
keyed ``"000123.png"``, images ``000123.png`` in ``bef/`` + ``aft/`` or ``images/`` + ``sc_images/``,
``split.json`` or ``splits.json``) is read by one adapter, :func:`padded_layout`.

The mapping onto the shared schema is all this file holds; the rest is ``diffbench.data.caption_builder``
(``pip install diffbench``). Why the base is shared that way: the ``diffbench.data.caption_builder`` docstring.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

from diffbench.data.caption_builder import (
    MAX_NUMBER_DIGITS, CaptionBuilder, CaptionConfig, CaptionSourceError, Pair, decimal_number, expect, inside,
    read_json_object, shown,
)

logger = logging.getLogger(__name__)

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

#: in the order the upstream README lists them; block k of IMAGES_PER_ACTION numbers holds ACTIONS[k] (inferred)
ACTIONS = ("color", "texture", "add", "remove", "move", "no_change")
CHANGE_TYPES = ACTIONS
IMAGES_PER_ACTION = 8000
SPLITS = {"train": "train", "val": "validation", "test": "test"}

# A caption that says nothing changed (CLEVR-Change-style distractor captions: "no change was made",
# "the scene remains the same", "the two scenes seem identical", ...).
_NO_CHANGE = re.compile(
    r"\b(no (change|difference)s?|nothing (has |was )?(changed|different)|unchanged|identical|"
    r"(remains?|stays?|stayed|is|are|seems?|looks?) (exactly )?the same)\b",
    re.IGNORECASE,
)
MIN_CHECKED_ROWS = 5  # a block with fewer rows is too small to judge


def action_of(number: int, where: str) -> str:
    """The action of image ``number``: its block of :data:`IMAGES_PER_ACTION` (inferred order).

        >>> action_of(0, "split.json"), action_of(7999, "x"), action_of(8000, "x"), action_of(47999, "x")
        ('color', 'color', 'texture', 'no_change')
    """
    block = number // IMAGES_PER_ACTION
    if not 0 <= block < len(ACTIONS):
        raise CaptionSourceError(where, f"image number {number} is outside the {len(ACTIONS)} action blocks "
                                    f"of {IMAGES_PER_ACTION:,} (0..{len(ACTIONS) * IMAGES_PER_ACTION - 1})")
    return ACTIONS[block]


def says_no_change(captions: list[str]) -> bool:
    """Most of ``captions`` say nothing changed.

        >>> says_no_change(["no change was made", "the scene remains the same"]), says_no_change(["the cube moved"])
        (True, False)
    """
    return sum(bool(_NO_CHANGE.search(c)) for c in captions) * 2 > len(captions)


def check_action_blocks(pairs: list[Pair]) -> None:
    """Stop when the inferred block order disagrees with the captions.

    In the ``no_change`` block most pairs' captions must say nothing changed, and in every other block
    most must not. Why an error and not a log line: a wrong block order would label a sixth of the
    release with the wrong action, silently, and the per-type scores with it; a build log is easily
    missed. Single rows that disagree are counted in the build log (free text is matched here, not
    parsed). Set ``check_action_blocks=False`` in the config to build anyway.
    """
    by_block: dict[str, list[Pair]] = {}
    for pair in pairs:
        by_block.setdefault(pair.change_types[0], []).append(pair)
    for action, block in by_block.items():
        if len(block) < MIN_CHECKED_ROWS:
            continue
        disagree = [p for p in block if says_no_change(p.captions) != (action == "no_change")]
        if len(disagree) * 2 > len(block):
            example = disagree[0]
            what = "describe a change" if action == "no_change" else "say nothing changed"
            raise CaptionSourceError(
                example.origin,
                f"the captions of {len(disagree)} of the {len(block)} pairs of the {action!r} block "
                f"(numbers {IMAGES_PER_ACTION * ACTIONS.index(action)}..{IMAGES_PER_ACTION * (ACTIONS.index(action) + 1) - 1}) "
                f"{what}, e.g. {example.id}: {example.captions[0]!r}; the block order (inferred from the README) "
                "does not fit this release (check_action_blocks=False builds anyway)",
            )
        if disagree:
            logger.warning("CLEVR-DC: %d of %d pairs of the %r block have captions that do not fit it, e.g. %s: %r",
                           len(disagree), len(block), action, disagree[0].id, disagree[0].captions[:1])


@dataclass
class Layout:
    """Where one variant keeps its files: captions by image number, image paths by number."""

    captions_path: Path
    captions: dict[int, object]  # number -> captions as stored (checked later)
    keys: dict[int, str]  # number -> the key as written, for messages
    split_path: Path
    before: Path
    after: Path
    file_name: str  # "{}.png" or "{:06d}.png"


def _numbered(mapping: dict, path: Path, parse) -> tuple[dict[int, object], dict[int, str]]:
    captions, keys = {}, {}
    for key, value in mapping.items():
        number = parse(key)
        if number is None:
            raise CaptionSourceError(f"{path}, entry {shown(key)}",
                                 f"expected a key naming an image number (at most {MAX_NUMBER_DIGITS} digits)")
        if number in captions:
            raise CaptionSourceError(f"{path}, entry {shown(key)}",
                                 f"image number {number} appears twice (also {shown(keys[number])})")
        captions[number], keys[number] = value, key
    return captions, keys


def _bare_number(key: str) -> int | None:
    return decimal_number(key)


def official_layout(root: Path) -> Layout:
    """``captions.json`` keyed by the bare number, ``split.json``, ``bef/N.png``, ``aft/N.png``."""
    path = root / "captions.json"
    captions, keys = _numbered(read_json_object(path, "image number -> captions"), path, _bare_number)
    return Layout(path, captions, keys, root / "split.json", root / "bef", root / "aft", "{}.png")


def padded_layout(root: Path) -> Layout:
    """The third-party zero-padded variant: ``change_captions.json`` keyed ``"000123.png"``."""
    path = root / "change_captions.json"
    parse = lambda key: _bare_number(key[:-4]) if key.endswith(".png") else None  # noqa: E731
    captions, keys = _numbered(read_json_object(path, "image file -> captions"), path, parse)
    before, after = (root / "bef", root / "aft") if (root / "bef").is_dir() else (root / "images", root / "sc_images")
    split_path = root / "split.json" if (root / "split.json").is_file() else root / "splits.json"
    return Layout(path, captions, keys, split_path, before, after, "{:06d}.png")


@dataclass
class ClevrDCConfig(CaptionConfig):
    """:class:`~diffbench.data.caption_builder.CaptionConfig`, plus:

    Args:
        check_action_blocks: check the inferred action blocks against the captions
            (:func:`check_action_blocks`); ``False`` builds a release that fails it anyway.
    """

    check_action_blocks: bool = True


class ClevrDC(CaptionBuilder):
    """CLEVR-DC, from a local folder in the published layout (no official Hub repo)."""

    BUILDER_CONFIG_CLASS = ClevrDCConfig
    BUILDER_CONFIGS = [ClevrDCConfig(name="default", version=CaptionBuilder.VERSION,
                                     description="The whole release, upstream splits.")]

    DESCRIPTION = _DESCRIPTION
    CITATION = _CITATION
    HOMEPAGE = "https://github.com/hsgkim/clevr-dc"
    LICENSE = "unknown"  # the upstream repository states no license for the data
    CHANGE_TYPES = CHANGE_TYPES

    def read_pairs(self, root: Path) -> dict[str, list[Pair]]:
        if (root / "captions.json").is_file():
            layout = official_layout(root)
        elif (root / "change_captions.json").is_file():
            layout = padded_layout(root)
        else:
            raise CaptionSourceError(root, "no captions.json (the published CLEVR-DC layout) nor change_captions.json "
                                       "(the zero-padded variant)")
        expect(layout.before.is_dir(), root, f"no {layout.before.name}/ folder of before images")
        split_numbers = read_json_object(layout.split_path, "split -> image numbers")
        splits, listed = {}, {}
        for upstream, split in SPLITS.items():
            expect(upstream in split_numbers, layout.split_path, f"no {upstream!r} split")
            expect(isinstance(split_numbers[upstream], list), layout.split_path, f"{upstream!r} must be a list of image numbers")
            pairs = []
            for position, number in enumerate(split_numbers[upstream]):
                where = f"{layout.split_path}, {upstream!r} entry {position}"
                if not isinstance(number, int) or isinstance(number, bool) or number < 0:
                    raise CaptionSourceError(where, f"expected an image number, got {shown(number)}")
                if number in listed:
                    raise CaptionSourceError(where, f"image number {number} is listed twice (also at {listed[number]})")
                listed[number] = where
                action = action_of(number, where)
                if number not in layout.captions:
                    raise CaptionSourceError(layout.captions_path, f"no captions for image number {number} (listed at {where})")
                name = layout.file_name.format(number)
                origin = f"{layout.captions_path}, entry {layout.keys[number]!r}"
                pairs.append(
                    Pair(
                        id=str(number),
                        image_before=inside(layout.before, name, origin, "'image_before'"),
                        image_after=inside(layout.after, name, origin, "'image_after'"),
                        captions=layout.captions[number],
                        change_types=[action],
                        domain="synthetic",
                        origin=origin,
                    )
                )
            splits[split] = pairs
        unlisted = sorted(set(layout.captions) - set(listed))
        if unlisted:  # not an error (a split file may cover part of a release), but never silent
            logger.warning("%s: %d captioned image number(s) are in no split of %s and are not built: %s",
                           layout.captions_path, len(unlisted), layout.split_path.name, unlisted[:10])
        return splits

    def check_release(self, splits: dict[str, list[Pair]]) -> None:
        if self.config.check_action_blocks:
            check_action_blocks([pair for pairs in splits.values() for pair in pairs])
