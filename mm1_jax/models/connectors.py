"""Vision-language connectors: encoder patch features [B, N, Cv] -> visual tokens [B, K, D] (D = decoder width).

MM1's connector ablation compares average pooling, attention pooling and the C-Abstractor (`c_abstractor.py`);
`MlpProjector` is the LLaVA-style baseline that keeps all N tokens. `build_connector(cfg, ...)` picks one by
`cfg.name`; `register_connector` lets other modules add theirs. Every connector also serves the hyper-attention
image route (a decoder with `hyper_layers`): its [K, D] output per image is what the hyper layers attend to, and
mPLUG-Owl3's own projector is 'mlp' (mlp_depth 1 or 2).

Logical axes of the parameters: Cv is `vit_embed`, D is `embed`, conv channels `conv_in`/`conv_out`, attention
`heads`/`head_dim`. A D -> D readout layer is named ('mlp', 'embed') so that no kernel names one axis twice.
"""
from __future__ import annotations

from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from mm1_jax.models import config as model_config
from mm1_jax.models.c_abstractor import CAbstractor, adaptive_avg_pool_2d, adaptive_pool_matrix, square_sides
from mm1_jax.models.layers import Projection

__all__ = [
    "AveragePooling",
    "AttentionPooling",
    "CAbstractor",
    "MlpProjector",
    "adaptive_avg_pool_2d",
    "adaptive_pool_matrix",
    "build_connector",
    "connector_names",
    "num_connector_tokens",
    "register_connector",
    "validate_connector_config",
]

Dtype = Any
QUERY_INIT = nn.initializers.normal(stddev=0.02)


def _dense(features: int, in_axis: str, out_axis: str, name: str, dtype: Dtype) -> nn.Dense:
    """nn.Dense with logically named kernel [in, out] and bias [out]."""
    return nn.Dense(
        features,
        dtype=dtype,
        kernel_init=nn.with_logical_partitioning(nn.initializers.lecun_normal(), (in_axis, out_axis)),
        bias_init=nn.with_logical_partitioning(nn.initializers.zeros, (out_axis,)),
        name=name,
    )


def _constrain_output(x: jax.Array) -> jax.Array:
    return nn.with_logical_constraint(x, ("act_batch", None, "act_embed"))


class AveragePooling(nn.Module):
    """MM1 average pooling: N tokens as an s x s map, adaptive average pool to k x k (K = k*k), Linear Cv -> D.

    Parameters: `proj` (kernel [Cv, D]).
    """

    num_tokens: int
    out_dim: int
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        batch, num_input, in_dim = x.shape
        side, out_side = square_sides(num_input, self.num_tokens, "AveragePooling")
        x = x.astype(self.dtype).reshape(batch, side, side, in_dim)
        x = adaptive_avg_pool_2d(x, out_side).reshape(batch, self.num_tokens, in_dim)
        x = _dense(self.out_dim, "vit_embed", "embed", "proj", self.dtype)(x)
        return _constrain_output(x)


class AttentionPooling(nn.Module):
    """MM1 attention pooling: K learned queries cross-attend the N patch features, then Linear Cv -> D.

    Exactly: queries Q [K, Cv] (learned, shared by the batch); one multi-head attention layer in width Cv with
    `num_heads` heads, q/k/v projections Cv -> (heads, Cv/heads) with bias, softmax(q k^T / sqrt(head_dim)) v,
    output projection (heads, head_dim) -> Cv with bias (torch.nn.MultiheadAttention's math, no norms, no
    residual); then `proj` Linear Cv -> D. Parameters: `queries`, `query`, `key`, `value`, `out`, `proj`.
    """

    num_tokens: int
    out_dim: int
    num_heads: int = 8
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        batch, _, in_dim = x.shape
        if in_dim % self.num_heads:
            raise ValueError(f"AttentionPooling: num_heads={self.num_heads} does not divide the feature width {in_dim}.")
        head_dim = in_dim // self.num_heads
        x = x.astype(self.dtype)
        queries = self.param(
            "queries", nn.with_logical_partitioning(QUERY_INIT, (None, "vit_embed")), (self.num_tokens, in_dim)
        )
        queries = jnp.broadcast_to(queries.astype(self.dtype)[None], (batch, self.num_tokens, in_dim))

        def heads_projection(name: str) -> Projection:
            return Projection(
                (self.num_heads, head_dim), ("vit_embed", "heads", "head_dim"), use_bias=True, dtype=self.dtype,
                name=name,
            )

        q = heads_projection("query")(queries)
        k = heads_projection("key")(x)
        v = heads_projection("value")(x)
        logits = jnp.einsum("bqhd,bkhd->bhqk", q, k).astype(jnp.float32) / jnp.sqrt(jnp.float32(head_dim))
        weights = jax.nn.softmax(logits, axis=-1).astype(self.dtype)
        attended = jnp.einsum("bhqk,bkhd->bqhd", weights, v)
        pooled = Projection(
            in_dim, ("heads", "head_dim", "vit_embed"), in_ndim=2, use_bias=True, dtype=self.dtype, name="out"
        )(attended)
        return _constrain_output(_dense(self.out_dim, "vit_embed", "embed", "proj", self.dtype)(pooled))


class MlpProjector(nn.Module):
    """LLaVA-style projector, no token reduction (K = N): Linear Cv -> D, then (GELU, Linear D -> D) x (mlp_depth-1).

    GELU is the exact (erf) form, as torch.nn.GELU() in LLaVA. Parameters: `layers_0`, `layers_2`, ... (torch
    nn.Sequential indices).
    """

    out_dim: int
    mlp_depth: int = 2
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        x = x.astype(self.dtype)
        for j in range(self.mlp_depth):
            if j > 0:
                x = nn.gelu(x, approximate=False)
            in_axis = "vit_embed" if j == 0 else "mlp"
            x = _dense(self.out_dim, in_axis, "embed", f"layers_{2 * j}", self.dtype)(x)
        return _constrain_output(x)


# ----------------------------------------------------------------------------------------------------------------
# Config validation and the factory.

BuildFn = Callable[..., nn.Module]  # (cfg, *, in_dim, out_dim, num_input_tokens, dtype) -> module
ValidateFn = Callable[[ml_collections.ConfigDict, int], None]  # (cfg, num_input_tokens) -> None or ValueError
_REGISTRY: dict[str, tuple[BuildFn, ValidateFn | None]] = {}
# Every field the built-in connectors read (`config.model.connector`; defaults of those a config may leave out:
# mm1_jax.models.config.CONNECTOR; the papers' values: mm1_jax.models.presets.connector_config):
# name (the kind), num_tokens (K), hidden_dim, depth and mlp_depth (C-Abstractor / MLP), num_heads (attention
# pooling), pos_emb (the C-Abstractor's position table). A registered connector adds its own (`register_connector`).
CONNECTOR_FIELDS = ("name", "num_tokens", "hidden_dim", "depth", "mlp_depth", "num_heads", "pos_emb")
_EXTRA_FIELDS: dict[str, tuple[str, ...]] = {}


def register_connector(name: str, build: BuildFn, validate: ValidateFn | None = None,
                       fields: tuple[str, ...] = ()) -> None:
    """Add a connector kind: `build(cfg, *, in_dim, out_dim, num_input_tokens, dtype)`, `validate(cfg, n)`; `fields`:
    the config fields it reads beyond CONNECTOR_FIELDS."""
    _REGISTRY[name] = (build, validate)
    _EXTRA_FIELDS[name] = tuple(fields)


def connector_fields() -> tuple[str, ...]:
    """The fields `config.model.connector` may set: CONNECTOR_FIELDS and those registered connectors add."""
    extra = sorted({f for fields in _EXTRA_FIELDS.values() for f in fields} - set(CONNECTOR_FIELDS))
    return CONNECTOR_FIELDS + tuple(extra)


def connector_names() -> tuple[str, ...]:
    """The `connector.name` values build_connector accepts."""
    return tuple(_REGISTRY)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_square(value: int) -> bool:
    root = int(round(value**0.5))
    return root * root == value


def _require_int(cfg: ml_collections.ConfigDict, field: str, minimum: int) -> int:
    value = cfg.get(field)
    if not _is_int(value) or value < minimum:
        raise ValueError(f"connector.{field}={value!r} must be an integer >= {minimum} for connector '{cfg.name}'.")
    return value


def _validate_pooled(cfg: ml_collections.ConfigDict, num_input_tokens: int) -> None:
    """Checks shared by the connectors that pool an s x s map down to k x k."""
    num_tokens = _require_int(cfg, "num_tokens", 1)
    if not _is_square(num_tokens):
        raise ValueError(
            f"connector.num_tokens={num_tokens} is not a perfect square; connector '{cfg.name}' pools to a k x k map."
        )
    if not _is_square(num_input_tokens):
        raise ValueError(
            f"connector '{cfg.name}' needs a square number of input tokens, but the encoder gives {num_input_tokens}."
        )
    if num_tokens > num_input_tokens:
        raise ValueError(
            f"connector.num_tokens={num_tokens} exceeds the {num_input_tokens} encoder tokens; "
            f"connector '{cfg.name}' can only reduce the token count."
        )


def _validate_c_abstractor(cfg: ml_collections.ConfigDict, num_input_tokens: int) -> None:
    _validate_pooled(cfg, num_input_tokens)
    _require_int(cfg, "depth", 0)
    _require_int(cfg, "mlp_depth", 1)
    if cfg.depth > 0:
        _require_int(cfg, "hidden_dim", 1)


def _validate_attn_pool(cfg: ml_collections.ConfigDict, num_input_tokens: int) -> None:
    _require_int(cfg, "num_tokens", 1)
    _require_int(cfg, "num_heads", 1)


def _validate_mlp(cfg: ml_collections.ConfigDict, num_input_tokens: int) -> None:
    num_tokens = cfg.get("num_tokens")
    if num_tokens is not None and num_tokens != num_input_tokens:
        raise ValueError(
            f"connector.num_tokens={num_tokens} must equal the {num_input_tokens} encoder tokens for connector 'mlp', "
            "which does not reduce tokens."
        )
    _require_int(cfg, "mlp_depth", 1)


def validate_connector_config(
    cfg: ml_collections.ConfigDict, num_input_tokens: int, *, in_dim: int | None = None
) -> None:
    """Raise ValueError, one sentence naming the field and value, if `cfg` cannot build a connector."""
    name = cfg.get("name")
    if name not in _REGISTRY:
        raise ValueError(f"connector.name={name!r} is unknown; choose one of {', '.join(connector_names())}.")
    if not _is_int(num_input_tokens) or num_input_tokens < 1:
        raise ValueError(f"the encoder token count num_input_tokens={num_input_tokens!r} must be a positive integer.")
    _, validate = _REGISTRY[name]
    if validate is not None:
        validate(cfg, num_input_tokens)
    if name == "attn_pool" and in_dim is not None and in_dim % cfg.num_heads:
        raise ValueError(
            f"connector.num_heads={cfg.num_heads} does not divide the encoder width {in_dim} for connector 'attn_pool'."
        )


def num_connector_tokens(cfg: ml_collections.ConfigDict, num_input_tokens: int) -> int:
    """How many visual tokens the configured connector emits per image."""
    if cfg.name == "mlp":
        return num_input_tokens
    return cfg.num_tokens


def build_connector(
    cfg: ml_collections.ConfigDict,
    *,
    in_dim: int,
    out_dim: int,
    num_input_tokens: int,
    dtype: Dtype = jnp.float32,
) -> nn.Module:
    """Validate `cfg` and build the connector it names, mapping [B, num_input_tokens, in_dim] -> [B, K, out_dim]."""
    validate_connector_config(cfg, num_input_tokens, in_dim=in_dim)
    build, _ = _REGISTRY[cfg.name]
    return build(cfg, in_dim=in_dim, out_dim=out_dim, num_input_tokens=num_input_tokens, dtype=dtype)


register_connector(
    "avg_pool",
    lambda cfg, *, in_dim, out_dim, num_input_tokens, dtype: AveragePooling(cfg.num_tokens, out_dim, dtype=dtype),
    _validate_pooled,
)
register_connector(
    "attn_pool",
    lambda cfg, *, in_dim, out_dim, num_input_tokens, dtype: AttentionPooling(
        cfg.num_tokens, out_dim, num_heads=cfg.num_heads, dtype=dtype
    ),
    _validate_attn_pool,
)
register_connector(
    "c_abstractor",
    lambda cfg, *, in_dim, out_dim, num_input_tokens, dtype: CAbstractor(
        num_tokens=cfg.num_tokens,
        hidden_dim=model_config.get(cfg, "connector", "hidden_dim") or in_dim,
        out_dim=out_dim,
        depth=cfg.depth,
        mlp_depth=cfg.mlp_depth,
        use_pos_emb=model_config.get(cfg, "connector", "pos_emb"),
        dtype=dtype,
    ),
    _validate_c_abstractor,
)
register_connector(
    "mlp",
    lambda cfg, *, in_dim, out_dim, num_input_tokens, dtype: MlpProjector(out_dim, mlp_depth=cfg.mlp_depth, dtype=dtype),
    _validate_mlp,
)
