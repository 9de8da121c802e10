"""LLaVA-OneVision, LLaVA-NeXT and LLaVA: the concatenation route, in which every image becomes tokens of the sequence.

mPLUG-Owl3 (arXiv 2408.04840v2, Sec. 4.5) compares hyper attention with this route as LLaVA-NeXT-Interleave and
LLaVA-OneVision take it: a SigLIP (or CLIP) encoder, a 2-layer MLP projector with GELU, a Qwen2 (or Llama) decoder,
and each image's projected features written over the `<image>` tokens of the prompt (the processor repeats the
`<image>` token as many times as the image has features). The facts below are those of transformers'
`modeling_llava_onevision.py` / `modeling_llava_next.py` / `modeling_llava.py` and their image processors.

One image is encoded as tiles of the encoder's resolution S (`encoder.image_size`), base view first:
  * the base view alone (style 'llava'; LLaVA-OneVision's images of a prompt with several images): its features,
    then one `image_newline` embedding (styles 'llava_next' / 'llava_onevision').
  * any-res (one image in the prompt): the processor picks the resolution (H', W') of `image_grid_pinpoints` that
    keeps most of the image and wastes least (`select_best_resolution`), resizes the image into it keeping the
    aspect ratio, pads it to (H', W') and cuts it into (H'/S) x (W'/S) tiles after the base view. The tiles'
    features make one (rows * s) x (cols * s) map (s = S // patch size), from which the padding is cut back
    (`unpad_crop`); LLaVA-OneVision's `anyres_max_N` then shrinks the map bilinearly when it holds more than about
    N base views (ratio sqrt(h * w / (N * s^2)) > 1.1), and an `image_newline` ends every row. The image's tokens are
    the base view's features followed by the map, row by row.
Which tokens the encoder hands on: its hidden states at `feature_layers` (transformers' `vision_feature_layer`, one
layer or several concatenated), without the final norm; `feature_select` 'default' drops the first token (CLIP's
class token; SigLIP has none, and drops a patch token, exactly as transformers does), 'full' keeps them all.

An `ImagePlan` says, for one image, how many tiles it has and where its features go; plans depend only on the image's
size and the config, so they are computed on the host (`plan_images`) and are static arguments of the model: a call
compiles once per combination of image sizes. Tiles are passed flat, [sum of tiles, S, S, 3], images in the order
of their tokens in the batch (row after row), each image's base view first: uint8 pixels (normalised on the device
with the encoder's statistics) or float pixels already normalised (what transformers' processor gives).

The config (`config.model` with kind 'llava'; `build_llava` builds it):
  kind               'llava'
  style              'llava_onevision' | 'llava_next' | 'llava' (which release's rules pack the features)
  encoder            ViT fields (`feature_layer` is the first of `feature_layers`)
  feature_layers     tuple of encoder hidden-state indices (transformers' numbering: 0 embeddings, -1 last layer)
  feature_select     'default' | 'full'
  decoder            `Decoder` fields (Qwen2: qkv_bias=True)
  image_token_id     the `<image>` id
  image_grid_pinpoints  [[H', W'], ...] any-res resolutions, multiples of encoder.image_size
  anyres_max         N of LLaVA-OneVision's vision_aspect_ratio 'anyres_max_N' (0: no shrinking, LLaVA-NeXT)
  dtype              'float32' / 'bfloat16'
Parameters: encoder/*, projector/layers_{0,2}/{kernel,bias}, decoder/*, image_newline [D] (not for style 'llava').
"""
from __future__ import annotations

import math
import re
from typing import Any, NamedTuple, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from mm1_jax.models import config as model_config
from mm1_jax.models import vit
from mm1_jax.models.connectors import MlpProjector
from mm1_jax.models.decoder import Decoder
from mm1_jax.models.layers import Array
from mm1_jax.models.mm1 import encoder_norm, normalize_pixels

STYLES = ("llava_onevision", "llava_next", "llava")
FEATURE_SELECT = ("default", "full")
FIELDS = ("kind", "style", "encoder", "feature_layers", "feature_select", "decoder", "image_token_id",
          "image_grid_pinpoints", "anyres_max", "dtype")
DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16, "float16": jnp.float16}


def parse_anyres_max(vision_aspect_ratio: str) -> int:
    """N of 'anyres_max_N' (LLaVA-OneVision's `vision_aspect_ratio`); ValueError for anything else."""
    match = re.fullmatch(r"anyres_max_(\d+)", str(vision_aspect_ratio))
    if not match or int(match.group(1)) < 1:
        raise ValueError(f"vision_aspect_ratio={vision_aspect_ratio!r} is not 'anyres_max_N' with N >= 1.")
    return int(match.group(1))


# ----------------------------------------------------------------------------------------------------------------
# Where an image's features go (host side, static)
# ----------------------------------------------------------------------------------------------------------------
class ImagePlan(NamedTuple):
    """One image's layout. `grid` (rows, cols) of tiles after the base view, (0, 0) for the base view alone; `crop`
    (top, bottom, left, right) of the tiles' feature map kept by unpadding; `size` (h, w) of the map after any
    shrinking; `newline` whether an image_newline follows (every map row, or the base view alone); `tokens` the
    decoder positions the image fills."""

    tiles: int
    grid: tuple[int, int]
    crop: tuple[int, int, int, int]
    size: tuple[int, int]
    newline: bool
    tokens: int


def select_best_resolution(image_size: Sequence[int], pinpoints: Sequence[Sequence[int]]) -> tuple[int, int]:
    """The (H', W') of `pinpoints` that keeps most of an image of (H, W) resized into it with its aspect ratio (the
    most kept pixels, capped at the original's), ties to the one that wastes least; the first such in order."""
    height, width = int(image_size[0]), int(image_size[1])
    best, most_kept, least_wasted = None, 0, float("inf")
    for h, w in pinpoints:
        scale = min(w / width, h / height)
        kept = min(int(width * scale) * int(height * scale), width * height)
        wasted = w * h - kept
        if kept > most_kept or (kept == most_kept and wasted < least_wasted):
            best, most_kept, least_wasted = (int(h), int(w)), kept, wasted
    if best is None:
        raise ValueError(f"no resolution of image_grid_pinpoints={list(pinpoints)} fits an image of {height}x{width}.")
    return best


def unpad_crop(image_size: Sequence[int], map_size: tuple[int, int]) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) of a (h, w) feature map of the padded image that the image itself covers: the
    processor centred the resized image and padded the other axis evenly (the float arithmetic of transformers'
    unpad_image, so that the rounding is the same)."""
    height, width = int(image_size[0]), int(image_size[1])
    h, w = map_size
    if width / height > w / h:  # wider than the map: padded above and below
        kept = int(round(height * (w / width), 7))
        pad = (h - kept) // 2
        return pad, h - pad, 0, w
    kept = int(round(width * (h / height), 7))
    pad = (w - kept) // 2
    return 0, h, pad, w - pad


def plan_image(image_size: Sequence[int] | None, *, anyres: bool, tile_size: int, side: int, tile_tokens: int,
               pinpoints: Sequence[Sequence[int]], anyres_max: int, newline: bool) -> ImagePlan:
    """The plan of one image: the base view alone (anyres False) or any-res tiles (module docstring)."""
    if not anyres:
        return ImagePlan(1, (0, 0), (0, 0, 0, 0), (0, 0), newline, tile_tokens + int(newline))
    if image_size is None:
        raise ValueError("an any-res image needs its size (image_sizes: the original height and width).")
    if tile_tokens != side * side:
        raise ValueError(f"any-res tiles must give {side}x{side} features each, but the encoder hands on "
                         f"{tile_tokens} (feature_select='default' drops a patch token of an encoder without class "
                         "token, which transformers refuses too).")
    best_h, best_w = select_best_resolution(image_size, pinpoints)
    rows, cols = best_h // tile_size, best_w // tile_size
    top, bottom, left, right = unpad_crop(image_size, (rows * side, cols * side))
    h, w = bottom - top, right - left
    if anyres_max:
        ratio = math.sqrt(h * w / (anyres_max * side ** 2))
        if ratio > 1.1:
            h, w = int(h // ratio), int(w // ratio)
    return ImagePlan(1 + rows * cols, (rows, cols), (top, bottom, left, right), (h, w), newline,
                     tile_tokens + h * (w + int(newline)))


def tile_tokens(cfg: Any) -> int:
    """Features one tile hands the projector: the grid's patches, plus CLIP's class token, minus one for 'default'."""
    side = vit.grid_size(cfg.encoder.image_size, cfg.encoder.patch_size)
    return side * side + int(vit.STYLES[cfg.encoder.style]["class_token"]) - int(cfg.feature_select == "default")


def plan_images(cfg: Any, image_sizes: Sequence[Sequence[int]] | None, num_images: int | None = None,
                batch_num_images: Sequence[int] | None = None) -> tuple[ImagePlan, ...]:
    """Plans of a batch's images in order, as transformers decides them: style 'llava' encodes the base view only;
    'llava_next' tiles every image; 'llava_onevision' tiles the images of prompts holding one image
    (`batch_num_images`, images per prompt; None: every image is taken as alone in its prompt, as transformers does).
    """
    if image_sizes is not None:
        image_sizes = [tuple(int(v) for v in s) for s in np.asarray(image_sizes).reshape(-1, 2)]
    n = len(image_sizes) if image_sizes is not None else num_images
    if n is None:
        raise ValueError("pass image_sizes (height, width per image) or the number of images.")
    if image_sizes is not None and num_images is not None and num_images != n:
        raise ValueError(f"image_sizes holds {n} sizes but {num_images} images were given.")
    if cfg.style == "llava_onevision" and batch_num_images is not None:
        counts = [int(c) for c in batch_num_images]
        if sum(counts) != n:
            raise ValueError(f"batch_num_images={counts} adds up to {sum(counts)}, not the {n} images given.")
        anyres = [c == 1 for c in counts for _ in range(c)]
    else:
        anyres = [cfg.style != "llava"] * n
    side = vit.grid_size(cfg.encoder.image_size, cfg.encoder.patch_size)
    common = dict(tile_size=cfg.encoder.image_size, side=side, tile_tokens=tile_tokens(cfg),
                  pinpoints=[tuple(p) for p in cfg.get("image_grid_pinpoints") or ()],
                  anyres_max=int(cfg.get("anyres_max") or 0), newline=cfg.style != "llava")
    return tuple(plan_image(image_sizes[i] if image_sizes is not None else None, anyres=anyres[i], **common)
                 for i in range(n))


# ----------------------------------------------------------------------------------------------------------------
# Packing features (device side)
# ----------------------------------------------------------------------------------------------------------------
def bilinear_matrix(old: int, new: int) -> np.ndarray:
    """[new, old] weights of torch's bilinear resize along one axis (align_corners=False, no antialias)."""
    scale = old / new
    matrix = np.zeros((new, old), np.float64)
    for i in range(new):
        src = max((i + 0.5) * scale - 0.5, 0.0)
        low = int(src)
        high = low + 1 if low < old - 1 else low
        frac = src - low
        matrix[i, low] += 1.0 - frac
        matrix[i, high] += frac
    return matrix


def pack_image(features: Array, plan: ImagePlan, newline: Array | None, side: int) -> Array:
    """One image's projected features [tiles, n, D] -> its tokens [plan.tokens, D] (module docstring)."""
    d = features.shape[-1]
    base, newline = features[0], newline if plan.newline else None
    if plan.grid == (0, 0):
        return base if newline is None else jnp.concatenate([base, newline[None].astype(base.dtype)])
    rows, cols = plan.grid
    grid = features[1:].reshape(rows, cols, side, side, d).transpose(0, 2, 1, 3, 4).reshape(rows * side, cols * side, d)
    top, bottom, left, right = plan.crop
    grid = grid[top:bottom, left:right]
    if plan.size != grid.shape[:2]:
        h_weights, w_weights = (bilinear_matrix(o, n).astype(np.float32) for o, n in zip(grid.shape[:2], plan.size))
        grid = jnp.einsum("ih,jw,hwd->ijd", h_weights, w_weights, grid,
                          precision=jax.lax.Precision.HIGHEST).astype(features.dtype)
    if newline is not None:
        column = jnp.broadcast_to(newline.astype(grid.dtype), (grid.shape[0], 1, d))
        grid = jnp.concatenate([grid, column], axis=1)
    return jnp.concatenate([base, grid.reshape(-1, d)])


def scatter_image_tokens(embeds: Array, is_image: Array, features: Array) -> Array:
    """Write features [N, D] over the image tokens (is_image [B, T]) of embeds [B, T, D], in row-major order (torch's
    masked_scatter): the k-th image token of the batch takes row k."""
    b, t, d = embeds.shape
    order = jnp.cumsum(is_image.reshape(-1)) - 1
    gathered = features[jnp.clip(order, 0, features.shape[0] - 1)].reshape(b, t, d)
    return jnp.where(is_image[..., None], gathered.astype(embeds.dtype), embeds)


def check_image_tokens(tokens: Any, plans: Sequence[ImagePlan], image_token_id: int) -> None:
    """One sentence when the `<image>` tokens and the images' features disagree (skipped while tracing)."""
    if isinstance(tokens, jax.core.Tracer):
        return
    count, want = int(np.sum(np.asarray(tokens) == image_token_id)), sum(p.tokens for p in plans)
    if count != want:
        raise ValueError(f"input_ids hold {count} image tokens (id {image_token_id}) but the {len(plans)} images "
                         f"have {want} features ({', '.join(str(p.tokens) for p in plans) or 'none'}); repeat each "
                         "image's token as often as `image_token_counts` says, in image order.")


class Llava(nn.Module):
    """LLaVA-OneVision / LLaVA-NeXT / LLaVA. Submodules 'encoder', 'projector', 'decoder'; parameter 'image_newline'
    (styles with newlines). Built by `build_llava(config.model)`."""

    encoder: nn.Module
    projector: nn.Module
    decoder: Decoder
    image_token_id: int
    feature_layers: tuple[int, ...] = (-1,)
    feature_select: str = "full"
    newline: bool = True  # the 'image_newline' parameter ends map rows and base views

    @nn.compact
    def encode_images(self, tiles: Array, plans: Sequence[ImagePlan]) -> Array:
        """Tiles [sum of tiles, S, S, 3] -> the images' tokens [sum of plan.tokens, D], images in order."""
        want = sum(p.tiles for p in plans)
        if tiles.shape[0] != want:
            raise ValueError(f"{tiles.shape[0]} tiles were given but the images' plans need {want}.")
        hidden = self.encoder(normalize_pixels(tiles, encoder_norm(self.encoder)), return_hidden_states=True)
        features = jnp.concatenate([hidden["hidden_states"][i] for i in self.feature_layers], axis=-1)
        if self.feature_select == "default":
            features = features[:, 1:]
        features = self.projector(features)
        newline = None
        if self.newline:
            width = features.shape[-1]
            newline = self.param("image_newline", nn.with_logical_partitioning(
                nn.initializers.normal(1.0 / math.sqrt(width)), ("embed",)), (width,), jnp.float32)
        side = vit.grid_size(self.encoder.image_size, self.encoder.patch_size)
        out, start = [], 0
        for plan in plans:
            out.append(pack_image(features[start:start + plan.tiles], plan, newline, side))
            start += plan.tiles
        return jnp.concatenate(out)

    def __call__(self, tokens: Array, tiles: Array | None = None, *, plans: Sequence[ImagePlan] = (),
                 positions: Array | None = None, segment_ids: Array | None = None, decode: bool = False,
                 return_hidden_states: bool = False) -> dict[str, Array]:
        """{'logits' [B, T, V] float32}; tiles and plans as in the module docstring. With decode=True pass the tiles
        on the prefill call only."""
        embeds = self.decoder.embed(tokens)
        if tiles is not None and len(plans):
            check_image_tokens(tokens, plans, self.image_token_id)
            embeds = scatter_image_tokens(embeds, tokens == self.image_token_id, self.encode_images(tiles, plans))
        return self.decoder(inputs_embeds=embeds, positions=positions, segment_ids=segment_ids, decode=decode,
                            return_hidden_states=return_hidden_states)


# ----------------------------------------------------------------------------------------------------------------
# Config
# ----------------------------------------------------------------------------------------------------------------
def validate_llava_config(cfg: Any) -> None:
    """One sentence naming the first field of `config.model` (kind 'llava') that cannot work."""
    unknown = sorted(set(cfg.keys()) - set(FIELDS))
    if unknown:
        raise ValueError(f"model.{unknown[0]} is not a field of a 'llava' model ({', '.join(FIELDS)}).")
    if cfg.style not in STYLES:
        raise ValueError(f"model.style={cfg.style!r} is not one of {', '.join(STYLES)}.")
    if cfg.feature_select not in FEATURE_SELECT:
        raise ValueError(f"model.feature_select={cfg.feature_select!r} is not one of {', '.join(FEATURE_SELECT)}.")
    depth = cfg.encoder.depth
    layers = tuple(cfg.feature_layers)
    if not layers or any(not isinstance(i, int) or not -(depth + 1) <= i <= depth for i in layers):
        raise ValueError(f"model.feature_layers={list(layers)} must be encoder hidden-state indices in "
                         f"{-(depth + 1)}..{depth}.")
    if model_config.get(cfg, "model", "dtype") not in DTYPES:
        raise ValueError(f"model.dtype={cfg.dtype!r} is not one of {', '.join(DTYPES)}.")
    tile = cfg.encoder.image_size
    for point in cfg.get("image_grid_pinpoints") or ():
        if len(point) != 2 or any(not isinstance(v, int) or v <= 0 or v % tile for v in point):
            raise ValueError(f"model.image_grid_pinpoints holds {list(point)}, not [height, width] multiples of the "
                             f"tile size encoder.image_size={tile}.")
    if cfg.style != "llava" and not cfg.get("image_grid_pinpoints"):
        raise ValueError(f"model.image_grid_pinpoints is empty; style {cfg.style!r} tiles images by it.")
    anyres_max = cfg.get("anyres_max") or 0
    if not isinstance(anyres_max, int) or anyres_max < 0 or (anyres_max and cfg.style != "llava_onevision"):
        raise ValueError(f"model.anyres_max={anyres_max!r} must be 0, or a positive integer for style "
                         "'llava_onevision'.")


def build_llava(cfg: Any) -> Llava:
    """The `Llava` module of `config.model` (kind 'llava'), validated first."""
    from mm1_jax.models.registry import build_decoder  # pylint: disable=import-outside-toplevel

    validate_llava_config(cfg)
    dtype = DTYPES[model_config.get(cfg, "model", "dtype")]
    vit.validate_vit_config(cfg.encoder)
    encoder = vit.ViT(**{**model_config.with_defaults(cfg.encoder, "encoder"), "dtype": dtype})
    return Llava(encoder=encoder, projector=MlpProjector(cfg.decoder.width, mlp_depth=2, dtype=dtype),
                 decoder=build_decoder(cfg.decoder, dtype), image_token_id=int(cfg.image_token_id),
                 feature_layers=tuple(int(i) for i in cfg.feature_layers), feature_select=cfg.feature_select,
                 newline=cfg.style != "llava")


def example_inputs(cfg: Any) -> dict[str, Any]:
    """Arguments for `Llava.init`: one base-view image (its newline included) over a prompt of its tokens."""
    plans = (plan_image(None, anyres=False, tile_size=cfg.encoder.image_size, side=0, tile_tokens=tile_tokens(cfg),
                        pinpoints=(), anyres_max=0, newline=cfg.style != "llava"),)
    size = cfg.encoder.image_size
    return dict(tokens=jnp.full((1, plans[0].tokens), int(cfg.image_token_id), jnp.int32),
                tiles=jnp.zeros((1, size, size, 3), jnp.float32), plans=plans)
