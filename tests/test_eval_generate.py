"""Cached generation equals re-running the full forward; nucleus and top-k sampling keep only their tokens; every
choice goes through `pick_tokens`; a second call with new prompts of the same shapes compiles nothing; scoring."""
import contextlib
import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import tiny
from mm1_jax.runtime import generate as gen
from mm1_jax.models import build_model
from mm1_jax.models.registry import image_tokens

IMAGE_ID, PAD_ID = 4, 0


@pytest.fixture(scope="module")
def tiny_model():
    config = tiny.get_config()
    config.model.encoder.depth, config.model.decoder.depth = 1, 2  # small: compile time dominates
    model = build_model(config.model)
    k = image_tokens(config.model)
    s = config.model.encoder.image_size
    tokens = jnp.zeros((1, 2 * k), jnp.int32)
    index = jnp.arange(2 * k, dtype=jnp.int32)[None]
    params = jax.jit(model.init)(jax.random.PRNGKey(0), tokens, images=jnp.zeros((1, 2, s, s, 3)),
                                 image_token_index=index)["params"]
    # Spread the logits (random init gives near-ties that float rounding could flip).
    params = jax.tree_util.tree_map_with_path(
        lambda p, x: x * 30.0 if "embed_tokens" in jax.tree_util.keystr(p) else x, params)
    return model, params, k, s


def _requests(k, s, vocab):
    rng = np.random.default_rng(0)
    text = lambda n: list(rng.integers(30, vocab, n))
    pic = lambda n: rng.normal(size=(n, s, s, 3)).astype(np.float32)
    return [
        gen.Request(np.array([1] + [IMAGE_ID] * k + text(3), np.int32), pic(1)),  # image first
        gen.Request(np.array([1] + text(9) + [IMAGE_ID] * k + text(2) + [IMAGE_ID] * k + text(1)), pic(2)),
        gen.Request(np.array([1] + text(5), np.int32), pic(0)),  # text only, shortest: most left padding
    ]


@pytest.mark.slow
def test_cached_greedy_equals_full_forward(tiny_model):
    model, params, k, s = tiny_model
    vocab = model.decoder.vocab_size
    requests = _requests(k, s, vocab)
    generator = gen.Generator(model, tokens_per_image=k, image_id=IMAGE_ID, pad_id=PAD_ID, batch_size=4)
    out = generator(params, requests, gen.Sampling(max_new_tokens=6))
    forward = jax.jit(lambda p, t, i, idx: model.apply({"params": p}, t, images=i, image_token_index=idx)["logits"])
    for req, (ids, logps) in zip(requests, out):
        expected = full_forward_greedy(forward, params, req, 6, s)
        assert ids == expected
        assert len(logps) == 6 and all(lp <= 0 for lp in logps)
    # A stop token ends its row early and is not returned; other rows go on.
    stop = out[0][0][2]
    stopped = generator(params, requests, gen.Sampling(max_new_tokens=6, stop_ids=(stop,)))
    for (full, _), (ids, _) in zip(out, stopped):
        assert ids == full[: full.index(stop)] if stop in full else ids == full


def full_forward_greedy(forward, params, request, max_new_tokens, s, length=64):
    """The reference: greedy tokens by re-running the whole sequence (right-padded to one length) for each token."""
    ids = list(request.tokens)
    images = np.zeros((1, 2, s, s, 3), np.float32)
    images[0, : len(request.images)] = request.images
    for _ in range(max_new_tokens):
        tokens = np.zeros((1, length), np.int32)
        tokens[0, : len(ids)] = ids
        index = np.full(tokens.shape, -1, np.int32)
        index[tokens == IMAGE_ID] = np.arange(int((tokens == IMAGE_ID).sum()))
        logits = forward(params, tokens, images, index)
        ids.append(int(jnp.argmax(logits[0, len(ids) - 1])))  # causal: the padding after it is never seen
    return ids[len(request.tokens):]


@pytest.mark.slow
def test_scores_equal_full_forward_log_likelihood(tiny_model):
    model, params, k, s = tiny_model
    requests = _requests(k, s, model.decoder.vocab_size)
    conts = [[40, 41], [50], [60, 61, 62]]
    scores = gen.score_continuations(model, params, requests, conts, image_id=IMAGE_ID, pad_id=PAD_ID,
                                     tokens_per_image=k, batch_size=4)
    for req, cont, score in zip(requests, conts, scores):
        tokens = np.concatenate([req.tokens, cont]).astype(np.int32)[None]
        kwargs = {}
        if len(req.images):
            index = np.full(tokens.shape, -1, np.int32)
            index[tokens == IMAGE_ID] = np.arange(int((tokens == IMAGE_ID).sum()))
            kwargs = {"images": jnp.asarray(req.images)[None], "image_token_index": index}
        logp = jax.nn.log_softmax(model.apply({"params": params}, tokens, **kwargs)["logits"][0])
        n = len(req.tokens)
        expected = sum(float(logp[n - 1 + i, c]) for i, c in enumerate(cont))
        assert score == pytest.approx(expected, abs=1e-3)


def test_top_p_samples_only_the_nucleus():
    logits = jnp.log(jnp.array([[0.5, 0.3, 0.15, 0.05]] * 4000))
    tokens = np.asarray(gen.pick_tokens(logits, jax.random.PRNGKey(0), temperature=1.0, top_p=0.7))
    counts = np.bincount(tokens, minlength=4) / len(tokens)
    assert counts[2] == 0 and counts[3] == 0  # 0.5 + 0.3 already reach 0.7
    assert counts[0] == pytest.approx(0.5 / 0.8, abs=0.03)
    greedy = np.asarray(gen.pick_tokens(logits[:2], jax.random.PRNGKey(1), temperature=0.0, top_p=1.0))
    assert list(greedy) == [0, 0]


@pytest.mark.slow
def test_owl3_left_padded_batch_equals_each_prompt_alone():
    """Owl3 prompts of different lengths, images at different places (or none), generate batched and left-padded
    exactly what each generates alone; the eval's Generator (chunks of 2) gives the same."""
    from mm1_jax.models.owl3 import tiny_owl3_config
    from mm1_jax.pretrained import LoadedOwl3
    from tests.test_hyper_attention import randomize

    cfg = tiny_owl3_config()
    token = cfg.image_token_id
    module = build_model(cfg)
    params = module.init(jax.random.PRNGKey(0), np.array([[1, token, 2]], np.int32),
                         np.zeros((1, 28, 28, 3), np.float32))["params"]
    loaded = LoadedOwl3(module, randomize(params, 5, scale=0.3), cfg, token)
    rng = np.random.default_rng(0)
    prompts = [rng.integers(0, token, size=n).astype(np.int32) for n in (7, 4, 9, 5)]
    prompts[0][3] = token
    prompts[1][0] = prompts[1][2] = token
    prompts[3][4] = token  # the placeholder is the prompt's last token
    pics = [rng.normal(size=(int(np.sum(p == token)), 28, 28, 3)).astype(np.float32) for p in prompts]
    alone = [loaded.generate(p[None], pic if len(pic) else None, max_new_tokens=4)[0] for p, pic in zip(prompts, pics)]
    batched = loaded.generate(prompts, np.concatenate(pics), max_new_tokens=4)
    np.testing.assert_array_equal(batched, np.stack(alone))
    assert len({tuple(a) for a in alone}) > 1  # the rows really differ
    adapter = gen.Generator(module, image_token_id=token, pad_id=0, batch_size=2)
    out = adapter(loaded.params, [gen.Request(p, pic) for p, pic in zip(prompts, pics)], gen.Sampling(max_new_tokens=4))
    assert [o[0] for o in out] == [list(map(int, a)) for a in alone]


@pytest.mark.slow
def test_owl3_log_probs_are_real():
    """Owl3 generation now returns the tokens' log-probs (they were NaN): each equals the full forward's."""
    loaded, token = _tiny_owl3()
    rng = np.random.default_rng(3)
    prompt = rng.integers(0, token, size=6).astype(np.int32)
    prompt[2] = token
    pic = rng.normal(size=(1, 28, 28, 3)).astype(np.float32)
    generator = gen.Generator(loaded.module, image_token_id=token, pad_id=0, batch_size=1)
    [(ids, logps)] = generator(loaded.params, [gen.Request(prompt, pic)], gen.Sampling(max_new_tokens=3))
    logits = loaded.logits(np.concatenate([prompt, ids])[None], pic)[0]
    expected = jax.nn.log_softmax(logits[len(prompt) - 1:len(prompt) + 2], axis=-1)[np.arange(3), ids]
    np.testing.assert_allclose(logps, np.asarray(expected), atol=1e-4)


# ----------------------------------------------------------------------------------------------------------------
# Sampling: one pick_tokens
# ----------------------------------------------------------------------------------------------------------------
def test_top_k_samples_only_the_k_most_likely():
    """Over many seeds, only the k most likely tokens (numpy's argsort of fixed logits) are drawn, each of them is,
    and in proportion to their renormalised probabilities; top-p then cuts within the top k."""
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(3, 50)).astype(np.float32) * 2
    k = 5
    top = np.argsort(-logits, axis=-1)[:, :k]
    draws = np.stack([np.asarray(gen.pick_tokens(jnp.asarray(logits), jax.random.PRNGKey(seed), temperature=1.0,
                                                 top_k=k)) for seed in range(600)])  # [seeds, rows]
    for row in range(3):
        assert set(draws[:, row]) == set(top[row])  # never outside the top k, and every one of them
        p = np.exp(logits[row, top[row]] - logits[row, top[row]].max())
        freq = np.array([np.mean(draws[:, row] == t) for t in top[row]])
        np.testing.assert_allclose(freq, p / p.sum(), atol=0.07)
    # top_k=1 is greedy at any temperature; top-p within the top k keeps the nucleus of those k
    one = gen.pick_tokens(jnp.asarray(logits), jax.random.PRNGKey(1), temperature=3.0, top_k=1)
    assert list(np.asarray(one)) == list(top[:, 0])
    flat = jnp.log(jnp.array([[0.4, 0.3, 0.2, 0.1]] * 4000))
    both = np.asarray(gen.pick_tokens(flat, jax.random.PRNGKey(2), temperature=1.0, top_k=3, top_p=0.7))
    counts = np.bincount(both, minlength=4) / len(both)  # top 3: 4/9, 3/9, 2/9 -> nucleus 0.7 keeps the first two
    assert counts[2] == 0 and counts[3] == 0
    assert counts[0] == pytest.approx(4 / 7, abs=0.03)


@pytest.mark.slow
def test_greedy_temperature_top_k_top_p_all_go_through_pick_tokens(tiny_model, monkeypatch):
    """The generator's every token comes from `pick_tokens` with the Sampling's settings (greedy too), and the
    settings mean what they say: top_k=1 and a tiny top_p are greedy at any temperature."""
    model, params, k, s = tiny_model
    requests = _requests(k, s, model.decoder.vocab_size)
    generator = gen.Generator(model, tokens_per_image=k, image_id=IMAGE_ID, pad_id=PAD_ID, batch_size=4)
    greedy = generator(params, requests, gen.Sampling(max_new_tokens=5))
    seen = []
    real = gen.pick_tokens

    def spy(logits, key, temperature=0.0, top_k=0, top_p=1.0):
        seen.append((temperature, top_k, top_p))
        return real(logits, key, temperature, top_k, top_p)

    monkeypatch.setattr(gen, "pick_tokens", spy)
    settings = [dict(temperature=0.0), dict(temperature=0.9), dict(temperature=0.8, top_p=0.75),
                dict(temperature=2.5, top_k=1), dict(temperature=2.0, top_p=1e-6), dict(temperature=0.7, top_k=3)]
    outs = []
    for setting in settings:  # max_new_tokens=3: settings no other test compiled, so every one is traced here
        seen.clear()
        outs.append(generator(params, requests, gen.Sampling(max_new_tokens=3, seed=7, **setting)))
        expected = (setting.get("temperature"), setting.get("top_k", 0), setting.get("top_p", 1.0))
        assert seen and set(seen) == {expected}  # prefill and the loop's step, both through pick_tokens
    for out in (outs[0], outs[3], outs[4]):
        assert [ids for ids, _ in out] == [ids[:3] for ids, _ in greedy]
    # different seeds give different samples (the seed is an argument, not a compiled constant)
    hot = [generator(params, requests, gen.Sampling(max_new_tokens=3, temperature=5.0, seed=seed))
           for seed in range(4)]
    assert len({tuple(tuple(ids) for ids, _ in out) for out in hot}) > 1


# ----------------------------------------------------------------------------------------------------------------
# Compilation: once per shape
# ----------------------------------------------------------------------------------------------------------------
@contextlib.contextmanager
def count_compilations():
    """Counts jax's lowerings to XLA (every compilation, whether or not a persistent cache then serves it)."""
    events = []

    def listener(event, duration_secs, **kwargs):
        if event == "/jax/core/compile/jaxpr_to_mlir_module_duration":
            events.append(kwargs.get("fun_name", "?"))

    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        yield events
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)


def test_mm1_second_call_with_new_prompts_compiles_nothing(tiny_model):
    model, params, k, s = tiny_model
    vocab = model.decoder.vocab_size
    sampling = gen.Sampling(max_new_tokens=4, temperature=0.6, top_k=5, top_p=0.9, stop_ids=(7,), seed=1)
    with count_compilations() as first:
        gen.Generator(model, tokens_per_image=k, image_id=IMAGE_ID, pad_id=PAD_ID, batch_size=2)(
            params, _requests(k, s, vocab), sampling)
    assert first  # the counter counts
    rng = np.random.default_rng(5)
    text = lambda n: list(rng.integers(30, vocab, n))
    pic = lambda n: rng.normal(size=(n, s, s, 3)).astype(np.float32)
    new = [gen.Request(np.array(text(4) + [IMAGE_ID] * k + text(6), np.int32), pic(1)),  # other lengths, same bucket
           gen.Request(np.array([IMAGE_ID] * k + text(2) + [IMAGE_ID] * k, np.int32), pic(2)),
           gen.Request(np.array(text(12), np.int32), pic(0))]
    with count_compilations() as second:  # new prompts and seed, a new Generator of the same model
        out = gen.Generator(model, tokens_per_image=k, image_id=IMAGE_ID, pad_id=PAD_ID, batch_size=2)(
            params, new, dataclasses.replace(sampling, seed=2))
    assert second == []
    assert len(out) == 3 and all(len(ids) <= 4 for ids, _ in out)


@pytest.mark.slow
def test_owl3_second_call_with_new_prompts_compiles_nothing():
    loaded, token = _tiny_owl3()
    rng = np.random.default_rng(1)

    def prompts_and_images():
        prompts = [rng.integers(0, token, size=n).astype(np.int32) for n in (8, 5, 11)]
        prompts[0][2] = prompts[2][0] = prompts[2][7] = token
        return prompts, rng.normal(size=(3, 28, 28, 3)).astype(np.float32)

    prompts, images = prompts_and_images()
    with count_compilations() as first:
        out1 = loaded.generate(prompts, images, max_new_tokens=5, eos_id=3)
    assert first  # the counter counts
    prompts2, images2 = prompts_and_images()
    assert not any(np.array_equal(a, b) for a, b in zip(prompts, prompts2))
    with count_compilations() as second:
        out2 = loaded.generate(prompts2, images2, max_new_tokens=5, eos_id=3)
    assert second == []
    assert out1.shape == out2.shape == (3, 5) and not np.array_equal(out1, out2)
    sampled = dict(max_new_tokens=5, eos_id=3, temperature=1.0, top_k=4)
    loaded.generate(prompts, images, seed=9, **sampled)
    with count_compilations() as third:  # new prompts and a new seed
        loaded.generate(prompts2, images2, seed=10, **sampled)
    assert third == []


def _tiny_owl3():
    from mm1_jax.models.owl3 import tiny_owl3_config
    from mm1_jax.pretrained import LoadedOwl3
    from tests.test_hyper_attention import randomize

    cfg = tiny_owl3_config()
    token = cfg.image_token_id
    module = build_model(cfg)
    params = module.init(jax.random.PRNGKey(0), np.array([[1, token, 2]], np.int32),
                         np.zeros((1, 28, 28, 3), np.float32))["params"]
    return LoadedOwl3(module, randomize(params, 5, scale=0.3), cfg, token), token


@pytest.mark.slow
def test_stream_yields_what_the_generator_returns():
    """`stream` (one call per token, for a console) gives the tokens and log-probs of the batched while-loop
    generator, greedy and sampled, for a slot-route MM1 prompt with images."""
    from configs import tiny
    from mm1_jax.models import build_model
    from mm1_jax.runtime import checkpoint

    config = tiny.get_config()
    model = build_model(config.model)
    params = checkpoint.load_params(model, config.model, None, seed=1)
    k, image_id = 16, 4
    rng = np.random.default_rng(0)
    tokens = np.concatenate([[1], [image_id] * k, rng.integers(20, 200, size=5)]).astype(np.int32)
    request = gen.Request(tokens, rng.standard_normal((1, 64, 64, 3)).astype(np.float32))
    for sampling in (gen.Sampling(max_new_tokens=12, stop_ids=(2,)),
                     gen.Sampling(max_new_tokens=12, temperature=0.8, top_k=20, seed=3)):
        batched = gen.Generator(model, tokens_per_image=k, image_id=image_id, pad_id=0, batch_size=1)(
            params, [request], sampling)[0]
        streamed = list(gen.stream(model, params, request, sampling, pad_id=0, tokens_per_image=k, image_id=image_id))
        assert [t for t, _ in streamed] == batched[0] and len(batched[0]) > 0
        np.testing.assert_allclose([p for _, p in streamed], batched[1], rtol=1e-5, atol=1e-5)
