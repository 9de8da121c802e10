"""MoE vs dense training step at equal active parameters; dropless vs capacity routing.

    python benchmarks/moe.py [--tokens 2048] [--width 256] [--depth 4] [--experts 8]

The dense FFN has width F; each of the E experts has F / k, and every token visits k of them, so both models do
the same FFN arithmetic per token (the MoE adds the router, the sort / dispatch and the unsort / combine).
Prints the step time of each (forward + backward + SGD update, jitted, median of repeats) and the ratio to dense.
"""
from __future__ import annotations

import argparse
import statistics
import time

import flax.linen as nn
import jax
import jax.numpy as jnp

from mm1_jax.models.decoder import Decoder


def step_time(model: Decoder, tokens: jax.Array, repeats: int) -> float:
    params = nn.unbox(jax.jit(model.init)(jax.random.PRNGKey(0), tokens)["params"])

    def loss(p):
        out = model.apply({"params": p}, tokens)
        logp = jax.nn.log_softmax(out["logits"][:, :-1])
        nll = -jnp.mean(jnp.take_along_axis(logp, tokens[:, 1:, None], axis=-1))
        return nll + out.get("moe_loss", 0.0)

    @jax.jit
    def step(p):
        value, grads = jax.value_and_grad(loss)(p)
        return jax.tree.map(lambda w, g: w - 1e-3 * g, p, grads), value

    params, _ = step(params)  # compile
    jax.block_until_ready(params)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        params, value = step(params)
        jax.block_until_ready(value)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokens", type=int, default=2048, help="tokens per step (batch 4 x tokens/4)")
    ap.add_argument("--width", type=int, default=256)
    ap.add_argument("--depth", type=int, default=4)
    ap.add_argument("--mlp", type=int, default=1024, help="dense FFN width F")
    ap.add_argument("--experts", type=int, default=8)
    ap.add_argument("--top_k", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    tokens = jax.random.randint(jax.random.PRNGKey(1), (4, args.tokens // 4), 0, 4096)
    common = dict(vocab_size=4096, width=args.width, depth=args.depth, num_heads=4, num_kv_heads=4, mlp_dim=args.mlp)
    moe = dict(num_experts=args.experts, top_k=args.top_k, expert_mlp_dim=args.mlp // args.top_k, moe_every=1)
    rows = [
        ("dense", Decoder(**common)),
        ("moe dropless", Decoder(**common, **moe, moe_mode="dropless")),
        ("moe capacity 1.25", Decoder(**common, **moe, moe_mode="capacity", capacity_factor=1.25)),
        ("moe capacity 2.0", Decoder(**common, **moe, moe_mode="capacity", capacity_factor=2.0)),
    ]
    print(f"tokens/step {args.tokens}, width {args.width}, depth {args.depth}, dense FFN {args.mlp}, "
          f"{args.experts} experts x {args.mlp // args.top_k} (top-{args.top_k}); {jax.devices()[0].platform}")
    print(f"{'model':<20} {'step (ms)':>10} {'tokens/s':>10} {'vs dense':>9}")
    dense = None
    for name, model in rows:
        t = step_time(model, tokens, args.repeats)
        dense = dense or t
        print(f"{name:<20} {1e3 * t:>10.1f} {args.tokens / t:>10.0f} {t / dense:>8.2f}x")


if __name__ == "__main__":
    main()
