"""MM1: image encoder -> connector -> decoder, over packed interleaved image-text sequences.

A batch (produced by `mm1_jax.data`) holds, for B rows of T tokens and up to M images per row:
  tokens [B, T] int32          input ids; every image occupies K consecutive slot tokens
  image_token_index [B, T]     for a slot token, m*K + k (image m of the row, its k-th embedding); -1 elsewhere
  images [B, M, H, W, 3]       normalised pixels; image_valid [B, M] marks the real ones
  segment_ids [B, T]           1, 2, ... per packed document, 0 = padding
  positions [B, T]             restart at 0 in every document
  targets, loss_weights [B, T] next tokens and their weights (0 on image slots, padding, non-answers in SFT)
Each image goes through encoder -> connector to K embeddings that replace the slot tokens' embeddings. The parts
are submodules named 'encoder', 'connector' and 'decoder', so the trainer can freeze any of them by name.
"""
from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from mm1_jax.models.decoder import token_loss
from mm1_jax.models.layers import Array, constrain


def fill_image_slots(text_embeds: Array, image_embeds: Array, image_token_index: Array) -> Array:
    """Replace slot embeddings: text [B, T, D], images [B, M*K, D], index [B, T] (-1 = keep text)."""
    gathered = jnp.take_along_axis(image_embeds, jnp.maximum(image_token_index, 0)[..., None], axis=1)
    return jnp.where((image_token_index >= 0)[..., None], gathered.astype(text_embeds.dtype), text_embeds)


class MM1(nn.Module):
    """The MM1 model. Built by `mm1_jax.models.build_model(config.model)`."""

    encoder: nn.Module
    connector: nn.Module
    decoder: nn.Module
    max_images: int = 16

    def encode_images(self, images: Array) -> Array:
        """[B, M, H, W, 3] pixels -> [B, M*K, D] image embeddings (encoder features -> connector)."""
        b, m = images.shape[:2]
        flat = images.reshape((b * m,) + images.shape[2:])
        features = self.encoder(flat)["features"]
        embeds = self.connector(features)  # [B*M, K, D]
        k = embeds.shape[1]
        return constrain(embeds.reshape(b, m * k, embeds.shape[-1]), "act_batch", "act_len", "act_embed")

    def __call__(
        self,
        tokens: Array,
        *,
        images: Array | None = None,
        image_token_index: Array | None = None,
        positions: Array | None = None,
        segment_ids: Array | None = None,
        decode: bool = False,
        **unused: Any,
    ) -> dict[str, Array]:
        """Logits [B, T, V] (float32). Extra batch fields (targets, weights, image_valid...) are ignored."""
        x = self.decoder.embed(tokens)
        if images is not None and images.shape[1] > self.max_images:
            raise ValueError(f"images has {images.shape[1]} per row, more than model.max_images={self.max_images}.")
        if images is not None and images.shape[1] > 0:
            if image_token_index is None:
                raise ValueError("images were given without image_token_index (which slot each embedding fills).")
            x = fill_image_slots(x, self.encode_images(images), image_token_index)
        return self.decoder(inputs_embeds=x, positions=positions, segment_ids=segment_ids, decode=decode)

    def loss(self, batch: dict[str, Array]) -> dict[str, Array]:
        """Forward + weighted next-token loss: {'loss' (scalar, + the MoE auxiliary loss), 'lm_loss',
        'token_loss' [B, T], 'logits'} and, for MoE decoders, 'moe_loss' and per-layer 'moe_stats'."""
        out = self(**batch)
        per_token, mean = token_loss(out["logits"], batch["targets"], batch["loss_weights"])
        result = {"loss": mean, "lm_loss": mean, "token_loss": per_token, "logits": out["logits"]}
        if "moe_loss" in out:
            result.update(loss=mean + out["moe_loss"], moe_loss=out["moe_loss"], moe_stats=out["moe_stats"])
        return result

