"""Coordinates as text: Ferret's boxes "[x1, y1, x2, y2]" and points "[x, y]" on a 1000 x 1000 integer grid.

The one owner of how a region is written into a conversation and read back from one (training records, evaluation
prompts and answers, the generate CLI). Public API: GRID, box_to_text, point_to_text, box_center, parse_boxes,
parse_points, find_coordinates, check_box, check_prompt, grid_to_pixels, read_integers.

The rule, read in apple/ml-ferret at 3c9e5c93 (2024-10-08), ferretui/ferretui/train/train.py (Ferret-UI's
LazySupervisedDataset.__getitem__, regulate_box, get_bbox_coor; ferret/train/train.py writes Ferret's the same way):
  * The grid: constants.py VOCAB_IMAGE_W = VOCAB_IMAGE_H = 1000. x is relative to the WHOLE image's width and y to
    its height (ratio_w = VOCAB_IMAGE_W * 1.0 / image_w, ratio_h = VOCAB_IMAGE_H * 1.0 / image_h), whatever the
    aspect ratio: a 1170 x 2532 portrait screen and a 2532 x 1170 landscape one both span 0-999 on each axis.
  * Pixel -> grid: each coordinate is first clamped into the image, x to [0, W - 1] and y to [0, H - 1]
    (regulate_box), then multiplied by the ratio and truncated: g = int(x * (1000 * 1.0 / W)), float64 as the
    release computes it, so g lies in 0-999. (The float product is, rarely, one below the exact floor(x * 1000 / W):
    W = 412, x = 103 gives 249, not 250; we keep the release's arithmetic.)
  * Text: a box f'[{int(x1)}, {int(y1)}, {int(x2)}, {int(y2)}]', a point f'[{int(x)}, {int(y)}]' (comma, one space).
  * A point given for a box (the release picks point or box at random in human turns) is the clamped box's centre,
    ratio * (x1 + x2) / 2 (point_input_sample 'center'; the released script asks 'segment_mask-center', which falls
    back to a Gaussian draw around that centre when a record has no masks).
  * Split images: the ratio comes from the record's image_w / image_h, before and apart from process_anyres_image,
    so coordinates always refer to the whole screen, never to a crop: the same text whether the model sees the
    screen whole, as MM1.5's crops + overview, or as Ferret-UI's two halves + global view.
MM1.5 (arXiv 2409.20566) follows Ferret for referring and grounding; the secondary sources we have do not give its
syntax or bin count, so Ferret-UI's release is the rule here.

Grid -> pixel (ours: Ferret-UI's scorer is not released; Ferret's RefCOCO scorer truncates int(g * W / 1000),
`mm1_jax.eval.scorers.refexp`): the centre of the pixel span that truncates to g, (g + 0.5) * W / 1000 (a float
inside the image), so writing a parsed box again gives the same text for every grid value a pixel can produce.

Reading an answer (`find_coordinates`): every innermost "[...]" is one candidate; its comma-separated pieces read
with int() as Ferret's decoders read them (`read_integers`); 4 integers in 0-999 with x1 <= x2 and y1 <= y2 are a
box, 2 in 0-999 a point; anything else (a float, a word, 3 or 5 numbers, 1000, an inverted box) is a miss, never an
error. A prompt's coordinates (`check_prompt`) are the user's: a bracket of numbers that is not such a box or point
raises ValueError in one sentence naming it.
"""
from __future__ import annotations

import math
import re
from collections.abc import Sequence

GRID = 1000  # ferretui/ferretui/constants.py VOCAB_IMAGE_W = VOCAB_IMAGE_H = 1000
BOX_TEXT = "[{}, {}, {}, {}]"
POINT_TEXT = "[{}, {}]"

_BRACKET = re.compile(r"\[([^\[\]]*)\]")
_NUMBER = re.compile(r"\s*[-+]?(\d+(\.\d*)?|\.\d+)\s*")


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _size(width, height) -> tuple[float, float]:
    if not (_number(width) and _number(height) and width > 0 and height > 0):
        raise ValueError(f"image size {width!r} x {height!r} is not two positive numbers (width x height in pixels).")
    return float(width), float(height)


def _values(values, count: int, what: str) -> list[float]:
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence) or len(values) != count or \
            not all(_number(v) for v in values):
        form = "[x1, y1, x2, y2]" if count == 4 else "[x, y]"
        raise ValueError(f"{what} {values!r} is not {count} numbers {form} in pixels.")
    return [float(v) for v in values]


def _grid(value: float, side: float) -> int:
    """One pixel coordinate on the grid: clamped to [0, side - 1], times 1000 / side, truncated (the release)."""
    return int(max(0.0, min(value, side - 1)) * (GRID * 1.0 / side))


def check_box(box_px: Sequence[float], width: float, height: float) -> None:
    """ValueError in one sentence unless `box_px` is 4 numbers [x1, y1, x2, y2] in pixels with 0 <= x1 <= x2 <= width
    and 0 <= y1 <= y2 <= height (edges inclusive: x2 = width touches the right edge)."""
    w, h = _size(width, height)
    x1, y1, x2, y2 = _values(box_px, 4, "box")
    shown = list(box_px)
    if x2 < x1 or y2 < y1:
        axis = f"x2={box_px[2]} < x1={box_px[0]}" if x2 < x1 else f"y2={box_px[3]} < y1={box_px[1]}"
        raise ValueError(f"box {shown} (pixels) has {axis}; a box is [x1, y1, x2, y2] with x1 <= x2 and y1 <= y2.")
    for name, v, side, limit in (("x1", x1, w, width), ("y1", y1, h, height), ("x2", x2, w, width),
                                 ("y2", y2, h, height)):
        if not 0 <= v <= side:
            raise ValueError(f"box {shown} (pixels) does not fit the {width} x {height} image: {name}={v:g} lies "
                             f"outside [0, {limit}].")


def box_to_grid(box_px: Sequence[float], width: float, height: float) -> tuple[int, int, int, int]:
    """A pixel box on the grid, by the release's rule (clamp into the image, scale, truncate). ValueError for a
    wrong count, a non-number, an inverted box or a bad image size; a box past the edges is clamped, as the release
    clamps it (`check_box` refuses it instead)."""
    w, h = _size(width, height)
    x1, y1, x2, y2 = _values(box_px, 4, "box")
    if x2 < x1 or y2 < y1:
        check_box(box_px, width, height)  # raises its sentence for the inverted box
    return _grid(x1, w), _grid(y1, h), _grid(x2, w), _grid(y2, h)


def point_to_grid(point_px: Sequence[float], width: float, height: float) -> tuple[int, int]:
    """A pixel point on the grid (clamped, scaled, truncated as a box's corners are)."""
    w, h = _size(width, height)
    x, y = _values(point_px, 2, "point")
    return _grid(x, w), _grid(y, h)


def box_to_text(box_px: Sequence[float], width: float, height: float) -> str:
    """A pixel box as Ferret writes it: "[x1, y1, x2, y2]" on the 0-999 grid of the whole image."""
    return BOX_TEXT.format(*box_to_grid(box_px, width, height))


def point_to_text(point_px: Sequence[float], width: float, height: float) -> str:
    """A pixel point as Ferret writes it: "[x, y]" on the 0-999 grid of the whole image."""
    return POINT_TEXT.format(*point_to_grid(point_px, width, height))


def box_center(box_px: Sequence[float], width: float, height: float) -> tuple[float, float]:
    """The point that stands for a box (the release's 'center'): the centre of the box clamped into the image."""
    w, h = _size(width, height)
    x1, y1, x2, y2 = _values(box_px, 4, "box")
    def clamp(v: float, side: float) -> float:  # regulate_box
        return max(0.0, min(v, side - 1))

    return (clamp(x1, w) + clamp(x2, w)) / 2.0, (clamp(y1, h) + clamp(y2, h)) / 2.0


def grid_to_pixels(values: Sequence[int], width: float, height: float) -> tuple[float, ...]:
    """Grid coordinates (a box's 4 or a point's 2) back in pixels of the whole image: (g + 0.5) * side / 1000, the
    centre of the pixels that write as g (ours; see the module docstring)."""
    w, h = _size(width, height)
    return tuple((g + 0.5) * (w if i % 2 == 0 else h) / GRID for i, g in enumerate(values))


def read_integers(piece: str) -> list[int]:
    """The comma-separated integers of one bracket's text, each piece read with int() as Ferret's decoders read it
    (spaces around a number allowed); ValueError when a piece is not an integer (a float, a word, an empty piece)."""
    return [int(p) for p in piece.split(",")]


def _on_grid(numbers: list[int]) -> bool:
    if len(numbers) not in (2, 4) or not all(0 <= v < GRID for v in numbers):
        return False
    return len(numbers) == 2 or (numbers[0] <= numbers[2] and numbers[1] <= numbers[3])


def find_coordinates(text: str) -> list[tuple[int, ...] | None]:
    """Every innermost "[...]" of a text in order: its grid values (4: a box, 2: a point), or None for a miss (not
    integers, not 2 or 4 of them, off the 0-999 grid, an inverted box)."""
    found: list[tuple[int, ...] | None] = []
    for match in _BRACKET.finditer(text):
        try:
            numbers = read_integers(match.group(1))
        except ValueError:
            found.append(None)
            continue
        found.append(tuple(numbers) if _on_grid(numbers) else None)
    return found


def parse_boxes(text: str, width: float, height: float) -> list[tuple[float, float, float, float]]:
    """Every well-formed box of an answer, in pixels of the whole width x height image (`grid_to_pixels`); a
    malformed one is skipped (a miss), never an error."""
    return [grid_to_pixels(g, width, height) for g in find_coordinates(text) if g is not None and len(g) == 4]


def parse_points(text: str, width: float, height: float) -> list[tuple[float, float]]:
    """Every well-formed point "[x, y]" of an answer, in pixels of the whole image; a malformed one is a miss."""
    return [grid_to_pixels(g, width, height) for g in find_coordinates(text) if g is not None and len(g) == 2]


def check_prompt(text: str) -> None:
    """ValueError in one sentence for the first coordinates in a prompt that Ferret's syntax cannot hold: a bracket
    of numbers that is not 2 or 4 integers, a value off the 0-999 grid, or a box with x2 < x1 or y2 < y1. Brackets
    holding words ("[OK]") are text, not coordinates."""
    for match in _BRACKET.finditer(text):
        pieces = match.group(1).split(",")
        if not all(_NUMBER.fullmatch(p) for p in pieces):
            continue
        shown = match.group(0)
        try:
            numbers = read_integers(match.group(1))
        except ValueError:
            raise ValueError(f"the coordinates {shown} in the prompt are not integers; write a box as [x1, y1, x2, y2] "
                             f"or a point as [x, y] on the 0-{GRID - 1} grid of the whole image.") from None
        if len(numbers) not in (2, 4):
            raise ValueError(f"the coordinates {shown} in the prompt have {len(numbers)} numbers; a box has 4 "
                             f"[x1, y1, x2, y2] and a point 2 [x, y].")
        off = [v for v in numbers if not 0 <= v < GRID]
        if off:
            raise ValueError(f"the coordinates {shown} in the prompt lie outside the 0-{GRID - 1} grid ({off[0]}); "
                             f"coordinates are relative to the whole image, 0-{GRID - 1} on each axis.")
        if len(numbers) == 4 and (numbers[2] < numbers[0] or numbers[3] < numbers[1]):
            axis = (f"x2={numbers[2]} < x1={numbers[0]}" if numbers[2] < numbers[0]
                    else f"y2={numbers[3]} < y1={numbers[1]}")
            raise ValueError(f"the box {shown} in the prompt has {axis}; a box is [x1, y1, x2, y2] with x1 <= x2 and "
                             f"y1 <= y2.")
