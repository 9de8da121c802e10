"""Metrics: a console progress line, metrics.jsonl and TensorBoard event files in the workdir (host 0 only).

The event files are written with TensorBoard's own TF-free writer (`tensorboard.summary.writer`), so
`tensorboard --logdir=WORKDIR/tb` reads them and neither tensorflow nor torch is imported.
"""
from __future__ import annotations

import json
import os
import time
from typing import Any

import jax
from tensorboard.compat.proto import event_pb2, summary_pb2
from tensorboard.plugins.text import summary_v2 as text_summary
from tensorboard.summary.writer.event_file_writer import EventFileWriter


class TensorBoardWriter:
    """Scalars and text samples into an `events.out.tfevents.*` file."""

    def __init__(self, logdir: str):
        self._writer = EventFileWriter(logdir)

    def add(self, step: int, summary: summary_pb2.Summary):
        """One event holding `summary` (any TensorBoard plugin's summary protobuf)."""
        self._writer.add_event(event_pb2.Event(wall_time=time.time(), step=step, summary=summary))
        self._writer.flush()

    def scalars(self, step: int, values: dict[str, float]):
        self.add(step, summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag=tag, simple_value=float(v))
                                                   for tag, v in values.items()]))

    def text(self, step: int, tag: str, lines: list[str]):
        """Markdown text (TensorBoard's Text tab): one line per sample."""
        self.add(step, text_summary.text_pb(tag, "\n\n".join(lines)))

    def close(self):
        self._writer.close()


class MetricsLogger:
    """Writes on host 0 only; every host may call it."""

    def __init__(self, workdir: str, total_steps: int, enabled: bool = True):
        self.enabled = enabled and jax.process_index() == 0
        self.total_steps = total_steps
        if self.enabled:
            os.makedirs(workdir, exist_ok=True)
            self._jsonl = open(os.path.join(workdir, "metrics.jsonl"), "a")
            self._tb = TensorBoardWriter(os.path.join(workdir, "tb"))

    def write(self, step: int, values: dict[str, Any], *, console: bool = True):
        """Append a row (numbers go to TensorBoard too) and print the progress line."""
        if not self.enabled:
            return
        row = {"step": step, "time": round(time.time(), 3), **values}
        self._jsonl.write(json.dumps(row) + "\n")
        self._jsonl.flush()
        self._tb.scalars(step, {k: v for k, v in values.items() if isinstance(v, (int, float))})
        if console:
            print(progress_line(step, self.total_steps, values), flush=True)

    def text(self, step: int, key: str, lines: list[str]):
        """Sample outputs: printed and logged as one jsonl row."""
        if not self.enabled:
            return
        self._jsonl.write(json.dumps({"step": step, key: lines}) + "\n")
        self._jsonl.flush()
        self._tb.text(step, key, lines)
        for line in lines:
            print(f"  [{key} @ {step}] {line}", flush=True)

    def close(self):
        if self.enabled:
            self._jsonl.close()
            self._tb.close()


def eta(step: int, total: int, rate: float, every: dict[str, int], last_s: dict[str, float]) -> tuple[float | None, str]:
    """Seconds left at `step`: the remaining steps at `rate` (steps/s, hooks excluded) plus every remaining run of
    each periodic hook (`every[kind]` steps, 0 = at the last step only; all run at the last step) at its last
    measured duration `last_s[kind]`. The kinds not measured yet are returned, comma-joined, instead of a guess."""
    if not rate:
        return None, ""
    seconds, unknown = (total - step) / rate, []
    for kind, n in every.items():
        left = (total // n - (step - 1) // n + (1 if total % n else 0)) if n else 1  # runs in [step, total]
        if kind in last_s:
            seconds += left * last_s[kind]
        elif left:
            unknown.append(kind)
    return seconds, ",".join(unknown)


def progress_line(step: int, total: int, v: dict[str, Any]) -> str:
    eta = v.get("eta_s")
    eta_text = f"{int(eta) // 60:d}m{int(eta) % 60:02d}s" if eta is not None else "?"
    parts = [f"step {step}/{total}", f"loss {v.get('loss', float('nan')):.4f}", f"lr {v.get('lr', 0):.2e}",
             f"tok/s {v['tokens_per_s']:,.0f}" if v.get("tokens_per_s") else "tok/s ?",
             f"ETA {eta_text}" + (f" + {v['eta_excludes'].replace(',', ', ')} (not timed yet)"
                                  if v.get("eta_excludes") else "")]
    if v.get("skipped_records"):
        parts.append(f"skipped records {v['skipped_records']}")
    if v.get("nonfinite_skips"):
        parts.append(f"non-finite skips {v['nonfinite_skips']}")
    return " | ".join(parts)
