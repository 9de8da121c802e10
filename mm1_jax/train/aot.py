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
               (`CHIPS`, with sources) and the MFU it implies: a bound, not a measurement.

Topologies: MaxText-style names (v4-8, v5p-256: TensorCores for v4/v5p, chips for v5e/v6e) or JAX's (v5e:2x2,
v5p:4x4x8). The CLI sets JAX_PLATFORMS=cpu before jax is imported: the compile needs libtpu, not a TPU. See docs/aot.md.
"""
from __future__ import annotations

import os

if __name__ == "__main__":  # before jax is imported: the host's backend stays CPU (libtpu only compiles)
    os.environ.setdefault("JAX_PLATFORMS", "cpu")

import contextlib
import copy
import dataclasses
import importlib.util
import json
import math
import re
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
from mm1_jax.train import optim, sharding
from mm1_jax.train.trainer import is_trainable, plan_train_step

GIB = 2 ** 30


# --- chips and slices

@dataclasses.dataclass(frozen=True)
class Chip:
    """One TPU chip's published figures (per chip; v4 and v5p: both TensorCores, one JAX device in megacore mode)."""
    family: str
    peak_flops: float  # dense bf16 FLOP/s
    hbm_bytes: float
    hbm_bandwidth: float  # bytes/s
    ici_bandwidth: float  # bytes/s, bidirectional, all of the chip's ICI links together
    source: str


# The one table of chip figures. Sources (Google Cloud TPU documentation, "System architecture" of each version):
#   v4   https://cloud.google.com/tpu/docs/v4   275 TFLOPs bf16; HBM2 32 GiB, 1200 GBps. The page gives no per-chip ICI
#        figure: 6 ICI links x 50 GB/s per direction from the TPU v4 paper (Jouppi et al., ISCA 2023,
#        arXiv:2304.01433), i.e. 600 GB/s bidirectional.
#   v5e  https://cloud.google.com/tpu/docs/v5e  197 TFLOPs bf16; HBM2 16 GB, 819 GBps; bidirectional ICI 400 GBps
#        per chip (older revisions: "Interchip Interconnect BW 1600 Gbps").
#   v5p  https://cloud.google.com/tpu/docs/v5p  459 TFLOPs bf16; HBM2e 95 GiB, 2765 GBps; bidirectional ICI 1200 GBps
#        per chip (older revisions: 4800 Gbps).
#   v6e  https://cloud.google.com/tpu/docs/v6e  918 TFLOPs bf16; HBM 32 GB, 1600 GBps; bidirectional ICI 800 GBps per
#        chip (an earlier revision listed 1640 GBps and 3584 Gbps).
# HBM "GB" on the v5e/v6e pages is taken as GiB (the compiler's usable limit, e.g. 15.75 GiB on v5e, sits just under).
CHIPS: dict[str, Chip] = {
    "v4": Chip("v4", 275e12, 32 * GIB, 1200e9, 600e9, "cloud.google.com/tpu/docs/v4; ICI: TPU v4 paper (ISCA 2023)"),
    "v5e": Chip("v5e", 197e12, 16 * GIB, 819e9, 400e9, "cloud.google.com/tpu/docs/v5e"),
    "v5p": Chip("v5p", 459e12, 95 * GIB, 2765e9, 1200e9, "cloud.google.com/tpu/docs/v5p"),
    "v6e": Chip("v6e", 918e12, 32 * GIB, 1600e9, 800e9, "cloud.google.com/tpu/docs/v6e"),
}
# family -> (libtpu's name, megacore: one device per chip of 2 TensorCores, and slice names count TensorCores)
_FAMILIES = {"v4": ("v4", True), "v5p": ("v5", True), "v5e": ("v5e", False), "v6e": ("v6e", False)}
# chips -> shape of the slices Cloud TPU offers (v5e/v6e: 2D; v4/v5p: 3D), as MaxText's accelerator_to_spec_map
_SHAPES_2D = {1: "1x1", 4: "2x2", 8: "2x4", 16: "4x4", 32: "4x8", 64: "8x8", 128: "8x16", 256: "16x16"}
_SHAPES_3D = {4: "2x2x1", 8: "2x2x2", 16: "2x2x4", 32: "2x4x4", 64: "4x4x4", 128: "4x4x8", 256: "4x8x8",
              512: "8x8x8", 1024: "8x8x16", 2048: "8x16x16", 4096: "16x16x16", 6144: "16x16x24"}


@dataclasses.dataclass(frozen=True)
class Slice:
    """A TPU slice: its chip, libtpu topology ('v5e:2x2') and chip count."""
    name: str
    chip: Chip
    topology: str
    dims: tuple[int, ...]

    @property
    def chips(self) -> int:
        return math.prod(self.dims)

    @property
    def label(self) -> str:
        return f"{self.name} slice ({self.chip.family} {'x'.join(map(str, self.dims))}, {self.chips} chips)"


def known_topologies() -> str:
    """The accepted names, in one line (for the unknown-name sentence)."""
    parts = []
    for family, (_, megacore) in _FAMILIES.items():
        shapes = _SHAPES_3D if megacore else _SHAPES_2D
        sizes = [n * (2 if megacore else 1) for n in shapes if family != "v4" or n <= 2048]
        parts.append(f"{family}-{{{','.join(map(str, sizes))}}}")
    return "; ".join(parts) + "; or FAMILY:AxB[xC] (v5e:2x2, v5p:4x4x8)"


def parse_topology(name: str) -> Slice:
    """'v5p-256' (TensorCores for v4/v5p, chips for v5e/v6e) or 'v5e:2x2' -> Slice; ValueError in one sentence."""
    text = name.strip().lower()
    m = re.fullmatch(r"(v4|v5p|v5e|v6e|v5)[:](\d+(?:x\d+){1,2})", text)
    if m:
        family = "v5p" if m.group(1) == "v5" else m.group(1)
        dims = tuple(int(d) for d in m.group(2).split("x"))
        want = 3 if _FAMILIES[family][1] else 2
        if len(dims) != want or 0 in dims:
            raise ValueError(f"--topology={name}: a {family} slice has {want} dimensions "
                             f"(e.g. {family}:{'2x2x1' if want == 3 else '2x2'}).")
    else:
        m = re.fullmatch(r"(v4|v5p|v5e|v6e)-(\d+)", text)
        shapes = None
        if m:
            family, count = m.group(1), int(m.group(2))
            megacore = _FAMILIES[family][1]
            shapes = _SHAPES_3D if megacore else _SHAPES_2D
            chips = count // 2 if megacore else count
            if (megacore and count % 2) or chips not in shapes or (family == "v4" and chips > 2048):
                shapes = None
        if shapes is None:
            raise ValueError(f"--topology={name} is not a TPU slice this tool knows; use one of {known_topologies()}.")
        dims = tuple(int(d) for d in shapes[chips].split("x"))
    return Slice(name, CHIPS[family], f"{_FAMILIES[family][0]}:{'x'.join(map(str, dims))}", dims)


@contextlib.contextmanager
def _quiet_stderr():
    """libtpu prints start-up warnings straight to file descriptor 2 (no TPU here: expected); hide them."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def topology_devices(s: Slice) -> list:
    """The slice's compile-only TPU devices (libtpu; no TPU needed)."""
    if importlib.util.find_spec("libtpu") is None:
        raise ValueError("compiling for a TPU slice needs the libtpu wheel: pip install -e '.[aot]'.")
    from jax.experimental import topologies  # pylint: disable=import-outside-toplevel

    # compile-only: the chips are never opened, so libtpu's one-process lock (/tmp/libtpu_lockfile) must not refuse a
    # second compile running beside this one (or beside a training run on a TPU host)
    os.environ.setdefault("ALLOW_MULTIPLE_LIBTPU_LOAD", "1")
    megacore = _FAMILIES[s.chip.family][1]
    dims3 = s.dims + (1,) * (3 - len(s.dims))
    if megacore:  # a torus where every side has 4 chips or more (as MaxText's accelerator_to_spec_map)
        wrap = (min(s.dims) >= 4,) * 3
    else:  # v5e/v6e: a 16-chip side wraps around
        wrap = tuple(d == 16 for d in dims3[:2]) + (False,)
    try:
        with _quiet_stderr():
            topo = topologies.get_topology_desc(
                platform="tpu", topology_name=s.topology, chip_config_name="megacore" if megacore else "default",
                chips_per_host_bounds=(1, 1, 1) if s.chips == 1 else (2, 2, 1), num_slices=1, wrap=wrap)
    except jax.errors.JaxRuntimeError as e:  # INVALID_ARGUMENT: a shape libtpu does not offer
        reason = str(e).splitlines()[0].split(": ", 1)[-1]
        raise ValueError(f"--topology={s.name}: libtpu cannot describe a {s.topology} slice ({reason}).") from None
    return list(topo.devices)


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


# --- what the compiled program does

COLLECTIVES = ("all-gather", "reduce-scatter", "all-reduce", "all-to-all", "collective-permute")
_DTYPE_BYTES = {"pred": 1, "s4": 0.5, "u4": 0.5, "s8": 1, "u8": 1, "s16": 2, "u16": 2, "f16": 2, "bf16": 2, "s32": 4,
                "u32": 4, "f32": 4, "s64": 8, "u64": 8, "f64": 8, "c64": 8, "c128": 16}
_ARRAY = re.compile(r"\b(pred|[subfc]\d+|f8e\w+|bf16)\[([\d,]*)\]")
_COLLECTIVE = re.compile(r"=\s.*?\s(" + "|".join(COLLECTIVES) + r")(-start)?\(")
_HEADER = re.compile(r"^(ENTRY\s+)?%?([\w.\-]+)\s.*\{\s*$")
_CALLS = re.compile(r"\b(?:body|condition|to_apply|calls|true_computation|false_computation)=%?([\w.\-]+)"
                    r"|\bbranch_computations=\{([^}]*)\}")


def _array_bytes(text: str) -> list[float]:
    """Bytes of every array shape written in `text` ('f32[128,64]{1,0}', ...)."""
    return [math.prod(int(d) for d in dims.split(",") if d) * _DTYPE_BYTES.get(dt, 1)
            for dt, dims in _ARRAY.findall(text)]


def _group_size(line: str, default: int) -> int:
    """Devices in one replica group of a collective: `replica_groups=mesh['axis_0'=1,'axis_1'=4] {'axis_1'}` (the
    product of the named axes), `{{0,1},{2,3}}`, or the iota form `[2,2]<=[4]` (groups x size)."""
    m = re.search(r"replica_groups=mesh\[([^\]]*)\]\s*\{([^}]*)\}", line)
    if m:
        sizes = {k: int(v) for k, v in re.findall(r"'([^']+)'=(\d+)", m.group(1))}
        named = re.findall(r"'([^']+)'", m.group(2))
        return math.prod(sizes.get(a, 1) for a in named) if named else default
    m = re.search(r"replica_groups=\[(\d+),(\d+)\]<=", line)
    if m:
        return int(m.group(2))
    m = re.search(r"replica_groups=\{\{([\d,]+)\}", line)
    if m:
        return len(m.group(1).split(","))
    return default


class Program:
    """A compiled program's HLO text, split into computations, with how often each runs per step: while bodies run
    their trip count (read from the loop condition's `i < N` with a constant N, as XLA's scans are written; a loop
    whose count cannot be read counts once and is listed in `unknown_loops`)."""

    def __init__(self, text: str):
        self.text = text
        self.header, self.entry = "", None
        self.bodies: dict[str, list[str]] = {}
        current = None
        for line in text.splitlines():
            if line.startswith("HloModule"):
                self.header = line
                continue
            m = _HEADER.match(line) if line and not line[0].isspace() else None
            if m:
                current = m.group(2)
                self.bodies[current] = []
                if m.group(1):
                    self.entry = current
            elif current is not None and line.startswith(" "):
                self.bodies[current].append(line)
        self.unknown_loops: list[str] = []
        self.loops: dict[str, list[tuple[str, str, int]]] = {}  # computation -> its while ops (body, condition, trip)
        self.calls: dict[str, list[tuple[str, int]]] = {}
        for name, lines in self.bodies.items():
            self.calls[name], self.loops[name] = [], []
            for line in lines:
                callees = []
                for one, many in _CALLS.findall(line):
                    callees += [one] if one else [c.strip().lstrip("%") for c in many.split(",") if c.strip()]
                if " while(" in line:
                    body = re.search(r"\bbody=%?([\w.\-]+)", line).group(1)
                    cond = re.search(r"\bcondition=%?([\w.\-]+)", line).group(1)
                    trip = self._trip_count(line, cond)
                    if trip is None:
                        self.unknown_loops.append(body)
                    self.loops[name].append((body, cond, trip or 1))
                    self.calls[name] += [(body, trip or 1), (cond, (trip or 1) + 1)]
                else:
                    self.calls[name] += [(c, 1) for c in callees]
        self.runs = self._runs()

    def _trip_count(self, line: str, condition: str) -> int | None:
        """A while loop's trip count: XLA's `known_trip_count` when the op carries it, else N of its condition
        `i < N` with a constant N (the form of a scan; possibly wrapped in a fusion)."""
        m = re.search(r'"known_trip_count":\{"n":"(\d+)"', line)
        if m:
            return int(m.group(1))
        lines = self.bodies.get(condition, [])
        constants = dict(re.findall(r"%([\w.\-]+) = s32\[\]\S* constant\((\d+)\)", "\n".join(lines)))
        for cond_line in lines:
            m = re.search(r"compare\(%?[\w.\-]+, %([\w.\-]+)\), direction=LT", cond_line)
            if m and m.group(1) in constants:
                return int(constants[m.group(1)])
        called = [c for cond_line in lines for c in re.findall(r"\bcalls=%?([\w.\-]+)", cond_line)]
        less_than = any("direction=LT" in x for c in called for x in self.bodies.get(c, []))
        if less_than and len(set(constants.values())) == 1:
            return int(next(iter(constants.values())))
        return None

    def _runs(self) -> dict[str, int]:
        """computation -> executions per step (callers before callees: the call graph is acyclic)."""
        if self.entry is None:
            return {}
        order, seen = [], set()

        def visit(name: str) -> None:
            seen.add(name)
            for callee, _ in self.calls.get(name, []):
                if callee not in seen:
                    visit(callee)
            order.append(name)

        visit(self.entry)
        runs = dict.fromkeys(order, 0)
        runs[self.entry] = 1
        for name in reversed(order):
            for callee, n in self.calls.get(name, []):
                runs[callee] += runs[name] * n
        return runs

    def cost_as_entry(self, name: str) -> dict[str, float]:
        """XLA's cost analysis (CPU client, platform-neutral counts) of computation `name` as the program's entry;
        like XLA's own, it counts every loop body once."""
        from jax._src.lib import _jax, hlo  # pylint: disable=import-outside-toplevel

        out = ["HloModule loop_cost"]
        text_lines = []
        for line in self.text.splitlines():
            if line.startswith("HloModule"):
                continue
            m = _HEADER.match(line) if line and not line[0].isspace() else None
            if m:
                line = line[len(m.group(1)):] if m.group(1) else line
                if m.group(2) == name:
                    line = "ENTRY " + line
            text_lines.append(line)
        module = hlo.hlo_module_from_text("\n".join(out + text_lines))
        cost = _jax.hlo_module_cost_analysis(jax.devices("cpu")[0].client, module)
        return {"flops": float(cost.get("flops", 0.0)), "bytes accessed": float(cost.get("bytes accessed", 0.0))}

    def loop_factor(self) -> dict[str, float]:
        """{'flops', 'bytes accessed'}: what the step costs with every loop run its trip count, over what XLA's cost
        analysis reports (each loop body once). 1.0 for a program without loops."""
        if not any(self.loops.values()):
            return {"flops": 1.0, "bytes accessed": 1.0}
        cache: dict[str, dict[str, float]] = {}

        def once(name: str) -> dict[str, float]:
            if name not in cache:
                cache[name] = self.cost_as_entry(name)
            return cache[name]

        def inner(name: str) -> list[tuple[str, str, int]]:
            """Loops reachable from `name` without entering another loop's body."""
            found, stack, seen = [], [name], set()
            while stack:
                c = stack.pop()
                if c in seen:
                    continue
                seen.add(c)
                found += self.loops.get(c, [])
                loop_parts = {x for body, cond, _ in self.loops.get(c, []) for x in (body, cond)}
                stack += [callee for callee, _ in self.calls.get(c, []) if callee not in loop_parts]
            return found

        def full(name: str) -> dict[str, float]:
            """Cost of `name` with its loops run their trip counts."""
            total = dict(once(name))
            for body, cond, trip in inner(name):
                body_once, cond_once = once(body), once(cond)
                body_full, cond_full = full(body), full(cond)
                for k in total:
                    total[k] += trip * body_full[k] + (trip + 1) * cond_full[k] - body_once[k] - cond_once[k]
            return total

        base, true = once(self.entry), full(self.entry)
        return {k: true[k] / base[k] if base[k] else 1.0 for k in base}

    def collectives(self, num_devices: int) -> dict[str, dict[str, float]]:
        """By kind: {'count' (ops in the program text), 'executed' (per step, loop bodies times their trip count),
        'bytes' (the full array each moves, summed over executions), 'traffic' (bytes one device sends per step, ring
        estimate: (n-1)/n x bytes, twice that for all-reduce, n = the replica group's size)}.

        XLA:TPU writes a reduce-scatter as an all-reduce inside an `all-reduce-scatter` fusion: counted as a
        reduce-scatter. An async pair (`-start` / `-done`) counts once, and so does a collective that XLA:TPU's async
        collective fusion writes again in the fusions it continues in (`async_collective_fusion.*`) and ends in (the
        one an `async-collective-done` calls): only the copy its `async-collective-start` calls counts."""
        out = {k: {"count": 0, "executed": 0, "bytes": 0.0, "traffic": 0.0} for k in COLLECTIVES}
        copies = {m.group(1) for lines in self.bodies.values() for line in lines if "async-collective-done" in line
                  for m in [re.search(r"\bcalls=%?([\w.\-]+)", line)] if m}
        for name, lines in self.bodies.items():
            if name in copies or name.startswith("async_collective_fusion"):
                continue
            times = self.runs.get(name, 0)
            for line in lines:
                op = _COLLECTIVE.search(line)
                if not op:
                    continue
                kind = op.group(1)
                if kind == "all-reduce" and name.startswith("all-reduce-scatter"):
                    kind = "reduce-scatter"
                sizes = _array_bytes(line[line.index("=") + 1:op.start(1)])  # the result's arrays
                size = max(sizes, default=0) if op.group(2) else sum(sizes)  # -start: (operand, result, context)
                n = _group_size(line, num_devices)
                if op.group(1) == "reduce-scatter":  # a real reduce-scatter's result is one device's share
                    size *= n
                share = (n - 1) / n if n > 1 else 0.0
                factor = {"all-reduce": 2 * share, "collective-permute": 1.0}.get(kind, share)
                rec = out[kind]
                rec["count"] += 1
                rec["executed"] += times
                rec["bytes"] += size * times
                rec["traffic"] += factor * size * times
        return out


def count_collectives(hlo_text: str, num_devices: int) -> dict[str, dict[str, float]]:
    """`Program(hlo_text).collectives(num_devices)`: the collectives of a compiled program by kind."""
    return Program(hlo_text).collectives(num_devices)


def model_flops(config: ml_collections.ConfigDict, params: dict, logical: dict | None = None) -> dict[str, float]:
    """`mm1_jax.models.flops.step_flops` of the config's batch (train.global_batch_size rows of data.seq_len tokens),
    each part counted as training or frozen by train.trainable."""
    trainable = tuple(config.train.trainable)
    flat = traverse_util.flatten_dict(params, sep="/")
    trains = {p: any(k.startswith(p + "/") and is_trainable(k, trainable) for k in flat) for p in PARTS}
    return step_flops(config.model, params, rows=config.train.global_batch_size,
                      seq_len=int(config.data.seq_len), logical=logical, trains=trains)


# --- the report

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


_UNITS = {"": 1, "K": 2 ** 10, "M": 2 ** 20, "G": 2 ** 30, "T": 2 ** 40}


def _oom_numbers(message: str) -> tuple[str, float, float] | None:
    """(what, bytes needed, bytes available) from XLA:TPU's out-of-memory messages: 'the total memory required for
    HLO temporaries (51.29G) exceeds available HBM (15.75G)' or 'Used 20.35G of 15.75G hbm'."""
    m = re.search(r"required for (.+?) \(([\d.]+)([KMGT]?)\) exceeds available HBM \(([\d.]+)([KMGT]?)\)", message)
    if m:
        return m.group(1), float(m.group(2)) * _UNITS[m.group(3)], float(m.group(4)) * _UNITS[m.group(5)]
    m = re.search(r"Used ([\d.]+)([KMGT]?) of ([\d.]+)([KMGT]?) hbm", message)
    if m:
        return "the whole step", float(m.group(1)) * _UNITS[m.group(2)], float(m.group(3)) * _UNITS[m.group(4)]
    return None


def _shape_bytes(shape: str) -> float:
    """Bytes of one HLO array shape such as 'bf16[64,6912,2560]' (0 for tuples and tokens)."""
    return _array_bytes(shape)[0] if _ARRAY.fullmatch(shape) else 0


def largest_buffers(report: str, n: int = 5) -> list[dict[str, Any]]:
    """The `n` largest HBM allocations of XLA:TPU's memory-usage report (the `*memory-usage-report.txt` a compile
    dumps, refused or not): each allocation's bytes, how many values it held over the step, and the largest array
    among them (what sets its size), e.g. a scanned decoder's saved layer inputs or an MoE layer's gathered experts."""
    found = []
    hbm = next((part for part in report.split("Memory Space:") if part.lstrip().startswith("default")), "")
    for line in hbm.splitlines():
        m = re.match(r"\s*[\d.]+\w+\(\s*\d+%\);\s*([\d.]+)([KMGT]?i?B);\s*\d+;\s*(\d+);\s*(.*)$", line)
        if not m:
            continue
        size = float(m.group(1)) * _UNITS[m.group(2)[0] if m.group(2)[0] in "KMGT" else ""]
        shapes = [re.sub(r"^\d+\u00d7", "", x.strip()) for x in re.split(r",\s*(?![^\[]*\])", m.group(4))]
        biggest = max(shapes, key=_shape_bytes) if shapes else ""
        found.append({"bytes": size, "values": int(m.group(3)), "largest": biggest})
    return sorted(found, key=lambda b: -b["bytes"])[:n]


def _read_memory_report(dump_dir: str) -> list[dict[str, Any]]:
    names = sorted(f for f in os.listdir(dump_dir) if f.endswith("memory-usage-report.txt"))
    if not names:
        return []
    with open(os.path.join(dump_dir, names[-1])) as f:
        return largest_buffers(f.read())


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
            with _quiet_stderr():
                compiled = lowered.compile(compiler_options={"xla_dump_to": dump})
        except jax.errors.JaxRuntimeError as e:  # RESOURCE_EXHAUSTED: the step does not fit
            if "RESOURCE_EXHAUSTED" not in str(e):
                raise
            oom = e
        buffers = _read_memory_report(dump)
    if oom is not None:
        what, needed, available = _oom_numbers(str(oom)) or ("the step", math.nan, s.chip.hbm_bytes)
        state = per_chip["params"] + per_chip["opt_state"]
        besides = "" if what == "the whole step" else (
            f", besides {_gib(state)} of parameters + optimizer state and {_gib(per_chip['batch'])} of batch")
        largest = "" if not buffers else "; its largest buffers hold " + ", ".join(
            f"{b['largest']} ({_gib(b['bytes'])})" for b in buffers[:3])
        raise DoesNotFit(
            f"the train step does not fit the {s.label}: per chip the compiler needs {_gib(needed)} for {what} where "
            f"{_gib(available)} are available ({_gib(needed - available)} over){besides}{largest}; shard more "
            "(config.mesh), shrink the batch per chip (train.global_batch_size, train.grad_accum_steps) or "
            "rematerialise more (model.decoder.remat_policy, model.encoder.remat; remat_policy=full_offload keeps "
            "the decoder's layer inputs in host memory).", over=needed - available) from None
    compile_s = time.time() - started
    text = compiled.as_text()
    if hlo_path:
        with open(hlo_path, "w") as f:
            f.write(text)
    mem = compiled.memory_analysis()
    cost = _cost(compiled)
    program = Program(text)
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


def _gib(n: float) -> str:
    return f"{n / GIB:.2f} GiB" if abs(n) >= GIB / 4 else f"{n / 2 ** 20:.1f} MiB"


def _si(n: float, unit: str) -> str:
    for scale, prefix in ((1e18, "E"), (1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(n) >= scale:
            return f"{n / scale:.2f} {prefix}{unit}"
    return f"{n:.0f} {unit}"


def _seconds(t: float) -> str:
    return f"{t * 1e3:.2f} ms" if t < 1 else f"{t:.2f} s"


def format_report(r: dict[str, Any], config_name: str = "") -> str:
    """The CLI's printout of `analyze`'s dict."""
    m, f, ro, chip, mf, t = r["memory"], r["flops"], r["roofline"], r["chip"], r["flops"]["model"], r["roofline"]["times"]
    mesh = ", ".join(f"{k} {v}" for k, v in r["mesh"].items())
    micro = f" in {r['grad_accum_steps']} micro-batches" if r["grad_accum_steps"] > 1 else ""
    verdict = (f"fits, {_gib(m['capacity'] - m['total'])} to spare" if m["fits"]
               else f"does NOT fit, {_gib(m['total'] - m['capacity'])} over")
    lines = [
        (f"{config_name + ' on ' if config_name else ''}{r['topology']} ({r['libtpu_topology']}, {r['chips']} chips), "
         f"mesh {mesh}; batch {r['global_batch_size']} x {r['seq_len']} tokens{micro}; "
         f"{r['num_params'] / 1e6:,.1f}M parameters; compiled in {r['compile_s']:.1f} s"),
        "",
        "HBM per chip",
        (f"  parameters + optimizer state  {_gib(m['params'] + m['opt_state']):>12}  ({_gib(m['params'])} + "
         f"{_gib(m['opt_state'])})"),
        f"  batch                         {_gib(m['batch']):>12}",
        f"  temporaries (activations)     {_gib(m['temp']):>12}",
        f"  outputs not donated           {_gib(m['output'] - m['alias']):>12}",
        f"  generated code                {_gib(m['generated_code']):>12}",
        (f"  total                         {_gib(m['total']):>12}  of {_gib(m['capacity'])} on a {chip['family']} "
         f"chip: {verdict}"),
    ]
    if m.get("largest"):
        lines += ["  largest buffers (the compiler's memory report; a buffer holds several values over the step):"]
        lines += [f"    {_gib(b['bytes']):>10}  {b['largest']}" + (f"  ({b['values']} values over the step)"
                                                                     if b["values"] > 1 else "") for b in m["largest"]]
    lines += [
        "",
        "FLOPs per step",
        f"  compiled            {_si(f['compiled_total'], 'FLOP')} ({_si(f['compiled_per_chip'], 'FLOP')} per chip)",
        (f"  model (analytic)    {_si(mf['total'], 'FLOP')} (decoder {_si(mf['decoder'], 'FLOP')}, encoder "
         f"{_si(mf['encoder'], 'FLOP')}, connector {_si(mf['connector'], 'FLOP')})"),
        (f"  compiled / model    {f['remat_overhead']:.2f}x (rematerialisation, optimizer, loss and the formula's "
         "approximations)"),
        f"  bytes accessed      {_si(f['bytes_accessed_per_chip'], 'B')} per chip",
    ]
    if f["loop_factor"] is None:
        lines.append("  (loop bodies counted once: XLA's cost analysis could not be redone per loop here)")
    elif f["unknown_loops"]:
        lines.append(f"  ({len(f['unknown_loops'])} loop(s) of unknown trip count counted once)")
    lines += ["", "collectives            ops  per step     bytes/step  traffic/chip"]
    for kind, c in r["collectives"].items():
        lines.append(f"  {kind:<20} {c['count']:>5}  {c['executed']:>8}  {_si(c['bytes'], 'B'):>13}  "
                     f"{_si(c['traffic'], 'B'):>12}")
    lines += [
        "",
        (f"roofline (a lower bound, not a measurement: peak {_si(chip['peak_flops'], 'FLOP/s')}, HBM "
         f"{_si(chip['hbm_bandwidth'], 'B/s')}, ICI {_si(chip['ici_bandwidth'], 'B/s')} per chip from "
         f"{chip['source']})"),
        (f"  compute {_seconds(t['compute'])}, HBM {_seconds(t['hbm'])}, ICI {_seconds(t['ici'])} -> step >= "
         f"{_seconds(ro['step_s'])} ({ro['limit']}-bound), at most {_si(ro['tokens_per_s'], 'tokens/s')}"),
        (f"  projected MFU <= {ro['mfu']:.1%} (model FLOPs / (chips x peak x that step time)); a real step also "
         "waits on what does not overlap"),
    ]
    return "\n".join(lines)


# --- searching meshes and remat policies

# the decoder's remat_policy, most memory saved first
SEARCH_REMAT = ("full_offload", "full", "dots_no_batch", "dots", "none")


def search_candidates(config: ml_collections.ConfigDict, chips: int) -> list[dict[str, Any]]:
    """The meshes and decoder remat policies `--search` compiles: fsdp over every chip, or a tensor axis of 2, 4 or 8
    (dividing the heads and the MLP) with fsdp over the rest; an MoE decoder also splits its experts over an expert
    axis of 8 or of all its experts. The batch's rows must split over the data-parallel chips (fsdp x expert)."""
    dec, rows = config.model.decoder, config.train.global_batch_size // config.train.grad_accum_steps
    experts = dec.get("num_experts", 0)
    kv_heads = dec.get("num_kv_heads") or dec.num_heads
    mlp = dec.get("expert_mlp_dim") or dec.mlp_dim
    tensors = [t for t in (1, 2, 4, 8) if chips % t == 0 and dec.num_heads % t == 0 and kv_heads % t == 0
               and mlp % t == 0]
    expert_sizes = [1] + sorted({e for e in (8, experts) if experts and e > 1 and experts % e == 0})
    found = []
    for tensor in tensors:
        for expert in expert_sizes:
            fsdp = chips // tensor // expert
            if fsdp < 1 or fsdp * tensor * expert != chips or rows % (fsdp * expert):
                continue
            for policy in SEARCH_REMAT:
                found.append({"mesh": dict(data=1, fsdp=fsdp, tensor=tensor, expert=expert), "remat_policy": policy})
    return found


def search(config: ml_collections.ConfigDict, s: Slice, limit: int = 0, log=print) -> list[dict[str, Any]]:
    """Compile every candidate of `search_candidates` (the first `limit` when > 0) for slice `s`; the results ranked:
    those that fit by projected MFU, then those that do not by how far over they are, then the ones refused."""
    results = []
    candidates = search_candidates(config, s.chips)
    candidates = candidates[:limit] if limit > 0 else candidates
    for i, c in enumerate(candidates, 1):
        trial = copy.deepcopy(config)
        trial.mesh = dict(c["mesh"])
        trial.model.decoder.remat_policy = c["remat_policy"]
        started = time.time()
        row = {**c, "report": None, "error": None}
        try:
            row["report"] = analyze(trial, s)
        except DoesNotFit as e:
            row["error"], row["over"] = str(e), e.over
        except (ValueError, jax.errors.JaxRuntimeError) as e:
            row["error"] = str(e).splitlines()[0]
        log(f"[{i}/{len(candidates)}] {_mesh_label(c['mesh'])}, remat {c['remat_policy']}: " + (
            f"fits, MFU <= {row['report']['roofline']['mfu']:.1%}" if row["report"] and row["report"]["memory"]["fits"]
            else "does not fit" if row["report"] or "over" in row else "refused") + f" ({time.time() - started:.0f} s)")
        results.append(row)

    def rank(row):
        r = row["report"]
        if r is not None and r["memory"]["fits"]:
            return (0, -r["roofline"]["mfu"])
        if r is not None:
            return (1, r["memory"]["total"] - r["memory"]["capacity"])
        over = row.get("over", math.nan)
        return (1, over if not math.isnan(over) else math.inf) if "over" in row else (2, 0)

    return sorted(results, key=rank)


def _mesh_label(mesh: dict) -> str:
    return " ".join(f"{k} {v}" for k, v in mesh.items() if v != 1 or k == "fsdp")


def format_search(results: list[dict[str, Any]], s: Slice) -> str:
    """The ranked table `--search` prints."""
    lines = [f"{len(results)} candidates on the {s.label}, best first (MFU: the roofline bound, not a measurement)",
             f"  {'mesh':<28} {'remat':<14} {'HBM/chip':>10}  {'step >=':>10}  {'MFU <=':>7}  verdict"]
    for row in results:
        r = row["report"]
        mesh, policy = _mesh_label(row["mesh"]), row["remat_policy"]
        if r is not None:
            verdict = "fits" if r["memory"]["fits"] else f"{_gib(r['memory']['total'] - r['memory']['capacity'])} over"
            lines.append(f"  {mesh:<28} {policy:<14} {_gib(r['memory']['total']):>10}  "
                         f"{_seconds(r['roofline']['step_s']):>10}  {r['roofline']['mfu']:>7.1%}  {verdict}")
        elif "over" in row:
            lines.append(f"  {mesh:<28} {policy:<14} {'':>10}  {'':>10}  {'':>7}  refused by the compiler, "
                         f"{_gib(row['over'])} over")
        else:
            lines.append(f"  {mesh:<28} {policy:<14} {'':>10}  {'':>10}  {'':>7}  {row['error']}")
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
            if not search_candidates(config, s.chips):
                raise ValueError(f"no mesh of the {s.label} splits train.global_batch_size="
                                 f"{config.train.global_batch_size} over its data-parallel chips.")
            results = search(config, s, limit=_FLAGS[4].value, log=lambda line: print(line, flush=True))
            print(format_search(results, s), flush=True)
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
