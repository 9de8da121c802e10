"""The evaluation hook a training run builds from its config (as big_vision's evaluators are).

`config.train.evaluator` names this module; the trainer imports it by that name, so train and eval never import
each other. `check_config(config)` refuses bad `config.eval` and `train.eval_*` / `train.sample_task` fields and
missing annotation files before training starts; `Evaluator(model, config)(params, tasks, shots, limit)` scores the
current parameters with `mm1_jax.eval.tasks.run_tasks`, reusing one compiled generation context across calls.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import ml_collections

from mm1_jax.eval import datasets, suites
from mm1_jax.eval import tasks as tasks_lib


def check_config(config: ml_collections.ConfigDict) -> None:
    """One sentence naming the first bad field of config.eval or of `config.train`'s evaluation fields (tasks, shots,
    limit), or a file a named task needs."""
    t, eval_cfg = config.train, config.get("eval")
    tasks: tuple = ()
    if t.eval_every:
        tasks = _tasks("train.eval_tasks", tuple(t.eval_tasks), eval_cfg)
        shots = tuple(t.eval_shots)
        if not shots or any(not isinstance(k, int) or k < 0 for k in shots):
            raise ValueError(f"train.eval_shots={shots!r} must be non-negative integers.")
        if not isinstance(t.eval_limit, int) or t.eval_limit <= 0:
            raise ValueError(f"train.eval_limit={t.eval_limit!r} must be a positive integer.")
    if t.num_samples:
        tasks += _tasks("train.sample_task", (t.sample_task,) if t.sample_task else (), eval_cfg)
    datasets.check_eval_config(eval_cfg, tasks)


def _tasks(field: str, names: Sequence[str], eval_cfg: Any) -> tuple[str, ...]:
    if not names:
        raise ValueError(f"{field} is empty; name some of {', '.join(sorted(datasets.TASKS))}.")
    try:
        names = suites.select(names, eval_cfg)  # a suite (mm15, ...) checked as the members it selects
        for name in names:
            datasets.task_for(name, eval_cfg) if name not in datasets.GROUPS else None
    except ValueError as e:
        raise ValueError(f"{field}: {e}") from None
    return tuple(names)


class Evaluator:
    """Scores parameters on named tasks; the generation context (tokenizer, compiled generator) is built once."""

    def __init__(self, model: Any, config: ml_collections.ConfigDict):
        self.model, self.config, self._context = model, config, None

    def __call__(self, params: Any, tasks: Sequence[str], shots: Sequence[int], limit: int
                 ) -> tuple[dict[str, float], dict[str, Any]]:
        """({"task/Nshot/metric": score}, {"task/Nshot": report with predictions})."""
        if self._context is None:
            self._context = tasks_lib.Context.from_config(self.model, self.config)
        reports: dict[str, Any] = {}
        scores = tasks_lib.run_tasks(self.model, params, self.config, tuple(tasks), [int(k) for k in shots],
                                     limit=limit, reports=reports, context=self._context)
        return scores, reports
