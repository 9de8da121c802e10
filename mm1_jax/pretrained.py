"""Converted checkpoints for notebooks, analysis and training initialisation.

`load(path)` takes a Hugging Face directory (converted in memory, tensor by tensor) or a directory written by
`python -m mm1_jax.convert`, and returns a `Loaded` with `.config`, `.params` (float32 jax arrays on the default
device), `.module` and the entry points of its kind, each jitted once and computed in float32:
  encoder    encode_images(pixels [B, H, W, 3], normalised) -> {'last_hidden_state' [B, N, D],
             'hidden_states' [depth + 1 x [B, N, D]] as transformers' output_hidden_states, 'pooled' where defined}
  decoder    logits(input_ids [B, T]) -> [B, T, V];  hidden_states(input_ids) -> [depth + 1 x [B, T, D]]
  connector  connect(features [B, N, Cv]) -> [B, K, D]
A family of another kind (mPLUG-Owl3, ...) provides `make_loaded(cfg, params, module)` and returns its own object.

`init_from_checkpoints(config.init, params)` puts converted encoder / decoder weights into a freshly initialised MM1
parameter tree (the connector stays fresh), stacking layers for scanned models and resizing ViT position tables.
"""
from __future__ import annotations

from typing import Any, Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from mm1_jax import convert
from mm1_jax.convert import checkpoint


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
        """Normalised pixels [B, H, W, 3] -> transformers' vision outputs (hidden_states as a list)."""
        self._need("encoder", "encode_images")
        fn = self._jit("encode_images", lambda p, x: self.module.apply({"params": p}, x, return_hidden_states=True))
        out = fn(self.params, jnp.asarray(pixels, jnp.float32))
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


def load(path: str) -> Any:
    """A Hugging Face or converted directory -> `Loaded` (or the family's own object for other kinds)."""
    converted = read(path)
    family = converted.module
    params = _float32(converted.params)
    if hasattr(family, "make_loaded"):
        return family.make_loaded(converted.config, params, family.build_module(converted.config))
    if family.KIND not in convert.GENERIC_KINDS:
        raise ValueError(f"family {converted.family!r} (kind {family.KIND!r}) provides no make_loaded.")
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


def _stack(trees: list) -> Any:
    return jax.tree.map(lambda *xs: np.stack(xs), *trees)


def _adapt(part: str, source: dict, target: Mapping, cfg: Any) -> dict:
    """Stack layers for a scanned target; resize a ViT position table to the target's grid."""
    source = dict(source)
    if "layers" in target and "layer_0" in source:
        depth = len([k for k in source if k.startswith("layer_")])
        source["layers"] = _stack([source.pop(f"layer_{i}") for i in range(depth)])
    if part == "encoder" and "pos_embed" in source and "pos_embed" in target:
        from mm1_jax.models import vit

        have, want = np.shape(source["pos_embed"]), np.shape(target["pos_embed"])
        class_token = vit.STYLES[cfg.style]["class_token"]
        if have != want and have[-1] == want[-1]:
            old, new = (int(round((n - class_token) ** 0.5)) for n in (have[0], want[0]))
            source["pos_embed"] = vit.interpolate_pos_embed(np.asarray(source["pos_embed"], np.float32), old, new,
                                                            class_token)
    return source


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
        source = _adapt(part, converted.params, nn.unbox(target), converted.config)
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

        source_tree = jax.tree.map(lambda x: x, source)
        params[part] = jax.tree.map(put, target, source_tree, is_leaf=lambda x: isinstance(x, nn.meta.AxisMetadata))
    return params
