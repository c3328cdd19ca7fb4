"""Synthetic VisMin: minimal-change image pairs with ground truth, in the upstream layout.

Each sample is two rendered scenes that differ in exactly one thing, of one VisMin category:

- ``object``: one object's kind changes (a red circle becomes a red star);
- ``attribute``: one object's colour, size or texture changes;
- ``counting``: the number of identical objects changes;
- ``relation``: two objects swap places (left of / right of, above / below).

``text_i`` describes ``image_i``. :func:`write_bench` and :func:`write_train` write what
``mair-lab/vismin-bench`` and ``mair-lab/vismin`` hold (same columns, ``save_to_disk`` form), so the
builder reads synthetic and real data through one code path.

    >>> samples = list(generate_bench(n=8, seed=0, image_size=(64, 48)))
    >>> sorted({s["category"] for s in samples})
    ['attribute', 'counting', 'object', 'relation']
    >>> s = samples[0]; s["text_0"] != s["text_1"] and s["image_0"]["bytes"] != s["image_1"]["bytes"]
    True
"""

from __future__ import annotations

import json
import random
import tempfile
from collections.abc import Iterator
from pathlib import Path

from diffbench.data.synth.scenes import COLORS, SHAPES, SIZES, TEXTURES, Scene, Shape, bounding_box, render
from diffbench.vismin.schema import CATEGORIES, IMAGE_QUESTION, TEXT_QUESTION

# ``datasets`` (about a second to import) is imported by the two functions that write the release: this
# module is on the CLI's start-up path (the build command imports ``diffbench.data.samples``, which imports it).

# The share of each category (vismin_schema.CATEGORIES) in the 2,084 rows of the real benchmark. The
# samples are generated in this dict's order (which differs from the published tables' order): changing
# it would change the samples a seed gives.
CATEGORY_COUNTS = {"object": 579, "attribute": 294, "counting": 589, "relation": 622}
DEFAULT_N = 160  # a few dozen samples per category
MAX_RETRIES = 200  # draws tried for an unseen caption pair before a repeat is accepted
NUMBER_WORDS = ("zero", "one", "two", "three", "four", "five")


def split_counts(n: int) -> dict[str, int]:
    """Share ``n`` samples among the categories in the real benchmark's proportions.

    >>> split_counts(2084)
    {'object': 579, 'attribute': 294, 'counting': 589, 'relation': 622}
    """
    if n < len(CATEGORIES):
        raise ValueError(f"n must be at least {len(CATEGORIES)} (one sample per category), got {n}")
    total = sum(CATEGORY_COUNTS.values())
    exact = {c: n * k / total for c, k in CATEGORY_COUNTS.items()}
    counts = {c: max(1, int(v)) for c, v in exact.items()}
    by_remainder = sorted(CATEGORY_COUNTS, key=lambda c: exact[c] - int(exact[c]), reverse=True)
    for c in by_remainder[: n - sum(counts.values())]:
        counts[c] += 1
    return counts


def describe(shape: Shape) -> str:
    texture = "" if shape.texture == "plain" else f"{shape.texture} "
    return f"a {shape.size} {texture}{shape.color} {shape.kind}"


def _random_shape(rng: random.Random, x: float, y: float, **fixed) -> Shape:
    attrs = {
        "kind": rng.choice(SHAPES),
        "color": rng.choice(list(COLORS)),
        "size": rng.choice(list(SIZES)),
        "texture": rng.choice(TEXTURES),
    }
    attrs.update(fixed)
    return Shape(x=x, y=y, **attrs)


def _other(rng: random.Random, options, current):
    return rng.choice([o for o in options if o != current])


def _pair_object(rng: random.Random):
    a = _random_shape(rng, 0.3 + rng.uniform(-0.05, 0.05), 0.5 + rng.uniform(-0.1, 0.1))
    b = _random_shape(rng, 0.72 + rng.uniform(-0.05, 0.05), 0.5 + rng.uniform(-0.1, 0.1))
    a1 = a.moved(kind=_other(rng, SHAPES, a.kind))
    return [a, b], [a1, b], lambda s: f"{describe(s[0])} next to {describe(s[1])}"


def _pair_attribute(rng: random.Random):
    a = _random_shape(rng, 0.3 + rng.uniform(-0.05, 0.05), 0.5 + rng.uniform(-0.1, 0.1))
    b = _random_shape(rng, 0.72 + rng.uniform(-0.05, 0.05), 0.5 + rng.uniform(-0.1, 0.1))
    attribute = rng.choice(("color", "size", "texture"))
    options = {"color": list(COLORS), "size": list(SIZES), "texture": TEXTURES}[attribute]
    a1 = a.moved(**{attribute: _other(rng, options, getattr(a, attribute))})
    return [a, b], [a1, b], lambda s: f"{describe(s[0])} next to {describe(s[1])}"


def _row_of(count: int, kind: str, color: str, y: float) -> list[Shape]:
    return [Shape(kind, color, x=(i + 1) / (count + 1), y=y) for i in range(count)]


def _pair_counting(rng: random.Random):
    kind, color = rng.choice(SHAPES), rng.choice(list(COLORS))
    n0 = rng.randint(1, 5)
    n1 = _other(rng, range(1, 6), n0)
    y = 0.5 + rng.uniform(-0.1, 0.1)

    def caption(shapes):
        n = len(shapes)
        return f"{NUMBER_WORDS[n]} {color} {kind}{'s' if n > 1 else ''}"

    return _row_of(n0, kind, color, y), _row_of(n1, kind, color, y), caption


def _pair_relation(rng: random.Random):
    a = _random_shape(rng, 0.0, 0.0)
    b = _random_shape(rng, 0.0, 0.0, kind=_other(rng, SHAPES, a.kind))
    if rng.random() < 0.5:
        first, second, words = (0.28, 0.5), (0.72, 0.5), ("to the left of", "to the right of")
    else:
        first, second, words = (0.5, 0.27), (0.5, 0.73), ("above", "below")
    before = [a.moved(x=first[0], y=first[1]), b.moved(x=second[0], y=second[1])]
    after = [a.moved(x=second[0], y=second[1]), b.moved(x=first[0], y=first[1])]
    relation = {id(before): words[0], id(after): words[1]}
    return before, after, lambda s: f"{describe(s[0])} {relation[id(s)]} {describe(s[1])}"


PAIR_MAKERS = {
    "object": _pair_object,
    "attribute": _pair_attribute,
    "counting": _pair_counting,
    "relation": _pair_relation,
}


def generate_pairs(n: int = DEFAULT_N, seed: int = 0) -> Iterator[tuple[str, int, list[Shape], list[Shape], str, str]]:
    """Yield ``(category, id, shapes_0, shapes_1, text_0, text_1)``; ``id`` restarts in each category."""
    for c_index, (category, count) in enumerate(split_counts(n).items()):
        rng = random.Random(seed * 1009 + c_index)
        seen: set[tuple[str, str]] = set()
        made = retries = 0
        while made < count:
            shapes_0, shapes_1, caption = PAIR_MAKERS[category](rng)
            texts = (caption(shapes_0), caption(shapes_1))
            # Keep captions unique where the scene space allows, as in the real set; once it is
            # nearly exhausted (large n, few caption forms), accept a repeat rather than loop on.
            if texts in seen and retries < MAX_RETRIES:
                retries += 1
                continue
            retries = 0
            seen.add(texts)
            yield category, made, shapes_0, shapes_1, texts[0], texts[1]
            made += 1


def _image(shapes: list[Shape], image_size: tuple[int, int]) -> dict:
    return {"bytes": render(Scene(shapes), size=image_size), "path": None}


def generate_bench(n: int = DEFAULT_N, seed: int = 0, image_size: tuple[int, int] = (320, 240)) -> Iterator[dict]:
    """Rows of ``mair-lab/vismin-bench`` (its columns, its ``id`` convention)."""
    for category, sample_id, shapes_0, shapes_1, text_0, text_1 in generate_pairs(n, seed):
        yield {
            "image_0": _image(shapes_0, image_size),
            "text_0": text_0,
            "image_1": _image(shapes_1, image_size),
            "text_1": text_1,
            "category": category,
            "id": sample_id,
            "text_question_0": TEXT_QUESTION.format(text_0=text_0, text_1=text_1),
            "text_question_1": TEXT_QUESTION.format(text_0=text_0, text_1=text_1),
            "image_question_0": IMAGE_QUESTION.format(caption=text_0),
            "image_question_1": IMAGE_QUESTION.format(caption=text_1),
        }


def generate_train(n: int = DEFAULT_N, seed: int = 1, image_size: tuple[int, int] = (320, 240)) -> Iterator[dict]:
    """Rows of ``mair-lab/vismin``: each source image, then its edited version pointing back to it."""
    for category, sample_id, shapes_0, shapes_1, text_0, text_1 in generate_pairs(n, seed):
        source_id = f"{category}_{sample_id:06d}"
        for image_id, shapes, caption, source, edit_category in (
            (source_id, shapes_0, text_0, "", ""),
            (f"{source_id}_edited", shapes_1, text_1, source_id, category),
        ):
            boxes = [bounding_box(s, image_size) for s in shapes]
            yield {
                "image_id": image_id,
                "image": _image(shapes, image_size),
                "caption": caption,
                "bounding_boxes": json.dumps(boxes),
                "source_image_id": source,
                "category": edit_category,
            }


def _upstream_features(split: str):
    from datasets import Features, Image, Value  # late: see the note at the imports

    if split == "test":
        names = ["image_0", "text_0", "image_1", "text_1", "category", "id"]
        names += ["text_question_0", "text_question_1", "image_question_0", "image_question_1"]
        types = {"image_0": Image(), "image_1": Image(), "id": Value("int64")}
    else:
        names = ["image_id", "image", "caption", "bounding_boxes", "source_image_id", "category"]
        types = {"image": Image()}
    return Features({name: types.get(name, Value("string")) for name in names})


def write_save_to_disk(rows: Iterator[dict], out_dir: Path, split: str, num_shards: int = 1) -> Path:
    """Write rows as ``DatasetDict({split: ...}).save_to_disk(out_dir / "data")``, the upstream layout.

    Rows are streamed to a scratch Arrow file first, so memory stays flat whatever their number.
    """
    from datasets import Dataset, DatasetDict  # late: see the note at the imports
    from datasets.arrow_writer import ArrowWriter
    from datasets.utils import are_progress_bars_disabled, disable_progress_bars, enable_progress_bars

    out_dir = Path(out_dir)
    bars_were_disabled = are_progress_bars_disabled()
    disable_progress_bars()  # "Saving the dataset" would be noise inside `diffbench build`
    with tempfile.TemporaryDirectory(prefix="diffbench-synth-") as scratch:
        scratch_file = str(Path(scratch) / "rows.arrow")
        with ArrowWriter(features=_upstream_features(split), path=scratch_file, writer_batch_size=200) as writer:
            for row in rows:
                writer.write(row)
            writer.finalize()
        dataset = Dataset.from_file(scratch_file, split=split)
        try:
            DatasetDict({split: dataset}).save_to_disk(str(out_dir / "data"), num_shards={split: num_shards})
        finally:
            if not bars_were_disabled:
                enable_progress_bars()
        del dataset
    return out_dir


def write_bench(out_dir: Path, n: int = DEFAULT_N, seed: int = 0, image_size=(320, 240), num_shards: int = 1) -> Path:
    """Write a synthetic ``mair-lab/vismin-bench`` folder and return it."""
    return write_save_to_disk(generate_bench(n, seed, image_size), out_dir, "test", num_shards)


def write_train(out_dir: Path, n: int = DEFAULT_N, seed: int = 1, image_size=(320, 240), num_shards: int = 1) -> Path:
    """Write a synthetic ``mair-lab/vismin`` (training) folder and return it."""
    return write_save_to_disk(generate_train(n, seed, image_size), out_dir, "train", num_shards)


def write_release(out_dir: Path, n: int | None = DEFAULT_N, seed: int = 0, image_size=(320, 240)) -> Path:
    """Both upstream repos under ``out_dir``: ``bench/`` (seed ``seed``) and ``train/`` (seed ``seed + 1``),
    the folder ``diffbench build vismin --source`` reads every configuration from."""
    n = n or DEFAULT_N
    out_dir = Path(out_dir)
    write_bench(out_dir / "bench", n=n, seed=seed, image_size=image_size)
    write_train(out_dir / "train", n=n, seed=seed + 1, image_size=image_size)
    return out_dir


#: dataset name -> writer ``(out_dir, n, seed, image_size) -> folder to build from``
WRITERS = {"vismin": write_release}
