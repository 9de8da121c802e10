"""Images: decode, resize (bicubic), MM1 / MM1.5 / Ferret-UI image splitting, the pad colour and the numpy
normalisation.

Every function here returns uint8 pixels [H, W, 3] (or [n, H, W, 3]), resized as the Hugging Face image processors
do (PIL bicubic on the 8-bit image; rescaling and normalising come after). Normalising happens once, on the device,
where the model receives the pixels (`mm1_jax.models.mm1.normalize_pixels`, with the encoder's statistics, which
`mm1_jax.models.vit.NORMS` owns): batches carry a quarter of the bytes of float32 pixels, which matters most when grain workers hand them between
processes. `normalize` is the same arithmetic in numpy, the reference the model's tests compare against.

The splitting canvas pads with the encoder's mean colour (`pad_colour`): zero after normalising, as the float
pipeline padded, up to uint8 rounding (at most 0.5/255 per channel; exactly 0.5/255 for SigLIP's 127.5).
"""

from __future__ import annotations

import io
import itertools
from collections.abc import Iterable
from typing import Any

import numpy as np
from PIL import Image

from mm1_jax.models.vit import norm_stats

def decode_image(data: bytes) -> Image.Image:
    """RGB PIL image from encoded bytes; raises ValueError naming the problem for corrupt bytes."""
    try:
        img = Image.open(io.BytesIO(data))
        img.load()
    except Exception as e:  # PIL raises several types for bad data.
        raise ValueError(f"cannot decode image ({len(data)} bytes): {e}") from e
    return img.convert("RGB")


def normalize(pixels: np.ndarray, norm: str) -> np.ndarray:
    """uint8 [..., 3] -> float32 normalised with the encoder's mean and std (the numpy reference of what the model
    does on the device)."""
    mean, std = norm_stats(norm)
    return (np.asarray(pixels).astype(np.float32) / 255.0 - mean) / std


def pixel_dtype(arrays: Iterable[Any], where: str = "the images") -> np.dtype:
    """uint8 when the arrays are uint8 pixels (the model normalises them on the device), float32 when they are
    already-normalised floats (or there are none); ValueError naming `where` when they mix the two, since uint8
    values read as normalised floats (or the reverse) would be silently wrong."""
    kinds = {np.asarray(a).dtype == np.uint8 for a in arrays}
    if len(kinds) > 1:
        raise ValueError(f"{where} mix uint8 pixels and float (normalised) images; give every image the same kind "
                         f"(uint8 from mm1_jax.data.images).")
    return np.dtype(np.uint8) if kinds == {True} else np.dtype(np.float32)


def pad_colour(norm: str) -> tuple[int, int, int]:
    """The encoder's mean colour in uint8 (rounded half to even): what the splitting canvas pads with."""
    mean, _ = norm_stats(norm)
    return tuple(int(v) for v in np.round(mean.astype(np.float64) * 255))


def resize(img: Image.Image, width: int, height: int) -> Image.Image:
    """Bicubic resize to (width, height)."""
    return img.resize((int(width), int(height)), Image.BICUBIC)


def whole_image(img: Image.Image, size: int) -> np.ndarray:
    """The whole image squashed to size x size (no crop: nothing of the picture is lost). uint8 [size, size, 3]."""
    return np.asarray(resize(img, size, size), np.uint8)


def choose_grid(width: int, height: int, r: int, n_min: int, n_max: int) -> tuple[int, int]:
    """MM1.5 grid (n_h, n_w) for an image, with n_min <= n_h * n_w <= n_max (arXiv 2409.20566, dynamic splitting).

    A grid is a canvas of n_h*r x n_w*r. If some canvases hold the image without downscaling, take the one with
    least padding (canvas area - image area, the image at its own resolution, as LLaVA-NeXT's "effective
    resolution"); otherwise the one that loses least resolution (image area - area after scaling to fit).
    Ties: least padding after scaling the image to fit the canvas, then fewer rows.
    """
    best, best_key = None, None
    for n_h, n_w in candidate_grids(n_min, n_max):
        canvas = n_h * n_w * r * r
        scale = min(n_w * r / width, n_h * r / height)
        fitted_area = (width * scale) * (height * scale)
        if scale >= 1:
            key = (0, canvas - width * height, canvas - fitted_area, n_h)
        else:
            key = (1, width * height - fitted_area, canvas - fitted_area, n_h)
        if best_key is None or key < best_key:
            best, best_key = (n_h, n_w), key
    return best


def candidate_grids(n_min: int, n_max: int) -> list[tuple[int, int]]:
    """All (n_h, n_w) with n_min <= n_h * n_w <= n_max."""
    if not 1 <= n_min <= n_max:
        raise ValueError(f"Image splitting: need 1 <= n_min <= n_max, got n_min={n_min}, n_max={n_max}.")
    return [(h, w) for h, w in itertools.product(range(1, n_max + 1), repeat=2) if n_min <= h * w <= n_max]


def cut_grid(img: Image.Image, n_h: int, n_w: int, r: int, size: int, norm: str) -> list[np.ndarray]:
    """Scale the image (aspect kept) into an n_h*r x n_w*r canvas padded right/bottom with the encoder's mean colour,
    cut r x r crops row-major, each resized to size x size when r != size. uint8 crops."""
    scale = min(n_w * r / img.width, n_h * r / img.height)
    w, h = max(1, round(img.width * scale)), max(1, round(img.height * scale))
    canvas = Image.new("RGB", (n_w * r, n_h * r), pad_colour(norm))
    canvas.paste(resize(img, w, h), (0, 0))
    crops = [canvas.crop((j * r, i * r, (j + 1) * r, (i + 1) * r)) for i in range(n_h) for j in range(n_w)]
    return [whole_image(c, size) if r != size else np.asarray(c, np.uint8) for c in crops]


def split_image_dynamic(img: Image.Image, size: int, norm: str, r: int, n_min: int, n_max: int) -> np.ndarray:
    """MM1.5 dynamic splitting: crops of the chosen grid, then the overview (none for a 1x1 grid). uint8
    [n, size, size, 3]; `norm` names the encoder whose mean colour pads the canvas."""
    n_h, n_w = choose_grid(img.width, img.height, r, n_min, n_max)
    crops = cut_grid(img, n_h, n_w, r, size, norm)
    if n_h * n_w > 1:
        crops.append(whole_image(img, size))
    return np.stack(crops)


def split_image_mm1(img: Image.Image, size: int) -> np.ndarray:
    """MM1 SFT splitting: 4 crops (2x2 of the image at 2*size) then the overview. uint8 [5, size, size, 3]."""
    big = np.asarray(resize(img, 2 * size, 2 * size), np.uint8)
    crops = [big[i * size : (i + 1) * size, j * size : (j + 1) * size] for i in range(2) for j in range(2)]
    return np.stack(crops + [whole_image(img, size)])


def ferret_ui_grid(width: int, height: int) -> tuple[int, int]:
    """Ferret-UI's grid (n_h, n_w): a screen cut into 2 sub-images along its longer side, (1, 2) left | right for a
    landscape screen, (2, 1) top / bottom for a portrait one (arXiv 2404.05719, abstract and Sec. 3: "horizontal
    division for portrait screens and vertical division for landscape screens"). A square screen is cut top / bottom,
    as the release's select_best_resolution (ferretui/ferretui/mm_utils.py) picks the first of tied grids, the first
    listed (train.py: grids [[1, 2], [2, 1], ...], each [width, height] in 336 px units) being 1 wide, 2 high.
    Restricted to these two grids select_best_resolution always picks this one. The released code itself offers
    three more grids (2x2, 3x1, 1x3) to select_best_resolution; this mode is the paper's two sub-images."""
    return (1, 2) if width > height else (2, 1)


def split_image_ferret_ui(img: Image.Image, size: int, r: int) -> np.ndarray:
    """Ferret-UI's any-resolution split (ferretui/ferretui/mm_utils.py process_anyres_image with is_pad=False): the
    screen squashed (aspect not kept, no padding) to the grid's n_w*r x n_h*r canvas, cut into r x r sub-images
    row-major (divide_to_patches), each resized to size x size when r != size; then the global view, the whole screen
    squashed to size x size (image.resize to the encoder's size). The release puts the global view FIRST
    (`[image_original_resize] + patches`): arrange them so with data.split.overview = 'before'. Here, as every split
    here, the global view comes last in the array. uint8 [3, size, size, 3]."""
    n_h, n_w = ferret_ui_grid(img.width, img.height)
    canvas = np.asarray(resize(img, n_w * r, n_h * r), np.uint8)
    crops = [canvas[i * r : (i + 1) * r, j * r : (j + 1) * r] for i in range(n_h) for j in range(n_w)]
    if r != size:
        crops = [whole_image(Image.fromarray(c), size) for c in crops]
    return np.stack(crops + [whole_image(img, size)])
