"""Mixtral and Qwen2-MoE decoders (transformers 5 fused-expert layout) <-> mm1_jax `Decoder` with MoE layers.

Attention, norms and embeddings are named as in Llama / Qwen2 (`mm1_jax.convert.llama`). The FFN of an MoE layer:
  model.layers.{i}.mlp.gate.weight [E, D]                  -> layer_{i}/moe/router [D, E]
  model.layers.{i}.mlp.experts.gate_up_proj [E, 2F, D]     -> layer_{i}/moe/wi_gate, wi_up [E, D, F] (gate first)
  model.layers.{i}.mlp.experts.down_proj [E, D, F]         -> layer_{i}/moe/wo [E, F, D]
  model.layers.{i}.mlp.shared_expert.{gate,up,down}_proj   -> layer_{i}/moe/shared_expert/... (Qwen2-MoE)
  model.layers.{i}.mlp.shared_expert_gate.weight [1, D]    -> layer_{i}/moe/shared_gate/kernel [D, 1]
Qwen2-MoE's dense layers (`mlp_only_layers`, `decoder_sparse_step`) keep `mlp.{gate,up,down}_proj`.
"""
from __future__ import annotations

from typing import Any, Mapping

import ml_collections
import numpy as np

from mm1_jax.convert import llama

MODEL_TYPES = ("mixtral", "qwen2_moe")
KIND = "decoder"


def config_from_hf(hf: Mapping[str, Any]) -> ml_collections.ConfigDict:
    """Our decoder config (with MoE fields) from a MixtralConfig / Qwen2MoeConfig dict."""
    cfg = llama.decoder_config_from_hf(hf)
    if hf.get("model_type") == "qwen2_moe":
        if hf.get("mlp_only_layers"):
            raise ValueError(f"config.json mlp_only_layers={hf['mlp_only_layers']} is not supported (use moe_every).")
        cfg.update(
            num_experts=hf["num_experts"], top_k=hf["num_experts_per_tok"], moe_every=hf.get("decoder_sparse_step", 1),
            expert_mlp_dim=hf["moe_intermediate_size"], shared_expert_mlp_dim=hf["shared_expert_intermediate_size"],
            router_renormalize=bool(hf.get("norm_topk_prob", False)), load_balance_weight=hf["router_aux_loss_coef"],
            z_loss_weight=0.0, qkv_bias=bool(hf.get("qkv_bias", True)),
        )
    else:
        cfg.update(
            num_experts=hf["num_local_experts"], top_k=hf["num_experts_per_tok"], moe_every=1,
            expert_mlp_dim=hf["intermediate_size"], router_renormalize=True,
            load_balance_weight=hf["router_aux_loss_coef"], z_loss_weight=0.0,
        )
    return cfg


def _is_moe(cfg, i: int) -> bool:
    return (i + 1) % cfg.moe_every == 0


def hf_to_params(state: Mapping[str, np.ndarray], cfg: ml_collections.ConfigDict, prefix: str = "") -> dict:
    """Unscanned params from a Mixtral / Qwen2-MoE state dict."""
    dense_view = _DenseView(state, cfg, prefix)
    params = llama.hf_to_params(dense_view, cfg, prefix)
    f = cfg.expert_mlp_dim or cfg.mlp_dim
    for i in range(cfg.depth):
        if not _is_moe(cfg, i):
            continue
        p = f"{prefix}model.layers.{i}.mlp."
        gate_up = np.asarray(state[p + "experts.gate_up_proj"])
        moe = {
            "router": np.asarray(state[p + "gate.weight"]).T,
            "wi_gate": np.swapaxes(gate_up[:, :f], 1, 2),
            "wi_up": np.swapaxes(gate_up[:, f:], 1, 2),
            "wo": np.swapaxes(np.asarray(state[p + "experts.down_proj"]), 1, 2),
        }
        if cfg.get("shared_expert_mlp_dim", 0):
            moe["shared_expert"] = {
                n: {"kernel": np.asarray(state[p + f"shared_expert.{n}.weight"]).T}
                for n in ("gate_proj", "up_proj", "down_proj")
            }
            moe["shared_gate"] = {"kernel": np.asarray(state[p + "shared_expert_gate.weight"]).T}
        layer = params[f"layer_{i}"]
        layer.pop("mlp")
        layer["moe"] = moe
    return params


def params_to_hf(params: Mapping[str, Any], cfg: ml_collections.ConfigDict, prefix: str = "") -> dict[str, np.ndarray]:
    """The inverse of `hf_to_params`."""
    f = cfg.expert_mlp_dim or cfg.mlp_dim
    dense_layers = {}
    for i in range(cfg.depth):
        layer = dict(params[f"layer_{i}"])
        if "moe" in layer:  # let the Llama mapping write attention and norms; a placeholder FFN is dropped below
            zeros = {"kernel": np.zeros((1, 1))}
            layer["mlp"] = {"gate_proj": zeros, "up_proj": zeros, "down_proj": zeros}
        dense_layers[f"layer_{i}"] = layer
    out = llama.params_to_hf({**params, **dense_layers}, cfg, prefix)
    for i in range(cfg.depth):
        moe = params[f"layer_{i}"].get("moe")
        if moe is None:
            continue
        p = f"{prefix}model.layers.{i}.mlp."
        for n in ("gate_proj", "up_proj", "down_proj"):
            del out[p + f"{n}.weight"]
        gate_up = np.concatenate([np.asarray(moe["wi_gate"]), np.asarray(moe["wi_up"])], axis=2)  # [E, D, 2F]
        assert gate_up.shape[2] == 2 * f
        out[p + "gate.weight"] = np.ascontiguousarray(np.asarray(moe["router"]).T)
        out[p + "experts.gate_up_proj"] = np.ascontiguousarray(np.swapaxes(gate_up, 1, 2))
        out[p + "experts.down_proj"] = np.ascontiguousarray(np.swapaxes(np.asarray(moe["wo"]), 1, 2))
        if "shared_expert" in moe:
            for n in ("gate_proj", "up_proj", "down_proj"):
                out[p + f"shared_expert.{n}.weight"] = np.ascontiguousarray(
                    np.asarray(moe["shared_expert"][n]["kernel"]).T
                )
            out[p + "shared_expert_gate.weight"] = np.ascontiguousarray(np.asarray(moe["shared_gate"]["kernel"]).T)
    return out


class _DenseView(Mapping):
    """The state dict as the Llama mapping reads it: MoE layers' FFN names answer with empty placeholders."""

    def __init__(self, state, cfg, prefix):
        self._state, self._cfg, self._prefix = state, cfg, prefix

    def __getitem__(self, name):
        if name in self._state:
            return self._state[name]
        if ".mlp." in name:  # an MoE layer: no dense FFN; replaced by the MoE params right after
            return np.zeros((1, 1), np.float32)
        raise KeyError(name)

    def __iter__(self):
        return iter(self._state)

    def __len__(self):
        return len(self._state)
