"""The one cached generator (MM1, mPLUG-Owl3 and LLaVA models): a prefill, then one cached 1-token step per new token.

A request is a prompt's token ids and its images [n, S, S, 3] in order. How images sit in a prompt is the model's:

  SlotImages(tokens_per_image=K, image_id)   MM1: every image occupies K consecutive <image> slot tokens; the model
                                             takes images per row [B, M, S, S, 3] and image_token_index [B, T].
  PlaceholderImages(image_token_id)          Owl3: one <|image|> placeholder per image; the model takes the batch's
                                             images flat [N, S, S, 3] in placeholder order and image_token_id.
  LlavaImages(image_token_id)                LLaVA-OneVision / -NeXT / LLaVA (`models.llava`): each image's <image>
                                             token repeated as often as the image has features; a request's images
                                             are its images' tiles and `Request.plans` their `ImagePlan`s; the model
                                             takes the batch's tiles flat and the batch's plans (static).
The layout is an argument (`inputs=` of `Generator`, `stream` and `score_continuations`, or the MM1 / Owl3 fields
that `prompt_inputs` turns into one); `bind(requests)` gives the static layout of one batch (LLaVA's plans).

Requests of a batch are left-padded (`left_pad`, the one layout routine) to a common bucketed length: padding is
segment 0, which the cache's attention masks out, and every row's positions start at 0 at its first real token, so
a row generates what it would generate alone and every row's last prompt token sits at the last column. Everything
after the layout is one jitted function (cache allocation, prefill, a `lax.while_loop` of 1-token steps that ends
once every row has produced a stop token). Parameters are arguments of that function, never constants in it, and
the model, the image layout and the sampling settings (without the seed) are its static arguments: it compiles
once per (batch, bucketed length, images) shape and sampling setting, shared by every `Generator` of one model.

Every token is chosen by `pick_tokens`: greedy when temperature <= 0, otherwise a sample at `temperature` from the
`top_k` most likely tokens (0: all), then from the smallest set of those whose probability reaches `top_p`.

`stream` yields one request's tokens as they are made (the same steps, one call per token). Also
`score_continuations`, summed log-likelihoods of given continuations (multiple-choice by likelihood).
"""
from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from mm1_jax.data import images as data_images
from mm1_jax.runtime.distributed import to_host


@dataclasses.dataclass
class Request:
    """One prompt: token ids [L] and its images [n, S, S, 3] in the order they appear: uint8 pixels (the model
    normalises them) or float pixels already normalised. For a LLaVA model (`LlavaImages`) `images` are the tiles
    of the prompt's images in order (each image's base view first) and `plans` the images' `models.llava.ImagePlan`s
    (how many tiles and tokens each has)."""

    tokens: np.ndarray
    images: np.ndarray
    plans: tuple = ()


@dataclasses.dataclass(frozen=True)
class Sampling:
    """How tokens are chosen. temperature <= 0 is greedy; top_k=0 and top_p=1 leave every token in; stop_ids end a
    row (the stop token is not returned)."""

    max_new_tokens: int = 16
    temperature: float = 0.0
    top_p: float = 1.0
    stop_ids: tuple[int, ...] = ()
    seed: int = 0
    top_k: int = 0


def pick_tokens(logits: jax.Array, key: jax.Array, temperature: float = 0.0, top_k: int = 0,
                top_p: float = 1.0) -> jax.Array:
    """Next tokens [B] from logits [B, V]: argmax when temperature <= 0; otherwise a sample at `temperature` among
    the `top_k` most likely tokens (0: all), within the smallest set of those whose probability reaches `top_p`."""
    if temperature <= 0:
        return jnp.argmax(logits, axis=-1).astype(jnp.int32)
    scaled = logits.astype(jnp.float32) / temperature
    vocab = scaled.shape[-1]
    if 0 < top_k < vocab:
        values, ids = jax.lax.top_k(scaled, top_k)  # most likely first
    elif top_p < 1.0:
        ids = jnp.argsort(scaled, axis=-1, descending=True)
        values = jnp.take_along_axis(scaled, ids, axis=-1)
    else:
        return jax.random.categorical(key, scaled, axis=-1).astype(jnp.int32)
    if top_p < 1.0:
        probs = jax.nn.softmax(values, axis=-1)
        before = jnp.cumsum(probs, axis=-1) - probs  # mass of the strictly more likely tokens
        keep = (before < top_p) | (jnp.arange(values.shape[-1]) == 0)  # the most likely token always stays
        values = jnp.where(keep, values, -jnp.inf)
    choice = jax.random.categorical(key, values, axis=-1)
    return jnp.take_along_axis(ids, choice[:, None], axis=-1)[:, 0].astype(jnp.int32)


def left_pad(rows: Sequence[Any], *, length: int, pad_id: int) -> dict[str, np.ndarray]:
    """Prompts of any lengths -> tokens [B, length] (left-padded with pad_id), positions [B, length] (0 at each row's
    first real token), segment_ids [B, length] (0: padding) and lengths [B] (real tokens per row)."""
    rows = [np.asarray(r, np.int32).reshape(-1) for r in rows]
    lengths = np.array([len(r) for r in rows], np.int32)
    if not len(rows) or lengths.min() == 0:
        raise ValueError(f"every prompt needs at least one token; got lengths {lengths.tolist()}.")
    if lengths.max() > length:
        raise ValueError(f"a prompt of {int(lengths.max())} tokens does not fit the batch's {length}.")
    b = len(rows)
    out = {"tokens": np.full((b, length), pad_id, np.int32), "positions": np.zeros((b, length), np.int32),
           "segment_ids": np.zeros((b, length), np.int32), "lengths": lengths}
    for i, row in enumerate(rows):
        out["tokens"][i, length - len(row):] = row
        out["positions"][i, length - len(row):] = np.arange(len(row))
        out["segment_ids"][i, length - len(row):] = 1
    return out


# ----------------------------------------------------------------------------------------------------------------
# The models' prompt inputs
# ----------------------------------------------------------------------------------------------------------------
def pixel_dtype(requests: Sequence[Request]) -> np.dtype:
    """The batch's image dtype (`mm1_jax.data.images.pixel_dtype` over every request's images)."""
    return data_images.pixel_dtype((r.images for r in requests if len(r.images)), "the requests")


@dataclasses.dataclass(frozen=True)
class SlotImages:
    """MM1 prompts: K <image> slot tokens per image; images per row [B, M, S, S, 3] and image_token_index [B, T]."""

    tokens_per_image: int
    image_id: int
    per_token = ("image_token_index",)  # inputs laid out like the tokens (extended with the cache's length)

    def arrays(self, requests: Sequence[Request], padded: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        b, length = padded["tokens"].shape
        num_images = max(len(r.images) for r in requests)
        index = np.full((b, length), -1, np.int32)
        out = {"image_token_index": index}
        if num_images:
            shape = next(np.shape(r.images)[1:] for r in requests if len(r.images))
            out["images"] = np.zeros((b, num_images) + tuple(shape), pixel_dtype(requests))
        for row, req in enumerate(requests):
            ids, n = np.asarray(req.tokens, np.int32).reshape(-1), len(req.images)
            slots = ids == self.image_id
            if slots.sum() != n * self.tokens_per_image:
                raise ValueError(f"request {row}: {int(slots.sum())} <image> slot tokens for {n} images of "
                                 f"{self.tokens_per_image} tokens each.")
            row_index = np.full(len(ids), -1, np.int32)
            row_index[slots] = np.arange(int(slots.sum()))  # the j-th slot of a row takes embedding j (= m*K + k)
            index[row, length - len(ids):] = row_index
            if n:
                out["images"][row, :n] = req.images
        return out

    def bind(self, requests: Sequence[Request]) -> SlotImages:  # the same for every batch
        return self

    def apply(self, model: Any, variables: dict, batch: dict, **kwargs) -> Any:
        return model.apply(variables, batch["tokens"], images=batch.get("images"),
                           image_token_index=batch["image_token_index"], positions=batch["positions"],
                           segment_ids=batch["segment_ids"], **kwargs)


@dataclasses.dataclass(frozen=True)
class PlaceholderImages:
    """Owl3 prompts: one placeholder token per image; the batch's images flat [N, S, S, 3] in placeholder order."""

    image_token_id: int
    per_token = ()

    def arrays(self, requests: Sequence[Request], padded: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        pics, dtype = [], pixel_dtype(requests)
        for row, req in enumerate(requests):
            count = int(np.sum(np.asarray(req.tokens) == self.image_token_id))
            if count != len(req.images):
                raise ValueError(f"request {row}: {count} image placeholder tokens (id {self.image_token_id}) but "
                                 f"{len(req.images)} images; each image needs exactly one placeholder.")
            if len(req.images):
                pics.append(np.asarray(req.images, dtype))
        if np.any(padded["tokens"][padded["segment_ids"] == 0] == self.image_token_id):
            raise ValueError(f"the padding id is the image placeholder id {self.image_token_id}.")
        return {"images": np.concatenate(pics)} if pics else {}

    def bind(self, requests: Sequence[Request]) -> PlaceholderImages:  # the same for every batch
        return self

    def apply(self, model: Any, variables: dict, batch: dict, **kwargs) -> Any:
        return model.apply(variables, batch["tokens"], batch.get("images"), image_token_id=self.image_token_id,
                           positions=batch["positions"], segment_ids=batch["segment_ids"], **kwargs)


@dataclasses.dataclass(frozen=True)
class LlavaImages:
    """LLaVA prompts (`models.llava.Llava`): every image's `<image>` token repeated `plan.tokens` times; a request's
    images are its images' tiles [sum of plan.tiles, S, S, 3] and `Request.plans` their plans. `bind` gives the
    batch's layout: the plans of every row's images, row after row (static: one compilation per combination)."""

    image_token_id: int
    plans: tuple = ()
    per_token = ()

    def bind(self, requests: Sequence[Request]) -> LlavaImages:
        return dataclasses.replace(self, plans=tuple(p for r in requests for p in r.plans))

    def arrays(self, requests: Sequence[Request], padded: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        for row, req in enumerate(requests):
            tokens, tiles = int(np.sum(np.asarray(req.tokens) == self.image_token_id)), len(req.images)
            want_tokens, want_tiles = sum(p.tokens for p in req.plans), sum(p.tiles for p in req.plans)
            if tokens != want_tokens or tiles != want_tiles:
                raise ValueError(f"request {row}: {tokens} image tokens (id {self.image_token_id}) and {tiles} tiles, "
                                 f"but its {len(req.plans)} image plans take {want_tokens} tokens and {want_tiles} "
                                 "tiles.")
        if np.any(padded["tokens"][padded["segment_ids"] == 0] == self.image_token_id):
            raise ValueError(f"the padding id is the image token id {self.image_token_id}.")
        tiles = [np.asarray(r.images) for r in requests if len(r.images)]
        return {"tiles": np.concatenate(tiles).astype(pixel_dtype(requests))} if tiles else {}

    def apply(self, model: Any, variables: dict, batch: dict, **kwargs) -> Any:
        tiles = batch.get("tiles")
        return model.apply(variables, batch["tokens"], tiles, plans=self.plans if tiles is not None else (),
                           positions=batch["positions"], segment_ids=batch["segment_ids"], **kwargs)


Layout = SlotImages | PlaceholderImages | LlavaImages


def prompt_inputs(tokens_per_image: int | None = None, image_id: int | None = None,
                  image_token_id: int | None = None, inputs: Layout | None = None) -> Layout:
    """MM1's layout from (tokens_per_image, image_id), Owl3's from image_token_id, or `inputs` as given (a
    LLaVA model's `LlavaImages`)."""
    if inputs is not None:
        if tokens_per_image is not None or image_id is not None or image_token_id is not None:
            raise ValueError("pass the image layout `inputs` or its fields (tokens_per_image and image_id, or "
                             "image_token_id), not both.")
        return inputs
    if image_token_id is not None:
        if tokens_per_image is not None or image_id is not None:
            raise ValueError("pass image_token_id (Owl3) or tokens_per_image and image_id (MM1), not both.")
        return PlaceholderImages(int(image_token_id))
    if tokens_per_image is None or image_id is None:
        raise ValueError("pass tokens_per_image and image_id (MM1 slots) or image_token_id (Owl3 placeholders).")
    return SlotImages(int(tokens_per_image), int(image_id))


def _bucket(n: int, size: int) -> int:
    return max(size, -(-n // size) * size)


def _layout(inputs: Layout, requests: Sequence[Request], *, length: int, pad_id: int) -> dict[str, np.ndarray]:
    padded = left_pad([r.tokens for r in requests], length=length, pad_id=pad_id)
    return {**padded, **inputs.arrays(requests, padded)}


# ----------------------------------------------------------------------------------------------------------------
# The jitted core: a prefill, then 1-token steps (in a while loop, or one call per token when streaming)
# ----------------------------------------------------------------------------------------------------------------
def _prefill(model, inputs, n: int, params, batch):
    """A cache sized for the prompt and `n` new tokens, filled by the prompt; (last-position logits [B, V], cache)."""

    def empty_cache(params, batch):  # the caches made by a call over the whole length (prompt + new tokens)
        full = dict(batch)
        for name in ("tokens", "positions", "segment_ids") + inputs.per_token:
            full[name] = jnp.pad(batch[name], ((0, 0), (0, n)))
        return inputs.apply(model, {"params": params}, full, decode=True, mutable=["cache"])[1]["cache"]

    shapes = jax.eval_shape(empty_cache, params, batch)
    cache = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)
    out, state = inputs.apply(model, {"params": params, "cache": cache}, batch, decode=True, mutable=["cache"])
    return out["logits"][:, -1], state["cache"]


def _step(model, params, cache, token, positions):
    """One cached step: logits [B, V] after `token` [B] at `positions` [B], and the cache."""
    out, state = model.apply({"params": params, "cache": cache}, token[:, None], positions=positions[:, None],
                             segment_ids=jnp.ones((token.shape[0], 1), jnp.int32), decode=True, mutable=["cache"])
    return out["logits"][:, -1], state["cache"]


def _choose(sampling: Sampling, pad_id: int, key, logits, i, done):
    """(tokens [B], their log-probs, done [B]) for step i; rows already done repeat pad_id with log-prob 0."""
    token = pick_tokens(logits, jax.random.fold_in(key, i), sampling.temperature, sampling.top_k, sampling.top_p)
    logp = jnp.take_along_axis(jax.nn.log_softmax(logits.astype(jnp.float32)), token[:, None], axis=-1)[:, 0]
    stop = jnp.asarray(sampling.stop_ids or (-1,), jnp.int32)
    token = jnp.where(done, pad_id, token)
    return token, jnp.where(done, 0.0, logp), done | jnp.isin(token, stop)


def _generate(model, inputs, sampling: Sampling, pad_id: int, params, batch, key):
    """tokens [B, n] (pad_id after a row's stop token) and their log-probs [B, n] (0 there)."""
    b = batch["tokens"].shape[0]
    n = sampling.max_new_tokens
    logits, cache = _prefill(model, inputs, n, params, batch)
    token, logp, done = _choose(sampling, pad_id, key, logits, 0, jnp.zeros((b,), bool))
    tokens = jnp.full((b, n), pad_id, jnp.int32).at[:, 0].set(token)
    logps = jnp.zeros((b, n), jnp.float32).at[:, 0].set(logp)

    def cond(carry):
        i, _, _, done, _, _ = carry
        return (i < n) & ~jnp.all(done)

    def body(carry):
        i, cache, token, done, tokens, logps = carry
        logits, cache = _step(model, params, cache, token, batch["lengths"] + i - 1)
        token, logp, done = _choose(sampling, pad_id, key, logits, i, done)
        return i + 1, cache, token, done, tokens.at[:, i].set(token), logps.at[:, i].set(logp)

    carry = (jnp.int32(1), cache, token, done, tokens, logps)
    _, _, _, _, tokens, logps = jax.lax.while_loop(cond, body, carry)
    return tokens, logps


_run = jax.jit(_generate, static_argnames=("model", "inputs", "sampling", "pad_id"))


_run_prefill = jax.jit(_prefill, static_argnames=("model", "inputs", "n"))
_run_step = jax.jit(_step, static_argnames=("model",))
_run_choose = jax.jit(_choose, static_argnames=("sampling", "pad_id"))


def stream(model: Any, params: Any, request: Request, sampling: Sampling = Sampling(), *, pad_id: int,
           tokens_per_image: int | None = None, image_id: int | None = None, image_token_id: int | None = None,
           inputs: Layout | None = None, length_bucket: int = 32) -> Iterator[tuple[int, float]]:
    """One request's new tokens and their log-probs as they are made (for a console or a UI): the same prefill,
    steps and choices as `Generator`, one jitted call per token. Stops after a stop token (not yielded)."""
    inputs = prompt_inputs(tokens_per_image, image_id, image_token_id, inputs).bind([request])
    n = sampling.max_new_tokens
    static = dataclasses.replace(sampling, seed=0, stop_ids=tuple(int(s) for s in sampling.stop_ids))
    length = _bucket(len(np.reshape(request.tokens, -1)), length_bucket)
    batch = _layout(inputs, [request], length=length, pad_id=pad_id)
    key = jax.random.fold_in(jax.random.PRNGKey(sampling.seed), 0)
    logits, cache = _run_prefill(model, inputs, n, params, batch)
    done = jnp.zeros((1,), bool)
    for i in range(n):
        if i:
            logits, cache = _run_step(model, params, cache, token, jnp.asarray(batch["lengths"]) + i - 1)
        token, logp, done = _run_choose(static, pad_id, key, logits, i, done)
        if bool(done[0]):
            return
        yield int(token[0]), float(logp[0])


class Generator:
    """Cached generation for one model.

        Generator(model, tokens_per_image=K, image_id=tok.image_id, pad_id=tok.pad_id)   # MM1 (K slots per image)
        Generator(owl3_module, image_token_id=id, pad_id=0)                               # Owl3 (one placeholder)
        Generator(llava_module, inputs=LlavaImages(id), pad_id=0)                         # LLaVA (tiles and plans)

    `generator(params, requests, sampling)` returns, per request, the new token ids (up to, not including, the first
    stop token) and their log-probs. Requests run `batch_size` at a time (a short last batch is filled with copies,
    so it reuses the compilation); prompt lengths are rounded up to multiples of `length_bucket`.
    """

    def __init__(self, model: Any, *, pad_id: int, tokens_per_image: int | None = None, image_id: int | None = None,
                 image_token_id: int | None = None, inputs: Layout | None = None, batch_size: int = 16,
                 length_bucket: int = 32):
        self.model, self.pad_id = model, int(pad_id)
        self.inputs = prompt_inputs(tokens_per_image, image_id, image_token_id, inputs)
        self.batch_size, self.length_bucket = batch_size, length_bucket

    def __call__(self, params: Any, requests: Sequence[Request], sampling: Sampling = Sampling()
                 ) -> list[tuple[list[int], list[float]]]:
        """New tokens (stop token excluded) and their log-probs for every request, in order."""
        results, stop = [], set(sampling.stop_ids)
        static = dataclasses.replace(sampling, seed=0, stop_ids=tuple(int(s) for s in sampling.stop_ids))
        for start in range(0, len(requests), self.batch_size):
            chunk = list(requests[start:start + self.batch_size])
            real = len(chunk)
            chunk += [chunk[-1]] * (self.batch_size - real)  # fixed batch: one compilation for the last chunk too
            length = _bucket(max(len(np.reshape(r.tokens, -1)) for r in chunk), self.length_bucket)
            inputs = self.inputs.bind(chunk)
            batch = _layout(inputs, chunk, length=length, pad_id=self.pad_id)
            key = jax.random.fold_in(jax.random.PRNGKey(sampling.seed), start)
            tokens, logps = to_host(_run(self.model, inputs, static, self.pad_id, params, batch, key))
            for row in range(real):
                ids = [int(t) for t in tokens[row]]
                end = next((i for i, t in enumerate(ids) if t in stop), len(ids))
                results.append((ids[:end], [float(x) for x in logps[row, :end]]))
        return results


# ----------------------------------------------------------------------------------------------------------------
# Likelihood scoring
# ----------------------------------------------------------------------------------------------------------------
def _score(model, inputs, params, batch):
    logits = inputs.apply(model, {"params": params}, batch)["logits"]
    targets = jnp.roll(batch["tokens"], -1, axis=1)  # logits at i score token i + 1
    logp = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
    return jnp.take_along_axis(logp, targets[..., None], axis=-1)[..., 0]


_run_score = jax.jit(_score, static_argnames=("model", "inputs"))


def score_continuations(model: Any, params: Any, requests: Sequence[Request], continuations: Sequence[Sequence[int]],
                        *, pad_id: int, tokens_per_image: int | None = None, image_id: int | None = None,
                        image_token_id: int | None = None, inputs: Layout | None = None, batch_size: int = 16,
                        length_bucket: int = 32) -> list[float]:
    """Sum of log p(continuation | prompt) for each (request, continuation) pair (full forward, no cache); the
    image layout as for `Generator`."""
    layout = prompt_inputs(tokens_per_image, image_id, image_token_id, inputs)
    scores = []
    for start in range(0, len(requests), batch_size):
        pairs = list(zip(requests[start:start + batch_size], continuations[start:start + batch_size]))
        real = len(pairs)
        pairs += [pairs[-1]] * (batch_size - real)
        joined = [Request(np.concatenate([np.asarray(r.tokens, np.int32).reshape(-1), np.asarray(c, np.int32)]),
                          r.images, r.plans) for r, c in pairs]
        length = _bucket(max(len(j.tokens) for j in joined), length_bucket)
        inputs = layout.bind(joined)
        batch = _layout(inputs, joined, length=length, pad_id=pad_id)
        weights = np.zeros((batch_size, length), np.float32)
        for row, (_, cont) in enumerate(pairs):
            weights[row, length - len(cont) - 1: length - 1] = 1.0  # logits at i predict token i + 1
        picked = to_host(_run_score(model, inputs, params, batch))
        scores += [float(np.sum(picked[row] * weights[row])) for row in range(real)]
    return scores
