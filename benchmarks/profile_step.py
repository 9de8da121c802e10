"""Where a train step's time goes: per-op time by category, ours (XLA CPU) beside PyTorch, measured in one run.

    python benchmarks/profile_step.py [--steps=1] [--variant=autodiff]   the decoder35m step of train_step.py
    python benchmarks/train_step.py --profile [--variants=autodiff]      the same, from there
    python benchmarks/mm1_step.py --profile                              the whole MM1 step

Ours: a `jax.profiler` trace of warmed-up steps. XLA's CPU runtime records one event per executed thunk, named after
its HLO instruction; each instruction is looked up in the compiled program (`compiled.as_text()`) and classified by
what it computes (a dot with batch dimensions under an attention scope is attention, a fusion of copies and transposes
only is data movement, an instruction outside jvp/transpose is the optimizer update...). PyTorch: torch.profiler's
self CPU time per aten op, classified by the op's name (and by sitting under `Optimizer.step`).
Categories (the same names on both sides, as far as they can be told apart):
  matmul             dense projections, MLP, lm_head (dots / mm / addmm without attention batch dims)
  attention matmul   ours: the Q.K and P.V batched dots; torch: none apart (its fused SDPA kernel is one op, below)
  attention softmax  ours: softmax, mask, scaling fusions in the attention scope; torch: SDPA (its matmuls inside)
  conv               convolutions (ViT patches, C-Abstractor)
  norms/elementwise  norms, RoPE, activations, residual adds and every other fused elementwise op
  loss               log-softmax and cross-entropy
  copies/transposes  pure data movement: copy, transpose, concatenate, slice, broadcast-only fusions
  gather/scatter     embedding lookup and its gradient, image-slot filling
  optimizer          the AdamW update (and ours: the global gradient norm, the finite-step select)
  other              what fits none of these (torch: autograd engine bookkeeping, views)
Times are per step; "% op time" is the share of the summed op times. Op times can add up to more or less than the
wall time of the step (thunks and intra-op threads overlap; dispatch and waits between ops are not ops).
"""
from __future__ import annotations

import argparse
import collections
import glob
import gzip
import json
import os
import re
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

CATEGORIES = ("matmul", "attention matmul", "attention softmax", "conv", "norms/elementwise", "loss",
              "copies/transposes", "gather/scatter", "optimizer", "other")
MOVEMENT = {"copy", "transpose", "bitcast", "parameter", "reshape", "broadcast", "constant", "slice", "concatenate",
            "dynamic-slice", "dynamic-update-slice", "pad", "tuple", "get-tuple-element", "reverse", "iota",
            "copy-start", "copy-done"}
CONTAINERS = {"while", "call", "conditional"}  # their bodies' thunks have events of their own


# ---------------------------------------------------------------------------------------------------------------- ours
def parse_hlo(text: str) -> tuple[dict, dict]:
    """Optimized HLO text -> ({instruction name: {opcode, calls, op_name, batched_dot}}, {computation: [names]})."""
    instructions, computations, current = {}, collections.defaultdict(list), None
    for line in text.splitlines():
        head = re.match(r"^(?:ENTRY\s+)?%?([\w.\-]+)\s.*\{\s*$", line)
        if head and not line.startswith(" "):
            current = head.group(1)
            continue
        m = re.match(r"^\s+(?:ROOT\s+)?%?([\w.\-]+) = (.*)$", line)
        if not m or current is None:
            continue
        name, rest = m.groups()
        if rest.startswith("("):  # a tuple shape: skip to its closing parenthesis
            depth = 0
            for i, ch in enumerate(rest):
                depth += ch == "("
                depth -= ch == ")"
                if depth == 0:
                    rest = rest[i + 1:]
                    break
        op = re.match(r"\s*\S*?\s*([a-z][a-z0-9\-]*)\(", rest)
        if not op:
            continue
        calls = re.findall(r"(?:calls|body|condition|to_apply|branch_computations)=\{?%?([\w.\-]+)", rest)
        calls += re.findall(r"calls=\{([^}]*)\}", rest)
        op_name = re.search(r'op_name="([^"]*)"', rest)
        instructions[name] = dict(opcode=op.group(1), calls=[c.strip().lstrip("%") for c in calls if "," not in c],
                                  op_name=op_name.group(1) if op_name else "",
                                  batched_dot="lhs_batch_dims=" in rest,
                                  matmul_call=bool(re.search(r'custom_call_target="[^"]*(matmul|dot)', rest, re.I)))
        computations[current].append(name)
    return instructions, computations


def _fused(name: str, instructions: dict, computations: dict, seen=None) -> list[dict]:
    """The instruction and every instruction of the computations it calls, recursively."""
    seen = set() if seen is None else seen
    out = [instructions[name]]
    for comp in instructions[name]["calls"]:
        if comp in seen:
            continue
        seen.add(comp)
        for inner in computations.get(comp, []):
            out += _fused(inner, instructions, computations, seen)
    return out


def classify_instruction(name: str, instructions: dict, computations: dict) -> str | None:
    """The category of one executed HLO instruction (None for containers, whose bodies are counted instead)."""
    inst = instructions[name]
    if inst["opcode"] in CONTAINERS:
        return None
    parts = _fused(name, instructions, computations)
    ops = {p["opcode"] for p in parts}
    op_names = " ".join(p["op_name"] for p in parts)
    grad_or_forward = "jvp(" in op_names or "transpose(" in op_names
    if "dot" in ops or any(p["matmul_call"] for p in parts):
        attention = any(p["opcode"] == "dot" and p["batched_dot"] for p in parts) and "attn" in op_names
        return "attention matmul" if attention else "matmul"
    if "convolution" in ops:
        return "conv"
    if ops & {"gather", "scatter"} and grad_or_forward:
        return "gather/scatter"
    if ops <= MOVEMENT:
        return "copies/transposes"
    if not grad_or_forward:
        return "optimizer"
    if "attn" in op_names and ops & {"exponential", "reduce", "select", "compare"}:
        return "attention softmax"
    if "log_softmax" in op_names or "take_along_axis" in op_names or "token_loss" in op_names:
        return "loss"
    return "norms/elementwise"


def jax_profile(run, hlo_text: str, steps: int = 2) -> dict:
    """Run `run()` `steps` times under jax.profiler; {'wall': s/step, 'cat': {category: s/step},
    'ops': [(s/step, instruction, category, op_name)] top first}."""
    import jax  # pylint: disable=import-outside-toplevel

    instructions, computations = parse_hlo(hlo_text)
    with tempfile.TemporaryDirectory() as log_dir:
        jax.profiler.start_trace(log_dir, create_perfetto_trace=True)
        t0 = time.perf_counter()
        for _ in range(steps):
            run()
        wall = (time.perf_counter() - t0) / steps
        jax.profiler.stop_trace()
        path = sorted(glob.glob(os.path.join(log_dir, "**", "*.trace.json.gz"), recursive=True))[-1]
        with gzip.open(path) as f:
            trace = json.load(f)
    events = trace["traceEvents"] if isinstance(trace, dict) else trace
    per_op = collections.Counter()
    for e in events:
        if e.get("ph") == "X" and e.get("name") in instructions:
            per_op[e["name"]] += e.get("dur", 0) * 1e-6 / steps
    cat, ops = collections.Counter(), []
    for name, sec in per_op.items():
        c = classify_instruction(name, instructions, computations)
        if c is None:
            continue
        cat[c] += sec
        ops.append((sec, name, c, instructions[name]["op_name"]))
    return {"wall": wall, "cat": dict(cat), "ops": sorted(ops, reverse=True)}


# ---------------------------------------------------------------------------------------------------------------- torch
def classify_torch(name: str, in_optimizer: bool) -> str:
    n = name.lower()
    if in_optimizer or n.startswith("optimizer.") or "zero_grad" in n or "_foreach_" in n or "adamw" in n:
        return "optimizer"
    if "scaled_dot_product" in n or "flash_attention" in n or re.search(r"(^|::)_?softmax", n) or \
            "softmax_backward" in n and "log_softmax" not in n:
        return "attention softmax"
    if "log_softmax" in n or "nll_loss" in n or "cross_entropy" in n:
        return "loss"
    if "conv" in n:
        return "conv"
    if n in ("aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm", "aten::matmul", "aten::linear",
             "aten::_addmm_activation") or "mkldnn_matmul" in n:
        return "matmul"
    if n in ("aten::copy_", "aten::clone", "aten::contiguous", "aten::_to_copy", "aten::cat", "aten::stack",
             "aten::fill_", "aten::zero_", "aten::zeros", "aten::zeros_like", "aten::empty_like", "aten::new_zeros",
             "aten::constant_pad_nd", "aten::slice_backward", "aten::select_backward"):
        return "copies/transposes"
    if "embedding" in n or "index" in n or "gather" in n or "scatter" in n or "masked_fill" in n:
        return "gather/scatter"
    if n.startswith("aten::") and n not in ("aten::empty", "aten::empty_strided", "aten::view", "aten::t",
                                            "aten::transpose", "aten::reshape", "aten::expand", "aten::as_strided",
                                            "aten::permute", "aten::unsqueeze", "aten::squeeze", "aten::slice",
                                            "aten::select", "aten::detach", "aten::alias", "aten::_unsafe_view"):
        return "norms/elementwise"
    return "other"


def torch_profile(run, steps: int = 2) -> dict:
    """torch.profiler self CPU time per op over `steps` calls of `run()`; same dict as `jax_profile`."""
    import torch  # pylint: disable=import-outside-toplevel
    from torch.profiler import ProfilerActivity, profile  # pylint: disable=import-outside-toplevel

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        t0 = time.perf_counter()
        for _ in range(steps):
            run()
        wall = (time.perf_counter() - t0) / steps
    del torch
    cat, per_op = collections.Counter(), collections.Counter()
    for e in prof.events():
        parent, in_opt = e, False
        while parent is not None:
            if parent.name.startswith("Optimizer.step") or "zero_grad" in parent.name:
                in_opt = True
                break
            parent = parent.cpu_parent
        c = classify_torch(e.name, in_opt)
        sec = e.self_cpu_time_total * 1e-6 / steps
        cat[c] += sec
        per_op[(e.name, c)] += sec
    ops = sorted(((s, n, c, "") for (n, c), s in per_op.items()), reverse=True)
    return {"wall": wall, "cat": dict(cat), "ops": ops}


# ---------------------------------------------------------------------------------------------------------------- table
def print_breakdown(ours: dict, torch_: dict | None, title: str, top: int = 12, per_category: int = 4) -> None:
    """The category table (ms/step and share of op time, both sides, ours / torch) and each side's top ops."""
    def share(d, c):
        total = sum(d["cat"].values())
        return d["cat"].get(c, 0.0) / total if total else 0.0

    print(f"\n{title}: time per step by op category (ms; share of summed op time)")
    head = f"{'category':20s} {'ours ms':>9s} {'ours %':>7s}"
    if torch_:
        head += f" {'torch ms':>9s} {'torch %':>8s} {'ours/torch':>11s}"
    print(head)
    for c in CATEGORIES:
        o = ours["cat"].get(c, 0.0)
        t = torch_["cat"].get(c, 0.0) if torch_ else 0.0
        if not o and not t:
            continue
        row = f"{c:20s} {o * 1e3:>9.1f} {share(ours, c):>7.1%}"
        if torch_:
            ratio = f"{o / t:>10.2f}x" if t else f"{'-':>11s}"
            row += f" {t * 1e3:>9.1f} {share(torch_, c):>8.1%} {ratio}"
        print(row)
    row = f"{'sum of op times':20s} {sum(ours['cat'].values()) * 1e3:>9.1f} {'':>7s}"
    if torch_:
        row += f" {sum(torch_['cat'].values()) * 1e3:>9.1f}"
    print(row)
    row = f"{'wall (profiled)':20s} {ours['wall'] * 1e3:>9.1f} {'':>7s}"
    if torch_:
        row += f" {torch_['wall'] * 1e3:>9.1f} {'':>8s} {ours['wall'] / torch_['wall']:>10.2f}x"
    print(row)
    def show(rows):
        for sec, name, c, op_name in rows:
            scope = op_name if len(op_name) < 90 else "..." + op_name[-87:]
            print(f"  {sec * 1e3:>9.1f}  {c:18s} {name:32s} {scope}")

    for side, d in (("ours", ours), ("torch", torch_)):
        if not d:
            continue
        print(f"\n  top {top} ops, {side} (ms/step, category, instruction / op, scope)")
        show(d["ops"][:top])
    print(f"\n  ours, the {per_category} longest ops of each other category")
    for c in CATEGORIES:
        rows = [r for r in ours["ops"] if r[2] == c and r not in ours["ops"][:top]][:per_category]
        show(rows)


def profile_decoder35m(steps: int, skip_torch: bool = False, variant: str = "default") -> None:
    import train_step  # pylint: disable=import-outside-toplevel

    run, _, hlo = train_step.ours_decoder(variant, with_hlo=True)
    ours = jax_profile(run, hlo, steps)
    torch_ = None if skip_torch else torch_profile(train_step.torch_decoder()[0], steps)
    label = "" if variant == "default" else f", attention={variant}"
    print_breakdown(ours, torch_, f"decoder35m train step (batch {train_step.BATCH} x {train_step.SEQ}, AdamW, f32"
                    f"{label})")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=1)
    ap.add_argument("--skip_torch", action="store_true")
    ap.add_argument("--variant", default="default", help="attention variant of train_step.py for our decoder")
    args = ap.parse_args()
    import torch  # pylint: disable=import-outside-toplevel

    torch.set_num_threads(os.cpu_count())
    profile_decoder35m(args.steps, args.skip_torch, args.variant)


if __name__ == "__main__":
    main()
