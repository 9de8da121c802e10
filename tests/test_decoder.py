"""Dense decoder: parity with transformers Llama/Qwen2, causality, packing, GQA, scan, remat and the KV cache."""
import re

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import transformers

from mm1_jax.convert import llama
from mm1_jax.models.decoder import Decoder, stack_layers, unstack_layers
from mm1_jax.models.layers import dot_product_attention, fused_self_attention, self_attention

KW = dict(vocab_size=101, width=48, depth=3, num_heads=6, num_kv_heads=2, mlp_dim=88)


def _apply(model, **static):
    """Jitted `model.apply({'params': p}, tokens, **kw)` returning logits."""
    return jax.jit(lambda p, tokens, **kw: model.apply({"params": p}, tokens, **kw, **static)["logits"])


def _init(model, tokens, seed=0):
    return nn.unbox(model.init(jax.random.PRNGKey(seed), tokens)["params"])


def _tokens(b=2, t=13, seed=1, vocab=101):
    return jax.random.randint(jax.random.PRNGKey(seed), (b, t), 0, vocab)


def _rel_err(ours, theirs):
    return np.max(np.abs(np.asarray(ours) - theirs)) / np.max(np.abs(theirs))


@pytest.mark.parametrize(
    "family,extra",
    [
        ("llama", dict(tie_word_embeddings=False, head_dim=8)),  # odd width 54, head_dim != width / heads
        ("qwen2", dict(tie_word_embeddings=True, head_dim=10)),
        ("qwen2", dict(tie_word_embeddings=False, num_key_value_heads=3, head_dim=10)),
    ],
)
def test_matches_transformers(family, extra):
    """Random transformers decoder -> our params -> same logits and hidden states (1e-4 relative)."""
    cls = {"llama": transformers.LlamaConfig, "qwen2": transformers.Qwen2Config}[family]
    hf_cfg = cls(
        vocab_size=101, hidden_size=54, intermediate_size=70, num_hidden_layers=3, num_attention_heads=6,
        num_key_value_heads=extra.pop("num_key_value_heads", 2), rope_theta=5000.0, rms_norm_eps=1e-6,
        max_position_embeddings=64, **extra,
    )
    torch.manual_seed(0)
    hf = transformers.AutoModelForCausalLM.from_config(hf_cfg).eval()
    with torch.no_grad():  # random biases so qkv bias is really exercised
        for n, p in hf.named_parameters():
            if n.endswith("bias") or "norm" in n:
                p.add_(torch.randn_like(p) * 0.1)
    cfg = llama.decoder_config_from_hf(hf_cfg.to_dict())
    assert cfg.qkv_bias == (family == "qwen2") and cfg.rope_theta == 5000.0
    state = {k: v.numpy() for k, v in hf.state_dict().items()}
    params = llama.hf_to_params(state, cfg)
    tokens = np.random.RandomState(0).randint(0, 101, (2, 9))
    with torch.no_grad():
        ref = hf(torch.tensor(tokens), output_hidden_states=True)
    out = Decoder(**cfg).apply({"params": params}, jnp.asarray(tokens), return_hidden_states=True)
    assert _rel_err(out["logits"], ref.logits.numpy()) < 1e-4
    assert len(out["hidden_states"]) == len(ref.hidden_states) == 4
    for ours, theirs in zip(out["hidden_states"], ref.hidden_states):
        assert _rel_err(ours, theirs.numpy()) < 1e-4
    back = llama.params_to_hf(jax.tree.map(np.asarray, params), cfg)
    assert set(back) == set(k for k in state if not (cfg.tie_embeddings and k == "lm_head.weight"))
    for k, v in back.items():
        np.testing.assert_array_equal(v, state[k])


@pytest.mark.slow
def test_causal():
    """Changing a later token never changes earlier logits."""
    model = Decoder(**KW)
    tokens = _tokens()
    params = _init(model, tokens)
    fwd = _apply(model)
    base = fwd(params, tokens)
    changed = fwd(params, tokens.at[:, 7].set((tokens[:, 7] + 1) % 101))
    np.testing.assert_array_equal(base[:, :7], changed[:, :7])
    assert np.abs(base[:, 7:] - changed[:, 7:]).max() > 1e-3


def test_packing_equals_separate_documents():
    """Two documents packed in one row (segment ids, restarted positions) give each alone's logits."""
    model = Decoder(**KW)
    a, b = _tokens(1, 6, seed=2), _tokens(1, 5, seed=3)
    params = _init(model, a)
    packed = jnp.concatenate([a, b, jnp.zeros((1, 3), jnp.int32)], axis=1)
    segments = jnp.array([[1] * 6 + [2] * 5 + [0] * 3])
    positions = jnp.array([list(range(6)) + list(range(5)) + [0] * 3])
    fwd = _apply(model)
    out = fwd(params, packed, positions=positions, segment_ids=segments)
    alone_a = fwd(params, a)
    alone_b = fwd(params, b)
    np.testing.assert_allclose(out[:, :6], alone_a, atol=1e-5)
    np.testing.assert_allclose(out[:, 6:11], alone_b, atol=1e-5)


def test_grouped_kv_equals_repeated_heads():
    """Grouped-KV attention equals full multi-head attention over repeated KV heads (numpy reference)."""
    rng = np.random.RandomState(0)
    q, k, v = rng.randn(2, 7, 6, 8), rng.randn(2, 7, 2, 8), rng.randn(2, 7, 2, 8)
    mask = np.tril(np.ones((7, 7), bool))[None].repeat(2, 0)
    ours = dot_product_attention(jnp.asarray(q), jnp.asarray(k), jnp.asarray(v), jnp.asarray(mask))
    kr, vr = np.repeat(k, 3, axis=2), np.repeat(v, 3, axis=2)  # head h uses KV head h // 3
    logits = np.einsum("bthd,bshd->bhts", q, kr) / np.sqrt(8)
    logits = np.where(mask[:, None], logits, -np.inf)
    w = np.exp(logits - logits.max(-1, keepdims=True))
    w /= w.sum(-1, keepdims=True)
    np.testing.assert_allclose(ours, np.einsum("bhts,bshd->bthd", w, vr), atol=1e-5)


@pytest.mark.parametrize("tie", [True, False])
def test_output_layer_multiplies_in_the_compute_dtype(tie):
    """bf16 compute: the vocabulary projection runs in bf16 whether it is lm_head or the tied embedding table (the
    tied one once ran in float32, twice the cost of the untied one); the logits come out float32 either way."""
    model = Decoder(**KW, tie_embeddings=tie, dtype=jnp.bfloat16)
    tokens = _tokens()
    params = _init(model, tokens)
    jaxpr = jax.make_jaxpr(lambda p: model.apply({"params": p}, tokens)["logits"])(params)
    dots = [e for e in jaxpr.jaxpr.eqns if e.primitive.name == "dot_general"
            and e.outvars[0].aval.shape[-1] == KW["vocab_size"]]
    assert len(dots) == 1 and [v.aval.dtype for v in dots[0].invars] == [jnp.bfloat16] * 2
    assert jaxpr.out_avals[0].dtype == jnp.float32


def test_fused_attention_call_equals_ours():
    """`attention='cudnn'` hands the packed-document mask to `jax.nn.dot_product_attention`; XLA's lowering of that
    same call (implementation=None, the CPU's) gives our self-attention's numbers on every real token."""
    rng = np.random.RandomState(1)
    q, k, v = (jnp.asarray(rng.randn(2, 9, heads, 8), jnp.float32) for heads in (6, 2, 2))
    segments = jnp.array([[1, 1, 1, 1, 2, 2, 2, 0, 0], [1, 1, 1, 1, 1, 1, 1, 1, 1]])
    ours = self_attention(q, k, v, segments)
    theirs = fused_self_attention(q, k, v, segments, implementation=None)
    real = np.asarray(segments > 0)
    np.testing.assert_allclose(np.asarray(theirs)[real], np.asarray(ours)[real], atol=2e-6)


@pytest.mark.slow
@pytest.mark.parametrize("remat", ["none", "full", "dots", "full_offload"])
def test_scanned_equals_unscanned(remat):
    """Scanned (stacked params) and unscanned layers give identical logits and gradients."""
    tokens = _tokens()
    plain = Decoder(**KW)
    params = _init(plain, tokens)
    scanned = Decoder(**KW, scan_layers=True, remat_policy=remat)
    stacked = stack_layers(params, KW["depth"])
    assert jax.tree.structure(stacked) == jax.tree.structure(_init(scanned, tokens))

    def loss(m, p):
        logits = m.apply({"params": p}, tokens)["logits"]
        return jnp.mean(logits**2), logits

    (_, ref), g_ref = jax.jit(jax.value_and_grad(lambda p: loss(plain, p), has_aux=True))(params)
    (_, out), g_scan = jax.jit(jax.value_and_grad(lambda p: loss(scanned, p), has_aux=True))(stacked)
    np.testing.assert_allclose(out, ref, atol=1e-5)
    g_scan = unstack_layers(g_scan)
    for a, b in zip(jax.tree.leaves(g_ref), jax.tree.leaves(g_scan)):
        np.testing.assert_allclose(a, b, atol=1e-6, rtol=1e-4)


@pytest.mark.slow
def test_full_offload_keeps_each_layers_input_in_host_memory():
    """remat_policy='full_offload' moves what the backward pass keeps per layer (its input, batch x len x width) to
    host memory; 'full' keeps it on the device. (The CPU has one memory, so the numbers are checked above.)"""
    tokens = _tokens()

    def offloaded(policy):
        m = Decoder(**KW, scan_layers=True, remat_policy=policy)
        p = _init(m, tokens)
        jaxpr = jax.make_jaxpr(jax.grad(lambda p: jnp.mean(m.apply({"params": p}, tokens)["logits"] ** 2)))(p)
        return re.findall(r"(\w+)<host>\[([\d,]+)\] = device_put", str(jaxpr))

    width = f"{tokens.shape[0]},{tokens.shape[1]},{KW['width']}"
    assert offloaded("full_offload") == [("f32", width)]
    assert offloaded("full") == []


@pytest.mark.slow
@pytest.mark.parametrize("scan", [False, True])
def test_kv_cache_decoding_equals_full_forward(scan):
    """Prefill a left-padded prompt, then decode one token at a time: equals the full forward."""
    model = Decoder(**KW, scan_layers=scan)
    tokens = _tokens(2, 12, seed=4)
    params = _init(model, tokens)
    # row 0 has 2 left-pad tokens (segment 0) and positions starting after them
    segments = jnp.array([[0, 0] + [1] * 10, [1] * 12])
    positions = jnp.array([[0, 0] + list(range(10)), list(range(12))])
    full = _apply(model)(params, tokens, positions=positions, segment_ids=segments)
    cache = model.init(jax.random.PRNGKey(0), jnp.zeros((2, 16), jnp.int32), decode=True)["cache"]

    @jax.jit
    def step(cache, tok, pos, seg):
        out, mut = model.apply(
            {"params": params, "cache": cache}, tok, positions=pos, segment_ids=seg, decode=True, mutable=["cache"]
        )
        return out["logits"], mut["cache"]

    logits, cache = step(cache, tokens[:, :5], positions[:, :5], segments[:, :5])  # prefill
    steps = [logits]
    for t in range(5, 12):
        logits, cache = step(cache, tokens[:, t : t + 1], positions[:, t : t + 1], segments[:, t : t + 1])
        steps.append(logits)
    decoded = jnp.concatenate(steps, axis=1)
    np.testing.assert_allclose(decoded[0, 2:], full[0, 2:], atol=1e-5)
    np.testing.assert_allclose(decoded[1], full[1], atol=1e-5)
