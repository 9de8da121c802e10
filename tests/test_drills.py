"""Light versions of benchmarks/drills.py: kill -9 and SIGTERM then restart, damaged checkpoints (the lost host is in
test_train_multiprocess.py, beside the 2-process run it shares), corrupt records in every source format, malformed converter inputs; and the lost-host watchdog on its own."""
import os
import re
import threading
import time

import pytest

from benchmarks import drills
from mm1_jax.runtime import distributed
from mm1_jax.train import config as train_config
from tests.test_train import small_config

pytestmark = pytest.mark.slow  # processes started, models trained: see pyproject.toml


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """One uninterrupted run of the drills' shrunk tiny config (12 steps, checkpoints every 3) for the restarts."""
    root = str(tmp_path_factory.mktemp("drills"))
    ref = drills.reference_run(root, drills.STEPS, drills.EVERY)
    assert sorted(ref[1]) == list(range(1, drills.STEPS + 1)) and len(set(ref[1].values())) == drills.STEPS
    return root, ref


def test_kill9_and_sigterm_then_restart_reproduce_the_losses(reference):
    """kill -9 at a random moment (drawn from a seed that changes every run and is printed) and SIGTERM after step 2:
    every logged loss, before and after the restart, equals the uninterrupted run's; SIGTERM saves first, so it
    recomputes nothing."""
    root, ref = reference
    seed = int(os.environ.get("MM1_DRILL_SEED") or time.time_ns() % 2 ** 32)  # a new moment each run, repeatable
    print(f"kill -9 drill: seed {seed} (MM1_DRILL_SEED={seed} repeats its moment)")
    killed = drills.drill_kill9(root, trials=1, seed=seed, reference=ref)
    assert killed.trials == 1 and killed.failures == [], (f"MM1_DRILL_SEED={seed}", killed.failures)
    term = drills.drill_sigterm(root, trials=1, reference=ref)
    assert term.trials == 1 and term.failures == [] and term.lost == [0], (term.failures, term.lost)


def test_damaged_newest_step_is_moved_aside_and_recomputed(reference):
    """Truncated array files, and a missing one: moved aside, steps 10-12 recomputed to the same losses; with
    on_damage=stop the command prints its one sentence and nothing else (no 'Event loop is closed' traceback from
    TensorStore reads delivered after the failed restore), and leaves the step where it was."""
    root, ref = reference
    truncated, missing = drills.drill_damaged(root, reference=ref, modes=(("resume_older", "stop"), ("resume_older",)))
    assert truncated.failures == [] and truncated.trials == 2 and truncated.lost == [drills.EVERY], truncated.failures
    assert missing.failures == [] and missing.lost == [drills.EVERY], missing.failures


@pytest.mark.parametrize("fmt", drills.FORMATS)
def test_corrupt_records_are_skipped_or_stop_naming_the_source(tmp_path, fmt):
    """10% corrupt records: skipped and counted at the share written; 50%: the pipeline stops in one sentence naming
    the source and a sample record."""
    outcome, share, corrupted, _ = drills.read_corrupt(str(tmp_path / "ten"), fmt, 100, 0.10)
    assert outcome == "skipped" and corrupted >= 8 and share == pytest.approx(corrupted / 100, abs=0.011)
    outcome, _, _, _ = drills.read_corrupt(str(tmp_path / "half"), fmt, 100, 0.50)
    name = {"wds": "captions", "parquet": "interleaved", "arrayrecord": "text", "jsonl": "ocr", "llava_json": "vqa"}
    assert re.match(rf"Data source '{name[fmt]}': \d+ of \d+ records were bad \(limit max_error_rate=0.25\); e\.g\. ",
                    outcome) and "\n" not in outcome, outcome


def test_malformed_inputs_give_one_sentence(tmp_path):
    """The 10 malformed inputs: pretrained.load raises one sentence naming each; the convert command (its main)
    prints one 'error:' line for each Hugging Face one and writes nothing."""
    cases = drills.malformed_inputs(str(tmp_path))
    assert len(cases) == 10
    for name, path, is_converted in cases:
        ok, text = drills.try_load(path)
        assert ok, (name, text)
        if not is_converted:
            ok, text = drills.try_convert(path, False, path + ".out")
            assert ok, (name, text)


# --- the watchdog on its own

class FakeClient:
    """The coordination service's key-value store, with process `silent` no longer beating after `after` reads."""

    def __init__(self, silent: int, after: int):
        self.store, self.reads, self.silent, self.after = {}, 0, silent, after

    def key_value_set(self, key, value, allow_overwrite=False):
        assert allow_overwrite
        self.store[key] = value

    def key_value_dir_get(self, prefix):
        self.reads += 1
        for p in (0, 1, 2):
            if p != self.silent or self.reads < self.after:
                self.store[f"{prefix}{p}"] = str(self.reads)  # the other processes beat too
        return [(k, v) for k, v in self.store.items() if k.startswith(prefix)]


class Recording(distributed.HostWatchdog):
    def _give_up(self, lost, waited_s, unreachable=False):
        self.gave_up = (lost, waited_s, self.message(lost, waited_s, unreachable)[0])
        self.stop()


def test_watchdog_names_the_silent_process_after_the_timeout_only(tmp_path):
    """3 processes, process 2 stops beating: process 0's watchdog gives up on process 2 alone, after at least the
    timeout, naming the newest complete checkpoint; while all beat it never does."""
    dog = Recording(FakeClient(silent=2, after=5), process_id=0, num_processes=3, timeout_s=0.6)
    dog.configure(0.6, str(tmp_path / "checkpoints"), str(tmp_path))
    for step in ("3", "6", "9.orbax-checkpoint-tmp-1"):  # 9: a save in flight, not a step
        os.makedirs(tmp_path / "checkpoints" / step)
    start, timer = time.time(), threading.Timer(20.0, dog.stop)  # a watchdog that never gives up fails, not hangs
    timer.start()
    dog._run()  # returns once it gave up (stop)
    timer.cancel()
    assert hasattr(dog, "gave_up"), "the watchdog never gave up on the silent process"
    lost, waited, line = dog.gave_up
    assert lost == [2] and waited > 0.6 and time.time() - start > 0.6
    assert line == (f"lost host: process 2 of 3 sent no heartbeat for {waited:.0f} s (train.host_timeout_s=0.6); "
                    "process 0 stops (exit 75). Restart all 3 processes with the same workdir: they resume from step "
                    f"6, the newest complete checkpoint in {tmp_path}/checkpoints.")

    healthy = Recording(FakeClient(silent=-1, after=0), process_id=1, num_processes=3, timeout_s=0.4)
    timer = threading.Timer(2.0, healthy.stop)
    timer.start()
    healthy._run()
    assert not hasattr(healthy, "gave_up")


def test_host_timeout_is_checked_with_its_field():
    config = small_config()
    for value in (0.0, -1.0, 601.0, float("nan")):
        config.train.host_timeout_s = value
        with pytest.raises(ValueError, match=re.escape(f"train.host_timeout_s={value!r} must be a number of seconds in "
                                                       "(0, 600]")):
            train_config.validate_config(config)
    config.train.host_timeout_s = 30
    train_config.validate_config(config)


def test_lost_before_any_checkpoint_says_start_afresh(tmp_path):
    dog = distributed.HostWatchdog(FakeClient(silent=1, after=0), process_id=0, num_processes=2, timeout_s=1)
    dog.configure(1, str(tmp_path / "none"), str(tmp_path))
    text, step = dog.message([1], 3.0)
    assert step is None and text.endswith(f"they start afresh (there is no complete checkpoint in {tmp_path}/none "
                                          "yet).")
