"""The papers' benchmark suites and their averages, from eval scores {"task/Nshot/metric": value}.

  MM1 few-shot   MM1 (arXiv 2403.09611) Sec. 3: the mean of 3 captioning CIDEr and 5 VQA accuracies at each
                 shot count (0, 4, 8), each in percent (CIDEr 100 = a pycocoevalcap score of 1.0)
  TextCore       MM1 Fig. 5: text-only tasks (ARC, PIQA, LAMBADA, ...; the full list is not given in the text)
  MM1.5          MM1.5 (arXiv 2409.20566) category averages at 0-shot (General, Text-rich, Knowledge,
                 Refer&Ground, Multi-image) and MMBase = mean(General, Text-rich, Knowledge); category membership
                 from secondary summaries of the paper (unverified)

A suite only names its members: each benchmark's task, score key and unit come from the task registry
(`mm1_jax.eval.datasets.reported_score`). `averages(scores)` gives every suite it can compute from the tasks that
ran, with the members it used and those it lacked, so a partial average is never mistaken for the paper's.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mm1_jax.eval import datasets


def benchmark(task: str, note: str = "") -> dict[str, Any]:
    """A benchmark of a paper's table: the task that scores it, the score key and the factor to the paper's unit
    (None: not found), all from the task registry (`datasets.reported_score`); `note` replaces the registry's."""
    return datasets.reported_score(task, note)


MM1_FEWSHOT = {
    "COCO": benchmark("coco_cap"),
    "NoCaps": benchmark("nocaps"),
    "TextCaps": benchmark("textcaps"),
    "VQAv2": benchmark("vqav2"),
    "TextVQA": benchmark("textvqa"),
    "VizWiz": benchmark("vizwiz"),
    "GQA": benchmark("gqa"),
    "OK-VQA": benchmark("okvqa"),
}
TEXTCORE = {"TextCore": benchmark("textcore", note="the mean of eval.textcore's tasks (ARC-Easy, ARC-Challenge, "
                                  "PIQA, LAMBADA by default; MM1's full list was not found)")}

MM15_GENERAL = {
    "MME": benchmark("mme"),
    "SEED-IMG": benchmark("seed_img"),
    "POPE": benchmark("pope"),
    "LLaVA-W": benchmark("llava_w"),
    "MM-Vet": benchmark("mmvet"),
    "RealWorldQA": benchmark("realworldqa"),
}
MM15_TEXT_RICH = {
    "WTQ": benchmark("wtq"),
    "TabFact": benchmark("tabfact"),
    "OCRBench": benchmark("ocrbench"),
    "ChartQA": benchmark("chartqa"),
    "TextVQA": MM1_FEWSHOT["TextVQA"],
    "DocVQA": benchmark("docvqa"),
    "InfoVQA": benchmark("infovqa"),
}
MM15_KNOWLEDGE = {
    "AI2D": benchmark("ai2d"),
    "ScienceQA": benchmark("scienceqa"),
    "MathVista": benchmark("mathvista"),
    "MMMU": benchmark("mmmu"),
}
MM15_REFER_GROUND = {
    "RefCOCO": benchmark("refcoco", note="MM1.5 averages the RefCOCO family's splits; here one task per dataset "
                         "(refcoco, refcoco_plus, refcocog), split by config"),
    "Flickr30k-Entities": benchmark("flickr30k_entities"),
    "LVIS-Ref": benchmark("lvis_ref"),
    "Ferret-Bench": benchmark("ferret_bench"),
}
MM15_MULTI_IMAGE = {
    "QBench2": benchmark("qbench2"),
    "Mantis": benchmark("mantis"),
    "NLVR2": benchmark("nlvr2"),
    "BLINK": benchmark("blink"),
    "MVBench": benchmark("mvbench"),
    "MuirBench": benchmark("muirbench"),
}
MM15_CATEGORIES = {"General": MM15_GENERAL, "Text-rich": MM15_TEXT_RICH, "Knowledge": MM15_KNOWLEDGE,
                   "Refer&Ground": MM15_REFER_GROUND, "Multi-image": MM15_MULTI_IMAGE}

# suite -> (benchmarks, shot counts it is reported at: None = every shot count that ran)
SUITES: dict[str, tuple[dict[str, dict], tuple[int, ...] | None]] = {
    "MM1 few-shot": (MM1_FEWSHOT, None),
    "TextCore": (TEXTCORE, (0,)),
    **{name: (table, (0,)) for name, table in MM15_CATEGORIES.items()},
}
MMBASE = ("General", "Text-rich", "Knowledge")

# Task-list names for a whole suite (`--tasks=mm15`, `--tasks=mm15_general,...`): each selects the suite's benchmarks
# that a task scores and whose files the config sets (`config.eval.<task>.<field>`); the averages then name the
# benchmarks used and lacked.
SELECTIONS: dict[str, tuple[str, ...]] = {
    "mm15": tuple(b["task"] for t in MM15_CATEGORIES.values() for b in t.values()),
    **{"mm15_" + name.lower().replace("-", "_").replace("&", "_"): tuple(b["task"] for b in t.values())
       for name, t in MM15_CATEGORIES.items()},
}


def select(names: Any, eval_cfg: Any = None) -> list[str]:
    """Task names with each suite selection (SELECTIONS) replaced by its members whose files are set, in order,
    without repeats; ValueError when a selection has none."""
    out: list[str] = []
    for name in names:
        if name not in SELECTIONS:
            members = [name]
        else:
            members = [t for t in SELECTIONS[name] if t in datasets.TASKS and datasets.files_given(t, eval_cfg)]
            if not members:
                runnable = sorted({t for t in SELECTIONS[name] if t in datasets.TASKS})
                raise ValueError(f"--tasks={name}: no benchmark of it has its files set; give one with "
                                 f"config.eval.<task>.annotations (its tasks: {', '.join(runnable)}).")
        out += [m for m in members if m not in out]
    return out


def value(b: Mapping[str, Any], scores: Mapping[str, float], shots: int) -> float | None:
    """A benchmark's score in the paper's unit, None when it did not run or its unit is unknown."""
    raw = scores.get(f"{b['task']}/{shots}shot/{b['metric']}")
    return None if raw is None or b.get("scale") is None else raw * b["scale"]


def _shots(scores: Mapping[str, float]) -> list[int]:
    return sorted({int(key.split("/")[1].removesuffix("shot")) for key in scores if key.count("/") == 2})


def averages(scores: Mapping[str, float]) -> dict[str, dict[str, Any]]:
    """{"suite/Nshot": {"mean", "used", "missing", "complete"}} for every suite with at least one member scored."""
    out: dict[str, dict[str, Any]] = {}
    for suite, (table, shot_counts) in SUITES.items():
        for k in shot_counts if shot_counts is not None else _shots(scores):
            got = {name: value(b, scores, k) for name, b in table.items()}
            used = {name: v for name, v in got.items() if v is not None}
            if used:
                out[f"{suite}/{k}shot"] = dict(mean=sum(used.values()) / len(used), used=sorted(used),
                                               missing=sorted(set(table) - set(used)),
                                               complete=len(used) == len(table))
    parts = [out.get(f"{c}/0shot") for c in MMBASE]
    if all(parts):
        out["MMBase/0shot"] = dict(mean=sum(p["mean"] for p in parts) / len(parts), used=list(MMBASE),
                                   missing=[], complete=all(p["complete"] for p in parts))
    return out


def table(avgs: Mapping[str, Mapping[str, Any]]) -> str:
    """The averages as printed lines: 'MM1 few-shot  0-shot  45.12  (6 of 8; missing GQA, OK-VQA)'."""
    lines = []
    for key, a in avgs.items():
        suite, shots = key.rsplit("/", 1)
        count = f"{len(a['used'])} of {len(a['used']) + len(a['missing'])}"
        tail = "" if a["complete"] else f"  ({count}; missing {', '.join(a['missing'])})" if a["missing"] else \
            "  (from partial parts)"
        lines.append(f"{suite:14s} {shots.removesuffix('shot')}-shot  {a['mean']:7.2f}{tail}")
    return "\n".join(lines)
