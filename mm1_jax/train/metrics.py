"""Metrics: a console progress line, metrics.jsonl and TensorBoard event files in the workdir (host 0 only).

TensorBoard's event format is written directly (TFRecord framing + a hand-encoded `Event` protobuf holding scalar
summaries) so neither tensorflow nor tensorboard is a dependency; `tensorboard --logdir=WORKDIR/tb` reads it.
"""
from __future__ import annotations

import json
import os
import socket
import struct
import time
from typing import Any

import jax


# --- TFRecord framing with masked CRC-32C (Castagnoli)
def _crc_table() -> list[int]:
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_TABLE = _crc_table()


def crc32c(data: bytes) -> int:
    c = 0xFFFFFFFF
    for b in data:
        c = _TABLE[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


def _masked(data: bytes) -> int:
    c = crc32c(data)
    return (((c >> 15) | (c << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def _record(data: bytes) -> bytes:
    header = struct.pack("<Q", len(data))
    return header + struct.pack("<I", _masked(header)) + data + struct.pack("<I", _masked(data))


# --- just enough protobuf: Event{wall_time=1 double, step=2 int64, file_version=3 string, summary=5 Summary},
# Summary{value=1 repeated Value}, Value{tag=1 string, simple_value=2 float}
def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b, n = n & 0x7F, n >> 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _field_bytes(num: int, payload: bytes) -> bytes:
    return _varint(num << 3 | 2) + _varint(len(payload)) + payload


def _event(step: int, wall_time: float, *, summary: bytes | None = None, file_version: str | None = None) -> bytes:
    out = _varint(1 << 3 | 1) + struct.pack("<d", wall_time) + _varint(2 << 3 | 0) + _varint(step)
    if file_version is not None:
        out += _field_bytes(3, file_version.encode())
    if summary is not None:
        out += _field_bytes(5, summary)
    return out


def _scalar_summary(values: dict[str, float]) -> bytes:
    out = b""
    for tag, v in values.items():
        value = _field_bytes(1, tag.encode()) + _varint(2 << 3 | 5) + struct.pack("<f", float(v))
        out += _field_bytes(1, value)
    return out


class TensorBoardWriter:
    """Scalars into an `events.out.tfevents.*` file."""

    def __init__(self, logdir: str):
        os.makedirs(logdir, exist_ok=True)
        name = f"events.out.tfevents.{int(time.time())}.{socket.gethostname()}"
        self._f = open(os.path.join(logdir, name), "ab")
        self._f.write(_record(_event(0, time.time(), file_version="brain.Event:2")))

    def scalars(self, step: int, values: dict[str, float]):
        self._f.write(_record(_event(step, time.time(), summary=_scalar_summary(values))))
        self._f.flush()

    def close(self):
        self._f.close()


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
