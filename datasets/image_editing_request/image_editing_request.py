"""Image Editing Request (Tan et al., ACL 2019): a `datasets` Arrow builder.

Photo pairs (an original and its edit, from Photoshop request forums) with the edit request written
by people, the image-editing flavour of difference captioning.

Upstream (github.com/airsplay/VisualRelationships): the annotations are in the repository, at
``dataset/adobe/{train,valid,test}.json`` (a list of ``{"img0", "img1", "sents": [...], "uid"}``;
its README says "folder ``data/``", the files are in ``dataset/adobe/``); the images are a separate
download (Google Drive / archive.org ``image-editing-dataset``), named by ``img0`` / ``img1``, which
the upstream scripts open as plain paths. Read from ``source=DIR``, either of::

    DIR/{train,valid,test}.json + DIR/images/            the annotations beside an images/ folder
    DIR/dataset/adobe/{train,valid,test}.json            a clone of the repository, the images put in
        + DIR/dataset/adobe/images/ or DIR/images/         images/ beside the JSON files or at its top,
        or DIR/dataset/adobe/ itself                        or unpacked among the JSON files

The image folder is the first of those that holds the first training pair's ``img0``.

One row per annotation entry (``uid`` is the id, a string as upstream); ``valid`` is the
``validation`` split. 3,061 / 383 / 495 pairs, one sentence a training pair, three for validation and
test; sentences verbatim (upstream has some with outer spaces; the caption metrics' tokenizer ignores
them). No change types, ``domain`` ``real``, ``scenario`` empty.

The mapping onto the shared schema is all this file holds; the rest is ``diffbench.data.caption_builder``
(``pip install diffbench``). Why the base is shared that way: the ``diffbench.data.caption_builder`` docstring.
"""

from __future__ import annotations

from pathlib import Path

from diffbench.data.caption_builder import (
    CaptionBuilder, CaptionSourceError, Pair, expect, expect_string, inside, read_json,
)

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


class ImageEditingRequest(CaptionBuilder):
    """Image Editing Request, from a local folder in the official layout (no official Hub repo)."""

    DESCRIPTION = _DESCRIPTION
    CITATION = _CITATION
    HOMEPAGE = "https://github.com/airsplay/VisualRelationships"
    LICENSE = "unknown"  # the upstream repository states no license for the data
    CHANGE_TYPES = ()

    def read_pairs(self, root: Path) -> dict[str, list[Pair]]:
        annotations = root
        if not (root / "train.json").is_file() and (root / "dataset" / "adobe" / "train.json").is_file():
            annotations = root / "dataset" / "adobe"  # a clone of the upstream repository
        expect((annotations / "train.json").is_file(), root,
               "no train.json nor dataset/adobe/train.json (the Image Editing Request layouts)")
        entries_of = {upstream: read_json(annotations / f"{upstream}.json") for upstream in SPLITS}
        images = self._image_folder(root, annotations, entries_of["train"])
        splits = {}
        for upstream, split in SPLITS.items():
            path = annotations / f"{upstream}.json"
            entries = entries_of[upstream]
            expect(isinstance(entries, list), path, f"expected a list of annotations, got {type(entries).__name__}")
            pairs = []
            for index, entry in enumerate(entries):
                where = f"{path}, entry {index}"
                expect(isinstance(entry, dict), where, "an annotation must be an object")
                absent = [f for f in FIELDS if f not in entry]
                expect(not absent, where, f"missing field(s) {absent}")
                uid = expect_string(entry["uid"], where, "'uid'")
                img0 = expect_string(entry["img0"], where, "'img0'")
                img1 = expect_string(entry["img1"], where, "'img1'")
                pairs.append(
                    Pair(
                        id=uid,
                        image_before=inside(images, img0, where, "'img0'"),
                        image_after=inside(images, img1, where, "'img1'"),
                        captions=entry["sents"],
                        origin=where,
                        columns={"image_before": "img0", "image_after": "img1", "captions": "sents"},
                    )
                )
            splits[split] = pairs
        return splits

    @staticmethod
    def _image_folder(root: Path, annotations: Path, train: list) -> Path:
        candidates = list(dict.fromkeys([annotations / "images", root / "images", annotations]))
        first = train[0].get("img0") if isinstance(train, list) and train and isinstance(train[0], dict) else None
        for folder in candidates:
            if isinstance(first, str) and (folder / first).is_file():
                return folder
        existing = [folder for folder in candidates if folder.is_dir() and folder.name == "images"]
        if existing:  # the missing-files check then names every absent image
            return existing[0]
        raise CaptionSourceError(root, f"no image folder: the first training image {first!r} is in none of "
                                   + ", ".join(str(c) for c in candidates))
