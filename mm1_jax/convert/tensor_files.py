"""Reading and writing Hugging Face weight files one tensor at a time (safetensors; `.bin` through torch, safely).

`open_checkpoint(hf_dir)` returns a `TensorFiles`: a read-only Mapping name -> numpy array that knows every tensor's
shape and dtype from the file headers and reads a tensor's bytes only when it is asked for, so a conversion holds
one source tensor at a time. It understands `model.safetensors`, a sharded `model.safetensors.index.json`, and, for
old checkpoints, `pytorch_model.bin` (+ index) through `torch.load(weights_only=True)` (never a plain unpickle).
bfloat16 tensors come back as `ml_dtypes.bfloat16` numpy arrays.

`write_safetensors(path, tensors)` streams tensors to one file in the safetensors layout (8-byte header length,
JSON header, raw little-endian data), which transformers' `from_pretrained` reads.
"""
from __future__ import annotations

import json
import os
import struct
from typing import Any, Iterable, Iterator, Mapping

import ml_dtypes
import numpy as np

# safetensors dtype names <-> numpy dtypes (the ones weights use).
DTYPES = {"F64": np.float64, "F32": np.float32, "F16": np.float16, "BF16": ml_dtypes.bfloat16,
          "I64": np.int64, "I32": np.int32, "I16": np.int16, "I8": np.int8, "U8": np.uint8, "BOOL": np.bool_}
DTYPE_NAMES = {np.dtype(v): k for k, v in DTYPES.items()}
HEADER_LIMIT = 100 * 2**20  # safetensors' own bound on the JSON header


class CheckpointError(ValueError):
    """A weight file or checkpoint directory that cannot be read as it is; the message names the file."""


def _read_header(path: str) -> tuple[dict[str, tuple[str, tuple[int, ...], int, int]], int]:
    """{name: (dtype, shape, start, end)} with absolute byte offsets, checked against the file's size."""
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        raw = f.read(8)
        if len(raw) < 8:
            raise CheckpointError(f"{path} is not a safetensors file: it is only {size} bytes long.")
        (length,) = struct.unpack("<Q", raw)
        if length > min(HEADER_LIMIT, size - 8):
            raise CheckpointError(f"{path} is truncated or corrupt: its header claims {length} bytes "
                                  f"but the file has {size}.")
        try:
            header = json.loads(f.read(length))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise CheckpointError(f"{path} is corrupt: its header is not valid JSON ({e}).") from None
    base, entries, end = 8 + length, {}, 8 + length
    for name, info in header.items():
        if name == "__metadata__":
            continue
        dtype, shape, (start, stop) = info["dtype"], tuple(info["shape"]), info["data_offsets"]
        if dtype not in DTYPES:
            raise CheckpointError(f"{path}: tensor {name!r} has dtype {dtype}, which this reader does not know.")
        if stop - start != int(np.prod(shape, dtype=np.int64)) * np.dtype(DTYPES[dtype]).itemsize:
            raise CheckpointError(f"{path} is corrupt: tensor {name!r} of shape {list(shape)} {dtype} "
                                  f"spans {stop - start} bytes.")
        entries[name] = (dtype, shape, base + start, base + stop)
        end = max(end, base + stop)
    if end > size:
        raise CheckpointError(f"{path} is truncated: its tensors need {end} bytes but the file has {size}.")
    return entries, size


class TensorFiles(Mapping):
    """Lazy name -> np.ndarray over one or more weight files; `shapes` and `dtypes` come from headers alone."""

    def __init__(self, entries: dict[str, tuple[str, Any]], description: str):
        self._entries = entries  # name -> (file path, per-format info)
        self.description = description
        self._torch_cache: dict[str, Any] = {}

    def __getitem__(self, name: str) -> np.ndarray:
        if name not in self._entries:
            raise KeyError(name)
        path, info = self._entries[name]
        if path.endswith(".bin"):
            return _torch_tensor_to_numpy(self._torch_file(path)[name])
        dtype, shape, start, stop = info
        out = np.empty(shape, DTYPES[dtype])
        with open(path, "rb") as f:
            f.seek(start)
            got = f.readinto(memoryview(out.reshape(-1).view(np.uint8)))
        if got != stop - start:
            raise CheckpointError(f"{path} is truncated: tensor {name!r} ended after {got} of {stop - start} bytes.")
        return out

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def shape(self, name: str) -> tuple[int, ...]:
        path, info = self._entries[name]
        return tuple(self._torch_file(path)[name].shape) if path.endswith(".bin") else info[1]

    def dtype(self, name: str) -> np.dtype:
        path, info = self._entries[name]
        if path.endswith(".bin"):
            return _torch_tensor_to_numpy(self._torch_file(path)[name][..., :0]).dtype
        return np.dtype(DTYPES[info[0]])

    def files(self) -> list[str]:
        return sorted({path for path, _ in self._entries.values()})

    def _torch_file(self, path: str) -> Any:
        if path not in self._torch_cache:
            import torch  # only for legacy .bin checkpoints

            try:
                self._torch_cache = {path: torch.load(path, map_location="cpu", weights_only=True, mmap=True)}
            except Exception as e:  # noqa: BLE001  torch raises many kinds for a bad file
                raise CheckpointError(f"{path} cannot be read with torch.load(weights_only=True): {e}") from None
        return self._torch_cache[path]


def _torch_tensor_to_numpy(tensor: Any) -> np.ndarray:
    import torch

    tensor = tensor.detach().cpu().contiguous()
    if tensor.dtype == torch.bfloat16:
        return tensor.view(torch.int16).numpy().view(ml_dtypes.bfloat16).copy()
    return tensor.numpy().copy()


def open_checkpoint(hf_dir: str) -> TensorFiles:
    """The tensors of a Hugging Face model directory (single or sharded safetensors; `.bin` as a fallback)."""
    for index_name, single in (("model.safetensors.index.json", "model.safetensors"),
                               ("pytorch_model.bin.index.json", "pytorch_model.bin")):
        index_path, single_path = os.path.join(hf_dir, index_name), os.path.join(hf_dir, single)
        if os.path.exists(index_path):
            try:
                with open(index_path) as f:
                    weight_map = json.load(f)["weight_map"]
            except (json.JSONDecodeError, KeyError) as e:
                raise CheckpointError(f"{index_path} is not a valid index (no readable 'weight_map': {e}).") from None
            files = sorted(set(weight_map.values()))
            missing = [name for name in files if not os.path.exists(os.path.join(hf_dir, name))]
            if missing:
                raise CheckpointError(f"{index_path} lists shard files that are not there: {', '.join(missing)}.")
            entries = _entries_of(hf_dir, files)
            absent = sorted(set(weight_map) - set(entries))
            if absent:
                raise CheckpointError(f"{index_path} maps tensors that their shards do not hold: "
                                      f"{', '.join(absent[:5])}{' ...' if len(absent) > 5 else ''}.")
            return TensorFiles(entries, index_path)
        if os.path.exists(single_path):
            return TensorFiles(_entries_of(hf_dir, [single]), single_path)
    raise CheckpointError(f"{hf_dir} holds no model.safetensors, model.safetensors.index.json or pytorch_model.bin.")


def _entries_of(hf_dir: str, files: Iterable[str]) -> dict[str, tuple[str, Any]]:
    entries: dict[str, tuple[str, Any]] = {}
    for name in files:
        path = os.path.join(hf_dir, name)
        if path.endswith(".bin"):
            holder = TensorFiles({}, path)
            entries.update({key: (path, None) for key in holder._torch_file(path)})
        else:
            header, _ = _read_header(path)
            entries.update({key: (path, info) for key, info in header.items()})
    return entries


def write_safetensors(path: str, tensors: Iterable[tuple[str, np.ndarray]] | Mapping[str, np.ndarray],
                      metadata: Mapping[str, str] | None = None) -> int:
    """Write (name, array) pairs to `path` in the safetensors layout; returns the bytes of tensor data.

    A Mapping is written in its own order; arrays are made contiguous one at a time while writing.
    """
    items = list(tensors.items()) if isinstance(tensors, Mapping) else list(tensors)
    header: dict[str, Any] = {"__metadata__": dict(metadata or {"format": "pt"})}
    offset = 0
    for name, array in items:
        dtype = np.dtype(array.dtype)
        if dtype not in DTYPE_NAMES:
            raise ValueError(f"tensor {name!r} has dtype {dtype}, which safetensors cannot store.")
        nbytes = int(np.prod(array.shape, dtype=np.int64)) * dtype.itemsize
        header[name] = {"dtype": DTYPE_NAMES[dtype], "shape": list(array.shape), "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)  # align the data to 8 bytes, as the reference writer does
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(raw)))
        f.write(raw)
        for _, array in items:
            f.write(memoryview(np.ascontiguousarray(array).reshape(-1).view(np.uint8)))
    return offset
