"""mPLUG-Owl3 hyper attention: the attention block of a hyper layer, whose text tokens also read image features.

The math is the "Hyper Attention Transformer Block" of mPLUG-Owl3 (arXiv 2408.04840, Sec. 3) as the release computes
it (`x_sdpa` in X-PLUG/mPLUG-Owl's `modeling_hyper_qwen2.py`). In a hyper layer the text states x and the image
features V (already projected to the decoder width) share the input RMSNorm. The text self-attention output S (per
head, before o_proj) is mixed with a cross-attention output C whose queries are the same post-RoPE text queries and
whose keys/values come from `image_k_proj` / `image_v_proj` (the released `v_kv_proj`, split into its key and value
halves). Image keys get MI-RoPE: every token of image j sits at position p_j + 1, where p_j is the position of its
placeholder token. Token t sees image j only if the placeholder comes strictly earlier (and, in packed rows, in the
same document). A gate g = sigmoid(gate_proj(S)) (one Linear(Dh, Dh) shared by the heads) gives
out = S (1 - g) + C g for tokens that see at least one image; the others keep S. Images never enter the token
sequence: one placeholder token marks where each image is.

Three switches ablate the block's parts (mPLUG-Owl3 v2 Table 10: gate, shared LayerNorm, MI-Rope added one at a
time); each defaults to on, the released model. They are `Decoder` fields `hyper_gate`, `hyper_shared_norm`,
`hyper_mi_rope`, handed to every hyper layer:
  gate=False        no gate_proj; out = S + C for tokens that see an image, S elsewhere: the ablation's un-gated
                    variant; the paper's text does not give the formula, we add the two (per head, before o_proj).
  shared_norm=False (`decoder.DecoderLayer.hyper_shared_norm`) the images get their own RMSNorm `image_norm`
                    (initialised as input_norm) instead of the layer's input_norm.
  mi_rope=False     image keys get no rotary embedding (position-free keys); the text queries keep theirs.

Images are described per row by `image_index` [B, M]: the sequence index of image m's placeholder, -1 for an absent
image. With `decode=True` the image keys/values (post MI-RoPE) are cached at prefill (the call that passes images)
and reused by every later one-token step.

The decoder layer that uses this block (a `decoder.DecoderLayer` with hyper=True, dense or MoE FFN) lives in
`decoder.py`, which imports this module (never the other way round).
"""
from __future__ import annotations

from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from mm1_jax.models import layers
from mm1_jax.models.layers import Array, Projection, constrain


# ----------------------------------------------------------------------------------------------------------------
# Masks and positions for the image keys
# ----------------------------------------------------------------------------------------------------------------
def image_slots(image_index: Array, positions: Array, segment_ids: Array) -> tuple[Array, Array]:
    """(segment [B, M], MI-RoPE position [B, M]) of each image from its placeholder's index; segment 0 = absent."""
    safe = jnp.maximum(image_index, 0)
    present = image_index >= 0
    segment = jnp.where(present, jnp.take_along_axis(segment_ids, safe, axis=1), 0)
    position = jnp.take_along_axis(positions, safe, axis=1) + 1
    return segment, position


def image_visibility(q_index: Array, q_segments: Array, image_index: Array, image_segment: Array) -> Array:
    """[B, T, M]: token at sequence index q_index sees image m (placeholder strictly earlier, same document)."""
    earlier = (image_index[:, None, :] >= 0) & (image_index[:, None, :] < q_index[:, :, None])
    return earlier & (image_segment[:, None, :] == q_segments[:, :, None]) & (q_segments[:, :, None] > 0)


# ----------------------------------------------------------------------------------------------------------------
# The hyper attention block
# ----------------------------------------------------------------------------------------------------------------
class HyperAttention(nn.Module):
    """GQA self-attention (Qwen2 layout, names as `layers.Attention`) plus gated cross-attention to image features."""

    num_heads: int
    num_kv_heads: int
    head_dim: int
    qkv_bias: bool = True
    rope_theta: float = 10000.0
    dtype: Any = jnp.float32
    gate: bool = True  # False: out = S + C where the token sees an image (no gate_proj)
    mi_rope: bool = True  # False: image keys get no rotary embedding

    def _heads(self, x: Array, n: int, axis: str, name: str, bias: bool) -> Array:
        return Projection((n, self.head_dim), ("embed", axis, "head_dim"), use_bias=bias, dtype=self.dtype,
                          name=name)(x)

    @nn.compact
    def __call__(self, x: Array, images: Array | None, image_index: Array | None, *, positions: Array,
                 segment_ids: Array, decode: bool = False) -> Array:
        """x [B, T, D] and images [B, M, Lv, D] (both normed); image_index [B, M]; positions/segment_ids [B, T]."""
        b, t, width = x.shape
        q = self._heads(x, self.num_heads, "heads", "q_proj", self.qkv_bias)
        k = self._heads(x, self.num_kv_heads, "kv_heads", "k_proj", self.qkv_bias)
        v = self._heads(x, self.num_kv_heads, "kv_heads", "v_proj", self.qkv_bias)
        sin, cos = layers.rope_sin_cos(positions, self.head_dim, self.rope_theta)
        q, k = layers.apply_rope(q, sin, cos), layers.apply_rope(k, sin, cos)
        q = constrain(q, "act_batch", "act_len", "act_heads", None)

        if decode:
            start, self_out = self._cached_self_attention(q, k, v, segment_ids)
        else:
            start, self_out = 0, layers.self_attention(q, k, v, segment_ids, causal=True)

        image_kv = None
        if images is not None:
            image_kv = self._image_keys_values(images, image_index, positions, segment_ids)
        if decode:
            image_kv = self._image_cache(image_kv)
        out = self_out
        if image_kv is not None:
            out = self._mix(q, self_out, image_kv, start + jnp.broadcast_to(jnp.arange(t), (b, t)), segment_ids)
        return Projection(width, ("heads", "head_dim", "embed"), in_ndim=2, dtype=self.dtype, name="o_proj")(out)

    def _image_keys_values(self, images: Array, image_index: Array, positions: Array, segment_ids: Array):
        """Keys (MI-RoPE applied unless mi_rope=False) and values [B, M*Lv, KVH, Dh], the images' index and segment
        [B, M]."""
        b, m, lv, _ = images.shape
        k = self._heads(images, self.num_kv_heads, "kv_heads", "image_k_proj", True).reshape(b, m * lv, -1,
                                                                                          self.head_dim)
        v = self._heads(images, self.num_kv_heads, "kv_heads", "image_v_proj", True).reshape(b, m * lv, -1,
                                                                                          self.head_dim)
        segment, position = image_slots(image_index, positions, segment_ids)
        if self.mi_rope:
            sin, cos = layers.rope_sin_cos(jnp.repeat(position, lv, axis=1), self.head_dim, self.rope_theta)
            k = layers.apply_rope(k, sin, cos)
        return k, v, image_index.astype(jnp.int32), segment.astype(jnp.int32)

    def _mix(self, q: Array, self_out: Array, image_kv: tuple, q_index: Array, segment_ids: Array) -> Array:
        """S (1 - g) + C g (gate=False: S + C) where the token sees an image, S elsewhere."""
        k, v, index, segment = image_kv
        lv = k.shape[1] // index.shape[1]
        visible = image_visibility(q_index, segment_ids, index, segment)  # [B, T, M]
        cross = layers.dot_product_attention(q, k, v, jnp.repeat(visible, lv, axis=-1)).astype(self.dtype)
        if self.gate:
            gate = Projection(self.head_dim, ("head_dim", None), use_bias=True, dtype=self.dtype, name="gate_proj")
            g = jax.nn.sigmoid(gate(self_out).astype(jnp.float32)).astype(self.dtype)
            mixed = self_out * (1 - g) + cross * g
        else:  # the ablation's un-gated variant; the paper's text does not give the formula, we add the two
            mixed = self_out + cross
        return jnp.where(jnp.any(visible, axis=-1)[:, :, None, None], mixed, self_out)

    def _cached_self_attention(self, q: Array, k: Array, v: Array, segment_ids: Array) -> tuple[Any, Array]:
        """Same cache as `layers.Attention` (`layers.update_kv_cache`); also returns the cache's start index."""
        cached = layers.update_kv_cache(self, k, v, segment_ids)
        if cached is None:
            return 0, layers.dot_product_attention(q, k, v, layers.segment_mask(segment_ids, segment_ids))
        keys, values, mask, start = cached
        return start, layers.dot_product_attention(q, keys, values, mask)

    def _image_cache(self, image_kv: tuple | None) -> tuple | None:
        """Store the image keys/values when a call brings images (prefill); read them back on later steps."""
        names = ("image_key", "image_value", "image_index", "image_segment")
        if image_kv is not None:
            for name, value in zip(names, image_kv):
                var = self.variable("cache", name, jnp.zeros, value.shape, value.dtype)
                var.value = value
            return image_kv
        if not self.has_variable("cache", "image_key"):
            return None  # text-only generation
        return tuple(self.get_variable("cache", name) for name in names)


def check_hyper_layers(hyper_layers: Sequence[int], depth: int, where: str = "decoder.hyper_layers") -> None:
    """Zero-based layer indices, each in 0..depth-1, no repeats; else one sentence naming the bad value."""
    if not isinstance(hyper_layers, (tuple, list)):
        raise ValueError(f"{where}={hyper_layers!r} must be a tuple of zero-based layer indices, e.g. (1, 3).")
    for i in hyper_layers:
        if not isinstance(i, int) or isinstance(i, bool) or not 0 <= i < depth:
            raise ValueError(f"{where}={list(hyper_layers)} holds {i!r}, outside the decoder's layers 0..{depth - 1} "
                             f"(zero-based).")
    if len(set(hyper_layers)) != len(hyper_layers):
        raise ValueError(f"{where}={list(hyper_layers)} repeats a layer index.")


def check_images(images: Array, image_index: Array | None, batch: int) -> None:
    """Shapes of the image inputs of a hyper decoder: images [B, M, Lv, D], image_index [B, M]."""
    if image_index is None:
        raise ValueError("images were given to the hyper decoder without image_index (each image's placeholder).")
    if images.ndim != 4 or images.shape[0] != batch or tuple(image_index.shape) != tuple(images.shape[:2]):
        raise ValueError(f"hyper decoder images {tuple(images.shape)} and image_index {tuple(image_index.shape)} "
                         f"are not [B={batch}, M, Lv, D] and [B, M].")
