"""Training-step throughput: tokens/s and model FLOPs utilisation, ours (JAX) against PyTorch in the same run.

    python benchmarks/train_step.py [--rounds=5] [--skip_torch] [--only=decoder35m|tiny] [--variants=reference,...]
    python benchmarks/train_step.py --profile [--variants=autodiff]   where the decoder35m step's time goes, per op
                                                                     category, ours and PyTorch (profile_step.py)

Rows:
  matmul peak        float32 2048^3 GEMM in jax and in torch (the machine's attainable peak, measured here)
  tiny               configs/tiny.py's MM1 train step (encoder + C-Abstractor + decoder, AdamW) on its batch
  decoder35m         a ~35M-parameter Llama decoder (width 512, 8 layers, 8 heads, FFN 1408, vocab 8192),
                     batch 4 x 1024, AdamW, float32 — ours (jit, same train step as the trainer)
  decoder35m torch   the same decoder in transformers (LlamaForCausalLM, float32) + torch.optim.AdamW
Model FLOPs: `mm1_jax.models.flops` (PaLM convention: 6 x parameters touched per token x tokens + 12 x layers x
width x seq per token for attention, full, not halved for causality). MFU = model FLOPs / time / the same framework's
matmul peak.
Shared machines are noisy: quote the ratios of one run.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import ml_collections  # noqa: E402
import numpy as np  # noqa: E402

from mm1_jax.models.flops import step_flops, transformer_flops_per_token  # noqa: E402

WIDTH, DEPTH, HEADS, FFN, VOCAB, BATCH, SEQ = 512, 8, 8, 1408, 8192, 4, 1024


def interleaved_medians(runs: dict, rounds: int) -> dict:
    """Median seconds per call of each `run()`, calling them in turn round after round, so that load from other
    processes on a shared machine hits every candidate alike (ratios stay meaningful). Each was warmed up."""
    times = {name: [] for name in runs}
    for _ in range(rounds):
        for name, run in runs.items():
            t0 = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - t0)
    return {name: float(np.median(t)) for name, t in times.items()}


def jax_matmul(n: int = 2048):
    a = jnp.ones((n, n), jnp.float32)
    f = jax.jit(lambda x: x @ x)
    run = lambda: jax.block_until_ready(f(a))  # noqa: E731
    run()
    return run, 2 * n**3


def torch_matmul(n: int = 2048):
    import torch  # pylint: disable=import-outside-toplevel

    a = torch.ones(n, n)
    run = lambda: a @ a  # noqa: E731
    run()
    return run, 2 * n**3


def decoder35m_config() -> ml_collections.ConfigDict:
    return ml_collections.ConfigDict(dict(
        vocab_size=VOCAB, width=WIDTH, depth=DEPTH, num_heads=HEADS, num_kv_heads=HEADS, mlp_dim=FFN,
        tie_embeddings=False, norm_eps=1e-5, scan_layers=False, remat_policy="none"))


def reference_attention(q, k, v, segment_ids, causal=True, block=0):
    """The attention before this benchmark's changes: one [T, S] masked softmax in the q-major layout."""
    from mm1_jax.models import layers  # pylint: disable=import-outside-toplevel

    b, t = segment_ids.shape
    mask = layers.segment_mask(segment_ids, segment_ids)
    if causal:
        index = jnp.broadcast_to(jnp.arange(t), (b, t))
        mask = mask & layers.causal_mask(index, index)
    return layers.dot_product_attention(q, k, v, mask)


# Variants that change XLA's CPU compilation, not the model: 'eigen_dots' leaves the dots to XLA's own emitter (Eigen)
# instead of YNNPACK fusions, whose dot wants its operands in a fixed layout (transposed copies of activations and
# logits gradients for every weight gradient).
COMPILER_OPTIONS = {"eigen_dots": {"xla_cpu_experimental_ynn_fusion_type": "LIBRARY_FUSION_TYPE_REDUCE"}}


def autodiff_core(q, k, v, mask):
    """The blocked core before the profile-driven change (kept to time both in one run): weights normalised over
    [Tq, S], a multiply by the mask after the exp, and the gradient left to autodiff through every softmax pass."""
    logits = jnp.einsum("bkqd,bksd->bkqs", q * jnp.asarray(q.shape[-1] ** -0.5, q.dtype), k,
                        preferred_element_type=jnp.float32)
    logits = jnp.where(mask, logits, jnp.finfo(jnp.float32).min)
    e = jnp.exp(logits - jnp.max(logits, axis=-1, keepdims=True)) * mask
    weights = e / jnp.maximum(jnp.sum(e, axis=-1, keepdims=True), jnp.finfo(jnp.float32).tiny)
    return jnp.einsum("bkqs,bksd->bkqd", weights.astype(v.dtype), v)


def attention_variant(name: str):
    """Patch the decoder's self-attention: 'reference' | 'heads_major' (no blocking) | 'blocked<N>' | 'autodiff'
    (the blocked core with autodiff's gradient, as before the flash-style backward) | 'default'."""
    import functools  # pylint: disable=import-outside-toplevel

    from mm1_jax.models import layers  # pylint: disable=import-outside-toplevel

    original = attention_variant.__dict__.setdefault("original", layers.self_attention)
    # pylint: disable=protected-access
    core = attention_variant.__dict__.setdefault("core", layers._masked_softmax_attention)
    layers._masked_softmax_attention = autodiff_core if name == "autodiff" else core
    if name == "reference":
        layers.self_attention = reference_attention
    elif name == "heads_major":
        layers.self_attention = functools.partial(original, block=1 << 30)
    elif name.startswith("blocked"):
        layers.self_attention = functools.partial(original, block=int(name[len("blocked"):]))
    else:
        layers.self_attention = original


def ours_decoder(variant: str = "default", with_hlo: bool = False, config: ml_collections.ConfigDict | None = None,
                 dtype: type = jnp.float32, batch: int = BATCH, seq: int = SEQ, state: dict | None = None):
    """A warmed-up AdamW step of our decoder on [4, 1024] tokens, its matmul parameter count (and, with_hlo, the
    compiled program's HLO text, for `profile_step`). config / dtype (compute) / batch / seq: another decoder and
    batch than decoder35m's float32 one (benchmarks/gpu_step.py); state: a dict shared by steps of one decoder built
    with different attention, so that they update one set of parameters and AdamW moments (filled by the first
    call) instead of one each."""
    import optax  # pylint: disable=import-outside-toplevel

    from mm1_jax.models import registry  # pylint: disable=import-outside-toplevel
    from mm1_jax.models.decoder import token_loss  # pylint: disable=import-outside-toplevel

    config = decoder35m_config() if config is None else config
    model = registry.build_decoder(config, dtype)
    tokens = jnp.asarray(np.random.default_rng(0).integers(0, config.vocab_size, (batch, seq)), jnp.int32)
    tx = optax.adamw(1e-4)
    state = {} if state is None else state
    if not state:
        import flax.linen as nn  # pylint: disable=import-outside-toplevel

        params = nn.unbox(jax.jit(model.init)(jax.random.PRNGKey(0), tokens)["params"])
        state.update(p=params, o=tx.init(params))

    def step(params, opt, tokens):
        def loss_fn(p):
            logits = model.apply({"params": p}, tokens)["logits"]
            return token_loss(logits[:, :-1], tokens[:, 1:], jnp.ones((batch, seq - 1)))[1]

        loss, grads = jax.value_and_grad(loss_fn)(params)
        updates, opt = tx.update(grads, opt, params)
        return optax.apply_updates(params, updates), opt, loss

    step = jax.jit(step, donate_argnums=(0, 1))

    def run():
        state["p"], state["o"], loss = step(state["p"], state["o"], tokens)
        jax.block_until_ready(loss)

    attention_variant(variant)
    try:
        options = COMPILER_OPTIONS.get(variant)
        if with_hlo or options:  # the executable that runs is the one whose HLO is returned (the profile maps ops)
            step = step.lower(state["p"], state["o"], tokens).compile(options)
        run()  # compile with this attention
    finally:
        attention_variant("default")
    lookup = 0 if config.tie_embeddings else config.vocab_size * config.width  # tied: the table is the lm_head
    n_matmul = sum(x.size for x in jax.tree.leaves(state["p"])) - lookup  # lm_head counts, the lookup not
    return (run, n_matmul, step.as_text()) if with_hlo else (run, n_matmul)


def torch_decoder():
    import torch  # pylint: disable=import-outside-toplevel
    from transformers import LlamaConfig, LlamaForCausalLM  # pylint: disable=import-outside-toplevel

    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=VOCAB, hidden_size=WIDTH, intermediate_size=FFN, num_hidden_layers=DEPTH,
                      num_attention_heads=HEADS, num_key_value_heads=HEADS, max_position_embeddings=SEQ,
                      tie_word_embeddings=False, rms_norm_eps=1e-5)
    model = LlamaForCausalLM(cfg).float().train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    tokens = torch.randint(0, VOCAB, (BATCH, SEQ))

    def run():
        opt.zero_grad(set_to_none=True)
        loss = model(input_ids=tokens, labels=tokens).loss
        loss.backward()
        opt.step()

    run()
    n_matmul = sum(p.numel() for p in model.parameters()) - VOCAB * WIDTH
    return run, n_matmul


def tiny_step():
    """configs/tiny.py: a warmed-up train step, its model FLOPs and tokens."""
    from configs import tiny  # pylint: disable=import-outside-toplevel
    from mm1_jax.train import trainer  # pylint: disable=import-outside-toplevel

    config = tiny.get_config()
    config.train.num_samples = 0
    t = trainer.Trainer(config, "/tmp/unused", devices=jax.devices()[:1])
    batch = t.next_batch()
    state = {"s": t.state}

    def run():
        with jax.set_mesh(t.mesh), t._rules():
            state["s"], m = t.train_step(state["s"], batch)
        jax.block_until_ready(m)

    run()
    b, seq = config.train.global_batch_size, config.data.seq_len
    flops = step_flops(config.model, state["s"]["params"], rows=b, seq_len=seq)["total"]
    return run, flops, b * seq


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--skip_torch", action="store_true")
    ap.add_argument("--only", default="", help="tiny | decoder35m (default: both)")
    ap.add_argument("--variants", default="", help="attention variants timed as extra rows of our decoder: "
                    "reference, heads_major, blocked128, blocked256, blocked512, autodiff, "
                    "eigen_dots (an XLA compile option)")
    ap.add_argument("--profile", action="store_true", help="print where each step's time goes instead (per-op "
                    "categories, ours and PyTorch; see benchmarks/profile_step.py)")
    ap.add_argument("--profile_steps", type=int, default=1)
    args = ap.parse_args()
    import torch  # pylint: disable=import-outside-toplevel

    torch.set_num_threads(os.cpu_count())
    if args.profile:
        import profile_step  # pylint: disable=import-outside-toplevel

        for variant in ["default"] + list(filter(None, args.variants.split(","))):
            profile_step.profile_decoder35m(args.profile_steps, args.skip_torch or variant != "default", variant)
        return
    runs, flops, tokens = {}, {}, {}
    runs["peak_jax"], flops["peak_jax"] = jax_matmul()
    runs["peak_torch"], flops["peak_torch"] = torch_matmul()
    if args.only in ("", "tiny"):
        runs["tiny"], flops["tiny"], tokens["tiny"] = tiny_step()
    if args.only in ("", "decoder35m"):
        for variant in ["default"] + list(filter(None, args.variants.split(","))):
            name = "ours" if variant == "default" else f"ours:{variant}"
            runs[name], n = ours_decoder(variant)
            flops[name], tokens[name] = BATCH * SEQ * transformer_flops_per_token(n, DEPTH, WIDTH, SEQ), BATCH * SEQ
        if not args.skip_torch:
            runs["torch"], n = torch_decoder()
            flops["torch"] = BATCH * SEQ * transformer_flops_per_token(n, DEPTH, WIDTH, SEQ)
            tokens["torch"] = BATCH * SEQ
    sec = interleaved_medians(runs, args.rounds)
    peak = {"jax": flops["peak_jax"] / sec["peak_jax"], "torch": flops["peak_torch"] / sec["peak_torch"]}
    print(f"\n{'':44s} {'tokens/s':>10s} {'time':>12s} {'MFU':>7s}")
    print(f"{'matmul peak, jax (2048^3 float32)':44s} {'':>10s} {peak['jax'] / 1e9:>7.1f} GF/s")
    print(f"{'matmul peak, torch':44s} {'':>10s} {peak['torch'] / 1e9:>7.1f} GF/s")
    labels = {"tiny": "tiny config (MM1 train step, ours)", "ours": "decoder35m ours (JAX)",
              "torch": "decoder35m PyTorch (transformers + AdamW)"}
    for name in runs:
        if name.startswith("peak"):
            continue
        framework = "torch" if name == "torch" else "jax"
        label = labels.get(name, f"  ours, attention={name.partition(':')[2]}")
        print(f"{label:44s} {tokens[name] / sec[name]:>10,.0f} {sec[name]:>10.2f} s "
              f"{flops[name] / sec[name] / peak[framework]:>7.1%}")
    if "torch" in runs and "ours" in runs:
        print(f"{'ratio ours / PyTorch (tokens/s)':44s} {sec['torch'] / sec['ours']:>9.2f}x")
    print("MFU: analytic model FLOPs / time / the same framework's matmul peak, all medians of interleaved rounds.")


if __name__ == "__main__":
    main()
