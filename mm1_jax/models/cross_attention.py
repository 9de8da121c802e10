"""Flamingo-style gated cross-attention block: the pre- and post-cross-attention rows of mPLUG-Owl3's Table 8.

mPLUG-Owl3 (arXiv 2408.04840v2, Sec. 4.4, Table 8) compares four ways for the language model to read the images:
image tokens concatenated into the sequence, a cross-attention block placed before ('pre') or after ('post') a
decoder layer's self-attention, and the hyper attention block (cross-attention in parallel with self-attention,
`hyper_attention`). The cross-attention block is Flamingo's "GATED XATTN-DENSE" (Alayrac et al., arXiv 2204.14198,
Sec. 2.2 and Fig. 4; the same block as `GatedCrossAttentionBlock` in mlfoundations/open_flamingo's `helpers.py`):

    y = x + tanh(alpha_xattn) * o_proj(attention(q_proj(attn_norm(x)), k_proj(image_norm(V)), v_proj(image_norm(V))))
    out = y + tanh(alpha_dense) * FFN(mlp_norm(y))

with alpha_xattn, alpha_dense one learned scalar each, initialised at 0, so a new block leaves the language model's
output unchanged at initialisation. The block runs on the decoder's text states x [B, T, D] and the images' features
V [B, M, Lv, D] (connector outputs at the decoder width). (The stored copies of the mPLUG-Owl3 paper we could search
did not hold the Table 8 text itself; the placement follows the study's description of the rows, the block Flamingo.)

Placement in a decoder layer (`decoder.DecoderLayer.cross_attention`):
  'pre'   cross block -> self-attention sub-layer -> FFN sub-layer (Flamingo: the block sits before each LM layer)
  'post'  self-attention sub-layer -> cross block -> FFN sub-layer

What is ours, not Flamingo's (the decoder family's parts, so the block matches the layers around it):
  * norms are the decoder's RMSNorm (Flamingo: LayerNorm): `attn_norm` on the text before the queries, `mlp_norm`
    before the FFN, and `image_norm` on the image features before the keys/values (Flamingo's media come normed out
    of its Perceiver Resampler; ours come straight from the connector, as the hyper layers' do, which norm them too);
  * the FFN is the decoder's dense SwiGLU of width `mlp_dim` (Flamingo: GELU MLP of 4 x width);
  * grouped KV heads as the decoder's (`num_kv_heads`), no biases and no rotary embedding (as Flamingo's).
  * which images a token sees is the hyper layers' rule (`hyper_attention.image_visibility`): every image whose
    placeholder comes strictly earlier in the same document (Flamingo's default sees only the latest image), so Table
    8's rows differ only in the block's structure. A token that sees no image gets no cross-attention output (zero
    before o_proj), and the gated FFN still runs on every token, as in Flamingo.

Images arrive as for the hyper layers: one placeholder token per image in the sequence, features passed separately
with `image_index` [B, M] (the placeholder's sequence index, -1 = absent). With `decode=True` the image keys/values
are cached at prefill (the call that passes images) and reused by every later one-token step; the block keeps its own
count of the tokens seen so far, which places a step's token for the visibility rule. The images' placeholders must
lie in the prefill call (as they do in a prompt), which reads each image's document from its placeholder.
"""
from __future__ import annotations

from typing import Any, Sequence

import flax.linen as nn
import jax.numpy as jnp

from mm1_jax.models import layers
from mm1_jax.models.hyper_attention import check_hyper_layers, image_visibility
from mm1_jax.models.layers import Array, Projection, constrain, with_axes

POSITIONS = ("pre", "post")  # decoder.cross_attention_position: the block before or after self-attention


class GatedCrossAttention(nn.Module):
    """Flamingo's gated cross-attention + gated FFN ("GATED XATTN-DENSE") over image features: x [B, T, D] -> the
    updated x.

    Parameters: attn_norm, image_norm, q_proj, k_proj, v_proj, o_proj, attn_gate (scalar), mlp_norm, mlp, mlp_gate
    (scalar); the gates start at 0.
    """

    num_heads: int
    num_kv_heads: int
    head_dim: int
    mlp_dim: int
    norm_eps: float = 1e-6
    dtype: Any = jnp.float32

    def _heads(self, x: Array, n: int, axis: str, name: str) -> Array:
        return Projection((n, self.head_dim), ("embed", axis, "head_dim"), dtype=self.dtype, name=name)(x)

    def _gate(self, name: str) -> Array:
        alpha = self.param(name, with_axes(nn.initializers.zeros), (), jnp.float32)  # a scalar: no axes to name
        return jnp.tanh(alpha).astype(self.dtype)

    @nn.compact
    def __call__(self, x: Array, images: Array | None, image_index: Array | None, *, segment_ids: Array,
                 decode: bool = False) -> Array:
        """x [B, T, D]; images [B, M, Lv, D] (un-normed) with image_index [B, M], or None; segment_ids [B, T]."""
        b, t, width = x.shape
        attn_gate, mlp_gate = self._gate("attn_gate"), self._gate("mlp_gate")
        image_kv = None
        if images is not None:
            image_kv = self._image_keys_values(images, image_index, segment_ids)
        q_index = jnp.broadcast_to(jnp.arange(t), (b, t))
        if decode:
            q_index = q_index + self._advance(t)
            image_kv = self._image_cache(image_kv)
        if image_kv is not None:  # text-only calls (no images, nothing cached) have no cross-attention term
            k, v, index, segment = image_kv
            lv = k.shape[1] // index.shape[1]
            h = layers.RMSNorm(self.norm_eps, dtype=self.dtype, name="attn_norm")(x)
            q = constrain(self._heads(h, self.num_heads, "heads", "q_proj"), "act_batch", "act_len", "act_heads", None)
            visible = image_visibility(q_index, segment_ids, index, segment)  # [B, T, M]
            # a token that sees no image: a fully masked row, zeros (`layers.dot_product_attention`)
            out = layers.dot_product_attention(q, k, v, jnp.repeat(visible, lv, axis=-1)).astype(self.dtype)
            out = Projection(width, ("heads", "head_dim", "embed"), in_ndim=2, dtype=self.dtype, name="o_proj")(out)
            x = x + attn_gate * out
        h = layers.RMSNorm(self.norm_eps, dtype=self.dtype, name="mlp_norm")(x)
        h = layers.Mlp(self.mlp_dim, gated=True, activation="silu", dtype=self.dtype, name="mlp")(h)
        return constrain(x + mlp_gate * h, "act_batch", "act_len", "act_embed")

    def _image_keys_values(self, images: Array, image_index: Array, segment_ids: Array) -> tuple:
        """Keys and values [B, M*Lv, KVH, Dh] of the normed images, the images' index and segment [B, M]."""
        b, m, lv, _ = images.shape
        images = layers.RMSNorm(self.norm_eps, dtype=self.dtype, name="image_norm")(images)
        k = self._heads(images, self.num_kv_heads, "kv_heads", "k_proj").reshape(b, m * lv, -1, self.head_dim)
        v = self._heads(images, self.num_kv_heads, "kv_heads", "v_proj").reshape(b, m * lv, -1, self.head_dim)
        # each image's document: its placeholder's segment (0: absent)
        segment = jnp.where(image_index >= 0, jnp.take_along_axis(segment_ids, jnp.maximum(image_index, 0), axis=1), 0)
        return k, v, image_index.astype(jnp.int32), segment.astype(jnp.int32)

    def _advance(self, t: int) -> Array:
        """The sequence index of the call's first token: tokens seen by earlier decode calls (0 on the init call,
        which creates the cache, as `layers.update_kv_cache` counts)."""
        initialized = self.has_variable("cache", "index")
        index = self.variable("cache", "index", lambda: jnp.array(0, jnp.int32))
        if not initialized:
            return jnp.array(0, jnp.int32)
        start = index.value
        index.value = start + t
        return start

    def _image_cache(self, image_kv: tuple | None) -> tuple | None:
        """Store the image keys/values when a call brings images (prefill); read them back on later steps."""
        names = ("image_key", "image_value", "image_index", "image_segment")
        if image_kv is not None:
            for name, value in zip(names, image_kv):
                self.variable("cache", name, jnp.zeros, value.shape, value.dtype).value = value
            return image_kv
        if not self.has_variable("cache", "image_key"):
            return None  # text-only generation
        return tuple(self.get_variable("cache", name) for name in names)


def check_cross_attention(cross_layers: Sequence[int], position: Any, hyper_layers: Sequence[int], depth: int,
                          section: str = "decoder") -> None:
    """`section`.cross_attention_layers: zero-based indices in 0..depth-1, no repeats, none a hyper layer;
    `section`.cross_attention_position: 'pre' or 'post'. Else one sentence naming the field and value."""
    check_hyper_layers(cross_layers, depth, f"{section}.cross_attention_layers")
    if not isinstance(position, str) or position not in POSITIONS:
        raise ValueError(f"{section}.cross_attention_position={position!r} is not one of 'pre' (the cross-attention "
                         f"block before the layer's self-attention) or 'post' (after it).")
    shared = sorted(set(cross_layers) & set(hyper_layers or ()))
    if shared:
        raise ValueError(f"{section}.cross_attention_layers={list(cross_layers)} and {section}.hyper_layers="
                         f"{list(hyper_layers)} both hold layer {shared[0]}; a layer reads the images through one "
                         f"block, hyper attention or cross-attention.")
