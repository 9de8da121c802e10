"""Two local processes x 4 devices (jax.distributed over localhost, gloo collectives) train to the same losses, and
score the same in-training evaluation, as one process x 8 devices: the multi-host path of a pod, on one machine."""
import json
import os
import socket
import subprocess
import sys

import pytest

from tests.support import xla_flags

pytestmark = pytest.mark.slow  # processes started, models trained: see pyproject.toml
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

CHILD = """
import json, sys
sys.path.insert(0, {tests!r}); sys.path.insert(0, {root!r})
from mm1_jax.runtime import distributed
distributed.initialize({coordinator!r}, {n}, {pid})
import jax
from test_train import small_config
from mm1_jax.train import trainer

config = small_config(steps=3, host_data="global", eval_every=3, eval_tasks=("embedded_vqa", "embedded_text"),
                      eval_shots=(0,), eval_limit=8, num_samples=4, sample_task="embedded_cap")
config.mesh = dict(data=1, fsdp=-1, tensor=2, expert=1)
out = trainer.train(config, {workdir!r})
assert jax.device_count() == 8 and jax.local_device_count() == 8 // {n}
if jax.process_index() == 0:
    print("LOSSES" + json.dumps(out["losses"]))
    print("EVAL" + json.dumps(out["eval"]))
    print("CAPTIONS" + json.dumps(out["samples"]))
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def _launch(n: int, workdir: str) -> list[subprocess.Popen]:
    coordinator = f"localhost:{_free_port()}" if n > 1 else None
    env = dict(os.environ, XLA_FLAGS=xla_flags(8 // n), JAX_PLATFORMS="cpu")
    procs = []
    for pid in range(n):
        code = CHILD.format(tests=os.path.join(ROOT, "tests"), root=ROOT, coordinator=coordinator, n=n, pid=pid,
                            workdir=workdir)
        procs.append(subprocess.Popen([sys.executable, "-c", code], env=env, cwd=ROOT, stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT, text=True))
    return procs


def _results(procs) -> tuple[dict, dict]:
    """Host 0's losses {step: loss} and eval scores (with the held-out caption accuracy)."""
    outputs = [p.communicate(timeout=900)[0] for p in procs]
    for p, out in zip(procs, outputs):
        assert p.returncode == 0, out[-3000:]
        assert "lost host" not in out, out[-3000:]  # a normal end says "done" to the last-words helper
    lines = outputs[0].splitlines()
    printed = lambda tag: json.loads(next(line for line in lines if line.startswith(tag))[len(tag):])  # noqa: E731
    samples = {f"samples/{k}": v for k, v in printed("CAPTIONS").items()}
    return {int(k): v for k, v in printed("LOSSES").items()}, {**printed("EVAL"), **samples}


def test_two_processes_match_one_process(tmp_path):
    single = _launch(1, str(tmp_path / "one"))
    multi = _launch(2, str(tmp_path / "two"))
    (one, one_eval), (two, two_eval) = _results(single), _results(multi)
    assert sorted(one) == sorted(two) == [1, 2, 3]
    for step in one:
        assert two[step] == pytest.approx(one[step], abs=1e-5), (step, one, two)
    assert one[3] < one[1]
    assert sorted(os.listdir(tmp_path / "two" / "checkpoints")) == ["3"]  # both hosts saved one checkpoint
    # generation (VQA, held-out captions) and likelihood scoring (TextCore-style choice) over parameters sharded
    # across both hosts
    assert len(one_eval) == 5 and two_eval == pytest.approx(one_eval, abs=1e-6), (one_eval, two_eval)
