"""Evaluation: cached generation, few-shot prompts, the papers' metrics, readers, the embedded benchmark.

`run_tasks(model, params, config, tasks, shots)` is the entry point (the trainer can call it every N steps);
`python -m mm1_jax.eval` is the command line.
"""


def run_tasks(model, params, config, tasks, shots, **kwargs):
    """Scores {"task/Nshot/metric": value}; see `mm1_jax.eval.tasks.run_tasks`."""
    from mm1_jax.eval.tasks import run_tasks as run  # pylint: disable=g-import-not-at-top

    return run(model, params, config, tasks, shots, **kwargs)
