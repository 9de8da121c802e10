"""Searching meshes and decoder remat policies for a TPU slice: compile each candidate (`aot.analyze`) and rank them
by projected MFU among those that fit (`python -m mm1_jax.train.aot --search=N`)."""
from __future__ import annotations

import copy
import math
import time
from typing import Any

import jax
import ml_collections

from mm1_jax.models import config as model_config
from mm1_jax.train import aot
from mm1_jax.train.tpu import Slice

# the decoder's remat_policy, most memory saved first
SEARCH_REMAT = ("full_offload", "full", "dots_no_batch", "dots", "none")


def search_candidates(config: ml_collections.ConfigDict, chips: int) -> list[dict[str, Any]]:
    """The meshes and decoder remat policies `--search` compiles: fsdp over every chip, or a tensor axis of 2, 4 or 8
    (dividing the heads and the MLP) with fsdp over the rest; an MoE decoder also splits its experts over an expert
    axis of 8 or of all its experts. The batch's rows must split over the data-parallel chips (fsdp x expert)."""
    dec, rows = config.model.decoder, config.train.global_batch_size // config.train.grad_accum_steps
    experts = model_config.get(dec, "decoder", "num_experts")
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
            row["report"] = aot.analyze(trial, s)
        except aot.DoesNotFit as e:
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
            over = r["memory"]["total"] - r["memory"]["capacity"]
            verdict = "fits" if r["memory"]["fits"] else f"{aot.bytes_text(over)} over"
            lines.append(f"  {mesh:<28} {policy:<14} {aot.bytes_text(r['memory']['total']):>10}  "
                         f"{aot.seconds_text(r['roofline']['step_s']):>10}  {r['roofline']['mfu']:>7.1%}  {verdict}")
        elif "over" in row:
            lines.append(f"  {mesh:<28} {policy:<14} {'':>10}  {'':>10}  {'':>7}  refused by the compiler, "
                         f"{aot.bytes_text(row['over'])} over")
        else:
            lines.append(f"  {mesh:<28} {policy:<14} {'':>10}  {'':>10}  {'':>7}  {row['error']}")
    return "\n".join(lines)
