"""Cached generation equals re-running the full forward; nucleus sampling keeps only the nucleus; scoring."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import tiny
from mm1_jax.eval import generate as gen
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


def test_owl3_left_padded_batch_equals_each_prompt_alone():
    """Owl3 prompts of different lengths, images at different places (or none), generate batched and left-padded
    exactly what each generates alone; the eval adapter (chunks of 2) gives the same."""
    from mm1_jax.models.owl3 import LoadedOwl3, build_owl3, tiny_owl3_config
    from tests.test_hyper_attention import randomize

    cfg = tiny_owl3_config()
    token = cfg.image_token_id
    module = build_owl3(cfg)
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
    adapter = gen.Owl3Generator(module, image_token_id=token, batch_size=2)
    out = adapter(loaded.params, [gen.Request(p, pic) for p, pic in zip(prompts, pics)], gen.Sampling(max_new_tokens=4))
    assert [o[0] for o in out] == [list(map(int, a)) for a in alone]
