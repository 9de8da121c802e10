"""MM1: image encoder -> connector -> decoder, over packed interleaved image-text sequences (MM1: arXiv 2403.09611;
MM1.5: arXiv 2409.20566).

A batch (produced by `mm1_jax.data`) holds, for B rows of T tokens and up to M images per row:
  tokens [B, T] int32          input ids; every image occupies K consecutive slot tokens
  image_token_index [B, T]     for a slot token, m*K + k (image m of the row, its k-th embedding); -1 elsewhere
  images [B, M, H, W, 3]       uint8 pixels, normalised here (`normalize_pixels`) with the encoder's statistics;
                               float pixels are taken as already normalised. image_valid [B, M] marks the real ones
  segment_ids [B, T]           1, 2, ... per packed document, 0 = padding
  positions [B, T]             restart at 0 in every document
  targets, loss_weights [B, T] next tokens and their weights (0 on image slots, padding, non-answers in SFT)

Images reach the decoder by one of two routes (`image_route`, owned by `registry.image_route(config.model)`):
  'slots'  each image goes through encoder -> connector to K embeddings that replace the slot tokens' embeddings;
  'hyper'  (the decoder has `hyper_layers` or `cross_attention_layers`) each image has ONE placeholder slot token
           (K = 1 in the data contract) and its connector output [K', D] is read by the decoder's hyper attention
           (mPLUG-Owl3, arXiv 2408.04840, Sec. 3) or gated cross-attention blocks (`cross_attention`; mPLUG-Owl3 v2
           Table 8); image_valid masks absent images.
The parts are submodules named 'encoder', 'connector' and 'decoder', so the trainer can freeze any of them by name.
"""
from __future__ import annotations

from typing import Any, Sequence

import flax.linen as nn
import jax.numpy as jnp

from mm1_jax.models.decoder import token_loss
from mm1_jax.models.layers import Array, constrain
from mm1_jax.models.vit import norm_stats, style_value


def image_route(hyper_layers: Sequence[int], cross_attention_layers: Sequence[int] = ()) -> str:
    """'hyper' when the decoder has hyper or cross-attention layers (one placeholder per image, its features read by
    those layers), else 'slots'."""
    return "hyper" if tuple(hyper_layers or ()) or tuple(cross_attention_layers or ()) else "slots"


def normalize_pixels(images: Array, norm: str) -> Array:
    """The one place pixels are normalised: uint8 [..., 3] -> float32 (x / 255 - mean) / std with the encoder's
    statistics (`mm1_jax.models.vit.NORMS[norm]`, the arithmetic of `mm1_jax.data.images.normalize`). Float input is
    returned as it is: it is taken to be normalised already (notebooks, parity tests against reference encoders)."""
    if images.dtype != jnp.uint8:
        return images
    mean, std = norm_stats(norm)
    return (images.astype(jnp.float32) / 255.0 - mean) / std


def encoder_norm(encoder: nn.Module) -> str:
    """The pixel statistics an encoder module takes: its style's `image_norm` (as `inputs.input_spec` reads it)."""
    return str(style_value(encoder, "image_norm"))


def fill_image_slots(text_embeds: Array, image_embeds: Array, image_token_index: Array) -> Array:
    """Replace slot embeddings: text [B, T, D], images [B, M*K, D], index [B, T] (-1 = keep text)."""
    gathered = jnp.take_along_axis(image_embeds, jnp.maximum(image_token_index, 0)[..., None], axis=1)
    return jnp.where((image_token_index >= 0)[..., None], gathered.astype(text_embeds.dtype), text_embeds)


def placeholder_index(image_token_index: Array, num_images: int) -> Array:
    """[B, M]: sequence index of the slot token of image m (batches with K = 1), -1 where the row has none."""
    hit = image_token_index[:, :, None] == jnp.arange(num_images)[None, None, :]  # [B, T, M]
    return jnp.where(jnp.any(hit, axis=1), jnp.argmax(hit, axis=1), -1).astype(jnp.int32)


def loss_terms(outputs: dict, targets: Array, loss_weights: Array) -> dict[str, Array]:
    """The one loss definition: {'nll_sum' (summed weighted token NLL), 'weight' (sum of loss_weights),
    'moe_loss' (the decoder's weighted router losses, 0 for a dense decoder)}, float32 scalars.

    The loss is nll_sum / max(weight, 1e-8) + moe_loss; sums (not means) so micro-batches add up exactly."""
    per_token, _ = token_loss(outputs["logits"], targets, loss_weights)
    return {
        "nll_sum": jnp.sum(per_token),
        "weight": jnp.sum(loss_weights.astype(jnp.float32)),
        "moe_loss": jnp.asarray(outputs.get("moe_loss", 0.0), jnp.float32),
    }


class MM1(nn.Module):
    """The MM1 model. Built by `mm1_jax.models.build_model(config.model)`."""

    encoder: nn.Module
    connector: nn.Module
    decoder: nn.Module
    max_images: int = 16

    @property
    def route(self) -> str:
        """'hyper' or 'slots' (`image_route` of the decoder's hyper and cross-attention layers)."""
        decoder = self.decoder
        return image_route(getattr(decoder, "hyper_layers", ()), getattr(decoder, "cross_attention_layers", ()))

    def image_embeddings(self, images: Array) -> Array:
        """[B, M, H, W, 3] pixels (uint8, or float already normalised) -> [B, M, K, D] connector outputs (encoder
        features -> connector). Every image reaches the encoder through here, normalised once."""
        images = normalize_pixels(images, encoder_norm(self.encoder))
        b, m = images.shape[:2]
        embeds = self.connector(self.encoder(images.reshape((b * m,) + images.shape[2:]))["features"])
        return embeds.reshape((b, m) + embeds.shape[1:])

    def encode_images(self, images: Array) -> Array:
        """[B, M, H, W, 3] pixels -> [B, M*K, D] image embeddings, in slot order."""
        embeds = self.image_embeddings(images)
        b, m, k, d = embeds.shape
        return constrain(embeds.reshape(b, m * k, d), "act_batch", "act_len", "act_embed")

    def __call__(
        self,
        tokens: Array,
        *,
        images: Array | None = None,
        image_token_index: Array | None = None,
        image_valid: Array | None = None,
        positions: Array | None = None,
        segment_ids: Array | None = None,
        decode: bool = False,
        **unused: Any,
    ) -> dict[str, Array]:
        """Logits [B, T, V] (float32). Extra batch fields (targets, weights...) are ignored.

        With decode=True on the hyper route (hyper or cross-attention layers) pass the images on the prefill call only
        (see `Decoder`)."""
        x = self.decoder.embed(tokens)
        kwargs = dict(positions=positions, segment_ids=segment_ids, decode=decode)
        if images is None or images.shape[1] == 0:
            return self.decoder(inputs_embeds=x, **kwargs)
        if images.shape[1] > self.max_images:
            raise ValueError(f"images has {images.shape[1]} per row, more than model.max_images={self.max_images}.")
        if image_token_index is None:
            raise ValueError("images were given without image_token_index (which slot each embedding fills).")
        if self.route == "slots":
            return self.decoder(inputs_embeds=fill_image_slots(x, self.encode_images(images), image_token_index),
                                **kwargs)
        index = placeholder_index(image_token_index, images.shape[1])
        if image_valid is not None:
            index = jnp.where(image_valid, index, -1)
        return self.decoder(inputs_embeds=x, images=self.image_embeddings(images), image_index=index, **kwargs)

    def loss(self, batch: dict[str, Array]) -> dict[str, Array]:
        """Forward + weighted next-token loss (`loss_terms`): {'loss' (scalar, + the MoE auxiliary loss), 'lm_loss',
        'token_loss' [B, T], 'logits'} and, for MoE decoders, 'moe_loss' and per-layer 'moe_stats'."""
        out = self(**batch)
        terms = loss_terms(out, batch["targets"], batch["loss_weights"])
        per_token, _ = token_loss(out["logits"], batch["targets"], batch["loss_weights"])
        mean = terms["nll_sum"] / jnp.maximum(terms["weight"], 1e-8)
        result = {"loss": mean, "lm_loss": mean, "token_loss": per_token, "logits": out["logits"]}
        if "moe_loss" in out:
            result.update(loss=mean + terms["moe_loss"], moe_loss=out["moe_loss"], moe_stats=out["moe_stats"])
        return result
