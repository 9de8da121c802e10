"""The embedded world's videos: real .mp4 files that read back as the frames drawn (within the codec's loss), questions
whose answers the decoded pixels bear out (worked out here from the pixels alone, not from the scene description),
SFT records that reach the model as data.video.frames whole images through the real pipeline, and the held-out video
tasks, whose frames come from their clip files."""
import json
import os

import av
import numpy as np
import pytest
from PIL import Image

from mm1_jax.data import images as images_lib
from mm1_jax.data import pipeline as pipeline_lib
from mm1_jax.data import synthetic, video
from mm1_jax.data.tokenizer import load_tokenizer

K, SIZE = 4, 16  # tokens per frame and frame size of the pipeline test
# MM1.5-Video's 'uniform' rule at 8 frames (SlowFast-LLaVA's segment midpoints), worked out by hand for the world's
# clip lengths: two sampled frames in every quarter, so every appearance, move and colour change is seen
UNIFORM_8 = {16: [1, 3, 5, 7, 8, 10, 12, 14], 24: [1, 4, 7, 10, 13, 15, 18, 21], 32: [2, 6, 10, 14, 17, 21, 25, 29]}
MAX_MEAN_ERROR = 3.0  # the codec's loss: mean absolute error per value in 0-255, over a clip (measured: under 2.4)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return synthetic.generate(str(tmp_path_factory.mktemp("world") / "w"), seed=0, scale=0.01)


def decode_all(path) -> np.ndarray:
    """Every frame of a video file in order, decoded with PyAV directly (not through mm1_jax.data.video)."""
    with av.open(str(path)) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])


# --- the pixels, read back


@pytest.mark.parametrize("codec", ["default", "mpeg4"])
def test_written_clips_read_back_as_drawn_within_the_codec_loss(tmp_path, codec):
    rng = np.random.default_rng(7)
    for i in range(6):
        scene = synthetic.video_scene(rng)
        frames = synthetic.render_video(scene)
        path = tmp_path / f"clip{i}.mp4"
        path.write_bytes(synthetic.video_bytes(frames, codec=None if codec == "default" else codec))
        with av.open(str(path)) as c:  # a real .mp4 of the codec named
            assert c.format.name.startswith("mov,mp4")
            default = "mpeg4" if synthetic.video_codec() == "mpeg4" else "h264"  # H.264 where FFmpeg has it
            assert c.streams.video[0].codec_context.name == (default if codec == "default" else "mpeg4")
            assert c.streams.video[0].frames == scene["frames"]
        back = video.read_video(str(path), scene["frames"], "linspace").astype(int)  # all frames, in order
        assert back.shape == frames.shape == (scene["frames"], scene["size"], scene["size"], 3)
        error = np.abs(back - frames).mean(axis=(1, 2, 3))
        assert error.mean() < MAX_MEAN_ERROR and error.max() < 2 * MAX_MEAN_ERROR, (codec, error)
        for o in scene["objects"]:  # each shape's centre is its colour in the decoded frames
            for t in (o["appear"], scene["frames"] - 1):
                colour, (x1, y1, x2, y2) = synthetic.videos.object_at(o, t, scene["frames"])
                cx, cy = (x1 + x2) // 2, (y1 + 2 * y2) // 3  # inside circles, squares and triangles alike
                assert np.abs(back[t, cy, cx] - synthetic.COLOURS[colour]).max() < 40, (o, t)


def test_same_seed_same_clip_bytes():
    def clips(seed):
        rng = np.random.default_rng([seed, 1])
        return [synthetic.video_record(rng, f"videos/v{i}.mp4") for i in range(8)]

    a, b, c = clips(3), clips(3), clips(4)
    assert a == b and all(x[0] != y[0] for x, y in zip(a, c))


# --- the answers, worked out from the decoded pixels


def blobs(frame: np.ndarray) -> dict[str, tuple[int, float, float, float]]:
    """colour -> (pixels, centre y, centre x, fill of its bounding box) for each world colour on the frame."""
    out = {}
    for name, rgb in synthetic.COLOURS.items():
        ys, xs = np.nonzero(np.abs(frame.astype(int) - rgb).sum(-1) < 70)
        if len(ys) >= 20:
            box = (ys.max() - ys.min() + 1) * (xs.max() - xs.min() + 1)
            out[name] = (len(ys), ys.mean(), xs.mean(), len(ys) / box)
    return out


def shape_of(fill: float) -> str:
    """A blob's shape from how much of its bounding box it fills (square 1, circle pi/4, triangle 1/2)."""
    return "square" if fill > 0.88 else "circle" if fill > 0.66 else "triangle"


def answer_from_pixels(frames: np.ndarray, question: str) -> str:
    """The answer to one of the world's video questions, from the frames alone."""
    seen = [blobs(f) for f in frames]
    counts = [len(s) for s in seen]
    first = {c: next(t for t, s in enumerate(seen) if c in s) for s in seen for c in s}
    last_seen = {c: max(t for t, s in enumerate(seen) if c in s) for c in first}
    named = lambda c, t: f"the {c} {shape_of(seen[t][c][3])} ."
    if question == "how many shapes appear ?":
        return f"{synthetic.COUNTS[counts[-1]]} ."
    if question == "which shape appears first ?":
        start = next(t for t, n in enumerate(counts) if n)
        (c,) = seen[start]  # one shape at the start
        return named(c, start)
    if question == "which shape appears last ?":  # the last colour to arrive where no colour has just gone
        def arrivals(t):
            gone = set(seen[t - 1]) - set(seen[t])
            return [c for c in set(seen[t]) - set(seen[t - 1])
                    if not any(abs(seen[t][c][1] - seen[t - 1][g][1]) + abs(seen[t][c][2] - seen[t - 1][g][2]) < 3
                               for g in gone)]
        t = max(t for t in range(1, len(counts)) if arrivals(t))
        (c,) = arrivals(t)
        return named(c, t)
    words = question.split()
    colour = words[words.index("the") + 1]
    if words[:3] == ["which", "way", "does"]:
        a, b = seen[first[colour]][colour], seen[last_seen[colour]][colour]
        dy, dx = b[1] - a[1], b[2] - a[2]
        assert max(abs(dx), abs(dy)) > 10, (question, dx, dy)  # two cells of the grid
        return (("right ." if dx > 0 else "left .") if abs(dx) > abs(dy) else ("down ." if dy > 0 else "up ."))
    if words[:4] == ["what", "colour", "does", "the"]:  # the colour that takes its place when it goes
        t = last_seen[colour] + 1
        old = seen[t - 1][colour]
        place = lambda c: abs(old[1] - seen[t][c][1]) + abs(old[2] - seen[t][c][2])
        (new,) = [c for c in set(seen[t]) - set(seen[t - 1]) if place(c) < 3]  # one colour, in the same place
        now = seen[t][new]
        assert words[5] == shape_of(old[3]) == shape_of(now[3]), (question, old, now)
        return f"{new} ."
    raise AssertionError(f"not a question of the world's videos: {question!r}")


def test_every_answer_is_what_the_pixels_show(world):
    asked, choice = set(), 0
    for folder in ("sft", "eval"):
        with open(os.path.join(world, folder, "video.json")) as f:
            records = json.load(f)
        assert len(records) == 8
        for r in records:
            frames = decode_all(os.path.join(world, folder, r["video"]))
            assert frames.shape[0] in synthetic.VIDEO_FRAMES and frames.shape[1] in synthetic.VIDEO_SIZES
            turns = r["conversations"]
            assert turns[0]["value"].startswith("<video>\n") and len(turns) in (2, 4, 6)
            for ask, reply in zip(turns[::2], turns[1::2]):
                question, listed = ask["value"].replace("<video>\n", "").split("?")
                question += "?"
                assert reply["value"] == answer_from_pixels(frames, question), (r["video"], question)
                if listed:  # a multiple-choice question: 4 options, the answer one of them
                    options = [o.strip() + " ." for o in listed.split(",")]
                    assert len(set(options)) == 4 and reply["value"] in options, (listed, reply)
                    choice += 1
                asked.add(" ".join(question.split()[:2]))
            if folder == "eval":
                assert len(set(r["options"])) == 4 and r["options"][r["answer_index"]] == turns[1]["value"]
    assert {"which shape", "which way", "how many", "what colour"} <= asked and choice > 0


def test_the_eval_kinds_and_options_over_many_clips():
    """40 held-out clips drawn (not written): each kind in turn, options the answer and 3 others; the colour
    question's options hold the shape's first colour (what a model that does not follow the change would say)."""
    rng = np.random.default_rng(11)
    for i in range(40):
        kind = synthetic.VIDEO_QUESTIONS[i % 4]
        scene = synthetic.video_scene(rng, need=kind)
        q = synthetic.video_question(rng, scene, kind)
        assert q["options"][q["answer_index"]] == q["answer"] and len(set(q["options"])) == 4
        frames = synthetic.render_video(scene)
        assert answer_from_pixels(frames, q["question"]) == q["answer"], (scene, q)
        if kind == "colour":
            turned = next(o for o in scene["objects"] if o["turn"])
            assert f"{turned['colour']} ." in q["options"]


# --- the pipeline


def test_video_sft_records_reach_the_model_as_sampled_whole_frames(world):
    dc = synthetic.embedded_data_config("main", directory=world, weights="caption:0,interleaved:0,text:0,vqa:0,video:1")
    assert dc.video.frames == 8 and dc.video.sampling == "uniform"
    with open(os.path.join(world, "sft", "video.json")) as f:
        records = json.load(f)
    expected = []  # each record's 8 frames as the model sees them: decoded here, sampled by the hand-worked indices
    for r in records:
        frames = decode_all(os.path.join(world, "sft", r["video"]))
        expected.append(np.stack([images_lib.whole_image(Image.fromarray(frames[i]), SIZE)
                                  for i in UNIFORM_8[len(frames)]]))
    it = pipeline_lib.build_pipeline(dc, seq_len=128, global_batch_size=4, tokens_per_image=K, image_size=SIZE,
                                     image_norm="clip", process_index=0, process_count=1)
    tok = load_tokenizer(dc.tokenizer)
    answers = {tuple(tok.encode(t["value"])) for r in records for t in r["conversations"][1::2]}
    batch = next(it)
    for row in range(4):
        assert batch["image_valid"][row].sum() == 8  # one video: 8 frames fill max_images
        assert (batch["tokens"][row] == tok.image_id).sum() == 8 * K
        pics = batch["images"][row]
        match = [j for j, e in enumerate(expected) if np.array_equal(pics, e)]
        assert len(match) == 1, row  # the frames of one of the records, in order
        learned = batch["targets"][row][batch["loss_weights"][row] > 0]
        reply = [t for t in learned.tolist() if t != tok.eos_id]
        assert any(tuple(reply[i:i + len(a)]) == a for a in answers for i in range(len(reply))), row


# --- the eval tasks


def test_video_tasks_load_with_frames_from_their_clip_files(tmp_path, monkeypatch):
    from configs import tiny
    from mm1_jax.eval import embedded
    from mm1_jax.eval.datasets import TASKS
    from mm1_jax.eval.tasks import image_loader, load_task

    monkeypatch.setenv("MM1_JAX_CACHE", str(tmp_path / "cache"))  # the held-out clips, written once into the cache
    monkeypatch.setattr(embedded, "VIDEO_ITEMS", 40)  # 200 in the benchmark; 40 here to write them in a second
    config = tiny.get_config()
    synthetic.build_tokenizer(tmp_path / "tokenizer.json")
    tok = load_tokenizer(str(tmp_path / "tokenizer.json"))
    choice, support, skipped = load_task(TASKS["embedded_video"], config, 12)
    open_items, _, _ = load_task(TASKS["embedded_video_open"], config, 12)
    assert TASKS["embedded_video"].fmt == "choice" and TASKS["embedded_video_open"].metrics == ("exact_match",)
    assert len(choice) == 12 and len(support) == 40 and not skipped
    assert [i.meta["type"] for i in support].count("direction") == 10
    assert [(i.id, i.question, i.answers) for i in choice] == [(i.id, i.question, i.answers) for i in open_items]
    assert str(tmp_path / "cache") in choice[0].meta["video"]
    load = image_loader(64, "clip")
    for item in choice[:4]:
        assert item.options[item.answer_index] == item.answers[0] and not open_items[0].options
        assert len(item.images) == 8 and all(f.path == item.meta["video"] for f in item.images)
        frames = decode_all(item.meta["video"])
        for f, i in zip(item.images, UNIFORM_8[len(frames)]):
            np.testing.assert_array_equal(load(f), images_lib.whole_image(Image.fromarray(frames[i]), 64))
        assert answer_from_pixels(frames, item.question) == item.answers[0]
    for item in support:
        for text in [item.question, *item.options]:
            assert tok.special["<unk>"] not in tok.encode(text), text
        assert len(tok.encode(item.answers[0])) < TASKS["embedded_video_open"].max_new_tokens
