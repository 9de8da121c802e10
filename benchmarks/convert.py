"""Conversion cost on a generated ~1B-parameter Llama-shaped checkpoint: wall time and peak RSS vs its size.

  python benchmarks/convert.py [--width 2048 --depth 16 --dtype float32 --shard-gb 1.0 --workdir /tmp/mm1_convert]

Writes a sharded safetensors checkpoint of random weights (never held whole in memory), then runs
`python -m mm1_jax.convert` HF -> orbax and `--to-hf` back, each in a subprocess whose peak resident memory is read
from its rusage (os.wait4). The target is a peak under 2x the checkpoint's size for HF -> orbax.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time

import ml_dtypes
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from mm1_jax.convert.tensor_files import write_safetensors  # noqa: E402


def llama_shapes(width: int, depth: int, vocab: int, mlp: int, heads: int, kv_heads: int) -> list[tuple[str, tuple]]:
    head_dim = width // heads
    names = [("model.embed_tokens.weight", (vocab, width))]
    for i in range(depth):
        p = f"model.layers.{i}."
        names += [(p + "input_layernorm.weight", (width,)), (p + "post_attention_layernorm.weight", (width,)),
                  (p + "self_attn.q_proj.weight", (heads * head_dim, width)),
                  (p + "self_attn.k_proj.weight", (kv_heads * head_dim, width)),
                  (p + "self_attn.v_proj.weight", (kv_heads * head_dim, width)),
                  (p + "self_attn.o_proj.weight", (width, heads * head_dim)),
                  (p + "mlp.gate_proj.weight", (mlp, width)), (p + "mlp.up_proj.weight", (mlp, width)),
                  (p + "mlp.down_proj.weight", (width, mlp))]
    return names + [("model.norm.weight", (width,)), ("lm_head.weight", (vocab, width))]


def generate(path: str, args: argparse.Namespace) -> int:
    """Write the sharded checkpoint shard by shard; returns its size in bytes."""
    os.makedirs(path)
    dtype = {"float32": np.float32, "bfloat16": ml_dtypes.bfloat16}[args.dtype]
    shapes = llama_shapes(args.width, args.depth, args.vocab, args.mlp, args.heads, args.kv_heads)
    itemsize, limit = np.dtype(dtype).itemsize, int(args.shard_gb * 2**30)
    shards, current, size = [], [], 0
    for name, shape in shapes:
        nbytes = int(np.prod(shape)) * itemsize
        if current and size + nbytes > limit:
            shards.append(current)
            current, size = [], 0
        current.append((name, shape))
        size += nbytes
    shards.append(current)
    rng, weight_map, total = np.random.default_rng(0), {}, 0
    for k, shard in enumerate(shards):
        file = f"model-{k + 1:05d}-of-{len(shards):05d}.safetensors"
        tensors = ((name, (rng.standard_normal(shape, np.float32) * 0.02).astype(dtype)) for name, shape in shard)
        total += write_safetensors(os.path.join(path, file), tensors)
        weight_map.update({name: file for name, _ in shard})
    with open(os.path.join(path, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f)
    with open(os.path.join(path, "config.json"), "w") as f:
        json.dump(dict(model_type="llama", architectures=["LlamaForCausalLM"], vocab_size=args.vocab,
                       hidden_size=args.width, num_hidden_layers=args.depth, num_attention_heads=args.heads,
                       num_key_value_heads=args.kv_heads, intermediate_size=args.mlp, rms_norm_eps=1e-5,
                       rope_theta=10000.0, tie_word_embeddings=False, dtype=args.dtype), f)
    return total


def measure(command: list[str]) -> tuple[float, int]:
    """Wall seconds and peak RSS (bytes) of one subprocess, from its own rusage (os.wait4)."""
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode:
        raise SystemExit(f"{' '.join(command)} failed with exit code {process.returncode}.")
    return time.perf_counter() - start, usage.ru_maxrss * 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    for name, default in (("width", 2048), ("depth", 16), ("vocab", 32000), ("mlp", 5632), ("heads", 16),
                          ("kv_heads", 8)):
        parser.add_argument(f"--{name.replace('_', '-')}", type=int, default=default)
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    parser.add_argument("--shard-gb", type=float, default=1.0)
    parser.add_argument("--workdir", default="/tmp/mm1_convert_bench")
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    shutil.rmtree(args.workdir, ignore_errors=True)
    hf, out, back = (os.path.join(args.workdir, n) for n in ("hf", "orbax", "back"))
    start = time.perf_counter()
    size = generate(hf, args)
    params = size // np.dtype({"float32": np.float32, "bfloat16": ml_dtypes.bfloat16}[args.dtype]).itemsize
    print(f"generated {params / 1e9:.2f}B parameters, {size / 2**30:.2f} GiB {args.dtype} in "
          f"{len(os.listdir(hf)) - 2} shards ({time.perf_counter() - start:.0f} s)")
    python = [sys.executable, "-m", "mm1_jax.convert"]
    rows = [("python -c 'import mm1_jax.convert.checkpoint' (baseline)",
             *measure([sys.executable, "-c", "import mm1_jax.convert.checkpoint, orbax.checkpoint"]))]
    rows.append(("HF -> orbax", *measure(python + ["--src", hf, "--dst", out, "--dtype", args.dtype, "--no-progress"])))
    rows.append(("orbax -> HF", *measure(python + ["--to-hf", "--src", out, "--dst", back])))
    print("\n| step | wall s | peak RSS GiB | checkpoint GiB | peak / checkpoint |\n|---|---|---|---|---|")
    for step, wall, rss in rows:
        print(f"| {step} | {wall:.1f} | {rss / 2**30:.2f} | {size / 2**30:.2f} | {rss / size:.2f} |")
    if not args.keep:
        shutil.rmtree(args.workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
