"""Prefill cost of hyper attention against concatenating every image token into the sequence (mPLUG-Owl3 sec. 4).

    python benchmarks/hyper_attention.py [--images=1,8,32,128] [--width=64] [--depth=4] [--repeats=3]

Both models are the same decoder (same width, heads, layers, parameters); the hyper one reads the images in its
hyper layers (one of `depth` layers, here a larger share than the release's 4 of 28, so not in hyper attention's
favour), the concatenating one gets 729 tokens per image in its sequence (SigLIP-400M/14 at 384 px). Both start
from the projected image features (the encoder is the same work in both and is left out), prompts have 64 text
tokens (+ one placeholder per image for hyper attention), and the prefill returns the last position's logits.

Memory: XLA's compiled memory analysis of the jitted prefill (arguments + temporaries + outputs, bytes), which needs
no run. Time: wall clock of the jitted prefill, median of `repeats` runs after a warm-up, measured only when the
compiled footprint fits `--max-run-gib` (the concatenating model at 128 images needs hundreds of GiB for its
attention logits: its time is reported as not measured). Decoder widths are scaled down for a CPU; 729 tokens per
image is kept. The reductions are 1 - hyper / concat; their mean is over the rows where both were measured.
"""
from __future__ import annotations

import argparse
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

from mm1_jax.models.decoder import Decoder

TOKENS_PER_IMAGE = 729
TEXT_TOKENS = 64


def footprint(compiled) -> int:
    m = compiled.memory_analysis()
    return int(m.argument_size_in_bytes + m.temp_size_in_bytes + m.output_size_in_bytes)


def timed(compiled, args, repeats: int) -> float:
    jax.block_until_ready(compiled(*args))
    runs = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(compiled(*args))
        runs.append(time.perf_counter() - start)
    return statistics.median(runs)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", default="1,8,32,128")
    ap.add_argument("--width", type=int, default=64)
    ap.add_argument("--depth", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--max-run-gib", type=float, default=6.0)
    args = ap.parse_args()

    dims = dict(vocab_size=512, width=args.width, depth=args.depth, num_heads=2, num_kv_heads=1,
                head_dim=args.width // 2, mlp_dim=2 * args.width, rope_theta=1e6, qkv_bias=True, norm_eps=1e-6)
    hyper = Decoder(**dims, hyper_layers=(1,))
    plain = Decoder(**dims)
    d = args.width
    params = hyper.init(jax.random.PRNGKey(0), jnp.zeros((1, 4), jnp.int32), images=jnp.zeros((1, 1, 2, d)),
                        image_index=jnp.zeros((1, 1), jnp.int32))["params"]
    plain_params = {k: v for k, v in params.items()}
    attn = dict(plain_params["layer_1"]["attn"])
    for extra in ("image_k_proj", "image_v_proj", "gate_proj"):
        attn.pop(extra)
    plain_params["layer_1"] = {**plain_params["layer_1"], "attn": attn}

    hyper_fn = jax.jit(lambda p, t, im, ix: hyper.apply({"params": p}, t, images=im, image_index=ix)["logits"][:, -1])
    concat_fn = jax.jit(lambda p, e: plain.apply({"params": p}, inputs_embeds=e)["logits"][:, -1])
    print(f"decoder: width {d}, {args.depth} layers (hyper layer 1), 2 heads / 1 KV head, head dim {d // 2}, "
          f"{TOKENS_PER_IMAGE} tokens per image, {TEXT_TOKENS} text tokens; CPU {jax.devices()[0].device_kind}")
    header = (f"{'images':>6} {'concat len':>10} {'hyper len':>9} | {'concat MiB':>10} {'hyper MiB':>9} "
              f"{'mem -%':>6} | {'concat s':>8} {'hyper s':>8} {'time -%':>7}")
    print(header)
    print("-" * len(header))
    mem_red, time_red = [], []
    rng = np.random.default_rng(0)
    for n in [int(x) for x in args.images.split(",")]:
        t_hyper = TEXT_TOKENS + n
        tokens = jnp.asarray(rng.integers(0, 500, size=(1, t_hyper)), jnp.int32)
        index = jnp.asarray(np.linspace(0, TEXT_TOKENS, n, dtype=np.int32)[None] + np.arange(n)[None], jnp.int32)
        images = jax.ShapeDtypeStruct((1, n, TOKENS_PER_IMAGE, d), jnp.float32)
        t_concat = TEXT_TOKENS + n * TOKENS_PER_IMAGE
        embeds = jax.ShapeDtypeStruct((1, t_concat, d), jnp.float32)
        hyper_c = hyper_fn.lower(params, tokens, images, index).compile()
        concat_c = concat_fn.lower(plain_params, embeds).compile()
        mem_h, mem_c = footprint(hyper_c), footprint(concat_c)
        mem_red.append(1 - mem_h / mem_c)
        limit = args.max_run_gib * 2**30
        time_h = time_c = None
        if mem_h < limit:
            im = jnp.asarray(rng.normal(size=images.shape), jnp.float32)
            time_h = timed(hyper_c, (params, tokens, im, index), args.repeats)
        if mem_c < limit:
            em = jnp.asarray(rng.normal(size=embeds.shape), jnp.float32)
            time_c = timed(concat_c, (plain_params, em), args.repeats)
        reduction = ""
        if time_h is not None and time_c is not None:
            time_red.append(1 - time_h / time_c)
            reduction = f"{100 * time_red[-1]:7.1f}"
        fmt = lambda s: f"{s:8.3f}" if s is not None else "     n/a"  # noqa: E731
        print(f"{n:>6} {t_concat:>10} {t_hyper:>9} | {mem_c / 2**20:>10.1f} {mem_h / 2**20:>9.1f} "
              f"{100 * mem_red[-1]:>6.1f} | {fmt(time_c)} {fmt(time_h)} {reduction:>7}", flush=True)
    print(f"mean reduction: memory {100 * np.mean(mem_red):.1f}% over {len(mem_red)} sizes, time "
          + (f"{100 * np.mean(time_red):.1f}% over {len(time_red)} sizes" if time_red else "not measured")
          + " (mPLUG-Owl3 reports 48.5% memory, 87.8% time)")


if __name__ == "__main__":
    main()
