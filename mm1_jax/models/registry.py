"""`build_model(config.model)`: check the config, then assemble encoder -> connector -> decoder.

Every inconsistency is reported here, before any tracing, as one sentence naming the field and its value.
"""
from __future__ import annotations

import dataclasses
from typing import Any

import jax.numpy as jnp
import ml_collections

from mm1_jax.models import connectors, hyper_attention  # hyper_attention registers connector 'hyper_attention'
from mm1_jax.models.decoder import REMAT_POLICIES, Decoder
from mm1_jax.models.mm1 import MM1
from mm1_jax.models.moe import validate_moe_fields
from mm1_jax.models.vit import ViT, grid_size, validate_vit_config

MODEL_FIELDS = ("encoder", "connector", "decoder", "max_images", "dtype")
DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16, "float16": jnp.float16}


def _module_fields(cls) -> set[str]:
    return {f.name for f in dataclasses.fields(cls) if f.name not in ("parent", "name")}


def _check_known(section: str, cfg: ml_collections.ConfigDict, known: set[str]) -> None:
    for key in cfg.keys():
        if key not in known:
            raise ValueError(f"{section}.{key} is not a known field; the fields are: {', '.join(sorted(known))}.")


def _check_positive(section: str, cfg: ml_collections.ConfigDict, names: tuple[str, ...]) -> None:
    for n in names:
        if not isinstance(cfg[n], int) or cfg[n] <= 0:
            raise ValueError(f"{section}.{n}={cfg[n]!r} must be a positive integer.")


def validate_decoder_config(cfg: ml_collections.ConfigDict, section: str = "model.decoder") -> None:
    """Raise ValueError naming the first inconsistent decoder field."""
    _check_known(section, cfg, _module_fields(Decoder))
    _check_positive(section, cfg, ("vocab_size", "width", "depth", "num_heads", "num_kv_heads", "mlp_dim"))
    if not cfg.get("head_dim") and cfg.width % cfg.num_heads:
        raise ValueError(f"{section}.num_heads={cfg.num_heads} does not divide {section}.width={cfg.width}.")
    if cfg.num_heads % cfg.num_kv_heads:
        raise ValueError(
            f"{section}.num_kv_heads={cfg.num_kv_heads} does not divide {section}.num_heads={cfg.num_heads}."
        )
    head_dim = cfg.get("head_dim") or cfg.width // cfg.num_heads
    if head_dim % 2:
        raise ValueError(f"{section} head dim {head_dim} is odd; RoPE needs an even head dim.")
    validate_moe_fields(cfg, section)
    if cfg.get("remat_policy", "none") not in REMAT_POLICIES:
        raise ValueError(
            f"{section}.remat_policy={cfg.remat_policy!r} is not one of {', '.join(REMAT_POLICIES)}."
        )


def num_encoder_tokens(enc: ml_collections.ConfigDict) -> int:
    """Patch tokens the encoder hands the connector (class token included when it is kept)."""
    n = grid_size(enc.image_size, enc.patch_size) ** 2
    return n + int(enc.style == "clip" and not enc.get("drop_class_token", True))


def validate_model_config(cfg: ml_collections.ConfigDict) -> None:
    """Check `config.model` as a whole; raise ValueError naming the first bad field and value."""
    _check_known("model", cfg, set(MODEL_FIELDS))
    for section in ("encoder", "connector", "decoder"):
        if section not in cfg:
            raise ValueError(f"model.{section} is missing.")
    if cfg.get("dtype", "float32") not in DTYPES:
        raise ValueError(f"model.dtype={cfg.dtype!r} is not one of {', '.join(DTYPES)}.")
    _check_known("model.encoder", cfg.encoder, _module_fields(ViT))
    try:
        validate_vit_config(cfg.encoder)
    except ValueError as e:
        raise ValueError(str(e).replace("encoder.", "model.encoder.")) from None
    validate_decoder_config(cfg.decoder)
    try:
        connectors.validate_connector_config(cfg.connector, num_encoder_tokens(cfg.encoder), in_dim=cfg.encoder.width)
    except ValueError as e:
        raise ValueError(str(e).replace("connector.", "model.connector.")) from None
    if not isinstance(cfg.get("max_images", 16), int) or cfg.get("max_images", 16) < 0:
        raise ValueError(f"model.max_images={cfg.max_images!r} must be a non-negative integer.")


def image_tokens(cfg: ml_collections.ConfigDict) -> int:
    """K: decoder tokens one image (or crop) occupies."""
    return connectors.num_connector_tokens(cfg.connector, num_encoder_tokens(cfg.encoder))


def build_model(cfg: ml_collections.ConfigDict) -> MM1:
    """The MM1 module for `config.model` (validated first)."""
    validate_model_config(cfg)
    dtype = DTYPES[cfg.get("dtype", "float32")]
    encoder = ViT(**{**cfg.encoder.to_dict(), "dtype": dtype})
    connector = connectors.build_connector(
        cfg.connector,
        in_dim=cfg.encoder.width,
        out_dim=cfg.decoder.width,
        num_input_tokens=num_encoder_tokens(cfg.encoder),
        dtype=dtype,
    )
    if cfg.connector.name == "hyper_attention":  # images reach the decoder through its hyper layers
        decoder = hyper_attention.build_hyper_decoder(cfg.decoder, cfg.connector.hyper_layers, dtype)
        return hyper_attention.HyperMM1(encoder=encoder, connector=connector, decoder=decoder,
                                        max_images=cfg.get("max_images", 16))
    decoder = Decoder(**{**cfg.decoder.to_dict(), "dtype": dtype})
    return MM1(encoder=encoder, connector=connector, decoder=decoder, max_images=cfg.get("max_images", 16))


def build_decoder(cfg: ml_collections.ConfigDict, dtype: Any = jnp.float32) -> Decoder:
    """A decoder alone (text-only analysis, conversion)."""
    validate_decoder_config(cfg)
    return Decoder(**{**cfg.to_dict(), "dtype": dtype})
