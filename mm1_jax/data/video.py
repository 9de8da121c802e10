"""Video: which frames to take from a clip, and those frames as uint8 RGB pixels from a video file or a frame folder.

A video reaches the model as `data.video.frames` images, each taking tokens_per_image tokens and never split
(MM1.5-Video, arXiv 2409.20566: 24 frames, 144 tokens each, 3,456 image tokens per video; mPLUG-Owl3: 8 frames).
Each frame then takes the one path images take (`mm1_jax.data.images.whole_image`).

Sampling rules, `sample_indices(n, k, rule)` for a clip of n frames (indices 0 .. n-1), always k indices:

- "uniform" (MM1.5-Video's "24 frames sampled uniformly"; the paper gives no formula and no code was released, so we
  take the one in Apple's SlowFast-LLaVA release, the training-free video baseline by the same team:
  apple/ml-slowfast-llava `dataset.py` `get_seq_frames`): s = (n - 1) / k; frame i is the midpoint of segment i,
  (round(s*i) + round(s*(i+1))) // 2, round being numpy's (half to even). n=100, k=24: 2, 6, 10, 14, 18, 23, 27, 31,
  35, 39, 43, 47, 52, 56, 60, 64, 68, 72, 76, 80, 84, 89, 93, 97. Its (n-1)/k segments repeat one frame when n == k.
- "owl3" (mPLUG-Owl3's release, X-PLUG/mPLUG-Owl `mPLUG-Owl3/evaluation/tasks/task_define/video_utils.py`
  `get_frame_indices(sample="middle")`, num_frames=8 by default there): edges = int(linspace(0, n, m + 1)) with
  m = min(k, n); frame i = (edges[i] + edges[i+1] - 1) // 2 (the centre of segment i); when n < k the list is padded
  with its last frame. n=100, k=8: 5, 18, 30, 43, 55, 68, 80, 93.
- "linspace" (LLaVA-NeXT-Video / LLaVA-Video's releases): int(linspace(0, n - 1, k)), truncated toward zero; first
  and last frames included. n=100, k=24: 0, 4, 8, 12, 17, ...
- "mvbench" (MVBench's evaluation, OpenGVLab/Ask-Anything `video_chat2/mvbench.ipynb` `MVBench_dataset.get_index`,
  num_segments=16 there): s = (n - 1) / k; frame i = int(s / 2 + round(s * i)), round half to even.
  n=100, k=16: 3, 9, 15, 21, 28, 34, 40, 46, 52, 58, 65, 71, 77, 83, 89, 96.

A `Clip` (start, end in seconds) restricts a video to the frames a benchmark asks about, as MVBench's `get_index`
does for its bound tasks: frames round(start * fps) .. min(round(end * fps), last frame), fps the stream's average
rate; a frame folder has no rate, so its clip gives one (MVBench's TVQA folders: 3 frames/s, files numbered from 1,
so the folder's first file is frame 1 and the clip starts at max(1, round(start * fps))). The rule then samples that
range as if it were the whole video.

A clip shorter than k frames is sampled with repetition by the same formula (SlowFast-LLaVA would instead take
min(n, k) frames, which makes a video's token count vary; Owl3 repeats the last frame), and the first such clip logs a
warning once per process.

A frame folder (its image files sorted by name, digits compared as numbers, so frame_9 < frame_10; ShareGPTVideo's
frame folders are read with a plain name sort, the same order for zero-padded names) reads as a video of those
frames. Videos decode with PyAV (FFmpeg), frames in stream order without seeking, converted to RGB.
An unreadable or truncated file, an unknown codec or a missing path raises one ValueError sentence naming it
(`MissingVideo`, a ValueError, when the path does not exist).
"""

from __future__ import annotations

import functools
import logging
import os
import re
from typing import NamedTuple

import numpy as np
from etils import epath

SAMPLING_RULES = ("uniform", "owl3", "linspace", "mvbench")
FRAME_EXTS = (".jpg", ".jpeg", ".png", ".webp", ".bmp")

_log = logging.getLogger(__name__)
_warned_short: set[int] = set()  # process ids that have logged the short-video warning


class MissingVideo(ValueError):
    """The video file or frame folder does not exist."""


def sample_indices(num_frames_in_video: int, num_frames: int, rule: str = "uniform", warn: bool = True
                   ) -> np.ndarray:
    """`num_frames` frame indices (int64, ascending, with repetition when the clip is shorter) of a clip of
    `num_frames_in_video` frames under `rule` (SAMPLING_RULES; the formulas in the module docstring); `warn`: say so
    (once per process) when the clip is shorter (the readers say it once the clip has decoded)."""
    n, k = int(num_frames_in_video), int(num_frames)
    if n < 1:
        raise ValueError(f"a video of {n} frames has no frame to sample.")
    if k < 1:
        raise ValueError(f"num_frames={k} must be a positive integer.")
    if rule == "uniform":
        s = (n - 1) / k
        starts = np.round(s * np.arange(k)).astype(np.int64)
        ends = np.round(s * np.arange(1, k + 1)).astype(np.int64)
        idx = (starts + ends) // 2
    elif rule == "owl3":
        m = min(k, n)
        edges = np.linspace(0, n, m + 1).astype(np.int64)
        idx = (edges[:-1] + edges[1:] - 1) // 2
        idx = np.concatenate([idx, np.full(k - m, idx[-1], np.int64)])
    elif rule == "linspace":
        idx = np.linspace(0, n - 1, k).astype(np.int64)
    elif rule == "mvbench":
        s = (n - 1) / k
        idx = (s / 2 + np.round(s * np.arange(k))).astype(np.int64)
    else:
        raise ValueError(f"video sampling rule {rule!r} is not one of {', '.join(SAMPLING_RULES)}.")
    if warn:
        _warn_short(n, k, rule)
    return idx


def _warn_short(n: int, k: int, rule: str) -> None:
    if n < k and os.getpid() not in _warned_short:
        _warned_short.add(os.getpid())
        _log.warning("A video has %d frames, fewer than the %d asked: its frames are sampled with repetition "
                     "(rule %r; said once per process).", n, k, rule)


class Clip(NamedTuple):
    """The part of a video a question is about, in seconds; `fps` the frame rate of a frame folder (a file has its
    own)."""

    start: float
    end: float
    fps: float | None = None


def clip_of(meta: dict) -> Clip | None:
    """The `Clip` an evaluation item's meta names (start / end seconds, fps for a frame folder), None when unclipped."""
    if meta.get("start") is None and meta.get("end") is None:
        return None
    fps = meta.get("fps")
    return Clip(float(meta.get("start") or 0.0), float(meta.get("end") if meta.get("end") is not None else 1e9),
                None if fps is None else float(fps))


def clip_range(clip: Clip | None, fps: float | None, n: int, first: int = 0) -> tuple[int, int]:
    """(lo, hi), the inclusive 0-based frame range of `clip` in a video of n frames at `fps` (MVBench's get_index;
    `first`=1 for a frame folder numbered from 1: its bounds count from 1, its file i is frame i + 1)."""
    if clip is None:
        return 0, n - 1
    if not fps:
        raise ValueError(f"a clip {clip.start:g}-{clip.end:g} s of a frame folder needs the folder's frame rate.")
    lo = max(first, round(clip.start * fps)) - first
    hi = min(round(clip.end * fps), n - 1 + first) - first
    if hi < lo:
        raise ValueError(f"the clip {clip.start:g}-{clip.end:g} s holds no frame of a video of {n} frames at "
                         f"{fps:g} frames/s.")
    return lo, hi


class Frame(NamedTuple):
    """Frame `index` of the `frames` that `rule` samples from the video at `path` (a file or a frame folder), within
    `clip` when given: an image reference, decoded when loaded (`frame_pixels`), so a video question holds no pixels
    until its prompt is built."""

    path: str
    index: int
    frames: int
    rule: str
    clip: Clip | None = None


def video_frames(path: str, frames: int, rule: str = "uniform", clip: Clip | None = None) -> list[Frame]:
    """The frame references of one video: what an evaluation item's images are for a video question."""
    return [Frame(str(path), i, int(frames), rule, clip) for i in range(int(frames))]


@functools.lru_cache(maxsize=2)  # a question's frames are loaded one after another: one decode per video
def _sampled(path: str, frames: int, rule: str, clip: Clip | None) -> np.ndarray:
    return read_video(path, frames, rule, clip)


def frame_pixels(frame: Frame) -> np.ndarray:
    """uint8 [H, W, 3] pixels of a `Frame` (its video decoded once for all of its frames)."""
    return _sampled(frame.path, frame.frames, frame.rule, frame.clip)[frame.index]


def read_video(path, num_frames: int, rule: str = "uniform", clip: Clip | None = None) -> np.ndarray:
    """The sampled frames of a video file or frame folder (local or any etils.epath filesystem), within `clip` when
    given, uint8 RGB [num_frames, H, W, 3]. ValueError in one sentence naming the path for anything that cannot be
    read."""
    p = epath.Path(path)
    if p.is_dir():
        return _read_folder(p, num_frames, rule, clip)
    if not p.exists():
        raise MissingVideo(f"video {os.fspath(p)!r} does not exist (neither a video file nor a frame folder).")
    return _read_file(p, num_frames, rule, clip)


def _natural_key(name: str):
    return [(0, int(t), "") if t.isdigit() else (1, 0, t) for t in re.split(r"(\d+)", name.lower())]


def frame_files(folder) -> list[epath.Path]:
    """The image files of a frame folder in frame order (names sorted, digit runs compared as numbers)."""
    folder = epath.Path(folder)
    files = [f for f in folder.iterdir() if f.name.lower().endswith(FRAME_EXTS) and not f.name.startswith(".")]
    return sorted(files, key=lambda f: _natural_key(f.name))


def _read_folder(folder: epath.Path, k: int, rule: str, clip: Clip | None = None) -> np.ndarray:
    from mm1_jax.data import images as images_lib  # pylint: disable=import-outside-toplevel

    files = frame_files(folder)
    if not files:
        raise ValueError(f"frame folder {os.fspath(folder)!r} holds no image files ({', '.join(FRAME_EXTS)}).")
    try:
        lo, hi = clip_range(clip, clip and clip.fps, len(files), first=1)
    except ValueError as e:
        raise ValueError(f"frame folder {os.fspath(folder)!r}: {e}") from None
    idx = lo + sample_indices(hi - lo + 1, k, rule, warn=False)
    decoded = {}
    for i in sorted(set(idx.tolist())):
        try:
            decoded[i] = np.asarray(images_lib.decode_image(files[i].read_bytes()), np.uint8)
        except ValueError as e:
            raise ValueError(f"frame {os.fspath(files[i])!r} of frame folder {os.fspath(folder)!r} cannot be "
                             f"decoded: {e}") from e
    shapes = {a.shape for a in decoded.values()}
    if len(shapes) > 1:
        raise ValueError(f"frame folder {os.fspath(folder)!r} mixes frame sizes {sorted(shapes)}; a video's frames "
                         "must all have one size.")
    _warn_short(hi - lo + 1, k, rule)
    return np.stack([decoded[i] for i in idx.tolist()])


def _read_file(path: epath.Path, k: int, rule: str, clip: Clip | None = None) -> np.ndarray:
    import av  # pylint: disable=import-outside-toplevel

    name = os.fspath(path)
    local = os.path.exists(name)
    n, i, lo, hi = 0, -1, 0, 0  # frames the header lists; the last frame decoded; the clip's frames
    try:
        n, fps = _count_frames(av, name if local else path.open("rb"))
        lo, hi = clip_range(clip, fps, n)
        idx = lo + sample_indices(hi - lo + 1, k, rule, warn=False)
        wanted, last = set(idx.tolist()), int(idx.max())
        frames = {}
        with av.open(name if local else path.open("rb")) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            for i, frame in enumerate(container.decode(stream)):
                if i in wanted:
                    frames[i] = frame.to_ndarray(format="rgb24")
                if i >= last:
                    break
    except (av.error.FFmpegError, ValueError, OSError, IndexError, KeyError, RuntimeError) as e:
        # FFmpeg's errors (its strerror without the errno and the path), ours above, and PyAV quirks on bad inputs
        reason = (getattr(e, "strerror", None) or str(e)).rstrip(".")
        if i >= 0:  # frames came out, then the data ended or broke
            raise ValueError(f"video {name!r} is truncated or corrupt: decoding stopped after {i + 1} of the {n} "
                             f"frames its header lists ({reason}).") from e
        raise ValueError(f"video {name!r} cannot be read: {reason}.") from e
    if last not in frames:
        raise ValueError(f"video {name!r} is truncated: its header lists {n} frames but only {i + 1} decode.")
    _warn_short(hi - lo + 1, k, rule)
    return np.stack([frames[j] for j in idx.tolist()])


def _count_frames(av, source) -> tuple[int, float | None]:
    """(frames, average frame rate) of the first video stream: the container's frame count when it keeps one, else its packets counted
    (demuxing only, no decoding). A count-less file (Matroska, WebM) whose packets end well before the duration its
    header gives (the video stream's own, or the file's when the video is its only stream) is truncated."""
    with av.open(source) as container:
        if not container.streams.video:
            raise ValueError("it has no video stream")
        stream = container.streams.video[0]
        if stream.codec_context is None or stream.codec_context.codec is None:
            raise ValueError("its video codec is unknown")
        fps = float(stream.average_rate) if stream.average_rate else None
        if stream.frames > 0:
            return int(stream.frames), fps
        n, last = 0, None
        for packet in container.demux(stream):
            if packet.size > 0:
                n, last = n + 1, packet
        if stream.duration is not None and stream.time_base is not None:
            expected = float(stream.duration * stream.time_base)
        elif len(container.streams) == 1 and container.duration:
            expected = container.duration / 1e6
        else:
            expected = None
        if n and expected and last.pts is not None and last.time_base is not None:
            start = float((stream.start_time or 0) * stream.time_base) if stream.time_base is not None else 0.0
            end = float((last.pts + (last.duration or 0)) * last.time_base) - start
            frame = 1 / float(stream.average_rate) if stream.average_rate else 0.0
            if end < expected - max(2 * frame, 0.01 * expected):
                raise ValueError(f"it is truncated: its frames end at {end:.3f} s of the {expected:.3f} s its header "
                                 "gives")
    if n == 0:
        raise ValueError("it holds no video frames")
    return n, fps
