"""Greedy and sampled generation for `Owl3` with the KV cache.

The prompt (with its image placeholders) is run once with `decode=True`: it fills every layer's text cache and the
hyper layers' image keys/values. Each new token is then one jitted step of length 1 that reads the image keys and
values from the cache (the images are not encoded again). Prompts of different lengths are left-padded: padding is
segment 0 (masked from text and image attention) and every row's positions start at 0 at its first real token, so a
row generates what it would generate alone.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np


def init_cache(module: Any, params: Any, batch: int, length: int, images: Any, image_token_id: int) -> Any:
    """Zero caches for `length` tokens (and the given images), shapes found without running the model."""
    tokens = jax.ShapeDtypeStruct((batch, length), jnp.int32)
    shapes = jax.eval_shape(lambda ids, imgs: module.apply({"params": params}, ids, imgs, image_token_id=image_token_id,
                                                           decode=True, mutable=["cache"])[1]["cache"], tokens, images)
    return jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)


def _pick(logits: jax.Array, key: jax.Array, temperature: float, top_k: int) -> jax.Array:
    """Next tokens [B] from last-position logits [B, V]: argmax, or a sample at `temperature` from the top k."""
    if temperature <= 0:
        return jnp.argmax(logits, axis=-1).astype(jnp.int32)
    logits = logits / temperature
    if top_k > 0:
        kth = jax.lax.top_k(logits, top_k)[0][:, -1:]
        logits = jnp.where(logits < kth, -jnp.inf, logits)
    return jax.random.categorical(key, logits, axis=-1).astype(jnp.int32)


def left_pad(prompts: Sequence[Any], pad_id: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Prompts of any lengths -> tokens [B, T] (left-padded), positions [B, T] (0 at each row's first real token),
    segment_ids [B, T] (0: padding) and lengths [B]."""
    rows = [np.asarray(r, np.int32).reshape(-1) for r in prompts]
    lengths = np.array([len(r) for r in rows], np.int32)
    if not len(rows) or lengths.min() == 0:
        raise ValueError(f"every prompt needs at least one token; got lengths {lengths.tolist()}.")
    b, t = len(rows), int(lengths.max())
    tokens = np.full((b, t), pad_id, np.int32)
    positions, segment_ids = np.zeros((b, t), np.int32), np.zeros((b, t), np.int32)
    for i, row in enumerate(rows):
        tokens[i, t - len(row):] = row
        positions[i, t - len(row):] = np.arange(len(row))
        segment_ids[i, t - len(row):] = 1
    return tokens, positions, segment_ids, lengths


def generate(module: Any, params: Any, input_ids: np.ndarray | Sequence[np.ndarray], images: np.ndarray | None, *,
             image_token_id: int, max_new_tokens: int, temperature: float = 0.0, top_k: int = 0, seed: int = 0,
             eos_id: int | None = None) -> np.ndarray:
    """New tokens [B, max_new_tokens] int32; after `eos_id` a row repeats `eos_id`. input_ids: [B, T] or a list of
    prompts of any lengths; images: every row's images in placeholder order, row after row."""
    ids, positions, segment_ids, lengths = left_pad(list(input_ids), pad_id=int(image_token_id == 0))
    b, t = ids.shape
    cache = init_cache(module, params, b, t + max_new_tokens, images, image_token_id)

    @jax.jit
    def prefill(cache, ids, positions, segment_ids, imgs, key):
        out, state = module.apply({"params": params, "cache": cache}, ids, imgs, image_token_id=image_token_id,
                                  positions=positions, segment_ids=segment_ids, decode=True, mutable=["cache"])
        return state["cache"], _pick(out["logits"][:, -1], key, temperature, top_k)

    @jax.jit
    def step(cache, token, positions, key):
        out, state = module.apply({"params": params, "cache": cache}, token[:, None], positions=positions[:, None],
                                  segment_ids=jnp.ones((b, 1), jnp.int32), decode=True, mutable=["cache"])
        return state["cache"], _pick(out["logits"][:, -1], key, temperature, top_k)

    keys = jax.random.split(jax.random.PRNGKey(seed), max_new_tokens)
    cache, token = prefill(cache, ids, positions, segment_ids, None if images is None else jnp.asarray(images),
                           keys[0])
    out = [token]
    done = np.zeros((b,), bool)
    for i in range(1, max_new_tokens):
        if eos_id is not None:
            done |= np.asarray(token) == eos_id
            if done.all():
                break
        cache, token = step(cache, token, jnp.asarray(lengths + i - 1), keys[i])
        if eos_id is not None:
            token = jnp.where(done, eos_id, token)
        out.append(token)
    result = np.stack([np.asarray(x) for x in out], axis=1)
    if result.shape[1] < max_new_tokens:
        result = np.pad(result, ((0, 0), (0, max_new_tokens - result.shape[1])), constant_values=eos_id)
    return result
