"""Every notebook in notebooks/ runs top to bottom, from a fresh kernel whose working directory is a temporary
directory (not the repository) and whose PYTHONPATH is unset, so `configs` and `mm1_jax` come from the installed
package. Their cells assert what they show; here: no errors, at least one figure each, no stored outputs, and the
study notebook's numbers equal the means of results files written here."""
import json
import pathlib

import nbclient
import nbformat
import numpy as np
import pytest

from tests.support import xla_flags

pytestmark = pytest.mark.slow  # processes started, models trained: see pyproject.toml

ROOT = pathlib.Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))

# A 4-row study (distinct rows: identical ones would be one run); its sweep root gets results files as evaluations
# would leave them, without training anything.
STUDY_FILE = '''
STUDY = dict(title="toy scaling", paper="Toy (arXiv 0000.00000)", source="Fig. 1", fixed="a tiny model")
STAGES = (
    dict(name="pretrain", config="configs/tiny.py"),
    dict(name="eval", evaluate=True, shots=(0, 4), limit=8),
)
ROWS = {row: dict(overrides={"train.optimizer.lr": lr}) for row, lr in (("small", 1e-4), ("medium", 2e-4),
                                                                          ("large", 3e-4), ("huge", 4e-4))}
BENCHMARKS = {"CAP": dict(task="embedded_cap", metric="cider", scale=100),
              "VQA": dict(task="embedded_vqa", metric="vqa_accuracy", scale=100)}
METRICS = {"0-shot": dict(mean=("CAP", "VQA"), shots=0), "4-shot": dict(mean=("CAP", "VQA"), shots=4)}
PAPER = {"small": {"0-shot": (30.0, "Fig. 1a", "[P]")}, "medium": {"0-shot": (35.0, "Fig. 1a", "[P]")},
         "large": {"0-shot": (33.0, "Fig. 1a", "[S]"), "4-shot": (dict(delta=2.5, vs="small"), "Fig. 1b", "[S]")}}
FIGURES = (
    dict(kind="bars", metrics=("0-shot", "4-shot"), title="Toy Fig. 1", file="fig1.png"),
    dict(kind="line", metric="0-shot", x={"small": 1, "medium": 10, "large": 100, "huge": 1000}, logx=True,
         xlabel="parameters", title="0-shot by size", file="size.png"),
)
'''
KEYS = {(bench, shots): f"{task}/{shots}shot/{metric}" for bench, task, metric in
        (("CAP", "embedded_cap", "cider"), ("VQA", "embedded_vqa", "vqa_accuracy")) for shots in (0, 4)}
# (row, seed) -> written? small: 2 seeds; medium: 2 seeds, seed 1 without VQA 4-shot; large: seed 0 only (seed 1
# not run); huge: failed.
DROPPED = {("medium", 1): KEYS["VQA", 4]}


def _sweep_root(tmp_path):
    """A sweep root prepared by the sweep's own functions, with made-up scores; returns (root, expected) where
    expected[row][metric] = (mean, sample std or None, seeds), computed here with numpy."""
    from mm1_jax.sweep import manifest, studies

    tmp_path.mkdir()
    (tmp_path / "toy.py").write_text(STUDY_FILE)
    study = studies.at_scale(studies.load_study(tmp_path / "toy.py"), "paper")
    root = str(tmp_path / "root")
    jobs = manifest.sweep_jobs(study, root, None, [0, 1])
    box = manifest.Root(root)
    manifest.prepare(box, study, jobs, [0, 1], "local")
    rng = np.random.default_rng(0)
    values = {}
    for job in jobs:
        row, seed = job.job.row, job.seed
        if row == "huge":
            box.set_state(job.key, "failed", error="RuntimeError: out of memory")
            continue
        if (row, seed) == ("large", 1):
            continue  # not run
        box.set_state(job.key, "done")
        if job.job.kind == "eval":
            scores = {key: float(rng.uniform(0.05, 0.95)) for key in KEYS.values() if key != DROPPED.get((row, seed))}
            pathlib.Path(job.job.workdir).mkdir(parents=True, exist_ok=True)
            (pathlib.Path(job.job.workdir) / "eval_results.json").write_text(json.dumps({"scores": scores}))
            values[row, seed] = scores
    expected = {row: {} for row in study.rows}
    for row in study.rows:
        for metric, shots in (("0-shot", 0), ("4-shot", 4)):
            per_seed = [(100 * s[KEYS["CAP", shots]] + 100 * s[KEYS["VQA", shots]]) / 2
                        for (r, _), s in sorted(values.items()) if r == row and KEYS["VQA", shots] in s]
            expected[row][metric] = (float(np.mean(per_seed)) if per_seed else None,
                                     float(np.std(per_seed, ddof=1)) if len(per_seed) > 1 else None, len(per_seed))
    assert expected["medium"]["4-shot"][2] == 1 and expected["large"]["0-shot"][2] == 1
    assert expected["huge"]["0-shot"] == (None, None, 0)
    return root, expected


def _outputs(nb, kind=None):
    return [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
            if kind is None or kind in o.get("data", {})]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs(path, tmp_path, monkeypatch):
    nb = nbformat.read(path, as_version=4)
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in nb.cells if c.cell_type == "code"), (
        f"{path.name} is stored with outputs; clear them")
    monkeypatch.delenv("PYTHONPATH", raising=False)  # the installed package, not the checkout, provides the imports
    monkeypatch.setenv("XLA_FLAGS", xla_flags(1))
    monkeypatch.setenv("JAX_THREEFRY_PARTITIONABLE", "0")  # only the random streams change; compiles twice as fast
    expected = None
    if path.name == "study_results.ipynb":
        root, expected = _sweep_root(tmp_path / "sweep")
        monkeypatch.setenv("MM1_SWEEP_ROOT", root)
    workdir = tmp_path / "cwd"
    workdir.mkdir()
    nbclient.NotebookClient(nb, timeout=300, kernel_name="python3",
                            resources={"metadata": {"path": str(workdir)}}).execute()
    errors = [o for o in _outputs(nb) if o.output_type == "error"]
    assert not errors, "\n".join(e.get("ename", "") + ": " + e.get("evalue", "") for e in errors)
    assert _outputs(nb, "image/png"), f"{path.name} drew no figure"
    if expected is not None:
        (shown,) = [o["data"]["application/json"] for o in _outputs(nb, "application/json")]
        assert set(shown) == set(expected)
        for row, metrics in expected.items():
            for metric, (mean, std, n) in metrics.items():
                got_mean, got_std, got_n = shown[row][metric]
                assert got_n == n, (row, metric)
                assert (got_mean is None) if mean is None else got_mean == pytest.approx(mean, rel=1e-12), (row, metric)
                assert (got_std is None) if std is None else got_std == pytest.approx(std, rel=1e-12), (row, metric)
        assert len(_outputs(nb, "image/png")) == 3  # the study's two FIGURES and the per-seed figure
