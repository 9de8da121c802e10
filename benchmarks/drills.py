"""Reliability drills: faults injected from outside into the tiny config, and what a user gets back.

    python benchmarks/drills.py [--quick] [--only=kill9,sigterm,damaged,lost_host,corrupt,malformed]

Prints one row per drill: the fault, the trials, the outcome, the data lost (training steps computed twice) and the
time to recover (a restart's launch to its first new step) or to stop (the fault to the process's exit, or to the
error). Training drills run `python -m mm1_jax.train --config=configs/tiny.py` as a user does, shrunk by --config
overrides (the model too, so each run takes seconds once compiled; compilations are cached in XLA_CACHE). A drill's
outcome is "ok" only when it held: resumed losses equal the uninterrupted run's bit for bit, a bad input gives one
sentence (no traceback), a lost host gives one line naming it and the step to resume from.

  kill9       kill -9 at random moments (uniform over an uninterrupted run's wall time), then restart
  sigterm     SIGTERM once steps run (preemption): save, exit 0, restart
  damaged     the newest checkpoint's array files truncated / one file removed, then restart
  lost_host   2 local processes, one SIGKILLed after the first checkpoint; the other stops; all restarted
  corrupt     1% / 10% / 50% corrupt records in each source format, read by the training pipeline
  malformed   10 malformed checkpoint / safetensors inputs to `python -m mm1_jax.convert` and `pretrained.load`
"""
from __future__ import annotations

import argparse
import contextlib
import glob
import io
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
XLA_CACHE = os.path.join(os.path.expanduser("~"), ".cache", "mm1_jax", "xla_drills")
DEVICE_COUNT_FLAG = "--xla_force_host_platform_device_count"
MAX_ERROR_RATE = 0.25  # data.max_error_rate in the corrupt-record drills: 1% and 10% pass, 50% stops

# configs/tiny.py shrunk: 16 px images, 4 image tokens, 64-token rows, a 2-layer 32-wide decoder, no evaluation
SMALL = {"data.seq_len": 64, "data.max_images": 2, "model.max_images": 2, "model.encoder.image_size": 16,
         "model.encoder.patch_size": 4, "model.encoder.width": 32, "model.encoder.depth": 1,
         "model.encoder.num_heads": 2, "model.encoder.mlp_dim": 64, "model.connector.num_tokens": 4,
         "model.connector.hidden_dim": 32, "model.decoder.width": 32, "model.decoder.depth": 2,
         "model.decoder.mlp_dim": 64, "train.log_every": 1, "train.eval_every": 0, "train.num_samples": 0,
         "train.sample_every": 0, "train.optimizer.warmup_steps": 2, "train.global_batch_size": 8}


def env(devices: int = 1) -> dict[str, str]:
    """A user's environment (one CPU device unless asked), with a persistent compilation cache."""
    out = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    out.update(JAX_PLATFORMS="cpu", JAX_COMPILATION_CACHE_DIR=XLA_CACHE, JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
               PYTHONUNBUFFERED="1")
    # the caller's XLA flags (the tests' compile options, say) travel; its device count does not
    flags = [f for f in os.environ.get("XLA_FLAGS", "").split() if not f.startswith(DEVICE_COUNT_FLAG)]
    flags += [f"{DEVICE_COUNT_FLAG}={devices}"] if devices > 1 else []
    if flags:
        out["XLA_FLAGS"] = " ".join(flags)
    return out


def train_command(workdir: str, steps: int, every: int, **extra) -> list[str]:
    fields = {**SMALL, "train.steps": steps, "train.checkpoint.every_steps": every, **extra}
    return [sys.executable, "-m", "mm1_jax.train", "--config=configs/tiny.py", f"--workdir={workdir}"] + [
        f"--config.{k}={v}" for k, v in fields.items()]


def launch(command: list[str], log: str, devices: int = 1) -> subprocess.Popen:
    os.makedirs(os.path.dirname(log), exist_ok=True)
    return subprocess.Popen(command, cwd=REPO, env=env(devices), stdout=open(log, "w"), stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)


def run_to_end(command: list[str], log: str, devices: int = 1, timeout: float = 900) -> tuple[int, float]:
    start = time.time()
    proc = launch(command, log, devices)
    return proc.wait(timeout=timeout), time.time() - start


def rows(workdir: str) -> list[dict]:
    path = os.path.join(workdir, "metrics.jsonl")
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip().endswith("}")]


def losses(workdir: str) -> list[tuple[int, float, float]]:
    """(step, loss, time) of every loss row, across restarts."""
    return [(r["step"], r["loss"], r["time"]) for r in rows(workdir) if "loss" in r]


def last_line(log: str) -> str:
    with open(log) as f:
        lines = [line.rstrip() for line in f if line.strip()]
    return lines[-1] if lines else ""


def wait_for(predicate, timeout: float, poll: float = 0.05) -> bool:
    end = time.time() + timeout
    while time.time() < end:
        if predicate():
            return True
        time.sleep(poll)
    return False


def resumed_from(log: str) -> int | None:
    with open(log) as f:
        for line in f:
            if line.startswith("resumed from step "):
                return int(line.split()[3])
    return None


class Result:
    """One row of the table."""

    def __init__(self, fault: str):
        self.fault, self.trials, self.failures, self.lost, self.times, self.notes = fault, 0, [], [], [], []

    def trial(self, ok: bool, lost: int | None = None, seconds: float | None = None, note: str = "") -> None:
        self.trials += 1
        if not ok:
            self.failures.append(note or f"trial {self.trials} failed")
        if lost is not None:
            self.lost.append(lost)
        if seconds is not None:
            self.times.append(seconds)
        if note and ok:
            self.notes.append(note)

    @property
    def ok(self) -> bool:
        return self.trials > 0 and not self.failures

    def cells(self) -> list[str]:
        outcome = ("ok" if self.ok else f"FAILED {len(self.failures)}/{self.trials}: {self.failures[0]}")
        if self.ok and self.notes:
            outcome += f": {self.notes[0]}"
        lost = "-" if not self.lost else (f"{min(self.lost)}-{max(self.lost)} steps (mean {sum(self.lost) / len(self.lost):.1f})"
                                          if len(set(self.lost)) > 1 else f"{self.lost[0]} steps")
        seconds = "-" if not self.times else (f"{min(self.times):.1f}-{max(self.times):.1f} s" if len(self.times) > 1
                                              else f"{self.times[0]:.1f} s")
        return [self.fault, str(self.trials), outcome, lost, seconds]


# ------------------------------------------------------------------------------------------------ training drills
def reference_run(root: str, steps: int = 12, every: int = 3, **extra) -> tuple[str, dict[int, float], float]:
    """An uninterrupted run: its workdir, {step: loss} and wall time."""
    workdir = os.path.join(root, "reference")
    code, wall = run_to_end(train_command(workdir, steps, every, **extra), os.path.join(root, "reference.log"))
    if code != 0:
        raise RuntimeError(f"the uninterrupted run failed (exit {code}); see {root}/reference.log")
    return workdir, {s: loss for s, loss, _ in losses(workdir)}, wall


def check_resumed(workdir: str, reference: dict[int, float], restart_started: float, first_log: str,
                  restart_log: str) -> tuple[bool, int, float | None, str]:
    """After a fault and a restart that ran to the end: (every logged loss equals the reference's, steps computed
    twice, seconds from the restart's launch to its first new step, a note on what differs)."""
    logged = losses(workdir)
    before = [s for s, _, t in logged if t < restart_started]
    resume = resumed_from(restart_log) or 0
    recomputed = max(0, max(before, default=0) - resume)
    after = [t for s, _, t in logged if t >= restart_started and s == resume + 1]
    bad = [(s, loss, reference.get(s)) for s, loss, _ in logged if reference.get(s) != loss]
    final = {s for s, _, _ in logged}
    ok = not bad and final == set(reference)
    note = "" if ok else (f"step {bad[0][0]}: loss {bad[0][1]!r} vs {bad[0][2]!r}" if bad else
                          f"steps logged {sorted(final)} (exit: {last_line(restart_log)[:120]})")
    del first_log
    return ok, recomputed, (after[0] - restart_started) if after else None, note


STEPS, EVERY = 12, 3  # the single-process drills' run: 12 steps, a checkpoint every 3


def drill_kill9(root: str, trials: int, seed: int = 0, reference=None) -> Result:
    """kill -9 at random moments: at a random step (0: during start-up or compilation), a random fraction of a step
    after it was logged, so kills land in steps, in asynchronous saves and between them. Then restart to the end."""
    steps, every = STEPS, EVERY
    _, reference, _ = reference or reference_run(root, steps, every)
    rng, result = random.Random(seed), Result("kill -9 at a random moment, restart")
    for i in range(trials):
        workdir, log = os.path.join(root, "kill9", f"t{i}"), os.path.join(root, "kill9", f"t{i}.log")
        at, pause = rng.randrange(steps), rng.uniform(0.0, 0.4)
        proc = launch(train_command(workdir, steps, every), log)
        if at == 0:
            time.sleep(rng.uniform(1.0, 8.0))  # set-up or compilation
        else:
            wait_for(lambda: any(s >= at for s, _, _ in losses(workdir)) or proc.poll() is not None, 600)
            time.sleep(pause)
        if proc.poll() is not None:
            result.trial(False, None, None, f"trial {i}: the run ended (exit {proc.returncode}) before the kill")
            continue
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        started = time.time()
        code, _ = run_to_end(train_command(workdir, steps, every), log + ".restart")
        ok, lost, seconds, note = check_resumed(workdir, reference, started, log, log + ".restart")
        result.trial(ok and code == 0, lost, seconds, note)
    result.notes = [f"losses of all {steps} steps equal the uninterrupted run's"]
    return result


def drill_sigterm(root: str, trials: int, reference=None) -> Result:
    steps, every = STEPS, EVERY
    _, reference, _ = reference or reference_run(root, steps, every)
    result = Result("SIGTERM (preemption), restart")
    for i in range(trials):
        workdir, log = os.path.join(root, "sigterm", f"t{i}"), os.path.join(root, "sigterm", f"t{i}.log")
        proc = launch(train_command(workdir, steps, every), log)
        wait_for(lambda: any(s >= 2 + 3 * i for s, _, _ in losses(workdir)) or proc.poll() is not None, 600)
        os.killpg(proc.pid, signal.SIGTERM)
        sent = time.time()
        code = proc.wait()
        stopped = time.time() - sent
        saved = "saved step" in open(log).read()
        started = time.time()
        code2, _ = run_to_end(train_command(workdir, steps, every), log + ".restart")
        ok, lost, _, note = check_resumed(workdir, reference, started, log, log + ".restart")
        result.trial(ok and code == 0 and code2 == 0 and saved, lost, stopped,
                     note or ("" if saved and code == 0 else f"exit {code}: {last_line(log)[:120]}"))
    result.notes = ["saved, exit 0, resumed with equal losses (time: to exit)"]
    return result


def drill_damaged(root: str, reference=None, modes=(("resume_older", "stop"), ("resume_older", "stop"))
                  ) -> list[Result]:
    """The newest step of a finished run damaged two ways; each restart moves it aside and recomputes from the older
    step (resume_older), or stops in one sentence (on_damage=stop). `modes`: the on_damage values tried per fault."""
    steps, every = STEPS, EVERY
    base = os.path.join(root, "damaged")
    ref_dir, reference, _ = reference or reference_run(root, steps, every)
    out = []
    for (fault, damage), tried in zip((("truncated checkpoint files (newest step)", _truncate),
                                       ("missing checkpoint file (newest step)", _remove_one)), modes):
        result = Result(fault)
        for on_damage in tried:
            workdir = os.path.join(base, f"{damage.__name__}_{on_damage}")
            shutil.copytree(ref_dir, workdir)
            damage(os.path.join(workdir, "checkpoints", str(steps)))
            with open(os.path.join(workdir, "metrics.jsonl"), "w"):
                pass  # only the restart's rows
            log, started = os.path.join(base, f"{damage.__name__}_{on_damage}.log"), time.time()
            code, wall = run_to_end(train_command(workdir, steps, every, **{"train.checkpoint.on_damage": on_damage}),
                                    log)
            text = open(log).read()
            if on_damage == "stop":
                line = last_line(log)
                ok = (code == 1 and "Traceback" not in text and line.startswith(f"error: checkpoint step {steps} in ")
                      and "is damaged" in line and os.path.isdir(os.path.join(workdir, "checkpoints", str(steps))))
                result.trial(ok, None, wall, "" if ok else f"exit {code}: {line[:160]}")
                continue
            got = {s: loss for s, loss, _ in losses(workdir)}
            moved = os.path.isdir(os.path.join(workdir, "checkpoints", "damaged", str(steps)))
            ok = code == 0 and moved and got == {s: reference[s] for s in range(steps - every + 1, steps + 1)}
            first = [t for s, _, t in losses(workdir) if s == steps - every + 1]
            result.trial(ok, every, (first[0] - started) if first else None,
                         "" if ok else f"exit {code}, moved aside {moved}, losses {got}")
        result.notes = [f"moved to checkpoints/damaged/{steps}, resumed from {steps - every}, equal losses"
                        + ("; on_damage=stop: one sentence" if "stop" in tried else "")]
        out.append(result)
    return out


def _truncate(step_dir: str) -> None:
    for f in glob.glob(os.path.join(step_dir, "state", "**", "d", "*"), recursive=True):
        os.truncate(f, os.path.getsize(f) // 2)


def _remove_one(step_dir: str) -> None:
    files = sorted(glob.glob(os.path.join(step_dir, "state", "**", "d", "*"), recursive=True), key=os.path.getsize)
    os.remove(files[-1])


# ------------------------------------------------------------------------------------------------------ lost host
def _port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def launch_hosts(workdir: str, log: str, steps: int, every: int, n: int = 2, timeout_s: float = 10,
                 extra: dict | None = None) -> list:
    port = _port()
    extra = {"train.host_data": "global", "train.host_timeout_s": timeout_s, **(extra or {})}
    return [launch(train_command(workdir, steps, every, **extra) + [f"--coordinator=localhost:{port}",
                   f"--num_processes={n}", f"--process_id={i}"], f"{log}.p{i}", devices=8 // n) for i in range(n)]


def drill_lost_host(root: str, trials: int = 1, timeout_s: float = 10, steps: int = 30, chain: bool = False,
                    reference: dict[int, float] | None = None, extra: dict | None = None) -> Result:
    """2 processes x 4 devices; process `victim` (1, then 0, alternately) SIGKILLed once the first checkpoint is
    complete (and a step more): the survivor must exit within the timeout (plus a beat) with LOST_HOST_EXIT (process 1
    lost) or JAX's native abort (process 0 lost: at once) and a last line naming the process and the step;
    restarting both must give the uninterrupted 2-process run's losses exactly.

    chain=True: one workdir (lost_host/chain) for all trials, each trial's fault hitting the previous trial's restart
    once it has saved a newer checkpoint (trial i: after checkpoint every x (i + 1) and a step more; steps must leave
    room for that), so each trial launches one run (its restart) instead of two; the last restart runs to the end and
    every loss logged by every run in the workdir must equal the uninterrupted run's. Logs: trial i's faulted run
    writes lost_host/t{i}.log.p*, its restart lost_host/t{i + 1}.log.p* (the next trial's run), the last trial's
    restart lost_host/t{i}.log.restart.p*.

    `reference`: the uninterrupted 2-process run's {step: loss}, when the caller has it (launch_hosts with the same
    steps, every and `extra`, the --config fields every run gets); otherwise it is run first."""
    from mm1_jax.runtime.distributed import LOST_HOST_EXIT  # pylint: disable=import-outside-toplevel

    every = 3
    base = os.path.join(root, "lost_host")
    os.makedirs(base, exist_ok=True)
    if reference is None:
        ref = os.path.join(base, "reference")
        procs = launch_hosts(ref, os.path.join(base, "reference.log"), steps, every, extra=extra)
        if any(p.wait(timeout=900) != 0 for p in procs):
            raise RuntimeError(f"the uninterrupted 2-process run failed; see {base}/reference.log.p*")
        reference = {s: loss for s, loss, _ in losses(ref)}
    result = Result(f"lost host (2 processes, one kill -9ed; host_timeout_s={timeout_s:g})")
    pending, restart = [], []  # chain: the trials whose restart is checked with the last one's
    for i in range(trials):
        victim, survivor = (1, 0) if i % 2 == 0 else (0, 1)
        workdir, log = os.path.join(base, "chain" if chain else f"t{i}"), os.path.join(base, f"t{i}.log")
        # chain: the previous trial's restart (still running, logging to t{i}.log) is this trial's run
        procs = restart if chain and i > 0 else launch_hosts(workdir, log, steps, every, timeout_s=timeout_s, extra=extra)
        saved = every * (i + 1) if chain else every
        first = os.path.join(workdir, "checkpoints", str(saved))
        wait_for(lambda: (os.path.isdir(first) and any(s > saved for s, _, _ in losses(workdir)))
                 or procs[0].poll() is not None, 900)
        os.killpg(procs[victim].pid, signal.SIGKILL)
        killed = time.time()
        try:
            code = procs[survivor].wait(timeout=timeout_s + 120)
        except subprocess.TimeoutExpired:
            os.killpg(procs[survivor].pid, signal.SIGKILL)
            code = None
        stopped = time.time() - killed
        # process 0 lost: JAX aborts the survivor natively; its last line comes from its helper (runtime/last_words)
        expected = LOST_HOST_EXIT if victim else -signal.SIGABRT
        wait_for(lambda: last_line(f"{log}.p{survivor}").startswith("lost host: "), 10)
        line = last_line(f"{log}.p{survivor}")
        named = line.startswith(f"lost host: process {victim} of 2" if victim else
                                "lost host: the coordination service on process 0 is gone; process 1 was aborted")
        resume = ([r["resume_step"] for r in rows(workdir) if "host_lost" in r] or ["absent"])[-1]
        fault_ok = code == expected and named and stopped < timeout_s + 30
        fault_note = "" if fault_ok else f"survivor exit {code} after {stopped:.0f} s: {line[:160]}"
        started = time.time()
        last = not chain or i == trials - 1
        restart_log = log + ".restart" if last else os.path.join(base, f"t{i + 1}.log")
        restart = launch_hosts(workdir, restart_log, steps, every, timeout_s=timeout_s, extra=extra)
        if not last:
            before = [s for s, _, t in losses(workdir) if t < started]
            lost = max(before, default=0) - (resume if isinstance(resume, int) else 0)
            pending.append((fault_ok, fault_note, lost, stopped, f"survivor exits {code} naming process {victim} and "
                            f"step {resume}; restart equal (time: kill to stop)"))
            continue
        codes = [p.wait(timeout=900) for p in restart]
        ok, lost, seconds, note = check_resumed(workdir, reference, started, log, restart_log + ".p0")
        ok = ok and codes == [0, 0]
        if not note and not ok:
            note = f"restart exits {codes}"
        for p_ok, p_note, p_lost, p_stopped, p_done in pending:  # chain: the earlier restarts' losses checked here
            result.trial(p_ok and ok, p_lost, p_stopped, p_note or note or p_done)
        pending = []
        result.trial(ok and fault_ok, lost, stopped, fault_note or note or (
            f"survivor exits {code} naming process {victim} and step {resume}; restart equal (time: kill to stop)"))
    return result


# ------------------------------------------------------------------------------------------------ corrupt records
FORMATS = ("wds", "parquet", "jsonl", "arrayrecord", "llava_json")
GARBAGE_IMAGE = b"\xff\xd8\xff\xe0 not a jpeg"


def corrupt_source(root: str, fmt: str, n: int, fraction: float, seed: int = 0) -> tuple[dict, int]:
    """A source of `n` records in format `fmt`, written by the embedded dataset's own writers, with
    round(fraction * n) of them corrupted (images with garbage bytes in wds / parquet / LLaVA json, cut-off JSON in
    jsonl / ArrayRecord): (its `sources` entry, how many were corrupted)."""
    import pathlib  # pylint: disable=import-outside-toplevel

    import numpy as np  # pylint: disable=import-outside-toplevel

    from mm1_jax.data import config as config_lib  # pylint: disable=import-outside-toplevel
    from mm1_jax.data import synthetic  # pylint: disable=import-outside-toplevel

    rng = np.random.default_rng(seed)
    bad = set(random.Random(seed).sample(range(n), round(fraction * n)))
    path = pathlib.Path(root)
    if fmt == "wds":
        records = [(GARBAGE_IMAGE, caption) if i in bad else (data, caption)
                   for i, (data, caption) in enumerate(synthetic.caption_records(rng, n))]
        synthetic.write_wds(path, "captions", records)
        return config_lib.source("captions", "caption", "wds", str(path / "captions" / "shard-*.tar"), 1), len(bad)
    if fmt == "parquet":
        import pyarrow.parquet as pq  # pylint: disable=import-outside-toplevel

        synthetic.write_interleaved(path, rng, n)
        file = path / "interleaved" / "docs-00000.parquet"
        table = pq.read_table(file).to_pylist()
        for i in bad:  # every image of the document unreadable
            table[i]["images"] = [GARBAGE_IMAGE if image is not None else None for image in table[i]["images"]]
        with_images = sum(1 for i in bad if any(x is not None for x in table[i]["images"]))
        pq.write_table(pq.read_table(file).from_pylist(table, schema=pq.read_schema(file)), file, row_group_size=256)
        return config_lib.source("interleaved", "interleaved", "parquet", str(file), 1), with_images
    if fmt == "arrayrecord":
        from array_record.python import array_record_module  # pylint: disable=import-outside-toplevel
        from grain.sources import ArrayRecordDataSource  # pylint: disable=import-outside-toplevel

        synthetic.write_text(path, rng, n)
        file = path / "text" / "text-00000.array_record"
        source = ArrayRecordDataSource([str(file)])
        data = [source[i] for i in range(len(source))]
        writer = array_record_module.ArrayRecordWriter(str(file), "group_size:1")
        for i, record in enumerate(data):
            writer.write(record[: len(record) // 2] if i in bad else record)  # cut off mid-JSON
        writer.close()
        return config_lib.source("text", "text", "arrayrecord", str(file), 1), len(bad)
    name, make, as_jsonl = ("ocr", synthetic.ocr_record, True) if fmt == "jsonl" else (
        "vqa", synthetic.vqa_dialogue_record, False)
    synthetic.write_sft(path, rng, name, make, n, as_jsonl=as_jsonl)
    file = path / "sft" / f"{name}.{'jsonl' if as_jsonl else 'json'}"
    if as_jsonl:
        lines = file.read_text().splitlines()
        file.write_text("\n".join(line[: len(line) // 2] if i in bad else line for i, line in enumerate(lines)) + "\n")
    else:
        for i, record in enumerate(json.loads(file.read_text())):
            if i in bad:
                for image in record["image"] if isinstance(record["image"], list) else [record["image"]]:
                    (path / "sft" / image).write_bytes(GARBAGE_IMAGE)
    return config_lib.source(name, "sft", fmt, str(file), 1), len(bad)


def read_corrupt(root: str, fmt: str, n: int, fraction: float) -> tuple[str, float, int, float]:
    """One pass over a corrupted source through the training pipeline: ('skipped' or the stop message, observed
    skipped share, records corrupted, seconds)."""
    from mm1_jax.data import config as config_lib  # pylint: disable=import-outside-toplevel
    from mm1_jax.data import pipeline as pipeline_lib  # pylint: disable=import-outside-toplevel
    from mm1_jax.data import synthetic  # pylint: disable=import-outside-toplevel

    os.makedirs(root, exist_ok=True)
    synthetic.build_tokenizer(os.path.join(root, "tokenizer.json"))
    src, corrupted = corrupt_source(root, fmt, n, fraction)
    dc = config_lib.get_data_config(tokenizer=os.path.join(root, "tokenizer.json"), sources=[src], seq_len=256,
                                    max_images=4, max_error_rate=MAX_ERROR_RATE, min_records_for_rate=min(200, n // 2))
    start = time.time()
    it = pipeline_lib.build_pipeline(dc, global_batch_size=4, tokens_per_image=4, image_size=16, image_norm="clip",
                                     process_index=0, process_count=1)
    try:
        while True:
            stats = it.stats()
            seen = stats["examples"][src["name"]] + stats["skipped_by_source"][src["name"]]
            if seen >= n:
                break
            next(it)
    except pipeline_lib.DataError as e:
        return str(e), float("nan"), corrupted, time.time() - start
    skipped = stats["skipped_by_source"][src["name"]]
    return "skipped", skipped / max(seen, 1), corrupted, time.time() - start


def drill_corrupt(root: str, n: int) -> list[Result]:
    out = []
    for fmt in FORMATS:
        for fraction in (0.01, 0.10, 0.50):
            result = Result(f"{fraction:.0%} corrupt records, {fmt}")
            outcome, share, corrupted, seconds = read_corrupt(os.path.join(root, "corrupt", f"{fmt}_{fraction}"), fmt,
                                                              n, fraction)
            if fraction < MAX_ERROR_RATE:
                ok = outcome == "skipped" and abs(share - corrupted / n) < 0.02
                result.trial(ok, 0, None, f"skipped and counted: share {share:.3f} ({corrupted} of {n} corrupted)"
                             if ok else f"{outcome[:160]} (share {share:.3f}, {corrupted} corrupted)")
            else:
                ok = outcome.startswith("Data source ") and "records were bad" in outcome and "\n" not in outcome
                result.trial(ok, 0, seconds, f"stopped: {outcome[:110]}..." if ok else f"did not stop: {outcome}")
            out.append(result)
    return out


# ---------------------------------------------------------------------------------------------- malformed inputs
def tiny_hf_decoder(path: str) -> None:
    """A 2-layer Llama written as Hugging Face files (config.json + model.safetensors) by our own converter."""
    import flax.linen as nn  # pylint: disable=import-outside-toplevel
    import jax  # pylint: disable=import-outside-toplevel
    import numpy as np  # pylint: disable=import-outside-toplevel

    from mm1_jax.convert import checkpoint, llama  # pylint: disable=import-outside-toplevel

    hf = dict(model_type="llama", architectures=["LlamaForCausalLM"], vocab_size=64, hidden_size=16,
              intermediate_size=32, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
              rms_norm_eps=1e-5, rope_theta=10000.0, tie_word_embeddings=False, max_position_embeddings=64)
    cfg = llama.config_from_hf(hf)
    params = llama.build_module(cfg).init(jax.random.PRNGKey(0), np.zeros((1, 4), np.int32))["params"]
    params = jax.tree.map(np.asarray, nn.unbox(params))
    checkpoint.write_hf(checkpoint.Converted("llama", cfg, params, hf, "float32", "float32"), path)


def malformed_inputs(root: str) -> list[tuple[str, str, bool]]:
    """10 malformed inputs: (what, path, whether it is a converted directory (else Hugging Face))."""
    from mm1_jax.convert import checkpoint  # pylint: disable=import-outside-toplevel

    good = os.path.join(root, "good_hf")
    tiny_hf_decoder(good)
    converted = os.path.join(root, "good_converted")
    checkpoint.write_converted(checkpoint.read_hf(good), converted)
    cases = []

    def variant(name: str, base: str, change, is_converted: bool = False) -> None:
        path = os.path.join(root, name.replace(" ", "_").replace("/", "_"))
        shutil.copytree(base, path)
        change(path)
        cases.append((name, path, is_converted))

    st = lambda p: os.path.join(p, "model.safetensors")  # noqa: E731
    cases.append(("path does not exist", os.path.join(root, "nowhere"), False))
    variant("no config.json", good, lambda p: os.remove(os.path.join(p, "config.json")))
    variant("config.json not JSON", good, lambda p: open(os.path.join(p, "config.json"), "w").write("{model_type"))
    variant("unknown model_type", good, lambda p: open(os.path.join(p, "config.json"), "w").write(
        json.dumps({"model_type": "bert"})))
    variant("no weight file", good, lambda p: os.remove(st(p)))
    variant("safetensors truncated", good, lambda p: os.truncate(st(p), os.path.getsize(st(p)) - 100))
    variant("safetensors header garbage", good, lambda p: open(st(p), "r+b").write(b"\x10\x00\x00\x00\x00\x00\x00\x00"
                                                                                      b"not json at all!"))
    variant("safetensors empty", good, lambda p: open(st(p), "w").close())
    variant("converted: params truncated", converted, lambda p: _truncate_tree(os.path.join(p, "params")), True)
    variant("converted: config.json garbage", converted, lambda p: open(os.path.join(p, "config.json"), "w").write(
        "\x00\x01garbage"), True)
    return cases


def _truncate_tree(folder: str) -> None:
    for f in glob.glob(os.path.join(folder, "**", "d", "*"), recursive=True):
        os.truncate(f, os.path.getsize(f) // 2)


def one_sentence(text: str, path: str) -> bool:
    """One line, naming the input (its folder or a file in it), no traceback."""
    text = text.strip()
    return bool(text) and "\n" not in text and "Traceback" not in text and os.path.basename(path) in text


def try_convert(path: str, is_converted: bool, dst: str) -> tuple[bool, str]:
    """`python -m mm1_jax.convert` (its main(), in this process): exit 1 with one 'error: ...' line, nothing at dst."""
    from mm1_jax.convert.__main__ import main  # pylint: disable=import-outside-toplevel

    err = io.StringIO()
    args = ["--src", path, "--dst", dst, "--no-progress"] + (["--to-hf"] if is_converted else [])
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            code = main(args)
    except BaseException:  # pylint: disable=broad-except  # what a user would see as a traceback
        return False, "traceback: " + traceback.format_exc().strip().splitlines()[-1]
    text = err.getvalue().strip()
    ok = code == 1 and text.startswith("error: ") and one_sentence(text, path) and not os.path.exists(dst)
    return ok, text


def try_load(path: str) -> tuple[bool, str]:
    """`mm1_jax.pretrained.load`: a ValueError / OSError (FileNotFoundError...) raised by our code, one line naming
    the input."""
    from mm1_jax import pretrained  # pylint: disable=import-outside-toplevel

    try:
        pretrained.load(path)
    except (ValueError, OSError) as e:
        where = traceback.extract_tb(e.__traceback__)[-1].filename
        ours = os.path.join(REPO, "mm1_jax") in where
        return ours and one_sentence(str(e), path), f"{type(e).__name__}: {e}"
    except Exception as e:  # pylint: disable=broad-except
        return False, f"{type(e).__name__}: {str(e)[:200]}"
    return False, "loaded without an error"


def drill_malformed(root: str) -> tuple[Result, list[tuple[str, str, str]]]:
    base = os.path.join(root, "malformed")
    os.makedirs(base, exist_ok=True)
    result, lines = Result("10 malformed checkpoint / safetensors inputs (convert CLI + pretrained.load)"), []
    for name, path, is_converted in malformed_inputs(base):
        for tool, attempt in (("convert", lambda: try_convert(path, is_converted, path + ".out")),
                              ("pretrained.load", lambda: try_load(path))):
            start = time.time()
            ok, text = attempt()
            result.trial(ok, None, time.time() - start, f"{name} -> {tool}: {text[:200]}")
            lines.append((name, tool, ("ok    " if ok else "FAILED") + " " + text))
    result.notes = ["each gives one sentence naming the input, no traceback"]
    return result, lines


# ------------------------------------------------------------------------------------------------------------ main
def table(results: list[Result]) -> str:
    header = ["fault", "trials", "outcome", "data lost (steps recomputed)", "time to recover / stop"]
    cells = [header] + [r.cells() for r in results]
    widths = [min(90, max(len(row[i]) for row in cells)) for i in range(len(header))]
    fmt = lambda row: " | ".join(c[:w].ljust(w) for c, w in zip(row, widths))  # noqa: E731
    return "\n".join([fmt(header), "-+-".join("-" * w for w in widths)] + [fmt(r) for r in cells[1:]])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer trials and records (a few minutes)")
    parser.add_argument("--only", default="kill9,sigterm,damaged,lost_host,corrupt,malformed")
    parser.add_argument("--root", default="", help="keep the drills' workdirs here (default: a temporary folder)")
    args = parser.parse_args(argv)
    only = set(args.only.split(","))
    root = args.root or tempfile.mkdtemp(prefix="mm1_drills-")
    os.makedirs(root, exist_ok=True)
    start, results, details = time.time(), [], []
    from mm1_jax.data import synthetic  # pylint: disable=import-outside-toplevel

    synthetic.ensure_generated()  # the tiny config's data, before any clock starts
    reference = []  # one uninterrupted run for the single-process drills

    def ref():
        if not reference:
            reference.append(reference_run(root, STEPS, EVERY))
        return reference[0]

    steps = [("kill9", lambda: [drill_kill9(root, 3 if args.quick else 10, reference=ref())]),
             ("sigterm", lambda: [drill_sigterm(root, 1 if args.quick else 3, reference=ref())]),
             ("damaged", lambda: drill_damaged(root, reference=ref())),
             ("lost_host", lambda: [drill_lost_host(root, 1 if args.quick else 2)]),
             ("corrupt", lambda: drill_corrupt(root, 200 if args.quick else 400)),
             ("malformed", lambda: [_keep(details, drill_malformed(root))])]
    for name, drill in steps:
        if name in only:
            t = time.time()
            results += drill()
            print(f"[{name}: {time.time() - t:.0f} s]", file=sys.stderr, flush=True)
    print(table(results))
    if details:
        print("\nmalformed inputs, what each gives:")
        for name, tool, text in details:
            print(f"  {name:32s} {tool:16s} {text[:160]}")
    print(f"\n{sum(r.ok for r in results)} of {len(results)} drills held; {time.time() - start:.0f} s; workdirs in "
          f"{root}")
    if not args.root:
        shutil.rmtree(root, ignore_errors=True)
    return 0 if all(r.ok for r in results) else 1


def _keep(details: list, pair: tuple[Result, list]) -> Result:
    details.extend(pair[1])
    return pair[0]


if __name__ == "__main__":
    sys.exit(main())
