"""Mixtral and Qwen2-MoE decoders, as their checkpoints are saved, <-> mm1_jax `Decoder` with MoE layers.

Attention, norms and embeddings are named as in Llama / Qwen2 (`mm1_jax.convert.llama`). The FFN of an MoE layer i
(M = `model.layers.{i}.block_sparse_moe.` for Mixtral, `model.layers.{i}.mlp.` for Qwen2-MoE):
  M gate.weight [E, D]                                     -> layer_{i}/moe/router [D, E]
  M experts.{e}.w1 | gate_proj .weight [F, D]              -> layer_{i}/moe/wi_gate[e] [D, F]
  M experts.{e}.w3 | up_proj .weight [F, D]                -> layer_{i}/moe/wi_up[e] [D, F]
  M experts.{e}.w2 | down_proj .weight [D, F]              -> layer_{i}/moe/wo[e] [F, D]
  M shared_expert.{gate,up,down}_proj.weight (Qwen2-MoE)   -> layer_{i}/moe/shared_expert/...
  M shared_expert_gate.weight [1, D] (Qwen2-MoE)           -> layer_{i}/moe/shared_gate/kernel [D, 1]
Qwen2-MoE's dense layers (`decoder_sparse_step`) keep `mlp.{gate,up,down}_proj`. (transformers 5 fuses the experts
in memory, `experts.gate_up_proj`, but saves and loads this per-expert layout.)
"""
from __future__ import annotations

from typing import Any, Mapping

import ml_collections
import numpy as np

from mm1_jax.convert import llama

EXPERT_NAMES = {  # ours -> (Mixtral, Qwen2-MoE) per-expert weight names
    "wi_gate": ("w1", "gate_proj"),
    "wi_up": ("w3", "up_proj"),
    "wo": ("w2", "down_proj"),
}

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
    return cfg.num_experts > 0 and (i + 1) % cfg.moe_every == 0


def _is_qwen(cfg) -> bool:
    return bool(cfg.get("shared_expert_mlp_dim", 0) or cfg.qkv_bias)


def _moe_prefix(cfg, i: int) -> str:
    return f"model.layers.{i}." + ("mlp." if _is_qwen(cfg) else "block_sparse_moe.")


def hf_to_params(state: Mapping[str, np.ndarray], cfg: ml_collections.ConfigDict, prefix: str = "") -> dict:
    """Unscanned params from a Mixtral / Qwen2-MoE checkpoint."""
    params = llama.hf_to_params(state, cfg, prefix, dense_ffn=lambda i: not _is_moe(cfg, i))
    which = int(_is_qwen(cfg))
    for i in range(cfg.depth):
        if not _is_moe(cfg, i):
            continue
        p = prefix + _moe_prefix(cfg, i)
        moe = {"router": np.asarray(state[p + "gate.weight"]).T}
        for ours, names in EXPERT_NAMES.items():
            moe[ours] = np.stack(
                [np.asarray(state[p + f"experts.{e}.{names[which]}.weight"]).T for e in range(cfg.num_experts)]
            )
        if cfg.get("shared_expert_mlp_dim", 0):
            moe["shared_expert"] = {
                n: {"kernel": np.asarray(state[p + f"shared_expert.{n}.weight"]).T}
                for n in ("gate_proj", "up_proj", "down_proj")
            }
            moe["shared_gate"] = {"kernel": np.asarray(state[p + "shared_expert_gate.weight"]).T}
        params[f"layer_{i}"]["moe"] = moe
    return params


def params_to_hf(params: Mapping[str, Any], cfg: ml_collections.ConfigDict, prefix: str = "") -> dict[str, np.ndarray]:
    """The inverse of `hf_to_params` (the per-expert layout transformers saves and loads)."""
    out = llama.params_to_hf(params, cfg, prefix)
    which = int(_is_qwen(cfg))
    for i in range(cfg.depth):
        moe = params[f"layer_{i}"].get("moe")
        if moe is None:
            continue
        p = prefix + _moe_prefix(cfg, i)
        out[p + "gate.weight"] = np.asarray(moe["router"]).T
        for ours, names in EXPERT_NAMES.items():
            for e in range(cfg.num_experts):
                out[p + f"experts.{e}.{names[which]}.weight"] = np.asarray(moe[ours][e]).T
        if "shared_expert" in moe:
            for n in ("gate_proj", "up_proj", "down_proj"):
                out[p + f"shared_expert.{n}.weight"] = np.asarray(moe["shared_expert"][n]["kernel"]).T
            out[p + "shared_expert_gate.weight"] = np.asarray(
                moe["shared_gate"]["kernel"]
            ).T
    return out


def hf_config_to(cfg: ml_collections.ConfigDict) -> dict:
    """A MixtralConfig dict, or a Qwen2MoeConfig dict when there is a shared expert or qkv bias."""
    out = llama.hf_config_to(cfg)
    out.pop("attention_bias", None)
    out.pop("mlp_bias", None)
    common = dict(num_experts_per_tok=cfg.top_k, router_aux_loss_coef=cfg.load_balance_weight)
    if cfg.get("shared_expert_mlp_dim", 0) or cfg.qkv_bias:
        out.update(
            model_type="qwen2_moe", architectures=["Qwen2MoeForCausalLM"], num_experts=cfg.num_experts,
            moe_intermediate_size=cfg.expert_mlp_dim or cfg.mlp_dim,
            shared_expert_intermediate_size=cfg.get("shared_expert_mlp_dim", 0), decoder_sparse_step=cfg.moe_every,
            norm_topk_prob=cfg.router_renormalize, qkv_bias=cfg.qkv_bias, mlp_only_layers=[], **common,
        )
    else:
        if cfg.moe_every != 1 or not cfg.router_renormalize:
            raise ValueError("a Mixtral checkpoint needs moe_every=1 and router_renormalize=True.")
        out.update(
            model_type="mixtral", architectures=["MixtralForCausalLM"], num_local_experts=cfg.num_experts,
            intermediate_size=cfg.expert_mlp_dim or cfg.mlp_dim, **common,
        )
    return out


build_module = llama.build_module
param_shapes = llama.param_shapes
ignored = llama.ignored
