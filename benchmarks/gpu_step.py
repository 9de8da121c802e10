"""The 1B MM1 decoder's train step on one NVIDIA GPU in bf16, ours (JAX) against PyTorch in the same run.

    python benchmarks/gpu_step.py                          # H100 / H200: about 4-6 minutes, mostly XLA compiles
    python benchmarks/gpu_step.py --attention=cudnn,xla    # fewer rows (one compile less)
    python benchmarks/gpu_step.py --batch=4 --skip_torch   # less memory / ours alone
    python benchmarks/gpu_step.py --smoke                  # any machine, ~20 s: tiny dims, float32, attention xla

The rows are built (compiled, one step run) in order of need: the first --attention row, PyTorch, the other rows;
one that fails to build is left out with a line saying why, and so is every row whose turn comes after --budget_s
(300 s), so that what was built is still timed and printed within the machine's time (timing: ~1 minute more).
Progress lines are flushed as they come. Exit status 1 when a row was left out.

Rows (one process, one GPU, the same batch of B x T random tokens, medians of interleaved rounds):
  matmul peak        a bf16 8192^3 GEMM in jax and in torch: the GPU's attainable tensor-core rate, measured here
  ours, attention=A  `decoder_config('1b')` (what configs/mm1_pretrain.py:decoder=1b builds), its `attention` field set
                     to A, its remat policy (default the preset's, 'full'); float32 parameters, bf16 compute
                     (`build_decoder(cfg, jnp.bfloat16)`, as the trainer's model.dtype=bfloat16 does); the train step
                     of benchmarks/train_step.py's `ours_decoder` (token loss, optax.adamw, jit, donated state).
                     A = cudnn: jax.nn.dot_product_attention on cuDNN's fused flash attention (`fused_self_attention`;
                         the packed-document mask goes in as a [B, 1, T, T] boolean, which jax turns into a bias);
                     A = cudnn_causal: the same kernel with no mask operand, causal only (a benchmark variant, not a
                         model option: the cost of the document-mask bias, which also makes cuDNN compute and write a
                         [B, 1, T, T] bias gradient nobody reads; the same numbers here, one document a row);
                     A = xla: our own attention (`self_attention`: blocked causal softmax, flash-style backward).
                     All ours rows update one set of parameters and AdamW moments (memory for one model, not three).
  PyTorch            transformers' LlamaForCausalLM with the same shapes (width, depth, heads, KV heads, FFN, vocab,
                     RoPE theta, tied embeddings), attn_implementation="sdpa" (no mask, is_causal: a flash kernel),
                     float32 master weights under torch.autocast(bfloat16) (our mixed precision, not a bf16 model),
                     whole-layer activation checkpointing when ours rematerialises, torch.optim.AdamW(fused=True).
Differences left in: our residual stream is bf16 (torch's stays float32 under autocast); our tied lm_head multiplies
in float32 (`Decoder` attends with x.astype(float32)), torch's in bf16.
Model FLOPs per token (PaLM convention, `mm1_jax.models.flops.transformer_flops_per_token`): 6 x matmul parameters
(the tied table counts once, as the lm_head) + 12 x layers x width x T for attention (full, not halved for
causality). MFU = model FLOP/s over the published dense bf16 peak of the device (NVIDIA's datasheet, table below)
and over the same framework's measured matmul peak. The last line is the same figures as JSON.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import sys
import time
from collections.abc import Callable, Iterator

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
# torch shares the GPU: jax allocates what it uses instead of 75% of the memory up front.
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import ml_collections  # noqa: E402

from mm1_jax.models import layers  # noqa: E402
from mm1_jax.models.decoder import REMAT_POLICIES  # noqa: E402
from mm1_jax.models.presets import decoder_config  # noqa: E402
from train_step import interleaved_medians, ours_decoder  # noqa: E402

from mm1_jax.models.flops import transformer_flops_per_token  # noqa: E402

# Dense bf16 tensor-core peaks, TFLOP/s, by a substring of the device name (first match wins). NVIDIA's datasheets
# quote bf16 "with sparsity", twice these: H100 SXM 1,979 / H100 NVL 1,671 / H100 PCIe 1,513
# (https://www.nvidia.com/en-us/data-center/h100/), H200 SXM 1,979 / H200 NVL 1,671
# (https://www.nvidia.com/en-us/data-center/h200/); A100 312 dense (https://www.nvidia.com/en-us/data-center/a100/).
# jax's device_kind and torch's device name read e.g. "NVIDIA H100 80GB HBM3" (SXM), "NVIDIA H200".
PUBLISHED_BF16_TFLOPS = (
    ("H100 PCIe", 756.0), ("H100 NVL", 835.0), ("H100", 989.0),
    ("H200 NVL", 835.0), ("H200", 989.0),
    ("A100", 312.0),
)
ATTENTION_ROWS = ("cudnn", "cudnn_causal", "xla")
SMOKE = dict(width=64, depth=2, num_heads=4, num_kv_heads=2, mlp_dim=176, vocab_size=512)


def published_peak(device_name: str) -> float | None:
    """The datasheet's dense bf16 FLOP/s of a device, None when it is not in the table."""
    for key, tflops in PUBLISHED_BF16_TFLOPS:
        if key.lower() in device_name.lower():
            return tflops * 1e12
    return None


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The flags; --smoke sets the tiny batch, --attention becomes a list of rows."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    a = ap.add_argument
    a("--size", default="1b", help="decoder preset (mm1_jax.models.presets)")
    a("--batch", type=int, default=8, help="sequences per step")
    a("--seq", type=int, default=4096, help="tokens per sequence")
    a("--remat", default=None, choices=sorted(REMAT_POLICIES), help="remat policy (default: the preset's)")
    a("--attention", default=None, help=f"our rows, comma-separated, of {', '.join(ATTENTION_ROWS)} "
      "(default cudnn,cudnn_causal,xla; xla with --smoke)")
    a("--steps", type=int, default=2, help="train steps per timed call")
    a("--rounds", type=int, default=5, help="interleaved timed rounds")
    a("--matmul", type=int, default=8192, help="n of the n^3 peak GEMM")
    a("--skip_torch", action="store_true")
    a("--budget_s", type=float, default=300, help="rows whose turn to build comes later are left out, so that the "
      "rows built are still timed and printed within the machine's time")
    a("--smoke", action="store_true", help="tiny dims (width 64, 2 layers, vocab 512), batch 2 x 128, float32, "
      "attention xla: the script end to end on a CPU")
    args = ap.parse_args(argv)
    if args.smoke:
        args.batch, args.seq, args.matmul = 2, 128, 256
    rows = args.attention or ("xla" if args.smoke else "cudnn,cudnn_causal,xla")
    args.attention = list(dict.fromkeys(r for r in rows.split(",") if r))  # each row once, in the order given
    for row in args.attention:
        if row not in ATTENTION_ROWS:
            ap.error(f"--attention row {row!r} is not one of {', '.join(ATTENTION_ROWS)}.")
    return args


def model_config(args: argparse.Namespace) -> ml_collections.ConfigDict:
    """The preset's decoder (shrunk with --smoke), with --remat."""
    cfg = decoder_config(args.size, **(SMOKE if args.smoke else {}))
    if args.remat:
        cfg.remat_policy = args.remat
    return cfg


def fail(sentence: str) -> int:
    """Print why the run cannot go on (one sentence, no traceback); the exit status."""
    print(sentence, file=sys.stderr)
    return 1


def check_devices(args: argparse.Namespace) -> str | None:
    """The one sentence why this machine cannot run the rows asked for (None if it can); before any compile."""
    backend = jax.default_backend()
    cudnn = [r for r in args.attention if r.startswith("cudnn")]
    if cudnn and backend != "gpu":
        return (f"--attention={','.join(cudnn)} needs an NVIDIA GPU with cuDNN, but jax's backend here is "
                f"{backend!r} (no GPU; on a GPU machine install jax[cuda12]), so the cuDNN row cannot run.")
    if not args.smoke and backend != "gpu":
        return f"without --smoke this benchmark needs an NVIDIA GPU, but jax's backend here is {backend!r}."
    if not args.smoke and not args.skip_torch:
        import torch  # pylint: disable=import-outside-toplevel

        if not torch.cuda.is_available():
            return (f"the PyTorch row needs torch with CUDA and a visible GPU, but torch {torch.__version__} sees "
                    "none; install a CUDA build of torch or pass --skip_torch.")
    return None


def causal_only_attention(q: jax.Array, k: jax.Array, v: jax.Array, segment_ids: jax.Array, causal: bool = True,
                          implementation: str | None = "cudnn") -> jax.Array:
    """`layers.fused_self_attention` without the document mask: cuDNN's causal kernel with no bias operand. Equal
    to it when every row is one document (segment ids all 1, as here), so the row difference is the mask's cost."""
    del segment_ids
    return jax.nn.dot_product_attention(q, k, v, is_causal=causal, implementation=implementation)


@contextlib.contextmanager
def attention_patch(row: str) -> Iterator[None]:
    """While our step for `row` is traced: 'cudnn_causal' swaps `layers.fused_self_attention` (read at trace time
    by `Attention`) for `causal_only_attention`; the other rows run the model as it is."""
    original = layers.fused_self_attention
    if row == "cudnn_causal":
        layers.fused_self_attention = causal_only_attention
    try:
        yield
    finally:
        layers.fused_self_attention = original


def ours_row(row: str, args: argparse.Namespace, cfg: ml_collections.ConfigDict, dtype: type,
             state: dict) -> tuple[Callable[[], None], int]:
    """Warmed-up `run()` of our step with attention `row` and the matmul parameter count; `state` is shared by the
    rows (one set of parameters and AdamW moments, filled by the first)."""
    row_cfg = ml_collections.ConfigDict(cfg.to_dict())
    row_cfg.attention = "cudnn" if row.startswith("cudnn") else "xla"
    with attention_patch(row):
        return ours_decoder(config=row_cfg, dtype=dtype, batch=args.batch, seq=args.seq, state=state)


def first_line(e: BaseException) -> str:
    """An exception's first line (XLA's can run to pages)."""
    lines = str(e).strip().splitlines()
    return lines[0][:300] if lines else ""


def torch_row(args: argparse.Namespace, cfg: ml_collections.ConfigDict) -> tuple[Callable[[], None], int]:
    """Warmed-up `run()` of the transformers Llama train step with our decoder's shapes, and its matmul parameter
    count. On CUDA: float32 weights under bf16 autocast, fused AdamW; --smoke on CPU: float32 throughout."""
    import torch  # pylint: disable=import-outside-toplevel
    from transformers import LlamaConfig, LlamaForCausalLM  # pylint: disable=import-outside-toplevel

    device = torch_device(args.smoke)
    cuda = device == "cuda"
    torch.manual_seed(0)
    head_dim = cfg.get("head_dim") or cfg.width // cfg.num_heads
    llama = LlamaConfig(vocab_size=cfg.vocab_size, hidden_size=cfg.width, intermediate_size=cfg.mlp_dim,
                        num_hidden_layers=cfg.depth, num_attention_heads=cfg.num_heads,
                        num_key_value_heads=cfg.num_kv_heads, head_dim=head_dim, max_position_embeddings=args.seq,
                        rope_theta=cfg.rope_theta, rms_norm_eps=cfg.norm_eps, tie_word_embeddings=cfg.tie_embeddings,
                        attention_bias=cfg.qkv_bias, use_cache=False, attn_implementation="sdpa")
    with torch.device(device):  # initialised on the GPU: a 1B model's init on the host takes long
        model = LlamaForCausalLM(llama).float().train()
    if cfg.remat_policy != "none":  # torch's checkpointing is whole-layer, as ours is with 'full'
        kwargs = {"use_reentrant": False}
        if hasattr(model, "activation_checkpointing_enable"):  # transformers >= 5
            model.activation_checkpointing_enable(kwargs)
        else:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=1e-4, fused=True)  # optax.adamw's decay
    tokens = torch.randint(0, cfg.vocab_size, (args.batch, args.seq), device=device)

    def run():
        opt.zero_grad(set_to_none=True)
        with torch.autocast(device, dtype=torch.bfloat16, enabled=cuda):
            loss = model(input_ids=tokens, labels=tokens).loss
        loss.backward()
        opt.step()
        if cuda:
            torch.cuda.synchronize()

    run()
    lookup = 0 if cfg.tie_embeddings else cfg.vocab_size * cfg.width
    return run, sum(p.numel() for p in model.parameters()) - lookup  # parameters() lists a tied table once


def jax_matmul_peak(n: int, dtype: type, reps: int) -> tuple[Callable[[], None], float]:
    """`run()` of `reps` n^3 GEMMs dispatched back to back, and their FLOPs."""
    a = jax.random.normal(jax.random.PRNGKey(0), (n, n), dtype)
    f = jax.jit(lambda x: x @ x)

    def run():
        out = None
        for _ in range(reps):
            out = f(a)
        jax.block_until_ready(out)

    run()
    return run, 2.0 * n**3 * reps


def torch_device(smoke: bool) -> str:
    """Where the torch rows run: the GPU, but the CPU with --smoke (like ours, whose backend is then the CPU)."""
    import torch  # pylint: disable=import-outside-toplevel

    return "cuda" if torch.cuda.is_available() and not smoke else "cpu"


def torch_matmul_peak(n: int, bf16: bool, reps: int, device: str) -> tuple[Callable[[], None], float]:
    """The same in torch."""
    import torch  # pylint: disable=import-outside-toplevel

    cuda = device == "cuda"
    a = torch.randn(n, n, device=device, dtype=torch.bfloat16 if bf16 else torch.float32)

    def run():
        for _ in range(reps):
            a @ a  # pylint: disable=pointless-statement
        if cuda:
            torch.cuda.synchronize()

    run()
    return run, 2.0 * n**3 * reps


def repeat(run: Callable[[], None], times: int) -> Callable[[], None]:
    """`run` `times` times in one call (one timed unit of `interleaved_medians`)."""
    def runs():
        for _ in range(times):
            run()

    return runs


def device_names(skip_torch: bool) -> dict[str, str]:
    """The device each framework runs on, as it names it."""
    names = {"jax": jax.devices()[0].device_kind}
    if not skip_torch:
        import torch  # pylint: disable=import-outside-toplevel

        names["torch"] = torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"
    return names


def peak_memory_gib(skip_torch: bool) -> dict[str, float]:
    """Peak device memory each framework allocated (GPU only; jax's covers all ours rows, which share the state)."""
    out = {}
    stats = jax.devices()[0].memory_stats() or {}
    if "peak_bytes_in_use" in stats:
        out["jax"] = stats["peak_bytes_in_use"] / 2**30
    if not skip_torch:
        import torch  # pylint: disable=import-outside-toplevel

        if torch.cuda.is_available():
            out["torch"] = torch.cuda.max_memory_allocated() / 2**30
    return out


def build_runs(args: argparse.Namespace, cfg: ml_collections.ConfigDict, bf16: bool, deadline: float,
               failures: list[str]) -> tuple[dict[str, Callable[[], None]], dict[str, float], int]:
    """Every row's warmed-up timed unit (--steps train steps, or the peak GEMMs), its model FLOPs, and the matmul
    parameter count. Built in order of need: the first --attention row, PyTorch, the other rows. A row that fails to
    build (out of memory, a cuDNN limit) or whose turn comes after `deadline` is left out with one line, and the
    rest are still timed: the run is a scarce one."""
    dtype = jnp.bfloat16 if bf16 else jnp.float32
    runs, flops, counts, state, lost = {}, {}, {}, {}, False
    reps = 10 if bf16 else 2
    runs["peak_jax"], flops["peak_jax"] = jax_matmul_peak(args.matmul, dtype, reps)
    if not args.skip_torch:
        runs["peak_torch"], flops["peak_torch"] = torch_matmul_peak(args.matmul, bf16, reps, torch_device(args.smoke))
    plan = [f"ours:{row}" for row in args.attention]
    plan[1:1] = [] if args.skip_torch else ["torch"]
    for name in plan:
        label = "PyTorch" if name == "torch" else f"ours, attention={name[5:]}"
        if name != "torch" and lost:
            continue
        if time.perf_counter() > deadline:
            failures.append(f"{label}: not built, the --budget_s={args.budget_s:.0f} s for building rows was spent")
            print(f"  left out: {failures[-1]}", flush=True)
            continue
        t0 = time.perf_counter()
        try:
            run, counts[name] = torch_row(args, cfg) if name == "torch" else ours_row(name[5:], args, cfg, dtype,
                                                                                      state)
        except Exception as e:  # pylint: disable=broad-except
            failures.append(f"{label}: {type(e).__name__}: {first_line(e)}")
            print(f"  left out: {failures[-1]}", flush=True)
            if name != "torch" and state and any(x.is_deleted() for x in jax.tree.leaves(state)):
                failures.append("a failed step consumed our shared parameters: no ours row is timed")
                for other in [k for k in runs if k.startswith("ours:")]:
                    del runs[other]
                lost = True
            continue
        print(f"  {label}: built, compiled and ran one step in {time.perf_counter() - t0:.0f} s", flush=True)
        steps_flops = args.steps * args.batch * args.seq * transformer_flops_per_token(counts[name], cfg.depth,
                                                                                       cfg.width, args.seq)
        runs[name], flops[name] = repeat(run, args.steps), steps_flops
    if len(set(counts.values())) > 1:
        print(f"  matmul parameters differ: {counts}")
    n = next((counts[k] for k in counts if k != "torch"), counts.get("torch", 0))
    return runs, flops, n


def report(args: argparse.Namespace, sec: dict[str, float], flops: dict[str, float], published: float | None,
           bf16: bool) -> dict:
    """Print the table (a row per matmul peak and per step) and return its figures."""
    rate = {name: flops[name] / sec[name] for name in sec}
    measured = {"jax": rate["peak_jax"], "torch": rate.get("peak_torch")}
    pct = lambda x: "n/a" if x is None else f"{100 * x:.3g}%"  # noqa: E731
    results = {"rows": {}}
    print(f"\n{'':36s} {'tokens/s':>10s} {'step s':>8s} {'TFLOP/s':>9s} {'MFU pub.':>9s} {'MFU meas.':>9s} "
          f"{'vs torch':>9s}")
    for fw in ("jax", "torch"):
        if measured[fw] is None:
            continue
        label = f"matmul peak, {fw} ({args.matmul}^3 {'bf16' if bf16 else 'float32'})"
        of_published = measured[fw] / published if published else None
        print(f"{label:36s} {'':>10s} {'':>8s} {measured[fw] / 1e12:>9.3g} {pct(of_published):>9s}")
        results[f"matmul_peak_{fw}_tflops"] = measured[fw] / 1e12
    for name in sec:
        if name.startswith("peak"):
            continue
        fw = "torch" if name == "torch" else "jax"
        step = sec[name] / args.steps
        row = {"tokens_per_s": args.batch * args.seq / step, "step_s": step, "tflops": rate[name] / 1e12,
               "mfu_published": rate[name] / published if published else None,
               "mfu_measured": rate[name] / measured[fw]}
        if name != "torch" and "torch" in sec:
            row["vs_torch"] = sec["torch"] / sec[name]  # same tokens and steps: the tokens/s ratio
        if name == "torch":
            label = f"PyTorch (transformers sdpa{', autocast' if bf16 else ''})"
        else:
            label = f"ours, attention={name.partition(':')[2]}"
        vs = f"{row['vs_torch']:.3g}x" if "vs_torch" in row else ""
        print(f"{label:36s} {row['tokens_per_s']:>10,.0f} {step:>8.3g} {row['tflops']:>9.3g} "
              f"{pct(row['mfu_published']):>9s} {pct(row['mfu_measured']):>9s} {vs:>9s}")
        results["rows"][name] = row
    return results


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; 0 when every row asked for was timed, 1 (after one sentence) when one could not be."""
    args = parse_args(argv)
    start = time.perf_counter()
    reason = check_devices(args)
    if reason:
        return fail(reason)
    cfg = model_config(args)
    bf16 = not args.smoke
    names = device_names(args.skip_torch)
    published = published_peak(names["jax"])
    print(f"device: {names['jax']}" + (f" (torch: {names['torch']})" if "torch" in names else "") + "; published "
          f"dense bf16 peak: {f'{published / 1e12:.0f} TFLOP/s (NVIDIA datasheet)' if published else 'n/a'}")
    print(f"decoder {args.size}{' (smoke dims)' if args.smoke else ''}: width {cfg.width}, {cfg.depth} layers, "
          f"{cfg.num_heads} heads / {cfg.num_kv_heads} KV, FFN {cfg.mlp_dim}, vocab {cfg.vocab_size}, tied "
          f"{cfg.tie_embeddings}, remat {cfg.remat_policy!r}; batch {args.batch} x {args.seq} tokens; "
          f"{'bf16 compute, float32 parameters' if bf16 else 'float32'}; AdamW", flush=True)
    failures: list[str] = []
    runs, flops, n = build_runs(args, cfg, bf16, start + args.budget_s, failures)
    for name, run in list(runs.items()):  # one more untimed call each: allocator growth, lazy initialisation
        try:
            run()
        except Exception as e:  # pylint: disable=broad-except  # e.g. out of memory once every row holds its share
            failures.append(f"{name}: {type(e).__name__} in its second call: {first_line(e)}")
            print(f"  left out: {failures[-1]}", flush=True)
            del runs[name]
    sec = interleaved_medians(runs, args.rounds)
    results = report(args, sec, flops, published, bf16)
    memory = peak_memory_gib(args.skip_torch)
    if memory:
        print("peak memory: " + ", ".join(f"{fw} {gib:.1f} GiB" for fw, gib in memory.items()))
    if n:
        print(f"model FLOPs per token {transformer_flops_per_token(n, cfg.depth, cfg.width, args.seq) / 1e9:.3g} G "
              f"({n:,} matmul parameters)")
    print(f"medians of {args.rounds} interleaved rounds of {args.steps} steps; "
          f"{time.perf_counter() - start:.0f} s in all.")
    for failure in failures:
        print(f"left out: {failure}")
    results.update(device=names, published_peak_tflops=published and published / 1e12, batch=args.batch,
                   seq=args.seq, matmul_params=n, peak_memory_gib=memory, failures=failures)
    print("json: " + json.dumps(results))
    ok = all(math.isfinite(r["step_s"]) for r in results["rows"].values())
    return 1 if failures or not ok else 0


if __name__ == "__main__":
    sys.exit(main())
