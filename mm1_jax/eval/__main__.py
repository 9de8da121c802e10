"""python -m mm1_jax.eval --config=configs/tiny.py --checkpoint=DIR --tasks=embedded_cap,embedded_vqa --shots=0,4

Loads the config's model, its parameters from an orbax checkpoint directory (a trainer workdir's `checkpoints/`, or
the workdir itself; without --checkpoint: a random initialisation, for comparison), runs every task at every shot
count, writes `eval_results.json` (scores, predictions, skipped items, truncations) into --workdir, and COCO results
JSON for coco_cap, then prints a table. Annotation files for coco_cap / vqa / mc come from --config.eval.* fields.
"""
from __future__ import annotations

import json
import os

from absl import app, flags
from ml_collections import config_flags

from mm1_jax.eval import readers
from mm1_jax.eval.tasks import TASKS, Context, run_tasks
from mm1_jax.models import build_model
from mm1_jax.runtime import checkpoint

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", None, "Model/data config file (configs/X.py[:ARG]).")
flags.DEFINE_string("checkpoint", None, "Orbax checkpoint directory (or a trainer workdir); none = random init.")
flags.DEFINE_list("tasks", ["embedded_cap", "embedded_vqa"], f"Tasks: {', '.join(sorted(TASKS))}.")
flags.DEFINE_list("shots", ["0", "4", "8"], "Demonstrations per prompt.")
flags.DEFINE_string("workdir", "/tmp/mm1_eval", "Where predictions and scores are written.")
flags.DEFINE_integer("limit", 100, "Items per task.")
flags.DEFINE_integer("batch_size", 16, "Prompts per generation batch.")
flags.DEFINE_integer("seed", 0, "Seed for drawing demonstrations (and the random initialisation).")


def table(scores: dict[str, float]) -> str:
    rows = [("task", "shots", "metric", "score")] + [tuple(k.split("/")) + (f"{v:.4f}",) for k, v in scores.items()]
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in rows)


def main(argv):
    del argv
    config = FLAGS.config
    model = build_model(config.model)
    params = checkpoint.load_params(model, config.model, FLAGS.checkpoint, FLAGS.seed)
    os.makedirs(FLAGS.workdir, exist_ok=True)
    reports: dict = {}
    ctx = Context.from_config(model, config, FLAGS.batch_size)
    scores = run_tasks(model, params, config, FLAGS.tasks, [int(s) for s in FLAGS.shots], limit=FLAGS.limit,
                       seed=FLAGS.seed, reports=reports, progress=True, context=ctx)
    out = {"checkpoint": FLAGS.checkpoint or "random init", "scores": scores, "reports": reports}
    with open(os.path.join(FLAGS.workdir, "eval_results.json"), "w") as f:
        json.dump(out, f, indent=1, default=str)
    for key, report in reports.items():
        if key.startswith("coco_cap/"):
            preds = [{"image_id": r["image_id"], "caption": r["prediction"]} for r in report["predictions"]]
            readers.write_coco_results(os.path.join(FLAGS.workdir, f"coco_results_{key.split('/')[1]}.json"), preds)
        if report["truncated"]:
            shots = key.split("/")[1].removesuffix("shot")
            print(f"{key}: {report['truncated']} prompts were cut to fit the context ({config.data.seq_len} tokens, "
                  f"{config.model.max_images} images): {report['dropped_demos_mean']:.1f} of {shots} demonstrations "
                  "dropped on average (the earliest first)")
        for skip in report["skipped"][:5]:
            print(f"{key}: skipped {skip['id']}: {skip['reason']}")
    print(table(scores))
    print(f"written: {os.path.join(FLAGS.workdir, 'eval_results.json')}")


if __name__ == "__main__":
    flags.mark_flag_as_required("config")
    app.run(main)
