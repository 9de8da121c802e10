"""Hyper attention layer and decoder: a plain-numpy reference of the documented math (mPLUG-Owl3, arXiv 2408.04840,
Sec. 3; `x_sdpa` in the release's modeling_hyper_qwen2.py), the zero gate, earlier-images-only visibility, packed rows,
the KV cache, hyper layers with MoE FFNs, scanning, the MM1 hyper image route, selection from the command line, bad
input; the block's parts switched off one at a time (mPLUG-Owl3 v2 Table 10: gate, shared LayerNorm, MI-Rope)."""
import re

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from mm1_jax.models.decoder import Decoder, DecoderLayer

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


def reference_attention(t, x, images, starts, gate=True, shared_norm=True, mi_rope=True):
    """x [L, D] text states; images [n, LV, D]; starts[j] = index of image j's placeholder -> x + attention.

    The switches (Decoder.hyper_gate / hyper_shared_norm / hyper_mi_rope): gate=False mixes S + C; shared_norm=False
    norms the images with their own scale t['norm_img']; mi_rope=False leaves the image keys unrotated."""
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
        vis = rms(images, t["norm1"] if shared_norm else t["norm_img"]).reshape(-1, D) @ t["wkv"].T + t["bkv"]
        vis = vis.reshape(-1, KVH, 2, DH)  # per KV head: Dh key features, then Dh value features
        image_pos = np.repeat(np.asarray(starts, np.float64) + 1, LV)
        vk, vv = (rope(vis[:, :, 0], image_pos) if mi_rope else vis[:, :, 0]), vis[:, :, 1]
        seen = np.repeat(np.asarray(starts)[None, :] < np.arange(length)[:, None], LV, axis=1)
        c = attend(q, vk, vv, seen)
        if gate:
            g = 1 / (1 + np.exp(-(s @ t["wg"].T + t["bg"])))
            mixed = s * (1 - g) + c * g
        else:
            mixed = s + c
        out = np.where(seen.any(-1)[:, None, None], mixed, s)
    return x + out.reshape(length, H * DH) @ t["wo"].T


def reference_layer(t, x, images, starts, ffn=None, **switches):
    """A whole layer: attention, then the dense SwiGLU of `t` or `ffn` (e.g. an MoE) on the post-attention norm."""
    x = reference_attention(t, x, images, starts, **switches)
    h = rms(x, t["norm2"])
    if ffn is not None:
        return x + ffn(h)
    gate = h @ t["w_gate"].T
    return x + (gate / (1 + np.exp(-gate)) * (h @ t["w_up"].T)) @ t["w_down"].T


def torch_layout(p):
    """Our layer params -> the checkpoint's tensors (v_kv_proj re-assembled per KV head as [k | v])."""
    a = {k: jax.tree.map(lambda x: np.asarray(x, np.float64), v) for k, v in p["attn"].items()}
    heads_in = lambda kern: kern.reshape(D, -1).T  # noqa: E731
    out = dict(
        norm1=np.asarray(p["input_norm"]["scale"]), norm2=np.asarray(p["post_attn_norm"]["scale"]),
        wq=heads_in(a["q_proj"]["kernel"]), bq=a["q_proj"]["bias"].reshape(-1),
        wk=heads_in(a["k_proj"]["kernel"]), bk=a["k_proj"]["bias"].reshape(-1),
        wv=heads_in(a["v_proj"]["kernel"]), bv=a["v_proj"]["bias"].reshape(-1),
        wo=a["o_proj"]["kernel"].reshape(H * DH, D).T)
    if "image_k_proj" in a:  # a hyper layer
        kv_w = np.stack([a[n]["kernel"].transpose(1, 2, 0) for n in ("image_k_proj", "image_v_proj")], 1)
        kv_b = np.stack([a["image_k_proj"]["bias"], a["image_v_proj"]["bias"]], 1)
        out.update(wkv=kv_w.reshape(KVH * 2 * DH, D), bkv=kv_b.reshape(-1))
    if "gate_proj" in a:  # a hyper layer with its gate (Decoder.hyper_gate)
        out.update(wg=a["gate_proj"]["kernel"].T, bg=a["gate_proj"]["bias"])
    if "image_norm" in p:  # the images' own norm (Decoder.hyper_shared_norm=False)
        out.update(norm_img=np.asarray(p["image_norm"]["scale"], np.float64))
    if "mlp" in p:  # a dense FFN
        out.update({f"w_{n}": np.asarray(p["mlp"][f"{n}_proj"]["kernel"], np.float64).T
                    for n in ("gate", "up", "down")})
    return out


LAYER = DecoderLayer(width=D, num_heads=H, num_kv_heads=KVH, head_dim=DH, mlp_dim=MLP, rope_theta=THETA,
                     qkv_bias=True, norm_eps=EPS, dtype=jnp.float32, hyper=True)


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


@pytest.mark.slow
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
    model = Decoder(**DEC, hyper_layers=(0, 2))
    params = randomize(model.init(jax.random.PRNGKey(0), tokens, images=images, image_index=index)["params"], 2)
    return model, params, tokens, images, index


@pytest.mark.slow
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
        Decoder(**DEC, hyper_layers=(1, 3)).init(jax.random.PRNGKey(0), tokens)


# ----------------------------------------------------------------------------------------------------------------
# MoE FFNs in hyper layers, scanning
# ----------------------------------------------------------------------------------------------------------------
MOE_DEC = dict(DEC, depth=4, num_experts=8, top_k=2, moe_every=2)  # MoE FFN in layers 1 and 3


def reference_decoder(params, tokens, images, starts, hyper_layers, **switches):
    """The whole decoder in numpy, one row: hyper layers by `reference_layer`, MoE FFNs by the per-token loop."""
    from tests.test_moe import _loop_reference  # top-2 of the experts, renormalised gates, one token at a time

    x = np.asarray(params["embed_tokens"]["embedding"], np.float64)[tokens]
    for i in range(MOE_DEC["depth"]):
        p = params[f"layer_{i}"]
        ffn = None
        if "moe" in p:
            moe = {k: np.asarray(v, np.float64) for k, v in p["moe"].items()}
            ffn = lambda h, moe=moe: _loop_reference(h, moe)  # noqa: E731
        x = reference_layer(torch_layout(p), x, images if i in hyper_layers else None,
                            starts if i in hyper_layers else [], ffn, **switches)
    x = rms(x, np.asarray(params["final_norm"]["scale"], np.float64))
    return x @ np.asarray(params["lm_head"]["kernel"], np.float64)


@pytest.mark.slow
def test_moe_ffn_in_hyper_layers_equals_reference():
    """Layer kinds: 0 dense, 1 hyper + MoE, 2 hyper + dense, 3 MoE; every one against the numpy reference."""
    model = Decoder(**MOE_DEC, hyper_layers=(1, 2))
    rng = np.random.default_rng(4)
    tokens = rng.integers(0, 50, size=(1, 12)).astype(np.int32)
    images = rng.normal(size=(1, 2, LV, D)).astype(np.float32)
    index = np.array([[2, 5]], np.int32)
    params = randomize(model.init(jax.random.PRNGKey(0), tokens, images=images, image_index=index)["params"], 6)
    kinds = {i: ("image_k_proj" in params[f"layer_{i}"]["attn"], "moe" in params[f"layer_{i}"],
                 "mlp" in params[f"layer_{i}"]) for i in range(4)}
    assert kinds == {0: (False, False, True), 1: (True, True, False), 2: (True, False, True), 3: (False, True, False)}
    assert all(model.is_moe_layer(i) == ("moe" in params[f"layer_{i}"]) for i in range(4))
    fwd = jax.jit(lambda p: model.apply({"params": p}, tokens, images=images, image_index=index))
    out = fwd(params)
    want = reference_decoder(params, tokens[0], images[0].astype(np.float64), [2, 5], (1, 2))
    np.testing.assert_allclose(np.asarray(out["logits"])[0], want, atol=1e-4, rtol=1e-4)
    assert out["moe_stats"]["load_balance_loss"].shape == (2,)  # layers 1 and 3
    # the MoE of the hyper layer matters: with its experts zeroed the logits move
    silent = jax.tree.map(np.array, params)
    silent["layer_1"]["moe"]["wo"][:] = 0
    moved = fwd(silent)["logits"]
    assert np.abs(np.asarray(moved) - np.asarray(out["logits"])).max() > 1e-3


@pytest.mark.parametrize("dec,hyper_layers,period,remat", [
    (MOE_DEC, (1, 3), 2, "full"),  # kinds (dense), (hyper + MoE) repeat: groups of 2, layers/sub_0, layers/sub_1
    (DEC, (0, 1, 2), 1, "none"),  # every layer a hyper layer: the layer itself is scanned
])
@pytest.mark.slow
def test_scanned_hyper_layers_equal_unscanned(dec, hyper_layers, period, remat):
    """Same logits, MoE loss and gradients scanned and unscanned; cached decoding scanned equals the full forward."""
    from mm1_jax.models.decoder import stack_layers, unstack_layers

    rng = np.random.default_rng(5)
    tokens = rng.integers(0, 50, size=(2, 10)).astype(np.int32)
    images = rng.normal(size=(2, 2, LV, D)).astype(np.float32)
    index = np.array([[2, 5], [0, -1]], np.int32)
    plain = Decoder(**dec, hyper_layers=hyper_layers)
    params = randomize(plain.init(jax.random.PRNGKey(0), tokens, images=images, image_index=index)["params"], 7)
    scanned = Decoder(**dec, hyper_layers=hyper_layers, scan_layers=True, remat_policy=remat)
    stacked = stack_layers(params, dec["depth"], period)
    shapes = nn.unbox(jax.eval_shape(scanned.init, jax.random.PRNGKey(0), tokens, images=images, image_index=index))
    assert jax.tree.structure(stacked) == jax.tree.structure(shapes["params"])

    def loss(m, p):
        out = m.apply({"params": p}, tokens, images=images, image_index=index)
        return jnp.mean(out["logits"] ** 2) + out.get("moe_loss", 0.0), out

    (_, ref), g_ref = jax.jit(jax.value_and_grad(lambda p: loss(plain, p), has_aux=True))(params)
    (_, out), g_scan = jax.jit(jax.value_and_grad(lambda p: loss(scanned, p), has_aux=True))(stacked)
    np.testing.assert_allclose(out["logits"], ref["logits"], atol=1e-5, rtol=1e-5)
    if "moe_loss" in ref:
        np.testing.assert_allclose(out["moe_loss"], ref["moe_loss"], rtol=1e-5)
        np.testing.assert_allclose(out["moe_stats"]["z_loss"], ref["moe_stats"]["z_loss"], rtol=1e-5)
    for a, b in zip(jax.tree.leaves(g_ref), jax.tree.leaves(unstack_layers(g_scan))):
        np.testing.assert_allclose(a, b, atol=1e-5, rtol=1e-4)

    cache = scanned.init(jax.random.PRNGKey(0), tokens, images=images, image_index=index, decode=True)["cache"]
    cache = jax.tree.map(jnp.zeros_like, cache)
    run = jax.jit(lambda c, t, im, ix, pos: scanned.apply({"params": stacked, "cache": c}, t, images=im,
                                                          image_index=ix, positions=pos, decode=True,
                                                          mutable=["cache"]))
    pos = np.broadcast_to(np.arange(10, dtype=np.int32), (2, 10))
    (out, state) = run(cache, tokens[:, :7], images, index, pos[:, :7])
    steps = [out["logits"]]
    for t in range(7, 10):
        out, state = run(state["cache"], tokens[:, t:t + 1], None, None, pos[:, t:t + 1])
        steps.append(out["logits"])
    np.testing.assert_allclose(np.concatenate(steps, 1), ref["logits"], atol=1e-5, rtol=1e-5)


# ----------------------------------------------------------------------------------------------------------------
# MM1 with the hyper image route
# ----------------------------------------------------------------------------------------------------------------
def mm1_hyper_config(**decoder):
    decoder = dict(dict(vocab_size=40, width=D, depth=2, num_heads=H, num_kv_heads=KVH, mlp_dim=MLP, norm_eps=1e-5,
                        hyper_layers=(1,)), **decoder)
    return ml_collections.ConfigDict(dict(
        encoder=dict(style="clip", image_size=16, patch_size=8, width=16, depth=1, num_heads=2, mlp_dim=32,
                     norm_eps=1e-5, feature_layer=-1, feature_norm=False, drop_class_token=True),
        connector=dict(name="mlp", mlp_depth=1),
        decoder=decoder,
        max_images=2, dtype="float32"))


@pytest.mark.slow
def test_mm1_hyper_image_route():
    """decoder.hyper_layers in an MM1 config: one slot token per image, the connector output read by hyper layers."""
    from mm1_jax.models import build_model, registry

    cfg = mm1_hyper_config()
    model = build_model(cfg)
    assert registry.image_route(cfg) == model.route == "hyper" and registry.image_tokens(cfg) == 1
    plain_cfg = cfg.copy_and_resolve_references()
    plain_cfg.decoder.hyper_layers = ()
    assert registry.image_route(plain_cfg) == "slots" and registry.image_tokens(plain_cfg) == 4  # 2 x 2 patches
    rng = np.random.default_rng(3)
    tokens = rng.integers(0, 40, size=(1, 8)).astype(np.int32)
    slot = np.full((1, 8), -1, np.int32)
    slot[0, 3], slot[0, 5] = 0, 1
    images = rng.normal(size=(1, 2, 16, 16, 3)).astype(np.float32)
    params = model.init(jax.random.PRNGKey(0), tokens, images=images, image_token_index=slot)["params"]
    assert "image_k_proj" in params["decoder"]["layer_1"]["attn"] and "layers_0" in params["connector"]
    assert "image_k_proj" not in params["decoder"]["layer_0"]["attn"]
    run = jax.jit(lambda im, valid: model.apply({"params": params}, tokens, images=im, image_token_index=slot,
                                                image_valid=valid)["logits"])
    both = np.ones((1, 2), bool)
    a = np.asarray(run(images, both))
    b = np.asarray(run(images * np.array([1, 0], np.float32)[None, :, None, None, None], both))
    np.testing.assert_array_equal(a[0, :6], b[0, :6])  # the second image (slot at 5) is seen from token 6 on
    assert np.abs(a[0, 6:] - b[0, 6:]).max() > 1e-4
    # image_valid=False: the image is absent, as if its slot were plain text
    masked = np.asarray(run(images, np.array([[True, False]])))
    no_slot = np.asarray(model.apply({"params": params}, tokens, images=images[:, :1],
                                     image_token_index=np.where(slot == 1, -1, slot))["logits"])
    np.testing.assert_allclose(masked, no_slot, atol=1e-5)
    # the hyper layers read exactly the connector's output
    embeds = model.apply({"params": params}, images, method=model.image_embeddings)  # [1, 2, 4, D]
    direct = Decoder(**{**cfg.decoder.to_dict(), "hyper_layers": (1,)}).apply(
        {"params": params["decoder"]}, tokens, images=embeds, image_index=np.array([[3, 5]]))["logits"]
    np.testing.assert_allclose(a, np.asarray(direct), atol=1e-5)


@pytest.mark.slow
def test_mm1_hyper_moe_trains():
    """An MM1 with hyper layers and MoE FFNs: sgd(0.1) steps through the trainer lower the loss and move the experts
    of the hyper layer, its image projections and the connector."""
    import optax

    from mm1_jax.models import build_model
    from mm1_jax.train.trainer import make_train_step

    model = build_model(mm1_hyper_config(num_experts=4, top_k=2, moe_every=1))
    rng = np.random.default_rng(8)
    tokens = rng.integers(0, 40, size=(2, 12)).astype(np.int32)
    slot = np.full((2, 12), -1, np.int32)
    slot[0, 2], slot[0, 7], slot[1, 4] = 0, 1, 0
    batch = dict(tokens=tokens, image_token_index=slot, images=rng.normal(size=(2, 2, 16, 16, 3)).astype(np.float32),
                 image_valid=np.array([[True, True], [True, False]]), targets=np.roll(tokens, -1, axis=1),
                 loss_weights=(slot < 0).astype(np.float32), segment_ids=np.ones((2, 12), np.int32),
                 positions=np.broadcast_to(np.arange(12, dtype=np.int32), (2, 12)))
    batch = jax.tree.map(jnp.asarray, batch)
    params = nn.unbox(jax.jit(model.init)(jax.random.PRNGKey(0), **batch)["params"])
    assert "moe" in params["decoder"]["layer_1"] and "image_k_proj" in params["decoder"]["layer_1"]["attn"]
    tx = optax.sgd(0.1)
    state = {"step": jnp.int32(0), "params": params, "opt_state": tx.init(params)}
    step = jax.jit(make_train_step(model, tx, lambda s: 0.1, ("encoder", "connector", "decoder"), 1, None))
    losses = []
    for _ in range(6):
        state, metrics = step(state, batch)
        assert bool(metrics["ok"]) and float(metrics["moe_loss"]) > 0
        losses.append(float(metrics["loss"]))
    assert losses[-1] < losses[0] - 0.05, losses
    new = state["params"]
    for path in (("decoder", "layer_1", "moe", "wi_gate"), ("decoder", "layer_1", "moe", "router"),
                 ("decoder", "layer_1", "attn", "image_k_proj", "kernel"), ("connector", "layers_0", "kernel")):
        old, now = params, new
        for key in path:
            old, now = old[key], now[key]
        assert np.abs(np.asarray(now) - np.asarray(old)).max() > 1e-6, path


# ----------------------------------------------------------------------------------------------------------------
# Selection from the command line, bad input
# ----------------------------------------------------------------------------------------------------------------
def test_hyper_layers_from_the_command_line():
    """--config.model.decoder.hyper_layers=(1,) turns configs/tiny.py into a hyper-attention MM1."""
    import pathlib

    from absl import flags
    from ml_collections import config_flags

    from mm1_jax.models import build_model, registry

    path = pathlib.Path(__file__).resolve().parents[1] / "configs" / "tiny.py"
    argv = ["prog", f"--config={path}", "--config.model.decoder.hyper_layers=(1,)"]
    values = flags.FlagValues()
    config_flags.DEFINE_config_file("config", None, flag_values=values, lock_config=False, sys_argv=argv)
    values(argv)
    cfg = values.config
    assert tuple(cfg.model.decoder.hyper_layers) == (1,)
    model = build_model(cfg.model)
    assert model.route == "hyper" and registry.image_tokens(cfg.model) == 1
    s = cfg.model.encoder.image_size
    shapes = jax.eval_shape(model.init, jax.random.PRNGKey(0), jnp.zeros((1, 8), jnp.int32),
                            images=jnp.zeros((1, 1, s, s, 3)), image_token_index=jnp.full((1, 8), -1).at[0, 2].set(0))
    layer_params = shapes["params"]["decoder"]
    assert "image_k_proj" in layer_params["layer_1"]["attn"] and "image_k_proj" not in layer_params["layer_0"]["attn"]


@pytest.mark.parametrize("change,message", [
    (dict(hyper_layers=(5,)),
     "model.decoder.hyper_layers=[5] holds 5, outside the decoder's layers 0..1 (zero-based)."),
    (dict(hyper_layers=(-1,)), "model.decoder.hyper_layers=[-1] holds -1, outside the decoder's layers 0..1"),
    (dict(hyper_layers=(1, 1)), "model.decoder.hyper_layers=[1, 1] repeats a layer index."),
    (dict(hyper_layers=1), "model.decoder.hyper_layers=1 must be a tuple of zero-based layer indices"),
    (dict(hyper_layers=(1,), scan_layers=True, depth=4),
     "model.decoder.scan_layers=True needs the layer kinds to repeat, but model.decoder.hyper_layers=[1] has no period "
     "shorter than model.decoder.depth=4; set model.decoder.scan_layers=False"),
    (dict(hyper_layers=(1, 3), scan_layers=True, depth=4, num_experts=4, moe_every=4),
     "but model.decoder.hyper_layers=[1, 3] with the MoE layers has no period shorter than model.decoder.depth=4"),
    (dict(connector="hyper_attention"), "model.connector.name='hyper_attention' no longer exists; use connector 'mlp'"),
])
def test_config_mistakes_are_refused_before_tracing(change, message):
    from mm1_jax.models import build_model

    cfg = mm1_hyper_config()
    if "connector" in change:
        cfg.connector = dict(name=change.pop("connector"), num_tokens=1, hyper_layers=(1,), mlp_depth=1)
    cfg.decoder = {**cfg.decoder.to_dict(), **change}
    with pytest.raises(ValueError, match=re.escape(message)):
        build_model(cfg)


def test_scannable_hyper_layers_pass_validation_and_direct_misuse_is_named():
    from mm1_jax.models import build_model, registry
    from mm1_jax.models.owl3 import tiny_owl3_config

    cfg = mm1_hyper_config(depth=4, scan_layers=True, num_experts=4, moe_every=2, hyper_layers=(1, 3))
    registry.validate_model_config(cfg)
    assert build_model(cfg).decoder.scan_layers
    owl = tiny_owl3_config()
    owl.decoder.hyper_layers = (4,)
    message = "model.decoder.hyper_layers=[4] holds 4, outside the decoder's layers 0..3"
    with pytest.raises(ValueError, match=re.escape(message)):
        build_model(owl)
    tokens = np.zeros((1, 4), np.int32)
    with pytest.raises(ValueError, match="images were given to a decoder without hyper layers"):
        Decoder(**DEC).init(jax.random.PRNGKey(0), tokens, images=np.zeros((1, 1, LV, D)), image_index=np.zeros((1, 1)))


# ----------------------------------------------------------------------------------------------------------------
# The block's parts switched off (mPLUG-Owl3 v2 Table 10): hyper_gate, hyper_shared_norm, hyper_mi_rope
# ----------------------------------------------------------------------------------------------------------------
SWITCHES = {  # test id -> Decoder / DecoderLayer fields
    "no_gate": dict(hyper_gate=False),
    "own_image_norm": dict(hyper_shared_norm=False),
    "no_mi_rope": dict(hyper_mi_rope=False),
    "none_of_them": dict(hyper_gate=False, hyper_shared_norm=False, hyper_mi_rope=False),
}


def reference_switches(fields):
    """The numpy reference's flags for Decoder fields."""
    return dict(gate=fields.get("hyper_gate", True), shared_norm=fields.get("hyper_shared_norm", True),
                mi_rope=fields.get("hyper_mi_rope", True))


def switched_params(params, fields, seed=11):
    """The default layer's params as the switched layer lays them out: no gate_proj without the gate, and a random
    image_norm (unlike input_norm) when the images have their own norm."""
    p = jax.tree.map(np.array, params)
    if not fields.get("hyper_gate", True):
        del p["attn"]["gate_proj"]
    if not fields.get("hyper_shared_norm", True):
        p["image_norm"] = {"scale": np.asarray(1 + 0.5 * np.random.default_rng(seed).normal(size=D), np.float32)}
    return p


@pytest.mark.parametrize("name", sorted(SWITCHES))
def test_switched_layer_equals_numpy_reference_and_differs_from_default(layer_case, name):
    """Each switch off: our layer equals the numpy reference with that flag; its parameters are the default's less
    gate_proj / plus image_norm (initialised as input_norm); tokens that see an image change, the others do not."""
    x, images, index, params = layer_case
    fields = SWITCHES[name]
    layer = LAYER.clone(**fields)
    pos = np.broadcast_to(np.arange(10, dtype=np.int32), (2, 10))
    seg = np.ones((2, 10), np.int32)
    init = nn.unbox(layer.init(jax.random.PRNGKey(0), x[:, :10], pos, seg, False, images, index)["params"])
    assert ("gate_proj" in init["attn"]) == fields.get("hyper_gate", True)
    assert ("image_norm" in init) == (not fields.get("hyper_shared_norm", True))
    if "image_norm" in init:
        np.testing.assert_array_equal(init["image_norm"]["scale"], np.ones(D, np.float32))  # as input_norm's init
    p = switched_params(params, fields)
    assert jax.tree.map(np.shape, p) == jax.tree.map(np.shape, init)

    ours = np.asarray(jax.jit(lambda q: layer.apply({"params": q}, x[:, :10], pos, seg, False, images, index)[0])(p))
    t = torch_layout(p)
    for b, starts in enumerate([[3, 6], [0]]):
        want = reference_layer(t, x[b, :10].astype(np.float64), images[b, :len(starts)].astype(np.float64), starts,
                               **reference_switches(fields))
        np.testing.assert_allclose(ours[b], want, atol=2e-5, rtol=1e-5)
    default = np.asarray(LAYER.apply({"params": params}, x[:, :10], pos, seg, False, images, index)[0])
    np.testing.assert_allclose(ours[0, :4], default[0, :4], atol=1e-5)  # up to the first placeholder: S alone
    np.testing.assert_allclose(ours[1, :1], default[1, :1], atol=1e-5)
    moved = np.abs(ours - default).max(-1)  # [2, 10] per token
    assert moved[0, 4:].min() > 1e-3 and moved[1, 1:].min() > 1e-3, moved


@pytest.mark.parametrize("name", sorted(SWITCHES))
def test_switched_decode_step_equals_numpy_reference(layer_case, name):
    """Prefill with the images, then one token reading the cached image keys/values, each switch off."""
    x, images, index, params = layer_case
    fields = SWITCHES[name]
    layer = LAYER.clone(**fields)
    p = switched_params(params, fields)
    seg = np.ones((2, 11), np.int32)
    pos = np.broadcast_to(np.arange(11, dtype=np.int32), (2, 11))
    cache = jax.eval_shape(lambda: layer.init(jax.random.PRNGKey(0), x, pos, seg, True, images, index)["cache"])
    cache = jax.tree.map(lambda c: jnp.zeros(c.shape, c.dtype), cache)
    run = jax.jit(lambda c, xs, ps, ss, im, ix: layer.apply({"params": p, "cache": c}, xs, ps, ss, True, im, ix,
                                                            mutable=["cache"]))
    (_, _), state = run(cache, x[:, :10], pos[:, :10], seg[:, :10], images, index)
    (step, _), _ = run(state["cache"], x[:, 10:], pos[:, 10:], seg[:, 10:], None, None)
    t = torch_layout(p)
    for b, starts in enumerate([[3, 6], [0]]):
        want = reference_layer(t, x[b].astype(np.float64), images[b, :len(starts)].astype(np.float64), starts,
                               **reference_switches(fields))
        np.testing.assert_allclose(np.asarray(step)[b, 0], want[-1], atol=2e-5, rtol=1e-5)


@pytest.mark.slow
def test_switched_decoder_scanned_unscanned_cached_and_reference():
    """All three parts off in a decoder with hyper layers (1, 3) of 4: the unscanned logits equal the numpy reference,
    the scanned LayerGroup (period 2) and cached decoding give the same logits, both layouts carry image_norm and no
    gate_proj."""
    from mm1_jax.models.decoder import stack_layers

    fields = SWITCHES["none_of_them"]
    dec = dict(DEC, depth=4)
    rng = np.random.default_rng(9)
    tokens = rng.integers(0, 50, size=(2, 10)).astype(np.int32)
    images = rng.normal(size=(2, 2, LV, D)).astype(np.float32)
    index = np.array([[2, 5], [0, -1]], np.int32)
    plain = Decoder(**dec, hyper_layers=(1, 3), **fields)
    shapes = nn.unbox(jax.eval_shape(lambda: plain.init(jax.random.PRNGKey(0), tokens, images=images,
                                                        image_index=index)["params"]))
    noise = np.random.default_rng(10)  # every parameter random (norm scales around 1), as `randomize`, no compiling
    params = jax.tree_util.tree_map_with_path(
        lambda path, x: np.asarray(noise.normal(size=x.shape) * 0.2 + (path[-1].key == "scale"), np.float32), shapes)
    for i in (1, 3):
        assert "image_norm" in params[f"layer_{i}"] and "gate_proj" not in params[f"layer_{i}"]["attn"]
    assert "image_norm" not in params["layer_0"]
    ref = jax.jit(lambda p: plain.apply({"params": p}, tokens, images=images, image_index=index)["logits"])(params)
    for b, starts in enumerate([[2, 5], [0]]):
        want = reference_decoder(params, tokens[b], images[b, :len(starts)].astype(np.float64), starts, (1, 3),
                                 **reference_switches(fields))
        np.testing.assert_allclose(np.asarray(ref)[b], want, atol=1e-4, rtol=1e-4)

    scanned = Decoder(**dec, hyper_layers=(1, 3), scan_layers=True, **fields)
    stacked = stack_layers(params, 4, 2)
    shapes = nn.unbox(jax.eval_shape(scanned.init, jax.random.PRNGKey(0), tokens, images=images, image_index=index))
    assert jax.tree.structure(stacked) == jax.tree.structure(shapes["params"])
    assert "image_norm" in shapes["params"]["layers"]["sub_1"]
    assert "gate_proj" not in shapes["params"]["layers"]["sub_1"]["attn"]
    out = jax.jit(lambda p: scanned.apply({"params": p}, tokens, images=images, image_index=index)["logits"])(stacked)
    np.testing.assert_allclose(out, ref, atol=1e-5, rtol=1e-5)

    cache = jax.eval_shape(lambda: scanned.init(jax.random.PRNGKey(0), tokens, images=images, image_index=index,
                                                decode=True)["cache"])
    run = jax.jit(lambda c, t, im, ix, pos: scanned.apply({"params": stacked, "cache": c}, t, images=im,
                                                          image_index=ix, positions=pos, decode=True,
                                                          mutable=["cache"]))
    pos = np.broadcast_to(np.arange(10, dtype=np.int32), (2, 10))
    out, state = run(jax.tree.map(lambda c: jnp.zeros(c.shape, c.dtype), cache), tokens[:, :7], images, index,
                     pos[:, :7])
    steps = [out["logits"]]
    for t in range(7, 10):
        out, state = run(state["cache"], tokens[:, t:t + 1], None, None, pos[:, t:t + 1])
        steps.append(out["logits"])
    np.testing.assert_allclose(np.concatenate(steps, 1), ref, atol=1e-5, rtol=1e-5)



def test_switches_from_the_config_and_bad_values_refused():
    """model.decoder.hyper_* reach the hyper layers through build_model; a non-boolean is one sentence naming it."""
    from mm1_jax.models import build_model, registry

    cfg = mm1_hyper_config(hyper_gate=False, hyper_shared_norm=False, hyper_mi_rope=False)
    model = build_model(cfg)
    assert (model.decoder.hyper_gate, model.decoder.hyper_shared_norm, model.decoder.hyper_mi_rope) == (False,) * 3
    tokens = jnp.zeros((1, 8), jnp.int32)
    shapes = jax.eval_shape(model.init, jax.random.PRNGKey(0), tokens, images=jnp.zeros((1, 1, 16, 16, 3)),
                            image_token_index=jnp.full((1, 8), -1).at[0, 2].set(0))["params"]["decoder"]
    assert "image_norm" in shapes["layer_1"] and "gate_proj" not in shapes["layer_1"]["attn"]
    defaults = Decoder(**DEC)
    assert (defaults.hyper_gate, defaults.hyper_shared_norm, defaults.hyper_mi_rope) == (True,) * 3
    for name, value in (("hyper_gate", "yes"), ("hyper_shared_norm", 0), ("hyper_mi_rope", None)):
        bad = mm1_hyper_config(**{name: value})
        message = f"model.decoder.{name}={value!r} must be True or False."
        with pytest.raises(ValueError, match=re.escape(message)):
            build_model(bad)
        with pytest.raises(ValueError, match=re.escape(message)):
            registry.validate_decoder_config(bad.decoder)
    with pytest.raises(ValueError, match=r"model.decoder.hyper_gates is not a known field"):
        build_model(mm1_hyper_config(hyper_gates=False))
