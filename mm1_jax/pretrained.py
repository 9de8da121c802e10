"""Converted checkpoints for notebooks, analysis and training initialisation.

`load(path)` takes a Hugging Face directory (converted in memory, tensor by tensor) or a directory written by
`python -m mm1_jax.convert`, and returns a `Loaded` with `.config`, `.params` (float32 jax arrays on the default
device), `.module` and the entry points of its kind, each jitted once and computed in float32:
  encoder    encode_images(pixels [B, H, W, 3], uint8 or normalised) -> {'last_hidden_state' [B, N, D],
             'hidden_states' [depth + 1 x [B, N, D]] as transformers' output_hidden_states, 'pooled' where defined}
  decoder    logits(input_ids [B, T]) -> [B, T, V];  hidden_states(input_ids) -> [depth + 1 x [B, T, D]]
  connector  connect(features [B, N, Cv]) -> [B, K, D]
mPLUG-Owl3 checkpoints load as `LoadedOwl3`, LLaVA-OneVision / LLaVA-NeXT / LLaVA ones as `LoadedLlava` (logits and
generation).

`init_from_checkpoints(config.init, params)` puts converted encoder / decoder weights into a freshly initialised MM1
parameter tree (the connector stays fresh), stacking layers for scanned models and resizing ViT position tables.
"""
from __future__ import annotations

from typing import Any, Mapping

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import traverse_util

from mm1_jax import convert
from mm1_jax.convert import checkpoint
from mm1_jax.data.images import pixel_dtype
from mm1_jax.models import llava, vit
from mm1_jax.models.decoder import stack_layers, stacked_period
from mm1_jax.models.mm1 import encoder_norm, normalize_pixels
from mm1_jax.models.owl3 import check_placeholder_count
from mm1_jax.runtime import generate as gen


def _float32(params: Any) -> Any:
    return jax.tree.map(lambda x: jnp.asarray(x, jnp.float32) if np.asarray(x).dtype.kind == "f" else jnp.asarray(x),
                        params)


def read(path: str) -> checkpoint.Converted:
    """A Hugging Face directory (converted now, float32) or a converted directory (as stored)."""
    if checkpoint.is_converted(path):
        return checkpoint.read_converted(path)
    return checkpoint.read_hf(path, "float32")


class Loaded:
    """A converted part with float32 params, its flax module and the entry points of its kind."""

    def __init__(self, family: str, kind: str, config: ml_collections.ConfigDict, params: Any, module: nn.Module):
        self.family, self.kind, self.config, self.params, self.module = family, kind, config, params, module
        self._jitted: dict[str, Any] = {}

    def __repr__(self) -> str:
        count = sum(int(np.prod(x.shape)) for x in jax.tree.leaves(self.params))
        return f"Loaded(family={self.family!r}, kind={self.kind!r}, params={count:,})"

    def _need(self, kind: str, method: str) -> None:
        if self.kind != kind:
            raise TypeError(f"{method} is for a {kind}; this checkpoint ({self.family}) is a {self.kind}.")

    def _jit(self, name: str, fn: Any) -> Any:
        if name not in self._jitted:
            self._jitted[name] = jax.jit(fn)
        return self._jitted[name]

    def encode_images(self, pixels: Any) -> dict[str, Any]:
        """Pixels [B, H, W, 3] (uint8, normalised here with the encoder's statistics, or float already normalised)
        -> transformers' vision outputs (hidden_states as a list)."""
        self._need("encoder", "encode_images")
        norm = encoder_norm(self.module)
        fn = self._jit("encode_images", lambda p, x: self.module.apply({"params": p}, normalize_pixels(x, norm),
                                                                       return_hidden_states=True))
        out = fn(self.params, _pixels(pixels))
        result = {"last_hidden_state": out["last_hidden_state"], "hidden_states": list(out["hidden_states"])}
        if "pooled" in out:
            result["pooled"] = out["pooled"]
        return result

    def _decode(self, input_ids: Any) -> dict[str, Any]:
        fn = self._jit("decode", lambda p, t: self.module.apply({"params": p}, t, return_hidden_states=True))
        return fn(self.params, jnp.asarray(input_ids, jnp.int32))

    def logits(self, input_ids: Any) -> jax.Array:
        """int32 [B, T] -> float32 logits [B, T, V]."""
        self._need("decoder", "logits")
        return self._decode(input_ids)["logits"]

    def hidden_states(self, input_ids: Any) -> list[jax.Array]:
        """int32 [B, T] -> depth + 1 hidden states [B, T, D], numbered as transformers' (the last one normed)."""
        self._need("decoder", "hidden_states")
        return list(self._decode(input_ids)["hidden_states"])

    def connect(self, features: Any) -> jax.Array:
        """Encoder features [B, N, Cv] -> [B, K, D]; a leading class token (N + 1 rows) is dropped first."""
        self._need("connector", "connect")
        features = jnp.asarray(features, jnp.float32)
        if features.shape[1] == self.config.num_input_tokens + 1:
            features = features[:, 1:]
        return self._jit("connect", lambda p, x: self.module.apply({"params": p}, x))(self.params, features)


# ----------------------------------------------------------------------------------------------------------------
# mPLUG-Owl3: logits and generation on numpy inputs
# ----------------------------------------------------------------------------------------------------------------
@dataclasses.dataclass
class LoadedOwl3:
    """An Owl3 module with its parameters (what `mm1_jax.pretrained.load` returns for kind 'owl3')."""

    module: Any
    params: Any
    config: ml_collections.ConfigDict
    image_token_id: int | None = None

    def __post_init__(self):
        self._logits = jax.jit(lambda p, ids, imgs, tid: self.module.apply({"params": p}, ids, imgs,
                                                                            image_token_id=tid)["logits"])

    def _token_id(self, image_token_id: int | None) -> int:
        token_id = image_token_id if image_token_id is not None else self.image_token_id
        if token_id is None:
            raise ValueError("no image_token_id: the checkpoint's tokenizer has no <|image|> token; pass it.")
        return int(token_id)

    def logits(self, input_ids: Any, images: Any = None, image_token_id: int | None = None) -> np.ndarray:
        """float32 [B, T, V] for int32 input_ids [B, T] and images [N, H, W, 3] (placeholder order; uint8 pixels, or
        float already normalised)."""
        input_ids = np.asarray(input_ids, np.int32)
        if images is not None:
            images = _pixels(images)
            if images.ndim != 4 or images.shape[-1] != 3:
                raise ValueError(f"images of shape {images.shape} are not [n_images, H, W, 3].")
        token_id = self._token_id(image_token_id)
        check_placeholder_count(input_ids, 0 if images is None else images.shape[0], token_id)
        if images is not None and images.shape[0] == 0:
            images = None
        return np.asarray(self._logits(self.params, input_ids, images, token_id))

    def generate(self, input_ids: Any, images: Any = None, *, max_new_tokens: int = 32, temperature: float = 0.0,
                 top_k: int = 0, seed: int = 0, eos_id: int | None = None,
                 image_token_id: int | None = None) -> np.ndarray:
        """New tokens [B, max_new_tokens] int32 (greedy when temperature == 0, else sampled at `temperature` from the
        top_k most likely tokens, 0: all) for input_ids [B, T] or a list of prompts of any lengths (left-padded);
        images [N, H, W, 3]: every row's images in placeholder order, row after row. After `eos_id` a row repeats
        `eos_id`. Runs on `mm1_jax.runtime.generate.Generator` (compiled once per shape, reused across calls)."""
        token_id = self._token_id(image_token_id)
        images = None if images is None else _pixels(images)
        prompts = [np.asarray(row, np.int32).reshape(-1) for row in input_ids]
        check_placeholder_count(np.concatenate(prompts), 0 if images is None else images.shape[0], token_id)
        counts = np.cumsum([0] + [int(np.sum(p == token_id)) for p in prompts])
        shape = (0,) + (images.shape[1:] if images is not None else (1, 1, 3))
        requests = [gen.Request(p, images[counts[i]:counts[i + 1]] if images is not None else np.zeros(shape))
                    for i, p in enumerate(prompts)]
        generator = gen.Generator(self.module, image_token_id=token_id, pad_id=int(token_id == 0),
                                  batch_size=len(prompts))
        sampling = gen.Sampling(max_new_tokens=max_new_tokens, temperature=temperature, top_k=top_k, seed=seed,
                                stop_ids=() if eos_id is None else (int(eos_id),))
        fill = 0 if eos_id is None else int(eos_id)  # only rows that stopped are short
        rows = [ids + [fill] * (max_new_tokens - len(ids)) for ids, _ in generator(self.params, requests, sampling)]
        return np.array(rows, np.int32).reshape(len(prompts), max_new_tokens)


# ----------------------------------------------------------------------------------------------------------------
# LLaVA-OneVision / LLaVA-NeXT / LLaVA: logits and generation on numpy inputs (the concatenation route)
# ----------------------------------------------------------------------------------------------------------------
@dataclasses.dataclass
class LoadedLlava:
    """A `Llava` module with its parameters (what `mm1_jax.pretrained.load` returns for kind 'llava').

    Images are given as transformers' processor gives them, with the sizes of the originals: `images` the processor's
    pixel_values [N, P, 3, S, S] (or channels-last [N, P, S, S, 3]; tiles past an image's count are padding), a list
    of N arrays [P_i, S, S, 3], or [N, S, S, 3] for images encoded as their base view alone; `image_sizes` [N, 2]
    (height, width of each original, needed for any-res images); `batch_num_images` images per prompt
    (LLaVA-OneVision tiles only the image of a one-image prompt; None: every image is taken as alone, as in
    transformers). uint8 pixels are normalised with the encoder's statistics, float pixels are taken as normalised.
    In input_ids every image's `<image>` token is repeated as often as `image_token_counts` says
    (`expand_image_tokens` does it).
    """

    module: Any
    params: Any
    config: ml_collections.ConfigDict

    def __post_init__(self):
        self._logits = jax.jit(lambda p, ids, tiles, plans: self.module.apply({"params": p}, ids, tiles,
                                                                              plans=plans)["logits"],
                               static_argnames=("plans",))

    @property
    def image_token_id(self) -> int:
        return int(self.config.image_token_id)

    def plans(self, image_sizes: Any = None, num_images: int | None = None,
              batch_num_images: Any = None) -> tuple:
        """The images' `ImagePlan`s (tiles, tokens...) in order."""
        sizes = None if image_sizes is None else np.asarray(image_sizes).reshape(-1, 2)
        return llava.plan_images(self.config, sizes, num_images, batch_num_images)

    def image_token_counts(self, image_sizes: Any = None, num_images: int | None = None,
                           batch_num_images: Any = None) -> list[int]:
        """How many `<image>` tokens each image fills."""
        return [p.tokens for p in self.plans(image_sizes, num_images, batch_num_images)]

    def expand_image_tokens(self, prompts: Any, image_sizes: Any = None, batch_num_images: Any = None) -> list:
        """Prompts with one `<image>` token per image (rows of ids, images in order row after row) -> the same with
        each image's token repeated `image_token_counts` times (what the processor does to the text)."""
        rows = [np.asarray(row, np.int32).reshape(-1) for row in prompts]
        marks = sum(int(np.sum(row == self.image_token_id)) for row in rows)
        counts = iter(self.image_token_counts(image_sizes, marks if image_sizes is None else None, batch_num_images))
        return [np.concatenate([np.full(next(counts) if t == self.image_token_id else 1, t, np.int32) for t in row]
                               + [np.zeros(0, np.int32)]) for row in rows]

    def _tiles(self, images: Any, plans: tuple) -> np.ndarray:
        """[sum of plan.tiles, S, S, 3] from any of the accepted layouts (class docstring)."""
        if isinstance(images, (list, tuple)):
            per_image = [np.asarray(x) for x in images]
            per_image = [x[None] if x.ndim == 3 else x for x in per_image]
        else:
            images = np.asarray(images)
            if images.ndim == 4:
                images = images[:, None]
            if images.ndim != 5:
                raise ValueError(f"images of shape {images.shape} are not [N, P, S, S, 3], [N, P, 3, S, S] or "
                                 "[N, S, S, 3].")
            per_image = list(images)
        per_image = [x.transpose(0, 2, 3, 1) if x.ndim == 4 and x.shape[1] == 3 and x.shape[-1] != 3 else x
                     for x in per_image]
        if len(per_image) != len(plans):
            raise ValueError(f"{len(per_image)} images were given but image_sizes / batch_num_images describe "
                             f"{len(plans)}.")
        size = self.config.encoder.image_size
        for i, (x, plan) in enumerate(zip(per_image, plans)):
            if x.ndim != 4 or x.shape[1:] != (size, size, 3) or x.shape[0] < plan.tiles:
                raise ValueError(f"image {i} has tiles of shape {x.shape}; it needs {plan.tiles} tiles of "
                                 f"{size}x{size}x3 (its base view first).")
        tiles = [x[:plan.tiles] for x, plan in zip(per_image, plans)]
        return np.concatenate(tiles).astype(pixel_dtype(tiles))

    def logits(self, input_ids: Any, images: Any = None, image_sizes: Any = None,
               batch_num_images: Any = None) -> np.ndarray:
        """float32 [B, T, V] for int32 input_ids [B, T] (expanded image tokens) and the images (class docstring)."""
        input_ids = np.asarray(input_ids, np.int32)
        if images is None or len(images) == 0:
            llava.check_image_tokens(input_ids, (), self.image_token_id)
            return np.asarray(self._logits(self.params, input_ids, None, ()))
        plans = self.plans(image_sizes, len(images), batch_num_images)
        tiles = self._tiles(images, plans)
        llava.check_image_tokens(input_ids, plans, self.image_token_id)
        return np.asarray(self._logits(self.params, input_ids, tiles, plans))

    def generate(self, input_ids: Any, images: Any = None, image_sizes: Any = None, batch_num_images: Any = None, *,
                 max_new_tokens: int = 32, temperature: float = 0.0, top_k: int = 0, seed: int = 0,
                 eos_id: int | None = None) -> np.ndarray:
        """New tokens [B, max_new_tokens] int32 (greedy when temperature == 0, else sampled at `temperature` from the
        top_k most likely tokens, 0: all) for input_ids [B, T] or a list of prompts of any lengths (left-padded; image
        tokens expanded), the images of every row in order, row after row (class docstring). After `eos_id` a row
        repeats `eos_id`. Runs on `mm1_jax.runtime.generate.Generator`."""
        prompts = [np.asarray(row, np.int32).reshape(-1) for row in input_ids]
        token_id = self.image_token_id
        plans, tiles = (), np.zeros((0, 1, 1, 3), np.float32)
        if images is not None and len(images):
            plans = self.plans(image_sizes, len(images), batch_num_images)
            tiles = self._tiles(images, plans)
        llava.check_image_tokens(np.concatenate(prompts), plans, token_id)
        starts = np.cumsum([0] + [p.tiles for p in plans])
        requests, image = [], 0
        for prompt in prompts:  # a row's images: the next ones whose tokens add up to the row's image tokens
            need, first = int(np.sum(prompt == token_id)), image
            while need > 0:
                need -= plans[image].tokens
                image += 1
            if need < 0:
                raise ValueError(f"a prompt's {int(np.sum(prompt == token_id))} image tokens do not end where an "
                                 "image's tokens end; expand each image's token by `image_token_counts`.")
            requests.append(gen.Request(prompt, tiles[starts[first]:starts[image]], plans[first:image]))
        generator = gen.Generator(self.module, inputs=gen.LlavaImages(token_id), pad_id=int(token_id == 0),
                                  batch_size=len(prompts))
        sampling = gen.Sampling(max_new_tokens=max_new_tokens, temperature=temperature, top_k=top_k, seed=seed,
                                stop_ids=() if eos_id is None else (int(eos_id),))
        fill = 0 if eos_id is None else int(eos_id)
        rows = [ids + [fill] * (max_new_tokens - len(ids)) for ids, _ in generator(self.params, requests, sampling)]
        return np.array(rows, np.int32).reshape(len(prompts), max_new_tokens)


def _pixels(images: Any) -> np.ndarray:
    """uint8 pixels stay uint8 (the model normalises them); anything else is normalised float, as float32."""
    images = np.asarray(images)
    return images.astype(pixel_dtype([images]))


def load(path: str) -> Any:
    """A Hugging Face or converted directory -> `Loaded` (or the family's own object for other kinds)."""
    converted = read(path)
    family = converted.module
    params = _float32(converted.params)
    if family.KIND == "owl3":
        return LoadedOwl3(family.build_module(converted.config), params, converted.config,
                          converted.config.get("image_token_id"))
    if family.KIND == "llava":
        return LoadedLlava(family.build_module(converted.config), params, converted.config)
    if family.KIND not in convert.GENERIC_KINDS:
        raise ValueError(f"family {converted.family!r} has kind {family.KIND!r}, which pretrained.load cannot wrap.")
    return Loaded(converted.family, family.KIND, converted.config, params, family.build_module(converted.config))


# ----------------------------------------------------------------------------------------------------------------
# Initialising an MM1 model from converted parts
# ----------------------------------------------------------------------------------------------------------------
_ARCHITECTURE_FIELDS = {
    "decoder": ("vocab_size", "width", "depth", "num_heads", "num_kv_heads", "head_dim", "mlp_dim", "rope_theta",
                "qkv_bias", "tie_embeddings", "norm_eps"),
    "encoder": ("style", "patch_size", "width", "depth", "num_heads", "mlp_dim", "norm_eps", "activation", "attn_bias",
                "mlp_bias", "pos_embed"),
}


def _effective(part: str, cfg: Any, field: str) -> Any:
    """A config's value for `field`, the module's default where the config leaves it out."""
    from mm1_jax.models import decoder, vit

    if part == "decoder" and field == "head_dim":
        return cfg.get("head_dim") or cfg["width"] // cfg["num_heads"]
    if part == "encoder" and field in ("activation", "attn_bias", "mlp_bias", "pos_embed"):
        return vit.style_value(cfg, field)
    value = cfg.get(field)
    return getattr(decoder.Decoder if part == "decoder" else vit.ViT, field) if value is None else value


def _check_architecture(part: str, path: str, theirs: Any, ours: Any) -> None:
    diffs = [f"{f}={_effective(part, theirs, f)!r} (model.{part}.{f}={_effective(part, ours, f)!r})"
             for f in _ARCHITECTURE_FIELDS[part] if _effective(part, theirs, f) != _effective(part, ours, f)]
    if diffs:
        raise ValueError(f"init.{part}={path!r} does not match the model config: {', '.join(diffs)}.")


def _adapt(source: dict, target: Mapping) -> dict:
    """Stack layers for a scanned target (grouped by the target's scan period); resize the parameters the model
    declares resolution-dependent (`vit.resolution_resize`) to the target's grid."""
    source = dict(source)
    if "layers" in target and "layer_0" in source:
        depth = len([k for k in source if k.startswith("layer_")])
        source = stack_layers(source, depth, stacked_period(target))
    flat, wanted = traverse_util.flatten_dict(source, sep="/"), traverse_util.flatten_dict(dict(target), sep="/")
    for key, value in flat.items():
        plan = key in wanted and vit.resolution_resize(key, np.shape(value), np.shape(wanted[key]), flat)
        if plan:
            old, new, class_row = plan
            flat[key] = vit.interpolate_pos_embed(np.asarray(value, np.float32), old, new, class_row)
    return traverse_util.unflatten_dict(flat, sep="/")


def _flatten(tree: Any) -> dict[str, Any]:
    leaves, _ = jax.tree_util.tree_flatten_with_path(tree, is_leaf=lambda x: isinstance(x, nn.meta.AxisMetadata))
    return {"/".join(str(getattr(k, "key", k)) for k in path): leaf for path, leaf in leaves}


def init_from_checkpoints(init_cfg: Any, params: Mapping, model_cfg: Any = None) -> dict:
    """`params` with params['encoder'] / params['decoder'] replaced by the checkpoints `init_cfg.encoder` /
    `init_cfg.decoder` name (HF or converted directories; '' or None leaves a part as initialised).

    Shapes must match the model's (after stacking layers and resizing position tables); one error lists every
    difference. Target leaves keep their dtype and any logical-axis boxes. With `model_cfg` (config.model) the
    architecture fields are compared too, so a checkpoint with the same shapes but, say, another activation fails.
    """
    params = dict(params)
    for part in ("encoder", "decoder"):
        path = (init_cfg or {}).get(part) if isinstance(init_cfg, Mapping) else getattr(init_cfg, part, None)
        if not path:
            continue
        converted = read(path)
        kind = converted.module.KIND
        if kind != part:
            raise ValueError(f"init.{part}={path!r} holds a {kind} ({converted.family}), not a {part}.")
        if model_cfg is not None:
            _check_architecture(part, path, converted.config, model_cfg[part])
        target = params[part]
        source = _adapt(converted.params, nn.unbox(target))
        want, got = _flatten(target), _flatten(source)
        shape = lambda x: tuple(np.shape(x.unbox() if isinstance(x, nn.meta.AxisMetadata) else x))  # noqa: E731
        problems = ([f"missing {k}" for k in want if k not in got] + [f"unexpected {k}" for k in got if k not in want]
                    + [f"{k} {list(shape(got[k]))} (model {list(shape(v))})" for k, v in want.items()
                       if k in got and shape(got[k]) != shape(v)])
        if problems:
            raise ValueError(f"init.{part}={path!r} does not fit model.{part}: {', '.join(problems[:12])}"
                             f"{' ...' if len(problems) > 12 else ''}.")

        def put(old: Any, new: Any) -> Any:
            if isinstance(old, nn.meta.AxisMetadata):
                return old.replace_boxed(jnp.asarray(new, old.unbox().dtype))
            return jnp.asarray(new, old.dtype)

        params[part] = jax.tree.map(put, target, source, is_leaf=lambda x: isinstance(x, nn.meta.AxisMetadata))
    return params
