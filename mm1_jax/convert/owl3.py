"""The released mPLUG-Owl3 checkpoints (HF layout, model_type "mplugowl3") <-> the mm1_jax `Owl3` model.

  language_model.model.*, language_model.lm_head.weight   -> decoder/*  (the Qwen2 mapping of `convert.llama`)
  language_model.model.layers.{i}.self_attn.v_kv_proj.weight [KVH*2*Dh, D] (+ .bias), laid out per KV head as
      [Dh key rows | Dh value rows]                          -> decoder/layer_{i}/attn/image_{k,v}_proj/{kernel,bias}
  language_model.model.layers.{i}.self_attn.gate_proj.0.{weight [Dh, Dh], bias}
                                                             -> decoder/layer_{i}/attn/gate_proj/{kernel, bias}
  vision_model.*  (SigLIP vision transformer)                -> encoder/*  (`convert.vit_weights`)
  vision2text_model.{weight,bias} (240728) or vision2text_model.{0,2}.{weight,bias} (241101)
                                                             -> vision2text/layers_{0,2}/{kernel,bias}
config.json: the Qwen2 fields at top level, `hyper_layers` one-based (layer i is a hyper layer when i+1 is listed),
`vision_config` (SigLIP). Release 241101 (Linear-GELU-Linear projector) is recognised by its `vision_batch_size`.
"""
from __future__ import annotations

import json
import os
from typing import Any, Mapping

import ml_collections
import numpy as np

from mm1_jax.convert import llama, vit_weights
from mm1_jax.models import config as model_config
from mm1_jax.models import registry, vit
from mm1_jax.models.inputs import init_inputs

MODEL_TYPES = ("mplugowl3",)
KIND = "owl3"
_LAYER = "language_model.model.layers.{}.self_attn."


def config_from_hf(hf: dict) -> ml_collections.ConfigDict:
    """Our Owl3 config (see `mm1_jax.models.owl3`) from the release's config.json."""
    decoder = llama.decoder_config_from_hf({**hf, "model_type": "qwen2"})
    decoder.qkv_bias = True
    one_based = list(hf.get("hyper_layers") or [])
    if not one_based:
        raise ValueError("config.json has no hyper_layers; an mplugowl3 config lists its hyper layers (one-based).")
    for i in one_based:
        if not isinstance(i, int) or not 1 <= i <= decoder.depth:
            raise ValueError(f"config.json hyper_layers={one_based} holds {i!r}, outside the decoder's layers "
                             f"1..{decoder.depth} (one-based).")
    encoder = vit_weights.vit_from_hf_config({"vision_config": hf["vision_config"]}, **vit.OWL3_FEATURES)
    decoder.hyper_layers = tuple(i - 1 for i in one_based)
    return ml_collections.ConfigDict(dict(
        kind="owl3", encoder=encoder.to_dict(), projector_depth=2 if "vision_batch_size" in hf else 1,
        decoder=decoder.to_dict(), image_token_id=hf.get("image_token_id"), dtype="float32"))


def hf_config_to(cfg: ml_collections.ConfigDict) -> dict:
    """The release's config.json fields for our config."""
    d = cfg.decoder
    vision = vit_weights.hf_config_to(cfg.encoder)
    out = dict(model_type="mplugowl3", architectures=["mPLUGOwl3Model"], vocab_size=d.vocab_size,
               hidden_size=d.width, num_hidden_layers=d.depth, num_attention_heads=d.num_heads,
               num_key_value_heads=d.num_kv_heads, intermediate_size=d.mlp_dim, hidden_act="silu",
               rms_norm_eps=d.norm_eps, rope_theta=d.rope_theta, tie_word_embeddings=d.tie_embeddings,
               hyper_layers=[i + 1 for i in cfg.decoder.hyper_layers], vision_config=vision)
    if model_config.get(cfg, "owl3", "image_token_id") is not None:
        out["image_token_id"] = cfg.image_token_id
    if model_config.get(cfg, "owl3", "projector_depth") == 2:
        out["vision_batch_size"] = 16
    return out


def image_token_id_from_dir(src: str, token: str = "<|image|>") -> int | None:
    """The id of `token` in a checkpoint directory's tokenizer files (tokenizer.json, added_tokens.json), or None."""
    path = os.path.join(src, "tokenizer.json")
    if os.path.exists(path):
        with open(path) as f:
            for entry in json.load(f).get("added_tokens", []):
                if entry.get("content") == token:
                    return int(entry["id"])
    path = os.path.join(src, "added_tokens.json")
    if os.path.exists(path):
        with open(path) as f:
            found = json.load(f).get(token)
        return None if found is None else int(found)
    return None


def update_config_from_dir(cfg: ml_collections.ConfigDict, src: str) -> ml_collections.ConfigDict:
    """Fill `image_token_id` from the checkpoint's tokenizer when config.json does not carry it."""
    if model_config.get(cfg, "owl3", "image_token_id") is None:
        cfg.image_token_id = image_token_id_from_dir(src)
    return cfg


# ----------------------------------------------------------------------------------------------------------------
# Tensors
# ----------------------------------------------------------------------------------------------------------------
def _require(names: set[str], name: str, what: str) -> None:
    if name not in names:
        raise ValueError(f"the checkpoint has no tensor {name!r}, which {what} needs.")


def hf_to_params(state: Mapping[str, np.ndarray], cfg: ml_collections.ConfigDict) -> dict:
    """{'encoder', 'vision2text', 'decoder'} numpy params from the release's state dict (read once per tensor)."""
    names = set(state.keys())
    d = cfg.decoder
    kvh, dh = d.num_kv_heads, d.head_dim or d.width // d.num_heads
    for i in cfg.decoder.hyper_layers:
        for part in ("v_kv_proj.weight", "v_kv_proj.bias", "gate_proj.0.weight", "gate_proj.0.bias"):
            _require(names, _LAYER.format(i) + part, f"hyper layer {i} (model.decoder.hyper_layers, zero-based)")
    try:
        decoder = llama.hf_to_params(state, d, prefix="language_model.")
    except KeyError as e:
        raise ValueError(f"the checkpoint has no tensor {e.args[0]!r}, which the Qwen2 decoder needs.") from None
    for i in cfg.decoder.hyper_layers:
        p = _LAYER.format(i)
        w = np.asarray(state[p + "v_kv_proj.weight"]).reshape(kvh, 2, dh, d.width)
        b = np.asarray(state[p + "v_kv_proj.bias"]).reshape(kvh, 2, dh)
        decoder[f"layer_{i}"]["attn"].update(
            image_k_proj={"kernel": w[:, 0].transpose(2, 0, 1), "bias": b[:, 0]},
            image_v_proj={"kernel": w[:, 1].transpose(2, 0, 1), "bias": b[:, 1]},
            gate_proj={"kernel": np.asarray(state[p + "gate_proj.0.weight"]).T,
                       "bias": np.asarray(state[p + "gate_proj.0.bias"])})
    depth = model_config.get(cfg, "owl3", "projector_depth")
    linear = ["vision2text_model"] if depth == 1 else ["vision2text_model.0", "vision2text_model.2"]
    for name in linear:
        _require(names, name + ".weight", f"the vision2text projector (projector_depth={depth})")
    vision2text = {f"layers_{2 * j}": {"kernel": np.asarray(state[n + ".weight"]).T, "bias": np.asarray(state[n + ".bias"])}
                   for j, n in enumerate(linear)}
    encoder = vit_weights.hf_vit_to_params(state, ml_collections.ConfigDict(dict(cfg.encoder)))
    return {"encoder": encoder, "vision2text": vision2text, "decoder": decoder}


def params_to_hf(params: Mapping[str, Any], cfg: ml_collections.ConfigDict) -> dict[str, np.ndarray]:
    """The inverse of `hf_to_params`: names and layouts as the release saves them."""
    d = cfg.decoder
    out = dict(llama.params_to_hf(params["decoder"], d, prefix="language_model."))
    for i in cfg.decoder.hyper_layers:
        attn, p = params["decoder"][f"layer_{i}"]["attn"], _LAYER.format(i)
        k, v = (np.asarray(attn[n]["kernel"]).transpose(1, 2, 0) for n in ("image_k_proj", "image_v_proj"))
        out[p + "v_kv_proj.weight"] = np.stack([k, v], axis=1).reshape(-1, d.width)
        out[p + "v_kv_proj.bias"] = np.stack([np.asarray(attn["image_k_proj"]["bias"]),
                                              np.asarray(attn["image_v_proj"]["bias"])], axis=1).reshape(-1)
        out[p + "gate_proj.0.weight"] = np.asarray(attn["gate_proj"]["kernel"]).T
        out[p + "gate_proj.0.bias"] = np.asarray(attn["gate_proj"]["bias"])
    depth = model_config.get(cfg, "owl3", "projector_depth")
    for j in range(depth):
        name = "vision2text_model" if depth == 1 else f"vision2text_model.{2 * j}"
        layer = params["vision2text"][f"layers_{2 * j}"]
        out[name + ".weight"], out[name + ".bias"] = np.asarray(layer["kernel"]).T, np.asarray(layer["bias"])
    enc = vit_weights.params_to_hf(params["encoder"], ml_collections.ConfigDict(dict(cfg.encoder)))
    out.update({"vision_model." + k: v for k, v in enc.items()})
    return {k: np.ascontiguousarray(v) for k, v in out.items()}


def build_module(cfg: ml_collections.ConfigDict):
    return registry.build_model(cfg)


def param_shapes(cfg: ml_collections.ConfigDict) -> dict:
    """Our parameter shapes, nothing allocated (one image, one placeholder token)."""
    from mm1_jax.convert import init_shapes

    return init_shapes(build_module(cfg), **init_inputs(cfg))


def ignored(name: str, cfg: ml_collections.ConfigDict) -> bool:
    return name.endswith("position_ids") or name.endswith("rotary_emb.inv_freq")
