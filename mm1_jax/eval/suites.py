"""The papers' benchmark suites and their averages, from eval scores {"task/Nshot/metric": value}.

  MM1 few-shot   MM1 (arXiv 2403.09611) Sec. 3: the mean of 3 captioning CIDEr and 5 VQA accuracies at each
                 shot count (0, 4, 8), each in percent (CIDEr 100 = a pycocoevalcap score of 1.0)
  TextCore       MM1 Fig. 5: text-only tasks (ARC, PIQA, LAMBADA, ...; the full list is not given in the text)
  MM1.5          MM1.5 (arXiv 2409.20566) category averages at 0-shot (General, Text-rich, Knowledge,
                 Refer&Ground, Multi-image) and MMBase = mean(General, Text-rich, Knowledge); category membership
                 from secondary summaries of the paper (unverified)

`averages(scores)` gives every suite it can compute from the tasks that ran, with the members it used and those it
lacked, so a partial average is never mistaken for the paper's.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def benchmark(task: str, metric: str, scale: float | None = 100, note: str = "") -> dict[str, Any]:
    """A benchmark: the task that scores it, the score key, the factor to the paper's unit (None: not found)."""
    return dict(task=task, metric=metric, scale=scale, note=note)


MM1_FEWSHOT = {
    "COCO": benchmark("coco_cap", "cider"),
    "NoCaps": benchmark("nocaps", "cider"),
    "TextCaps": benchmark("textcaps", "cider"),
    "VQAv2": benchmark("vqav2", "vqa_accuracy"),
    "TextVQA": benchmark("textvqa", "vqa_accuracy"),
    "VizWiz": benchmark("vizwiz", "vqa_accuracy"),
    "GQA": benchmark("gqa", "exact_match"),
    "OK-VQA": benchmark("okvqa", "vqa_accuracy"),
}
TEXTCORE = {"TextCore": benchmark("textcore", "accuracy", note="the mean of eval.textcore's tasks (ARC-Easy, "
                                  "ARC-Challenge, PIQA, LAMBADA by default; MM1's full list was not found)")}

MM15_GENERAL = {
    "MME": benchmark("mme", "score", None, "a sum of sub-scores; its normalisation in averages not found"),
    "SEED-IMG": benchmark("seed_img", "accuracy"),
    "POPE": benchmark("pope", "f1"),
    "LLaVA-W": benchmark("llava_w", "gpt_score", note="judged by GPT-4"),
    "MM-Vet": benchmark("mmvet", "gpt_score", note="judged by GPT-4"),
    "RealWorldQA": benchmark("realworldqa", "accuracy"),
}
MM15_TEXT_RICH = {
    "WTQ": benchmark("wtq", "accuracy"),
    "TabFact": benchmark("tabfact", "accuracy"),
    "OCRBench": benchmark("ocrbench", "score", 0.1, "out of 1000"),
    "ChartQA": benchmark("chartqa", "relaxed_accuracy"),
    "TextVQA": MM1_FEWSHOT["TextVQA"],
    "DocVQA": benchmark("docvqa", "anls"),
    "InfoVQA": benchmark("infovqa", "anls"),
}
MM15_KNOWLEDGE = {
    "AI2D": benchmark("ai2d", "accuracy"),
    "ScienceQA": benchmark("scienceqa", "accuracy"),
    "MathVista": benchmark("mathvista", "accuracy"),
    "MMMU": benchmark("mmmu", "accuracy"),
}
MM15_REFER_GROUND = {
    "RefCOCO": benchmark("refcoco", "box_iou50", note="MM1.5 averages the RefCOCO family's splits; here one task "
                         "per dataset (refcoco, refcoco_plus, refcocog), split by config"),
    "Flickr30k-Entities": benchmark("flickr30k_entities", "recall_at_1"),
    "LVIS-Ref": benchmark("lvis_ref", "accuracy"),
    "Ferret-Bench": benchmark("ferret_bench", "gpt_score", note="judged by GPT-4"),
}
MM15_MULTI_IMAGE = {
    "QBench2": benchmark("qbench2", "accuracy"),
    "Mantis": benchmark("mantis", "accuracy"),
    "NLVR2": benchmark("nlvr2", "accuracy"),
    "BLINK": benchmark("blink", "accuracy"),
    "MVBench": benchmark("mvbench", "accuracy", note="video input"),
    "MuirBench": benchmark("muirbench", "accuracy"),
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
