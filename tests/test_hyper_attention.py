"""Hyper attention layer and decoder: a plain-numpy reference of the documented math (REFERENCE.md, mPLUG-Owl3),
the zero gate, earlier-images-only visibility, packed rows, the KV cache, the MM1 connector choice, bad input."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from mm1_jax.models.decoder import Decoder
from mm1_jax.models.hyper_attention import HyperDecoder, HyperDecoderLayer

D, H, KVH, DH, MLP, LV, THETA, EPS = 32, 4, 2, 8, 48, 3, 1e4, 1e-6


def randomize(params, seed, scale=0.2):
    """Every parameter random (biases and norm scales too), so that each one matters."""
    leaves, tree = jax.tree.flatten(nn.unbox(params))
    keys = jax.random.split(jax.random.PRNGKey(seed), len(leaves))
    return jax.tree.unflatten(tree, [np.asarray(jax.random.normal(k, x.shape) * scale + (x == 1) * 1.0)
                                     for k, x in zip(keys, leaves)])


# ----------------------------------------------------------------------------------------------------------------
# The documented math in numpy, one row at a time; weights in the checkpoint's (torch) layout.
# ----------------------------------------------------------------------------------------------------------------
def rms(x, w):
    return x / np.sqrt(np.mean(x * x, -1, keepdims=True) + EPS) * w


def rope(x, pos):
    """x [L, n, Dh] rotated (rotate-half) at integer positions pos [L], float64."""
    inv = 1.0 / THETA ** (np.arange(0, DH, 2) / DH)
    ang = np.concatenate([pos[:, None] * inv] * 2, -1)[:, None, :]
    rot = np.concatenate([-x[..., DH // 2:], x[..., :DH // 2]], -1)
    return x * np.cos(ang) + rot * np.sin(ang)


def attend(q, k, v, allowed):
    """q [L, H, Dh], k/v [S, KVH, Dh], allowed [L, S] -> [L, H, Dh]; head h uses KV head h // (H / KVH)."""
    out = np.zeros_like(q)
    for h in range(H):
        kv = h // (H // KVH)
        logits = q[:, h] @ k[:, kv].T / np.sqrt(DH)
        logits = np.where(allowed, logits, -1e30)
        w = np.exp(logits - logits.max(-1, keepdims=True))
        w = np.where(allowed, w, 0)
        w = w / np.maximum(w.sum(-1, keepdims=True), 1e-30)
        out[:, h] = w @ v[:, kv]
    return out


def reference_layer(t, x, images, starts):
    """x [L, D] text states; images [n, LV, D]; starts[j] = index of image j's placeholder."""
    h = rms(x, t["norm1"])
    length = len(x)
    q = (h @ t["wq"].T + t["bq"]).reshape(length, H, DH)
    k = (h @ t["wk"].T + t["bk"]).reshape(length, KVH, DH)
    v = (h @ t["wv"].T + t["bv"]).reshape(length, KVH, DH)
    pos = np.arange(length, dtype=np.float64)
    q, k = rope(q, pos), rope(k, pos)
    s = attend(q, k, v, np.tril(np.ones((length, length), bool)))
    out = s
    if len(starts):
        vis = rms(images, t["norm1"]).reshape(-1, D) @ t["wkv"].T + t["bkv"]
        vis = vis.reshape(-1, KVH, 2, DH)  # per KV head: Dh key features, then Dh value features
        image_pos = np.repeat(np.asarray(starts, np.float64) + 1, LV)
        vk, vv = rope(vis[:, :, 0], image_pos), vis[:, :, 1]
        seen = np.repeat(np.asarray(starts)[None, :] < np.arange(length)[:, None], LV, axis=1)
        c = attend(q, vk, vv, seen)
        g = 1 / (1 + np.exp(-(s @ t["wg"].T + t["bg"])))
        out = np.where(seen.any(-1)[:, None, None], s * (1 - g) + c * g, s)
    x = x + out.reshape(length, H * DH) @ t["wo"].T
    h = rms(x, t["norm2"])
    gate = h @ t["w_gate"].T
    return x + (gate / (1 + np.exp(-gate)) * (h @ t["w_up"].T)) @ t["w_down"].T


def torch_layout(p):
    """Our layer params -> the checkpoint's tensors (v_kv_proj re-assembled per KV head as [k | v])."""
    a = {k: jax.tree.map(lambda x: np.asarray(x, np.float64), v) for k, v in p["attn"].items()}
    heads_in = lambda kern: kern.reshape(D, -1).T  # noqa: E731
    kv_w = np.stack([a["image_k_proj"]["kernel"].transpose(1, 2, 0), a["image_v_proj"]["kernel"].transpose(1, 2, 0)], 1)
    kv_b = np.stack([a["image_k_proj"]["bias"], a["image_v_proj"]["bias"]], 1)
    return dict(
        norm1=np.asarray(p["input_norm"]["scale"]), norm2=np.asarray(p["post_attn_norm"]["scale"]),
        wq=heads_in(a["q_proj"]["kernel"]), bq=a["q_proj"]["bias"].reshape(-1),
        wk=heads_in(a["k_proj"]["kernel"]), bk=a["k_proj"]["bias"].reshape(-1),
        wv=heads_in(a["v_proj"]["kernel"]), bv=a["v_proj"]["bias"].reshape(-1),
        wo=a["o_proj"]["kernel"].reshape(H * DH, D).T,
        wkv=kv_w.reshape(KVH * 2 * DH, D), bkv=kv_b.reshape(-1),
        wg=a["gate_proj"]["kernel"].T, bg=a["gate_proj"]["bias"],
        **{f"w_{n}": np.asarray(p["mlp"][f"{n}_proj"]["kernel"], np.float64).T for n in ("gate", "up", "down")})


LAYER = HyperDecoderLayer(width=D, num_heads=H, num_kv_heads=KVH, head_dim=DH, mlp_dim=MLP, rope_theta=THETA,
                          qkv_bias=True, norm_eps=EPS, dtype=jnp.float32)


@pytest.fixture(scope="module")
def layer_case():
    """Two rows of 10 tokens: row 0 has text before its two images (placeholders at 3 and 6), row 1 one image at 0."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 11, D)).astype(np.float32)  # 11: the last token is the decode step
    images = rng.normal(size=(2, 2, LV, D)).astype(np.float32)
    index = np.array([[3, 6], [0, -1]], np.int32)
    pos = np.broadcast_to(np.arange(10, dtype=np.int32), (2, 10))
    seg = np.ones((2, 10), np.int32)
    params = LAYER.init(jax.random.PRNGKey(0), x[:, :10], pos, seg, False, images, index)["params"]
    params = randomize(params, 1)
    return x, images, index, params


def test_layer_equals_numpy_reference(layer_case):
    x, images, index, params = layer_case
    pos = np.broadcast_to(np.arange(10, dtype=np.int32), (2, 10))
    apply = jax.jit(lambda p, *a: LAYER.apply({"params": p}, *a)[0], static_argnums=4)
    ours = np.asarray(apply(params, x[:, :10], pos, np.ones((2, 10), np.int32), False, images, index))
    t = torch_layout(params)
    for b, starts in enumerate([[3, 6], [0]]):
        want = reference_layer(t, x[b, :10].astype(np.float64), images[b, :len(starts)].astype(np.float64), starts)
        np.testing.assert_allclose(ours[b], want, atol=2e-5, rtol=1e-5)
    # the images matter after the first placeholder and not up to it
    plain = np.asarray(apply(params, x[:, :10], pos, np.ones((2, 10), np.int32), False, images, np.full((2, 2), -1)))
    np.testing.assert_array_equal(ours[0, :4], plain[0, :4])
    assert np.abs(ours[0, 4:] - plain[0, 4:]).min() > 1e-4


def test_decode_step_equals_numpy_reference(layer_case):
    """Prefill 10 tokens with the images, then one token that reads the cached image keys/values."""
    x, images, index, params = layer_case
    seg = np.ones((2, 11), np.int32)
    pos = np.broadcast_to(np.arange(11, dtype=np.int32), (2, 11))
    cache = LAYER.init(jax.random.PRNGKey(0), x, pos, seg, True, images, index)["cache"]
    cache = jax.tree.map(jnp.zeros_like, cache)
    run = jax.jit(lambda p, c, xs, ps, ss, im, ix: LAYER.apply({"params": p, "cache": c}, xs, ps, ss, True, im, ix,
                                                               mutable=["cache"]))
    (_, _), state = run(params, cache, x[:, :10], pos[:, :10], seg[:, :10], images, index)
    (step, _), _ = run(params, state["cache"], x[:, 10:], pos[:, 10:], seg[:, 10:], None, None)
    t = torch_layout(params)
    for b, starts in enumerate([[3, 6], [0]]):
        want = reference_layer(t, x[b].astype(np.float64), images[b, :len(starts)].astype(np.float64), starts)
        np.testing.assert_allclose(np.asarray(step)[b, 0], want[-1], atol=2e-5, rtol=1e-5)


# ----------------------------------------------------------------------------------------------------------------
# The decoder
# ----------------------------------------------------------------------------------------------------------------
DEC = dict(vocab_size=50, width=D, depth=3, num_heads=H, num_kv_heads=KVH, head_dim=DH, mlp_dim=MLP, rope_theta=THETA,
           qkv_bias=True, norm_eps=EPS)


@pytest.fixture(scope="module")
def decoder_case():
    rng = np.random.default_rng(1)
    tokens = rng.integers(0, 50, size=(1, 12)).astype(np.int32)
    images = rng.normal(size=(1, 2, LV, D)).astype(np.float32)
    index = np.array([[2, 5]], np.int32)
    model = HyperDecoder(**DEC, hyper_layers=(0, 2))
    params = randomize(model.init(jax.random.PRNGKey(0), tokens, images=images, image_index=index)["params"], 2)
    return model, params, tokens, images, index


def test_zero_gate_equals_plain_decoder(decoder_case):
    model, params, tokens, images, index = decoder_case
    closed = jax.tree.map(lambda x: x, params)
    for i in (0, 2):
        closed[f"layer_{i}"]["attn"]["gate_proj"]["bias"] = np.full((DH,), -1e4, np.float32)  # sigmoid -> 0
    ours = jax.jit(lambda p: model.apply({"params": p}, tokens, images=images, image_index=index)["logits"])(closed)
    plain_params = jax.tree.map(lambda x: x, params)
    for i in (0, 2):
        for extra in ("image_k_proj", "image_v_proj", "gate_proj"):
            del plain_params[f"layer_{i}"]["attn"][extra]
    plain = jax.jit(lambda p: Decoder(**DEC).apply({"params": p}, tokens)["logits"])(plain_params)
    np.testing.assert_allclose(np.asarray(ours), np.asarray(plain), atol=1e-5, rtol=1e-5)
    opened = model.apply({"params": params}, tokens, images=images, image_index=index)["logits"]
    assert np.abs(np.asarray(opened)[0, 3:] - np.asarray(plain)[0, 3:]).max() > 1e-3


def test_packed_rows_keep_documents_apart(decoder_case):
    """Row = [doc 1 (6 tokens, image at 2) | doc 2 (6 tokens, image at 8)]: doc 2 equals doc 2 run alone."""
    model, params, tokens, images, _ = decoder_case
    seg = np.array([[1] * 6 + [2] * 6], np.int32)
    pos = np.array([list(range(6)) * 2], np.int32)
    index = np.array([[2, 8]], np.int32)
    packed = model.apply({"params": params}, tokens, images=images, image_index=index, positions=pos,
                         segment_ids=seg)["logits"]
    alone = model.apply({"params": params}, tokens[:, 6:], images=images[:, 1:], image_index=np.array([[2]]))["logits"]
    np.testing.assert_allclose(np.asarray(packed)[0, 6:], np.asarray(alone)[0], atol=1e-5, rtol=1e-5)
    first = model.apply({"params": params}, tokens[:, :6], images=images[:, :1], image_index=np.array([[2]]))["logits"]
    np.testing.assert_allclose(np.asarray(packed)[0, :6], np.asarray(first)[0], atol=1e-5, rtol=1e-5)


def test_hyper_layer_index_out_of_range():
    tokens = np.zeros((1, 4), np.int32)
    with pytest.raises(ValueError, match=r"hyper_layers=\[1, 3\] holds 3, outside the decoder's layers 0..2"):
        HyperDecoder(**DEC, hyper_layers=(1, 3)).init(jax.random.PRNGKey(0), tokens)


def test_mm1_hyper_attention_connector():
    """connector 'hyper_attention' in an MM1 config: one slot token per image, read by the hyper layers."""
    from mm1_jax.models import build_model

    cfg = ml_collections.ConfigDict(dict(
        encoder=dict(style="clip", image_size=16, patch_size=8, width=16, depth=1, num_heads=2, mlp_dim=32,
                     norm_eps=1e-5, feature_layer=-1, feature_norm=False, drop_class_token=True),
        connector=dict(name="hyper_attention", num_tokens=1, hyper_layers=(1,), mlp_depth=1),
        decoder=dict(vocab_size=40, width=D, depth=2, num_heads=H, num_kv_heads=KVH, mlp_dim=MLP, norm_eps=1e-5),
        max_images=2, dtype="float32"))
    model = build_model(cfg)
    rng = np.random.default_rng(3)
    tokens = rng.integers(0, 40, size=(1, 8)).astype(np.int32)
    slot = np.full((1, 8), -1, np.int32)
    slot[0, 3], slot[0, 5] = 0, 1
    images = rng.normal(size=(1, 2, 16, 16, 3)).astype(np.float32)
    params = model.init(jax.random.PRNGKey(0), tokens, images=images, image_token_index=slot)["params"]
    assert "image_k_proj" in params["decoder"]["layer_1"]["attn"] and "layers_0" in params["connector"]
    run = jax.jit(lambda im: model.apply({"params": params}, tokens, images=im, image_token_index=slot)["logits"])
    a = np.asarray(run(images))
    b = np.asarray(run(images * np.array([1, 0], np.float32)[None, :, None, None, None]))
    np.testing.assert_array_equal(a[0, :6], b[0, :6])  # the second image (slot at 5) is seen from token 6 on
    assert np.abs(a[0, 6:] - b[0, 6:]).max() > 1e-4
    bad = cfg.copy_and_resolve_references()
    bad.connector.num_tokens = 4
    with pytest.raises(ValueError, match="num_tokens=4 must be 1 for connector 'hyper_attention'"):
        build_model(bad)
