"""Compile the real train step ahead of time for a TPU slice that is not attached, and say what it would need.

    python -m mm1_jax.train.aot --config=configs/mm1_pretrain.py:decoder=7b --topology=v5p-256 [--config.mesh.fsdp=...]

The step is the trainer's own (`trainer.make_train_step` with the config's optimizer, remat policy, trainable parts and
shardings), lowered on ShapeDtypeStructs and compiled by libtpu for the named slice (`jax.experimental.topologies`):
nothing is allocated and no TPU is needed, only the `libtpu` wheel (`pip install -e '.[aot]'`). It prints

  memory       per chip: parameters + optimizer state, the batch, temporaries (activations), outputs, against HBM;
  FLOPs        compiled FLOPs per step against the analytic model FLOPs (`model_flops`): the remat overhead;
  collectives  all-gather / reduce-scatter / all-reduce / all-to-all / collective-permute in the compiled program:
               count (static, as in the HLO) and bytes (executed, loops counted by their trip count);
  roofline     a lower bound on the step time from the chip's published peak FLOPs, HBM and ICI bandwidths
               (`tpu.CHIPS`, with sources) and the MFU it implies: a bound, not a measurement.

The chips and slice names are `tpu`'s, the reading of the compiled program `hlo`'s; `--search` (`aot_search`)
compiles several meshes and remat policies and ranks them. Topologies: MaxText-style names (v4-8, v5p-256:
TensorCores for v4/v5p, chips for v5e/v6e) or JAX's (v5e:2x2, v5p:4x4x8). The CLI sets JAX_PLATFORMS=cpu before jax
is imported: the compile needs libtpu, not a TPU. See docs/aot.md.
"""
from __future__ import annotations

import os

if __name__ == "__main__":  # before jax is imported: the host's backend stays CPU (libtpu only compiles)
    os.environ.setdefault("JAX_PLATFORMS", "cpu")

import dataclasses
import json
import math
import sys
import tempfile
import time
from typing import Any

import flax.linen as nn
import jax
import ml_collections
import numpy as np
from flax import traverse_util

from mm1_jax.models import registry
from mm1_jax.models.flops import PARTS, step_flops
from mm1_jax.models.inputs import example_batch, input_spec
from mm1_jax.train import hlo, optim, sharding
from mm1_jax.train.tpu import GIB, Slice, parse_topology, quiet_stderr, topology_devices
from mm1_jax.train.trainer import is_trainable, plan_train_step


# --- the train step, abstractly

def _nbytes(x) -> int:
    """Bytes one device holds of an array or a ShapeDtypeStruct with a sharding."""
    shape = x.sharding.shard_shape(x.shape) if getattr(x, "sharding", None) is not None else x.shape
    return math.prod(shape) * np.dtype(x.dtype).itemsize


def tree_bytes_per_device(tree) -> int:
    return int(sum(_nbytes(x) for x in jax.tree.leaves(tree)))


def abstract_train_step(config: ml_collections.ConfigDict, devices: list) -> dict[str, Any]:
    """The trainer's jitted train step (`trainer.plan_train_step`) and ShapeDtypeStruct arguments (state, batch) with
    their shardings for `devices`. Returns {'step' (jitted), 'args', 'mesh', 'rules', 'state', 'batch', 'num_params',
    'params' (abstract, unboxed), 'logical' (their logical axes)}."""
    tc = config.train
    rules = sharding.axis_rules(config.get("axis_rules"))
    mesh = sharding.make_mesh(config.mesh, devices)
    row = example_batch(input_spec(config.model, config.data), 1, config.data.seq_len)  # the layout of one row

    def described(rows: int, shard: bool = False) -> dict:
        return {k: jax.ShapeDtypeStruct((rows,) + v.shape[1:], v.dtype,
                                        sharding=sharding.batch_sharding(mesh, v.ndim) if shard else None)
                for k, v in row.items()}

    plan = plan_train_step(config, registry.build_model(config.model), mesh, rules,
                           described(tc.global_batch_size // tc.grad_accum_steps))
    state, batch = plan["state"], described(tc.global_batch_size, shard=True)
    return {"step": plan["step"], "args": (state, batch), "mesh": mesh, "rules": rules, "state": state, "batch": batch,
            "params": state["params"], "logical": nn.get_partition_spec(plan["boxed"]),
            "num_params": optim.count_params(state["params"])}


def model_flops(config: ml_collections.ConfigDict, params: dict, logical: dict | None = None) -> dict[str, float]:
    """`mm1_jax.models.flops.step_flops` of the config's batch (train.global_batch_size rows of data.seq_len tokens),
    each part counted as training or frozen by train.trainable."""
    trainable = tuple(config.train.trainable)
    flat = traverse_util.flatten_dict(params, sep="/")
    trains = {p: any(k.startswith(p + "/") and is_trainable(k, trainable) for k in flat) for p in PARTS}
    return step_flops(config.model, params, rows=config.train.global_batch_size,
                      seq_len=int(config.data.seq_len), logical=logical, trains=trains)


# --- the report

def bytes_text(n: float) -> str:
    """Bytes as GiB, or MiB below a quarter GiB."""
    return f"{n / GIB:.2f} GiB" if abs(n) >= GIB / 4 else f"{n / 2 ** 20:.1f} MiB"


def si_text(n: float, unit: str) -> str:
    """A figure with its SI prefix: 14.09 GFLOP, 2.77 TB/s."""
    for scale, prefix in ((1e18, "E"), (1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(n) >= scale:
            return f"{n / scale:.2f} {prefix}{unit}"
    return f"{n:.0f} {unit}"


def seconds_text(t: float) -> str:
    """Milliseconds below a second, else seconds."""
    return f"{t * 1e3:.2f} ms" if t < 1 else f"{t:.2f} s"


class DoesNotFit(ValueError):
    """The compiler refused the step for lack of HBM (the message is the one sentence the CLI prints; `over`: the
    bytes per chip beyond the capacity)."""

    def __init__(self, message: str, over: float = math.nan):
        super().__init__(message)
        self.over = over


def _cost(compiled) -> dict[str, float]:
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    return dict(cost or {})


def analyze(config: ml_collections.ConfigDict, s: Slice, devices: list | None = None,
            hlo_path: str | None = None) -> dict[str, Any]:
    """Compile the train step for slice `s` and return every figure the CLI prints (see `format_report`). Raises
    ValueError (one sentence) for a bad config or mesh, DoesNotFit when the compiler runs out of HBM."""
    try:
        sharding.mesh_shape(config.mesh, s.chips)
    except ValueError:
        spec = {a: config.mesh.get(a, 1) for a in sharding.MESH_AXES}
        raise ValueError(f"mesh {spec} does not divide the {s.label}: the sizes must multiply to {s.chips} "
                         "(one axis may be -1 to take the rest).") from None
    devices = topology_devices(s) if devices is None else devices
    built = abstract_train_step(config, devices)
    state, batch, mesh = built["state"], built["batch"], built["mesh"]
    per_chip = {"params": tree_bytes_per_device(state["params"]),
                "opt_state": tree_bytes_per_device(state["opt_state"]), "batch": tree_bytes_per_device(batch)}
    started = time.time()
    with jax.set_mesh(mesh), nn.logical_axis_rules(built["rules"]):
        lowered = built["step"].lower(*built["args"])
    oom = None
    with tempfile.TemporaryDirectory(prefix="mm1_aot_") as dump:  # the compiler's memory report lands here
        try:
            with quiet_stderr():
                compiled = lowered.compile(compiler_options={"xla_dump_to": dump})
        except jax.errors.JaxRuntimeError as e:  # RESOURCE_EXHAUSTED: the step does not fit
            if "RESOURCE_EXHAUSTED" not in str(e):
                raise
            oom = e
        buffers = hlo.read_memory_report(dump)
    if oom is not None:
        what, needed, available = hlo.oom_numbers(str(oom)) or ("the step", math.nan, s.chip.hbm_bytes)
        state = per_chip["params"] + per_chip["opt_state"]
        besides = "" if what == "the whole step" else (
            f", besides {bytes_text(state)} of parameters + optimizer state and {bytes_text(per_chip['batch'])} of "
            "batch")
        largest = "" if not buffers else "; its largest buffers hold " + ", ".join(
            f"{b['largest']} ({bytes_text(b['bytes'])})" for b in buffers[:3])
        raise DoesNotFit(
            f"the train step does not fit the {s.label}: per chip the compiler needs {bytes_text(needed)} for {what} "
            f"where {bytes_text(available)} are available ({bytes_text(needed - available)} over){besides}{largest}; "
            "shard more (config.mesh), shrink the batch per chip (train.global_batch_size, train.grad_accum_steps) or "
            "rematerialise more (model.decoder.remat_policy, model.encoder.remat; remat_policy=full_offload keeps "
            "the decoder's layer inputs in host memory).", over=needed - available) from None
    compile_s = time.time() - started
    text = compiled.as_text()
    if hlo_path:
        with open(hlo_path, "w") as f:
            f.write(text)
    mem = compiled.memory_analysis()
    cost = _cost(compiled)
    program = hlo.Program(text)
    collectives = program.collectives(len(devices))
    try:  # XLA's cost analysis counts a loop body once: scale by what the loops (scanned layers) really run
        loops = program.loop_factor()
    except Exception:  # noqa: BLE001  (no CPU client to analyse with, or HLO it cannot parse: the report says so)
        loops = None
    flops = model_flops(config, built["params"], built["logical"])
    chip = s.chip
    total_mem = (mem.argument_size_in_bytes + mem.output_size_in_bytes - mem.alias_size_in_bytes
                 + mem.temp_size_in_bytes + mem.generated_code_size_in_bytes)
    # per chip (the partitioned program)
    compiled_flops = float(cost.get("flops", 0.0)) * (loops["flops"] if loops else 1.0)
    bytes_accessed = float(cost.get("bytes accessed", 0.0)) * (loops["bytes accessed"] if loops else 1.0)
    traffic = sum(c["traffic"] for c in collectives.values())
    times = {"compute": compiled_flops / chip.peak_flops, "hbm": bytes_accessed / chip.hbm_bandwidth,
             "ici": traffic / chip.ici_bandwidth}
    bound = max(times.values())
    return {
        "topology": s.name, "libtpu_topology": s.topology, "chips": s.chips, "chip": dataclasses.asdict(chip),
        "mesh": dict(mesh.shape), "global_batch_size": config.train.global_batch_size,
        "grad_accum_steps": config.train.grad_accum_steps, "seq_len": int(config.data.seq_len),
        "num_params": built["num_params"], "compile_s": compile_s,
        "memory": {**per_chip, "argument": mem.argument_size_in_bytes, "output": mem.output_size_in_bytes,
                   "alias": mem.alias_size_in_bytes, "temp": mem.temp_size_in_bytes,
                   "generated_code": mem.generated_code_size_in_bytes, "total": total_mem,
                   "capacity": chip.hbm_bytes, "fits": total_mem <= chip.hbm_bytes, "largest": buffers},
        "flops": {"compiled_per_chip": compiled_flops, "compiled_total": compiled_flops * s.chips,
                  "model": flops, "remat_overhead": compiled_flops * s.chips / flops["total"] if flops["total"] else 0,
                  "bytes_accessed_per_chip": bytes_accessed, "loop_factor": loops,
                  "loops": {body: trip for c in program.loops.values() for body, _, trip in c},
                  "unknown_loops": program.unknown_loops},
        "collectives": collectives,
        "roofline": {"times": times, "step_s": bound, "limit": max(times, key=times.get),
                     "mfu": flops["total"] / (s.chips * chip.peak_flops * bound) if bound else 0.0,
                     "tokens_per_s": flops["tokens"] / bound if bound else 0.0},
    }


def format_report(r: dict[str, Any], config_name: str = "") -> str:
    """The CLI's printout of `analyze`'s dict."""
    m, f, ro, chip, mf = r["memory"], r["flops"], r["roofline"], r["chip"], r["flops"]["model"]
    t = ro["times"]
    mesh = ", ".join(f"{k} {v}" for k, v in r["mesh"].items())
    micro = f" in {r['grad_accum_steps']} micro-batches" if r["grad_accum_steps"] > 1 else ""
    verdict = (f"fits, {bytes_text(m['capacity'] - m['total'])} to spare" if m["fits"]
               else f"does NOT fit, {bytes_text(m['total'] - m['capacity'])} over")
    lines = [
        (f"{config_name + ' on ' if config_name else ''}{r['topology']} ({r['libtpu_topology']}, {r['chips']} chips), "
         f"mesh {mesh}; batch {r['global_batch_size']} x {r['seq_len']} tokens{micro}; "
         f"{r['num_params'] / 1e6:,.1f}M parameters; compiled in {r['compile_s']:.1f} s"),
        "",
        "HBM per chip",
        (f"  parameters + optimizer state  {bytes_text(m['params'] + m['opt_state']):>12}  "
         f"({bytes_text(m['params'])} + {bytes_text(m['opt_state'])})"),
        f"  batch                         {bytes_text(m['batch']):>12}",
        f"  temporaries (activations)     {bytes_text(m['temp']):>12}",
        f"  outputs not donated           {bytes_text(m['output'] - m['alias']):>12}",
        f"  generated code                {bytes_text(m['generated_code']):>12}",
        (f"  total                         {bytes_text(m['total']):>12}  of {bytes_text(m['capacity'])} on a "
         f"{chip['family']} chip: {verdict}"),
    ]
    if m.get("largest"):
        lines += ["  largest buffers (the compiler's memory report; a buffer holds several values over the step):"]
        lines += [f"    {bytes_text(b['bytes']):>10}  {b['largest']}"
                  + (f"  ({b['values']} values over the step)" if b["values"] > 1 else "") for b in m["largest"]]
    lines += [
        "",
        "FLOPs per step",
        (f"  compiled            {si_text(f['compiled_total'], 'FLOP')} ({si_text(f['compiled_per_chip'], 'FLOP')} "
         "per chip)"),
        (f"  model (analytic)    {si_text(mf['total'], 'FLOP')} (decoder {si_text(mf['decoder'], 'FLOP')}, encoder "
         f"{si_text(mf['encoder'], 'FLOP')}, connector {si_text(mf['connector'], 'FLOP')})"),
        (f"  compiled / model    {f['remat_overhead']:.2f}x (rematerialisation, optimizer, loss and the formula's "
         "approximations)"),
        f"  bytes accessed      {si_text(f['bytes_accessed_per_chip'], 'B')} per chip",
    ]
    if f["loop_factor"] is None:
        lines.append("  (loop bodies counted once: XLA's cost analysis could not be redone per loop here)")
    elif f["unknown_loops"]:
        lines.append(f"  ({len(f['unknown_loops'])} loop(s) of unknown trip count counted once)")
    lines += ["", "collectives            ops  per step     bytes/step  traffic/chip"]
    for kind, c in r["collectives"].items():
        lines.append(f"  {kind:<20} {c['count']:>5}  {c['executed']:>8}  {si_text(c['bytes'], 'B'):>13}  "
                     f"{si_text(c['traffic'], 'B'):>12}")
    lines += [
        "",
        (f"roofline (a lower bound, not a measurement: peak {si_text(chip['peak_flops'], 'FLOP/s')}, HBM "
         f"{si_text(chip['hbm_bandwidth'], 'B/s')}, ICI {si_text(chip['ici_bandwidth'], 'B/s')} per chip from "
         f"{chip['source']})"),
        (f"  compute {seconds_text(t['compute'])}, HBM {seconds_text(t['hbm'])}, ICI {seconds_text(t['ici'])} -> "
         f"step >= {seconds_text(ro['step_s'])} ({ro['limit']}-bound), at most "
         f"{si_text(ro['tokens_per_s'], 'tokens/s')}"),
        (f"  projected MFU <= {ro['mfu']:.1%} (model FLOPs / (chips x peak x that step time)); a real step also "
         "waits on what does not overlap"),
    ]
    return "\n".join(lines)


# --- the command line

def _define_flags():
    from absl import flags  # pylint: disable=import-outside-toplevel
    from ml_collections import config_flags  # pylint: disable=import-outside-toplevel

    config = config_flags.DEFINE_config_file("config", None, "Config file (configs/X.py[:ARG]).", lock_config=False)
    topology = flags.DEFINE_string("topology", None, "TPU slice: v5p-256, v5e-16, v4-8, v6e-256 or v5e:2x2 form.")
    json_out = flags.DEFINE_string("json", None, "Also write every figure as JSON to this file.")
    hlo_out = flags.DEFINE_string("hlo", None, "Also write the compiled program's HLO text to this file.")
    search_n = flags.DEFINE_integer("search", None, "Compile the sensible meshes x decoder remat policies (the first "
                                    "N; 0 = all) instead of the configured one, and print them ranked.")
    flags.mark_flags_as_required(["config", "topology"])
    return config, topology, json_out, hlo_out, search_n


def _fail(message: str) -> None:
    print(f"error: {message}", file=sys.stderr, flush=True)
    sys.exit(1)


def main(argv) -> None:
    del argv
    from absl import flags  # pylint: disable=import-outside-toplevel

    from mm1_jax.runtime import console  # pylint: disable=import-outside-toplevel
    from mm1_jax.train import aot_search  # pylint: disable=import-outside-toplevel  (it imports this module)
    from mm1_jax.train.config import validate_config  # pylint: disable=import-outside-toplevel

    console.quiet_libraries()
    try:
        config = _FLAGS[0].value
        config.keys()  # a config file that failed to load raises here
    except (OSError, SyntaxError, ValueError, AttributeError) as e:
        detail = [line.strip() for line in str(e).splitlines() if line.strip()][-1]
        _fail(f"--config={flags.FLAGS['config'].serialize().split('=', 1)[-1]} could not be loaded: {detail}")
    try:
        s = parse_topology(_FLAGS[1].value)
        validate_config(config)
        if _FLAGS[4].value is not None:
            if not aot_search.search_candidates(config, s.chips):
                raise ValueError(f"no mesh of the {s.label} splits train.global_batch_size="
                                 f"{config.train.global_batch_size} over its data-parallel chips.")
            results = aot_search.search(config, s, limit=_FLAGS[4].value, log=lambda line: print(line, flush=True))
            print(aot_search.format_search(results, s), flush=True)
            if _FLAGS[2].value:
                with open(_FLAGS[2].value, "w") as f:
                    json.dump(results, f, indent=1)
            return
        report = analyze(config, s, hlo_path=_FLAGS[3].value)
    except ValueError as e:  # DoesNotFit too
        _fail(str(e))
    name = flags.FLAGS["config"].serialize().split("=", 1)[-1]
    print(format_report(report, name), flush=True)
    if _FLAGS[2].value:
        with open(_FLAGS[2].value, "w") as f:
            json.dump(report, f, indent=1)


if __name__ == "__main__":
    from mm1_jax import command_line  # pylint: disable=import-outside-toplevel

    _FLAGS = _define_flags()
    command_line.run(main)
