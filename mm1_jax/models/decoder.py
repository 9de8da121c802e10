"""Dense decoder of the Llama / Qwen2 family: embed -> N x (RMSNorm, GQA attention, RMSNorm, SwiGLU) -> norm -> logits.

Layers can be scanned (`scan_layers`: one compiled layer, parameters stacked on a leading 'layers' axis) and
rematerialised (`remat_policy`); scanned and unscanned give the same numbers. The decoder takes token ids or
ready-made input embeddings, so the MM1 model can put image embeddings into the sequence first.
"""
from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from mm1_jax.models import layers
from mm1_jax.models.layers import Array, constrain, with_axes
from mm1_jax.models.moe import MoeMlp

REMAT_POLICIES = {
    "none": None,  # no rematerialisation
    "full": jax.checkpoint_policies.nothing_saveable,
    "dots": jax.checkpoint_policies.checkpoint_dots,
    "dots_no_batch": jax.checkpoint_policies.checkpoint_dots_with_no_batch_dims,
}


class DecoderLayer(nn.Module):
    """One pre-norm transformer block; its FFN is dense or, with `moe` set, a mixture of experts.

    Returns (x, MoE statistics or None) so it can be the body of `nn.scan`.
    """

    width: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    mlp_dim: int
    rope_theta: float
    qkv_bias: bool
    norm_eps: float
    dtype: Any
    moe: dict | None = None  # MoeMlp fields for an MoE layer

    @nn.compact
    def __call__(self, x: Array, positions: Array, segment_ids: Array, decode: bool = False):
        h = layers.RMSNorm(self.norm_eps, dtype=self.dtype, name="input_norm")(x)
        h = layers.Attention(
            num_heads=self.num_heads,
            num_kv_heads=self.num_kv_heads,
            head_dim=self.head_dim,
            qkv_bias=self.qkv_bias,
            rope_theta=self.rope_theta,
            dtype=self.dtype,
            name="attn",
        )(h, positions=positions, segment_ids=segment_ids, decode=decode)
        x = x + h
        h = layers.RMSNorm(self.norm_eps, dtype=self.dtype, name="post_attn_norm")(x)
        stats = None
        if self.moe:
            h, stats = MoeMlp(**self.moe, dtype=self.dtype, name="moe")(h, valid=segment_ids > 0)
        else:
            h = layers.Mlp(self.mlp_dim, gated=True, activation="silu", dtype=self.dtype, name="mlp")(h)
        return constrain(x + h, "act_batch", "act_len", "act_embed"), stats


class LayerGroup(nn.Module):
    """`period` consecutive layers, the last one MoE: the unit scanned when only every n-th FFN is an MoE."""

    layer_kwargs: dict
    moe: dict
    period: int

    @nn.compact
    def __call__(self, x: Array, positions: Array, segment_ids: Array, decode: bool = False):
        stats = None
        for j in range(self.period):
            moe = self.moe if j == self.period - 1 else None
            x, s = DecoderLayer(**self.layer_kwargs, moe=moe, name=f"sub_{j}")(x, positions, segment_ids, decode)
            stats = s if s is not None else stats
        return x, stats


class Decoder(nn.Module):
    """Llama / Qwen2-style causal LM. Fields are `config.model.decoder`."""

    vocab_size: int
    width: int
    depth: int
    num_heads: int
    num_kv_heads: int
    mlp_dim: int
    head_dim: int | None = None  # default width // num_heads
    rope_theta: float = 10000.0
    qkv_bias: bool = False
    tie_embeddings: bool = False
    norm_eps: float = 1e-5
    scan_layers: bool = False
    remat_policy: str = "none"
    # Mixture of experts: layer i has an MoE FFN when num_experts > 0 and (i + 1) % moe_every == 0.
    num_experts: int = 0
    top_k: int = 2
    moe_every: int = 1
    expert_mlp_dim: int = 0  # 0 = mlp_dim
    shared_expert_mlp_dim: int = 0  # Qwen2-MoE shared expert (0 = none)
    moe_mode: str = "dropless"  # or 'capacity'
    capacity_factor: float = 1.25
    moe_group_size: int = 0  # capacity mode: tokens per routing group (0 = one sequence)
    router_renormalize: bool = True
    load_balance_weight: float = 0.01  # MM1: 0.01
    z_loss_weight: float = 0.001  # MM1: 0.001
    dtype: Any = jnp.float32

    def moe_fields(self) -> dict:
        return dict(
            num_experts=self.num_experts,
            top_k=self.top_k,
            mlp_dim=self.expert_mlp_dim or self.mlp_dim,
            mode=self.moe_mode,
            capacity_factor=self.capacity_factor,
            group_size=self.moe_group_size,
            renormalize=self.router_renormalize,
            shared_mlp_dim=self.shared_expert_mlp_dim,
        )

    def is_moe_layer(self, i: int) -> bool:
        return self.num_experts > 0 and (i + 1) % self.moe_every == 0

    def setup(self):
        self.embedder = nn.Embed(
            self.vocab_size,
            self.width,
            embedding_init=with_axes(nn.initializers.normal(stddev=0.02), "vocab", "embed"),
            name="embed_tokens",
        )
        kwargs = dict(
            width=self.width,
            num_heads=self.num_heads,
            num_kv_heads=self.num_kv_heads,
            head_dim=self.head_dim or self.width // self.num_heads,
            mlp_dim=self.mlp_dim,
            rope_theta=self.rope_theta,
            qkv_bias=self.qkv_bias,
            norm_eps=self.norm_eps,
            dtype=self.dtype,
        )
        moe = self.moe_fields() if self.num_experts else None
        grouped = bool(moe) and self.moe_every > 1 and self.scan_layers
        body, body_kwargs = (LayerGroup, dict(layer_kwargs=kwargs, moe=moe, period=self.moe_every)) if grouped else (
            DecoderLayer, kwargs)
        if self.remat_policy != "none":
            body = nn.remat(body, policy=REMAT_POLICIES[self.remat_policy], static_argnums=(4,))
        if self.scan_layers:
            self.layers = nn.scan(
                body,
                variable_axes={"params": 0, "cache": 0},
                split_rngs={"params": True},
                in_axes=(nn.broadcast, nn.broadcast, nn.broadcast),
                length=self.depth // self.moe_every if grouped else self.depth,
                metadata_params={nn.PARTITION_NAME: "layers"},
            )(**body_kwargs, **({} if grouped else {"moe": moe}), name="layers")
        else:
            self.layers = [
                body(**kwargs, moe=moe if self.is_moe_layer(i) else None, name=f"layer_{i}") for i in range(self.depth)
            ]
        self.final_norm = layers.RMSNorm(self.norm_eps, dtype=self.dtype, name="final_norm")
        if not self.tie_embeddings:
            self.lm_head = nn.Dense(
                self.vocab_size,
                use_bias=False,
                dtype=self.dtype,
                kernel_init=with_axes(nn.initializers.normal(stddev=0.02), "embed", "vocab"),
                name="lm_head",
            )

    def embed(self, tokens: Array) -> Array:
        """Token embeddings [B, T, D] in the compute dtype."""
        return self.embedder(tokens).astype(self.dtype)

    def __call__(
        self,
        tokens: Array | None = None,
        *,
        inputs_embeds: Array | None = None,
        positions: Array | None = None,
        segment_ids: Array | None = None,
        decode: bool = False,
        return_hidden_states: bool = False,
    ) -> dict[str, Any]:
        """Logits [B, T, V] (float32) from `tokens` [B, T] or `inputs_embeds` [B, T, D].

        Returns {'logits', 'hidden_states' (tuple: embeddings then every layer's output, the last one after the
        final norm as in transformers; only when asked)}.
        """
        x = self.embed(tokens) if inputs_embeds is None else inputs_embeds.astype(self.dtype)
        b, t = x.shape[:2]
        positions, segment_ids = layers.default_layout(positions, segment_ids, b, t)
        x = constrain(x, "act_batch", "act_len", "act_embed")

        hidden, stats = [x], []
        if self.scan_layers:
            if return_hidden_states:
                raise ValueError("decoder.return_hidden_states needs decoder.scan_layers=False.")
            x, stacked = self.layers(x, positions, segment_ids, decode)
            stats = [stacked] if stacked is not None else []
        else:
            for layer in self.layers:
                x, s = layer(x, positions, segment_ids, decode)
                hidden.append(x)
                if s is not None:
                    stats.append(jax.tree.map(lambda v: v[None], s))
        x = self.final_norm(x)
        if self.tie_embeddings:
            logits = self.embedder.attend(x.astype(jnp.float32))
        else:
            logits = self.lm_head(x)
        out = {"logits": constrain(logits.astype(jnp.float32), "act_batch", "act_len", "vocab")}
        if return_hidden_states:
            out["hidden_states"] = tuple(hidden[:-1]) + (x,)
        if stats:  # per MoE layer [L_moe, ...], and the weighted auxiliary loss the trainer adds
            moe_stats = jax.tree.map(lambda *v: jnp.concatenate(v), *stats)
            out["moe_stats"] = moe_stats
            out["moe_loss"] = self.load_balance_weight * jnp.mean(
                moe_stats["load_balance_loss"]
            ) + self.z_loss_weight * jnp.mean(moe_stats["z_loss"])
        return out


def token_loss(logits: Array, targets: Array, weights: Array) -> tuple[Array, Array]:
    """Per-token cross-entropy [B, T] (float32) and the weighted mean over tokens with weight > 0."""
    logp = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
    nll = -jnp.take_along_axis(logp, targets[..., None].astype(jnp.int32), axis=-1)[..., 0]
    weights = weights.astype(jnp.float32)
    mean = jnp.sum(nll * weights) / jnp.maximum(jnp.sum(weights), 1e-8)
    return nll * weights, mean


def stack_layers(params: dict, depth: int, period: int = 1) -> dict:
    """Unscanned decoder params (layer_0..layer_{n-1}) -> scanned layout ('layers', leading axis n / period).

    period > 1 is the MoE-every-n-th layout: layers/sub_j holds layers j, j + period, j + 2 * period, ...
    """
    out = {k: v for k, v in params.items() if not k.startswith("layer_")}

    def stack(names):
        return jax.tree.map(lambda *xs: jnp.stack(xs), *[params[n] for n in names])

    if period == 1:
        out["layers"] = stack([f"layer_{i}" for i in range(depth)])
    else:
        out["layers"] = {
            f"sub_{j}": stack([f"layer_{g * period + j}" for g in range(depth // period)]) for j in range(period)
        }
    return out


def unstack_layers(params: dict) -> dict:
    """Scanned decoder params (either layout of `stack_layers`) -> unscanned layout."""
    out = {k: v for k, v in params.items() if k != "layers"}
    groups = params["layers"]
    subs = sorted((k for k in groups if k.startswith("sub_")), key=lambda k: int(k[4:]))
    if not subs:
        groups, subs = {"sub_0": groups}, ["sub_0"]
    period = len(subs)
    n = jax.tree.leaves(groups["sub_0"])[0].shape[0]
    for g in range(n):
        for j, sub in enumerate(subs):
            out[f"layer_{g * period + j}"] = jax.tree.map(lambda x: x[g], groups[sub])
    return out
