"""The world's pictures: shapes on a light background (`shapes_image`), scenes of shapes on a 3 x 3 grid
(`scene_image`, `count_scene`) and a written word (`text_image`), as JPEG bytes with what is where."""
import io
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from mm1_jax.data.synthetic.world import COLOUR_NAMES, COLOURS, IMAGE_SIZE, OCR_WORDS, POSITIONS, SHAPES, pick


def _draw_shape(draw: ImageDraw.ImageDraw, shape: str, box: tuple[int, int, int, int], colour: tuple[int, ...]):
    x1, y1, x2, y2 = box
    if shape == "circle":
        draw.ellipse(box, fill=colour)
    elif shape == "square":
        draw.rectangle(box, fill=colour)
    else:
        draw.polygon([((x1 + x2) // 2, y1), (x2, y2), (x1, y2)], fill=colour)


def shapes_image(rng: np.random.Generator, n: int) -> tuple[bytes, list[dict[str, Any]]]:
    """n (1 or 2) shapes left to right on a light background; JPEG bytes and each shape's colour/shape/box."""
    img = Image.new("RGB", (IMAGE_SIZE, IMAGE_SIZE), (235, 235, 235))
    draw = ImageDraw.Draw(img)
    objects, slot = [], IMAGE_SIZE // n
    for i in range(n):
        colour, shape = pick(rng, COLOUR_NAMES), pick(rng, SHAPES)
        side = int(rng.integers(14, min(slot, 30)))
        x1 = i * slot + int(rng.integers(0, slot - side))
        y1 = int(rng.integers(0, IMAGE_SIZE - side))
        box = (x1, y1, x1 + side - 1, y1 + side - 1)
        _draw_shape(draw, shape, box, COLOURS[colour])
        objects.append({"colour": colour, "shape": shape, "box": box})
    return jpeg(img), objects


def scene_image(rng: np.random.Generator, n: int, size: int = 96, sides: tuple[int, int] | None = None
                ) -> tuple[bytes, list[dict[str, Any]]]:
    """n (1-9) shapes, one in each of n distinct cells of a 3 x 3 grid over a size x size picture, in reading order;
    JPEG bytes and each shape's colour / shape / box / cell (0-8) / position (`POSITIONS`). sides: the range of a
    shape's side in pixels (default size/8 .. size/5)."""
    lo, hi = sides or (size // 8, size // 5)
    img = Image.new("RGB", (size, size), (235, 235, 235))
    draw = ImageDraw.Draw(img)
    cell, objects = size // 3, []
    for c in sorted(int(c) for c in rng.choice(9, n, replace=False)):
        colour, shape = pick(rng, COLOUR_NAMES), pick(rng, SHAPES)
        side = int(rng.integers(lo, hi + 1))
        row, col = divmod(c, 3)
        x1 = col * cell + int(rng.integers(0, cell - side + 1))
        y1 = row * cell + int(rng.integers(0, cell - side + 1))
        box = (x1, y1, x1 + side - 1, y1 + side - 1)
        _draw_shape(draw, shape, box, COLOURS[colour])
        objects.append({"colour": colour, "shape": shape, "box": box, "cell": c, "position": POSITIONS[c]})
    return jpeg(img), objects


def text_image(rng: np.random.Generator) -> tuple[bytes, str]:
    """A word written in black on white (the OCR stand-in)."""
    word = pick(rng, OCR_WORDS)
    img = Image.new("RGB", (IMAGE_SIZE, IMAGE_SIZE), (255, 255, 255))
    draw = ImageDraw.Draw(img)
    font = ImageFont.load_default(size=18)
    x, y = int(rng.integers(0, 14)), int(rng.integers(4, 40))
    draw.text((x, y), word, fill=(0, 0, 0), font=font)
    return jpeg(img), word


def jpeg(img: Image.Image, quality: int = 95) -> bytes:
    """The picture as JPEG bytes."""
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def count_scene(rng: np.random.Generator) -> tuple[bytes, list[dict[str, Any]]]:
    """3-8 small shapes on a 96 or 128 px picture (fine detail: counting and positions)."""
    size = pick(rng, (96, 128))
    return scene_image(rng, int(rng.integers(3, 9)), size, (size // 12, size // 7))
