"""HoneyBee C-Abstractor checkpoint (torch state dict) -> mm1_jax `CAbstractor` params.

The name and layout table is in `mm1_jax/models/c_abstractor.py`. In short: `net.0` -> `net_0`, `readout.2` ->
`readout_2`, `bn` -> `norm`, norm `weight` -> `scale`, other `weight` -> `kernel`; conv weights
[out, in, kh, kw] -> [kh, kw, in, out]; linear weights [out, in] -> [in, out]; pos_emb [1, N, Cv] -> [N, Cv].
"""
from __future__ import annotations

import re
from typing import Any, Mapping

import numpy as np

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
