"""Hugging Face (and apple/ml-aim) ViT encoders -> mm1_jax `ViT` configs and parameters.

`vit_from_hf_config` reads a transformers config dict (clip_vision_model, siglip_vision_model, aimv2_vision_model,
or a CLIP/SigLIP/AIMv2 model config with a nested `vision_config`); `hf_vit_to_params` maps a state dict of numpy
arrays onto our parameter tree (the name table is in mm1_jax.models.vit's docstring). Torch Linear weights [out, in]
become kernels [in, out]; attention kernels are reshaped to [embed, heads, head_dim] / [heads, head_dim, embed];
conv weights [C, 3, p, p] become [p, p, 3, C]. A learned position table trained at another resolution is resized to
the config's grid with the same bicubic kernel the model uses at call time.

This module is also the 'vit_weights' conversion family (see mm1_jax.convert): CLIPVisionModel, SiglipVisionModel,
Aimv2VisionModel and the vision towers of CLIPModel / SiglipModel / Aimv2Model. `params_to_hf` writes the names
transformers 5 saves for the *VisionModel classes (no `vision_model.` prefix); AIM v1 (ml-aim) has no way back.
"""
from __future__ import annotations

import re
from typing import Any

import ml_collections
import numpy as np

from mm1_jax.models import vit
from mm1_jax.models.decoder import stack_layers

MODEL_TYPES = ("clip_vision_model", "clip", "siglip_vision_model", "siglip", "aimv2_vision_model", "aimv2")
ARCHITECTURES = ("CLIPVisionModel", "CLIPModel", "SiglipVisionModel", "SiglipModel", "Aimv2VisionModel", "Aimv2Model")
KIND = "encoder"

# transformers' defaults for the fields a saved config.json may leave out (configuration_{clip,siglip,aimv2}.py).
_HF_DEFAULTS = {
    "clip": dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
                 image_size=224, patch_size=32, hidden_act="quick_gelu", layer_norm_eps=1e-5),
    "siglip": dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
                   image_size=224, patch_size=16, hidden_act="gelu_pytorch_tanh", layer_norm_eps=1e-6,
                   vision_use_head=True),
    "aim_v2": dict(hidden_size=1024, intermediate_size=2816, num_hidden_layers=24, num_attention_heads=8,
                   image_size=224, patch_size=14, hidden_act="silu", rms_norm_eps=1e-5, use_head=True,
                   qkv_bias=False, mlp_bias=False, is_native=False),
}
_HF_STYLES = {"clip_vision_model": "clip", "clip": "clip", "siglip_vision_model": "siglip", "siglip": "siglip",
              "aimv2_vision_model": "aim_v2", "aimv2": "aim_v2"}
_HF_ACTIVATIONS = {"quick_gelu": "quick_gelu", "gelu": "gelu", "gelu_pytorch_tanh": "gelu_tanh",
                   "gelu_new": "gelu_tanh", "silu": "silu", "swish": "silu"}


def vit_from_hf_config(hf_config_dict: dict, **overrides: Any) -> ml_collections.ConfigDict:
    """Our encoder config for a transformers vision config; MM1's feature choice unless `overrides` say otherwise."""
    model_type = hf_config_dict.get("model_type")
    hf = hf_config_dict
    if "vision_config" in hf_config_dict:
        hf = dict(hf_config_dict["vision_config"] or {})
        model_type = hf.get("model_type", model_type)
    style = _HF_STYLES.get(model_type)
    if style is None:
        raise ValueError(f"model_type={model_type!r} is not a vision config this converter knows "
                         f"({', '.join(sorted(_HF_STYLES))}).")
    hf = {**_HF_DEFAULTS[style], **{k: v for k, v in hf.items() if v is not None}}
    act = hf["hidden_act"]
    if act not in _HF_ACTIVATIONS:
        raise ValueError(f"hidden_act={act!r} has no equivalent here ({', '.join(_HF_ACTIVATIONS)}).")
    cfg = dict(vit.FIELD_DEFAULTS, **vit.MM1_FEATURES)
    cfg.update(
        style=style, image_size=hf["image_size"], patch_size=hf["patch_size"], width=hf["hidden_size"],
        depth=hf["num_hidden_layers"], num_heads=hf["num_attention_heads"], mlp_dim=hf["intermediate_size"],
        norm_eps=hf["rms_norm_eps"] if style == "aim_v2" else hf["layer_norm_eps"], activation=_HF_ACTIVATIONS[act],
        use_head=bool(hf.get("vision_use_head", hf.get("use_head", False))), **vit.MM1_FEATURES,
        allow_partial_patches=hf["image_size"] % hf["patch_size"] != 0)
    if style == "aim_v2":
        cfg.update(attn_bias=hf["qkv_bias"], mlp_bias=hf["mlp_bias"], pos_embed="sincos" if hf["is_native"] else "")
    cfg.update(overrides)
    cfg = vit.with_style_defaults(cfg)
    vit.validate_vit_config(cfg)
    return ml_collections.ConfigDict(cfg)


# ----------------------------------------------------------------------------------------------------------------
# Tensors
# ----------------------------------------------------------------------------------------------------------------
def _linear(w: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(w.T)


def _heads_in(w: np.ndarray, heads: int) -> np.ndarray:
    """Torch q/k/v weight [H*Dh, C] -> [C, H, Dh]."""
    return _linear(w).reshape(w.shape[1], heads, -1)


def _heads_out(w: np.ndarray, heads: int) -> np.ndarray:
    """Torch output weight [C, H*Dh] -> [H, Dh, C]."""
    return _linear(w).reshape(heads, -1, w.shape[0])


class _Reader:
    """Pops tensors from a state dict under a prefix, so that the leftovers can be reported."""

    def __init__(self, state_dict: dict[str, Any], prefix: str):
        self.tensors = {k[len(prefix):]: k for k in state_dict if k.startswith(prefix)}
        self.state_dict, self.used = state_dict, set()

    def __contains__(self, name: str) -> bool:
        return name in self.tensors

    def __call__(self, name: str) -> np.ndarray:
        if name not in self.tensors:
            raise ValueError(f"the checkpoint has no tensor {name!r} that this encoder needs.")
        self.used.add(name)
        return np.asarray(self.state_dict[self.tensors[name]], dtype=np.float32)


def _find_prefix(state_dict: dict[str, Any], style: str) -> str:
    """The key prefix of the vision tower ('', 'vision_model.', 'model.vision_tower.', ...)."""
    marker = {"clip": "embeddings.patch_embedding.weight", "siglip": "embeddings.patch_embedding.weight",
              "aim_v2": "embeddings.patch_embed.weight", "aim_v1": "preprocessor.patchifier.proj.weight"}[style]
    found = sorted(k[: -len(marker)] for k in state_dict if k.endswith(marker))
    if len(found) != 1:
        raise ValueError(f"expected one '{marker}' in the checkpoint for encoder style {style!r}, found {len(found)}.")
    return found[0]


def _norm(read: _Reader, name: str, kind: str) -> dict:
    if kind == "rms":
        return {"scale": read(f"{name}.weight")}
    return {"norm": {"scale": read(f"{name}.weight"), "bias": read(f"{name}.bias")}}


def _dense(read: _Reader, name: str, bias: bool, transform=_linear) -> dict:
    out = {"kernel": transform(read(f"{name}.weight"))}
    if bias:
        out["bias"] = read(f"{name}.bias")
    return out


def _attention(read: _Reader, q: tuple, k: tuple, v: tuple, o: np.ndarray, o_bias: Any, heads: int) -> dict:
    """Each of q/k/v is (weight [H*Dh, C], bias [H*Dh] or None)."""
    out = {}
    for name, (w, b) in (("q_proj", q), ("k_proj", k), ("v_proj", v)):
        out[name] = {"kernel": _heads_in(w, heads)}
        if b is not None:
            out[name]["bias"] = b.reshape(heads, -1)
    out["o_proj"] = {"kernel": _heads_out(o, heads)}
    if o_bias is not None:
        out["o_proj"]["bias"] = o_bias
    return out


# Names of the pieces of one layer, per checkpoint family.
_LAYER_NAMES = {
    "clip": dict(attn="self_attn", norm1="layer_norm1", norm2="layer_norm2", mlp="mlp"),
    "siglip": dict(attn="self_attn", norm1="layer_norm1", norm2="layer_norm2", mlp="mlp"),
    "aim_v2": dict(attn="attention", norm1="rms_norm1", norm2="rms_norm2", mlp="ffn"),
}


def _hf_layer(read: _Reader, i: int, cfg: Any) -> dict:
    s = vit.STYLES[cfg.style]
    names, base = _LAYER_NAMES[cfg.style], f"encoder.layers.{i}."
    attn_bias, mlp_bias = vit.style_value(cfg, "attn_bias"), vit.style_value(cfg, "mlp_bias")
    a = base + names["attn"]
    qkv = [(read(f"{a}.{n}.weight"), read(f"{a}.{n}.bias") if attn_bias else None)
           for n in ("q_proj", "k_proj", "v_proj")]
    attn = _attention(read, *qkv, read(f"{a}.out_proj.weight"), read(f"{a}.out_proj.bias") if attn_bias else None,
                      cfg.num_heads)
    m = base + names["mlp"]
    parts = ("gate_proj", "up_proj", "down_proj") if s["gated_mlp"] else ("fc1", "fc2")
    return {
        "norm1": _norm(read, base + names["norm1"], s["norm"]),
        "attn": attn,
        "norm2": _norm(read, base + names["norm2"], s["norm"]),
        "mlp": {p: _dense(read, f"{m}.{p}", mlp_bias) for p in parts},
    }


def _aim_v1_layer(read: _Reader, i: int, cfg: Any) -> dict:
    """apple/ml-aim torch names: one fused qkv Linear (rows q, k, v), proj, norm_1, norm_2, mlp.fc1/fc2."""
    base = f"trunk.blocks.{i}."
    attn_bias, mlp_bias = vit.style_value(cfg, "attn_bias"), vit.style_value(cfg, "mlp_bias")
    qkv_w = np.split(read(base + "attn.qkv.weight"), 3)
    qkv_b = np.split(read(base + "attn.qkv.bias"), 3) if base + "attn.qkv.bias" in read else (None,) * 3
    return {
        "norm1": _norm(read, base + "norm_1", "layer"),
        "attn": _attention(read, *zip(qkv_w, qkv_b), read(base + "attn.proj.weight"),
                           read(base + "attn.proj.bias") if attn_bias else None, cfg.num_heads),
        "norm2": _norm(read, base + "norm_2", "layer"),
        "mlp": {p: _dense(read, f"{base}mlp.{p}", mlp_bias) for p in ("fc1", "fc2")},
    }


def _embeddings(read: _Reader, cfg: Any) -> dict:
    s = vit.STYLES[cfg.style]
    conv = lambda w: np.ascontiguousarray(w.transpose(2, 3, 1, 0))  # noqa: E731  [C, 3, p, p] -> [p, p, 3, C]
    if cfg.style == "aim_v1":
        params = {"patch_embed": _dense(read, "preprocessor.patchifier.proj", True, conv),
                  "patch_norm": _norm(read, "preprocessor.patchifier.norm", "layer")}
        return params
    patch = "embeddings.patch_embed" if cfg.style == "aim_v2" else "embeddings.patch_embedding"
    params = {"patch_embed": _dense(read, patch, s["patch_bias"], conv)}
    if cfg.style == "aim_v2":
        params["patch_norm"] = _norm(read, "embeddings.rms_norm", "rms")
    if s["class_token"]:
        params["class_token"] = read("embeddings.class_embedding")
    if vit.style_value(cfg, "pos_embed") == "learned":
        params["pos_embed"] = _resize_positions(read("embeddings.position_embedding.weight"), cfg)
    if s["pre_norm"]:
        params["pre_norm"] = _norm(read, "pre_layrnorm", "layer")
    return params


def _resize_positions(table: np.ndarray, cfg: Any) -> np.ndarray:
    """Interpolate a position table trained on another grid to the config's grid (checkpoint surgery), as the model
    declares it resolution-dependent (`vit.resolution_resize`)."""
    has_class_token = vit.STYLES[cfg.style]["class_token"]
    wanted = (vit.grid_size(cfg.image_size, cfg.patch_size) ** 2 + has_class_token, table.shape[-1])
    keys = ("class_token",) if has_class_token else ()
    plan = vit.resolution_resize("pos_embed", table.shape, wanted, keys)
    if plan is None:
        raise ValueError(f"the position table's {table.shape[0]} rows are not a square grid"
                         f"{' plus a class token' if has_class_token else ''}.")
    old, new, class_row = plan
    return vit.interpolate_pos_embed(table, old, new, class_row)


def _head(read: _Reader, cfg: Any) -> dict | None:
    heads = cfg.num_heads
    if cfg.style == "siglip" and cfg.use_head:
        w, b = np.split(read("head.attention.in_proj_weight"), 3), np.split(read("head.attention.in_proj_bias"), 3)
        return {
            "probe": read("head.probe").reshape(1, -1),
            "attn": _attention(read, *zip(w, b), read("head.attention.out_proj.weight"),
                               read("head.attention.out_proj.bias"), heads),
            "norm": _norm(read, "head.layernorm", "layer"),
            "mlp": {p: _dense(read, f"head.mlp.{p}", True) for p in ("fc1", "fc2")},
        }
    if cfg.style == "aim_v2" and cfg.use_head:
        bias = vit.style_value(cfg, "attn_bias")
        kv = {n: {"kernel": _heads_in(read(f"head.{n}.weight"), heads),
                  **({"bias": read(f"head.{n}.bias").reshape(heads, -1)} if bias else {})}
              for n in ("k_proj", "v_proj")}
        return {"query": read("head.cls_token").reshape(-1), **kv,
                "o_proj": {"kernel": _heads_out(read("head.output_proj.weight"), heads),
                           "bias": read("head.output_proj.bias")}}
    return None


def hf_vit_to_params(state_dict: dict[str, np.ndarray], cfg: Any) -> dict:
    """Our `ViT` parameter tree (float32 numpy) from a transformers (or ml-aim) vision state dict and our config.

    The vision tower's key prefix is found by itself, so a whole CLIPModel / SiglipModel / VLM state dict works.
    """
    cfg = ml_collections.ConfigDict(dict(cfg)) if isinstance(cfg, dict) else cfg
    vit.validate_vit_config(cfg)
    read = _Reader(state_dict, _find_prefix(state_dict, cfg.style))
    layer_fn = _aim_v1_layer if cfg.style == "aim_v1" else _hf_layer
    layer_key = "trunk.blocks.{}." if cfg.style == "aim_v1" else "encoder.layers.{}."
    if any(k.startswith(layer_key.format(cfg.depth)) for k in read.tensors):
        raise ValueError(f"the checkpoint has more than encoder.depth={cfg.depth} layers.")
    params = _embeddings(read, cfg)
    layer_params = [layer_fn(read, i, cfg) for i in range(cfg.depth)]
    params.update({f"layer_{i}": p for i, p in enumerate(layer_params)})
    if cfg.scan:
        params = stack_layers(params, cfg.depth)
    final = {"clip": "post_layernorm", "siglip": "post_layernorm", "aim_v2": "rms_norm",
             "aim_v1": "trunk.post_trunk_norm"}[cfg.style]
    params["post_norm"] = _norm(read, final, vit.STYLES[cfg.style]["norm"])
    head = _head(read, cfg)
    if head is not None:
        params["head"] = head
    _check_all_used(read, cfg)
    return params


def _check_all_used(read: _Reader, cfg: Any) -> None:
    """Fail on encoder tensors the mapping skipped (so a variant we do not model cannot load silently wrong)."""
    encoder = re.compile(r"^(embeddings\.|encoder\.|pre_layrnorm|post_layernorm|rms_norm|preprocessor\.|trunk\.)")
    skipped = sorted(n for n in read.tensors if n not in read.used and encoder.match(n)
                     and not n.endswith("position_ids"))
    if skipped:
        raise ValueError(f"the encoder config (style {cfg.style!r}) does not use the checkpoint tensors "
                         f"{', '.join(skipped[:5])}{' ...' if len(skipped) > 5 else ''}.")


# ----------------------------------------------------------------------------------------------------------------
# The way back and the conversion-family interface (mm1_jax.convert).
# ----------------------------------------------------------------------------------------------------------------
_HF_CLASSES = {"clip": ("clip_vision_model", "CLIPVisionModel"), "siglip": ("siglip_vision_model", "SiglipVisionModel"),
               "aim_v2": ("aimv2_vision_model", "Aimv2VisionModel")}
_TO_HF_ACTIVATIONS = {"quick_gelu": "quick_gelu", "gelu": "gelu", "gelu_tanh": "gelu_pytorch_tanh", "silu": "silu"}


def config_from_hf(hf_config: dict) -> ml_collections.ConfigDict:
    return vit_from_hf_config(hf_config)


def hf_to_params(state, cfg) -> dict:
    return hf_vit_to_params(state, cfg)


def build_module(cfg) -> vit.ViT:
    return vit.ViT(**dict(cfg))


def param_shapes(cfg) -> dict:
    import jax.numpy as jnp

    from mm1_jax.convert import init_shapes

    return init_shapes(build_module(cfg), jnp.zeros((1, cfg.image_size, cfg.image_size, 3), jnp.float32))


def ignored(name: str, cfg) -> bool:
    return name.endswith("position_ids")


def hf_config_to(cfg) -> dict:
    """The *VisionConfig dict transformers reads for our encoder config."""
    if cfg.style not in _HF_CLASSES:
        raise ValueError(f"encoder.style={cfg.style!r} has no transformers vision model to convert back to.")
    model_type, architecture = _HF_CLASSES[cfg.style]
    out = dict(model_type=model_type, architectures=[architecture], hidden_size=cfg.width,
               intermediate_size=cfg.mlp_dim, num_hidden_layers=cfg.depth, num_attention_heads=cfg.num_heads,
               image_size=cfg.image_size, patch_size=cfg.patch_size, num_channels=3,
               hidden_act=_TO_HF_ACTIVATIONS[vit.style_value(cfg, "activation")])
    if cfg.style == "aim_v2":
        out.update(rms_norm_eps=cfg.norm_eps, use_head=bool(cfg.use_head), qkv_bias=bool(vit.style_value(cfg, "attn_bias")),
                   mlp_bias=bool(vit.style_value(cfg, "mlp_bias")), is_native=vit.style_value(cfg, "pos_embed") == "sincos")
    else:
        out.update(layer_norm_eps=cfg.norm_eps)
        if cfg.style == "siglip":
            out.update(vision_use_head=bool(cfg.use_head))
    return out


def _torch_linear(kernel: np.ndarray) -> np.ndarray:
    return np.asarray(kernel).T


def _put_norm(out: dict, name: str, p: dict) -> None:
    if "norm" in p:
        out[f"{name}.weight"], out[f"{name}.bias"] = p["norm"]["scale"], p["norm"]["bias"]
    else:
        out[f"{name}.weight"] = p["scale"]


def _put_dense(out: dict, name: str, p: dict) -> None:
    out[f"{name}.weight"] = _torch_linear(p["kernel"])
    if "bias" in p:
        out[f"{name}.bias"] = p["bias"]


def _put_attention(out: dict, names: dict[str, str], p: dict) -> None:
    """q/k/v kernels [C, H, Dh] -> [H*Dh, C]; o kernel [H, Dh, C] -> [C, H*Dh]; `names` maps ours -> theirs."""
    for ours, theirs in names.items():
        if ours not in p:
            continue
        kernel = np.asarray(p[ours]["kernel"])
        flat = kernel.reshape(kernel.shape[0], -1) if ours != "o_proj" else kernel.reshape(-1, kernel.shape[-1])
        out[f"{theirs}.weight"] = flat.T
        if "bias" in p[ours]:
            out[f"{theirs}.bias"] = np.asarray(p[ours]["bias"]).reshape(-1)


def params_to_hf(params: dict, cfg) -> dict[str, np.ndarray]:
    """The inverse of `hf_vit_to_params` for CLIP / SigLIP / AIMv2: our params -> a *VisionModel state dict."""
    if cfg.style not in _HF_CLASSES:
        raise ValueError(f"encoder.style={cfg.style!r} has no transformers vision model to convert back to.")
    s, names = vit.STYLES[cfg.style], _LAYER_NAMES[cfg.style]
    out: dict[str, np.ndarray] = {}
    patch = "embeddings.patch_embed" if cfg.style == "aim_v2" else "embeddings.patch_embedding"
    out[f"{patch}.weight"] = np.asarray(params["patch_embed"]["kernel"]).transpose(3, 2, 0, 1)
    if "bias" in params["patch_embed"]:
        out[f"{patch}.bias"] = params["patch_embed"]["bias"]
    if cfg.style == "aim_v2":
        _put_norm(out, "embeddings.rms_norm", params["patch_norm"])
    if "class_token" in params:
        out["embeddings.class_embedding"] = params["class_token"]
    if "pos_embed" in params:
        out["embeddings.position_embedding.weight"] = params["pos_embed"]
    if "pre_norm" in params:
        _put_norm(out, "pre_layrnorm", params["pre_norm"])
    layers = ([{k: v[i] for k, v in _flat(params["layers"]).items()} for i in range(cfg.depth)] if "layers" in params
              else [_flat(params[f"layer_{i}"]) for i in range(cfg.depth)])
    for i, flat in enumerate(layers):
        layer, base = _unflat(flat), f"encoder.layers.{i}."
        _put_norm(out, base + names["norm1"], layer["norm1"])
        _put_norm(out, base + names["norm2"], layer["norm2"])
        a = base + names["attn"]
        _put_attention(out, {n: f"{a}.{n}" for n in ("q_proj", "k_proj", "v_proj")} | {"o_proj": f"{a}.out_proj"},
                       layer["attn"])
        for part, p in layer["mlp"].items():
            _put_dense(out, f"{base}{names['mlp']}.{part}", p)
    _put_norm(out, "rms_norm" if cfg.style == "aim_v2" else "post_layernorm", params["post_norm"])
    head = params.get("head")
    if head is not None and cfg.style == "siglip":
        out["head.probe"] = np.asarray(head["probe"]).reshape(1, 1, -1)
        qkv = {}
        _put_attention(qkv, {"q_proj": "q", "k_proj": "k", "v_proj": "v", "o_proj": "head.attention.out_proj"},
                       head["attn"])
        out["head.attention.in_proj_weight"] = np.concatenate([qkv["q.weight"], qkv["k.weight"], qkv["v.weight"]])
        out["head.attention.in_proj_bias"] = np.concatenate([qkv["q.bias"], qkv["k.bias"], qkv["v.bias"]])
        out["head.attention.out_proj.weight"] = qkv["head.attention.out_proj.weight"]
        out["head.attention.out_proj.bias"] = qkv["head.attention.out_proj.bias"]
        _put_norm(out, "head.layernorm", head["norm"])
        for part in ("fc1", "fc2"):
            _put_dense(out, f"head.mlp.{part}", head["mlp"][part])
    elif head is not None and cfg.style == "aim_v2":
        out["head.cls_token"] = np.asarray(head["query"]).reshape(1, 1, -1)
        _put_attention(out, {"k_proj": "head.k_proj", "v_proj": "head.v_proj", "o_proj": "head.output_proj"}, head)
    return {k: np.ascontiguousarray(v) for k, v in out.items()}


def _flat(tree: dict, prefix: tuple = ()) -> dict:
    out = {}
    for k, v in tree.items():
        out.update(_flat(v, prefix + (k,)) if isinstance(v, dict) else {prefix + (k,): v})
    return out


def _unflat(flat: dict) -> dict:
    out: dict = {}
    for path, v in flat.items():
        node = out
        for k in path[:-1]:
            node = node.setdefault(k, {})
        node[path[-1]] = v
    return out
