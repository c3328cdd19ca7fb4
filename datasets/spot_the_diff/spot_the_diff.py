"""Spot-the-Diff (Jhamtani & Berg-Kirkpatrick, EMNLP 2018): a `datasets` Arrow builder.

Pairs of 224x224 frames from fixed surveillance cameras, with human sentences saying what differs.

Official layout (github.com/harsh19/spot-the-diff), read from ``source=DIR``::

    DIR/data/annotations/{train,val,test}.json   a list of {"img_id": "76", "sentences": [...]}
    DIR/data/resized_images/<img_id>.png         the "before" frame
    DIR/data/resized_images/<img_id>_2.png       the "after" frame

(``DIR/annotations`` + ``DIR/resized_images`` without the ``data/`` level are accepted too.)

One row per distinct ``img_id`` of a split, in order of first appearance: an ``img_id`` can appear
in several annotation entries and all their sentences are gathered, in file order and verbatim, as
the references of that one pair. That is exactly the official ground truth of the upstream
repository (``code/predictions/ddla_rerun_gtfile.json``, scored by ``code/check_predictions.ipynb``
with COCOEvalCap): 8,566 / 1,493 / 1,270 pairs with 17,676 / 3,310 / 2,107 references, blank
sentences included (37 / 4 / 7 pairs have only an empty sentence; the official test evaluation keeps
its 7). A recipe that trains on non-blank references filters them itself (the card shows the line).
``img_id`` must be a string, as upstream. No change types (the release has none), ``domain``
``real``, ``scenario`` empty.

The mapping onto the shared schema is all this file holds; the schema, the checks and the batched,
byte-copying generation are ``diffbench.data.caption_builder`` (``pip install diffbench``), which is what
``diffbench build spot_the_diff`` runs. Why the base is shared that way: the ``diffbench.data.caption_builder`` docstring.
"""

from __future__ import annotations

from pathlib import Path

from diffbench.data.caption_builder import (
    CaptionBuilder, CaptionSourceError, Pair, expect, expect_string, inside, read_json,
)

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


class SpotTheDiff(CaptionBuilder):
    """Spot-the-Diff, from a local folder in the official layout (no official Hub repo)."""

    DESCRIPTION = _DESCRIPTION
    CITATION = _CITATION
    HOMEPAGE = "https://github.com/harsh19/spot-the-diff"
    LICENSE = "unknown"  # the upstream repository states no license
    CHANGE_TYPES = ()
    UPSTREAM_HAS_BLANK_CAPTIONS = True  # the official files and ground truth hold empty sentences

    def read_pairs(self, root: Path) -> dict[str, list[Pair]]:
        data = root / "data" if (root / "data" / "annotations").is_dir() else root
        annotations, images = data / "annotations", data / "resized_images"
        expect(annotations.is_dir(), root, "no data/annotations/ folder (the official Spot-the-Diff layout)")
        splits = {}
        for upstream, split in SPLITS.items():
            path = annotations / f"{upstream}.json"
            entries = read_json(path)
            expect(isinstance(entries, list), path, f"expected a list of annotations, got {type(entries).__name__}")
            gathered: dict[str, list] = {}
            first_entry: dict[str, int] = {}
            for index, entry in enumerate(entries):
                where = f"{path}, entry {index}"
                expect(isinstance(entry, dict), where, "an annotation must be an object")
                img_id = expect_string(entry.get("img_id"), where, "'img_id'")
                sentences = entry.get("sentences")
                if not isinstance(sentences, list) or not sentences:
                    raise CaptionSourceError(f"{where}, column 'sentences'",
                                         f"annotation without captions (img_id {img_id!r}): {sentences!r}")
                for number, sentence in enumerate(sentences):
                    if not isinstance(sentence, str):
                        raise CaptionSourceError(f"{where}, column 'sentences'",
                                             f"sentence {number} is not a string: {sentence!r} (img_id {img_id!r})")
                first_entry.setdefault(img_id, index)
                gathered.setdefault(img_id, []).extend(sentences)
            pairs = []
            for img_id, captions in gathered.items():
                where = f"{path}, entry {first_entry[img_id]}"
                pairs.append(
                    Pair(
                        id=img_id,
                        image_before=inside(images, f"{img_id}.png", where, "'img_id'"),
                        image_after=inside(images, f"{img_id}_2.png", where, "'img_id'"),
                        captions=captions,
                        origin=where,
                        columns={"image_before": "img_id", "image_after": "img_id", "captions": "sentences"},
                    )
                )
            splits[split] = pairs
        return splits
