"""HoneyBee C-Abstractor checkpoint (torch state dict) -> mm1_jax `CAbstractor` params.

The name and layout table is in `mm1_jax/models/c_abstractor.py`. In short: `net.0` -> `net_0`, `readout.2` ->
`readout_2`, `bn` -> `norm`, norm `weight` -> `scale`, other `weight` -> `kernel`; conv weights
[out, in, kh, kw] -> [kh, kw, in, out]; linear weights [out, in] -> [in, out]; pos_emb [1, N, Cv] -> [N, Cv].

This module is also the 'honeybee' conversion family (see mm1_jax.convert): a directory holding the projector's
tensors (`abstractor.*`, safetensors) and a config.json with HoneyBee's projector fields (HoneybeeVisualProjectorConfig:
encoder_hidden_size Cv, hidden_size C, output_hidden_size D, depth, mlp_depth, num_query_tokens K, num_input_tokens N).
"""
from __future__ import annotations

import re
from typing import Any, Mapping

import ml_collections
import numpy as np

MODEL_TYPES = ("mllm_visual_projector",)
KIND = "connector"
_FIELDS = ("encoder_hidden_size", "hidden_size", "output_hidden_size", "num_query_tokens", "num_input_tokens")
PREFIX = "abstractor."
_CONV_NORM = re.compile(r"^net\.([02])\.(b\d+)\.(conv1|conv2|conv3|downsample)\.(conv\.weight|bn\.weight|bn\.bias)$")
_SQUEEZE_EXCITE = re.compile(r"^net\.([02])\.(b\d+)\.se\.(fc1|fc2)\.(weight|bias)$")
_READOUT = re.compile(r"^readout\.(\d+)\.(weight|bias)$")
_CONV_NORM_LEAVES = {"conv.weight": ("conv", "kernel"), "bn.weight": ("norm", "scale"), "bn.bias": ("norm", "bias")}


def _torch_to_flax_weight(value: np.ndarray) -> np.ndarray:
    """Conv [out, in, kh, kw] -> [kh, kw, in, out]; linear [out, in] -> [in, out]; biases and norms unchanged."""
    if value.ndim == 4:
        return np.transpose(value, (2, 3, 1, 0))
    if value.ndim == 2:
        return np.transpose(value)
    return value


def _param_path(key: str) -> tuple[str, ...] | None:
    """Our param path for a HoneyBee key without prefix, or None if the key is not an abstractor parameter."""
    if key == "pos_emb":
        return ("pos_emb",)
    if match := _CONV_NORM.match(key):
        stage, block, layer, leaf = match.groups()
        return (f"net_{stage}", block, layer, *_CONV_NORM_LEAVES[leaf])
    if match := _SQUEEZE_EXCITE.match(key):
        stage, block, fc, leaf = match.groups()
        return (f"net_{stage}", block, "se", fc, "kernel" if leaf == "weight" else "bias")
    if match := _READOUT.match(key):
        index, leaf = match.groups()
        return (f"readout_{index}", "kernel" if leaf == "weight" else "bias")
    return None


def honeybee_to_params(
    state_dict: Mapping[str, Any], *, num_input_tokens: int | None = None, prefix: str = PREFIX
) -> dict[str, Any]:
    """Map a HoneyBee C-Abstractor state dict (arrays; keys with or without `prefix`) to a nested flax params dict.

    If any key starts with `prefix`, only those are read (a whole-model checkpoint); otherwise every key must be an
    abstractor key without the prefix. Old checkpoints whose pos_emb has one extra leading row (a class-token slot)
    are trimmed when `num_input_tokens` is given, as HoneyBee does on load. Raises ValueError naming any key that
    has no place in our C-Abstractor.
    """
    keys = [k for k in state_dict if k.startswith(prefix)] or list(state_dict)
    if not keys:
        raise ValueError("the HoneyBee state dict is empty.")
    params: dict[str, Any] = {}
    for full_key in keys:
        key = full_key[len(prefix):] if full_key.startswith(prefix) else full_key
        path = _param_path(key)
        if path is None:
            raise ValueError(f"checkpoint key {full_key!r} is not a HoneyBee C-Abstractor parameter.")
        value = np.asarray(state_dict[full_key], dtype=np.float32)
        if key == "pos_emb":
            value = value.reshape(value.shape[-2:])
            if num_input_tokens is not None and value.shape[0] == num_input_tokens + 1:
                value = value[1:]
        else:
            value = _torch_to_flax_weight(value)
        node = params
        for name in path[:-1]:
            node = node.setdefault(name, {})
        node[path[-1]] = value
    return params


# ----------------------------------------------------------------------------------------------------------------
# The way back and the conversion-family interface (mm1_jax.convert).
# ----------------------------------------------------------------------------------------------------------------
def recognises(hf_config: dict) -> bool:
    """A projector config saved without model_type still names HoneyBee's fields."""
    return "model_type" not in hf_config and all(field in hf_config for field in _FIELDS)


def config_from_hf(hf: dict) -> ml_collections.ConfigDict:
    """Our connector config (plus in_dim, out_dim, num_input_tokens) from HoneyBee's projector config."""
    missing = [field for field in _FIELDS if field not in hf]
    if missing:
        raise ValueError(f"config.json lacks the HoneyBee projector fields {', '.join(missing)}.")
    if hf.get("projector_type", "c-abs") != "c-abs":
        raise ValueError(f"config.json projector_type={hf['projector_type']!r} is not supported (only 'c-abs').")
    for field in ("num_eos_tokens", "prenorm"):
        if hf.get(field):
            raise ValueError(f"config.json {field}={hf[field]!r} is not supported by our C-Abstractor.")
    return ml_collections.ConfigDict(dict(
        name="c_abstractor", num_tokens=int(hf["num_query_tokens"]), hidden_dim=int(hf["hidden_size"]),
        depth=int(hf.get("depth", 3)), mlp_depth=int(hf.get("mlp_depth", 2)), pos_emb=bool(hf.get("pos_emb", True)),
        in_dim=int(hf["encoder_hidden_size"]), out_dim=int(hf["output_hidden_size"]),
        num_input_tokens=int(hf["num_input_tokens"])))


def hf_to_params(state: Mapping[str, Any], cfg: ml_collections.ConfigDict) -> dict:
    return honeybee_to_params(state, num_input_tokens=cfg.num_input_tokens)


def build_module(cfg: ml_collections.ConfigDict):
    from mm1_jax.models import connectors

    fields = {k: cfg[k] for k in ("name", "num_tokens", "hidden_dim", "depth", "mlp_depth", "pos_emb")}
    return connectors.build_connector(ml_collections.ConfigDict(fields), in_dim=cfg.in_dim, out_dim=cfg.out_dim,
                                      num_input_tokens=cfg.num_input_tokens)


def param_shapes(cfg: ml_collections.ConfigDict) -> dict:
    import jax.numpy as jnp

    from mm1_jax.convert import init_shapes

    return init_shapes(build_module(cfg), jnp.zeros((1, cfg.num_input_tokens, cfg.in_dim), jnp.float32))


def hf_config_to(cfg: ml_collections.ConfigDict) -> dict:
    return dict(model_type="mllm_visual_projector", projector_type="c-abs", encoder_hidden_size=cfg.in_dim,
                hidden_size=cfg.hidden_dim, output_hidden_size=cfg.out_dim, depth=cfg.depth, mlp_depth=cfg.mlp_depth,
                num_query_tokens=cfg.num_tokens, num_input_tokens=cfg.num_input_tokens, pos_emb=cfg.pos_emb,
                num_eos_tokens=0, prenorm=False)


def params_to_hf(params: Mapping[str, Any], cfg: ml_collections.ConfigDict, prefix: str = PREFIX) -> dict:
    """The inverse of `honeybee_to_params`: our C-Abstractor params -> HoneyBee names and torch layouts."""
    out = {}

    def walk(node: Mapping[str, Any], path: tuple[str, ...]) -> None:
        for key, value in node.items():
            if isinstance(value, Mapping):
                walk(value, path + (key,))
            else:
                out[prefix + _hf_name(path + (key,))] = _flax_to_torch_weight(path + (key,), np.asarray(value))

    walk(params, ())
    return {k: np.ascontiguousarray(v) for k, v in out.items()}


def _hf_name(path: tuple[str, ...]) -> str:
    """Our param path -> HoneyBee key (without prefix), the inverse of `_param_path`."""
    if path == ("pos_emb",):
        return "pos_emb"
    head, *rest = path
    if head.startswith("readout_"):
        return f"readout.{head.split('_')[1]}.{'weight' if rest[-1] == 'kernel' else 'bias'}"
    stage, block, layer, *leaf = path
    stage = stage.split("_")[1]
    if layer == "se":
        fc, name = leaf
        return f"net.{stage}.{block}.se.{fc}.{'weight' if name == 'kernel' else 'bias'}"
    leaf_name = {v: k for k, v in _CONV_NORM_LEAVES.items()}[tuple(leaf)]
    return f"net.{stage}.{block}.{layer}.{leaf_name}"


def _flax_to_torch_weight(path: tuple[str, ...], value: np.ndarray) -> np.ndarray:
    if path == ("pos_emb",):
        return value[None]
    if value.ndim == 4:
        return np.transpose(value, (3, 2, 0, 1))
    if value.ndim == 2:
        return np.transpose(value)
    return value
