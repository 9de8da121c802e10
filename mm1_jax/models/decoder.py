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

REMAT_POLICIES = {
    "none": None,  # no rematerialisation
    "full": jax.checkpoint_policies.nothing_saveable,
    "dots": jax.checkpoint_policies.checkpoint_dots,
    "dots_no_batch": jax.checkpoint_policies.checkpoint_dots_with_no_batch_dims,
}


class DecoderLayer(nn.Module):
    """One pre-norm transformer block. Returns (x, None) so it can be the body of `nn.scan`."""

    width: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    mlp_dim: int
    rope_theta: float
    qkv_bias: bool
    norm_eps: float
    dtype: Any

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
        x = x + layers.Mlp(self.mlp_dim, gated=True, activation="silu", dtype=self.dtype, name="mlp")(h)
        return constrain(x, "act_batch", "act_len", "act_embed"), None


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
    dtype: Any = jnp.float32

    def setup(self):
        self.embedder = nn.Embed(
            self.vocab_size,
            self.width,
            embedding_init=with_axes(nn.initializers.normal(stddev=0.02), "vocab", "embed"),
            name="embed_tokens",
        )
        layer_cls = DecoderLayer
        if self.remat_policy != "none":
            layer_cls = nn.remat(layer_cls, policy=REMAT_POLICIES[self.remat_policy], static_argnums=(4,))
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
        if self.scan_layers:
            self.layers = nn.scan(
                layer_cls,
                variable_axes={"params": 0, "cache": 0},
                split_rngs={"params": True},
                in_axes=(nn.broadcast, nn.broadcast, nn.broadcast),
                length=self.depth,
                metadata_params={nn.PARTITION_NAME: "layers"},
            )(**kwargs, name="layers")
        else:
            self.layers = [layer_cls(**kwargs, name=f"layer_{i}") for i in range(self.depth)]
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
        if positions is None:
            positions = jnp.broadcast_to(jnp.arange(t, dtype=jnp.int32), (b, t))
        if segment_ids is None:
            segment_ids = jnp.ones((b, t), jnp.int32)
        x = constrain(x, "act_batch", "act_len", "act_embed")

        hidden = [x]
        if self.scan_layers:
            if return_hidden_states:
                raise ValueError("decoder.return_hidden_states needs decoder.scan_layers=False.")
            x, _ = self.layers(x, positions, segment_ids, decode)
        else:
            for layer in self.layers:
                x, _ = layer(x, positions, segment_ids, decode)
                hidden.append(x)
        x = self.final_norm(x)
        if self.tie_embeddings:
            logits = self.embedder.attend(x.astype(jnp.float32))
        else:
            logits = self.lm_head(x)
        out = {"logits": constrain(logits.astype(jnp.float32), "act_batch", "act_len", "vocab")}
        if return_hidden_states:
            out["hidden_states"] = tuple(hidden[:-1]) + (x,)
        return out


def token_loss(logits: Array, targets: Array, weights: Array) -> tuple[Array, Array]:
    """Per-token cross-entropy [B, T] (float32) and the weighted mean over tokens with weight > 0."""
    logp = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
    nll = -jnp.take_along_axis(logp, targets[..., None].astype(jnp.int32), axis=-1)[..., 0]
    weights = weights.astype(jnp.float32)
    mean = jnp.sum(nll * weights) / jnp.maximum(jnp.sum(weights), 1e-8)
    return nll * weights, mean


def stack_layers(params: dict, depth: int) -> dict:
    """Unscanned decoder params (layer_0..layer_{n-1}) -> scanned layout (one 'layers' entry, leading axis n)."""
    out = {k: v for k, v in params.items() if not k.startswith("layer_")}
    out["layers"] = jax.tree.map(lambda *xs: jnp.stack(xs), *[params[f"layer_{i}"] for i in range(depth)])
    return out


def unstack_layers(params: dict) -> dict:
    """Scanned decoder params -> unscanned layout."""
    out = {k: v for k, v in params.items() if k != "layers"}
    depth = jax.tree.leaves(params["layers"])[0].shape[0]
    for i in range(depth):
        out[f"layer_{i}"] = jax.tree.map(lambda x: x[i], params["layers"])
    return out
