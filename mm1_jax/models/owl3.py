"""The mPLUG-Owl3 model: SigLIP encoder -> `vision2text_model` projector -> Qwen2 decoder with hyper layers.

Images never occupy the token sequence: each image (a crop or the global view of a cut image) has one `<|image|>`
placeholder token, and the hyper layers read its features (mPLUG-Owl3, arXiv 2408.04840, Sec. 3 "Hyper Attention
Transformer Block"; the release's `modeling_mplugowl3.py` in X-PLUG/mPLUG-Owl). The encoder features are the
second-to-last SigLIP layer's output without the final norm (`vit.OWL3_FEATURES`); the projector is one Linear
(release 240728) or Linear-GELU-Linear (release 241101): `projector_depth` 1 or 2.

Images are passed flat, [N, H, W, 3], in the order their placeholders appear in the batch (row by row): uint8
pixels, normalised on the device with the encoder's (SigLIP's) statistics by `mm1.normalize_pixels`, or float pixels
taken as normalised already. In a batch of B rows every row's hyper layers see the N images but only attend to
those whose placeholder is in the row.

The config (`config.model` with kind 'owl3'; `mm1_jax.models.build_model` builds it, `registry.OWL3_FIELDS`):
  kind             'owl3'
  encoder          ViT fields (`VIT_PRESETS['siglip_so400m14_384']` for the release)
  projector_depth  1 (240728) or 2 (241101)
  decoder          `Decoder` fields (Qwen2: qkv_bias=True) with `hyper_layers`: zero-based decoder layer indices
                   (the released config.json's one-based [1, 9, 17, 25] -> 0, 8, 16, 24)
  image_token_id   the tokenizer's `<|image|>` id (None: pass it at call time)
  dtype            'float32' / 'bfloat16'
Defaults of the fields a config leaves out: `mm1_jax.models.config`.
"""
from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from mm1_jax.models import vit
from mm1_jax.models.decoder import Decoder
from mm1_jax.models.layers import Array
from mm1_jax.models.mm1 import encoder_norm, normalize_pixels


def rows_of_images(is_placeholder: Array, features: Array) -> tuple[Array, Array]:
    """Flat image features [N, Lv, D] -> per-row images [B, N, Lv, D] and image_index [B, N] (-1: not this row).

    Image n belongs to the n-th placeholder of the batch in row-major order.
    """
    b, t = is_placeholder.shape
    n = features.shape[0]
    flat = jnp.nonzero(is_placeholder.reshape(-1), size=n, fill_value=-1)[0]
    row = jnp.where(flat >= 0, flat // t, -1)
    index = jnp.where(row[None, :] == jnp.arange(b)[:, None], (flat % t)[None, :], -1).astype(jnp.int32)
    return jnp.broadcast_to(features[None], (b,) + features.shape), index


def check_placeholder_count(tokens: Any, num_images: int, image_token_id: int) -> None:
    """One sentence when the placeholders and the images disagree (skipped while tracing: nothing to count)."""
    if isinstance(tokens, jax.core.Tracer):
        return
    count = int(np.sum(np.asarray(tokens) == image_token_id))
    if count != num_images:
        raise ValueError(f"input_ids hold {count} image placeholder tokens (id {image_token_id}) but {num_images} "
                         f"images were given; each image needs exactly one placeholder, in the same order.")


class Owl3(nn.Module):
    """mPLUG-Owl3. Submodules 'encoder', 'vision2text', 'decoder' (a `Decoder` with hyper layers). Built by
    `mm1_jax.models.build_model(config.model)` for model.kind 'owl3'."""

    encoder: nn.Module
    vision2text: nn.Module
    decoder: Decoder
    image_token_id: int | None = None

    def encode_images(self, images: Array) -> Array:
        """[N, H, W, 3] pixels (uint8, or float already normalised) -> [N, Lv, D] projected features."""
        return self.vision2text(self.encoder(normalize_pixels(images, encoder_norm(self.encoder)))["features"])

    def __call__(self, tokens: Array, images: Array | None = None, *, image_token_id: int | None = None,
                 positions: Array | None = None, segment_ids: Array | None = None, decode: bool = False,
                 return_hidden_states: bool = False) -> dict[str, Array]:
        """{'logits' [B, T, V] float32}. With decode=True pass images on the prefill call only (see Decoder)."""
        kwargs = dict(positions=positions, segment_ids=segment_ids, decode=decode,
                      return_hidden_states=return_hidden_states)
        if images is None or images.shape[0] == 0:
            return self.decoder(tokens, **kwargs)
        token_id = self.image_token_id if image_token_id is None else image_token_id
        if token_id is None:
            raise ValueError("image_token_id is not set in the model config; pass the <|image|> id explicitly.")
        check_placeholder_count(tokens, images.shape[0], token_id)
        row_images, index = rows_of_images(tokens == token_id, self.encode_images(images))
        return self.decoder(tokens, images=row_images, image_index=index, **kwargs)


def tiny_owl3_config(vocab_size: int = 128, image_size: int = 28, patch_size: int = 14) -> ml_collections.ConfigDict:
    """A CPU-sized Owl3 (tests, notebooks): 2x2 patches per image, 4 decoder layers, hyper layers 1 and 3."""
    encoder = {**vit.FIELD_DEFAULTS, **vit.OWL3_FEATURES}
    encoder.update(style="siglip", image_size=image_size, patch_size=patch_size, width=32, depth=3, num_heads=2,
                   mlp_dim=64, norm_eps=1e-6)
    decoder = dict(vocab_size=vocab_size, width=64, depth=4, num_heads=4, num_kv_heads=2, head_dim=16, mlp_dim=96,
                   rope_theta=1e6, qkv_bias=True, tie_embeddings=False, norm_eps=1e-6, hyper_layers=(1, 3))
    return ml_collections.ConfigDict(dict(kind="owl3", encoder=vit.with_style_defaults(encoder), projector_depth=1,
                                          decoder=decoder, image_token_id=vocab_size - 1, dtype="float32"))
