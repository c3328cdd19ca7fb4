"""Spot-the-Diff (Jhamtani & Berg-Kirkpatrick, EMNLP 2018): a `datasets` Arrow builder.

Pairs of 224x224 frames from fixed surveillance cameras, with human sentences saying what differs.

Official layout (github.com/harsh19/spot-the-diff), read from ``source=DIR``::

    DIR/data/annotations/{train,val,test}.json   a list of {"img_id": "76", "sentences": [...]}
    DIR/data/resized_images/<img_id>.png         the "before" frame
    DIR/data/resized_images/<img_id>_2.png       the "after" frame

(``DIR/annotations`` + ``DIR/resized_images`` without the ``data/`` level are accepted too.)

One row per distinct ``img_id`` of a split: an ``img_id`` can appear in several annotation entries
and, as the official evaluation does, all their sentences are gathered (in file order) as the
references of that one pair. Blank sentences are dropped; a pair whose every sentence is blank
(37 / 4 / 7 in the real train / val / test files) has no reference and is left out, with a note in
the build log. No change types (the release has none), ``domain`` ``real``, ``scenario`` empty.

The mapping onto the shared schema is all this file holds; the schema, the checks and the batched,
byte-copying generation are ``diffbench.idc_builder`` (``pip install diffbench``), which is what
``diffbench build spot_the_diff`` runs. Why the base is shared that way: the ``diffbench.idc_builder`` docstring.
"""

from __future__ import annotations

import logging
from pathlib import Path

from diffbench.idc_builder import IDCBuilder, IDCSourceError, Pair, expect, read_json

logger = logging.getLogger(__name__)

_CITATION = """\
@inproceedings{jhamtani2018learning,
  title     = {Learning to Describe Differences Between Pairs of Similar Images},
  author    = {Jhamtani, Harsh and Berg-Kirkpatrick, Taylor},
  booktitle = {Proceedings of the 2018 Conference on Empirical Methods in Natural Language Processing (EMNLP)},
  pages     = {4024--4034},
  year      = {2018}
}
"""

_DESCRIPTION = """\
Spot-the-Diff: 13,192 pairs of aligned frames from the VIRAT surveillance videos (224x224) with
human-written sentences describing every difference between the two frames. One row per image pair;
`captions` gathers all sentences written for that pair, as the official evaluation does.
"""

SPLITS = {"train": "train", "val": "validation", "test": "test"}


class SpotTheDiff(IDCBuilder):
    """Spot-the-Diff, from a local folder in the official layout (no official Hub repo)."""

    DESCRIPTION = _DESCRIPTION
    CITATION = _CITATION
    HOMEPAGE = "https://github.com/harsh19/spot-the-diff"
    LICENSE = "unknown"  # the upstream repository states no license
    CHANGE_TYPES = ()

    def read_pairs(self, root: Path) -> dict[str, list[Pair]]:
        data = root / "data" if (root / "data" / "annotations").is_dir() else root
        annotations, images = data / "annotations", data / "resized_images"
        expect(annotations.is_dir(), root, "no data/annotations/ folder (the official Spot-the-Diff layout)")
        splits = {}
        for upstream, split in SPLITS.items():
            path = annotations / f"{upstream}.json"
            entries = read_json(path)
            expect(isinstance(entries, list), path, f"expected a list of annotations, got {type(entries).__name__}")
            gathered: dict[str, list[str]] = {}
            first_entry: dict[str, int] = {}
            for index, entry in enumerate(entries):
                where = f"{path}, entry {index}"
                expect(isinstance(entry, dict) and "img_id" in entry, where, "annotation without an 'img_id'")
                img_id = str(entry["img_id"])
                sentences = entry.get("sentences")
                if not isinstance(sentences, list) or not sentences:
                    raise IDCSourceError(where, f"annotation without captions (img_id {img_id!r}, 'sentences' {sentences!r})")
                gathered.setdefault(img_id, [])
                first_entry.setdefault(img_id, index)
                gathered[img_id].extend(s.strip() for s in sentences if isinstance(s, str) and s.strip())
            pairs, blank = [], []
            for img_id, captions in gathered.items():
                if not captions:
                    blank.append(img_id)
                    continue
                pairs.append(
                    Pair(
                        id=img_id,
                        image_before=images / f"{img_id}.png",
                        image_after=images / f"{img_id}_2.png",
                        captions=captions,
                        origin=f"{path}, entry {first_entry[img_id]}",
                    )
                )
            if blank:
                logger.warning("%s: %d pair(s) whose only sentences are blank left out: %s", path, len(blank), blank[:10])
            splits[split] = pairs
        return splits
