"""Ahead-of-time compilation for a TPU slice (mm1_jax.train.aot): topology names (tpu), the HLO reading (hlo: loop
trip counts, collectives), the mesh search (aot_search), the one-sentence refusals, and a golden of the collectives
in configs/tiny.py's compiled train step (one layer each of encoder and decoder) on a v5e 2x2 slice (fsdp 4), as MaxText
pins its HLO.

The golden fails when a change of the sharding (an axis rule, the mesh, a constraint in a model) changes which
collectives the step compiles to: an all-gather more per layer is one more in the pinned model. After an intended change,
or a new libtpu, regenerate it and review the diff of the file:

    MM1_AOT_REGOLDEN=1 python -m pytest -q tests/test_aot.py

The compile tests need the libtpu wheel (the `aot` extra, part of `test`) and are skipped without it; they run the
command in subprocesses (JAX_PLATFORMS=cpu: libtpu compiles, no TPU is needed), started together.
"""
from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import re
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from mm1_jax.train import aot, aot_search, hlo, tpu

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GOLDEN = os.path.join(ROOT, "tests", "goldens", "tiny_v5e_2x2.json")
# configs/tiny.py with one encoder and one decoder layer: every kind of layer and parameter the sharding rules place,
# compiled in two thirds of the full model's time (its three layers repeat the one's collectives)
GOLDEN_ARGS = ["--config=configs/tiny.py", "--topology=v5e-4", "--config.model.decoder.depth=1",
               "--config.model.encoder.depth=1"]
HAS_LIBTPU = importlib.util.find_spec("libtpu") is not None
needs_libtpu = pytest.mark.skipif(not HAS_LIBTPU, reason="needs the libtpu wheel: pip install -e '.[aot]'")


def _start(args: list[str], json_path: str | None = None) -> subprocess.Popen:
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    cmd = [sys.executable, "-m", "mm1_jax.train.aot", *args] + ([f"--json={json_path}"] if json_path else [])
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _finish(proc: subprocess.Popen) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=1200)
    return proc.returncode, out, err


# --- no libtpu needed

@pytest.mark.parametrize("name,family,topology,chips", [
    ("v5p-256", "v5p", "v5:4x4x8", 128), ("v5p-8", "v5p", "v5:2x2x1", 4), ("v4-8", "v4", "v4:2x2x1", 4),
    ("v5e-16", "v5e", "v5e:4x4", 16), ("v6e-256", "v6e", "v6e:16x16", 256), ("v5e:2x2", "v5e", "v5e:2x2", 4),
    ("v5p:4x4x12", "v5p", "v5:4x4x12", 192)])
def test_topology_names(name, family, topology, chips):
    """MaxText's names (v4/v5p count TensorCores, v5e/v6e chips) and JAX's FAMILY:AxB[xC]."""
    s = tpu.parse_topology(name)
    assert (s.chip.family, s.topology, s.chips) == (family, topology, chips)


@pytest.mark.parametrize("name", ["v5x-8", "v5p-7", "v5e-3", "v4-8192", "tpu"])
def test_unknown_topology_is_one_sentence(name):
    with pytest.raises(ValueError, match=r"is not a TPU slice this tool knows; use one of v4-\{8,.*v5e:2x2"):
        tpu.parse_topology(name)


def test_program_reads_loops_and_collectives():
    """A scanned, fsdp-sharded gradient compiled for 4 CPU devices: each loop runs 5 times, so the loop factor on
    FLOPs is 5 and every collective inside the loops executes 5 times per step."""
    mesh = Mesh(np.array(jax.devices()[:4]), ("fsdp",))

    def f(ws, x):
        x, _ = jax.lax.scan(lambda x, w: (jnp.tanh(x @ w), None), x, ws)
        return jnp.sum(x)

    shardings = (NamedSharding(mesh, PartitionSpec(None, "fsdp")), NamedSharding(mesh, PartitionSpec("fsdp")))
    compiled = jax.jit(jax.grad(f), in_shardings=shardings).lower(
        jax.ShapeDtypeStruct((5, 256, 256), jnp.float32), jax.ShapeDtypeStruct((64, 256), jnp.float32)).compile()
    program = hlo.Program(compiled.as_text())
    assert sorted(trip for loops in program.loops.values() for _, _, trip in loops) == [5, 5]
    assert not program.unknown_loops
    assert program.loop_factor()["flops"] == pytest.approx(5.0, rel=1e-3)
    gathers = program.collectives(4)["all-gather"]
    assert gathers["count"] >= 1 and gathers["executed"] == 5 * gathers["count"]
    assert gathers["bytes"] == 5 * gathers["count"] * 256 * 256 * 4  # each gathers one whole [256, 256] f32 layer


ASYNC_FUSED = """HloModule step

%fused_computation.1 (param_0: bf16[4,8]) -> (bf16[4,8], bf16[16,8]) {
  %param_0 = bf16[4,8]{1,0} parameter(0)
  %all-gather.1 = bf16[16,8]{1,0} all-gather(%param_0), channel_id=7, replica_groups=[1,4]<=[4], dimensions={0}
  ROOT %custom-call.1 = (bf16[4,8]{1,0}, bf16[16,8]{1,0}) custom-call(%param_0, %all-gather.1)
}

%async_collective_fusion.2 (param_0.1: bf16[4,8], param_1: f32[8]) -> (bf16[16,8], f32[8]) {
  %param_0.1 = bf16[4,8]{1,0} parameter(0)
  %param_1 = f32[8]{0} parameter(1)
  %all-gather.2 = bf16[16,8]{1,0} all-gather(%param_0.1), channel_id=7, replica_groups=[1,4]<=[4], dimensions={0}
  %tanh.1 = f32[8]{0} tanh(%param_1)
  ROOT %tuple.1 = (bf16[16,8]{1,0}, f32[8]{0}) tuple(%all-gather.2, %tanh.1)
}

%fused_computation.3 (param_0.2: bf16[4,8]) -> bf16[16,8] {
  %param_0.2 = bf16[4,8]{1,0} parameter(0)
  ROOT %all-gather.3 = bf16[16,8]{1,0} all-gather(%param_0.2), channel_id=7, replica_groups=[1,4]<=[4], dimensions={0}
}

ENTRY %main.1_spmd (p: bf16[4,8], q: f32[8]) -> (bf16[16,8], f32[8]) {
  %p = bf16[4,8]{1,0} parameter(0)
  %q = f32[8]{0} parameter(1)
  %async-collective-start.1 = (bf16[4,8]{1,0}, bf16[16,8]{1,0}) fusion(%p), kind=kCustom, calls=%fused_computation.1
  %fusion.2 = (bf16[16,8]{1,0}, f32[8]{0}) fusion(%p, %q), kind=kCustom, calls=%async_collective_fusion.2
  %get-tuple-element.1 = f32[8]{0} get-tuple-element(%fusion.2), index=1
  %async-collective-done.1 = bf16[16,8]{1,0} fusion(%p), kind=kCustom, calls=%fused_computation.3
  ROOT %tuple.2 = (bf16[16,8]{1,0}, f32[8]{0}) tuple(%async-collective-done.1, %get-tuple-element.1)
}
"""


def test_an_async_fused_collective_counts_once():
    """XLA:TPU's async collective fusion writes one all-gather in the fusion that starts it, again in each fusion it
    continues beside and in the one that ends it (the structure of a compiled MM1 step, shapes shrunk): one gather of
    a [16, 8] bf16 array."""
    gathers = hlo.count_collectives(ASYNC_FUSED, 4)["all-gather"]
    assert gathers == {"count": 1, "executed": 1, "bytes": 16 * 8 * 2, "traffic": 0.75 * 16 * 8 * 2}


def test_largest_buffers_reads_the_memory_report():
    """Allocations of the HBM section (not VMEM's), biggest first, each with its largest array (N x counts once)."""
    report = """Memory Space: default (color=0)
Total bytes: 18656204288 (17.37GiB)
  cumulative_size;       size;       offset; used_by_n_values; shapes_list
  ------------------------------------------------------------
    1.80GiB( 10%);    1.80GiB;   9114861568;                5; 5\u00d7bf16[32,32,730,1280]
    3.91GiB( 22%);    2.11GiB;   4585013248;               24; bf16[16384,2560], bf16[2,4096,2560], 8\u00d7bf16[64,2560,6912]
    4.45GiB( 25%);  547.50MiB;   4290363392;                1; bf16[32,16,730,730]
    4.65GiB( 26%);  216.00MiB;  12452741120;                6; 2\u00d7bf16[8192,2,2560], (f32[2,4096]{1,0}, u32[]), 4\u00d7bf16[16384,6912]
Memory Space: vmem (color=1)
  cumulative_size;       size;       offset; used_by_n_values; shapes_list
    64.00GiB(100%);   64.00GiB;            0;                1; f32[4,4]
"""
    found = hlo.largest_buffers(report, n=3)
    assert found == [{"bytes": 2.11 * 2 ** 30, "values": 24, "largest": "bf16[64,2560,6912]"},
                     {"bytes": 1.80 * 2 ** 30, "values": 5, "largest": "bf16[32,32,730,1280]"},
                     {"bytes": 547.5 * 2 ** 20, "values": 1, "largest": "bf16[32,16,730,730]"}]
    assert hlo.largest_buffers(report)[-1]["largest"] == "bf16[16384,6912]"  # 226 MB > the 84 MB of [8192,2,2560]
    assert hlo._shape_bytes("bf16[64,2560,6912]") == 64 * 2560 * 6912 * 2 and hlo._shape_bytes("token[]") == 0


@pytest.mark.parametrize("line,size", [
    ("all-gather(%p), replica_groups=mesh['axis_0'=2,'axis_1'=4] {'axis_1'}, dimensions={0}", 4),
    ("all-reduce(%p), replica_groups=mesh['axis_0'=2,'axis_1'=4] {'axis_0','axis_1'}, to_apply=%add", 8),
    ("all-reduce(%p), replica_groups={{0,1},{2,3}}, to_apply=%add", 2),
    ("all-gather(%p), replica_groups=[2,4]<=[8], dimensions={0}", 4)])
def test_replica_group_sizes(line, size):
    assert hlo._group_size(line, 8) == size  # pylint: disable=protected-access


@pytest.fixture(scope="module")
def refusals():
    """The CLI's answers to bad input that is refused before anything compiles."""
    procs = {"topology": _start(["--config=configs/tiny.py", "--topology=v5x-8"]),
             "mesh": _start(["--config=configs/tiny.py", "--topology=v5e-4", "--config.mesh.fsdp=3"])}
    return {k: _finish(p) for k, p in procs.items()}


@pytest.mark.parametrize("kind,sentence", [
    ("topology", "error: --topology=v5x-8 is not a TPU slice this tool knows; use one of v4-{8,"),
    ("mesh", ("error: mesh {'data': 1, 'fsdp': 3, 'tensor': 1, 'expert': 1} does not divide the v5e-4 slice "
              "(v5e 2x2, 4 chips): the sizes must multiply to 4"))])
@pytest.mark.slow
def test_bad_input_is_one_sentence(refusals, kind, sentence):
    code, out, err = refusals[kind]
    assert code == 1 and not out
    assert err.startswith(sentence) and err.count("\n") == 1 and "Traceback" not in err, err


def test_search_candidates():
    """Tiny (4 heads, 2 KV heads): fsdp 4, or fsdp 2 x tensor 2 (tensor 4 would split the 2 KV heads), each with the
    five decoder remat policies; an MoE of 64 experts also splits them 8 or 64 ways, every mesh using all chips."""
    from configs import mm1_pretrain, tiny

    found = aot_search.search_candidates(tiny.get_config(), 4)
    assert [(c["mesh"]["fsdp"], c["mesh"]["tensor"], c["remat_policy"]) for c in found] == [
        (4, 1, p) for p in aot_search.SEARCH_REMAT] + [(2, 2, p) for p in aot_search.SEARCH_REMAT]
    moe = mm1_pretrain.get_config("decoder=3b-moe")  # 20 heads, 64 experts, batch 512
    meshes = {tuple(c["mesh"][a] for a in ("fsdp", "tensor", "expert")) for c in aot_search.search_candidates(moe, 128)}
    assert meshes == {(128, 1, 1), (16, 1, 8), (2, 1, 64), (64, 2, 1), (8, 2, 8), (1, 2, 64), (32, 4, 1), (4, 4, 8)}
    assert aot_search.search_candidates(tiny.get_config(), 32) == []  # batch 8 splits over neither 32 nor 16 chips


def test_search_ranks_what_fits_by_mfu(monkeypatch):
    """Each candidate is compiled with its own mesh and remat policy; those that fit come first by projected MFU,
    then those over capacity by how far over, then the ones refused for another reason."""
    from configs import tiny

    config, seen = tiny.get_config(), []
    outcome = {(4, "full_offload"): 0.25, (4, "full"): 0.30, (4, "dots_no_batch"): 0.45, (4, "dots"): "over 5",
               (4, "none"): "over 1", (2, "full_offload"): "over 2", (2, "full"): 0.40, (2, "dots_no_batch"): "refused",
               (2, "dots"): "over 3", (2, "none"): 0.10}

    def fake_analyze(trial, s):
        seen.append((dict(trial.mesh), trial.model.decoder.remat_policy))
        result = outcome[(trial.mesh["fsdp"], trial.model.decoder.remat_policy)]
        if result == "refused":
            raise ValueError("some other reason")
        if result == "over 3":  # the compiler accepted it; the total is over the capacity
            return {"memory": {"fits": False, "total": 19 * 2 ** 30, "capacity": 16 * 2 ** 30},
                    "roofline": {"mfu": 0.9, "step_s": 1.0}}
        if isinstance(result, str):
            raise aot.DoesNotFit("too big", over=float(result.split()[1]) * 2 ** 30)
        return {"memory": {"fits": True, "total": 2 ** 30, "capacity": 16 * 2 ** 30},
                "roofline": {"mfu": result, "step_s": 1.0}}

    monkeypatch.setattr(aot, "analyze", fake_analyze)
    s = tpu.parse_topology("v5e-4")
    ranked = aot_search.search(config, s, log=lambda line: None)
    assert [(r["mesh"]["fsdp"], r["remat_policy"]) for r in ranked] == [
        (4, "dots_no_batch"), (2, "full"), (4, "full"), (4, "full_offload"), (2, "none"), (4, "none"),
        (2, "full_offload"), (2, "dots"), (4, "dots"), (2, "dots_no_batch")]
    assert seen[5] == ({"data": 1, "fsdp": 2, "tensor": 2, "expert": 1}, "full_offload")
    assert config.model.decoder.remat_policy == tiny.get_config().model.decoder.remat_policy  # the input untouched
    table = aot_search.format_search(ranked, s).splitlines()
    assert table[2].split()[:5] == ["fsdp", "4", "dots_no_batch", "1.00", "GiB"] and table[2].endswith("45.0%  fits")
    assert table[-1].endswith("some other reason") and "5.00 GiB over" in table[-2]
    assert len(aot_search.search(config, s, limit=3, log=lambda line: None)) == 3


# --- compiled for the slice (libtpu)

@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    """The golden command, the same with a tensor axis added, and a step too big for the slice, compiled at once."""
    tmp = tmp_path_factory.mktemp("aot")
    runs = {"golden": (GOLDEN_ARGS, tmp / "golden.json"),
            "tensor": (GOLDEN_ARGS + ["--config.mesh.fsdp=2", "--config.mesh.tensor=2"], tmp / "tensor.json"),
            "too_big": (GOLDEN_ARGS + ["--config.model.decoder.width=16384", "--config.model.decoder.mlp_dim=65536"], None)}
    procs = {k: _start(args, str(path) if path else None) for k, (args, path) in runs.items()}
    results = {}
    for k, proc in procs.items():
        code, out, err = _finish(proc)
        path = runs[k][1]
        report = json.loads(path.read_text()) if path is not None and path.exists() else None
        results[k] = {"code": code, "out": out, "err": err, "report": report}
    return results


def _pinned(report: dict) -> dict:
    """What the golden pins: per kind, ops in the program, executions per step and bytes moved."""
    return {kind: {k: c[k] for k in ("count", "executed", "bytes")} for kind, c in report["collectives"].items()}


@pytest.mark.slow
@needs_libtpu
def test_golden_collectives(compiled):
    run = compiled["golden"]
    assert run["code"] == 0, run["err"][-3000:]
    counts = _pinned(run["report"])
    versions = {"libtpu": importlib.metadata.version("libtpu"), "jax": jax.__version__}
    if os.environ.get("MM1_AOT_REGOLDEN"):
        os.makedirs(os.path.dirname(GOLDEN), exist_ok=True)
        with open(GOLDEN, "w") as f:
            json.dump({"command": "python -m mm1_jax.train.aot " + " ".join(GOLDEN_ARGS), **versions,
                       "collectives": counts}, f, indent=1)
            f.write("\n")
        pytest.skip(f"wrote {GOLDEN}")
    with open(GOLDEN) as f:
        golden = json.load(f)
    diff = {kind: (golden["collectives"].get(kind), c) for kind, c in counts.items()
            if golden["collectives"].get(kind) != c}
    assert not diff, (f"the collectives of configs/tiny.py's train step on v5e 2x2 changed (golden from libtpu "
                      f"{golden['libtpu']}, jax {golden['jax']}; now {versions}): {diff}. If the sharding change is "
                      "intended, regenerate with MM1_AOT_REGOLDEN=1 (tests/test_aot.py).")


@pytest.mark.slow
@needs_libtpu
def test_report_sections(compiled):
    run = compiled["golden"]
    out, report = run["out"], run["report"]
    for heading in ("HBM per chip", "FLOPs per step", "collectives", "roofline (a lower bound, not a measurement"):
        assert heading in out
    assert "on a v5e chip: fits" in out and "cloud.google.com/tpu/docs/v5e" in out
    assert report["mesh"] == {"data": 1, "fsdp": 4, "tensor": 1, "expert": 1} and report["chips"] == 4
    m, f = report["memory"], report["flops"]
    assert m["fits"] and 0 < m["params"] < m["total"] < m["capacity"]
    assert 0 <= m["opt_state"] - 2 * m["params"] < 1024  # AdamW: two moments per parameter, sharded alike (+ counts)
    # the compiled step does the model's work: within 25% of 6N per token + attention (no remat in tiny)
    assert 0.75 < f["remat_overhead"] < 1.25, f
    assert 0 < report["roofline"]["mfu"] <= 1
    # the compiler's largest allocations, biggest first; each holds its largest array (tiled: maybe padded)
    largest = m["largest"]
    assert "largest buffers (the compiler's memory report" in out and len(largest) == 5
    assert [b["bytes"] for b in largest] == sorted((b["bytes"] for b in largest), reverse=True)
    assert all(0 < hlo._shape_bytes(b["largest"]) <= b["bytes"] <= m["total"] for b in largest), largest


@pytest.mark.slow
@needs_libtpu
def test_adding_a_tensor_axis_breaks_the_golden(compiled):
    """The golden is sensitive: the same model with half its fsdp axis turned into a tensor axis compiles to other
    collectives (the activations' all-reduces and gathers of a tensor-parallel layer), which the golden test would
    refuse."""
    run = compiled["tensor"]
    assert run["code"] == 0, run["err"][-3000:]
    with open(GOLDEN) as f:
        golden = json.load(f)["collectives"]
    changed = _pinned(run["report"])
    assert changed != golden
    assert changed["all-reduce"]["count"] > golden["all-reduce"]["count"]


@pytest.mark.slow
@needs_libtpu
def test_too_big_is_one_sentence_with_the_numbers(compiled):
    run = compiled["too_big"]
    assert run["code"] == 1 and not run["out"]
    err = run["err"]
    assert err.startswith("error: the train step does not fit the v5e-4 slice (v5e 2x2, 4 chips): per chip the "
                          "compiler needs "), err
    assert "GiB are available" in err and "of parameters + optimizer state" in err
    # the largest buffer named is one of the 16384 x 65536 MLP weights in float32 (a gathered weight or its gradient)
    assert re.search(r"; its largest buffers hold f32\[(65536,16384|16384,65536)\] \(4\.00 GiB\), ", err), err
    assert err.count("\n") == 1 and "Traceback" not in err
