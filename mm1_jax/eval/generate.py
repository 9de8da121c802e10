"""Batched generation for MM1 models with the KV cache: one prefill, then one cached step per new token.

A request is a prompt's token ids, in which every image occupies K consecutive <image> slot tokens (as in training),
and its images [n, S, S, 3] in order. Requests of a batch are left-padded to a common length (padding is segment 0,
which the cache's attention masks out), so every row's last prompt token sits at the same column and the prompt's
last logits give the first new token. Each later token is a length-1 step at the row's own next position.

Everything after the prompt layout runs in one jitted function (prefill + `lax.while_loop` over steps, leaving the
loop once every row has produced a stop token), compiled once per (batch, bucketed length, images) shape.
Greedy when temperature <= 0, otherwise sampling at `temperature` from the smallest set of tokens whose
probability reaches `top_p` (nucleus sampling; top_p=1 samples from everything).

Also `score_continuations`, summed log-likelihoods of given continuations (multiple-choice by likelihood).
"""
from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from mm1_jax.train.distributed import to_host


@dataclasses.dataclass
class Request:
    """One prompt: token ids [L] (K <image> slots per image) and its images [n, S, S, 3] (normalised)."""

    tokens: np.ndarray
    images: np.ndarray


@dataclasses.dataclass(frozen=True)
class Sampling:
    """How tokens are chosen. temperature <= 0 is greedy; stop_ids end a row (the stop token is not returned)."""

    max_new_tokens: int = 16
    temperature: float = 0.0
    top_p: float = 1.0
    stop_ids: tuple[int, ...] = ()
    seed: int = 0


def pick_tokens(logits: jax.Array, key: jax.Array, temperature: float, top_p: float) -> jax.Array:
    """Next tokens [B] from logits [B, V]: argmax, or a sample at `temperature` within the top-p nucleus."""
    if temperature <= 0:
        return jnp.argmax(logits, axis=-1).astype(jnp.int32)
    scaled = logits.astype(jnp.float32) / temperature
    if top_p < 1.0:
        ordered = jnp.sort(scaled, axis=-1)[:, ::-1]
        probs = jax.nn.softmax(ordered, axis=-1)
        before = jnp.cumsum(probs, axis=-1) - probs  # mass of the strictly more likely tokens
        kept = jnp.sum(before < top_p, axis=-1)  # >= 1: the most likely token is always kept
        threshold = jnp.take_along_axis(ordered, (kept - 1)[:, None], axis=-1)
        scaled = jnp.where(scaled < threshold, -jnp.inf, scaled)
    return jax.random.categorical(key, scaled, axis=-1).astype(jnp.int32)


def layout(requests: Sequence[Request], *, image_id: int, pad_id: int, tokens_per_image: int, length: int,
           num_images: int, image_shape: tuple[int, ...]) -> dict[str, np.ndarray]:
    """Left-padded batch in the MM1 batch contract: tokens, positions, segment_ids, image_token_index, images,
    and `lengths` [B] (real prompt tokens per row)."""
    b = len(requests)
    out = {
        "tokens": np.full((b, length), pad_id, np.int32),
        "positions": np.zeros((b, length), np.int32),
        "segment_ids": np.zeros((b, length), np.int32),
        "image_token_index": np.full((b, length), -1, np.int32),
        "images": np.zeros((b, num_images) + tuple(image_shape), np.float32),
        "lengths": np.zeros((b,), np.int32),
    }
    for row, req in enumerate(requests):
        ids = np.asarray(req.tokens, np.int32)
        n = len(req.images)
        slots = ids == image_id
        if slots.sum() != n * tokens_per_image:
            raise ValueError(f"request {row}: {int(slots.sum())} <image> slot tokens for {n} images of "
                             f"{tokens_per_image} tokens each.")
        if len(ids) > length or n > num_images:
            raise ValueError(f"request {row}: {len(ids)} tokens / {n} images exceed the batch's {length} / {num_images}.")
        start = length - len(ids)
        out["tokens"][row, start:] = ids
        out["positions"][row, start:] = np.arange(len(ids))
        out["segment_ids"][row, start:] = 1
        index = np.full(len(ids), -1, np.int32)
        index[slots] = np.arange(int(slots.sum()))  # the j-th slot of a row takes embedding j (= m*K + k)
        out["image_token_index"][row, start:] = index
        if n:
            out["images"][row, :n] = req.images
        out["lengths"][row] = len(ids)
    return out


def _bucket(n: int, size: int) -> int:
    return max(size, -(-n // size) * size)


class Generator:
    """Cached generation for one MM1 model (any module taking the MM1 batch contract with `decode=True`).

    `Generator(model, tokens_per_image=K, image_id=tok.image_id, pad_id=tok.pad_id)(params, requests, sampling)`
    returns, per request, the new token ids (up to, not including, the first stop token) and their log-probs.
    Compiled functions are kept per shape, so reuse one Generator across calls.
    """

    def __init__(self, model: Any, *, tokens_per_image: int, image_id: int, pad_id: int, batch_size: int = 16,
                 length_bucket: int = 32):
        self.model, self.k, self.image_id, self.pad_id = model, tokens_per_image, image_id, pad_id
        self.batch_size, self.length_bucket = batch_size, length_bucket
        self._run = jax.jit(self._generate, static_argnames=("sampling",))

    @functools.lru_cache(maxsize=32)  # noqa: B019 (one Generator per model; shapes are few)
    def _cache_shapes(self, batch: int, length: int) -> Any:
        tokens = jnp.zeros((batch, length), jnp.int32)
        return jax.eval_shape(lambda t: self.model.init(jax.random.PRNGKey(0), t, decode=True), tokens)["cache"]

    def _generate(self, params, batch, cache, key, *, sampling: Sampling):
        b = batch["tokens"].shape[0]
        images = batch["images"] if batch["images"].shape[1] else None
        out, state = self.model.apply(
            {"params": params, "cache": cache}, batch["tokens"], images=images,
            image_token_index=batch["image_token_index"], positions=batch["positions"],
            segment_ids=batch["segment_ids"], decode=True, mutable=["cache"])
        stop = jnp.asarray(sampling.stop_ids or (-1,), jnp.int32)
        n = sampling.max_new_tokens

        def choose(logits, i, done):
            token = pick_tokens(logits, jax.random.fold_in(key, i), sampling.temperature, sampling.top_p)
            logp = jnp.take_along_axis(jax.nn.log_softmax(logits), token[:, None], axis=-1)[:, 0]
            token = jnp.where(done, self.pad_id, token)
            return token, jnp.where(done, 0.0, logp), done | jnp.isin(token, stop)

        done = jnp.zeros((b,), bool)
        token, logp, done = choose(out["logits"][:, -1], 0, done)
        tokens = jnp.full((b, n), self.pad_id, jnp.int32).at[:, 0].set(token)
        logps = jnp.zeros((b, n), jnp.float32).at[:, 0].set(logp)

        def cond(carry):
            i, _, _, done, _, _ = carry
            return (i < n) & ~jnp.all(done)

        def body(carry):
            i, cache, token, done, tokens, logps = carry
            positions = (batch["lengths"] + i - 1)[:, None]
            out, state = self.model.apply(
                {"params": params, "cache": cache}, token[:, None], positions=positions,
                segment_ids=jnp.ones((b, 1), jnp.int32), decode=True, mutable=["cache"])
            token, logp, done = choose(out["logits"][:, -1], i, done)
            return i + 1, state["cache"], token, done, tokens.at[:, i].set(token), logps.at[:, i].set(logp)

        carry = (jnp.int32(1), state["cache"], token, done, tokens, logps)
        _, _, _, _, tokens, logps = jax.lax.while_loop(cond, body, carry)
        return tokens, logps

    def __call__(self, params: Any, requests: Sequence[Request], sampling: Sampling = Sampling()
                 ) -> list[tuple[list[int], list[float]]]:
        """New tokens (stop token excluded) and their log-probs for every request, in order."""
        results = []
        image_shape = next((r.images.shape[1:] for r in requests if len(r.images)), None)
        for start in range(0, len(requests), self.batch_size):
            chunk = list(requests[start:start + self.batch_size])
            real = len(chunk)
            chunk += [chunk[-1]] * (self.batch_size - real)  # fixed batch: one compilation for the last chunk too
            length = _bucket(max(len(r.tokens) for r in chunk), self.length_bucket)
            num_images = max(len(r.images) for r in chunk)
            batch = layout(chunk, image_id=self.image_id, pad_id=self.pad_id, tokens_per_image=self.k, length=length,
                           num_images=num_images, image_shape=image_shape or (1, 1, 3))
            shapes = self._cache_shapes(self.batch_size, length + sampling.max_new_tokens)
            cache = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)
            key = jax.random.fold_in(jax.random.PRNGKey(sampling.seed), start)
            tokens, logps = to_host(self._run(params, batch, cache, key, sampling=sampling))
            stop = set(sampling.stop_ids)
            for row in range(real):
                ids = [int(t) for t in tokens[row]]
                end = next((i for i, t in enumerate(ids) if t in stop), len(ids))
                results.append((ids[:end], [float(x) for x in logps[row, :end]]))
        return results


def score_continuations(model: Any, params: Any, requests: Sequence[Request], continuations: Sequence[Sequence[int]],
                        *, image_id: int, pad_id: int, tokens_per_image: int, batch_size: int = 16,
                        length_bucket: int = 32) -> list[float]:
    """Sum of log p(continuation | prompt) for each (request, continuation) pair (full forward, no cache)."""
    apply = _scorer(model)
    image_shape = next((r.images.shape[1:] for r in requests if len(r.images)), (1, 1, 3))
    scores = []
    for start in range(0, len(requests), batch_size):
        pairs = list(zip(requests[start:start + batch_size], continuations[start:start + batch_size]))
        real = len(pairs)
        pairs += [pairs[-1]] * (batch_size - real)
        joined = [Request(np.concatenate([np.asarray(r.tokens, np.int32), np.asarray(c, np.int32)]), r.images)
                  for r, c in pairs]
        length = _bucket(max(len(j.tokens) for j in joined), length_bucket)
        batch = layout(joined, image_id=image_id, pad_id=pad_id, tokens_per_image=tokens_per_image, length=length,
                       num_images=max(len(j.images) for j in joined), image_shape=image_shape)
        weights = np.zeros((batch_size, length), np.float32)
        for row, (_, cont) in enumerate(pairs):
            weights[row, length - len(cont) - 1 : length - 1] = 1.0  # logits at i predict token i + 1
        picked = to_host(apply(params, batch))
        scores += [float(np.sum(picked[row] * weights[row])) for row in range(real)]
    return scores


@functools.lru_cache(maxsize=8)
def _scorer(model: Any):
    def apply(params, batch):
        images = batch["images"] if batch["images"].shape[1] else None
        logits = model.apply({"params": params}, batch["tokens"], images=images,
                             image_token_index=batch["image_token_index"], positions=batch["positions"],
                             segment_ids=batch["segment_ids"])["logits"]
        targets = jnp.roll(batch["tokens"], -1, axis=1)  # logits at i score token i + 1
        logp = jax.nn.log_softmax(logits, axis=-1)
        return jnp.take_along_axis(logp, targets[..., None], axis=-1)[..., 0]

    return jax.jit(apply)


class Owl3Generator:
    """`Generator`'s call for mPLUG-Owl3 models (`mm1_jax.models.owl3`), on `mm1_jax.eval.generate_owl3`.

    Owl3 prompts hold one <|image|> placeholder per image (not K slots); requests run `batch_size` at a time,
    left-padded. Sampling is greedy or temperature (top_p must be 1: Owl3's sampler offers top-k); every stop id ends
    a row; log-probs are not computed there and come back as NaN.
    """

    def __init__(self, model: Any, *, image_token_id: int, batch_size: int = 16):
        self.model, self.image_token_id, self.batch_size = model, image_token_id, batch_size

    def __call__(self, params: Any, requests: Sequence[Request], sampling: Sampling = Sampling()
                 ) -> list[tuple[list[int], list[float]]]:
        from mm1_jax.eval import generate_owl3  # pylint: disable=g-import-not-at-top

        if sampling.top_p < 1.0:
            raise ValueError(f"Owl3 generation samples from the top k, not the top p; got top_p={sampling.top_p}.")
        results, stop = [], set(sampling.stop_ids)
        for start in range(0, len(requests), self.batch_size):
            chunk = requests[start:start + self.batch_size]
            pics = [np.asarray(r.images, np.float32) for r in chunk if len(r.images)]
            new = generate_owl3.generate(
                self.model, params, [r.tokens for r in chunk], np.concatenate(pics) if pics else None,
                image_token_id=self.image_token_id, max_new_tokens=sampling.max_new_tokens,
                temperature=sampling.temperature, seed=sampling.seed,
                eos_id=sampling.stop_ids[0] if sampling.stop_ids else None)
            for row in new:
                ids = [int(t) for t in row]
                end = next((i for i, t in enumerate(ids) if t in stop), len(ids))
                results.append((ids[:end], [float("nan")] * end))
        return results
