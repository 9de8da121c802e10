"""Cached generation speed: `mm1_jax.runtime.generate.Generator` against transformers' `generate` on the same weights.

    python benchmarks/generate.py [--batch=8] [--prompt=128] [--new=64] [--width=512] [--depth=8] [--repeats=3]

A random Llama decoder (transformers, float32, CPU) is converted to our parameters and placed in the tiny MM1
(prompts are text only, so the encoder does no work). Both sides generate `--new` tokens greedily from the same
prompts with a KV cache and no stop token, after a warm-up call (compilation on our side). Printed: new tokens/s of
each (median of `--repeats` timed calls), the ratio, and how many generated tokens agree (random weights give near
ties, so an early flip can change the rest of a row; the first tokens must agree).
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # configs/

import flax.linen as nn  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402

from configs import tiny  # noqa: E402
from mm1_jax.convert import llama  # noqa: E402
from mm1_jax.runtime import generate as gen  # noqa: E402
from mm1_jax.models import build_model  # noqa: E402
from mm1_jax.models.registry import image_tokens  # noqa: E402

IMAGE_ID, PAD_ID = 4, 0


def hf_decoder(args) -> transformers.LlamaForCausalLM:
    cfg = transformers.LlamaConfig(
        vocab_size=args.vocab, hidden_size=args.width, intermediate_size=3 * args.width, num_hidden_layers=args.depth,
        num_attention_heads=args.width // 64, num_key_value_heads=max(1, args.width // 128), rms_norm_eps=1e-5,
        max_position_embeddings=args.prompt + args.new, tie_word_embeddings=False)
    torch.manual_seed(0)
    return transformers.LlamaForCausalLM(cfg).eval()


def our_model(hf, args):
    """The tiny MM1 with the converted decoder: (model, params, tokens per image, image size)."""
    config = tiny.get_config()
    decoder = llama.decoder_config_from_hf(hf.config.to_dict())
    config.model.decoder = dict(decoder.to_dict(), scan_layers=False, remat_policy="none")
    model = build_model(config.model)
    k, s = image_tokens(config.model), config.model.encoder.image_size
    params = nn.unbox(jax.jit(model.init)(jax.random.PRNGKey(0), jnp.zeros((1, k), jnp.int32),
                                          images=jnp.zeros((1, 1, s, s, 3)),
                                          image_token_index=jnp.arange(k, dtype=jnp.int32)[None])["params"])
    state = {name: t.numpy() for name, t in hf.state_dict().items()}
    converted = llama.hf_to_params(state, config.model.decoder)
    same_shapes = jax.tree.map(lambda a, b: a.shape == b.shape, params["decoder"], converted)
    if not all(jax.tree.leaves(same_shapes)):
        raise ValueError("the converted decoder does not have the model's parameter shapes")
    params["decoder"] = jax.tree.map(jnp.asarray, converted)
    return model, params, k, s


def median_time(fn, repeats: int) -> float:
    fn()  # warm-up (compilation)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--prompt", type=int, default=128)
    p.add_argument("--new", type=int, default=64)
    p.add_argument("--width", type=int, default=512)
    p.add_argument("--depth", type=int, default=8)
    p.add_argument("--vocab", type=int, default=32000)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)

    hf = hf_decoder(args)
    model, params, k, s = our_model(hf, args)
    prompts = np.random.default_rng(0).integers(10, args.vocab, (args.batch, args.prompt)).astype(np.int32)
    requests = [gen.Request(row, np.zeros((0, s, s, 3), np.float32)) for row in prompts]
    generator = gen.Generator(model, tokens_per_image=k, image_id=IMAGE_ID, pad_id=PAD_ID, batch_size=args.batch,
                              length_bucket=args.prompt)
    sampling = gen.Sampling(max_new_tokens=args.new)
    ours_out = {}

    def run_ours():
        ours_out["ids"] = np.array([ids for ids, _ in generator(params, requests, sampling)])

    hf_out = {}
    ids = torch.tensor(prompts, dtype=torch.long)

    def run_hf():
        with torch.no_grad():
            out = hf.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=args.new,
                              min_new_tokens=args.new, do_sample=False, pad_token_id=PAD_ID, eos_token_id=None)
        hf_out["ids"] = out[:, args.prompt:].numpy()

    t_ours = median_time(run_ours, args.repeats)
    t_hf = median_time(run_hf, args.repeats)
    new_tokens = args.batch * args.new
    n_params = sum(x.size for x in jax.tree.leaves(params["decoder"]))
    same = ours_out["ids"] == hf_out["ids"]
    first_diff = [int(np.argmin(r)) if not r.all() else args.new for r in same]
    print(f"decoder {n_params / 1e6:.1f}M parameters, batch {args.batch}, prompt {args.prompt}, {args.new} new tokens "
          f"(greedy, KV cache), {os.cpu_count()} CPU threads")
    print(f"  mm1_jax Generator        {new_tokens / t_ours:8.1f} new tokens/s  ({t_ours:.2f} s per call)")
    print(f"  transformers generate    {new_tokens / t_hf:8.1f} new tokens/s  ({t_hf:.2f} s per call)")
    print(f"  ratio (ours / transformers)  {t_hf / t_ours:.2f}x")
    print(f"  tokens agreeing: {same.mean():.1%}; rows identical {int(same.all(axis=1).sum())}/{args.batch}; "
          f"first disagreement per row {first_diff}")


if __name__ == "__main__":
    main()
