"""Two local processes x 4 devices (jax.distributed over localhost, gloo collectives) train to the same losses, and
score the same in-training evaluation, as one process x 8 devices: the multi-host path of a pod, on one machine. The
same uninterrupted 2-process run is the lost-host drill's reference (benchmarks/drills.py): one process killed, the
other stops in one line, and both restarted resume exactly."""
import re

import pytest

from benchmarks import drills
from mm1_jax.runtime import distributed

pytestmark = pytest.mark.slow  # processes started, models trained: see pyproject.toml

STEPS, EVERY, TIMEOUT_S = 9, 3, 5
MESH = {"mesh.fsdp": -1, "mesh.tensor": 2}  # the drills' shrunk tiny config over fsdp x tensor
# evaluation (generation and likelihood scoring) and held-out captions at the last step only: the drill's faulted
# runs never reach it, so they train exactly as this run does
EVAL = {"train.eval_every": STEPS, "train.eval_tasks": ("embedded_vqa", "embedded_text"), "train.eval_shots": (0,),
        "train.eval_limit": 8, "train.num_samples": 4, "train.sample_task": "embedded_cap"}


def _result(workdir: str) -> dict:
    """{'losses': {step: loss}, 'scores': the last step's eval/ and samples/ scores} from host 0's metrics.jsonl."""
    rows = drills.rows(workdir)
    scores = {k: v for r in rows if r["step"] == STEPS for k, v in r.items() if k.startswith(("eval/", "samples/"))}
    return {"losses": {r["step"]: r["loss"] for r in rows if "loss" in r}, "scores": scores}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The uninterrupted 2-process run and the same command on 1 process x 8 devices, started together:
    {processes: {'losses', 'scores', 'workdir', 'log'}}."""
    root = tmp_path_factory.mktemp("multi")
    fields = {"train.host_data": "global", "train.host_timeout_s": TIMEOUT_S, **MESH, **EVAL}
    two = drills.launch_hosts(str(root / "two"), str(root / "two.log"), STEPS, EVERY, timeout_s=TIMEOUT_S,
                              extra={**MESH, **EVAL})
    one = drills.launch(drills.train_command(str(root / "one"), STEPS, EVERY, **fields), str(root / "one.log"),
                        devices=8)
    codes = [p.wait(timeout=900) for p in two] + [one.wait(timeout=900)]
    logs = [root / "two.log.p0", root / "two.log.p1", root / "one.log"]
    assert codes == [0, 0, 0], [(c, drills.last_line(str(log))) for c, log in zip(codes, logs)]
    return {n: {**_result(str(root / name)), "workdir": root / name, "logs": [l.read_text() for l in ls]}
            for n, name, ls in ((1, "one", logs[2:]), (2, "two", logs[:2]))}


def test_two_processes_match_one_process(runs):
    one, two = runs[1], runs[2]
    assert sorted(one["losses"]) == sorted(two["losses"]) == list(range(1, STEPS + 1))
    for step, loss in one["losses"].items():
        assert two["losses"][step] == pytest.approx(loss, abs=1e-5), (step, one["losses"], two["losses"])
    assert one["losses"][STEPS] < one["losses"][1]
    p0, p1 = two["logs"]  # one collective group of two processes
    assert "Rank 0 is connected to 1 peer ranks" in p0 and "Rank 1 is connected to 1 peer ranks" in p1
    for log in two["logs"] + one["logs"]:
        assert "lost host" not in log and f"done: step {STEPS}" in log, log[-3000:]  # a normal end on every host
    assert sorted(p.name for p in (two["workdir"] / "checkpoints").iterdir()) == ["3", "6", "9"]  # saved by both
    # generation (VQA, held-out captions) and likelihood scoring (TextCore-style choice) over parameters sharded
    # across both hosts
    assert len(one["scores"]) == 5 and two["scores"] == pytest.approx(one["scores"], abs=1e-6), (one, two)


def test_lost_host_stops_in_one_line_and_all_hosts_resume_exactly(runs, tmp_path):
    """2 processes. Process 1 SIGKILLed after the first checkpoint: process 0 exits with LOST_HOST_EXIT within the
    timeout (plus beats), its last line names process 1 and the step to resume from, metrics.jsonl says the same.
    Process 0 SIGKILLed: JAX aborts process 1 natively at once, and its helper still writes the last line and the
    row. Both times, with both restarted, every loss equals an uninterrupted 2-process run's. The trials are chained
    (a 2-process launch is most of their cost): the second fault hits the first trial's restart after its step-6
    checkpoint, and the second restart runs to step 9; every loss any of the runs logged is checked. The uninterrupted
    run is the module's 2-process run (its evaluation at the last step, which no faulted run reaches, changes no loss)."""
    result = drills.drill_lost_host(str(tmp_path), trials=2, timeout_s=TIMEOUT_S, steps=STEPS, chain=True,
                                    reference=runs[2]["losses"], extra=MESH)
    assert result.failures == [] and result.trials == 2, result.failures
    assert result.times[0] < 5 + 20 and result.times[1] < 10, result.times  # kill -> survivor's exit
    base = tmp_path / "lost_host"
    lost_rows = [r for r in drills.rows(str(base / "chain")) if "host_lost" in r]
    assert len(lost_rows) == 2, lost_rows
    for trial, lost, survivor, exit_code, stops, restart_log in [
        (0, 1, 0, distributed.LOST_HOST_EXIT, r"process 1 of 2 sent no heartbeat for \d+ s \(train.host_timeout_s=5\); "
                                              r"process 0 stops \(exit 75\)", "t1.log.p0"),
        (1, 0, 1, 134, r"the coordination service on process 0 is gone; process 1 was aborted by JAX at once "
                       r"\(SIGABRT, exit status 134; train.host_timeout_s does not apply to process 0\)",
         "t1.log.restart.p0"),
    ]:
        row, log = lost_rows[trial], base / f"t{trial}.log.p{survivor}"
        step = row["resume_step"]
        assert row["host_lost"] == [lost] and row["exit_code"] == exit_code and step == 3 * (trial + 1), row
        assert re.fullmatch(rf"lost host: {stops}\. Restart all 2 processes with the same workdir: they resume from "
                            rf"step {step}, the newest complete checkpoint in \S+/checkpoints\.",
                            drills.last_line(str(log))), drills.last_line(str(log))
        assert drills.resumed_from(str(base / restart_log)) == step
