"""Rows configured alike run once: their identical jobs point at the first one (`same_as`), share its workdir and
results, and the sweep launches only the first; a job that differs only downstream (its evaluation) still shares the
identical training before it."""
import json
import pathlib

from mm1_jax.sweep import __main__ as cli
from mm1_jax.sweep import manifest as M
from mm1_jax.sweep import studies as S

STUDY_FILE = '''
STUDY = dict(title="identical rows (a test)", paper="MM1 (arXiv 2403.09611)", source="test", fixed="tiny")
STAGES = (dict(name="sft", config="configs/tiny.py"), dict(name="eval", evaluate=True, shots=(0,), limit=3))
ROWS = {
    "x": dict(arg="main", overrides={"train.optimizer.lr": 1e-4}),
    "y": dict(arg="main", overrides={"train.optimizer.lr": 1e-4}, note="configured as x"),
    "z": dict(arg="main", overrides={"train.optimizer.lr": 3e-4}),
    "x_more_shots": dict(arg="main", overrides={"train.optimizer.lr": 1e-4}, stage_overrides={"eval": {"eval.max_skipped": 0.5}}),
}
BENCHMARKS = {"captioning": dict(task="embedded_cap", metric="cider", scale=100)}
METRICS = {"0-shot": dict(mean=("captioning",), shots=0)}
'''


def study(tmp_path):
    path = tmp_path / "identical.py"
    path.write_text(STUDY_FILE)
    return S.load_study(path), str(path)


def test_identical_jobs_point_at_the_first(tmp_path):
    s, _ = study(tmp_path)
    jobs = {f"{j.row}/{j.stage}": j for j in S.jobs(s, str(tmp_path / "root"))}
    assert jobs["y/sft"].same_as == "x/sft" and jobs["y/eval"].same_as == "x/eval"
    assert jobs["y/eval"].workdir == jobs["x/eval"].workdir and jobs["y/eval"].command() == jobs["x/eval"].command()
    assert not jobs["z/sft"].same_as and jobs["z/sft"].workdir.endswith("/z/sft")
    # the evaluation differs, the training before it does not: trained once, evaluated twice
    assert jobs["x_more_shots/sft"].same_as == "x/sft" and not jobs["x_more_shots/eval"].same_as
    assert jobs["x_more_shots/eval"].checkpoint == jobs["x/sft"].workdir + "/checkpoints"


def test_the_sweep_runs_them_once_and_both_rows_get_the_results(tmp_path):
    s, path = study(tmp_path)
    root = str(tmp_path / "root")
    jobs = M.sweep_jobs(s, root, None, [0])
    ran = [j.id for j in jobs if not j.same_as]
    assert ran == ["s0/x/sft", "s0/x/eval", "s0/z/sft", "s0/z/eval", "s0/x_more_shots/eval"]
    box = M.Root(root)
    manifest = M.prepare(box, s, jobs, [0], "local")
    assert manifest["jobs"]["s0/y/eval"]["same_as"] == "s0/x/eval"
    assert manifest["jobs"]["s0/x_more_shots/eval"]["depends"] == ["s0/x/sft"]
    assert M.job_status(box, manifest, "s0/y/sft") == ("not run", "the same run as s0/x/sft")
    for job_id in ("s0/x/sft", "s0/x/eval"):  # as run_job leaves them
        box.set_state(job_id.replace("/", "__"), "done", returncode=0)
    workdir = pathlib.Path(manifest["jobs"]["s0/x/eval"]["workdir"])
    workdir.mkdir(parents=True)
    (workdir / "eval_results.json").write_text(json.dumps({"scores": {"embedded_cap/0shot/cider": 0.25}}))
    assert M.job_status(box, manifest, "s0/y/eval") == ("done", "the same run as s0/x/eval")
    _, results, _, _ = M.collect_results(box)
    assert results["y"] == results["x"] == {0: {"embedded_cap/0shot/cider": 0.25}} and "z" not in results
    lines = cli.plan(path, "paper", None, root)
    assert "y/sft: # the same run as x/sft (identical configuration: runs once)" in lines
    assert sum("python -m mm1_jax.train" in line for line in lines) == 2  # x and z train; y and x_more_shots do not
