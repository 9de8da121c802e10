"""Periodic samples during training: greedy captions of held-out images, and how many name the right objects.

For the embedded dataset the held-out images are drawn fresh from the synthetic world with a seed the training data
never uses, so their true captions ("a red circle and a blue square .") are known exactly. The prompt is what a
caption example starts with in training: <bos> then the image's K slot tokens; decoding stops at <eos>.
"""
from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from mm1_jax.data import images as images_lib
from mm1_jax.data import synthetic
from mm1_jax.data.tokenizer import Tokenizer
from mm1_jax.runtime.distributed import to_host

HELD_OUT_SEED = 987_654  # not one of the training data's seeds


def held_out_shapes(n: int, image_size: int, norm: str) -> tuple[np.ndarray, list[str]]:
    """n images [n, S, S, 3] (normalised) of 1-2 shapes and their true captions."""
    rng = np.random.default_rng([HELD_OUT_SEED, n])
    pixels, captions = [], []
    for _ in range(n):
        data, objects = synthetic.shapes_image(rng, int(rng.integers(1, 3)))
        pixels.append(images_lib.whole_image(images_lib.decode_image(data), image_size, norm))
        captions.append(synthetic.describe(objects) + " .")
    return np.stack(pixels).astype(np.float32), captions


def make_greedy_captioner(model: nn.Module, tokens_per_image: int, tok: Tokenizer, max_new: int = 16):
    """jitted (params, images [N, S, S, 3]) -> generated ids [N, max_new] (fixed shapes: one compilation)."""
    k = tokens_per_image
    length = 1 + k + max_new

    def generate(params, images):
        n = images.shape[0]
        tokens = jnp.zeros((n, length), jnp.int32).at[:, 0].set(tok.bos_id).at[:, 1 : 1 + k].set(tok.image_id)
        slot = jnp.arange(length) - 1
        index = jnp.broadcast_to(jnp.where((slot >= 0) & (slot < k), slot, -1), (n, length)).astype(jnp.int32)
        done = jnp.zeros((n,), bool)

        def body(i, carry):
            tokens, done = carry
            pos = 1 + k + i  # predict token at `pos` from everything before it (causal: later slots are unseen)
            logits = model.apply({"params": params}, tokens, images=images[:, None], image_token_index=index)["logits"]
            nxt = jnp.argmax(logits[:, pos - 1], axis=-1).astype(jnp.int32)
            nxt = jnp.where(done, tok.pad_id, nxt)
            return tokens.at[:, pos].set(nxt), done | (nxt == tok.eos_id)

        tokens, _ = jax.lax.fori_loop(0, max_new, body, (tokens, done))
        return tokens[:, 1 + k :]

    return jax.jit(generate)


def decode_caption(ids: np.ndarray, tok: Tokenizer) -> str:
    """Generated ids up to <eos> -> text."""
    ids = [int(i) for i in ids]
    if tok.eos_id in ids:
        ids = ids[: ids.index(tok.eos_id)]
    return tok.decode([i for i in ids if i != tok.pad_id], mark_images=False).strip()


def caption_accuracy(predicted: list[str], truth: list[str]) -> float:
    """Share of captions that name exactly the true objects (colour and shape, left to right)."""
    norm = lambda s: " ".join(s.replace(".", " ").split())  # noqa: E731
    return float(np.mean([norm(p) == norm(t) for p, t in zip(predicted, truth)])) if truth else 0.0


def sample_captions(generate, params: Any, images: np.ndarray, truth: list[str], tok: Tokenizer
                    ) -> tuple[list[str], float]:
    """Greedy captions of the held-out images, lines 'prediction | truth', and the accuracy."""
    ids = to_host(generate(params, jnp.asarray(images)))
    predicted = [decode_caption(row, tok) for row in ids]
    lines = [f"{'ok ' if caption_accuracy([p], [t]) else 'BAD'} {p!r}  (true: {t!r})" for p, t in zip(predicted, truth)]
    return lines, caption_accuracy(predicted, truth)
