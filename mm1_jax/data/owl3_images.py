"""mPLUG-Owl3 image processing: 384 px bicubic, mean = std = 0.5, cut into a grid of crops plus a global view.

The grid (rows h, columns w) is chosen from OWL3_GRIDS by the highest 100 * IoU(grid box, grid box reshaped to the
image's aspect) + IoU(grid box, image box), boxes anchored at the origin and a grid box w*size x h*size pixels
(the release's image_processing_mplugowl3.py; as it computes it, the reshaped box's height is truncated to whole pixels and the first
best grid wins ties). The image is resized to the grid, cut row-major, and the global view (the whole image at
size x size) follows the crops. Each `<|image|>` of the prompt becomes the cut prompt, one placeholder per crop.
Pixels are uint8, resized as the release's processor resizes (PIL bicubic on the 8-bit image); the model normalises
them on the device with SigLIP's statistics (`mm1_jax.models.owl3.Owl3.encode_images`).
"""
from __future__ import annotations

import re

import numpy as np
from PIL import Image

from mm1_jax.data.images import resize, whole_image

OWL3_GRIDS = ((2, 2), (1, 3), (1, 4), (3, 1), (4, 1), (2, 3), (3, 2))  # (rows, columns); no 1 x 1
IMAGE_TOKEN = "<|image|>"


def _iou(w1: float, h1: float, w2: float, h2: float, eps: float = 1e-5) -> float:
    """IoU of two boxes anchored at the origin."""
    inter = min(w1, w2) * min(h1, h2)
    return inter / (w1 * h1 + w2 * h2 - inter + eps)


def choose_cut_grid(width: int, height: int, size: int = 384) -> tuple[int, int]:
    """(rows, columns) of the crop grid for a width x height image."""
    if width <= 0 or height <= 0:
        raise ValueError(f"image size {width}x{height} is not positive.")
    scores = []
    for rows, cols in OWL3_GRIDS:
        gw, gh = cols * size, rows * size
        shaped_h = int(np.float32(height / width) * np.float32(gw))  # same aspect as the image, width gw
        scores.append(100 * _iou(gw, gh, gw, shaped_h) + _iou(gw, gh, width, height))
    return OWL3_GRIDS[int(np.argmax(scores))]


def cut_prompt(rows: int, cols: int, image_token: str = IMAGE_TOKEN) -> str:
    """The text that replaces one image's placeholder: a line per grid row, then the global view."""
    lines = [" ".join(f"subimg({i},{j}){image_token}" for j in range(cols)) for i in range(rows)]
    return f"Cut to {rows} rows {cols} columns with a global view\n" + "\n".join(lines) + f"\nglobal_view{image_token}"


def process_image(img: Image.Image, size: int = 384, cut: bool = True) -> tuple[np.ndarray, tuple[int, int] | None]:
    """uint8 pixels [n, size, size, 3] (crops row-major then the global view; only the global view when cut=False,
    as the release does for video frames) and the grid (None when not cut)."""
    img = img.convert("RGB")
    whole = whole_image(img, size)[None]
    if not cut:
        return whole, None
    rows, cols = choose_cut_grid(*img.size, size=size)
    big = np.asarray(resize(img, cols * size, rows * size), np.uint8)
    crops = big.reshape(rows, size, cols, size, 3).transpose(0, 2, 1, 3, 4).reshape(rows * cols, size, size, 3)
    return np.concatenate([crops, whole]), (rows, cols)


def process(text: str, images: list[Image.Image], size: int = 384, cut: bool = True,
            image_token: str = IMAGE_TOKEN) -> tuple[str, np.ndarray]:
    """(prompt with every placeholder expanded to its cut prompt, all uint8 pixels in placeholder order)."""
    parts = re.split(re.escape(image_token), text)
    if len(parts) - 1 != len(images):
        raise ValueError(f"the text has {len(parts) - 1} {image_token} placeholders but {len(images)} images were "
                         f"given.")
    out, pixels = parts[0], []
    for img, rest in zip(images, parts[1:]):
        px, grid = process_image(img, size, cut)
        pixels.append(px)
        out += (cut_prompt(*grid, image_token) if grid else image_token) + rest
    empty = np.zeros((0, size, size, 3), np.uint8)
    return out, np.concatenate(pixels) if pixels else empty
