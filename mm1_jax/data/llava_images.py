"""LLaVA-OneVision / LLaVA-NeXT / LLaVA image processing in numpy and PIL, equal to transformers' processors.

What transformers' PIL-backend image processors do (`LlavaOnevisionImageProcessorPil`, `LlavaNextImageProcessorPil`,
and for the plain LLaVA releases `SiglipImageProcessorPil` / `CLIPImageProcessorPil`), step for step, so that the
pixels match theirs exactly (tests/test_llava_eval.py):
  * the image as 8-bit RGB (transparency composited onto white, as transformers' convert_to_rgb does);
  * any-res (LLaVA-NeXT always; LLaVA-OneVision for the image of a one-image prompt): the resolution of
    `pinpoints` that keeps most of the image (`models.llava.select_best_resolution`), the image resized into it
    keeping its aspect ratio (`patch_output_size`: the long side exact, the other ceil'd) with PIL's resampling on
    the 8-bit image, padded with black evenly on both sides (the odd pixel after), cut row-major into tiles of the
    tile size; the base view (the whole image squashed to the tile size) first;
  * LLaVA-OneVision's images of a prompt with several images: the image padded to a square with the processor's
    mean colour (int(mean * 255) per channel), centred, as the one tile;
  * plain LLaVA (LLaVA-NeXT-Interleave's SigLIP processor): the image squashed to `size`; CLIP's: the shortest
    edge to `shortest_edge` (the other int(size * long / short)) then a centre crop;
  * every tile: resized to `size` (a no-op for tiles of that size) or by its shortest edge, centre-cropped when the
    processor crops, then x * rescale_factor (float64, stored float32) and (x - mean) / std in float32.
Tiles are channels-last float32 [P, S, S, 3], as `pretrained.LoadedLlava.logits` takes them (a list of arrays, one
per image); `image_sizes` are the originals' (height, width). Which images are tiled is the model's rule too
(`models.llava.plan_images`): `process` decides as transformers' processor does, per prompt.
"""
from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL import Image

from mm1_jax.models import llava as llava_model
from mm1_jax.models import vit

STYLES = llava_model.STYLES  # llava_onevision | llava_next | llava
_PROCESSOR_TYPES = {  # transformers' image_processor_type -> the style whose rules it follows
    "LlavaOnevisionImageProcessor": "llava_onevision", "LlavaNextImageProcessor": "llava_next",
    "SiglipImageProcessor": "llava", "CLIPImageProcessor": "llava",
}


@dataclasses.dataclass(frozen=True)
class ImageProcessor:
    """The settings of one release's image processor (`for_model`: the releases' defaults; `from_hf`: its
    preprocessor_config.json). `size` (height, width) or `shortest_edge` is what every tile is resized to;
    `crop` (height, width) the centre crop after it (None: no crop); `pinpoints` the any-res resolutions."""

    style: str
    size: tuple[int, int] | None
    shortest_edge: int | None
    crop: tuple[int, int] | None
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    pinpoints: tuple[tuple[int, int], ...] = ()
    rescale_factor: float = 1 / 255
    resample: int = Image.BICUBIC

    def __post_init__(self):
        if self.style not in STYLES:
            raise ValueError(f"image processor style {self.style!r} is not one of {', '.join(STYLES)}.")
        if (self.size is None) == (self.shortest_edge is None):
            raise ValueError("an image processor needs exactly one of size (height, width) and shortest_edge.")
        if self.style != "llava" and not self.pinpoints:
            raise ValueError(f"style {self.style!r} tiles images by image_grid_pinpoints, which is empty.")

    @property
    def tile_size(self) -> int:
        """The side of a tile: the crop's, else size's height, else the shortest edge (transformers' patch_size)."""
        if self.crop is not None:
            return int(self.crop[0])
        return int(self.size[0]) if self.size is not None else int(self.shortest_edge)

    @classmethod
    def for_model(cls, cfg: Any) -> ImageProcessor:
        """The processor the llava-hf releases ship with for `config.model` (kind 'llava'): LLaVA-OneVision's (the
        tile size square, the encoder's statistics), LLaVA-NeXT's (shortest edge and crop at the tile size), plain
        LLaVA's SigLIP processor (squash to the tile size) or CLIP's (shortest edge, crop)."""
        size = int(cfg.encoder.image_size)
        mean, std = vit.norm_stats(vit.STYLES[cfg.encoder.style]["image_norm"])
        mean, std = tuple(float(v) for v in mean), tuple(float(v) for v in std)
        pinpoints = tuple(tuple(int(v) for v in p) for p in cfg.get("image_grid_pinpoints") or ())
        if cfg.style == "llava_onevision":
            return cls("llava_onevision", (size, size), None, None, mean, std, pinpoints)
        if cfg.style == "llava_next":
            return cls("llava_next", None, size, (size, size), mean, std, pinpoints)
        if cfg.encoder.style == "siglip":
            return cls("llava", (size, size), None, None, mean, std)
        return cls("llava", None, size, (size, size), mean, std)

    @classmethod
    def from_hf(cls, hf: dict | str, cfg: Any = None) -> ImageProcessor:
        """From a release's preprocessor_config.json (a dict or its path); `cfg` (config.model) supplies the
        pinpoints when the file has none (llava-hf's LLaVA-OneVision files carry them; the model config too)."""
        if isinstance(hf, str):
            with open(hf) as f:
                hf = json.load(f)
        kind = str(hf.get("image_processor_type", "")).removesuffix("Fast").removesuffix("Pil")
        if kind not in _PROCESSOR_TYPES:
            raise ValueError(f"preprocessor_config.json image_processor_type={hf.get('image_processor_type')!r} is "
                             f"not one of {', '.join(_PROCESSOR_TYPES)}.")
        for flag in ("do_resize", "do_rescale", "do_normalize"):
            if hf.get(flag) is False:
                raise ValueError(f"preprocessor_config.json {flag}=false is not supported.")
        size = dict(hf.get("size") or {})
        crops = hf.get("do_center_crop", kind in ("CLIPImageProcessor", "LlavaNextImageProcessor"))  # their defaults
        crop = dict(hf.get("crop_size") or {}) if crops else {}
        points = hf.get("image_grid_pinpoints") or (cfg.get("image_grid_pinpoints") if cfg is not None else None)
        return cls(_PROCESSOR_TYPES[kind],
                   (int(size["height"]), int(size["width"])) if "height" in size else None,
                   int(size["shortest_edge"]) if "shortest_edge" in size else None,
                   (int(crop["height"]), int(crop["width"])) if crop else None,
                   tuple(float(v) for v in hf.get("image_mean", vit.norm_stats("clip")[0].tolist())),
                   tuple(float(v) for v in hf.get("image_std", vit.norm_stats("clip")[1].tolist())),
                   tuple(tuple(int(v) for v in p) for p in points or ()),
                   float(hf.get("rescale_factor", 1 / 255)), int(hf.get("resample", Image.BICUBIC)))


# ----------------------------------------------------------------------------------------------------------------
# Steps (8-bit images, HWC)
# ----------------------------------------------------------------------------------------------------------------
def to_rgb(img: Image.Image | np.ndarray) -> np.ndarray:
    """uint8 [H, W, 3]: a PIL image with transparency composited onto white (transformers' convert_to_rgb), an
    array taken as 8-bit RGB (grey repeated)."""
    if isinstance(img, np.ndarray):
        arr = np.asarray(img)
        if arr.dtype != np.uint8:
            raise ValueError(f"an image array must be uint8 pixels, got {arr.dtype}.")
        if arr.ndim == 2:
            arr = arr[..., None]
        if arr.ndim != 3 or arr.shape[-1] not in (1, 3):
            raise ValueError(f"an image array must be [H, W, 3] (or grey [H, W]), got {arr.shape}.")
        return np.repeat(arr, 3, axis=-1) if arr.shape[-1] == 1 else arr
    if "A" in img.getbands() or img.info.get("transparency") is not None:
        rgba = img.convert("RGBA")
        img = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
    return np.array(img.convert("RGB"))


def resize(pixels: np.ndarray, height: int, width: int, resample: int = Image.BICUBIC) -> np.ndarray:
    """PIL's resampling of the 8-bit image to (height, width) (what transformers' PIL backend does)."""
    return np.array(Image.fromarray(pixels).resize((int(width), int(height)), resample=resample))


def patch_output_size(image_size: Sequence[int], target: Sequence[int]) -> tuple[int, int]:
    """(height, width) of an image resized into `target` keeping its aspect ratio (transformers'
    get_patch_output_size: the limiting side exact, the other ceil'd and capped)."""
    height, width = int(image_size[0]), int(image_size[1])
    target_h, target_w = int(target[0]), int(target[1])
    scale_w, scale_h = target_w / width, target_h / height
    if scale_w < scale_h:
        return min(math.ceil(height * scale_w), target_h), target_w
    return target_h, min(math.ceil(width * scale_h), target_w)


def shortest_edge_size(image_size: Sequence[int], edge: int) -> tuple[int, int]:
    """(height, width) with the shorter side `edge` and the other int(edge * long / short) (transformers'
    get_resize_output_image_size, default_to_square=False)."""
    height, width = int(image_size[0]), int(image_size[1])
    short, long = (width, height) if width <= height else (height, width)
    new_short, new_long = int(edge), int(edge * long / short)
    return (new_long, new_short) if width <= height else (new_short, new_long)


def centre_crop(pixels: np.ndarray, height: int, width: int) -> np.ndarray:
    """The centred (height, width) window (transformers' center_crop: offsets floor((size - crop) / 2)); an image
    smaller than the crop is zero-padded first, centred with the extra pixel before (ceil), as transformers does."""
    h, w = pixels.shape[:2]
    top, left = (h - height) // 2, (w - width) // 2
    if top >= 0 and left >= 0:
        return pixels[top:top + height, left:left + width]
    new_h, new_w = max(height, h), max(width, w)
    canvas = np.zeros((new_h, new_w) + pixels.shape[2:], pixels.dtype)
    pad_top, pad_left = math.ceil((new_h - h) / 2), math.ceil((new_w - w) / 2)
    canvas[pad_top:pad_top + h, pad_left:pad_left + w] = pixels
    top, left = top + pad_top, left + pad_left
    return canvas[max(top, 0):max(top, 0) + height, max(left, 0):max(left, 0) + width]


def pad_to_square(pixels: np.ndarray, colour: Sequence[int]) -> np.ndarray:
    """The image centred on a square of its longer side filled with `colour` (LLaVA-OneVision's multi-image
    pictures)."""
    h, w = pixels.shape[:2]
    if h == w:
        return pixels
    side = max(h, w)
    canvas = np.empty((side, side, 3), pixels.dtype)
    canvas[...] = np.asarray(colour, pixels.dtype)
    if w > h:
        top = (side - h) // 2
        canvas[top:top + h] = pixels
    else:
        left = (side - w) // 2
        canvas[:, left:left + w] = pixels
    return canvas


def pad_centred(pixels: np.ndarray, height: int, width: int) -> np.ndarray:
    """Black padding to (height, width): half before, the rest (the odd pixel) after, on each axis."""
    h, w = pixels.shape[:2]
    top, left = (height - h) // 2, (width - w) // 2
    return np.pad(pixels, ((top, height - h - top), (left, width - w - left), (0, 0)))


def any_res_views(pixels: np.ndarray, proc: ImageProcessor) -> list[np.ndarray]:
    """The base view, then the any-res tiles row-major (8-bit, before the per-tile steps)."""
    best_h, best_w = llava_model.select_best_resolution(pixels.shape[:2], proc.pinpoints)
    new_h, new_w = patch_output_size(pixels.shape[:2], (best_h, best_w))
    padded = pad_centred(resize(pixels, new_h, new_w, proc.resample), best_h, best_w)
    tile = proc.tile_size
    tiles = [padded[i:i + tile, j:j + tile] for i in range(0, best_h, tile) for j in range(0, best_w, tile)]
    base_h, base_w = proc.size if proc.size is not None else (proc.shortest_edge, proc.shortest_edge)
    return [resize(pixels, base_h, base_w, proc.resample)] + tiles


def finish_tile(pixels: np.ndarray, proc: ImageProcessor) -> np.ndarray:
    """One view -> float32 [S, S, 3]: resized to `size` (or by its shortest edge), cropped, rescaled, normalised."""
    if proc.size is not None:
        pixels = resize(pixels, proc.size[0], proc.size[1], proc.resample)
    else:
        pixels = resize(pixels, *shortest_edge_size(pixels.shape[:2], proc.shortest_edge), proc.resample)
    if proc.crop is not None:
        pixels = centre_crop(pixels, *proc.crop)
    scaled = (pixels.astype(np.float64) * proc.rescale_factor).astype(np.float32)
    return (scaled - np.array(proc.mean, np.float32)) / np.array(proc.std, np.float32)


def process_image(img: Image.Image | np.ndarray, proc: ImageProcessor, anyres: bool) -> np.ndarray:
    """One image's tiles float32 [P, S, S, 3] (base view first): any-res views, or the one view of an image that is
    not tiled (LLaVA-OneVision's multi-image pictures padded to a square; plain LLaVA's the whole image)."""
    pixels = to_rgb(img)
    if anyres:
        if proc.style == "llava":
            raise ValueError("plain LLaVA's processor does not tile images (style 'llava' has no any-res).")
        views = any_res_views(pixels, proc)
    elif proc.style == "llava_onevision":
        views = [pad_to_square(pixels, [int(v * 255) for v in proc.mean])]
    elif proc.style == "llava":
        views = [pixels]
    else:
        raise ValueError("LLaVA-NeXT's processor tiles every image.")
    return np.stack([finish_tile(v, proc) for v in views])


def tiled(proc: ImageProcessor, batch_num_images: Sequence[int] | None, n: int) -> list[bool]:
    """Which of n images are tiled, as the processor decides: LLaVA-NeXT all, plain LLaVA none, LLaVA-OneVision
    the images of one-image prompts (`batch_num_images`: images per prompt; None: every image alone)."""
    if proc.style == "llava_next":
        return [True] * n
    if proc.style == "llava":
        return [False] * n
    counts = [1] * n if batch_num_images is None else [int(c) for c in batch_num_images]
    if sum(counts) != n:
        raise ValueError(f"batch_num_images={counts} adds up to {sum(counts)}, not the {n} images given.")
    return [c == 1 for c in counts for _ in range(c)]


def process(images: Sequence[Image.Image | np.ndarray], proc: ImageProcessor,
            batch_num_images: Sequence[int] | None = None) -> dict[str, Any]:
    """{'pixel_values': [P_i, S, S, 3] float32 per image, 'image_sizes' int64 [N, 2] (height, width of the
    originals), 'batch_num_images'} for images in order, prompts one after another (`batch_num_images` images
    each; None: one each, as transformers takes a flat list). What `LoadedLlava.logits(ids, pixel_values,
    image_sizes, batch_num_images)` takes."""
    anyres = tiled(proc, batch_num_images, len(images))
    sizes, values = [], []
    for img, tile in zip(images, anyres):
        pixels = to_rgb(img)
        sizes.append(pixels.shape[:2])
        values.append(process_image(pixels, proc, tile))
    counts = [1] * len(images) if batch_num_images is None else [int(c) for c in batch_num_images]
    return {"pixel_values": values, "image_sizes": np.array(sizes, np.int64).reshape(-1, 2),
            "batch_num_images": counts}


def padded_batch(pixel_values: Sequence[np.ndarray]) -> np.ndarray:
    """[N, P_max, 3, S, S]: transformers' layout (channels first, images padded with zero tiles)."""
    most = max(len(v) for v in pixel_values)
    return np.stack([np.pad(v, ((0, most - len(v)), (0, 0), (0, 0), (0, 0))).transpose(0, 3, 1, 2)
                     for v in pixel_values])
