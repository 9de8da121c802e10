"""Llama / Qwen2 decoders: transformers names and layouts <-> mm1_jax `Decoder` parameters.

  model.embed_tokens.weight [V, D]                 -> embed_tokens/embedding [V, D]
  model.layers.{i}.input_layernorm.weight          -> layer_{i}/input_norm/scale
  model.layers.{i}.self_attn.q_proj.weight [H*Dh, D] (+ .bias, Qwen2) -> layer_{i}/attn/q_proj/kernel [D, H, Dh]
  model.layers.{i}.self_attn.{k,v}_proj.*          -> layer_{i}/attn/{k,v}_proj/* (KVH heads)
  model.layers.{i}.self_attn.o_proj.weight [D, H*Dh] -> layer_{i}/attn/o_proj/kernel [H, Dh, D]
  model.layers.{i}.post_attention_layernorm.weight -> layer_{i}/post_attn_norm/scale
  model.layers.{i}.mlp.{gate,up,down}_proj.weight  -> layer_{i}/mlp/{gate,up,down}_proj/kernel (transposed)
  model.norm.weight                                -> final_norm/scale
  lm_head.weight [V, D] (absent when tied)         -> lm_head/kernel [D, V]

This module is the 'llama' conversion family (see mm1_jax.convert): Llama and Qwen2 causal LMs.
"""
from __future__ import annotations

from typing import Any, Mapping

import ml_collections
import numpy as np

MODEL_TYPES = ("llama", "qwen2")
ARCHITECTURES = ("LlamaForCausalLM", "Qwen2ForCausalLM")
KIND = "decoder"


def decoder_config_from_hf(hf: Mapping[str, Any]) -> ml_collections.ConfigDict:
    """Our `config.model.decoder` from a transformers LlamaConfig / Qwen2Config dict."""
    heads = hf["num_attention_heads"]
    model_type = hf.get("model_type", "llama")
    rope = hf.get("rope_parameters") or hf.get("rope_scaling") or {}
    theta = hf.get("rope_theta", rope.get("rope_theta", 10000.0))
    if rope.get("rope_type", rope.get("type", "default")) not in ("default", None):
        raise ValueError(f"config.json rope type {rope.get('rope_type', rope.get('type'))!r} is not supported yet.")
    return ml_collections.ConfigDict(
        dict(
            vocab_size=hf["vocab_size"],
            width=hf["hidden_size"],
            depth=hf["num_hidden_layers"],
            num_heads=heads,
            num_kv_heads=hf.get("num_key_value_heads") or heads,
            head_dim=hf.get("head_dim") or hf["hidden_size"] // heads,
            mlp_dim=hf["intermediate_size"],
            rope_theta=float(theta),
            qkv_bias=bool(hf.get("attention_bias", model_type == "qwen2")),
            tie_embeddings=bool(hf.get("tie_word_embeddings", False)),
            norm_eps=float(hf.get("rms_norm_eps", 1e-6)),
        )
    )


def hf_to_params(
    state: Mapping[str, np.ndarray], cfg: ml_collections.ConfigDict, prefix: str = "", dense_ffn=lambda i: True
) -> dict:
    """Unscanned `Decoder` params from a transformers state dict (numpy arrays); `prefix` e.g. 'language_model.'.

    Layers for which `dense_ffn(i)` is False get no 'mlp' entry (MoE families fill in their experts).
    """
    h, kvh, d = cfg.num_heads, cfg.num_kv_heads, cfg.width
    dh = cfg.head_dim or d // h

    def get(name):
        return np.asarray(state[prefix + name])

    def heads_in(w, n):  # [n*Dh, D] -> [D, n, Dh]
        return w.T.reshape(d, n, dh)

    params: dict[str, Any] = {
        "embed_tokens": {"embedding": get("model.embed_tokens.weight")},
        "final_norm": {"scale": get("model.norm.weight")},
    }
    if not cfg.tie_embeddings:
        params["lm_head"] = {"kernel": get("lm_head.weight").T}
    for i in range(cfg.depth):
        p = f"model.layers.{i}."
        attn = {}
        for name, n in (("q_proj", h), ("k_proj", kvh), ("v_proj", kvh)):
            attn[name] = {"kernel": heads_in(get(p + f"self_attn.{name}.weight"), n)}
            if cfg.qkv_bias:
                attn[name]["bias"] = get(p + f"self_attn.{name}.bias").reshape(n, dh)
        attn["o_proj"] = {"kernel": get(p + "self_attn.o_proj.weight").T.reshape(h, dh, d)}
        params[f"layer_{i}"] = {
            "input_norm": {"scale": get(p + "input_layernorm.weight")},
            "post_attn_norm": {"scale": get(p + "post_attention_layernorm.weight")},
            "attn": attn,
        }
        if dense_ffn(i):
            params[f"layer_{i}"]["mlp"] = {
                n: {"kernel": get(p + f"mlp.{n}.weight").T} for n in ("gate_proj", "up_proj", "down_proj")
            }
    return params


def params_to_hf(params: Mapping[str, Any], cfg: ml_collections.ConfigDict, prefix: str = "") -> dict[str, np.ndarray]:
    """The inverse of `hf_to_params`: unscanned `Decoder` params -> transformers state dict."""
    h, kvh, d = cfg.num_heads, cfg.num_kv_heads, cfg.width
    dh = cfg.head_dim or d // h
    out = {
        "model.embed_tokens.weight": params["embed_tokens"]["embedding"],
        "model.norm.weight": params["final_norm"]["scale"],
    }
    if not cfg.tie_embeddings:
        out["lm_head.weight"] = np.asarray(params["lm_head"]["kernel"]).T
    for i in range(cfg.depth):
        lp, p = params[f"layer_{i}"], f"model.layers.{i}."
        out[p + "input_layernorm.weight"] = lp["input_norm"]["scale"]
        out[p + "post_attention_layernorm.weight"] = lp["post_attn_norm"]["scale"]
        for name, n in (("q_proj", h), ("k_proj", kvh), ("v_proj", kvh)):
            out[p + f"self_attn.{name}.weight"] = np.asarray(lp["attn"][name]["kernel"]).reshape(d, n * dh).T
            if cfg.qkv_bias:
                out[p + f"self_attn.{name}.bias"] = np.asarray(lp["attn"][name]["bias"]).reshape(n * dh)
        out[p + "self_attn.o_proj.weight"] = np.asarray(lp["attn"]["o_proj"]["kernel"]).reshape(h * dh, d).T
        for n in ("gate_proj", "up_proj", "down_proj") if "mlp" in lp else ():
            out[p + f"mlp.{n}.weight"] = np.asarray(lp["mlp"][n]["kernel"]).T
    # views, not copies: writers make one tensor contiguous at a time (the way back then streams)
    return {prefix + k: np.asarray(v) for k, v in out.items()}


# ----------------------------------------------------------------------------------------------------------------
# The conversion-family interface (mm1_jax.convert).
# ----------------------------------------------------------------------------------------------------------------
def config_from_hf(hf: dict) -> ml_collections.ConfigDict:
    """`decoder_config_from_hf` after refusing the variants our decoder does not model."""
    model_type = hf.get("model_type", "llama")
    if hf.get("hidden_act", "silu") != "silu":
        raise ValueError(f"config.json hidden_act={hf['hidden_act']!r} is not supported (the decoder uses silu).")
    if hf.get("mlp_bias"):
        raise ValueError("config.json mlp_bias=true is not supported (the decoder's MLP has no biases).")
    if model_type == "llama" and hf.get("attention_bias"):
        raise ValueError("config.json attention_bias=true is not supported for llama (it adds an o_proj bias).")
    if hf.get("use_sliding_window"):
        raise ValueError("config.json use_sliding_window=true is not supported (the decoder attends globally).")
    cfg = decoder_config_from_hf(hf)
    if model_type == "qwen2":
        cfg.qkv_bias = True  # Qwen2 always has q/k/v biases; its config has no attention_bias field
    return cfg


def build_module(cfg: ml_collections.ConfigDict):
    from mm1_jax.models.registry import build_decoder

    return build_decoder(cfg)


def param_shapes(cfg: ml_collections.ConfigDict) -> dict:
    import jax.numpy as jnp

    from mm1_jax.convert import init_shapes

    return init_shapes(build_module(cfg), jnp.zeros((1, 1), jnp.int32))


def ignored(name: str, cfg: ml_collections.ConfigDict) -> bool:
    """A tied model's checkpoint may still carry lm_head.weight (a copy of the embedding)."""
    return cfg.tie_embeddings and name == "lm_head.weight" or name.endswith("rotary_emb.inv_freq")


def hf_config_to(cfg: ml_collections.ConfigDict) -> dict:
    """A LlamaConfig / Qwen2Config dict (Qwen2 when the q/k/v projections have biases)."""
    model_type = "qwen2" if cfg.qkv_bias else "llama"
    out = dict(
        model_type=model_type,
        architectures=["Qwen2ForCausalLM" if cfg.qkv_bias else "LlamaForCausalLM"],
        vocab_size=cfg.vocab_size, hidden_size=cfg.width, num_hidden_layers=cfg.depth,
        num_attention_heads=cfg.num_heads, num_key_value_heads=cfg.num_kv_heads,
        head_dim=cfg.head_dim or cfg.width // cfg.num_heads, intermediate_size=cfg.mlp_dim, hidden_act="silu",
        rms_norm_eps=cfg.norm_eps, tie_word_embeddings=cfg.tie_embeddings,
        rope_parameters=dict(rope_type="default", rope_theta=cfg.rope_theta), rope_theta=cfg.rope_theta,
    )
    if model_type == "llama":
        out.update(attention_bias=False, mlp_bias=False)
    return out
