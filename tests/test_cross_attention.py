"""Gated cross-attention layers (mPLUG-Owl3 v2 Table 8's pre- and post-cross-attention rows): the block against a
plain-numpy reference of Flamingo's GATED XATTN-DENSE math (arXiv 2204.14198, Sec. 2.2, Fig. 4: tanh-gated
cross-attention, then a tanh-gated FFN), the block before ('pre') and after ('post') self-attention, zero gates at
initialisation leaving the decoder unchanged, scanned == unscanned with mixed kinds (self, hyper, cross, MoE), cached
decoding == the full forward (layer, decoder, MM1 through the generator), the MM1 placeholder route, FLOPs against
XLA's count, and config mistakes refused in one sentence."""
import re

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from mm1_jax.models.cross_attention import GatedCrossAttention
from mm1_jax.models.decoder import Decoder, DecoderLayer, layer_kinds, scan_period, stack_layers, unstack_layers

D, H, KVH, DH, MLP, LV, THETA, EPS = 32, 4, 2, 8, 48, 3, 1e4, 1e-6


def randomize(params, seed, scale=0.2):
    """Every parameter random (norm scales around 1, gates too: tanh(1 + noise) is far from 0)."""
    leaves, tree = jax.tree.flatten(nn.unbox(params))
    keys = jax.random.split(jax.random.PRNGKey(seed), len(leaves))
    return jax.tree.unflatten(tree, [np.asarray(jax.random.normal(k, x.shape) * scale + (x == 1) + (x.ndim == 0),
                                                np.float32) for k, x in zip(keys, leaves)])


# ----------------------------------------------------------------------------------------------------------------
# The documented math in numpy (float64), one row at a time, on our parameter layout
# ----------------------------------------------------------------------------------------------------------------
def f64(tree):
    return jax.tree.map(lambda a: np.asarray(a, np.float64), tree)


def rms(x, w):
    return x / np.sqrt(np.mean(x * x, -1, keepdims=True) + EPS) * w


def rope(x, pos):
    inv = 1.0 / THETA ** (np.arange(0, DH, 2) / DH)
    ang = np.concatenate([pos[:, None] * inv] * 2, -1)[:, None, :]
    rot = np.concatenate([-x[..., DH // 2:], x[..., :DH // 2]], -1)
    return x * np.cos(ang) + rot * np.sin(ang)


def attend(q, k, v, allowed):
    """q [L, H, Dh], k/v [S, KVH, Dh], allowed [L, S] -> [L, H, Dh]; a row with nothing allowed gives zeros."""
    out = np.zeros_like(q)
    for h in range(H):
        kv = h // (H // KVH)
        logits = np.where(allowed, q[:, h] @ k[:, kv].T / np.sqrt(DH), -np.inf)
        peak = np.max(logits, -1, keepdims=True)
        w = np.where(allowed, np.exp(logits - np.where(np.isfinite(peak), peak, 0)), 0)
        out[:, h] = w / np.maximum(w.sum(-1, keepdims=True), 1e-300) @ v[:, kv]
    return out


def heads(x, kernel):
    """x [L, D] through a q/k/v kernel [D, n, Dh] -> [L, n, Dh]."""
    return np.tensordot(x, kernel, axes=1)


def out(x, kernel):
    """Heads [L, H, Dh] through an o_proj kernel [H, Dh, D] -> [L, D]."""
    return np.tensordot(x, kernel, axes=2)


def swiglu(h, p):
    g = h @ p["gate_proj"]["kernel"]
    return (g / (1 + np.exp(-g)) * (h @ p["up_proj"]["kernel"])) @ p["down_proj"]["kernel"]


def reference_cross(c, x, images, starts):
    """Flamingo's GATED XATTN-DENSE: y = x + tanh(a_x) o(attn(q(norm x), k(norm V), v(norm V)));
    out = y + tanh(a_d) FFN(norm y). Token i sees image j when its placeholder starts[j] < i."""
    length = len(x)
    q = heads(rms(x, c["attn_norm"]["scale"]), c["q_proj"]["kernel"])
    im = rms(images, c["image_norm"]["scale"]).reshape(-1, D)
    k, v = heads(im, c["k_proj"]["kernel"]), heads(im, c["v_proj"]["kernel"])
    seen = np.repeat(np.asarray(starts)[None, :] < np.arange(length)[:, None], LV, axis=1)
    y = x + np.tanh(c["attn_gate"]) * out(attend(q, k, v, seen), c["o_proj"]["kernel"])
    return y + np.tanh(c["mlp_gate"]) * swiglu(rms(y, c["mlp_norm"]["scale"]), c["mlp"])


def reference_self(p, x):
    """x + the GQA self-attention sub-layer (RoPE, causal, no biases)."""
    a, length = p["attn"], len(x)
    h = rms(x, p["input_norm"]["scale"])
    pos = np.arange(length, dtype=np.float64)
    q, k = rope(heads(h, a["q_proj"]["kernel"]), pos), rope(heads(h, a["k_proj"]["kernel"]), pos)
    s = attend(q, k, heads(h, a["v_proj"]["kernel"]), np.tril(np.ones((length, length), bool)))
    return x + out(s, a["o_proj"]["kernel"])


def reference_layer(p, x, images, starts, position):
    """A decoder layer with its cross block 'pre' (before self-attention) or 'post' (after it, before the FFN)."""
    p = f64(p)
    if position == "pre":
        x = reference_cross(p["cross"], x, images, starts)
    x = reference_self(p, x)
    if position == "post":
        x = reference_cross(p["cross"], x, images, starts)
    return x + swiglu(rms(x, p["post_attn_norm"]["scale"]), p["mlp"])


def reference_decoder(params, tokens, images, starts, cross_layers, position):
    x = np.asarray(params["embed_tokens"]["embedding"], np.float64)[tokens]
    for i in range(sum(1 for k in params if k.startswith("layer_"))):
        p = params[f"layer_{i}"]
        x = reference_layer(p, x, images, starts, position if i in cross_layers else None)
    x = rms(x, np.asarray(params["final_norm"]["scale"], np.float64))
    return x @ np.asarray(params["lm_head"]["kernel"], np.float64)


# ----------------------------------------------------------------------------------------------------------------
# The block and the layer
# ----------------------------------------------------------------------------------------------------------------
def layer(position):
    return DecoderLayer(width=D, num_heads=H, num_kv_heads=KVH, head_dim=DH, mlp_dim=MLP, rope_theta=THETA,
                        qkv_bias=False, norm_eps=EPS, dtype=jnp.float32, cross_attention=position)


@pytest.fixture(scope="module")
def case():
    """Two rows of 10 tokens (+1 decode step): row 0 has text before its images (placeholders 3, 6), row 1 one image
    at 0; the layer's parameters random (the same tree for 'pre' and 'post'), gates included."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 11, D)).astype(np.float32)
    images = rng.normal(size=(2, 2, LV, D)).astype(np.float32)
    index = np.array([[3, 6], [0, -1]], np.int32)
    pos = np.broadcast_to(np.arange(10, dtype=np.int32), (2, 10))
    seg = np.ones((2, 10), np.int32)
    init = layer("pre").init(jax.random.PRNGKey(0), x[:, :10], pos, seg, False, images, index)["params"]
    assert float(nn.unbox(init)["cross"]["attn_gate"]) == float(nn.unbox(init)["cross"]["mlp_gate"]) == 0.0
    return x, images, index, randomize(init, 1)


STARTS = [[3, 6], [0]]


def test_block_equals_numpy_reference(case):
    x, images, index, params = case
    block = GatedCrossAttention(H, KVH, DH, MLP, EPS)
    seg = np.ones((2, 10), np.int32)
    ours = np.asarray(block.apply({"params": params["cross"]}, x[:, :10], images, index, segment_ids=seg))
    for b, starts in enumerate(STARTS):
        want = reference_cross(f64(params["cross"]), x[b, :10].astype(np.float64),
                               images[b, :len(starts)].astype(np.float64), starts)
        np.testing.assert_allclose(ours[b], want, atol=2e-5, rtol=1e-5)
    # gates at 0: the block is the identity, bit for bit
    closed = dict(params["cross"], attn_gate=np.float32(0), mlp_gate=np.float32(0))
    same = np.asarray(block.apply({"params": closed}, x[:, :10], images, index, segment_ids=seg))
    np.testing.assert_array_equal(same, x[:, :10])
    # the FFN gate closed: tokens up to and on the first placeholder see no image and are left alone
    no_ffn = dict(params["cross"], mlp_gate=np.float32(0))
    only_attn = np.asarray(block.apply({"params": no_ffn}, x[:, :10], images, index, segment_ids=seg))
    np.testing.assert_array_equal(only_attn[0, :4], x[0, :4])
    np.testing.assert_array_equal(only_attn[1, :1], x[1, :1])
    assert np.abs(only_attn[0, 4:] - x[0, 4:10]).max(-1).min() > 1e-3


@pytest.mark.parametrize("position", ["pre", "post"])
def test_layer_equals_numpy_reference(case, position):
    """The block before or after self-attention: each equals its numpy reference, and the two differ."""
    x, images, index, params = case
    pos = np.broadcast_to(np.arange(10, dtype=np.int32), (2, 10))
    seg = np.ones((2, 10), np.int32)
    run = lambda where: np.asarray(layer(where).apply(  # noqa: E731
        {"params": params}, x[:, :10], pos, seg, False, images, index)[0])
    ours = run(position)
    for b, starts in enumerate(STARTS):
        want = reference_layer(params, x[b, :10].astype(np.float64), images[b, :len(starts)].astype(np.float64),
                               starts, position)
        np.testing.assert_allclose(ours[b], want, atol=5e-5, rtol=1e-5)
    other = run("post" if position == "pre" else "pre")
    assert np.abs(ours - other).max(-1).min() > 1e-3  # every token: the block reads different states


def test_pre_and_post_differ_as_placed(case):
    """With the FFN gate closed, the block only adds what a token reads from the images: in either position the
    tokens up to the first placeholder are the plain layer's (causal self-attention carries nothing back to them)
    and every later token moves; with both gates closed either layer is the plain layer exactly."""
    x, images, index, params = case
    p = jax.tree.map(np.array, params)
    p["cross"]["mlp_gate"] = np.float32(0)
    pos = np.broadcast_to(np.arange(10, dtype=np.int32), (2, 10))
    seg = np.ones((2, 10), np.int32)
    plain_params = {k: v for k, v in p.items() if k != "cross"}
    plain = np.asarray(layer("").apply({"params": plain_params}, x[:, :10], pos, seg, False, images, index)[0])
    for where in ("pre", "post"):
        out = np.asarray(layer(where).apply({"params": p}, x[:, :10], pos, seg, False, images, index)[0])
        np.testing.assert_allclose(out[0, :4], plain[0, :4], atol=1e-6)  # tokens 0..3: placeholder 3 not yet seen
        assert np.abs(out[0, 4:] - plain[0, 4:]).max(-1).min() > 1e-3
    # closing the attention gate too gives the plain layer exactly, whatever the position
    p["cross"]["attn_gate"] = np.float32(0)
    for where in ("pre", "post"):
        out = np.asarray(layer(where).apply({"params": p}, x[:, :10], pos, seg, False, images, index)[0])
        np.testing.assert_array_equal(out, plain)


@pytest.mark.parametrize("position", ["pre", "post"])
def test_decode_step_equals_numpy_reference(case, position):
    """Prefill 10 tokens with the images, then one token that reads the cached image keys/values."""
    x, images, index, params = case
    lay = layer(position)
    seg = np.ones((2, 11), np.int32)
    pos = np.broadcast_to(np.arange(11, dtype=np.int32), (2, 11))
    cache = jax.eval_shape(lambda: lay.init(jax.random.PRNGKey(0), x, pos, seg, True, images, index)["cache"])
    cache = jax.tree.map(lambda c: jnp.zeros(c.shape, c.dtype), cache)
    run = jax.jit(lambda c, xs, ps, ss, im, ix: lay.apply({"params": params, "cache": c}, xs, ps, ss, True, im, ix,
                                                          mutable=["cache"]))
    (_, _), state = run(cache, x[:, :10], pos[:, :10], seg[:, :10], images, index)
    (step, _), _ = run(state["cache"], x[:, 10:], pos[:, 10:], seg[:, 10:], None, None)
    for b, starts in enumerate(STARTS):
        want = reference_layer(params, x[b].astype(np.float64), images[b, :len(starts)].astype(np.float64), starts,
                               position)
        np.testing.assert_allclose(np.asarray(step)[b, 0], want[-1], atol=5e-5, rtol=1e-5)


# ----------------------------------------------------------------------------------------------------------------
# The decoder
# ----------------------------------------------------------------------------------------------------------------
DEC = dict(vocab_size=50, width=D, depth=3, num_heads=H, num_kv_heads=KVH, head_dim=DH, mlp_dim=MLP, rope_theta=THETA,
           norm_eps=EPS)


def test_kinds_and_scan_period():
    kinds = layer_kinds(4, (0, 2), 4, 2, (1, 3), "post")
    assert kinds == (("hyper", False), ("cross_post", True), ("hyper", False), ("cross_post", True))
    assert scan_period(kinds) == 2
    assert scan_period(layer_kinds(4, (), 0, 1, (1, 3), "pre")) == 2
    assert scan_period(layer_kinds(4, (), 0, 1, (1,), "pre")) == 4
    assert Decoder(**DEC, cross_attention_layers=(1,), cross_attention_position="post").kinds()[1] == ("cross_post",
                                                                                                       False)


@pytest.mark.parametrize("position", ["pre", "post"])
def test_zero_gates_equal_plain_decoder_and_reference(position):
    """At initialisation (gates 0) a decoder with cross layers computes the decoder without them; with
    the gates open it equals the numpy reference and differs from the plain decoder."""
    rng = np.random.default_rng(1)
    tokens = rng.integers(0, 50, size=(2, 10)).astype(np.int32)
    images = rng.normal(size=(2, 2, LV, D)).astype(np.float32)
    index = np.array([[2, 5], [0, -1]], np.int32)
    model = Decoder(**DEC, cross_attention_layers=(0, 2), cross_attention_position=position)
    init = nn.unbox(model.init(jax.random.PRNGKey(0), tokens, images=images, image_index=index)["params"])
    assert "cross" in init["layer_0"] and "cross" not in init["layer_1"]
    params = randomize(init, 2)
    closed = jax.tree.map(np.array, params)
    for i in (0, 2):
        closed[f"layer_{i}"]["cross"]["attn_gate"] = closed[f"layer_{i}"]["cross"]["mlp_gate"] = np.float32(0)
    run = jax.jit(lambda p: model.apply({"params": p}, tokens, images=images, image_index=index)["logits"])
    plain_params = {k: ({n: w for n, w in v.items() if n != "cross"} if k.startswith("layer_") else v)
                    for k, v in params.items()}
    plain = np.asarray(Decoder(**DEC).apply({"params": plain_params}, tokens)["logits"])
    np.testing.assert_allclose(np.asarray(run(closed)), plain, atol=1e-5, rtol=1e-5)  # (jit vs eager rounding)
    opened = np.asarray(run(params))
    assert np.abs(opened - plain).max() > 1e-2
    for b, starts in enumerate([[2, 5], [0]]):
        want = reference_decoder(params, tokens[b], images[b, :len(starts)].astype(np.float64), starts, (0, 2),
                                 position)
        np.testing.assert_allclose(opened[b], want, atol=2e-4, rtol=1e-4)


def test_packed_rows_keep_documents_apart():
    """Row = [doc 1 (6 tokens, image at 2) | doc 2 (6 tokens, image at 8)]: each document equals it run alone."""
    rng = np.random.default_rng(4)
    tokens = rng.integers(0, 50, size=(1, 12)).astype(np.int32)
    images = rng.normal(size=(1, 2, LV, D)).astype(np.float32)
    model = Decoder(**DEC, cross_attention_layers=(1,), cross_attention_position="post")
    params = randomize(model.init(jax.random.PRNGKey(0), tokens, images=images, image_index=np.array([[2, 8]]))[
        "params"], 5)
    seg = np.array([[1] * 6 + [2] * 6], np.int32)
    pos = np.array([list(range(6)) * 2], np.int32)
    packed = np.asarray(model.apply({"params": params}, tokens, images=images, image_index=np.array([[2, 8]]),
                                    positions=pos, segment_ids=seg)["logits"])
    for doc in range(2):
        alone = model.apply({"params": params}, tokens[:, 6 * doc:6 * doc + 6], images=images[:, doc:doc + 1],
                            image_index=np.array([[2]]))["logits"]
        np.testing.assert_allclose(packed[0, 6 * doc:6 * doc + 6], np.asarray(alone)[0], atol=1e-5, rtol=1e-5)


MIXED = {  # kinds repeating with period 2
    "cross_pre": (dict(DEC, depth=4), dict(cross_attention_layers=(1, 3), cross_attention_position="pre")),
    "hyper_cross_post_moe": (dict(DEC, depth=4, num_experts=4, top_k=2, moe_every=2),
                             dict(hyper_layers=(0, 2), cross_attention_layers=(1, 3), cross_attention_position="post")),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(MIXED))
def test_scanned_equals_unscanned_and_cached_decoding_equals_full_forward(name):
    """Self / hyper / cross / MoE kinds mixed: the scanned LayerGroup (period 2) gives the unscanned logits, MoE loss
    and gradients; cached decoding, scanned and unscanned, gives the full forward's logits."""
    dec, fields = MIXED[name]
    rng = np.random.default_rng(5)
    tokens = rng.integers(0, 50, size=(2, 10)).astype(np.int32)
    images = rng.normal(size=(2, 2, LV, D)).astype(np.float32)
    index = np.array([[2, 5], [0, -1]], np.int32)
    plain = Decoder(**dec, **fields)
    params = randomize(plain.init(jax.random.PRNGKey(0), tokens, images=images, image_index=index)["params"], 7)
    scanned = Decoder(**dec, **fields, scan_layers=True, remat_policy="full")
    assert scan_period(scanned.kinds()) == 2
    stacked = stack_layers(params, dec["depth"], 2)
    shapes = nn.unbox(jax.eval_shape(scanned.init, jax.random.PRNGKey(0), tokens, images=images, image_index=index))
    assert jax.tree.structure(stacked) == jax.tree.structure(shapes["params"])
    assert "cross" in shapes["params"]["layers"]["sub_1"] and "cross" not in shapes["params"]["layers"]["sub_0"]

    def loss(m, p):
        out = m.apply({"params": p}, tokens, images=images, image_index=index)
        return jnp.mean(out["logits"] ** 2) + out.get("moe_loss", 0.0), out

    (_, ref), g_ref = jax.jit(jax.value_and_grad(lambda p: loss(plain, p), has_aux=True))(params)
    (_, out), g_scan = jax.jit(jax.value_and_grad(lambda p: loss(scanned, p), has_aux=True))(stacked)
    np.testing.assert_allclose(out["logits"], ref["logits"], atol=1e-5, rtol=1e-5)
    if "moe_loss" in ref:
        np.testing.assert_allclose(out["moe_loss"], ref["moe_loss"], rtol=1e-5)
    for a, b in zip(jax.tree.leaves(g_ref), jax.tree.leaves(unstack_layers(g_scan))):
        np.testing.assert_allclose(a, b, atol=1e-5, rtol=1e-4)
    gates = [g_ref[f"layer_{i}"]["cross"]["attn_gate"] for i in fields["cross_attention_layers"]]
    assert min(abs(float(g)) for g in gates) > 0  # the gates learn

    pos = np.broadcast_to(np.arange(10, dtype=np.int32), (2, 10))
    for model, p in ((scanned, stacked), (plain, params)):
        cache = jax.eval_shape(lambda m=model: m.init(jax.random.PRNGKey(0), tokens, images=images, image_index=index,
                                                      decode=True)["cache"])
        run = jax.jit(lambda c, t, im, ix, ps, m=model, q=p: m.apply(
            {"params": q, "cache": c}, t, images=im, image_index=ix, positions=ps, decode=True, mutable=["cache"]))
        # the prompt holds the placeholders (2, 5); the second image is first seen by the first step, from the cache
        out, state = run(jax.tree.map(lambda c: jnp.zeros(c.shape, c.dtype), cache), tokens[:, :6], images, index,
                         pos[:, :6])
        steps = [out["logits"]]
        for t in range(6, 10):
            out, state = run(state["cache"], tokens[:, t:t + 1], None, None, pos[:, t:t + 1])
            steps.append(out["logits"])
        np.testing.assert_allclose(np.concatenate(steps, 1), ref["logits"], atol=1e-5, rtol=1e-5)


# ----------------------------------------------------------------------------------------------------------------
# MM1 with cross-attention layers: the placeholder route, cached generation, FLOPs
# ----------------------------------------------------------------------------------------------------------------
def mm1_cross_config(**decoder):
    decoder = dict(dict(vocab_size=40, width=D, depth=2, num_heads=H, num_kv_heads=KVH, mlp_dim=MLP, norm_eps=1e-5,
                        cross_attention_layers=(1,), cross_attention_position="post"), **decoder)
    return ml_collections.ConfigDict(dict(
        encoder=dict(style="clip", image_size=16, patch_size=8, width=16, depth=1, num_heads=2, mlp_dim=32,
                     norm_eps=1e-5, feature_layer=-1, feature_norm=False, drop_class_token=True),
        connector=dict(name="mlp", mlp_depth=1),
        decoder=decoder,
        max_images=2, dtype="float32"))


@pytest.mark.slow
def test_mm1_cross_route_and_cached_generation():
    """cross_attention_layers in an MM1 config: one placeholder per image, the connector output read by the cross
    block; image_valid=False is the same as no placeholder; greedy cached generation (`runtime.generate`) picks the
    full forward's argmax at every step."""
    from mm1_jax.models import build_model, registry
    from mm1_jax.runtime.generate import Generator, Request, Sampling

    cfg = mm1_cross_config()
    model = build_model(cfg)
    assert registry.image_route(cfg) == model.route == "hyper" and registry.image_tokens(cfg) == 1
    rng = np.random.default_rng(3)
    tokens = rng.integers(1, 39, size=(1, 8)).astype(np.int32)
    tokens[0, 3] = tokens[0, 5] = 39  # the placeholders
    slot = np.where(tokens == 39, np.cumsum(tokens == 39, axis=1) - 1, -1).astype(np.int32)
    images = rng.normal(size=(1, 2, 16, 16, 3)).astype(np.float32)
    params = randomize(model.init(jax.random.PRNGKey(0), tokens, images=images, image_token_index=slot)["params"], 6)
    assert "cross" in params["decoder"]["layer_1"] and "cross" not in params["decoder"]["layer_0"]
    run = jax.jit(lambda im, valid: model.apply({"params": params}, tokens, images=im, image_token_index=slot,
                                                image_valid=valid)["logits"])
    a = np.asarray(run(images, np.ones((1, 2), bool)))
    b = np.asarray(run(images * np.array([1, 0], np.float32)[None, :, None, None, None], np.ones((1, 2), bool)))
    np.testing.assert_array_equal(a[0, :6], b[0, :6])  # the second image (placeholder 5) is seen from token 6 on
    assert np.abs(a[0, 6:] - b[0, 6:]).max() > 1e-4
    masked = np.asarray(run(images, np.array([[True, False]])))
    no_slot = np.asarray(model.apply({"params": params}, tokens, images=images[:, :1],
                                     image_token_index=np.where(slot == 1, -1, slot))["logits"])
    np.testing.assert_allclose(masked, no_slot, atol=1e-5)

    gen = Generator(model, tokens_per_image=1, image_id=39, pad_id=0, batch_size=1, length_bucket=8)
    new, _ = gen(params, [Request(tokens[0], images[0])], Sampling(max_new_tokens=5, temperature=0.0))[0]
    assert len(new) == 5
    full = np.concatenate([tokens[0], new])[None]
    full_slot = np.concatenate([slot, np.full((1, 5), -1, np.int32)], 1)
    logits = np.asarray(model.apply({"params": params}, full, images=images, image_token_index=full_slot)["logits"])
    assert list(np.argmax(logits[0, 7:12], -1)) == new


@pytest.mark.slow
def test_flops_match_the_compiler():
    """What a cross block in layer 1 adds to the forward FLOPs (the analytic count: its text-side matrices per text
    token, its image keys/values per image token, its attention over the image tokens) is within 3% of what it adds
    to XLA's count of the compiled forward. Counting the image K/V projections per text token (64 here, against 16
    image tokens) would be 8% over."""
    from mm1_jax.models import flops, registry
    from mm1_jax.models.inputs import example_batch, input_spec
    from mm1_jax.models.mm1 import loss_terms

    counts = {}
    for layers in ((), (1,)):
        cfg = mm1_cross_config(width=128, num_heads=4, num_kv_heads=2, mlp_dim=256, cross_attention_layers=layers)
        cfg.max_images = 4
        model = registry.build_model(cfg)
        spec = input_spec(cfg)
        init = lambda m=model, s=spec: m.init(jax.random.PRNGKey(0), **example_batch(s, 1, 8))  # noqa: E731
        params = nn.unbox(jax.eval_shape(init)["params"])

        def forward(p, batch, m=model):
            out = m.apply({"params": p}, **batch)
            return loss_terms(out, batch["targets"], batch["loss_weights"])["nll_sum"]

        cost = jax.jit(forward).lower(params, example_batch(spec, 2, 64)).compile().cost_analysis()
        cost = cost[0] if isinstance(cost, (list, tuple)) else cost
        analytic = flops.step_flops(cfg, params, rows=2, seq_len=64, trains={p: False for p in flops.PARTS})
        counts[layers] = (analytic["total"], float(cost["flops"]), flops.image_kv_params(params))
    assert counts[()][2] == 0 and counts[(1,)][2] == 2 * 128 * 2 * 32
    added, compiled = counts[(1,)][0] - counts[()][0], counts[(1,)][1] - counts[()][1]
    assert added == pytest.approx(compiled, rel=0.03)
    assert counts[(1,)][0] == pytest.approx(counts[(1,)][1], rel=0.03)


# ----------------------------------------------------------------------------------------------------------------
# Config mistakes: one sentence naming the field and the value
# ----------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("change,message", [
    (dict(cross_attention_layers=(2,)),
     "model.decoder.cross_attention_layers=[2] holds 2, outside the decoder's layers 0..1 (zero-based)."),
    (dict(cross_attention_layers=(1, 1)), "model.decoder.cross_attention_layers=[1, 1] repeats a layer index."),
    (dict(cross_attention_layers=1),
     "model.decoder.cross_attention_layers=1 must be a tuple of zero-based layer indices, e.g. (1, 3)."),
    (dict(cross_attention_position="middle"),
     "model.decoder.cross_attention_position='middle' is not one of 'pre' (the cross-attention block before the "
     "layer's self-attention) or 'post' (after it)."),
    (dict(hyper_layers=(0, 1)),
     "model.decoder.cross_attention_layers=[1] and model.decoder.hyper_layers=[0, 1] both hold layer 1; a layer reads "
     "the images through one block, hyper attention or cross-attention."),
    (dict(cross_attention_layers=(1,), scan_layers=True, depth=4),
     "model.decoder.scan_layers=True needs the layer kinds to repeat, but model.decoder.cross_attention_layers=[1] has "
     "no period shorter than model.decoder.depth=4; set model.decoder.scan_layers=False"),
    (dict(hyper_layers=(0,), cross_attention_layers=(1,), scan_layers=True, depth=4),
     "but model.decoder.hyper_layers=[0] and model.decoder.cross_attention_layers=[1] has no period shorter"),
])
def test_config_mistakes_are_refused_in_one_sentence(change, message):
    from mm1_jax.models import build_model

    cfg = mm1_cross_config()
    cfg.decoder = {**cfg.decoder.to_dict(), **change}
    with pytest.raises(ValueError, match=re.escape(message)):
        build_model(cfg)


def test_the_module_refuses_the_same_mistakes():
    tokens = np.zeros((1, 4), np.int32)
    with pytest.raises(ValueError, match=re.escape("decoder.cross_attention_position='after' is not one of 'pre'")):
        Decoder(**DEC, cross_attention_layers=(1,), cross_attention_position="after").init(jax.random.PRNGKey(0),
                                                                                           tokens)
    with pytest.raises(ValueError, match=re.escape("decoder.cross_attention_layers=[1] and decoder.hyper_layers=[1]")):
        Decoder(**DEC, cross_attention_layers=(1,), hyper_layers=(1,)).init(jax.random.PRNGKey(0), tokens)
    with pytest.raises(ValueError, match="images were given to a decoder without hyper layers or cross-attention"):
        Decoder(**DEC).init(jax.random.PRNGKey(0), tokens, images=np.zeros((1, 1, LV, D)), image_index=np.zeros((1, 1)))
