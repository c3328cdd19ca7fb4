"""Synthetic image-difference-captioning releases: rendered scene pairs and captions saying what changed.

:func:`generate_pairs` makes before/after scenes that differ by one or two of OmniDiff's change types
(all 12 that a rendered scene can show):

- ``addition`` / ``disappearance`` / ``removal``: an object appears, vanishes, is taken away;
- ``substitution``: an object is replaced by another kind; ``size`` / ``color``: an attribute changes;
- ``orientation``: an object is rotated; ``pose``: a stick figure raises or lowers its arms;
- ``text``: the label printed on an object changes; ``counting``: a row of objects grows or shrinks;
- ``illumination``: the whole scene gets brighter or darker; ``viewpoint``: the whole scene shifts.

Writers put them in each upstream layout the builders read: OmniDiff's documented generic layout
(:func:`write_omnidiff`), and the official layouts of Spot-the-Diff, Image Editing Request,
CLEVR-Change and CLEVR-DC, so ``--source sample`` goes through the same code as a real download.

    >>> pairs = list(generate_pairs(n=24, seed=0, image_size=(32, 32)))
    >>> sorted({t for p in pairs for t in p["change_types"]}) == sorted(OMNIDIFF_CHANGE_TYPES)
    True
    >>> pairs[0]["before"] != pairs[0]["after"]
    True
"""

from __future__ import annotations

import io
import json
import random
from collections.abc import Iterator
from pathlib import Path

from PIL import Image, ImageDraw

from diffbench.data.synth.scenes import COLORS, SHAPES, Scene, Shape, render

OMNIDIFF_CHANGE_TYPES = (
    "viewpoint", "illumination", "addition", "disappearance", "removal", "substitution",
    "size", "color", "orientation", "pose", "text", "counting",
)
DEFAULT_N = 48  # four pairs per change type
SCENARIOS = ("tabletop", "shelf", "floor", "poster")
NUMBER_WORDS = ("no", "one", "two", "three", "four", "five")
POSITIONS = [(0.25, 0.3), (0.75, 0.3), (0.25, 0.72), (0.75, 0.72), (0.5, 0.5)]
SPLIT_SHARES = (("train", 0.6), ("validation", 0.2), ("test", 0.2))


def _where(shape: Shape) -> str:
    vertical = "top" if shape.y < 0.45 else "bottom" if shape.y > 0.55 else "middle"
    horizontal = "left" if shape.x < 0.45 else "right" if shape.x > 0.55 else "centre"
    return f"{vertical} {horizontal}" if vertical != "middle" else horizontal


def _name(shape: Shape) -> str:
    return f"{shape.size} {shape.color} {shape.kind}"


class _State:
    """A scene being edited, plus the stick figure (pose) and the row of identical objects (counting)."""

    def __init__(self, rng: random.Random):
        self.rng = rng
        self.shapes = [
            Shape(rng.choice(SHAPES), rng.choice(list(COLORS)), x=x, y=y, size=rng.choice(("small", "large")))
            for x, y in rng.sample(POSITIONS[:4], 2)
        ]
        self.figure: str | None = None  # "up" / "down": arms of a stick figure
        self.row: tuple[str, str, int] | None = None  # kind, colour, count
        self.brightness = 1.0
        self.offset = (0.0, 0.0)

    def copy(self) -> _State:
        other = _State.__new__(_State)
        other.__dict__.update(self.__dict__)
        other.shapes = list(self.shapes)
        return other

    def free_position(self):
        taken = {(s.x, s.y) for s in self.shapes}
        free = [p for p in POSITIONS[:4] if p not in taken]
        return self.rng.choice(free) if free else None


#: the changes that act on one of the scene's objects (none applies to an empty scene)
_OBJECT_CHANGES = ("disappearance", "removal", "substitution", "size", "color", "orientation", "text")


def _change(state: _State, change: str) -> tuple[str, str] | None:
    """Apply ``change`` to ``state``; (description, editing request), or ``None`` if it cannot apply."""
    if change in _OBJECT_CHANGES and not state.shapes:
        return None
    # Drawn for every change, used or not: a seed gives the samples it always gave.
    index = state.rng.randrange(len(state.shapes)) if state.shapes else 0
    if change not in CHANGES:
        raise ValueError(f"unknown change type {change!r}")
    return CHANGES[change](state, index)


def _add(state: _State, index: int) -> tuple[str, str] | None:
    spot = state.free_position()
    if spot is None:
        return None
    new = Shape(state.rng.choice(SHAPES), state.rng.choice(list(COLORS)), x=spot[0], y=spot[1])
    state.shapes.append(new)
    return f"a {_name(new)} has been added at the {_where(new)}", f"add a {new.color} {new.kind} at the {_where(new)}"


def _disappear(state: _State, index: int) -> tuple[str, str]:
    target = state.shapes.pop(index)
    return f"the {_name(target)} that was at the {_where(target)} is no longer there", f"get rid of the {target.kind}"


def _remove(state: _State, index: int) -> tuple[str, str]:
    target = state.shapes.pop(index)
    return f"the {_name(target)} at the {_where(target)} has been removed", f"remove the {target.color} {target.kind}"


def _substitute(state: _State, index: int) -> tuple[str, str]:
    target = state.shapes[index]
    new = target.moved(kind=state.rng.choice([k for k in SHAPES if k != target.kind]))
    state.shapes[index] = new
    return (f"the {_name(target)} at the {_where(target)} has been replaced by a {new.color} {new.kind}",
            f"replace the {target.kind} with a {new.kind}")


def _resize(state: _State, index: int) -> tuple[str, str]:
    target = state.shapes[index]
    new = target.moved(size="small" if target.size == "large" else "large")
    state.shapes[index] = new
    grew = "bigger" if new.size == "large" else "smaller"
    return (f"the {target.color} {target.kind} at the {_where(target)} has become {grew}",
            f"make the {target.kind} {grew}")


def _recolour(state: _State, index: int) -> tuple[str, str]:
    target = state.shapes[index]
    new = target.moved(color=state.rng.choice([c for c in COLORS if c != target.color]))
    state.shapes[index] = new
    return (f"the {target.kind} at the {_where(target)} has changed colour from {target.color} to {new.color}",
            f"make the {target.color} {target.kind} {new.color}")


def _turn(state: _State, index: int) -> tuple[str, str] | None:
    """Turn a triangle or a star upside down (the other shapes look the same turned 180 degrees)."""
    turnable = [k for k, s in enumerate(state.shapes) if s.kind in ("triangle", "star")]
    if not turnable:
        return None
    index = state.rng.choice(turnable)
    target = state.shapes[index]
    state.shapes[index] = target.moved(angle=(target.angle + 180) % 360)
    return (f"the {target.color} {target.kind} at the {_where(target)} has been turned upside down",
            f"flip the {target.kind}")


def _relabel(state: _State, index: int) -> tuple[str, str] | None:
    labelled = [k for k, s in enumerate(state.shapes) if s.label]
    if not labelled:
        return None
    index = state.rng.choice(labelled)
    target = state.shapes[index]
    old = target.label
    label = state.rng.choice([c for c in "ABCDEFGH" if c != old])
    state.shapes[index] = target.moved(label=label)
    return (f"the letter on the {target.color} {target.kind} has changed from {old} to {label}",
            f"change the letter {old} to {label}")


def _pose(state: _State, index: int) -> tuple[str, str]:
    before = state.figure or state.rng.choice(("up", "down"))
    state.figure = "down" if before == "up" else "up"
    verb = "raised" if state.figure == "up" else "lowered"
    return f"the stick figure has {verb} its arms", f"make the figure's arms point {state.figure}"


def _count(state: _State, index: int) -> tuple[str, str]:
    rng = state.rng
    kind, color, count = state.row or (rng.choice(SHAPES), rng.choice(list(COLORS)), rng.randint(1, 4))
    new = rng.choice([c for c in range(1, 6) if c != count])
    state.row = (kind, color, new)
    more = "more" if new > count else "fewer"
    return (f"there are now {NUMBER_WORDS[new]} {color} {kind}s in the row instead of {NUMBER_WORDS[count]}, "
            f"{NUMBER_WORDS[abs(new - count)]} {more}", f"make it {NUMBER_WORDS[new]} {kind}s")


def _relight(state: _State, index: int) -> tuple[str, str]:
    state.brightness = state.rng.choice((0.55, 1.35))
    lighter = "darker" if state.brightness < 1 else "brighter"
    return f"the whole scene is {lighter}: the lighting has changed", f"make the photo {lighter}"


def _move_camera(state: _State, index: int) -> tuple[str, str]:
    state.offset = (state.rng.choice((-0.12, 0.12)), state.rng.choice((-0.08, 0.08)))
    side = "left" if state.offset[0] > 0 else "right"
    return (f"the camera has moved to the {side}: every object appears shifted, none has changed",
            f"shift the view to the {side}")


#: OmniDiff change type -> how it is applied to a scene (``index``: the object drawn for it)
CHANGES = {
    "addition": _add, "disappearance": _disappear, "removal": _remove, "substitution": _substitute,
    "size": _resize, "color": _recolour, "orientation": _turn, "text": _relabel, "pose": _pose,
    "counting": _count, "illumination": _relight, "viewpoint": _move_camera,
}


def _draw(state: _State, size: tuple[int, int]) -> bytes:
    shapes = list(state.shapes)
    if state.row is not None:
        kind, color, count = state.row
        shapes += [Shape(kind, color, x=(i + 1) / (count + 1), y=0.9) for i in range(count)]
    scene = Scene(shapes, brightness=state.brightness, offset=state.offset)
    if state.figure is None:
        return render(scene, size=size, image_format="PNG")
    image = Image.open(io.BytesIO(render(scene, size=size, image_format="PNG"))).convert("RGB")
    draw = ImageDraw.Draw(image)
    w, h = size
    cx, top = (0.5 + state.offset[0]) * w, (0.25 + state.offset[1]) * h
    r, width = max(2, h // 16), max(1, h // 40)
    draw.ellipse([cx - r, top - r, cx + r, top + r], outline=(30, 30, 30), width=width)
    hip, shoulder = top + h * 0.3, top + h * 0.1
    draw.line([(cx, top + r), (cx, hip)], fill=(30, 30, 30), width=width)
    for side in (-1, 1):
        draw.line([(cx, hip), (cx + side * w * 0.07, hip + h * 0.15)], fill=(30, 30, 30), width=width)
        hand = shoulder - h * 0.12 if state.figure == "up" else shoulder + h * 0.12
        draw.line([(cx, shoulder), (cx + side * w * 0.1, hand)], fill=(30, 30, 30), width=width)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _sentence(parts: list[str]) -> str:
    text = "; ".join(parts) if len(parts) < 3 else ", ".join(parts[:-1]) + " and " + parts[-1]
    return text[0].upper() + text[1:] + "."


def generate_pairs(n: int = DEFAULT_N, seed: int = 0, image_size: tuple[int, int] = (320, 240)) -> Iterator[dict]:
    """Yield dicts: ``id``, ``before``/``after`` (PNG bytes), ``change_types``, ``caption`` (what changed,
    OmniDiff style), ``sentences`` (one short sentence a change), ``requests`` (editing requests),
    ``scenario``. Every change type appears once ``n >= 12``; about one pair in four has two changes."""
    rng = random.Random(seed)
    for i in range(n):
        main = OMNIDIFF_CHANGE_TYPES[i % len(OMNIDIFF_CHANGE_TYPES)]
        changes = [main]
        if rng.random() < 0.25:
            changes.append(rng.choice([c for c in OMNIDIFF_CHANGE_TYPES if c != main]))
        state = _State(rng)
        if "pose" in changes:
            state.figure = rng.choice(("up", "down"))
        if "counting" in changes:
            state.row = (rng.choice(SHAPES), rng.choice(list(COLORS)), rng.randint(1, 4))
        if "text" in changes:  # the first object carries a letter
            state.shapes[0] = state.shapes[0].moved(label=rng.choice("ABCDEF"), size="large")
        if "orientation" in changes:  # the second object is one whose half-turn shows
            state.shapes[1] = state.shapes[1].moved(kind=rng.choice(("triangle", "star")))
        before = state.copy()
        described, applied = [], []
        for change in changes:
            result = _change(state, change)
            if result is not None:
                described.append(result)
                applied.append(change)
        sentences = [d for d, _ in described]
        yield {
            "id": f"synthetic_{seed}_{i:05d}",
            "before": _draw(before, image_size),
            "after": _draw(state, image_size),
            "change_types": applied,
            "caption": _sentence(sentences) + (" Everything else in the scene is the same." if "viewpoint" not in applied else ""),
            "sentences": sentences,
            "requests": [r for _, r in described],
            "scenario": SCENARIOS[rng.randrange(len(SCENARIOS))],
        }


def _split_of(index: int, n: int) -> str:
    position, start = index / max(n, 1), 0.0
    for split, share in SPLIT_SHARES:
        start += share
        if position < start:
            return split
    return SPLIT_SHARES[-1][0]


def _write_json(path: Path, value) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value, indent=1), encoding="utf-8")


# -- OmniDiff (documented generic layout) -------------------------------------------------------------


def write_omnidiff(out_dir: Path, n: int | None = DEFAULT_N, seed: int = 0, image_size=(320, 240)) -> Path:
    """``<split>.jsonl`` (train / validation / test) + ``images/``: the generic OmniDiff layout."""
    n = n or DEFAULT_N
    out_dir = Path(out_dir)
    (out_dir / "images").mkdir(parents=True, exist_ok=True)
    lines: dict[str, list[str]] = {split: [] for split, _ in SPLIT_SHARES}
    for index, pair in enumerate(generate_pairs(n, seed, image_size)):
        before, after = f"images/{pair['id']}_before.png", f"images/{pair['id']}_after.png"
        (out_dir / before).write_bytes(pair["before"])
        (out_dir / after).write_bytes(pair["after"])
        record = {
            "id": pair["id"], "image_before": before, "image_after": after, "captions": [pair["caption"]],
            "change_types": pair["change_types"], "scenario": pair["scenario"], "domain": "synthetic",
        }
        lines[_split_of(index, n)].append(json.dumps(record))
    for split, records in lines.items():
        (out_dir / f"{split}.jsonl").write_text("".join(r + "\n" for r in records), encoding="utf-8")
    return out_dir


# -- the official layouts of the classic sets ---------------------------------------------------------


def write_spot_the_diff(out_dir: Path, n: int | None = DEFAULT_N, seed: int = 0, image_size=(224, 224)) -> Path:
    """``data/annotations/{train,val,test}.json`` + ``data/resized_images/<id>.png, <id>_2.png``.

    As upstream, a pair's sentences may come in several entries of one ``img_id``; lower-case text.
    """
    n = n or DEFAULT_N
    out_dir = Path(out_dir)
    images = out_dir / "data" / "resized_images"
    images.mkdir(parents=True, exist_ok=True)
    entries: dict[str, list[dict]] = {"train": [], "val": [], "test": []}
    upstream = {"train": "train", "validation": "val", "test": "test"}
    for index, pair in enumerate(generate_pairs(n, seed, image_size)):
        img_id = str(1000 + index)
        (images / f"{img_id}.png").write_bytes(pair["before"])
        (images / f"{img_id}_2.png").write_bytes(pair["after"])
        split = entries[upstream[_split_of(index, n)]]
        sentences = [s.lower() for s in pair["sentences"]]
        split.append({"img_id": img_id, "sentences": sentences[:1]})
        if len(sentences) > 1:  # a second annotator's entry for the same pair
            split.append({"img_id": img_id, "sentences": sentences[1:]})
    for split, records in entries.items():
        _write_json(out_dir / "data" / "annotations" / f"{split}.json", records)
    return out_dir


def write_image_editing_request(out_dir: Path, n: int | None = DEFAULT_N, seed: int = 0, image_size=(320, 240)) -> Path:
    """``{train,valid,test}.json`` (``img0``, ``img1``, ``sents``, ``uid``) + ``images/``."""
    n = n or DEFAULT_N
    out_dir = Path(out_dir)
    (out_dir / "images").mkdir(parents=True, exist_ok=True)
    entries: dict[str, list[dict]] = {"train": [], "valid": [], "test": []}
    upstream = {"train": "train", "validation": "valid", "test": "test"}
    for index, pair in enumerate(generate_pairs(n, seed, image_size)):
        img0, img1 = f"Synthetic.com_{index:05d}_{index:05d}.png", f"Synthetic.com_{index:05d}_edit.png"
        (out_dir / "images" / img0).write_bytes(pair["before"])
        (out_dir / "images" / img1).write_bytes(pair["after"])
        split = upstream[_split_of(index, n)]
        request = " and ".join(pair["requests"])
        sents = [request] if split == "train" else [request, request.capitalize(), "please " + request]
        entries[split].append({"img0": img0, "img1": img1, "sents": sents, "uid": f"Synthetic_{index}"})
    for split, records in entries.items():
        _write_json(out_dir / f"{split}.json", records)
    return out_dir


CLEVR_CHANGE_TYPES = {"color": "color", "material": "texture", "add": "addition", "drop": "removal", "move": None}


def _clevr_pair(rng: random.Random, change: str, image_size, camera_moves: bool = False):
    """CLEVR-like: default, semantic change of ``change``, and a distractor (viewpoint / lighting only);
    ``camera_moves`` shifts the semantic after image too (CLEVR-DC). Returns the three PNGs and the
    change and no-change captions."""
    state = _State(rng)
    state.shapes.append(Shape(rng.choice(SHAPES), rng.choice(list(COLORS)), x=0.5, y=0.5))
    default = state.copy()
    target = state.shapes[0]
    if change == "color":
        new = target.moved(color=rng.choice([c for c in COLORS if c != target.color]))
        captions = [f"the {target.color} {target.kind} changed to {new.color}", f"the {target.kind} became {new.color}"]
    elif change == "material":
        new = target.moved(texture="striped" if target.texture == "plain" else "plain")
        captions = [f"the {target.color} {target.kind} changed its material", f"the {target.kind} turned {new.texture}"]
    elif change == "move":
        spot = state.free_position() or (0.5, 0.85)
        new = target.moved(x=spot[0], y=spot[1])
        captions = [f"the {target.color} {target.kind} moved", f"the {target.color} {target.kind} changed its location"]
    else:
        new = None
    semantic = state.copy()
    if change == "add":
        spot = state.free_position() or (0.5, 0.85)
        added = Shape(rng.choice(SHAPES), rng.choice(list(COLORS)), x=spot[0], y=spot[1])
        semantic.shapes.append(added)
        captions = [f"a {added.color} {added.kind} has been added", f"someone added a {added.color} {added.kind}"]
    elif change == "drop":
        semantic.shapes.pop(0)
        captions = [f"the {target.color} {target.kind} disappeared", f"the {target.color} {target.kind} is missing"]
    else:
        semantic.shapes[0] = new
    if camera_moves:
        _change(semantic, "viewpoint")
    distractor = default.copy()
    _change(distractor, rng.choice(("viewpoint", "illumination")))
    no_change = ["no change was made", "the scene remains the same", "nothing has changed"]
    return _draw(default, image_size), _draw(semantic, image_size), _draw(distractor, image_size), captions, no_change


def write_clevr_change(out_dir: Path, n: int | None = DEFAULT_N, seed: int = 0, image_size=(320, 240)) -> Path:
    """``images/`` (``CLEVR_default_%06d.png``), ``sc_images/`` (``CLEVR_semantic_``), ``nsc_images/``
    (``CLEVR_nonsemantic_``), ``change_captions.json``, ``no_change_captions.json``, ``splits.json``
    (index lists into the sorted ``images/`` names) and ``type_mapping.json`` (change type -> the
    numbered tails ``"000123.png"``, as the official file of Seth-Park/RobustChangeCaptioning)."""
    n = n or DEFAULT_N
    out_dir = Path(out_dir)
    for folder in ("images", "sc_images", "nsc_images"):
        (out_dir / folder).mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    change_captions, no_change_captions = {}, {}
    type_mapping: dict[str, list[str]] = {t: [] for t in CLEVR_CHANGE_TYPES}
    splits: dict[str, list[int]] = {"train": [], "val": [], "test": []}
    upstream = {"train": "train", "validation": "val", "test": "test"}
    for index in range(n):
        change = list(CLEVR_CHANGE_TYPES)[index % len(CLEVR_CHANGE_TYPES)]
        default, semantic, distractor, captions, no_change = _clevr_pair(rng, change, image_size)
        name = f"CLEVR_default_{index:06d}.png"
        (out_dir / "images" / name).write_bytes(default)
        (out_dir / "sc_images" / f"CLEVR_semantic_{index:06d}.png").write_bytes(semantic)
        (out_dir / "nsc_images" / f"CLEVR_nonsemantic_{index:06d}.png").write_bytes(distractor)
        change_captions[name] = captions
        no_change_captions[name] = no_change
        type_mapping[change].append(f"{index:06d}.png")
        splits[upstream[_split_of(index, n)]].append(index)
    _write_json(out_dir / "change_captions.json", change_captions)
    _write_json(out_dir / "no_change_captions.json", no_change_captions)
    _write_json(out_dir / "type_mapping.json", type_mapping)
    _write_json(out_dir / "splits.json", splits)
    return out_dir


CLEVR_DC_ACTIONS = ("color", "texture", "add", "remove", "move", "no_change")
CLEVR_DC_IMAGES_PER_ACTION = 8000  # the release's block of numbers per action (README order; inferred)


def write_clevr_dc(out_dir: Path, n: int | None = DEFAULT_N, seed: int = 0, image_size=(320, 240)) -> Path:
    """The published layout of hsgkim/clevr-dc: ``captions.json`` keyed by the bare image number,
    ``split.json`` listing image numbers, ``bef/N.png`` and ``aft/N.png`` with unpadded names; the
    camera always moves. As in the release, the numbers of action k are the block
    ``k * 8000 ...``: the sample takes the first ``n / 6`` numbers of each block (unpadded names such
    as ``10.png`` sort before ``2.png``), split 60 / 20 / 20 (taken position by position across the
    blocks, so that a small sample still has every split)."""
    n = n or DEFAULT_N
    out_dir = Path(out_dir)
    for folder in ("bef", "aft"):
        (out_dir / folder).mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    captions: dict[str, list[str]] = {}
    splits: dict[str, list[int]] = {"train": [], "val": [], "test": []}
    upstream = {"train": "train", "validation": "val", "test": "test"}
    clevr_change = {"color": "color", "texture": "material", "add": "add", "remove": "drop", "move": "move"}
    for index in range(n):  # position by position: the first number of every block, then the second, ...
        position, block = divmod(index, len(CLEVR_DC_ACTIONS))
        action = CLEVR_DC_ACTIONS[block]
        change = clevr_change.get(action, "color")
        default, semantic, distractor, texts, no_change = _clevr_pair(rng, change, image_size, camera_moves=True)
        after, texts = (distractor, no_change) if action == "no_change" else (semantic, texts)
        number = block * CLEVR_DC_IMAGES_PER_ACTION + position
        (out_dir / "bef" / f"{number}.png").write_bytes(default)
        (out_dir / "aft" / f"{number}.png").write_bytes(after)
        captions[str(number)] = texts
        splits[upstream[_split_of(index, n)]].append(number)
    _write_json(out_dir / "captions.json", captions)
    _write_json(out_dir / "split.json", {split: sorted(numbers) for split, numbers in splits.items()})
    return out_dir


#: dataset name -> writer ``(out_dir, n, seed, image_size) -> folder to build from``
WRITERS = {
    "omnidiff": write_omnidiff,
    "spot_the_diff": write_spot_the_diff,
    "image_editing_request": write_image_editing_request,
    "clevr_change": write_clevr_change,
    "clevr_dc": write_clevr_dc,
}
