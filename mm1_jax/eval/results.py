"""Scoring a checkpoint into a results folder: what `python -m mm1_jax.eval` does, callable from Python.

    params, ctx = load(config, checkpoint_dir, seed=0, batch_size=16)   # MM1, or a converted Owl3 / LLaVA
    out = run_and_write(ctx, params, config, ["coco_cap", "vqav2"], [0, 4], limit=100, seed=0, workdir=DIR)

`eval_results.json` holds per task and shot count the scores, predictions, skipped items and truncations, the
scoring convention (`eval.convention`), and the papers' suite averages with the benchmarks they used and lacked;
captioning tasks also get COCO results JSON. Every task's predictions are also written as the common harnesses log
them (`write_harness_files`), so that their own scorers can score ours, line by line.
"""
from __future__ import annotations

import csv
import hashlib
import json
import os
from typing import Any

import ml_collections

from mm1_jax.eval import datasets, readers, suites
from mm1_jax.eval.tasks import Context, run_tasks
from mm1_jax.models import build_model
from mm1_jax.runtime import checkpoint


def table(scores: dict[str, float]) -> str:
    """The scores as an aligned text table (task, shots, metric, score)."""
    rows = [("task", "shots", "metric", "score")] + [tuple(k.split("/")) + (f"{v:.4f}",) for k, v in scores.items()]
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in rows)


def _hf_llava(path: str) -> bool:
    """A Hugging Face LLaVA-OneVision / LLaVA-NeXT / LLaVA directory (config.json of one of their model types)."""
    from mm1_jax import convert  # pylint: disable=import-outside-toplevel
    from mm1_jax.convert import checkpoint as converted  # pylint: disable=import-outside-toplevel

    if not os.path.isfile(os.path.join(path, "config.json")):
        return False
    try:
        return convert.family_for(converted.read_hf_config(path)).KIND == "llava"
    except ValueError:
        return False


def load(config: ml_collections.ConfigDict, path: str | None, seed: int = 0, batch_size: int = 16
         ) -> tuple[Any, Context]:
    """(params, Context) for an MM1 checkpoint of config.model, a converted mPLUG-Owl3 directory, or a converted (or
    Hugging Face) LLaVA-OneVision / LLaVA-NeXT / LLaVA directory (`Context.for_llava`; a Hugging Face directory's
    preprocessor_config.json gives the image processor unless config.eval.image_processor names one)."""
    from mm1_jax.convert import checkpoint as converted  # pylint: disable=import-outside-toplevel

    if path and (converted.is_converted(path) or _hf_llava(path)):
        from mm1_jax import pretrained  # pylint: disable=import-outside-toplevel
        from mm1_jax.data import llava_images  # pylint: disable=import-outside-toplevel

        loaded = pretrained.load(path)
        if isinstance(loaded, pretrained.LoadedLlava):
            own = os.path.join(path, "preprocessor_config.json")
            processor = None
            if not (config.get("eval") or {}).get("image_processor") and os.path.isfile(own):
                processor = llava_images.ImageProcessor.from_hf(own, loaded.config)
            return loaded.params, Context.for_llava(loaded, config, batch_size, processor=processor)
        if not isinstance(loaded, pretrained.LoadedOwl3):
            raise ValueError(f"--checkpoint={path!r} is a converted {loaded.kind} ({loaded.family}), not a model to "
                             "evaluate; pass an mPLUG-Owl3 or LLaVA directory or an MM1 training checkpoint.")
        return loaded.params, Context.for_owl3(loaded.module, loaded.config, config, batch_size)
    model = build_model(config.model)
    params = checkpoint.load_params(model, config.model, path, seed)
    return params, Context.from_config(model, config, batch_size)


def run_and_write(ctx: Context, params: Any, config: ml_collections.ConfigDict, tasks: list[str], shots: list[int],
                  *, limit: int, seed: int,
                  workdir: str, checkpoint_dir: str = "", loaded: dict | None = None) -> dict:
    """Run the tasks, write eval_results.json (and COCO results for captioning tasks) into workdir, print the
    tables; returns what was written. `loaded`: the tasks as `tasks.read_tasks` read them, if already read."""
    eval_cfg = config.get("eval") if config.get("eval") is not None else datasets.eval_defaults()
    os.makedirs(workdir, exist_ok=True)
    reports: dict = {}
    scores = run_tasks(ctx.model, params, config, tasks, shots, limit=limit, seed=seed, reports=reports,
                       progress=True, context=ctx, loaded=loaded)
    averages = suites.averages(scores)
    stopped = {key: r["stopped"] for key, r in reports.items() if r.get("stopped")}
    out = {"checkpoint": checkpoint_dir or "random init", "convention": ctx.convention,
           "scores": scores, "averages": averages, "stopped": stopped,
           "skipped": {key: len(r["skipped"]) for key, r in reports.items()}, "reports": reports}
    with open(os.path.join(workdir, "eval_results.json"), "w") as f:
        json.dump(out, f, indent=1, default=str)
    for key, report in reports.items():
        name = key.split("/")[0]
        if not report.get("stopped"):
            write_harness_files(workdir, key, report)
        if datasets.task_for(name, eval_cfg).kind == "captions" and not report.get("stopped"):
            preds = [{"image_id": r["image_id"], "caption": r["prediction"]} for r in report["predictions"]]
            readers.write_coco_results(os.path.join(workdir, f"{name}_results_{key.split('/')[1]}.json"), preds)
        if report["truncated"]:
            k = key.split("/")[1].removesuffix("shot")
            print(f"{key}: {report['truncated']} prompts were cut to fit the context ({ctx.max_tokens} tokens, "
                  f"{ctx.max_images} images): {report['dropped_demos_mean']:.1f} of {k} demonstrations "
                  "dropped on average (the earliest first)")
        for row in report["predictions"][:2]:  # what the scores are made of
            if "choice" in row:
                print(f"{key}: {row['id']}: chose {row['choice']!r} ({'right' if row['correct'] else 'wrong'})")
            else:
                refs = row.get("answers") or [""]
                print(f"{key}: {row['id']}: {row['prediction']!r} (reference: {refs[0]!r})")
        if report.get("not_scored"):
            print(f"{key}: not scored: {report['not_scored']} (config.eval.judge)")
        if report["skipped"]:
            print(f"{key}: {len(report['skipped'])} items skipped; the first: {report['skipped'][0]['id']}: "
                  f"{report['skipped'][0]['reason']}")
    print(table(scores))
    if averages:
        print(suites.table(averages))
    for reason in stopped.values():
        print(reason)
    print(f"written: {os.path.join(workdir, 'eval_results.json')}")
    return out


LETTERS = "ABCDEFGHIJ"
CIRCULAR_OFFSET = 1_000_000  # VLMEvalKit's index of pass k of question i: i + k * 1e6


def write_harness_files(workdir: str, key: str, report: dict) -> dict[str, str]:
    """One task's predictions ("task/Nshot" report) as the harnesses write theirs: VLMEvalKit's prediction table
    (vlmevalkit/<task>_<N>shot.tsv: the benchmark's columns and `prediction`, one row per circular pass with index
    i + pass * 1e6, what vlmeval/dataset/*.py `evaluate` reads) and lmms-eval's per-sample log
    (lmms_eval/samples_<task>_<N>shot.jsonl: doc_id, target, input, filtered_resps, doc_hash and each metric, as
    lmms_eval/loggers/evaluation_tracker.py `save_results_samples` writes them). Returns {harness: path}."""
    task, shots = key.split("/")
    rows = report["predictions"]
    choice = bool(rows) and "choice" in rows[0]  # a choice task's rows (generated rows may carry "options" meta)
    width = max((len(r["options"]) for r in rows), default=0) if choice else 0
    numbers = {i: n for n, i in enumerate(dict.fromkeys(r["id"] for r in rows))}  # a question's number, by first row
    table, samples = [], []
    for n, r in enumerate(rows):
        index = int(r["index"]) if isinstance(r.get("index"), int) else numbers[r["id"]]
        if choice:
            letter = LETTERS[r["answer"]]
            picked = r.get("prediction", "" if r["choice"] is None else LETTERS[r["options"].index(r["choice"])])
            table.append({"index": index + r["pass"] * CIRCULAR_OFFSET, "question": r["question"],
                          **{LETTERS[j]: r["options"][j] if j < len(r["options"]) else "" for j in range(width)},
                          "answer": letter, "category": r.get("category", ""), "prediction": picked})
            target, metrics_of = letter, {"accuracy": float(r["correct"])}
        else:
            answers = r["answers"]
            table.append({"index": index, "question": r["question"],
                          "answer": answers[0] if len(answers) == 1 else repr(list(answers)),
                          "prediction": r["prediction"]})
            target = answers[0] if len(answers) == 1 else str(list(answers))
            metrics_of = {k: v for k, v in r.items() if isinstance(v, float) and k != "dropped_demos"}
        doc = {"id": r["id"], "question": r["question"], "target": target}
        samples.append({"doc_id": n, "target": target, "input": r["question"],
                        "filtered_resps": table[-1]["prediction"],
                        "doc_hash": hashlib.sha256(json.dumps(doc, indent=2, ensure_ascii=False).encode()).hexdigest(),
                        **metrics_of})
    paths = {"vlmevalkit": os.path.join(workdir, "vlmevalkit", f"{task}_{shots}.tsv"),
             "lmms_eval": os.path.join(workdir, "lmms_eval", f"samples_{task}_{shots}.jsonl")}
    for path in paths.values():
        os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(paths["vlmevalkit"], "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(table[0]) if table else ["index", "prediction"], delimiter="\t")
        writer.writeheader()
        writer.writerows(table)
    with open(paths["lmms_eval"], "w", encoding="utf-8") as f:
        for sample in samples:
            f.write(json.dumps(sample, ensure_ascii=False) + "\n")
    return paths

