"""Image Editing Request (Tan et al., ACL 2019): a `datasets` Arrow builder.

Photo pairs (an original and its edit, from Photoshop request forums) with the edit request written
by people, the image-editing flavour of difference captioning.

Official layout (github.com/airsplay/VisualRelationships), read from ``source=DIR``::

    DIR/{train,valid,test}.json   a list of {"img0", "img1", "sents": [...], "uid"}
    DIR/images/<img0>, <img1>     the images, named by the annotation fields

One row per annotation entry (``uid`` is the id); ``valid`` is the ``validation`` split. 3,061 / 383 /
495 pairs, one sentence a training pair, three for validation and test. No change types, ``domain``
``real``, ``scenario`` empty.

The mapping onto the shared schema is all this file holds; the rest is ``diffbench.idc_builder``
(``pip install diffbench``). Why the base is shared that way: the ``diffbench.idc_builder`` docstring.
"""

from __future__ import annotations

from pathlib import Path

from diffbench.idc_builder import IDCBuilder, IDCSourceError, Pair, expect, read_json

_CITATION = """\
@inproceedings{tan2019expressing,
  title     = {Expressing Visual Relationships via Language},
  author    = {Tan, Hao and Dernoncourt, Franck and Lin, Zhe and Bui, Trung and Bansal, Mohit},
  booktitle = {Proceedings of the 57th Annual Meeting of the Association for Computational Linguistics (ACL)},
  pages     = {1873--1883},
  year      = {2019}
}
"""

_DESCRIPTION = """\
Image Editing Request: 3,939 pairs of an original photo and its edited version, each with the
editing request(s) people wrote for it (one for a training pair, three for validation and test).
"""

SPLITS = {"train": "train", "valid": "validation", "test": "test"}
FIELDS = ("img0", "img1", "sents", "uid")


class ImageEditingRequest(IDCBuilder):
    """Image Editing Request, from a local folder in the official layout (no official Hub repo)."""

    DESCRIPTION = _DESCRIPTION
    CITATION = _CITATION
    HOMEPAGE = "https://github.com/airsplay/VisualRelationships"
    LICENSE = "unknown"  # the upstream repository states no license for the data
    CHANGE_TYPES = ()

    def read_pairs(self, root: Path) -> dict[str, list[Pair]]:
        images = root / "images"
        splits = {}
        for upstream, split in SPLITS.items():
            path = root / f"{upstream}.json"
            entries = read_json(path)
            expect(isinstance(entries, list), path, f"expected a list of annotations, got {type(entries).__name__}")
            pairs = []
            for index, entry in enumerate(entries):
                where = f"{path}, entry {index}"
                expect(isinstance(entry, dict), where, "an annotation must be an object")
                absent = [f for f in FIELDS if f not in entry and f != "sents"]
                expect(not absent, where, f"missing field(s) {absent}")
                sents = entry.get("sents")
                if not isinstance(sents, list) or not sents:
                    raise IDCSourceError(where, f"annotation without captions (uid {entry['uid']!r}, 'sents' {sents!r})")
                pairs.append(
                    Pair(
                        id=str(entry["uid"]),
                        image_before=images / entry["img0"],
                        image_after=images / entry["img1"],
                        captions=[s.strip() if isinstance(s, str) else s for s in sents],
                        origin=where,
                    )
                )
            splits[split] = pairs
        return splits
