"""python -m mm1_jax.eval --config=configs/tiny.py --checkpoint=DIR --tasks=embedded_cap,embedded_vqa --shots=0,4

Loads the model and runs every task at every shot count; writes `eval_results.json` into --workdir (per task and
shot count: scores, predictions, skipped items, truncations; the papers' suite averages with the tasks they used
and lacked) and COCO results JSON for the captioning tasks, then prints both tables.

The model: --checkpoint is an orbax checkpoint of the config's MM1 (a trainer workdir's `checkpoints/`, or the
workdir itself; absent: a random initialisation, for comparison), or a converted mPLUG-Owl3 directory
(`python -m mm1_jax.convert`), prompted with `config.data.tokenizer` = the release's tokenizer.json. Each task's files
come from `--config.eval.<task>.<field>=...` (`mm1_jax.eval.datasets`); all are checked before the model loads.
Exit status 1 when a task stopped (too many unreadable items; the others still ran and were written).
"""
from __future__ import annotations

import json
import os
import sys

from absl import app, flags
from ml_collections import config_flags

from mm1_jax.eval import datasets, readers, suites
from mm1_jax.eval.tasks import Context, run_tasks
from mm1_jax.models import build_model
from mm1_jax.runtime import checkpoint

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", None, "Model/data config file (configs/X.py[:ARG]).")
flags.DEFINE_string("checkpoint", None, "Orbax checkpoint directory (or a trainer workdir), or a converted "
                    "mPLUG-Owl3 directory; none = random init.")
flags.DEFINE_list("tasks", ["embedded_cap", "embedded_vqa"],
                  f"Tasks: {', '.join(sorted(datasets.TASKS))}; groups: {', '.join(datasets.GROUPS)}.")
flags.DEFINE_list("shots", ["0", "4", "8"], "Demonstrations per prompt.")
flags.DEFINE_string("workdir", "/tmp/mm1_eval", "Where predictions and scores are written.")
flags.DEFINE_integer("limit", 100, "Items per task.")
flags.DEFINE_integer("batch_size", 16, "Prompts per generation batch.")
flags.DEFINE_integer("seed", 0, "Seed for drawing demonstrations and distractors (and the random initialisation).")


def table(scores: dict[str, float]) -> str:
    rows = [("task", "shots", "metric", "score")] + [tuple(k.split("/")) + (f"{v:.4f}",) for k, v in scores.items()]
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in rows)


def load(config, path: str | None, seed: int, batch_size: int):
    """(params, Context) for an MM1 checkpoint of config.model or a converted mPLUG-Owl3 directory."""
    from mm1_jax.convert import checkpoint as converted  # pylint: disable=import-outside-toplevel

    if path and converted.is_converted(path):
        from mm1_jax import pretrained  # pylint: disable=import-outside-toplevel

        loaded = pretrained.load(path)
        if not isinstance(loaded, pretrained.LoadedOwl3):
            raise ValueError(f"--checkpoint={path!r} is a converted {loaded.kind} ({loaded.family}), not a model to "
                             "evaluate; pass an mPLUG-Owl3 directory or an MM1 training checkpoint.")
        return loaded.params, Context.for_owl3(loaded.module, loaded.config, config, batch_size)
    model = build_model(config.model)
    params = checkpoint.load_params(model, config.model, path, seed)
    return params, Context.from_config(model, config, batch_size)


def run_and_write(ctx: Context, params, config, tasks: list[str], shots: list[int], *, limit: int, seed: int,
                  workdir: str, checkpoint_dir: str = "") -> dict:
    """Run the tasks, write eval_results.json (and COCO results for captioning tasks) into workdir, print the
    tables; returns what was written."""
    eval_cfg = config.get("eval") if config.get("eval") is not None else datasets.eval_defaults()
    os.makedirs(workdir, exist_ok=True)
    reports: dict = {}
    scores = run_tasks(ctx.model, params, config, tasks, shots, limit=limit, seed=seed, reports=reports,
                       progress=True, context=ctx)
    averages = suites.averages(scores)
    stopped = {key: r["stopped"] for key, r in reports.items() if r.get("stopped")}
    out = {"checkpoint": checkpoint_dir or "random init",
           "scores": scores, "averages": averages, "stopped": stopped,
           "skipped": {key: len(r["skipped"]) for key, r in reports.items()}, "reports": reports}
    with open(os.path.join(workdir, "eval_results.json"), "w") as f:
        json.dump(out, f, indent=1, default=str)
    for key, report in reports.items():
        name = key.split("/")[0]
        if datasets.task_for(name, eval_cfg).kind == "captions" and not report.get("stopped"):
            preds = [{"image_id": r["image_id"], "caption": r["prediction"]} for r in report["predictions"]]
            readers.write_coco_results(os.path.join(workdir, f"{name}_results_{key.split('/')[1]}.json"), preds)
        if report["truncated"]:
            k = key.split("/")[1].removesuffix("shot")
            print(f"{key}: {report['truncated']} prompts were cut to fit the context ({ctx.max_tokens} tokens, "
                  f"{ctx.max_images} images): {report['dropped_demos_mean']:.1f} of {k} demonstrations "
                  "dropped on average (the earliest first)")
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


def main(argv):
    del argv
    config = FLAGS.config
    eval_cfg = config.get("eval") if config.get("eval") is not None else datasets.eval_defaults()
    try:
        datasets.check_eval_config(eval_cfg, datasets.expand(FLAGS.tasks, eval_cfg))
    except ValueError as e:
        sys.exit(f"error: {e}")
    params, ctx = load(config, FLAGS.checkpoint, FLAGS.seed, FLAGS.batch_size)
    try:
        out = run_and_write(ctx, params, config, FLAGS.tasks, [int(s) for s in FLAGS.shots], limit=FLAGS.limit,
                            seed=FLAGS.seed, workdir=FLAGS.workdir, checkpoint_dir=FLAGS.checkpoint or "")
    except (ValueError, FileNotFoundError) as e:
        sys.exit(f"error: {e}")
    if out["stopped"]:
        sys.exit(1)


if __name__ == "__main__":
    flags.mark_flag_as_required("config")
    app.run(main)
