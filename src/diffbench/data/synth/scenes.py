"""Rendered toy scenes: a few coloured shapes on a plain background, drawn with PIL.

A :class:`Scene` is a list of :class:`Shape` objects; :func:`render` turns it into encoded image
bytes. Everything is deterministic: the same scene always gives the same bytes.

    >>> scene = Scene([Shape("circle", "red", x=0.3, y=0.5), Shape("square", "blue", x=0.7, y=0.5)])
    >>> png = render(scene, size=(64, 48), image_format="PNG")
    >>> png[:4] == b"\\x89PNG"
    True
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass, field, replace

from PIL import Image, ImageDraw

SHAPES = ("circle", "square", "triangle", "star", "diamond")
COLORS = {
    "red": (220, 40, 40),
    "green": (40, 170, 60),
    "blue": (40, 80, 220),
    "yellow": (235, 200, 30),
    "purple": (140, 60, 180),
    "orange": (245, 130, 20),
}
SIZES = {"small": 0.09, "large": 0.17}  # radius as a fraction of the image height
TEXTURES = ("plain", "striped", "dotted")


@dataclass(frozen=True)
class Shape:
    """One object of a scene; ``x``/``y`` are the centre in [0, 1] image coordinates."""

    kind: str
    color: str
    x: float
    y: float
    size: str = "small"
    texture: str = "plain"
    angle: float = 0.0
    label: str = ""  # text printed on the shape (for OCR-style changes)

    def moved(self, **changes) -> Shape:
        return replace(self, **changes)


@dataclass(frozen=True)
class Scene:
    shapes: list[Shape] = field(default_factory=list)
    background: tuple[int, int, int] = (235, 235, 228)
    brightness: float = 1.0  # multiplies every pixel (illumination changes)
    offset: tuple[float, float] = (0.0, 0.0)  # whole-scene shift (viewpoint changes), in [0, 1] units

    def replaced(self, **changes) -> Scene:
        return replace(self, **changes)


def _polygon(kind: str, cx: float, cy: float, r: float, angle: float) -> list[tuple[float, float]]:
    if kind == "square":
        corners = [(-1, -1), (1, -1), (1, 1), (-1, 1)]
        points = [(r * 0.85 * a, r * 0.85 * b) for a, b in corners]
    elif kind == "triangle":
        points = [(r * math.cos(t), r * math.sin(t)) for t in (-math.pi / 2, math.pi / 6, 5 * math.pi / 6)]
    elif kind == "diamond":
        points = [(0, -r), (r * 0.75, 0), (0, r), (-r * 0.75, 0)]
    elif kind == "star":
        points = []
        for i in range(10):
            radius = r if i % 2 == 0 else r * 0.45
            t = -math.pi / 2 + i * math.pi / 5
            points.append((radius * math.cos(t), radius * math.sin(t)))
    else:
        raise ValueError(f"not a polygon shape: {kind!r}")
    cos_a, sin_a = math.cos(math.radians(angle)), math.sin(math.radians(angle))
    return [(cx + px * cos_a - py * sin_a, cy + px * sin_a + py * cos_a) for px, py in points]


def _draw_shape(canvas: Image.Image, shape: Shape, offset: tuple[float, float]) -> None:
    width, height = canvas.size
    r = SIZES[shape.size] * height
    cx, cy = (shape.x + offset[0]) * width, (shape.y + offset[1]) * height
    mask = Image.new("L", canvas.size, 0)
    draw = ImageDraw.Draw(mask)
    if shape.kind == "circle":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=255)
    else:
        draw.polygon(_polygon(shape.kind, cx, cy, r, shape.angle), fill=255)
    fill = Image.new("RGB", canvas.size, COLORS[shape.color])
    if shape.texture != "plain":
        pattern = ImageDraw.Draw(fill)
        step = max(4, int(r / 3))
        dark = tuple(int(c * 0.45) for c in COLORS[shape.color])
        if shape.texture == "striped":
            for i in range(-height, width, step):
                pattern.line([(i, 0), (i + height, height)], fill=dark, width=max(1, step // 3))
        else:  # dotted
            dot = max(1, step // 4)
            for px in range(0, width, step):
                for py in range(0, height, step):
                    pattern.ellipse([px - dot, py - dot, px + dot, py + dot], fill=dark)
    canvas.paste(fill, (0, 0), mask)
    if shape.label:
        ImageDraw.Draw(canvas).text((cx - r * 0.5, cy - r * 0.3), shape.label, fill=(255, 255, 255))


def render(scene: Scene, size: tuple[int, int] = (320, 240), image_format: str = "JPEG") -> bytes:
    """Draw ``scene`` at ``size`` (width, height) and return the encoded bytes."""
    canvas = Image.new("RGB", size, scene.background)
    for shape in scene.shapes:
        _draw_shape(canvas, shape, scene.offset)
    if scene.brightness != 1.0:
        canvas = canvas.point(lambda v: min(255, int(v * scene.brightness)))
    buffer = io.BytesIO()
    if image_format == "JPEG":
        canvas.save(buffer, format="JPEG", quality=90)
    else:
        canvas.save(buffer, format=image_format)
    return buffer.getvalue()


def bounding_box(shape: Shape, size: tuple[int, int]) -> list[float]:
    """``[x, y, width, height]`` in pixels, the COCO convention."""
    width, height = size
    r = SIZES[shape.size] * height
    return [round(shape.x * width - r, 1), round(shape.y * height - r, 1), round(2 * r, 1), round(2 * r, 1)]
