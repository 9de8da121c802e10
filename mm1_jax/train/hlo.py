"""Reading what XLA:TPU wrote for a compiled program: its HLO text (`Program`: computations, loop trip counts,
collectives, the cost of every loop run its trip count), its memory-usage report (`largest_buffers`) and its
out-of-memory message (`oom_numbers`)."""
from __future__ import annotations

import math
import os
import re
from typing import Any

import jax

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


# --- the memory-usage report and the out-of-memory message

_UNITS = {"": 1, "K": 2 ** 10, "M": 2 ** 20, "G": 2 ** 30, "T": 2 ** 40}


def oom_numbers(message: str) -> tuple[str, float, float] | None:
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


def read_memory_report(dump_dir: str) -> list[dict[str, Any]]:
    """`largest_buffers` of the memory-usage report a compile dumped into `dump_dir` ([] when it wrote none)."""
    names = sorted(f for f in os.listdir(dump_dir) if f.endswith("memory-usage-report.txt"))
    if not names:
        return []
    with open(os.path.join(dump_dir, names[-1])) as f:
        return largest_buffers(f.read())
