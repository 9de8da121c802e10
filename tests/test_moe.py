"""Mixture of experts: dropless vs a per-token loop, capacity drops, upcycling, expert parallelism, transformers."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
import torch
import transformers

from mm1_jax.convert import moe_decoders
from mm1_jax.models import moe, registry
from mm1_jax.models.decoder import Decoder, stack_layers, unstack_layers
from mm1_jax.train import sharding

E, K, D, F = 8, 2, 16, 24


def _moe_params(seed=0):
    rng = np.random.RandomState(seed)
    return {
        "router": rng.randn(D, E).astype(np.float32),
        "wi_gate": rng.randn(E, D, F).astype(np.float32) / 4,
        "wi_up": rng.randn(E, D, F).astype(np.float32) / 4,
        "wo": rng.randn(E, F, D).astype(np.float32) / 5,
    }


def _loop_reference(x, p, renormalize=True):
    """Per token: softmax router, top-2, gates (renormalised), sum of the chosen experts' SwiGLU outputs."""
    out = np.zeros_like(x)
    for n, tok in enumerate(x):
        logits = tok @ p["router"]
        probs = np.exp(logits - logits.max())
        probs /= probs.sum()
        chosen = np.argsort(-probs, kind="stable")[:K]
        gates = probs[chosen] / (probs[chosen].sum() if renormalize else 1.0)
        for g, e in zip(gates, chosen):
            h = tok @ p["wi_gate"][e]
            h = h / (1 + np.exp(-h)) * (tok @ p["wi_up"][e])
            out[n] += g * (h @ p["wo"][e])
    return out


def _apply(mode, x, p, **kw):
    layer = moe.MoeMlp(num_experts=E, top_k=K, mlp_dim=F, mode=mode, **kw)
    return jax.jit(lambda p, x: layer.apply({"params": p}, x))(p, x)


@pytest.mark.parametrize("renormalize", [True, False])
def test_dropless_equals_per_token_loop(renormalize):
    x = np.random.RandomState(1).randn(2, 12, D).astype(np.float32)
    p = _moe_params()
    y, stats = _apply("dropless", x, p, renormalize=renormalize)
    np.testing.assert_allclose(y.reshape(-1, D), _loop_reference(x.reshape(-1, D), p, renormalize), atol=1e-5)
    assert float(stats["dropped_fraction"]) == 0.0
    np.testing.assert_allclose(stats["tokens_per_expert"].sum(), K, rtol=1e-6)  # top-k assignments per token


def test_capacity_with_room_for_everyone_equals_dropless():
    x = np.random.RandomState(2).randn(2, 12, D).astype(np.float32)
    p = _moe_params()
    y_drop, _ = _apply("dropless", x, p)
    y_cap, stats = _apply("capacity", x, p, capacity_factor=E / K)  # C = 12 slots = the whole group
    np.testing.assert_allclose(y_cap, y_drop, atol=1e-5)
    assert float(stats["dropped_fraction"]) == 0.0


def test_capacity_drops_exactly_the_documented_choices():
    """C = ceil(0.5 * 2 * 12 / 8) = 2 slots per expert per group (one sequence); 1st choices of all tokens in order
    take slots before any 2nd choice; a choice finding its expert full contributes nothing."""
    x = np.random.RandomState(3).randn(1, 12, D).astype(np.float32)
    p = _moe_params(seed=4)
    assert moe.capacity(12, K, E, 0.5) == 2
    y, stats = _apply("capacity", x, p, capacity_factor=0.5)
    tokens = x[0]
    logits = tokens @ p["router"]
    probs = np.exp(logits - logits.max(-1, keepdims=True))
    probs /= probs.sum(-1, keepdims=True)
    chosen = np.argsort(-probs, axis=-1, kind="stable")[:, :K]
    used = np.zeros(E, int)
    kept = np.zeros((12, K), bool)
    for k in range(K):  # priority: choice-major, token order
        for n in range(12):
            e = chosen[n, k]
            if used[e] < 2:
                used[e] += 1
                kept[n, k] = True
    expected = np.zeros_like(tokens)
    for n in range(12):
        gates = probs[n, chosen[n]] / probs[n, chosen[n]].sum()
        for k in range(K):
            if kept[n, k]:
                e = chosen[n, k]
                h = tokens[n] @ p["wi_gate"][e]
                h = h / (1 + np.exp(-h)) * (tokens[n] @ p["wi_up"][e])
                expected[n] += gates[k] * (h @ p["wo"][e])
    assert 0 < (~kept).sum() < 24  # the case really drops some, not all
    np.testing.assert_allclose(y[0], expected, atol=1e-5)
    np.testing.assert_allclose(stats["dropped_fraction"], (~kept).mean(), rtol=1e-6)


def test_router_losses_match_their_definitions():
    x = np.random.RandomState(5).randn(1, 10, D).astype(np.float32)
    p = _moe_params()
    _, stats = _apply("dropless", x, p)
    logits = x[0] @ p["router"]
    probs = np.exp(logits - logits.max(-1, keepdims=True))
    probs /= probs.sum(-1, keepdims=True)
    chosen = np.argsort(-probs, axis=-1)[:, :K]
    f = np.bincount(chosen.reshape(-1), minlength=E) / 10
    np.testing.assert_allclose(stats["load_balance_loss"], E * np.sum(f * probs.mean(0)), rtol=1e-5)
    lse = np.log(np.exp(logits).sum(-1))
    np.testing.assert_allclose(stats["z_loss"], np.mean(lse**2), rtol=1e-5)


def decoder_cfg(**kw):
    fields = dict(vocab_size=64, width=32, depth=4, num_heads=4, num_kv_heads=2, mlp_dim=48, num_experts=4,
                  top_k=2, moe_every=2)
    fields.update(kw)
    return ml_collections.ConfigDict(fields)


@pytest.mark.slow
def test_upcycled_moe_equals_dense_for_any_router():
    cfg = decoder_cfg()
    tokens = jax.random.randint(jax.random.PRNGKey(0), (2, 10), 0, 64)
    dense_model = Decoder(**{**cfg.to_dict(), "num_experts": 0})
    dense = nn.unbox(jax.jit(dense_model.init)(jax.random.PRNGKey(1), tokens)["params"])
    up = moe.upcycle(dense, cfg, jax.random.PRNGKey(7))
    moe_model = Decoder(**cfg)
    assert jax.tree.structure(up) == jax.tree.structure(nn.unbox(jax.eval_shape(moe_model.init, jax.random.PRNGKey(0), tokens)["params"]))
    ref = jax.jit(lambda p: dense_model.apply({"params": p}, tokens)["logits"])(dense)
    out = jax.jit(lambda p: moe_model.apply({"params": p}, tokens))(up)
    np.testing.assert_allclose(out["logits"], ref, atol=1e-5)
    assert out["moe_stats"]["load_balance_loss"].shape == (2,)  # layers 1 and 3 are MoE
    assert float(out["moe_loss"]) > 0


@pytest.mark.slow
def test_scanned_moe_groups_equal_unscanned():
    cfg = decoder_cfg()
    tokens = jax.random.randint(jax.random.PRNGKey(0), (2, 10), 0, 64)
    plain = Decoder(**cfg)
    params = nn.unbox(jax.jit(plain.init)(jax.random.PRNGKey(1), tokens)["params"])
    scanned = Decoder(**cfg, scan_layers=True, remat_policy="full")
    stacked = stack_layers(params, 4, period=2)
    assert jax.tree.structure(stacked) == jax.tree.structure(nn.unbox(jax.eval_shape(scanned.init, jax.random.PRNGKey(0), tokens)["params"]))
    a = jax.jit(lambda p: plain.apply({"params": p}, tokens))(params)
    b = jax.jit(lambda p: scanned.apply({"params": p}, tokens))(stacked)
    np.testing.assert_allclose(b["logits"], a["logits"], atol=1e-5)
    np.testing.assert_allclose(b["moe_loss"], a["moe_loss"], rtol=1e-5)
    assert jax.tree.structure(unstack_layers(stacked)) == jax.tree.structure(params)


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["dropless", "capacity"])
def test_expert_parallel_equals_single_device(mode):
    """Experts sharded over an 8-way `expert` mesh axis (the batch too): same loss and gradients as on one
    device."""
    cfg = decoder_cfg(num_experts=8, moe_every=1, depth=2, moe_mode=mode, capacity_factor=2.0)
    model = Decoder(**cfg)
    tokens = jax.random.randint(jax.random.PRNGKey(0), (8, 12), 0, 64)
    params = nn.unbox(jax.jit(model.init)(jax.random.PRNGKey(1), tokens)["params"])

    def loss(p, t):
        out = model.apply({"params": p}, t)
        return jnp.mean(out["logits"] ** 2) + out["moe_loss"]

    ref_loss, ref_grads = jax.jit(jax.value_and_grad(loss))(params, tokens)
    mesh = sharding.make_mesh({"expert": 8})
    abstract = jax.eval_shape(model.init, jax.random.PRNGKey(0), tokens)["params"]
    shardings = sharding.param_shardings(abstract, mesh)
    assert shardings["layer_0"]["moe"]["wi_gate"].spec[0] == "expert"
    p_sharded = jax.device_put(params, shardings)
    t_sharded = jax.device_put(tokens, sharding.batch_sharding(mesh, 2))
    with jax.set_mesh(mesh), nn.logical_axis_rules(sharding.LOGICAL_AXIS_RULES):
        out_loss, grads = jax.jit(jax.value_and_grad(loss))(p_sharded, t_sharded)
        # dropless: each of the 8 data-parallel shards sorts its own token copies (no global sort)
        assert ("shard_map" in str(jax.make_jaxpr(loss)(p_sharded, t_sharded))) == (mode == "dropless")
    assert {s.data.shape[0] for s in p_sharded["layer_0"]["moe"]["wi_gate"].addressable_shards} == {1}
    np.testing.assert_allclose(out_loss, ref_loss, rtol=1e-5)
    for a, b in zip(jax.tree.leaves(grads), jax.tree.leaves(ref_grads)):
        np.testing.assert_allclose(a, b, atol=1e-6, rtol=1e-4)


@pytest.mark.parametrize("family", ["mixtral", "qwen2_moe"])
def test_matches_transformers(family, tmp_path):
    """A saved random Mixtral / Qwen2-MoE (per-expert names on disk) -> ours: same logits; the aux loss as HF's."""
    from safetensors.numpy import load_file

    common = dict(vocab_size=61, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                  max_position_embeddings=64, rms_norm_eps=1e-6, output_router_logits=True)
    if family == "mixtral":
        hf_cfg = transformers.MixtralConfig(**common, intermediate_size=40, num_local_experts=4, num_experts_per_tok=2)
    else:
        hf_cfg = transformers.Qwen2MoeConfig(**common, intermediate_size=40, moe_intermediate_size=24, num_experts=4,
                                             num_experts_per_tok=2, shared_expert_intermediate_size=36,
                                             decoder_sparse_step=1, norm_topk_prob=False)
    torch.manual_seed(0)
    hf = transformers.AutoModelForCausalLM.from_config(hf_cfg).eval()
    with torch.no_grad():
        for name, p in hf.named_parameters():
            if "gate" in name and "experts" not in name:  # routers start at zero in Qwen2-MoE: give them values
                p.copy_(torch.randn_like(p))
            if name.endswith("bias"):  # qkv biases (Qwen2-MoE) start at zero too
                p.copy_(torch.randn_like(p) * 0.1)
    cfg = moe_decoders.config_from_hf(hf_cfg.to_dict())
    hf.save_pretrained(tmp_path)
    state = load_file(tmp_path / "model.safetensors")
    assert any(".experts.3." in k for k in state)  # the released per-expert layout
    params = moe_decoders.hf_to_params(state, cfg)
    tokens = np.random.RandomState(0).randint(0, 61, (2, 9))
    with torch.no_grad():
        ref = hf(torch.tensor(tokens), output_router_logits=True)
    out = jax.jit(lambda p, t: registry.build_decoder(cfg).apply({"params": p}, t))(params, tokens)
    err = np.abs(np.asarray(out["logits"]) - ref.logits.numpy()).max() / np.abs(ref.logits.numpy()).max()
    assert err < 1e-4
    np.testing.assert_allclose(moe.hf_router_aux_loss(out["moe_stats"]), ref.aux_loss.numpy(), rtol=1e-4)
    ours = float(jnp.mean(out["moe_stats"]["load_balance_loss"]))  # per-layer mean: differs from HF's pooled value
    assert abs(ours - float(ref.aux_loss)) > 1e-6
    back = moe_decoders.params_to_hf(jax.tree.map(np.asarray, params), cfg)
    assert set(back) == set(state) - ({"lm_head.weight"} if cfg.tie_embeddings else set())
    for k, v in back.items():
        np.testing.assert_array_equal(v, state[k])


@pytest.mark.parametrize(
    "change,message",
    [
        (dict(top_k=5), "model.decoder.top_k=5 must be between 1 and model.decoder.num_experts=4"),
        (dict(capacity_factor=0.0), "model.decoder.capacity_factor=0.0 must be > 0"),
        (dict(moe_mode="sparse"), "model.decoder.moe_mode='sparse' is not one of dropless, capacity"),
        (dict(moe_every=3, scan_layers=True), "model.decoder.moe_every=3 must be >= 1 and divide"),
    ],
)
def test_config_errors(change, message):
    with pytest.raises(ValueError, match=message):
        registry.validate_decoder_config(decoder_cfg(**change))


def test_expert_axis_must_divide_experts():
    with pytest.raises(ValueError, match="model.decoder.num_experts=6 is not divisible by the mesh's expert axis of 4"):
        sharding.check_expert_axis(6, {"expert": 4, "fsdp": 2})


@pytest.mark.parametrize("size,total", [("3b-moe", 64e9), ("7b-moe", 47e9)])
def test_mm1_moe_presets_total_and_active(size, total):
    """MM1's MoE sizes (sec. 3.4): totals within 5%; active = the dense model + one more expert FFN per MoE layer."""
    from configs import mm1_pretrain
    from mm1_jax.models.summary import summarize

    s = summarize(mm1_pretrain.get_config(f"decoder={size}"))
    assert abs(s["params"]["decoder"] - total) / total < 0.05
    dense = summarize(mm1_pretrain.get_config(f"decoder={size[:2]}"))["params"]["decoder"]
    dec = mm1_pretrain.get_config(f"decoder={size}").model.decoder
    moe_layers = dec.depth // dec.moe_every
    expected_active = dense + moe_layers * (3 * dec.width * dec.mlp_dim + dec.width * dec.num_experts)
    assert s["decoder_active"] == expected_active


@pytest.mark.slow
def test_convert_command_both_ways(tmp_path):
    """HF Qwen2-MoE dir -> `python -m mm1_jax.convert` -> orbax -> back to HF: bit-identical, loads in transformers."""
    import subprocess
    import sys

    from safetensors.numpy import load_file

    hf_cfg = transformers.Qwen2MoeConfig(
        vocab_size=61, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
        intermediate_size=40, moe_intermediate_size=24, num_experts=4, num_experts_per_tok=2,
        shared_expert_intermediate_size=36, decoder_sparse_step=2, max_position_embeddings=64,
    )
    torch.manual_seed(1)
    hf = transformers.AutoModelForCausalLM.from_config(hf_cfg).eval()
    hf.save_pretrained(tmp_path / "hf")
    run = lambda *a: subprocess.run([sys.executable, "-m", "mm1_jax.convert", *a], check=True, capture_output=True)  # noqa: E731
    run("--src", str(tmp_path / "hf"), "--dst", str(tmp_path / "ours"))
    run("--to-hf", "--src", str(tmp_path / "ours"), "--dst", str(tmp_path / "back"))
    a, b = load_file(tmp_path / "hf" / "model.safetensors"), load_file(tmp_path / "back" / "model.safetensors")
    assert set(a) - {"lm_head.weight"} <= set(b)
    for k in b:
        np.testing.assert_array_equal(a[k], b[k])
    again = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "back").eval()
    tokens = torch.tensor([[1, 5, 9, 33, 2]])
    with torch.no_grad():
        np.testing.assert_allclose(again(tokens).logits.numpy(), hf(tokens).logits.numpy(), atol=1e-6)


def test_blocked_grouped_matmul_equals_ragged_dot():
    """The CPU path (rows padded per expert to whole blocks) equals jax.lax.ragged_dot, values and gradients,
    including empty experts and groups that are not multiples of the block."""
    rng = np.random.RandomState(7)
    sizes = jnp.array([5, 0, 13, 1, 9, 0, 2, 10], jnp.int32)  # 40 rows
    x = jnp.asarray(rng.randn(40, D).astype(np.float32))
    p = _moe_params()

    def native(x, wg, wu, wd):
        h = jax.nn.silu(jax.lax.ragged_dot(x, wg, sizes)) * jax.lax.ragged_dot(x, wu, sizes)
        return jax.lax.ragged_dot(h, wd, sizes)

    def blocked(x, wg, wu, wd):
        return moe.blocked_swiglu_experts(x, wg, wu, wd, sizes, block=4)

    args = (x, p["wi_gate"], p["wi_up"], p["wo"])
    np.testing.assert_allclose(jax.jit(blocked)(*args), jax.jit(native)(*args), atol=1e-5)
    g_native = jax.grad(lambda *a: jnp.sum(native(*a) ** 2), argnums=(0, 1, 2, 3))(*args)
    g_blocked = jax.grad(lambda *a: jnp.sum(blocked(*a) ** 2), argnums=(0, 1, 2, 3))(*args)
    for a, b in zip(g_blocked, g_native):
        np.testing.assert_allclose(a, b, atol=1e-4, rtol=1e-4)


@pytest.mark.slow
def test_train_step_adds_the_moe_loss():
    """The trainer's update for an MoE MM1 equals the gradient of MM1.loss (language-model loss + router losses)."""
    import optax

    from mm1_jax.train.trainer import make_train_step
    from tests.test_mm1 import make_batch, small_config

    cfg = small_config(num_experts=4, top_k=2, moe_every=1)
    model = registry.build_model(cfg)
    batch = make_batch()
    batch["targets"] = jnp.roll(batch["tokens"], -1, axis=1)
    batch["loss_weights"] = (batch["image_token_index"] < 0).astype(jnp.float32)
    batch["segment_ids"] = jnp.ones_like(batch["tokens"])
    batch["positions"] = jnp.broadcast_to(jnp.arange(16), (2, 16))
    params = nn.unbox(jax.jit(model.init)(jax.random.PRNGKey(0), **batch)["params"])
    tx = optax.sgd(1.0)
    state = {"step": jnp.int32(0), "params": params, "opt_state": tx.init(params)}
    step = jax.jit(make_train_step(model, tx, lambda s: 1.0, ("encoder", "connector", "decoder"), 1, None))
    new_state, metrics = step(state, batch)
    expected, moe_out = jax.jit(
        jax.grad(lambda p: (lambda o: (o["loss"], o))(model.apply({"params": p}, batch, method=model.loss)),
                 has_aux=True)
    )(params)
    assert float(metrics["moe_loss"]) > 0
    np.testing.assert_allclose(metrics["moe_loss"], moe_out["moe_loss"], rtol=1e-5)
    got = jax.tree.map(lambda a, b: a - b, params, new_state["params"])  # sgd(1): params - new = grads
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(expected)):
        np.testing.assert_allclose(a, b, atol=2e-6, rtol=1e-4)
