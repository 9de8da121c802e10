"""`build_model(config.model)`: check the config, then assemble the model its `kind` names.

  kind 'mm1' (the default)  encoder -> connector -> decoder (`mm1.MM1`)
  kind 'owl3'               mPLUG-Owl3: encoder -> vision2text projector -> decoder (`owl3.Owl3`)
Both set their hyper layers at `model.decoder.hyper_layers` (the `Decoder`'s field). Every inconsistency is reported
here, before any tracing, as one sentence naming the field and its value. Fields a config leaves out take the
defaults of `mm1_jax.models.config`.
"""
from __future__ import annotations

import dataclasses
from typing import Any

import jax.numpy as jnp
import ml_collections

from mm1_jax.config_keys import check_known
from mm1_jax.models import config as model_config
from mm1_jax.models import connectors, layers, mm1
from mm1_jax.models.cross_attention import check_cross_attention
from mm1_jax.models.decoder import REMAT_POLICIES, Decoder, layer_kinds, scan_period
from mm1_jax.models.hyper_attention import check_hyper_layers
from mm1_jax.models.mm1 import MM1
from mm1_jax.models.moe import validate_moe_fields
from mm1_jax.models.owl3 import Owl3
from mm1_jax.models.vit import ViT, grid_size, validate_vit_config

MODEL_FIELDS = ("kind", "encoder", "connector", "decoder", "max_images", "dtype")  # kind 'mm1'
OWL3_FIELDS = ("kind", "encoder", "projector_depth", "decoder", "max_images", "image_token_id", "dtype")  # 'owl3'
DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16, "float16": jnp.float16}
HYPER_SWITCHES = ("hyper_gate", "hyper_shared_norm", "hyper_mi_rope")  # Decoder fields, booleans (hyper_attention)


def _module_fields(cls) -> set[str]:
    return {f.name for f in dataclasses.fields(cls) if f.name not in ("parent", "name")}


def _check_known(section: str, cfg: ml_collections.ConfigDict, known: set[str]) -> None:
    check_known(section, cfg.keys(), known)


def _check_positive(section: str, cfg: ml_collections.ConfigDict, names: tuple[str, ...]) -> None:
    for n in names:
        if not isinstance(cfg[n], int) or cfg[n] <= 0:
            raise ValueError(f"{section}.{n}={cfg[n]!r} must be a positive integer.")


def validate_decoder_config(cfg: ml_collections.ConfigDict, section: str = "model.decoder") -> None:
    """Raise ValueError naming the first inconsistent decoder field."""
    get = lambda field: model_config.get(cfg, "decoder", field)  # noqa: E731
    _check_known(section, cfg, _module_fields(Decoder))
    _check_positive(section, cfg, ("vocab_size", "width", "depth", "num_heads", "num_kv_heads", "mlp_dim"))
    if not get("head_dim") and cfg.width % cfg.num_heads:
        raise ValueError(f"{section}.num_heads={cfg.num_heads} does not divide {section}.width={cfg.width}.")
    if cfg.num_heads % cfg.num_kv_heads:
        raise ValueError(
            f"{section}.num_kv_heads={cfg.num_kv_heads} does not divide {section}.num_heads={cfg.num_heads}."
        )
    head_dim = get("head_dim") or cfg.width // cfg.num_heads
    if head_dim % 2:
        raise ValueError(f"{section} head dim {head_dim} is odd; RoPE needs an even head dim.")
    validate_moe_fields(cfg, section)
    if get("remat_policy") not in REMAT_POLICIES:
        raise ValueError(
            f"{section}.remat_policy={cfg.remat_policy!r} is not one of {', '.join(REMAT_POLICIES)}."
        )
    if get("attention") not in layers.ATTENTION_KINDS:
        raise ValueError(
            f"{section}.attention={cfg.attention!r} is not one of {', '.join(layers.ATTENTION_KINDS)}."
        )
    for name in HYPER_SWITCHES:
        value = get(name)
        if not isinstance(value, bool):
            raise ValueError(f"{section}.{name}={value!r} must be True or False.")
    hyper = get("hyper_layers")
    hyper = () if hyper is None else hyper
    check_hyper_layers(hyper, cfg.depth, f"{section}.hyper_layers")
    cross, position = get("cross_attention_layers"), get("cross_attention_position")
    cross = () if cross is None else cross
    check_cross_attention(cross, position, hyper, cfg.depth, section)
    if (hyper or cross) and get("scan_layers"):
        moe = get("num_experts")
        kinds = layer_kinds(cfg.depth, tuple(hyper), moe, get("moe_every"), tuple(cross), position)
        if cfg.depth > 1 and scan_period(kinds) == cfg.depth:
            named = " and ".join([f"{section}.hyper_layers={list(hyper)}"] * bool(hyper)
                                 + [f"{section}.cross_attention_layers={list(cross)}"] * bool(cross))
            raise ValueError(
                f"{section}.scan_layers=True needs the layer kinds to repeat, but {named}"
                f"{' with the MoE layers' if moe else ''} has no period shorter than {section}.depth="
                f"{cfg.depth}; set {section}.scan_layers=False or put an image-reading layer every p-th layer (p "
                f"dividing the depth)."
            )


def num_encoder_tokens(enc: ml_collections.ConfigDict) -> int:
    """Patch tokens the encoder hands the connector (class token included when it is kept)."""
    n = grid_size(enc.image_size, enc.patch_size) ** 2
    return n + int(enc.style == "clip" and not model_config.get(enc, "encoder", "drop_class_token"))


def _check_retired(cfg: ml_collections.ConfigDict) -> None:
    """One sentence for a field an older config set where it no longer lives."""
    if "hyper_layers" in cfg:
        raise ValueError(f"model.hyper_layers={list(cfg.hyper_layers or ())} is no longer a field; set "
                         f"model.decoder.hyper_layers={tuple(cfg.hyper_layers or ())} instead (zero-based decoder "
                         "layer indices, for MM1 and mPLUG-Owl3 alike).")
    if model_config.model_kind(cfg) == "mm1":
        for key in ("projector_depth", "image_token_id"):
            if key in cfg:
                raise ValueError(f"model.{key} is an mPLUG-Owl3 field, but model.kind='mm1'; "
                                 "set model.kind='owl3' for an mPLUG-Owl3 config.")


def _check_common(cfg: ml_collections.ConfigDict) -> None:
    """The checks both kinds share: encoder and decoder present and sound, dtype, max_images."""
    for section in ("encoder", "decoder"):
        if section not in cfg:
            raise ValueError(f"model.{section} is missing.")
    dtype = model_config.get(cfg, "model", "dtype")
    if dtype not in DTYPES:
        raise ValueError(f"model.dtype={dtype!r} is not one of {', '.join(DTYPES)}.")
    _check_known("model.encoder", cfg.encoder, _module_fields(ViT))
    try:
        validate_vit_config(cfg.encoder)
    except ValueError as e:
        raise ValueError(str(e).replace("encoder.", "model.encoder.")) from None
    validate_decoder_config(cfg.decoder)
    max_images = model_config.get(cfg, "model", "max_images")
    if isinstance(max_images, bool) or not isinstance(max_images, int) or max_images < 0:
        raise ValueError(f"model.max_images={max_images!r} must be a non-negative integer.")


def validate_model_config(cfg: ml_collections.ConfigDict) -> None:
    """Check `config.model` as a whole, of either kind; raise ValueError naming the first bad field and value."""
    _check_retired(cfg)
    if model_config.model_kind(cfg) == "owl3":
        _check_known("model", cfg, set(OWL3_FIELDS))
        _check_common(cfg)
        depth = model_config.get(cfg, "owl3", "projector_depth")
        if depth not in (1, 2):
            raise ValueError(f"model.projector_depth={depth!r} must be 1 (release 240728) or 2 (241101).")
        return
    _check_known("model", cfg, set(MODEL_FIELDS))
    if "connector" not in cfg:
        raise ValueError("model.connector is missing.")
    _check_common(cfg)
    if cfg.connector.get("name") == "hyper_attention":
        raise ValueError("model.connector.name='hyper_attention' no longer exists; use connector 'mlp' (mlp_depth 1 "
                         "or 2, mPLUG-Owl3's projector) and set model.decoder.hyper_layers to the layers that read "
                         "the images.")
    _check_known("model.connector", cfg.connector, set(connectors.connector_fields()))
    try:
        connectors.validate_connector_config(cfg.connector, num_encoder_tokens(cfg.encoder), in_dim=cfg.encoder.width)
    except ValueError as e:
        raise ValueError(str(e).replace("connector.", "model.connector.")) from None


def image_route(cfg: ml_collections.ConfigDict) -> str:
    """How images reach the decoder: 'hyper' (the decoder has hyper_layers or cross_attention_layers, or the model is
    an Owl3: one placeholder token per image, its features read by those layers) or 'slots' (the connector's K
    embeddings fill K slot tokens)."""
    if model_config.model_kind(cfg) == "owl3":
        return "hyper"
    return mm1.image_route(model_config.get(cfg.decoder, "decoder", "hyper_layers") or (),
                           model_config.get(cfg.decoder, "decoder", "cross_attention_layers") or ())


def image_tokens(cfg: ml_collections.ConfigDict) -> int:
    """K: decoder tokens one image (or crop) occupies: 1 on the hyper route, the connector's token count otherwise."""
    if image_route(cfg) == "hyper":
        return 1
    return connectors.num_connector_tokens(cfg.connector, num_encoder_tokens(cfg.encoder))


def build_model(cfg: ml_collections.ConfigDict) -> MM1 | Owl3:
    """The module `config.model` describes (validated first): an `MM1`, or an `Owl3` for model.kind 'owl3'."""
    validate_model_config(cfg)
    dtype = DTYPES[model_config.get(cfg, "model", "dtype")]
    encoder = ViT(**{**model_config.with_defaults(cfg.encoder, "encoder"), "dtype": dtype})
    decoder = build_decoder(cfg.decoder, dtype)  # its hyper_layers pick the image route (`image_route`)
    if model_config.model_kind(cfg) == "owl3":
        projector = connectors.MlpProjector(cfg.decoder.width, dtype=dtype,
                                            mlp_depth=model_config.get(cfg, "owl3", "projector_depth"))
        return Owl3(encoder=encoder, vision2text=projector, decoder=decoder,
                    image_token_id=model_config.get(cfg, "owl3", "image_token_id"))
    connector = connectors.build_connector(
        cfg.connector,
        in_dim=cfg.encoder.width,
        out_dim=cfg.decoder.width,
        num_input_tokens=num_encoder_tokens(cfg.encoder),
        dtype=dtype,
    )
    return MM1(encoder=encoder, connector=connector, decoder=decoder,
               max_images=model_config.get(cfg, "model", "max_images"))


def build_decoder(cfg: ml_collections.ConfigDict, dtype: Any = jnp.float32) -> Decoder:
    """A decoder alone (text-only analysis, conversion)."""
    validate_decoder_config(cfg)
    fields = model_config.with_defaults(cfg, "decoder")
    return Decoder(**{**fields, "hyper_layers": tuple(fields.get("hyper_layers") or ()),
                      "cross_attention_layers": tuple(fields.get("cross_attention_layers") or ()), "dtype": dtype})
