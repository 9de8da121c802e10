"""The world's videos: a few seconds of shapes that appear one after another, one of them moving and perhaps one
changing colour (`video_scene`), drawn frame by frame (`render_video`), encoded as real video files with PyAV
(`video_bytes`: H.264 in .mp4; MPEG-4 Part 2 in .mp4 where the FFmpeg build has no H.264 encoder), and the questions
a scene answers (`video_question`).

A clip has 16, 24 or 32 frames (`VIDEO_FRAMES`, at `VIDEO_FPS` = 8: 2-4 s) of 64 or 96 px (`VIDEO_SIZES`), cut
into `PHASES` = 4 equal phases. 1-4 shapes of distinct colours appear, each at the first frame of its own phase (the
first at frame 0), and stay to the end. One shape that appears in phase 0 or 1 moves (left, right, up or down) by two
cells of the 3 x 3 grid, evenly from its appearance to the last frame, along a row (column) no other shape uses; with
probability 0.6 one still shape that has appeared by phase 2 turns a colour no shape has at the first frame of a
later phase. Every event happens at a phase boundary, so a sampling with two frames in every phase sees it (the
'uniform' rule at 8 frames does for 16, 24 and 32 frames: 1,3 | 5,7 | 8,10 | 12,14 of 16). A shape is named by its
first colour ("the red circle").

Questions (`VIDEO_QUESTIONS`; each with 4 options, for multiple choice):
  order      "which shape appears first ?" / "... last ?"   "the red circle ."  (2+ shapes)
  direction  "which way does the red circle move ?"          "left ." / "right ." / "up ." / "down ."
  count      "how many shapes appear ?"                      "three ."
  colour     "what colour does the green square turn ?"     "blue ."  (options hold its first colour)
"""
from __future__ import annotations

import functools
import io
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from mm1_jax.data.synthetic.images import _draw_shape
from mm1_jax.data.synthetic.world import COLOUR_NAMES, COLOURS, COUNTS, SHAPES, pick

VIDEO_FPS = 8
VIDEO_FRAMES = (16, 24, 32)
VIDEO_SIZES = (64, 96)
PHASES = 4
BACKGROUND = (235, 235, 235)
DIRECTIONS = {"left": (-1, 0), "right": (1, 0), "up": (0, -1), "down": (0, 1)}
VIDEO_QUESTIONS = ("order", "direction", "count", "colour")
TURN_PROBABILITY = 0.6


def phase_frame(phase: int, frames: int) -> int:
    """The first frame of `phase` in a clip of `frames` frames."""
    return phase * frames // PHASES


def video_scene(rng: np.random.Generator, need: str | None = None) -> dict[str, Any]:
    """A clip's description: dict(frames, size, objects) with each object's colour, shape, side, appear (its first
    frame), start / end (top-left corner at its first and last frame), move (a direction or None) and turn
    ((frame, colour) or None), in order of appearance. `need`: a question kind the scene must answer (drawn again
    until it does)."""
    while True:
        scene = _draw_scene(rng)
        if need is None or need in question_kinds(scene):
            return scene


def _draw_scene(rng: np.random.Generator) -> dict[str, Any]:
    frames, size = pick(rng, VIDEO_FRAMES), pick(rng, VIDEO_SIZES)
    cell = size // 3
    n = int(rng.integers(1, 5))
    phases = [0] + sorted(int(p) for p in rng.choice([1, 2, 3], n - 1, replace=False))
    colours = [COLOUR_NAMES[int(c)] for c in rng.choice(len(COLOUR_NAMES), n, replace=False)]
    mover = int(rng.integers(2 if n > 1 and phases[1] == 1 else 1))
    direction = pick(rng, tuple(DIRECTIONS))
    dx, dy = DIRECTIONS[direction]
    lane = int(rng.integers(3))  # the mover's row (left / right) or column (up / down)
    free = [c for c in range(9) if (c // 3 if dx else c % 3) != lane]
    cells = [int(c) for c in rng.choice(free, n - 1, replace=False)]
    objects = []
    for i in range(n):
        side = int(rng.integers(size // 6, size // 4 + 1))
        jx, jy = int(rng.integers(cell - side + 1)), int(rng.integers(cell - side + 1))
        if i == mover:
            col = (0 if dx > 0 else 2) if dx else lane
            row = (0 if dy > 0 else 2) if dy else lane
            start = (col * cell + jx, row * cell + jy)
            end = (start[0] + 2 * cell * dx, start[1] + 2 * cell * dy)
        else:
            row, col = divmod(cells.pop(0), 3)
            start = end = (col * cell + jx, row * cell + jy)
        objects.append(dict(colour=colours[i], shape=pick(rng, SHAPES), side=side,
                            appear=phase_frame(phases[i], frames), start=start, end=end,
                            move=direction if i == mover else None, turn=None))
    still = [i for i in range(n) if i != mover and phases[i] <= 2]
    if still and rng.random() < TURN_PROBABILITY:
        i = pick(rng, still)
        unused = [c for c in COLOUR_NAMES if c not in colours]
        objects[i]["turn"] = (phase_frame(int(rng.integers(phases[i] + 1, PHASES)), frames), pick(rng, unused))
    return dict(frames=frames, size=size, objects=objects)


def object_at(obj: dict[str, Any], t: int, frames: int) -> tuple[str, tuple[int, int, int, int]] | None:
    """(colour, box) of an object at frame t, None before it appears."""
    if t < obj["appear"]:
        return None
    span = frames - 1 - obj["appear"]
    f = (t - obj["appear"]) / span if span > 0 else 0.0
    x = round(obj["start"][0] + f * (obj["end"][0] - obj["start"][0]))
    y = round(obj["start"][1] + f * (obj["end"][1] - obj["start"][1]))
    colour = obj["turn"][1] if obj["turn"] and t >= obj["turn"][0] else obj["colour"]
    return colour, (x, y, x + obj["side"] - 1, y + obj["side"] - 1)


def render_video(scene: dict[str, Any]) -> np.ndarray:
    """The clip's pixels, uint8 RGB [frames, size, size, 3]."""
    out = np.empty((scene["frames"], scene["size"], scene["size"], 3), np.uint8)
    for t in range(scene["frames"]):
        img = Image.new("RGB", (scene["size"], scene["size"]), BACKGROUND)
        draw = ImageDraw.Draw(img)
        for obj in scene["objects"]:
            now = object_at(obj, t, scene["frames"])
            if now:
                _draw_shape(draw, obj["shape"], now[1], COLOURS[now[0]])
        out[t] = np.asarray(img)
    return out


@functools.cache
def video_codec() -> str:
    """The encoder the world's videos are written with: H.264 (libx264), else MPEG-4 Part 2 (FFmpeg's own)."""
    import av  # pylint: disable=import-outside-toplevel

    for name in ("libx264", "h264", "mpeg4"):
        try:
            av.codec.Codec(name, "w")
            return name
        except ValueError:  # av.codec.codec.UnknownCodecError
            continue
    raise RuntimeError("this PyAV's FFmpeg has neither an H.264 nor an MPEG-4 encoder to write the world's videos.")


def video_bytes(frames: np.ndarray, fps: int = VIDEO_FPS, codec: str | None = None) -> bytes:
    """uint8 RGB frames [T, H, W, 3] (H, W even) as an .mp4 file's bytes, yuv420p: H.264 at CRF 12 without B-frames
    (MPEG-4 Part 2 at 4 Mb/s where `video_codec` finds no H.264), one encoder thread (the same bytes on every
    machine). Read back, the pixels are the frames' within 2/255 on average (chroma subsampling blurs the edges)."""
    import av  # pylint: disable=import-outside-toplevel

    codec = codec or video_codec()
    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height = int(frames.shape[2]), int(frames.shape[1])
        stream.pix_fmt = "yuv420p"
        stream.codec_context.thread_count = 1
        if codec == "mpeg4":
            stream.bit_rate = 4_000_000
        else:
            stream.options = {"crf": "12", "preset": "veryfast", "tune": "zerolatency"}  # no B-frames
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")))
        container.mux(stream.encode())
    return buf.getvalue()


def name(obj: dict[str, Any]) -> str:
    """"the red circle": an object by its first colour."""
    return f"the {obj['colour']} {obj['shape']}"


def question_kinds(scene: dict[str, Any]) -> list[str]:
    """The question kinds the scene answers (order needs 2+ shapes, colour a shape that turns)."""
    objs = scene["objects"]
    return [k for k in VIDEO_QUESTIONS
            if k in ("direction", "count") or (k == "order" and len(objs) > 1)
            or (k == "colour" and any(o["turn"] for o in objs))]


def video_question(rng: np.random.Generator, scene: dict[str, Any], kind: str) -> dict[str, Any]:
    """A question of `kind` about the scene: dict(type, question, answer, options (4, the answer among them, in a
    drawn order), answer_index)."""
    objs = scene["objects"]
    if kind == "order":
        last = bool(rng.integers(2))
        target = objs[-1] if last else objs[0]
        question = f"which shape appears {'last' if last else 'first'} ?"
        seen = {(c, o["shape"]) for o in objs for c in (o["colour"], *(o["turn"][1:] if o["turn"] else ()))}
        others = [f"the {c} {s}" for c in COLOUR_NAMES for s in SHAPES if (c, s) not in seen]
        picks = [name(o) for o in objs if o is not target]
        picks += [others[int(j)] for j in rng.choice(len(others), 3 - len(picks), replace=False)]
        answer, wrong = name(target), picks
    elif kind == "direction":
        mover = next(o for o in objs if o["move"])
        question, answer = f"which way does {name(mover)} move ?", mover["move"]
        wrong = [d for d in DIRECTIONS if d != answer]
    elif kind == "count":
        question, answer = "how many shapes appear ?", COUNTS[len(objs)]
        wrong = [COUNTS[k] for k in range(1, 5) if k != len(objs)]
    elif kind == "colour":
        obj = next(o for o in objs if o["turn"])
        question, answer = f"what colour does {name(obj)} turn ?", obj["turn"][1]
        rest = [c for c in COLOUR_NAMES if c not in (answer, obj["colour"])]
        wrong = [obj["colour"]] + [rest[int(j)] for j in rng.choice(len(rest), 2, replace=False)]
    else:
        raise ValueError(f"video question kind {kind!r} is not one of {', '.join(VIDEO_QUESTIONS)}.")
    options = [f"{o} ." for o in [answer, *wrong]]
    order = [int(j) for j in rng.permutation(len(options))]
    return dict(type=kind, question=question, answer=f"{answer} .", options=[options[j] for j in order],
                answer_index=order.index(0))
