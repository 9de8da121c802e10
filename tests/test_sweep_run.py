"""`python -m mm1_jax.sweep run | status | report` on a 3-row study at embedded scale (tests/fixtures/study_lr.py):
killed in the middle and rerun, the interrupted row ends exactly where its uninterrupted twin does; the report's table
and figure hold the results files' numbers; the slurm launcher (a fake `sbatch` that runs each file in submission
order) chains stages with afterok; the tpu launcher gives every worker the same command and a rerun skips finished
rows; bad input is one sentence with nothing started."""
import contextlib
import io
import json
import os
import pathlib
import re
import signal
import subprocess
import sys
import time

import pytest

from tests.support import user_env

pytestmark = pytest.mark.slow  # processes started, models trained: see pyproject.toml

REPO = pathlib.Path(__file__).resolve().parent.parent
STUDY = str(REPO / "tests" / "fixtures" / "study_lr.py")


# the jobs run as a user's would: on the real devices, not the 8 virtual ones this test session simulates
ENV = user_env()


def sweep(*args, env=None, timeout=900):
    return subprocess.run([sys.executable, "-m", "mm1_jax.sweep", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=timeout, env=env or ENV)


def sweep_here(*args, path: str | None = None) -> tuple[int, str, str]:
    """The command's main in this process, for the answers that start nothing (refusals): (exit status, stdout,
    stderr). `path` replaces PATH meanwhile (which tools a launcher finds)."""
    from mm1_jax.sweep import __main__ as cli  # pylint: disable=import-outside-toplevel

    out, err, old = io.StringIO(), io.StringIO(), os.environ.get("PATH", "")
    os.environ["PATH"] = old if path is None else path
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = cli.main(list(args))
    finally:
        os.environ["PATH"] = old
    return code, out.getvalue(), err.getvalue()


def state(root, job):
    path = root / "state" / f"{job.replace('/', '__')}.json"
    return json.loads(path.read_text()) if path.exists() else {}


def scores(root, row, seed=0):
    return json.loads((root / f"s{seed}" / "study_lr" / row / "eval" / "eval_results.json").read_text())["scores"]


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """The study run, killed while row b's second stage trains (after its first checkpoint), then rerun."""
    root = tmp_path_factory.mktemp("sweep") / "root"
    cmd = [sys.executable, "-m", "mm1_jax.sweep", "run", STUDY, "--scale=embedded", f"--root={root}"]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
                            env=ENV)
    checkpoints = root / "s0" / "study_lr" / "b" / "continue" / "checkpoints"
    deadline = time.time() + 900
    while time.time() < deadline and proc.poll() is None:
        if checkpoints.exists() and any(p.name.isdigit() for p in checkpoints.iterdir()):
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the sweep ended before it could be interrupted"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    killed = {job: state(root, job).get("state") for job in ("s0/a/eval", "s0/b/continue", "s0/c/continue")}
    status_after_kill = sweep("status", f"--root={root}").stdout
    rerun = sweep("run", STUDY, "--scale=embedded", f"--root={root}")
    return root, killed, status_after_kill, rerun


def test_killed_sweep_resumes_to_the_same_results(finished):
    root, killed, status, rerun = finished
    assert killed == {"s0/a/eval": "done", "s0/b/continue": "running", "s0/c/continue": None}, killed
    assert "s0/b/continue" in status and "interrupted" in status.split("s0/b/continue")[1].splitlines()[0]
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert "s0/shared/pretrain: running" not in rerun.stdout and "s0/a/continue: running" not in rerun.stdout
    assert "# 7 done, 0 failed or blocked" in rerun.stdout  # finished jobs were skipped, the rest ran
    log = (root / "logs" / "s0__b__continue.log").read_text()
    assert log.count("# 20") >= 2  # two runs of the job
    assert "resum" in log.lower()  # the second run started from its checkpoint
    evals = [(root / "logs" / f"s0__{r}__eval.log").read_text() for r in "abc"]
    assert not [line for text in evals for line in text.splitlines() if re.match(r"^[IWEF]\d{4} ", line)], evals[0]
    a, b, c = (scores(root, r) for r in "abc")
    assert set(a) == {"embedded_cap/0shot/cider", "embedded_cap/0shot/exact_match", "embedded_vqa/0shot/vqa_accuracy",
                      "embedded_vqa/0shot/exact_match"}
    assert b == a  # interrupted and resumed == uninterrupted, exactly
    final = {r: re.findall(r"-> ([0-9.]+) \(step 12\)", (root / "logs" / f"s0__{r}__continue.log").read_text())[-1]
             for r in "abc"}
    assert final["b"] == final["a"] != final["c"], final  # the final losses; row c trained at another rate
    manifest = json.loads((root / "manifest.json").read_text())
    assert manifest["study"] == "study_lr" and len(manifest["runs"]) == 2 and len(manifest["jobs"]) == 7
    dump = json.loads((root / "configs" / "s0__c__continue.json").read_text())
    assert dump["train"]["optimizer"]["lr"] == 1e-3 and dump["init"]["checkpoint"].endswith("shared/pretrain/checkpoints")
    status = sweep("status", f"--root={root}").stdout
    assert "# 7 done" in status


def test_report_table_and_figure_hold_the_results(finished):
    root = finished[0]
    out = sweep("report", f"--root={root}")
    assert out.returncode == 0, out.stderr
    table = (root / "report" / "report.md").read_text()
    for row in "abc":
        s = scores(root, row)
        mean = (100 * s["embedded_cap/0shot/cider"] + 100 * s["embedded_vqa/0shot/vqa_accuracy"]) / 2
        assert f"{mean:.2f}" in table, (row, mean)
    figures = list((root / "report" / "figures").glob("*.png"))
    assert figures
    data = json.loads(figures[0].with_suffix(".data.json").read_text())
    plotted = {k: v["mean"] for k, v in data["series"].items()}
    a = scores(root, "a")
    assert pytest.approx(plotted["a"][0]) == (100 * a["embedded_cap/0shot/cider"] +
                                              100 * a["embedded_vqa/0shot/vqa_accuracy"]) / 2


def test_changed_config_other_study_and_unknown_row_are_refused(finished, tmp_path):
    root = finished[0]
    changed = tmp_path / "study_lr.py"
    text = pathlib.Path(STUDY).read_text()
    changed.write_text(text.replace('"continue": {"train.optimizer.lr": 1e-3}', '"continue": {"train.optimizer.lr": 2e-3}'))
    out = sweep("run", str(changed), "--scale=embedded", f"--root={root}")  # the entry point, once
    assert out.returncode == 1
    assert "error: row 'c' stage 'continue' (seed 0) changed since root" in out.stderr
    assert "train.optimizer.lr: 0.001 -> 0.002" in out.stderr
    # the other refusals start nothing: the command's main, in this process
    code, _, err = sweep_here("run", str(REPO / "configs" / "studies" / "mm1_connector.py"), f"--root={root}",
                              "--rows=x")
    assert code == 1 and "has no row 'x'" in err
    code, _, err = sweep_here("run", str(REPO / "configs" / "studies" / "mm1_connector.py"), f"--root={root}")
    assert code == 1 and "belongs to study study_lr at embedded scale, not mm1_connector at paper scale" in err
    no_tools = str(tmp_path / "no_tools")  # neither sbatch nor gcloud
    fresh = tmp_path / "fresh"
    code, _, err = sweep_here("run", STUDY, "--scale=embedded", f"--root={fresh}", "--launcher=slurm", path=no_tools)
    assert code == 1 and err == ("error: --launcher=slurm needs `sbatch` on PATH; it is not there (nothing was "
                                 "started).\n")
    code, _, err = sweep_here("run", STUDY, "--scale=embedded", f"--root={fresh}", "--launcher=tpu", "--tpu=p",
                              "--zone=z", path=no_tools)
    assert code == 1 and "needs `gcloud` on PATH" in err and not fresh.exists()


def _fake_tool(bin_dir, name, body):
    bin_dir.mkdir(exist_ok=True)
    path = bin_dir / name
    path.write_text("#!/bin/bash\n" + body)
    path.chmod(0o755)


def test_slurm_files_chain_stages_with_afterok(finished, tmp_path):
    """Row c's states cleared: its two jobs go through sbatch again (training resumes at its last step), the
    evaluation after the training (afterok); the fake sbatch runs every file at submission (in order, refusing an
    unmet dependency), as a scheduler would."""
    root = finished[0]
    before = scores(root, "c")
    for job in ("continue", "eval"):
        (root / "state" / f"s0__c__{job}.json").unlink()
    calls = tmp_path / "sbatch_calls"
    calls.touch()
    _fake_tool(tmp_path / "bin", "sbatch", f'''
n=$(($(wc -l < {calls}) + 1000))
echo "$n $*" >> {calls}
for arg in "$@"; do case $arg in --dependency=afterok:*) for dep in ${{arg#--dependency=afterok:}}; do
  grep -q "^$dep done" {calls}.done || {{ echo "dependency $dep not done" >&2; exit 1; }}; done;; esac; done
bash "${{@: -1}}" > /dev/null 2>&1 && echo "$n done" >> {calls}.done
echo "$n"
''')
    env = dict(ENV, PATH=f"{tmp_path / 'bin'}:{os.environ['PATH']}")
    out = sweep("run", STUDY, "--scale=embedded", f"--root={root}", "--launcher=slurm", "--slurm=time=00:10:00",
                "--rows=c", f"--setup=export PATH={os.path.dirname(sys.executable)}:$PATH", env=env)
    assert out.returncode == 0, out.stdout + out.stderr
    lines = calls.read_text().splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("1000 --parsable ") and "--dependency" not in lines[0]  # shared/pretrain is done
    assert "--dependency=afterok:1000 " in lines[1]
    assert (tmp_path / "sbatch_calls.done").read_text().split() == ["1000", "done", "1001", "done"]
    script = (root / "slurm" / "s0__c__continue.sh").read_text()
    assert "#SBATCH --requeue" in script and "#SBATCH --time=00:10:00" in script
    assert "python -m mm1_jax.sweep job --root=" in script and "--id=s0/c/continue" in script
    assert all(state(root, f"s0/c/{j}")["state"] == "done" for j in ("continue", "eval"))
    assert scores(root, "c") == before


def test_tpu_workers_get_the_same_command_a_failed_row_and_reruns(tmp_path):
    """A fake gcloud records its calls (and fails row b's training once): every job is one command for every worker
    of one pod, rows spread over two pods; b's failure stops only b's evaluation, and status and report show it;
    a rerun runs just b's two jobs."""
    calls = tmp_path / "gcloud_calls"
    fail = tmp_path / "fail_b"
    fail.touch()
    _fake_tool(tmp_path / "bin", "gcloud", f"""printf "%s\\n" "$*" >> {calls}
if [[ -e {fail} && "$*" == *study_lr/b/continue* ]]; then
  echo "ERROR: (gcloud.compute.tpus.tpu-vm.ssh) [pod-a] worker 3: connection lost" >&2; exit 1; fi
""")
    env = dict(ENV, PATH=f"{tmp_path / 'bin'}:{os.environ['PATH']}")
    root = tmp_path / "root"
    args = ("run", STUDY, "--scale=embedded", f"--root={root}", "--launcher=tpu", "--tpu=pod-a,pod-b",
            "--zone=us-central2-b", "--project=proj", "--setup=source ~/venv/bin/activate")
    out = sweep(*args, env=env)
    assert out.returncode == 1 and "# 5 done, 2 failed or blocked: s0/b/continue, s0/b/eval" in out.stdout
    lines = calls.read_text().splitlines()
    assert len(lines) == 6  # b's evaluation never ran
    for line in lines:
        assert line.startswith("compute tpus tpu-vm ssh pod-")
        assert " --zone=us-central2-b --project=proj --worker=all " in line
        assert "--command=cd ~/mm1_jax && source ~/venv/bin/activate && python -m mm1_jax." in line
    pods = {line.split()[4] for line in lines if "/s0/study_lr/a/" in line}
    assert len(pods) == 1 and {line.split()[4] for line in lines if "/s0/study_lr/b/" in line} != pods
    code, status, _ = sweep_here("status", f"--root={root}")
    assert code == 0 and ("s0/b/continue failed: ERROR: (gcloud.compute.tpus.tpu-vm.ssh) [pod-a] worker 3: "
                          "connection lost" in " ".join(status.split()))
    assert "s0/b/eval" in status and "waiting: for s0/b/continue" in " ".join(status.split())
    assert sweep_here("report", f"--root={root}")[0] == 0
    assert "connection lost" in (root / "report" / "report.md").read_text()
    fail.unlink()
    assert sweep(*args, env=env).returncode == 0
    again = calls.read_text().splitlines()[6:]
    assert len(again) == 2 and all("/s0/study_lr/b/" in line for line in again)  # finished rows skipped
