"""mPLUG-Owl3 hyper attention: decoder layers whose attention also reads image features (REFERENCE.md, mPLUG-Owl3).

In a hyper layer the text states x and the image features V (already projected to the decoder width) share the
input RMSNorm. The text self-attention output S (per head, before o_proj) is mixed with a cross-attention output C
whose queries are the same post-RoPE text queries and whose keys/values come from `image_k_proj` / `image_v_proj`
(the released `v_kv_proj`, split into its key and value halves). Image keys get MI-RoPE: every token of image j sits
at position p_j + 1, where p_j is the position of its placeholder token. Token t sees image j only if the
placeholder comes strictly earlier (and, in packed rows, in the same document). A gate g = sigmoid(gate_proj(S))
(one Linear(Dh, Dh) shared by the heads) gives out = S (1 - g) + C g for tokens that see at least one image; the
others keep S. Images never enter the token sequence: one placeholder token marks where each image is.

Images are described per row by `image_index` [B, M]: the sequence index of image m's placeholder, -1 for an absent
image. With `decode=True` the image keys/values (post MI-RoPE) are cached at prefill (the call that passes images)
and reused by every later one-token step.

Also here: `HyperDecoder` (a Qwen2/Llama decoder whose `hyper_layers` are hyper layers, the others plain
`DecoderLayer`s) and the MM1 connector choice 'hyper_attention' (`HyperMM1`: images reach the decoder through the
hyper layers instead of filling slot tokens).
"""
from __future__ import annotations

from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from mm1_jax.models import connectors, layers
from mm1_jax.models.decoder import REMAT_POLICIES, Decoder, DecoderLayer
from mm1_jax.models.layers import Array, Projection, constrain
from mm1_jax.models.mm1 import MM1


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
            start = 0
            index = jnp.broadcast_to(jnp.arange(t), (b, t))
            mask = layers.segment_mask(segment_ids, segment_ids) & layers.causal_mask(index, index)
            self_out = layers.dot_product_attention(q, k, v, mask)

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
        """Keys (MI-RoPE applied) and values [B, M*Lv, KVH, Dh], and the images' index and segment [B, M]."""
        b, m, lv, _ = images.shape
        k = self._heads(images, self.num_kv_heads, "kv_heads", "image_k_proj", True).reshape(b, m * lv, -1,
                                                                                          self.head_dim)
        v = self._heads(images, self.num_kv_heads, "kv_heads", "image_v_proj", True).reshape(b, m * lv, -1,
                                                                                          self.head_dim)
        segment, position = image_slots(image_index, positions, segment_ids)
        sin, cos = layers.rope_sin_cos(jnp.repeat(position, lv, axis=1), self.head_dim, self.rope_theta)
        return layers.apply_rope(k, sin, cos), v, image_index.astype(jnp.int32), segment.astype(jnp.int32)

    def _mix(self, q: Array, self_out: Array, image_kv: tuple, q_index: Array, segment_ids: Array) -> Array:
        """S (1 - g) + C g where the token sees an image, S elsewhere."""
        k, v, index, segment = image_kv
        lv = k.shape[1] // index.shape[1]
        visible = image_visibility(q_index, segment_ids, index, segment)  # [B, T, M]
        cross = layers.dot_product_attention(q, k, v, jnp.repeat(visible, lv, axis=-1))
        gate = Projection(self.head_dim, ("head_dim", None), use_bias=True, dtype=self.dtype, name="gate_proj")
        g = jax.nn.sigmoid(gate(self_out).astype(jnp.float32)).astype(self.dtype)
        mixed = self_out * (1 - g) + cross.astype(self.dtype) * g
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


class HyperDecoderLayer(DecoderLayer):
    """A pre-norm Qwen2 block whose attention is `HyperAttention`; the input norm also normalises the images.

    Same fields as `DecoderLayer` (its FFN is always dense: `moe` stays None).
    """

    @nn.compact
    def __call__(self, x: Array, positions: Array, segment_ids: Array, decode: bool = False,
                 images: Array | None = None, image_index: Array | None = None):
        norm = layers.RMSNorm(self.norm_eps, dtype=self.dtype, name="input_norm")
        h = HyperAttention(self.num_heads, self.num_kv_heads, self.head_dim, self.qkv_bias, self.rope_theta,
                           dtype=self.dtype, name="attn")(
            norm(x), None if images is None else norm(images), image_index, positions=positions,
            segment_ids=segment_ids, decode=decode)
        x = x + h
        h = layers.RMSNorm(self.norm_eps, dtype=self.dtype, name="post_attn_norm")(x)
        x = x + layers.Mlp(self.mlp_dim, gated=True, activation="silu", dtype=self.dtype, name="mlp")(h)
        return constrain(x, "act_batch", "act_len", "act_embed"), None


def check_hyper_layers(hyper_layers: Sequence[int], depth: int, where: str = "decoder.hyper_layers") -> None:
    """Zero-based layer indices, each in 0..depth-1, no repeats; else one sentence naming the bad value."""
    for i in hyper_layers:
        if not isinstance(i, int) or isinstance(i, bool) or not 0 <= i < depth:
            raise ValueError(f"{where}={list(hyper_layers)} holds {i!r}, outside the decoder's layers 0..{depth - 1} "
                             f"(zero-based).")
    if len(set(hyper_layers)) != len(hyper_layers):
        raise ValueError(f"{where}={list(hyper_layers)} repeats a layer index.")


class HyperDecoder(Decoder):
    """`Decoder` whose layers at `hyper_layers` (zero-based) are hyper layers; same parameter layout otherwise.

    Layers are not scanned (the hyper layers differ from the others); `remat_policy` applies to every layer.
    """

    hyper_layers: tuple[int, ...] = ()

    def setup(self):
        if self.scan_layers:
            raise ValueError("decoder.scan_layers=True is not supported with hyper layers; set it to False.")
        check_hyper_layers(tuple(self.hyper_layers), self.depth)
        self.embedder = nn.Embed(self.vocab_size, self.width, name="embed_tokens",
                                 embedding_init=layers.with_axes(nn.initializers.normal(0.02), "vocab", "embed"))
        kwargs = dict(width=self.width, num_heads=self.num_heads, num_kv_heads=self.num_kv_heads,
                      head_dim=self.head_dim or self.width // self.num_heads, mlp_dim=self.mlp_dim,
                      rope_theta=self.rope_theta, qkv_bias=self.qkv_bias, norm_eps=self.norm_eps, dtype=self.dtype)
        remat = REMAT_POLICIES[self.remat_policy]
        stack = []
        for i in range(self.depth):
            cls = HyperDecoderLayer if i in self.hyper_layers else DecoderLayer
            if self.remat_policy != "none":
                cls = nn.remat(cls, policy=remat, static_argnums=(4,))
            stack.append(cls(**kwargs, name=f"layer_{i}"))
        self.layers = stack
        self.final_norm = layers.RMSNorm(self.norm_eps, dtype=self.dtype, name="final_norm")
        if not self.tie_embeddings:
            self.lm_head = nn.Dense(self.vocab_size, use_bias=False, dtype=self.dtype, name="lm_head",
                                    kernel_init=layers.with_axes(nn.initializers.normal(0.02), "embed", "vocab"))

    def __call__(self, tokens: Array | None = None, *, inputs_embeds: Array | None = None,
                 images: Array | None = None, image_index: Array | None = None, positions: Array | None = None,
                 segment_ids: Array | None = None, decode: bool = False, return_hidden_states: bool = False):
        """Logits [B, T, V]; `images` [B, M, Lv, D] in the decoder width with `image_index` [B, M] (see module doc).

        With decode=True, pass the images on the prefill call only; later steps read them from the cache.
        """
        x = self.embed(tokens) if inputs_embeds is None else inputs_embeds.astype(self.dtype)
        b, t = x.shape[:2]
        positions, segment_ids = layers.default_layout(positions, segment_ids, b, t)
        if images is not None:
            check_images(images, image_index, b)
            images = images.astype(self.dtype)
        x = constrain(x, "act_batch", "act_len", "act_embed")
        hidden = [x]
        for i, layer in enumerate(self.layers):
            if i in self.hyper_layers:
                x, _ = layer(x, positions, segment_ids, decode, images, image_index)
            else:
                x, _ = layer(x, positions, segment_ids, decode)
            hidden.append(x)
        x = self.final_norm(x)
        logits = self.embedder.attend(x.astype(jnp.float32)) if self.tie_embeddings else self.lm_head(x)
        out = {"logits": constrain(logits.astype(jnp.float32), "act_batch", "act_len", "vocab")}
        if return_hidden_states:
            out["hidden_states"] = tuple(hidden[:-1]) + (x,)
        return out


def check_images(images: Array, image_index: Array | None, batch: int) -> None:
    """Shapes of the image inputs of a hyper decoder: images [B, M, Lv, D], image_index [B, M]."""
    if image_index is None:
        raise ValueError("images were given to the hyper decoder without image_index (each image's placeholder).")
    if images.ndim != 4 or images.shape[0] != batch or tuple(image_index.shape) != tuple(images.shape[:2]):
        raise ValueError(f"hyper decoder images {tuple(images.shape)} and image_index {tuple(image_index.shape)} "
                         f"are not [B={batch}, M, Lv, D] and [B, M].")


# ----------------------------------------------------------------------------------------------------------------
# Hyper attention as an MM1 connector choice
# ----------------------------------------------------------------------------------------------------------------
def _validate_connector(cfg: ml_collections.ConfigDict, num_input_tokens: int) -> None:
    if cfg.get("num_tokens") != 1:
        raise ValueError(f"connector.num_tokens={cfg.get('num_tokens')!r} must be 1 for connector 'hyper_attention': "
                         "each image takes one placeholder token, its features reach the decoder by hyper attention.")
    if not cfg.get("hyper_layers"):
        raise ValueError("connector.hyper_layers must list the decoder layers (zero-based) that read the images.")
    depth = cfg.get("mlp_depth", 1)
    if not isinstance(depth, int) or depth < 1:
        raise ValueError(f"connector.mlp_depth={depth!r} must be an integer >= 1 for connector 'hyper_attention'.")


def _build_connector(cfg, *, in_dim, out_dim, num_input_tokens, dtype):
    """The projector Cv -> D keeping every patch token (`vision2text_model`: Linear, or Linear-GELU-Linear)."""
    return connectors.MlpProjector(out_dim, mlp_depth=cfg.get("mlp_depth", 1), dtype=dtype)


connectors.register_connector("hyper_attention", _build_connector, _validate_connector)


def placeholder_index(image_token_index: Array, num_images: int) -> Array:
    """[B, M]: sequence index of the slot token of image m (MM1 batches with K = 1), -1 where the row has none."""
    hit = image_token_index[:, :, None] == jnp.arange(num_images)[None, None, :]  # [B, T, M]
    return jnp.where(jnp.any(hit, axis=1), jnp.argmax(hit, axis=1), -1).astype(jnp.int32)


class HyperMM1(MM1):
    """MM1 with connector 'hyper_attention': encoder -> projector -> the decoder's hyper layers (no slot filling)."""

    def __call__(self, tokens: Array, *, images: Array | None = None, image_token_index: Array | None = None,
                 image_valid: Array | None = None, positions: Array | None = None, segment_ids: Array | None = None,
                 decode: bool = False, **unused: Any) -> dict[str, Array]:
        if images is None or images.shape[1] == 0:
            return self.decoder(tokens, positions=positions, segment_ids=segment_ids, decode=decode)
        b, m = images.shape[:2]
        if m > self.max_images:
            raise ValueError(f"images has {m} per row, more than model.max_images={self.max_images}.")
        if image_token_index is None:
            raise ValueError("images were given without image_token_index (where each image's placeholder is).")
        flat = images.reshape((b * m,) + images.shape[2:])
        embeds = self.connector(self.encoder(flat)["features"])
        embeds = embeds.reshape((b, m) + embeds.shape[1:])
        index = placeholder_index(image_token_index, m)
        if image_valid is not None:
            index = jnp.where(image_valid, index, -1)
        return self.decoder(tokens, images=embeds, image_index=index, positions=positions, segment_ids=segment_ids,
                            decode=decode)


def build_hyper_decoder(decoder_cfg: ml_collections.ConfigDict, hyper_layers: Sequence[int], dtype: Any,
                        where: str = "model.connector.hyper_layers") -> HyperDecoder:
    """A `HyperDecoder` from `config.model.decoder` fields plus zero-based `hyper_layers`."""
    check_hyper_layers(tuple(hyper_layers), decoder_cfg.depth, where)
    return HyperDecoder(**{**decoder_cfg.to_dict(), "dtype": dtype, "hyper_layers": tuple(hyper_layers)})
