"""One owner for the benchmarks: every suite's and every study's benchmark takes its task, score key and unit from the
task registry (mm1_jax.eval.datasets), so a table cannot score a benchmark with a metric its task does not write."""
from __future__ import annotations

import ast
import os

import pytest

from mm1_jax.eval import datasets, suites
from mm1_jax.sweep import studies

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _tables() -> dict[str, dict]:
    """Every benchmark table: the suites', and each study's at paper and at embedded scale."""
    out = {f"suites:{name}": table for name, (table, _) in suites.SUITES.items()}
    for path in studies.study_files():
        study = studies.load_study(path)
        out[f"{path.stem}:paper"] = study.benchmarks
        if study.embedded:
            out[f"{path.stem}:embedded"] = studies.at_scale(study, "embedded").benchmarks
    return out


TABLES = _tables()


def test_the_tables_cover_the_studies():
    """Every study with benchmarks is read (a loader change that dropped them would make the next test vacuous)."""
    assert sum(1 for k in TABLES if k.endswith(":paper")) == len(studies.study_files()) >= 14
    assert sum(len(t) for t in TABLES.values()) > 100


@pytest.mark.parametrize("where", sorted(TABLES))
def test_every_benchmark_is_the_registry_s(where):
    """Task, metric and scale are the registry's; the metric is one the task writes; `pending` means no task runs."""
    for name, b in TABLES[where].items():
        want = datasets.reported_score(b["task"])
        assert (b["metric"], b["scale"]) == (want["metric"], want["scale"]), (where, name)
        if b["task"] in datasets.TASKS:
            assert b["metric"] in datasets.TASKS[b["task"]].metrics, (where, name)
        if "pending" in b:
            assert b["pending"] == (b["task"] not in datasets.RUNNABLE), (where, name)


def test_the_registry_s_reported_scores():
    """The paper's metric where it is not the task's first (MMBench reports CircularEval), a group's mean key, units
    (OCRBench's accuracy in percent, MME's points as a percent of 2800), a pending benchmark and the refusal of an
    unknown name."""
    assert datasets.reported_score("coco_cap") == dict(task="coco_cap", metric="cider", scale=100, note="")
    assert datasets.TASKS["mmbench"].metrics[0] == "accuracy"
    assert datasets.reported_score("mmbench")["metric"] == "circular_accuracy"
    assert datasets.reported_score("textcore")["metric"] == "accuracy"
    assert datasets.reported_score("ocrbench") == dict(task="ocrbench", metric="accuracy", scale=100, note="")
    assert datasets.reported_score("mme")["metric"] == "score" and datasets.reported_score("mme")["scale"] == 100 / 2800
    assert datasets.reported_score("llava_w")["metric"] == "gpt_score"  # pending: judged
    assert datasets.reported_score("mvbench", "zero-shot")["note"] == "zero-shot"
    assert not set(datasets.PENDING) & set(datasets.RUNNABLE)
    with pytest.raises(ValueError, match='benchmark \'cocoo_cap\'.*did you mean "coco_cap"'):
        datasets.reported_score("cocoo_cap")


@pytest.mark.parametrize("path", ["mm1_jax/eval/suites.py"] + [
    f"configs/studies/{f}" for f in sorted(os.listdir(os.path.join(ROOT, "configs", "studies"))) if f.endswith(".py")])
def test_no_table_writes_its_own_score_key(path):
    """No suite or study spells a benchmark as dict(task=..., metric=...): they name the task and the registry says
    the rest."""
    with open(os.path.join(ROOT, path)) as f:
        tree = ast.parse(f.read())
    own = [n.lineno for n in ast.walk(tree) if isinstance(n, ast.Call)
           and {"task", "metric"} <= {k.arg for k in n.keywords}]
    own += [n.lineno for n in ast.walk(tree) if isinstance(n, ast.Dict)
            and {"task", "metric"} <= {k.value for k in n.keys if isinstance(k, ast.Constant)}]
    assert not own, f"{path}: a benchmark spelled out at line(s) {own}"
