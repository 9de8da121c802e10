"""The training command as a newcomer meets it: only our lines on the console (library logging at WARNING unless
--verbosity), a line per slow set-up phase, Ctrl-C that saves and says so, a restart that says where it resumed,
and bad input refused in one sentence before anything heavy runs."""
import os
import re
import signal
import subprocess
import sys
import time

import pytest

from tests.support import user_env

pytestmark = pytest.mark.slow  # processes started, models trained: see pyproject.toml

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = user_env(drop=("JAX_PLATFORMS",))  # as a user runs it
# a run interrupted while it compiles must really compile (not read the tests' persistent XLA cache)
UNCACHED = {k: v for k, v in ENV.items() if not k.startswith(("JAX_COMPILATION_CACHE", "JAX_PERSISTENT_CACHE"))}
SMALL = ["--config.model.encoder.depth=1", "--config.model.decoder.depth=1", "--config.data.seq_len=128",
         "--config.train.global_batch_size=4", "--config.train.eval_every=0", "--config.train.num_samples=0",
         "--config.train.log_every=5", "--config.train.checkpoint.every_steps=1000",
         "--config.train.checkpoint.async_save=False"]


def train(*args):
    return [sys.executable, "-m", "mm1_jax.train", "--config=configs/tiny.py", *args]


def interrupted_run(workdir: str, when: str, delay: float = 0.0) -> list[str]:
    """The console lines of a long training run sent SIGINT `delay` s after a line starting with `when` (it must
    exit 0)."""
    proc = subprocess.Popen(train(f"--workdir={workdir}", "--config.train.steps=5000", *SMALL), cwd=REPO, env=UNCACHED,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    for line in proc.stdout:
        lines.append(line.rstrip("\n"))
        if line.startswith(when):
            time.sleep(delay)
            proc.send_signal(signal.SIGINT)
            break
    lines += proc.stdout.read().splitlines()
    assert proc.wait(timeout=300) == 0, lines
    return lines


def test_console_ctrl_c_during_compilation_and_resume(tmp_path):
    """Ctrl-C while the first step compiles (XLA's C++ cannot be interrupted; it once ended in a segmentation fault):
    the step finishes, is saved, the command says so and exits 0 with only our lines; the restart resumes there."""
    workdir = str(tmp_path / "run")
    lines = interrupted_run(workdir, "starting fresh", delay=1.0)  # inside the first step's compilation (tens of s)
    text = "\n".join(lines)
    ours = [line for line in lines if not line.startswith("generating the embedded dataset")]  # on a fresh machine
    assert ours[:2] == [f"setting up in {workdir}: the model, its sharded state and the data",
                        f"starting fresh in {workdir}"], lines[:3]
    assert "Ctrl-C: saving at the next step, then exiting (press Ctrl-C again to exit without saving)." in text
    assert re.search(r"^train step compiled in \d+ s$", text, re.M)
    assert "SIGINT: saved step 1; exiting (restart with the same workdir to resume)." in lines, lines
    assert os.listdir(os.path.join(workdir, "checkpoints")) == ["1"]
    assert not [line for line in lines if re.match(r"^[IWEF]\d{4} ", line) or "TPU" in line], lines  # absl, orbax, libtpu
    again = subprocess.run(train(f"--workdir={workdir}", "--config.train.steps=3", *SMALL), cwd=REPO,
                           env=ENV, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and f"resumed from step 1 of {workdir}" in again.stdout.splitlines(), again.stdout
    assert "done: step 3" in again.stdout


def test_bad_input_is_one_sentence_before_set_up(tmp_path):
    cases = [
        (["--config=configs/tinyy.py", f"--workdir={tmp_path}"],
         "error: --config=configs/tinyy.py could not be loaded: [Errno 2] No such file or directory: "
         "'configs/tinyy.py'"),
        (["--config=configs/tiny.py", "--workdir=/proc/x/y"],
         "error: --workdir=/proc/x/y cannot be created or written (No such file or directory)."),
        (["--config=configs/tiny.py", f"--workdir={tmp_path}", "--config.train.optimizer.lr=-1"],
         "error: train.optimizer.lr=-1.0 must be positive."),
        (["--config=configs/tiny.py", f"--workdir={tmp_path}", "--config.model.decoder.num_experts=4"],
         "error: --config.model.decoder.num_experts=4: the config has no field model.decoder.num_experts."),
        (["--config=configs/tiny.py", f"--workdir={tmp_path}", "--config.modl.dtype=bfloat16"],
         'error: --config.modl.dtype=bfloat16: the config has no field modl (did you mean "model"?).'),
    ]
    for args, message in cases:
        start = time.time()
        out = subprocess.run([sys.executable, "-m", "mm1_jax.train", *args], cwd=REPO, env=ENV, capture_output=True,
                             text=True, timeout=300)
        assert out.returncode == 1 and out.stderr.strip().splitlines() == [message], out.stderr
        assert "Traceback" not in out.stderr and time.time() - start < 60


def test_eta_counts_the_remaining_evaluations_and_saves():
    """MetricsLogger's ETA: the steps left at the hook-free rate plus each hook's remaining runs at its last duration
    (the last step runs every hook); a hook not timed yet is named, not guessed."""
    from mm1_jax.train import metrics
    # step 50 of 100 at 10 steps/s: eval (every 25) runs at 50, 75, 100 -> 3 x 4 s; save (every 50) at 50, 100 ->
    # 2 x 1 s; samples (0: the last step only) not timed yet.
    seconds, unknown = metrics.eta(50, 100, 10.0, {"eval": 25, "save": 50, "samples": 0}, {"eval": 4.0, "save": 1.0})
    assert seconds == 5.0 + 12.0 + 2.0 and unknown == "samples"
    # 110 steps, every 25: from step 101 only the last step (110) evaluates.
    assert metrics.eta(101, 110, 1.0, {"eval": 25}, {"eval": 3.0}) == (9.0 + 3.0, "")
    line = metrics.progress_line(50, 100, {"loss": 1.0, "lr": 1e-3, "eta_s": 19.0, "eta_excludes": "samples"})
    assert "ETA 0m19s + samples (not timed yet)" in line


def test_backend_start_is_silent_unless_verbose():
    """console.start_backends: what native code writes to stderr while jax's backends start (libtpu's probe for a TPU
    on a machine without one) is hidden, unless --verbosity was given."""
    script = ("import os, sys, jax\n"
              "from absl import flags\n"
              "from mm1_jax.runtime import console\n"
              "flags.FLAGS(sys.argv)\n"
              "jax.devices = lambda: os.write(2, b'native probe noise\\n')\n"
              "console.start_backends()\n"
              "print('after', file=sys.stderr)\n")
    for args, noisy in (([], False), (["--verbosity=0"], True)):
        out = subprocess.run([sys.executable, "-c", script, *args], cwd=REPO, env=ENV, capture_output=True, text=True,
                             timeout=120)
        assert out.returncode == 0, out.stderr
        assert ("native probe noise" in out.stderr) == noisy and out.stderr.rstrip().endswith("after"), out.stderr
