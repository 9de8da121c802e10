"""Readers: random-access record sources over the formats users have, local or on a bucket (etils.epath).

Each source is a grain-compatible sequence: `len(src)` and `src[i] -> dict`. Records are plain dicts as stored
(bytes for images in tars and parquet, paths elsewhere); a record that cannot be parsed comes back as
`{"__error__": reason, "__key__": where}` so the pipeline skips and counts it instead of crashing.
"""

import base64
import bisect
import functools
import json
import os
import tarfile
import threading
from typing import Any

from etils import epath

from mm1_jax.data import config as config_lib
from mm1_jax.data import video as video_lib

IMAGE_EXTS = ("jpg", "jpeg", "png", "webp", "bmp")


def expand_paths(path: str, what: str) -> list[epath.Path]:
    """Files named by `path`: comma-separated files or globs, sorted; error naming the source if none match."""
    files = []
    for part in [p.strip() for p in str(path).split(",") if p.strip()]:
        p = epath.Path(part)
        if any(ch in part for ch in "*?["):
            parent, pattern = _split_glob(part)
            files += sorted(epath.Path(parent).glob(pattern))
        elif p.exists():
            files.append(p)
    if not files:
        raise FileNotFoundError(f"Data source {what!r}: no files match path {path!r}.")
    return files


def _split_glob(pattern: str) -> tuple[str, str]:
    parts = pattern.split("/")
    i = next(i for i, s in enumerate(parts) if any(ch in s for ch in "*?["))
    return "/".join(parts[:i]) or ".", "/".join(parts[i:])


class _Handles:
    """Open file handles per process and thread (grain reads with threads and forks workers: never share one)."""

    def __init__(self):
        self._local = threading.local()

    def get(self, path: epath.Path):
        files = self.files()
        if path not in files:
            files[path] = path.open("rb")
        return files[path]

    def files(self) -> dict:
        if getattr(self._local, "pid", None) != os.getpid():
            self._local.pid, self._local.files = os.getpid(), {}
        return self._local.files

    def __getstate__(self):
        return {}

    def __setstate__(self, _):
        self.__init__()


def _version(path: epath.Path) -> tuple[int, int, int]:
    """(size, modification time in ns, inode) of a local file; size and modification time elsewhere (a bucket)."""
    try:
        st = os.stat(str(path))
        return st.st_size, st.st_mtime_ns, st.st_ino
    except OSError:
        st = path.stat()
        return int(st.length), int(st.mtime), 0


@functools.lru_cache(maxsize=4096)
def _tar_members(path: str, size: int, mtime: int, inode: int) -> tuple[tuple[str, dict[str, tuple[int, int]]], ...]:
    """((key, {ext: (offset, size)}), ...) of one tar shard, read once per process for a given size and modification
    time: reading every member header is most of opening a source, and a trainer, its evaluator and a restart all
    open the same shards."""
    del size, mtime, inode  # the cache key: a shard written again is read again
    groups: dict[str, dict[str, tuple[int, int]]] = {}
    with epath.Path(path).open("rb") as f, tarfile.open(fileobj=f, mode="r:") as tar:
        for m in tar:
            if not m.isfile():
                continue
            base = os.path.basename(m.name)
            key, _, ext = base.partition(".")
            key = os.path.join(os.path.dirname(m.name), key)
            groups.setdefault(key, {})[ext.lower()] = (m.offset_data, m.size)
    return tuple(groups.items())


class WebDatasetSource:
    """Webdataset tar shards: members `key.ext` grouped by key into {"jpg": bytes, "txt": str, "json": dict...}."""

    def __init__(self, paths: list[epath.Path]):
        self._index = []  # (path, key, {ext: (offset, size)})
        for path in paths:
            self._index += [(path, k, v) for k, v in _tar_members(str(path), *_version(path))]
        self._handles = _Handles()

    def __len__(self) -> int:
        return len(self._index)

    def __getitem__(self, i: int) -> dict[str, Any]:
        path, key, members = self._index[i]
        f = self._handles.get(path)
        rec = {"__key__": f"{path.name}:{key}"}
        for ext, (offset, size) in members.items():
            f.seek(offset)
            data = f.read(size)
            if ext == "txt":
                rec["txt"] = data.decode("utf-8", errors="replace")
            elif ext == "json":
                try:
                    rec["json"] = json.loads(data)
                except ValueError:
                    return {"__error__": "bad_json", "__key__": rec["__key__"]}
            else:
                rec[ext] = data
        return rec


class JsonlSource:
    """JSON-lines files, one record per non-empty line (random access through a line-offset index)."""

    def __init__(self, paths: list[epath.Path]):
        self._index = []  # (path, offset)
        for path in paths:
            with path.open("rb") as f:
                offset = 0
                for line in f:
                    if line.strip():
                        self._index.append((path, offset))
                    offset += len(line)
        self._handles = _Handles()

    def __len__(self) -> int:
        return len(self._index)

    def __getitem__(self, i: int) -> dict[str, Any]:
        path, offset = self._index[i]
        f = self._handles.get(path)
        f.seek(offset)
        return _parse_json(f.readline(), f"{path.name}:byte{offset}", path.parent)


def _parse_json(data: bytes, key: str, folder: epath.Path) -> dict[str, Any]:
    try:
        rec = json.loads(data)
    except ValueError:
        return {"__error__": "bad_json", "__key__": key}
    if not isinstance(rec, dict):
        return {"__error__": "wrong_schema", "__key__": key}
    rec.setdefault("__key__", key)
    rec["__folder__"] = str(folder)
    return rec


class ParquetSource:
    """Parquet files; rows as dicts. A few decoded row groups are cached, so keep row groups modest (~1k rows)."""

    def __init__(self, paths: list[epath.Path]):
        import pyarrow.parquet as pq  # pylint: disable=g-import-not-at-top

        self._groups, self._starts, total = [], [], 0  # (path, row group)
        for path in paths:
            with path.open("rb") as f:
                meta = pq.ParquetFile(f).metadata
            for g in range(meta.num_row_groups):
                self._groups.append((path, g))
                self._starts.append(total)
                total += meta.row_group(g).num_rows
        self._len = total
        self._handles = _Handles()
        self._cache = _Handles()  # per-thread cache of decoded row groups

    def __len__(self) -> int:
        return self._len

    def __getitem__(self, i: int) -> dict[str, Any]:
        import pyarrow.parquet as pq  # pylint: disable=g-import-not-at-top

        g = bisect.bisect_right(self._starts, i) - 1
        cache = self._cache.files()
        if g not in cache:
            path, group = self._groups[g]
            rows = pq.ParquetFile(self._handles.get(path)).read_row_group(group).to_pylist()
            if len(cache) >= 4:
                cache.pop(next(iter(cache)))
            cache[g] = rows
        path = self._groups[g][0]
        rec = dict(cache[g][i - self._starts[g]])
        rec.setdefault("__key__", f"{path.name}:row{i - self._starts[g]}")
        rec["__folder__"] = str(path.parent)
        return rec


class ArrayRecordSource:
    """ArrayRecord files whose records are utf-8 JSON objects (images as paths, or {"b64": ...} bytes)."""

    def __init__(self, paths: list[epath.Path]):
        from grain.sources import ArrayRecordDataSource  # pylint: disable=g-import-not-at-top

        self._paths = paths
        self._src = ArrayRecordDataSource([os.fspath(p) for p in paths])

    def __len__(self) -> int:
        return len(self._src)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return _parse_json(self._src[i], f"arrayrecord#{i}", self._paths[0].parent)


class LlavaJsonSource:
    """LLaVA SFT files: one JSON list of {"image": path(s), "conversations": [{"from", "value"}...]}; a video record
    has {"video": path(s)} instead or as well (a video file or a folder of frames, relative to the source's image_root
    or the JSON file's folder) and a <video> placeholder in its human turn, as LLaVA-Hound / ShareGPTVideo
    (RifleZhang/LLaVA-Hound-DPO: llava/constants.py DEFAULT_X_TOKEN["VIDEO"] = "<video>", llava/train/train.py reads
    `video` under the video folder) and LLaVA-Video-178K's files have it. `mm1_jax.data.examples` expands each video
    into data.video.frames image entries."""

    def __init__(self, paths: list[epath.Path]):
        self._records = []
        for path in paths:
            try:
                items = json.loads(path.read_bytes())
            except ValueError as e:
                raise ValueError(f"LLaVA JSON file {os.fspath(path)!r} is not valid JSON: {e}") from e
            if not isinstance(items, list):
                raise ValueError(f"LLaVA JSON file {os.fspath(path)!r} must hold a list, got {type(items).__name__}.")
            for j, rec in enumerate(items):
                rec = rec if isinstance(rec, dict) else {"__error__": "wrong_schema"}
                rec.setdefault("__key__", f"{path.name}#{rec.get('id', j)}")
                rec["__folder__"] = str(path.parent)
                self._records.append(rec)

    def __len__(self) -> int:
        return len(self._records)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return self._records[i]


READERS = {
    "wds": WebDatasetSource,
    "jsonl": JsonlSource,
    "parquet": ParquetSource,
    "arrayrecord": ArrayRecordSource,
    "llava_json": LlavaJsonSource,
}


def open_source(src: dict[str, Any]):
    """The reader for one `sources` entry of the data config."""
    if src["format"] not in READERS:
        raise ValueError(
            f"Data source {src['name']!r}: format must be one of {config_lib.FORMATS}, got {src['format']!r}."
        )
    reader = READERS[src["format"]](expand_paths(src["path"], src["name"]))
    if len(reader) == 0:
        raise ValueError(f"Data source {src['name']!r}: path {src['path']!r} holds no records.")
    return reader


def read_image_ref(ref: Any, folder: str, image_root: str = "") -> bytes:
    """Encoded bytes of an image given as bytes, {"bytes": ...}, {"b64": ...} or a path (relative to the root)."""
    if isinstance(ref, (bytes, bytearray)):
        return bytes(ref)
    if isinstance(ref, dict):
        if ref.get("bytes"):
            return bytes(ref["bytes"])
        if ref.get("b64"):
            return base64.b64decode(ref["b64"])
        ref = ref.get("path") or ref.get("image_name") or ref.get("url")
    if not isinstance(ref, str) or not ref:
        raise KeyError(f"image reference {str(ref)[:80]!r} is neither bytes nor a path")
    path = epath.Path(ref) if ref.startswith(("/", "gs://")) else epath.Path(image_root or folder) / ref
    try:
        return path.read_bytes()
    except (FileNotFoundError, IsADirectoryError) as e:
        raise FileNotFoundError(f"image file {os.fspath(path)!r} does not exist") from e


def read_video_ref(ref: Any, folder: str, image_root: str, num_frames: int, rule: str):
    """uint8 [num_frames, H, W, 3]: the sampled frames (`mm1_jax.data.video`) of a video given as a path (relative to
    the root) or {"path": ...}, a video file or a frame folder. KeyError for a reference that is not a path;
    video.MissingVideo (a ValueError) when it does not exist; ValueError naming the file when it cannot be read."""
    if isinstance(ref, dict):
        ref = ref.get("path") or ref.get("video")
    if not isinstance(ref, str) or not ref:
        raise KeyError(f"video reference {str(ref)[:80]!r} is not a path")
    path = epath.Path(ref) if ref.startswith(("/", "gs://")) else epath.Path(image_root or folder) / ref
    return video_lib.read_video(path, num_frames, rule)
