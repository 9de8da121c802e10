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

import sys

from absl import flags
from ml_collections import config_flags

from mm1_jax import command_line
from mm1_jax.eval import datasets, suites
from mm1_jax.eval.results import load, run_and_write
from mm1_jax.eval.tasks import read_tasks
from mm1_jax.runtime import console

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", None, "Model/data config file (configs/X.py[:ARG]).")
flags.DEFINE_string("checkpoint", None, "Orbax checkpoint directory (or a trainer workdir), or a converted "
                    "mPLUG-Owl3 directory; none = random init.")
flags.DEFINE_list("tasks", ["embedded_cap", "embedded_vqa"],
                  f"Tasks: {', '.join(sorted(datasets.TASKS))}; groups: {', '.join(datasets.GROUPS)}; suites "
                  f"(their benchmarks whose files are set): {', '.join(suites.SELECTIONS)}.")
flags.DEFINE_list("shots", ["0", "4", "8"], "Demonstrations per prompt.")
flags.DEFINE_string("workdir", "/tmp/mm1_eval", "Where predictions and scores are written.")
flags.DEFINE_integer("limit", 100, "Items per task.")
flags.DEFINE_integer("batch_size", 16, "Prompts per generation batch.")
flags.DEFINE_integer("seed", 0, "Seed for drawing demonstrations and distractors (and the random initialisation).")


def main(argv):
    del argv
    console.quiet_libraries()
    config = FLAGS.config
    try:  # every task's files read before the model loads: bad input is one sentence, early
        loaded = read_tasks(config, FLAGS.tasks, FLAGS.limit)
    except (ValueError, FileNotFoundError) as e:
        sys.exit(f"error: {e}")
    console.start_backends()
    try:
        params, ctx = load(config, FLAGS.checkpoint, FLAGS.seed, FLAGS.batch_size)
    except (ValueError, FileNotFoundError) as e:
        sys.exit(f"error: {e}")
    try:
        out = run_and_write(ctx, params, config, FLAGS.tasks, [int(s) for s in FLAGS.shots], limit=FLAGS.limit,
                            seed=FLAGS.seed, workdir=FLAGS.workdir, checkpoint_dir=FLAGS.checkpoint or "",
                            loaded=loaded)
    except (ValueError, FileNotFoundError) as e:
        sys.exit(f"error: {e}")
    if out["stopped"]:
        sys.exit(1)


if __name__ == "__main__":
    flags.mark_flag_as_required("config")
    command_line.run(main)
