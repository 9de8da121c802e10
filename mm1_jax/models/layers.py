"""Building blocks shared by the encoders and decoders: norms, RoPE, attention, MLPs.

Every parameter names its logical axes (see `mm1_jax.train.sharding.LOGICAL_AXIS_RULES`). A module serves both
the ViT and the decoder; `axes` picks the family of names ('decoder' -> embed/heads/mlp, 'vit' -> vit_embed/...).
Norms, softmax and RoPE run in float32 whatever the compute dtype.
"""
from __future__ import annotations

from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

Array = jax.Array
DType = Any

AXES = {
    "decoder": dict(embed="embed", heads="heads", kv_heads="kv_heads", head_dim="head_dim", mlp="mlp"),
    "vit": dict(embed="vit_embed", heads="vit_heads", kv_heads="vit_heads", head_dim="head_dim", mlp="vit_mlp"),
}


def with_axes(init: Callable, *names: str | None) -> Callable:
    """An initializer whose parameter carries logical axis names."""
    return nn.with_logical_partitioning(init, names)


def constrain(x: Array, *names: str | None) -> Array:
    """Logical sharding constraint on an activation (a no-op outside a mesh context)."""
    return nn.with_logical_constraint(x, names)


class Projection(nn.Module):
    """x [..., *in] -> [..., *features] through a kernel [*in, *features] whose every axis is named.

    Replaces flax's DenseGeneral, which initialises a flattened 2D kernel and reshapes it: that breaks the kernel's
    logical sharding constraint under an active mesh. The last `in_ndim` axes of x are contracted.
    """

    features: int | tuple[int, ...]
    kernel_axes: tuple[str | None, ...]
    in_ndim: int = 1
    use_bias: bool = False
    dtype: DType = jnp.float32

    @nn.compact
    def __call__(self, x: Array) -> Array:
        out_shape = (self.features,) if isinstance(self.features, int) else tuple(self.features)
        in_shape = x.shape[x.ndim - self.in_ndim :]
        n_in = len(in_shape)
        init = nn.initializers.lecun_normal(
            in_axis=tuple(range(n_in)), out_axis=tuple(range(n_in, n_in + len(out_shape)))
        )
        kernel = self.param("kernel", with_axes(init, *self.kernel_axes), in_shape + out_shape, jnp.float32)
        y = jnp.tensordot(x.astype(self.dtype), kernel.astype(self.dtype), axes=n_in)
        if self.use_bias:
            bias_axes = self.kernel_axes[n_in:]
            bias = self.param("bias", with_axes(nn.initializers.zeros, *bias_axes), out_shape, jnp.float32)
            y = y + bias.astype(self.dtype)
        return y


# ----------------------------------------------------------------------------------------------------------------
# Norms
# ----------------------------------------------------------------------------------------------------------------
class RMSNorm(nn.Module):
    """x / sqrt(mean(x^2) + eps) * scale, computed in float32 (Llama, Qwen2, AIMv2)."""

    epsilon: float = 1e-6
    axis_name: str = "embed"
    dtype: DType = jnp.float32

    @nn.compact
    def __call__(self, x: Array) -> Array:
        scale = self.param("scale", with_axes(nn.initializers.ones, self.axis_name), (x.shape[-1],), jnp.float32)
        x32 = x.astype(jnp.float32)
        y = x32 * jax.lax.rsqrt(jnp.mean(x32 * x32, axis=-1, keepdims=True) + self.epsilon)
        return (y * scale).astype(self.dtype)


class LayerNorm(nn.Module):
    """LayerNorm with named axes, computed in float32 (CLIP, SigLIP, AIM v1)."""

    epsilon: float = 1e-5
    use_bias: bool = True
    axis_name: str = "embed"
    dtype: DType = jnp.float32

    @nn.compact
    def __call__(self, x: Array) -> Array:
        return nn.LayerNorm(
            epsilon=self.epsilon,
            use_bias=self.use_bias,
            dtype=jnp.float32,
            scale_init=with_axes(nn.initializers.ones, self.axis_name),
            bias_init=with_axes(nn.initializers.zeros, self.axis_name),
            name="norm",
        )(x.astype(jnp.float32)).astype(self.dtype)


def make_norm(kind: str, epsilon: float, axis_name: str, dtype: DType, name: str) -> nn.Module:
    """'rms' or 'layer' (with bias) or 'layer_nobias'."""
    if kind == "rms":
        return RMSNorm(epsilon=epsilon, axis_name=axis_name, dtype=dtype, name=name)
    if kind in ("layer", "layer_nobias"):
        return LayerNorm(epsilon=epsilon, use_bias=kind == "layer", axis_name=axis_name, dtype=dtype, name=name)
    raise ValueError(f"norm kind {kind!r} is not one of 'rms', 'layer', 'layer_nobias'.")


# ----------------------------------------------------------------------------------------------------------------
# Rotary position embedding (the rotate-half layout of Llama / Qwen2 in transformers)
# ----------------------------------------------------------------------------------------------------------------
def rope_sin_cos(positions: Array, head_dim: int, theta: float) -> tuple[Array, Array]:
    """sin, cos tables [..., head_dim] for integer positions [...], in float32."""
    inv_freq = 1.0 / (theta ** (jnp.arange(0, head_dim, 2, dtype=jnp.float32) / head_dim))
    angles = positions.astype(jnp.float32)[..., None] * inv_freq
    angles = jnp.concatenate([angles, angles], axis=-1)
    return jnp.sin(angles), jnp.cos(angles)


def apply_rope(x: Array, sin: Array, cos: Array) -> Array:
    """Rotate x [B, T, H, Dh] by tables [B, T, Dh]; float32 inside, x's dtype out."""
    x32 = x.astype(jnp.float32)
    half = x.shape[-1] // 2
    rotated = jnp.concatenate([-x32[..., half:], x32[..., :half]], axis=-1)
    out = x32 * cos[:, :, None, :] + rotated * sin[:, :, None, :]
    return out.astype(x.dtype)


# ----------------------------------------------------------------------------------------------------------------
# Masks: a short function each; True means "may attend"
# ----------------------------------------------------------------------------------------------------------------
def default_layout(positions: Array | None, segment_ids: Array | None, b: int, t: int) -> tuple[Array, Array]:
    """Positions 0..t-1 and one document (segment 1) for whichever the caller did not give."""
    if positions is None:
        positions = jnp.broadcast_to(jnp.arange(t, dtype=jnp.int32), (b, t))
    if segment_ids is None:
        segment_ids = jnp.ones((b, t), jnp.int32)
    return positions, segment_ids


def causal_mask(q_index: Array, k_index: Array) -> Array:
    """[B, Tq, Tk]: key index <= query index."""
    return k_index[:, None, :] <= q_index[:, :, None]


def segment_mask(q_segments: Array, k_segments: Array) -> Array:
    """[B, Tq, Tk]: same packed document, and the key is not padding (segment 0)."""
    return (q_segments[:, :, None] == k_segments[:, None, :]) & (k_segments[:, None, :] > 0)


def dot_product_attention(q: Array, k: Array, v: Array, mask: Array | None) -> Array:
    """Grouped-KV attention under any mask: q [B, T, H, Dh], k/v [B, S, KVH, Dh], mask [B, T, S] -> [B, T, H, Dh].

    Query heads are grouped onto their KV head (head h uses KV head h // (H / KVH)) without materialising repeated
    keys, and run through the same softmax core (float32 logits, flash-style backward) as `self_attention`, which
    is this function for the (causal &) packed-document mask. Fully masked rows give zeros rather than NaNs.
    """
    b, t, h, dh = q.shape
    s, kvh = k.shape[1], k.shape[2]
    g = h // kvh
    qh = q.reshape(b, t, kvh, g, dh).transpose(0, 2, 3, 1, 4).reshape(b, kvh, g * t, dh)
    if mask is None:
        mask = jnp.ones((b, t, s), bool)
    mask = jnp.broadcast_to(mask[:, None], (b, g, t, s)).reshape(b, 1, g * t, s)
    out = _masked_softmax_attention(qh, k.transpose(0, 2, 1, 3), v.transpose(0, 2, 1, 3), mask)
    return out.reshape(b, kvh, g, t, dh).transpose(0, 3, 1, 2, 4).reshape(b, t, h, dh)


def _softmax_core_forward(q: Array, k: Array, v: Array, mask: Array) -> tuple[Array, Array]:
    """(out [B, K, Q, Dh], log-sum-exp [B, K, Q, 1] float32, 0 on fully masked rows) of softmax(q k^T, mask) v.

    Few passes over the [Q, S] logits, which is where a CPU step's time goes (memory, not FLOPs): the unnormalised
    exp(logits - max) meets v first and the sum divides the [Q, Dh] product (S / Dh x smaller than the weights).
    Masked entries get exp(finfo.min - max) = 0 exactly; a fully masked row (its max is finfo.min) gives zeros.
    """
    logits = jnp.einsum("bkqd,bksd->bkqs", q, k, preferred_element_type=jnp.float32)
    logits = jnp.where(mask, logits, jnp.finfo(jnp.float32).min)
    peak = jnp.max(logits, axis=-1, keepdims=True)
    valid = peak > jnp.finfo(jnp.float32).min
    e = jnp.exp(logits - peak)
    total = jnp.sum(e, axis=-1, keepdims=True)
    out = jnp.einsum("bkqs,bksd->bkqd", e.astype(v.dtype), v, preferred_element_type=jnp.float32)
    out = jnp.where(valid, out / total, 0.0)
    lse = jnp.where(valid, peak + jnp.log(total), 0.0)
    return out.astype(v.dtype), lse


@jax.custom_vjp
def _softmax_core(q: Array, k: Array, v: Array, mask: Array) -> Array:
    return _softmax_core_forward(q, k, v, mask)[0]


def _softmax_core_fwd(q, k, v, mask):
    out, lse = _softmax_core_forward(q, k, v, mask)
    return out, (q, k, v, mask, out, lse)


def _softmax_core_bwd(residuals, d_out):
    """Flash-attention's backward: the weights are recomputed from q, k and the saved log-sum-exp (one more
    q k^T product) instead of being stored by the forward and differentiated pass by pass through the softmax."""
    q, k, v, mask, out, lse = residuals
    logits = jnp.einsum("bkqd,bksd->bkqs", q, k, preferred_element_type=jnp.float32)
    p = jnp.where(mask, jnp.exp(logits - lse), 0.0)  # lse is 0 on fully masked rows, whose mask is all False
    d_out32 = d_out.astype(jnp.float32)
    d_v = jnp.einsum("bkqs,bkqd->bksd", p.astype(v.dtype), d_out, preferred_element_type=jnp.float32)
    d_p = jnp.einsum("bkqd,bksd->bkqs", d_out, v, preferred_element_type=jnp.float32)
    row = jnp.sum(d_out32 * out.astype(jnp.float32), axis=-1, keepdims=True)
    d_logits = (p * (d_p - row)).astype(q.dtype)
    d_q = jnp.einsum("bkqs,bksd->bkqd", d_logits, k, preferred_element_type=jnp.float32)
    d_k = jnp.einsum("bkqs,bkqd->bksd", d_logits, q, preferred_element_type=jnp.float32)
    return d_q.astype(q.dtype), d_k.astype(k.dtype), d_v.astype(v.dtype), None


_softmax_core.defvjp(_softmax_core_fwd, _softmax_core_bwd)


def _masked_softmax_attention(q: Array, k: Array, v: Array, mask: Array) -> Array:
    """Heads-major core: q [B, K, G*Tq, Dh] (query heads grouped onto KV head K), k/v [B, K, S, Dh],
    mask [B, 1, G*Tq, S] -> [B, K, G*Tq, Dh]. Masked entries get weight exactly 0 (so a fully masked row gives
    zeros), the scale is folded into q, which is T x smaller than the logits, and the gradient is flash
    attention's (`_softmax_core_bwd`)."""
    return _softmax_core(q * jnp.asarray(q.shape[-1] ** -0.5, q.dtype), k, v, mask)


def self_attention(q: Array, k: Array, v: Array, segment_ids: Array, causal: bool = True, block: int = 256) -> Array:
    """Self-attention within packed documents, q [B, T, H, Dh], k/v [B, T, KVH, Dh] -> [B, T, H, Dh].

    Same numbers as `dot_product_attention` with the (causal &) segment mask, computed faster on CPU:
      * heads-major layouts, so both matmuls are plain batched GEMMs (no transposes of the [T, S] logits);
      * causal: query blocks of `block` rows attend only the keys up to their last row, so the blocks above the
        diagonal (nearly half the logits) are never computed, and each block's logits stay small.
    """
    b, t, h, dh = q.shape
    kvh = k.shape[2]
    g = h // kvh
    qh = q.reshape(b, t, kvh, g, dh).transpose(0, 2, 3, 1, 4)  # [B, K, G, T, Dh]
    kh, vh = k.transpose(0, 2, 1, 3), v.transpose(0, 2, 1, 3)  # [B, K, T, Dh]
    outs = []
    blocked = causal and t > block
    for start in range(0, t, block) if blocked else [0]:
        end = min(start + block, t) if blocked else t
        keys = end if causal else t
        mask = (segment_ids[:, start:end, None] == segment_ids[:, None, :keys]) & (segment_ids[:, None, :keys] > 0)
        if causal:
            mask = mask & (jnp.arange(end)[None, :] <= jnp.arange(start, end)[:, None])[None]
        mask = jnp.broadcast_to(mask[:, None], (b, g, end - start, keys)).reshape(b, 1, g * (end - start), keys)
        qb = qh[:, :, :, start:end].reshape(b, kvh, g * (end - start), dh)
        out = _masked_softmax_attention(qb, kh[:, :, :keys], vh[:, :, :keys], mask)
        outs.append(out.reshape(b, kvh, g, end - start, dh))
    out = outs[0] if len(outs) == 1 else jnp.concatenate(outs, axis=3)
    return out.transpose(0, 3, 1, 2, 4).reshape(b, t, h, dh)


ATTENTION_KINDS = ("xla", "cudnn")


def fused_self_attention(q: Array, k: Array, v: Array, segment_ids: Array, causal: bool = True,
                         implementation: str | None = "cudnn") -> Array:
    """`self_attention` through `jax.nn.dot_product_attention` (`implementation='cudnn'`: cuDNN's fused flash
    attention on an NVIDIA GPU, bf16/fp16 only); the packed-document mask goes in as its `mask`, shared by the heads.
    `implementation=None` is XLA's own lowering of the same call (what the CPU tests compare)."""
    mask = segment_mask(segment_ids, segment_ids)[:, None]
    return jax.nn.dot_product_attention(q, k, v, mask=mask, is_causal=causal, implementation=implementation)


# ----------------------------------------------------------------------------------------------------------------
# Attention
# ----------------------------------------------------------------------------------------------------------------
class Attention(nn.Module):
    """Multi-head self-attention with grouped KV heads, optional qkv bias and RoPE, and an explicit KV cache.

    Full sequence: the mask is causal (if `causal`) and stays inside each packed document (`segment_ids`).
    decode=True: keys/values are written into the 'cache' collection at the cache index and the queries attend
    every cached key up to their own index within the same segment. `init(..., decode=True)` on an input of the
    cache's length creates the cache (zeros); prefill and one-token steps then both go through `decode=True`.
    """

    num_heads: int
    num_kv_heads: int
    head_dim: int
    qkv_bias: bool = False
    out_bias: bool = False
    use_rope: bool = True
    rope_theta: float = 10000.0
    causal: bool = True
    axes: str = "decoder"
    implementation: str = "xla"  # ATTENTION_KINDS: 'cudnn' = `fused_self_attention` on an NVIDIA GPU
    dtype: DType = jnp.float32

    def _proj(self, x: Array, n_heads: int, heads_axis: str, name: str) -> Array:
        a = AXES[self.axes]
        return Projection(
            (n_heads, self.head_dim), (a["embed"], heads_axis, a["head_dim"]), use_bias=self.qkv_bias,
            dtype=self.dtype, name=name,
        )(x)

    @nn.compact
    def __call__(
        self,
        x: Array,
        *,
        positions: Array | None = None,
        segment_ids: Array | None = None,
        decode: bool = False,
    ) -> Array:
        """x [B, T, D]; positions / segment_ids int [B, T] (defaults: 0..T-1 and one document)."""
        a = AXES[self.axes]
        b, t, width = x.shape
        positions, segment_ids = default_layout(positions, segment_ids, b, t)

        q = self._proj(x, self.num_heads, a["heads"], "q_proj")
        k = self._proj(x, self.num_kv_heads, a["kv_heads"], "k_proj")
        v = self._proj(x, self.num_kv_heads, a["kv_heads"], "v_proj")
        if self.use_rope:
            sin, cos = rope_sin_cos(positions, self.head_dim, self.rope_theta)
            q, k = apply_rope(q, sin, cos), apply_rope(k, sin, cos)
        q = constrain(q, "act_batch", "act_len", "act_heads", None)

        if decode:
            out = self._cached_attention(q, k, v, segment_ids)
        elif self.implementation == "cudnn":
            out = fused_self_attention(q, k, v, segment_ids, causal=self.causal)
        else:
            out = self_attention(q, k, v, segment_ids, causal=self.causal)

        return Projection(
            width, (a["heads"], a["head_dim"], a["embed"]), in_ndim=2, use_bias=self.out_bias, dtype=self.dtype,
            name="o_proj",
        )(out)

    def _cached_attention(self, q: Array, k: Array, v: Array, segment_ids: Array) -> Array:
        """Write k/v at the cache index, attend to everything cached so far (causally, same segment)."""
        cached = update_kv_cache(self, k, v, segment_ids)
        if cached is None:  # init call: the cache is created at the input's length; nothing to attend yet.
            return dot_product_attention(q, k, v, segment_mask(segment_ids, segment_ids))
        keys, values, mask, _ = cached
        return dot_product_attention(q, keys, values, mask)


def update_kv_cache(
    module: nn.Module, k: Array, v: Array, segment_ids: Array
) -> tuple[Array, Array, Array, Array] | None:
    """The KV-cache protocol of every attention module: write k/v [B, t, KVH, Dh] into `module`'s 'cache'
    collection at its index and return (keys, values, mask [B, t, S], start index). On the init call, which creates
    the cache at the input's length, returns None."""
    initialized = module.has_variable("cache", "key")
    b, t = k.shape[:2]
    key = module.variable("cache", "key", jnp.zeros, k.shape, k.dtype)
    value = module.variable("cache", "value", jnp.zeros, v.shape, v.dtype)
    segments = module.variable("cache", "segment_ids", jnp.zeros, segment_ids.shape, jnp.int32)
    index = module.variable("cache", "index", lambda: jnp.array(0, jnp.int32))
    if not initialized:
        return None
    start = index.value
    key.value = jax.lax.dynamic_update_slice(key.value, k.astype(key.value.dtype), (0, start, 0, 0))
    value.value = jax.lax.dynamic_update_slice(value.value, v.astype(value.value.dtype), (0, start, 0, 0))
    segments.value = jax.lax.dynamic_update_slice(segments.value, segment_ids.astype(jnp.int32), (0, start))
    index.value = start + t
    length = key.value.shape[1]
    q_index = jnp.broadcast_to(start + jnp.arange(t), (b, t))
    k_index = jnp.broadcast_to(jnp.arange(length), (b, length))
    mask = causal_mask(q_index, k_index) & segment_mask(segment_ids, segments.value)
    return key.value, value.value, mask, start


# ----------------------------------------------------------------------------------------------------------------
# MLPs
# ----------------------------------------------------------------------------------------------------------------
ACTIVATIONS: dict[str, Callable[[Array], Array]] = {
    "silu": nn.silu,
    "gelu": lambda x: nn.gelu(x, approximate=False),
    "gelu_tanh": lambda x: nn.gelu(x, approximate=True),
    "quick_gelu": lambda x: x * nn.sigmoid(1.702 * x),
}


class Mlp(nn.Module):
    """Gated (SwiGLU: down(act(gate(x)) * up(x))) or plain (fc2(act(fc1(x)))) feed-forward block."""

    hidden_dim: int
    gated: bool = True
    activation: str = "silu"
    use_bias: bool = False
    axes: str = "decoder"
    dtype: DType = jnp.float32

    def _dense(self, x: Array, features: int, in_axis: str, out_axis: str, name: str) -> Array:
        return nn.Dense(
            features,
            use_bias=self.use_bias,
            dtype=self.dtype,
            kernel_init=with_axes(nn.initializers.lecun_normal(), in_axis, out_axis),
            bias_init=with_axes(nn.initializers.zeros, out_axis),
            name=name,
        )(x)

    @nn.compact
    def __call__(self, x: Array) -> Array:
        a = AXES[self.axes]
        act = ACTIVATIONS[self.activation]
        if self.gated:
            h = act(self._dense(x, self.hidden_dim, a["embed"], a["mlp"], "gate_proj"))
            h = h * self._dense(x, self.hidden_dim, a["embed"], a["mlp"], "up_proj")
            name_out = "down_proj"
        else:
            h = act(self._dense(x, self.hidden_dim, a["embed"], a["mlp"], "fc1"))
            name_out = "fc2"
        h = constrain(h, "act_batch", "act_len", "act_mlp")
        return self._dense(h, x.shape[-1], a["mlp"], a["embed"], name_out)
