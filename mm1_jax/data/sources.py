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
import re
import tarfile
import threading
import zlib
from typing import Any

from etils import epath

from mm1_jax.data import config as config_lib
from mm1_jax.data import coordinates
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
    """JSON-lines files, one record per non-empty line (random access through a line-offset index).

    With kind "sft", LLaVA records one per line: ShareGPTVideo's SFT files are such (ShareGPTVideo/
    train_video_and_instruction `video_instruction/train/sft/*.jsonl`, read as RifleZhang/LLaVA-Hound-DPO
    `llava_hound_dpo/llava/train/train.py` reads them: `load_data` takes a path containing "jsonl" one JSON object a
    line, `LazySupervisedDataset` reads its "video" joined under --video_folder and its "conversations"; the video
    processor, `.../languagebind/video/processing_video.py`, forces the "frames" backend, so "video" names a folder of
    frames, listed and name-sorted). Give the frames' root as the source's image_root."""

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
            for j, rec in enumerate(_load_json_list(path, "LLaVA JSON")):
                rec = rec if isinstance(rec, dict) else {"__error__": "wrong_schema"}
                rec.setdefault("__key__", f"{path.name}#{rec.get('id', j)}")
                rec["__folder__"] = str(path.parent)
                self._records.append(rec)

    def __len__(self) -> int:
        return len(self._records)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return self._records[i]


def _load_json_list(path: epath.Path, what: str) -> list:
    """A file holding one JSON list, or ValueError in one sentence naming the file."""
    try:
        items = json.loads(path.read_bytes())
    except ValueError as e:
        raise ValueError(f"{what} file {os.fspath(path)!r} is not valid JSON: {e}") from e
    if not isinstance(items, list):
        raise ValueError(f"{what} file {os.fspath(path)!r} must hold a JSON list, got {type(items).__name__}.")
    return items


def _wrong(key: str) -> dict[str, Any]:
    return {"__error__": "wrong_schema", "__key__": key}


def _text(value: Any) -> bool:
    return isinstance(value, str)


class VideoChat2Source:
    """VideoChat2's instruction files (OpenGVLab/VideoChat2-IT, one `train.json` per subset; read as OpenGVLab/
    Ask-Anything `video_chat2/dataset/it_dataset.py` `ITVidTrainDataset` reads them): a JSON list of
    {"video": path relative to the subset's video folder, "QA": [{"i": instruction, "q": question, "a": answer}, ...]},
    optionally with "start" and "end" (seconds; `get_anno` keeps both only when both are present, and the decord
    reader then samples within them). Each folder comes from `video_chat2/configs/instruction_data.py` (one video root
    per json file): give it as the source's image_root, or keep each train.json in its videos' folder and leave
    image_root empty (one source can then glob several subsets).

    Normalised to LLaVA's shape for `mm1_jax.data.examples`: the first QA's human turn is "<video>\n" + i + " " + q
    (`process_qa` joins the instruction and the first question with one space, end_signal " ", into the instruction
    it returns; in its conversation the instruction comes before the video turn and the question after it, a layout
    a LLaVA record cannot hold), then one human turn per later question (q only: the release uses the first QA's i
    alone) and a gpt turn per answer; an empty q (caption subsets) adds no human turn, as `process_qa` adds none.
    A clip becomes {"path", "start", "end"}, sampled within by `mm1_jax.data.video`'s `Clip` (frames
    round(start * fps) .. round(end * fps), MVBench's rule; the release's decord reader truncates, int(start * fps),
    and takes int((end - start) * fps) frames: at most one frame apart). What the release adds that is VideoChat2's
    own and not kept: the QA order shuffled per read (random_shuffle=True; here file order), the "###Human:" prompt
    with <Video></Video> and its " The video contains N frames sampled at ... seconds." message. A record without a
    string "video" or a non-empty "QA" list of {"a": str, "q"/"i": str when present}, or with a start / end that is not
    a number, is wrong_schema (skipped and counted)."""

    def __init__(self, paths: list[epath.Path]):
        self._records = []  # (raw record, key, folder)
        for path in paths:
            for j, rec in enumerate(_load_json_list(path, "VideoChat2 instruction")):
                self._records.append((rec, f"{path.name}#{j}", str(path.parent)))

    def __len__(self) -> int:
        return len(self._records)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return videochat2_record(*self._records[i])


def videochat2_record(rec: Any, key: str, folder: str) -> dict[str, Any]:
    """One VideoChat2 instruction record as a LLaVA video record (VideoChat2Source's docstring), or wrong_schema."""
    if not isinstance(rec, dict) or not _text(rec.get("video")) or not rec["video"]:
        return _wrong(key)
    qa = rec.get("QA")
    if not isinstance(qa, list) or not qa or not all(
            isinstance(x, dict) and _text(x.get("a")) and _text(x.get("q", "")) and _text(x.get("i", ""))
            for x in qa):
        return _wrong(key)
    video: Any = rec["video"]
    if "start" in rec and "end" in rec:
        bounds = (rec["start"], rec["end"])
        if not all(isinstance(b, (int, float)) and not isinstance(b, bool) for b in bounds):
            return _wrong(key)
        video = {"path": rec["video"], "start": float(bounds[0]), "end": float(bounds[1])}
    turns = []
    for j, item in enumerate(qa):
        question = item.get("q", "").strip()
        if j == 0:
            first = " ".join(t for t in (item.get("i", "").strip(), question) if t)
            turns.append({"from": "human", "value": "<video>\n" + first if first else "<video>"})
        elif question:
            turns.append({"from": "human", "value": question})
        turns.append({"from": "gpt", "value": item["a"]})
    return {"video": video, "conversations": turns, "__key__": key, "__folder__": folder}


ACTIVITYNET_VIDEO_EXTS = (".mp4", ".webm", ".mkv", ".avi", ".mov")  # ActivityNet v1.3's downloads are mp4/webm/mkv


class ActivityNetQASource:
    """ActivityNet-QA's official release (MILVLG/activitynet-qa `dataset/`, formats in its `dataset/README.md`):
    `<split>_q.json` a JSON list of {"video_name", "question", "question_id"} and `<split>_a.json` beside it a list of
    {"answer", "type", "question_id"} (train: 32,000 QA pairs on 3,200 videos). `path` names the `_q.json` files
    (a `_a.json` named with its `_q.json` is passed over); each question is one record. The videos are ActivityNet's
    (not in the release), named v_<video_name>.<ext> as ActivityNet's downloads are (Video-ChatGPT's
    run_inference_activitynet_qa.py looks them up so; a file named <video_name>.<ext> or a frame folder of either name
    is also found), in the source's image_root (default: the question file's folder), listed once when the source
    opens.

    Normalised to LLaVA's shape: human "<video>\n" + question (as released: lower case, no question mark; no answer
    prompt is added, MM1.5 states none), gpt the answer. A question without string video_name / question /
    question_id, or whose question_id has no answer with a string "answer", is wrong_schema (skipped and counted); a
    video found under neither name is given as v_<video_name>.mp4, which the example builder reports missing."""

    takes_video_root = True

    def __init__(self, paths: list[epath.Path], video_root: str = ""):
        names = {os.fspath(p) for p in paths}
        self._files, self._index, self._videos = [], [], {}
        for path in paths:
            name = os.fspath(path)
            if name.endswith("_a.json") and name[: -len("_a.json")] + "_q.json" in names:
                continue  # the answers of a question file also named
            if not name.endswith("_q.json"):
                raise ValueError(f"ActivityNet-QA file {name!r} is not a question file: name the <split>_q.json "
                                 "files (their answers are read from <split>_a.json beside them).")
            answers_path = epath.Path(name[: -len("_q.json")] + "_a.json")
            if not answers_path.exists():
                raise ValueError(f"ActivityNet-QA answers file {os.fspath(answers_path)!r} (for {name!r}) does not "
                                 "exist.")
            questions = _load_json_list(path, "ActivityNet-QA question")
            answers = {}
            for a in _load_json_list(answers_path, "ActivityNet-QA answers"):
                if isinstance(a, dict) and _text(a.get("question_id")):
                    answers[a["question_id"]] = a
            root = str(video_root or path.parent)
            if root not in self._videos:
                self._videos[root] = _video_names(root)
            self._index += [(len(self._files), j) for j in range(len(questions))]
            self._files.append((path.name, questions, answers, root))

    def __len__(self) -> int:
        return len(self._index)

    def __getitem__(self, i: int) -> dict[str, Any]:
        f, j = self._index[i]
        name, questions, answers, root = self._files[f]
        rec = questions[j]
        qid = rec.get("question_id") if isinstance(rec, dict) else None
        key = f"{name}#{qid if _text(qid) else j}"
        if not (isinstance(rec, dict) and _text(qid) and _text(rec.get("video_name")) and rec["video_name"]
                and _text(rec.get("question")) and _text(answers.get(qid, {}).get("answer"))):
            return _wrong(key)
        found = self._videos[root]
        stems = ("v_" + rec["video_name"], rec["video_name"])
        video = next((found[s] for s in stems if s in found), stems[0] + ACTIVITYNET_VIDEO_EXTS[0])
        return {"video": video, "question_id": qid, "__key__": key, "__folder__": root,
                "conversations": [{"from": "human", "value": "<video>\n" + rec["question"].strip()},
                                  {"from": "gpt", "value": answers[qid]["answer"]}]}


def _video_names(root: str) -> dict[str, str]:
    """{stem: name} of the videos (files with a video extension, or frame folders) directly in `root`, a file's
    extensions preferred in ACTIVITYNET_VIDEO_EXTS order; ValueError naming the folder when it does not exist."""
    folder = epath.Path(root)
    if not folder.is_dir():
        raise ValueError(f"ActivityNet-QA video folder {root!r} does not exist (set the source's image_root to the "
                         "folder of the ActivityNet videos).")
    out, rank = {}, {}
    for entry in folder.iterdir():
        stem, ext = os.path.splitext(entry.name)
        if ext.lower() in ACTIVITYNET_VIDEO_EXTS:
            r = ACTIVITYNET_VIDEO_EXTS.index(ext.lower())
        elif not ext and entry.is_dir():
            r = len(ACTIVITYNET_VIDEO_EXTS)
        else:
            continue
        if r < rank.get(stem, len(ACTIVITYNET_VIDEO_EXTS) + 1):
            out[stem], rank[stem] = entry.name, r
    return out


class FerretUIJsonSource:
    """Ferret-UI's training and evaluation files in its release format (apple/ml-ferret at 3c9e5c93,
    ferretui/playground/sample_data/*.json, read as ferretui/ferretui/train/train.py LazySupervisedDataset reads
    them): a JSON list of {"id", "image": path joined under the image folder (the source's image_root, default the
    file's folder), "image_h", "image_w": the screen's size in pixels, "conversations": LLaVA turns (human first,
    then alternating), "box_x1y1x2y2": one list per turn (possibly fewer lists than turns) of [x1, y1, x2, y2] pixel
    boxes}; the K-th box of a turn is written where the turn says <bbox_locationK>. Files without boxes (screen2words,
    detailed_description, ...) are plain LLaVA records and pass through.

    Each record becomes a LLaVA record (`ferret_ui_record`), the boxes written as text by the release's rule
    (`mm1_jax.data.coordinates`: the 0-999 grid of the WHOLE screen, image_w x image_h, whatever the split):
      * an assistant turn (odd index, as the release counts turns) always gets the box "[x1, y1, x2, y2]";
      * a human turn (even index) gets a box or its centre point "[x, y]", the release's random.choice(['point',
        'box']) per human turn made deterministic here (`ferret_ui_point_turn`: a hash of the record key and turn).
    Not kept (Ferret's own, which MM1.5 does not have): the " <region_fea>" token after a human turn's coordinates
    and its region mask (add_region_feature), the Gaussian jitter of a point when a record has no segment mask.
    Skipped and counted: a record that is not that shape, whose box is not 4 numbers, whose turn lacks the
    placeholder of one of its boxes or keeps a placeholder with no box (wrong_schema); a box that does not fit its
    screen (outside [0, image_w] x [0, image_h], or x2 < x1, y2 < y1: bad_box, with the sentence naming it) -- the
    release clamps such boxes into the image instead."""

    def __init__(self, paths: list[epath.Path]):
        self._records = []  # (raw record, key, folder)
        for path in paths:
            for j, rec in enumerate(_load_json_list(path, "Ferret-UI")):
                rid = rec.get("id", j) if isinstance(rec, dict) else j
                self._records.append((rec, f"{path.name}#{rid}", str(path.parent)))

    def __len__(self) -> int:
        return len(self._records)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return ferret_ui_record(*self._records[i])


FERRET_UI_PLACEHOLDER = re.compile(r"<bbox_location(\d+)>")  # ferretui train.py f'<bbox_location{box_idx}>'


def ferret_ui_point_turn(key: str, turn: int) -> bool:
    """Whether human turn `turn` of record `key` gives its regions as points (else boxes): the release draws
    random.choice(['point', 'box']) per human turn at every read; here a fixed half of the turns, by crc32."""
    return zlib.crc32(f"{key}|{turn}".encode()) % 2 == 1


def _bad_box(key: str, detail: str) -> dict[str, Any]:
    return {"__error__": "bad_box", "__key__": key, "__detail__": detail}


def ferret_ui_record(rec: Any, key: str, folder: str) -> dict[str, Any]:
    """One Ferret-UI record as a LLaVA record with its boxes as text (FerretUIJsonSource's docstring), or an error
    record (wrong_schema, bad_box)."""
    turns = rec.get("conversations") if isinstance(rec, dict) else None
    if not isinstance(turns, list) or not turns or not all(isinstance(t, dict) and _text(t.get("value"))
                                                           for t in turns):
        return _wrong(key)
    boxes = rec.get("box_x1y1x2y2") or []
    if not isinstance(boxes, list) or len(boxes) > len(turns) or not all(isinstance(b, list) for b in boxes):
        return _wrong(key)
    width, height = rec.get("image_w"), rec.get("image_h")
    if any(boxes) and not all(isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0
                              for v in (width, height)):
        return _wrong(key)
    out_turns = []
    for k, turn in enumerate(turns):
        value, regions = turn["value"], boxes[k] if k < len(boxes) else []
        as_point = k % 2 == 0 and bool(regions) and ferret_ui_point_turn(key, k)
        for j, box in enumerate(regions):
            marker = f"<bbox_location{j}>"
            if marker not in value or not isinstance(box, list) or len(box) != 4 or not all(
                    isinstance(v, (int, float)) and not isinstance(v, bool) for v in box):
                return _wrong(key)
            try:
                coordinates.check_box(box, width, height)
            except ValueError as e:
                return _bad_box(key, f"turn {k}, <bbox_location{j}>: {e}")
            text = (coordinates.point_to_text(coordinates.box_center(box, width, height), width, height) if as_point
                    else coordinates.box_to_text(box, width, height))
            value = value.replace(marker, text)
        if FERRET_UI_PLACEHOLDER.search(value):
            return _wrong(key)
        out_turns.append({**turn, "value": value})
    out = {k: v for k, v in rec.items() if k not in ("conversations", "box_x1y1x2y2")}
    out.update(conversations=out_turns, __key__=key, __folder__=folder)
    return out


READERS = {
    "wds": WebDatasetSource,
    "jsonl": JsonlSource,
    "parquet": ParquetSource,
    "arrayrecord": ArrayRecordSource,
    "llava_json": LlavaJsonSource,
    "videochat2_json": VideoChat2Source,
    "activitynet_qa": ActivityNetQASource,
    "ferret_ui_json": FerretUIJsonSource,
}


def open_source(src: dict[str, Any]):
    """The reader for one `sources` entry of the data config."""
    if src["format"] not in READERS:
        raise ValueError(
            f"Data source {src['name']!r}: format must be one of {config_lib.FORMATS}, got {src['format']!r}."
        )
    cls = READERS[src["format"]]
    paths = expand_paths(src["path"], src["name"])
    # a reader that resolves video names itself (ActivityNet-QA: v_<name>.<ext>) lists the videos' folder
    reader = cls(paths, video_root=src.get("image_root", "")) if getattr(cls, "takes_video_root", False) else cls(paths)
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
    the root) or {"path": ...}, a video file or a frame folder; {"path", "start", "end"} (seconds, VideoChat2's
    clips) samples within that clip. KeyError for a reference that is not a path; video.MissingVideo (a ValueError)
    when it does not exist; ValueError naming the file when it cannot be read."""
    clip = None
    if isinstance(ref, dict):
        if ref.get("start") is not None or ref.get("end") is not None:
            clip = video_lib.clip_of(ref)
        ref = ref.get("path") or ref.get("video")
    if not isinstance(ref, str) or not ref:
        raise KeyError(f"video reference {str(ref)[:80]!r} is not a path")
    path = epath.Path(ref) if ref.startswith(("/", "gs://")) else epath.Path(image_root or folder) / ref
    return video_lib.read_video(path, num_frames, rule, clip)
