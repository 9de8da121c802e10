"""Video input: frame sampling rules (hand-computed), PyAV round trips of synthetic videos, frame folders, bad inputs
in one sentence, and a video SFT record through the llava_json source and the example builder."""

import json
import logging
import re
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from mm1_jax.data import config as config_lib
from mm1_jax.data import examples as examples_lib
from mm1_jax.data import sources, synthetic, video
from mm1_jax.data import tokenizer as tokenizer_lib

K, SIZE = 4, 16

# --- sampling rules, computed by hand from the formulas in mm1_jax.data.video's docstring


def test_uniform_is_slowfast_llava_segment_midpoints_mm15_24_frames():
    # s = 99/24 = 4.125; frame i = (round(4.125 i) + round(4.125 (i+1))) // 2, e.g. i=5: (21 + 25) // 2 = 23,
    # i=12: (round(49.5)=50 + round(53.625)=54) // 2 = 52, i=23: (round(94.875)=95 + 99) // 2 = 97
    assert video.sample_indices(100, 24, "uniform").tolist() == [
        2, 6, 10, 14, 18, 23, 27, 31, 35, 39, 43, 47, 52, 56, 60, 64, 68, 72, 76, 80, 84, 89, 93, 97]
    # s = 9/4 = 2.25: segment edges round(0, 2.25, 4.5, 6.75, 9) = 0 2 4 7 9 (4.5 rounds half to even, to 4)
    # -> midpoints 1, 3, 5, 8 (rounding half up would give 0 2 5 7 9 -> 1, 3, 6, 8)
    assert video.sample_indices(10, 4, "uniform").tolist() == [1, 3, 5, 8]


def test_owl3_is_its_releases_segment_centres_8_frames():
    # edges = int(linspace(0, 100, 9)) = 0 12 25 37 50 62 75 87 100; segment (a, b - 1), centre (a + b - 1) // 2:
    # (0+11)//2 = 5, (12+24)//2 = 18, (25+36)//2 = 30, (37+49)//2 = 43, ...
    assert video.sample_indices(100, 8, "owl3").tolist() == [5, 18, 30, 43, 55, 68, 80, 93]
    # a 5-frame clip asked for 8: every frame once, then the last frame repeated (the release pads with it)
    assert video.sample_indices(5, 8, "owl3").tolist() == [0, 1, 2, 3, 4, 4, 4, 4]


def test_linspace_includes_first_and_last_frame():
    assert video.sample_indices(100, 5, "linspace").tolist() == [0, 24, 49, 74, 99]


def mvbench_get_index(bound, fps, max_frame, first_idx=0, num_segments=16):
    """MVBench's frame choice as its notebook states it (video_chat2/mvbench.ipynb, MVBench_dataset.get_index)."""
    start, end = bound if bound else (-100000, 100000)
    start_idx = max(first_idx, round(start * fps))
    end_idx = min(round(end * fps), max_frame)
    seg_size = float(end_idx - start_idx) / num_segments
    return [int(start_idx + (seg_size / 2) + np.round(seg_size * idx)) for idx in range(num_segments)]


def test_mvbench_rule_and_clips_are_its_notebooks_get_index():
    assert video.sample_indices(100, 16, "mvbench").tolist() == mvbench_get_index(None, 30.0, 99)
    for n in (16, 17, 90, 301):
        for k in (8, 16, 24):
            assert video.sample_indices(n, k, "mvbench").tolist() == mvbench_get_index(None, 25.0, n - 1, 0, k)
            for bound, fps in (((1.0, 3.0), 30.0), ((0.4, 2.2), 25.0), ((2.5, 99.0), 29.97)):
                if round(bound[0] * fps) > n - 1:  # the clip starts after the video ends (below)
                    continue
                lo, hi = video.clip_range(video.Clip(*bound), fps, n)  # a video file: frames from 0
                ours = (lo + video.sample_indices(hi - lo + 1, k, "mvbench", warn=False)).tolist()
                assert ours == mvbench_get_index(bound, fps, n - 1, 0, k), (n, k, bound)
                # a frame folder (TVQA's, 3 frames/s): files numbered from 1, file j is our frame j - 1
                lo, hi = video.clip_range(video.Clip(bound[0] / 10, bound[1] / 10, 3.0), 3.0, n, first=1)
                ours = (lo + video.sample_indices(hi - lo + 1, k, "mvbench", warn=False) + 1).tolist()
                assert ours == mvbench_get_index((bound[0] / 10, bound[1] / 10), 3.0, n, 1, k), (n, k, bound)
    with pytest.raises(ValueError, match=r"^the clip 5-6 s holds no frame of a video of 30 frames at 30 frames/s\.$"):
        video.clip_range(video.Clip(5.0, 6.0), 30.0, 30)


def test_short_video_repeats_frames_and_says_so_once(caplog, monkeypatch):
    monkeypatch.setattr(video, "_warned_short", set())
    with caplog.at_level(logging.WARNING, logger="mm1_jax.data.video"):
        # s = 4/8 = 0.5: round(0.5 i) is half to even: 0 0 1 2 2 2 3 4 4 -> midpoints 0 0 1 2 2 2 3 4
        assert video.sample_indices(5, 8, "uniform").tolist() == [0, 0, 1, 2, 2, 2, 3, 4]
        assert video.sample_indices(3, 24, "uniform").tolist().count(1) >= 7
    warnings = [r for r in caplog.records if "fewer than" in r.getMessage()]
    assert len(warnings) == 1 and "5 frames, fewer than the 8 asked" in warnings[0].getMessage()


def test_every_rule_gives_k_sorted_in_range_indices():
    for rule in video.SAMPLING_RULES:
        for n in (1, 2, 7, 24, 25, 301):
            for k in (1, 8, 24):
                idx = video.sample_indices(n, k, rule)
                assert len(idx) == k and idx.min() >= 0 and idx.max() <= n - 1 and np.all(np.diff(idx) >= 0)
                if n > k or (n == k and rule not in ("uniform", "mvbench")):  # (n-1)/k segments repeat one frame
                    assert len(set(idx.tolist())) == k, (rule, n, k)  # when n == k; else no repetition


def test_bad_rule_and_config_fields_one_sentence():
    with pytest.raises(ValueError, match=r"^video sampling rule 'random' is not one of uniform, owl3, linspace, mvbench\.$"):
        video.sample_indices(10, 4, "random")
    dc = config_lib.get_data_config()
    assert (dc.video.frames, dc.video.sampling) == (24, "uniform")  # MM1.5-Video
    config_lib.validate_data_config(dc)
    dc.video.sampling = "unifrom"
    with pytest.raises(ValueError, match=r'^data\.video\.sampling=\'unifrom\' is not a sampling rule \(did you mean '
                                         r'"uniform"\?\); the rules are uniform, owl3, linspace, mvbench\.$'):
        config_lib.validate_data_config(dc)
    dc = config_lib.get_data_config()
    dc.video.frames = 0
    with pytest.raises(ValueError, match=r"^data\.video\.frames=0 must be a positive integer\.$"):
        config_lib.validate_data_config(dc)


# --- synthetic videos written with PyAV


def clip(n=30, h=48, w=64) -> np.ndarray:
    """n frames of a solid colour that changes every frame, with a yellow square moving across."""
    out = np.zeros((n, h, w, 3), np.uint8)
    for i in range(n):
        out[i] = ((i * 8) % 256, 255 - (i * 8) % 256, (i * 37) % 256)
        out[i, (i % 6) * 6:(i % 6) * 6 + 10, (i * 2) % 50:(i * 2) % 50 + 12] = (255, 255, 0)
    return out


def write_video(path, frames, codec, pix_fmt, options=None, container_options=None):
    with av.open(str(path), "w", options=container_options or {}) as c:
        s = c.add_stream(codec, rate=30)
        s.width, s.height, s.pix_fmt = frames.shape[2], frames.shape[1], pix_fmt
        s.options = options or {}
        for f in frames:
            c.mux(s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")))
        c.mux(s.encode())
    return str(path)


# codec, pixel format, options, container, max abs error per channel value (0-255) we allow
ROUND_TRIPS = [
    ("libx264rgb", "rgb24", {"qp": "0"}, "mp4", 0),  # lossless H.264 in RGB (High 4:4:4, qp 0)
    ("ffv1", "bgr0", None, "mkv", 0),  # FFV1, lossless
    ("libx264", "yuv420p", {"crf": "18"}, "mp4", 64),  # lossy: 4:2:0 chroma at the square's edges (measured 57)
]


@pytest.mark.parametrize("codec, pix_fmt, options, ext, tolerance", ROUND_TRIPS)
def test_round_trip_gives_the_pixels_written(tmp_path, codec, pix_fmt, options, ext, tolerance):
    frames = clip()
    path = write_video(tmp_path / f"v.{ext}", frames, codec, pix_fmt, options)
    for rule, k in (("uniform", 24), ("owl3", 8)):
        got = video.read_video(path, k, rule)
        want = frames[video.sample_indices(30, k, rule)]
        assert got.shape == (k, 48, 64, 3) and got.dtype == np.uint8
        err = np.abs(got.astype(int) - want.astype(int))
        assert err.max() <= tolerance, (codec, err.max())
        if tolerance:  # lossy, yet the flat colours decode within a few levels (mean error measured 1.8)
            assert err.mean() < 3
            # and each frame is nearer its own source frame than any other (the right frames came back)
            dist = np.abs(got[:, None].astype(int) - frames[None].astype(int)).mean(axis=(2, 3, 4))
            assert dist.argmin(axis=1).tolist() == video.sample_indices(30, k, rule).tolist()


def test_frame_folder_reads_as_a_video_in_natural_order(tmp_path):
    frames = clip(n=12)
    folder = tmp_path / "frames"
    folder.mkdir()
    for i, f in enumerate(frames):  # unpadded names: frame_10 must come after frame_9
        Image.fromarray(f).save(folder / f"frame_{i}.png")
    (folder / "notes.txt").write_text("not a frame")
    assert [f.name for f in video.frame_files(folder)][8:11] == ["frame_8.png", "frame_9.png", "frame_10.png"]
    got = video.read_video(folder, 4, "uniform")
    np.testing.assert_array_equal(got, frames[[1, 4, 7, 9]])  # s = 11/4: (0+3)//2, (3+6)//2, (6+8)//2, (8+11)//2
    # a clip of a folder at 3 frames/s (MVBench's TVQA folders): 1.0-3.0 s are files 3 .. 9 (numbered from 1), our
    # frames 2 .. 8; 4 uniform frames of those 7: s = 6/4, edges round(0, 1.5, 3, 4.5, 6) = 0 2 3 4 6 -> 1 2 3 5
    got = video.read_video(folder, 4, "uniform", video.Clip(1.0, 3.0, 3.0))
    np.testing.assert_array_equal(got, frames[[3, 4, 5, 7]])
    with pytest.raises(ValueError, match=r"^frame folder '.*frames': a clip 1-3 s of a frame folder needs the "
                                         r"folder's frame rate\.$"):
        video.read_video(folder, 4, "uniform", video.Clip(1.0, 3.0))


def test_bad_inputs_raise_one_sentence_naming_the_file(tmp_path):
    good = write_video(tmp_path / "good.mkv", clip(), "ffv1", "bgr0")
    data = Path(good).read_bytes()
    (tmp_path / "half.mkv").write_bytes(data[: len(data) // 2])
    (tmp_path / "junk.mp4").write_bytes(b"not a video at all " * 10)
    h264 = Path(write_video(tmp_path / "h.mkv", clip(), "libx264rgb", "rgb24", {"qp": "0"})).read_bytes()
    assert h264.count(b"V_MPEG4/ISO/AVC") == 1
    (tmp_path / "unknown.mkv").write_bytes(h264.replace(b"V_MPEG4/ISO/AVC", b"V_QQQQQ/ISO/ZZZ"))  # a codec id
    fast = Path(write_video(tmp_path / "fast.mp4", clip(), "libx264rgb", "rgb24", {"qp": "0"},
                            {"movflags": "faststart"})).read_bytes()
    (tmp_path / "cut.mp4").write_bytes(fast[: int(len(fast) * 0.6)])  # index first, frames cut
    (tmp_path / "empty").mkdir()
    cases = {
        "half.mkv": r"is truncated: its frames end at 0\.\d+ s of the 1\.000 s its header gives\.$",
        "junk.mp4": r"cannot be read: Invalid data found when processing input\.$",
        "unknown.mkv": r"cannot be read: its video codec is unknown\.$",
        # FFmpeg's decoder either errors on the cut (PyAV 15) or stops early without one (PyAV 18): both name the count
        "cut.mp4": r"is truncated(?: or corrupt: decoding stopped after \d+ of the 30 frames its header lists \(Invalid "
                   r"data found when processing input\)|: its header lists 30 frames but only \d+ decode)\.$",
        "empty": r"holds no image files \(\.jpg, \.jpeg, \.png, \.webp, \.bmp\)\.$",
        "missing.mp4": r"does not exist \(neither a video file nor a frame folder\)\.$",
    }
    for name, pattern in cases.items():
        path = str(tmp_path / name)
        with pytest.raises(ValueError) as e:
            video.read_video(path, 8, "owl3")
        msg = str(e.value)
        assert repr(path) in msg and msg.count(". ") == 0 and "\n" not in msg, msg  # one sentence naming it
        assert re.search(pattern, msg), msg
    with pytest.raises(video.MissingVideo):
        video.read_video(str(tmp_path / "missing.mp4"), 8)


# --- a video SFT record through the llava_json source and the example builder


@pytest.fixture(scope="module")
def tok_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("tok") / "tokenizer.json"
    synthetic.build_tokenizer(path)
    return str(path)


def test_video_sft_record_gives_frames_x_k_image_tokens(tmp_path, tok_path):
    frames = clip()
    (tmp_path / "videos").mkdir()
    write_video(tmp_path / "videos" / "v.mkv", frames, "ffv1", "bgr0")
    folder = tmp_path / "videos" / "f"
    folder.mkdir()
    for i, f in enumerate(frames[:5]):
        Image.fromarray(f).save(folder / f"{i:05d}.jpg")
    Image.new("RGB", (20, 10), (0, 0, 255)).save(tmp_path / "videos" / "pic.png")
    records = [
        {"id": "a", "video": "v.mkv", "conversations": [
            {"from": "human", "value": "<video>\nwhat colour is the square ?"}, {"from": "gpt", "value": "red ."}]},
        {"id": "b", "video": "f", "image": "pic.png", "conversations": [  # a frame folder (shorter than 6) + image
            {"from": "human", "value": "<image> what colour is the circle ? <video> what colour is the square ?"},
            {"from": "gpt", "value": "red ."}]},
        {"id": "c", "video": "gone.mp4", "conversations": [
            {"from": "human", "value": "<video>"}, {"from": "gpt", "value": "x"}]},
        {"id": "d", "video": ["v.mkv", "v.mkv"], "conversations": [
            {"from": "human", "value": "<video><video>"}, {"from": "gpt", "value": "x"}]},
    ]
    (tmp_path / "sft.json").write_text(json.dumps(records))
    (tmp_path / "videos" / "bad.mp4").write_bytes(b"\0" * 100)
    src_cfg = config_lib.source("vid", "sft", "llava_json", str(tmp_path / "sft.json"), 1.0,
                                image_root=str(tmp_path / "videos"))
    dc = config_lib.get_data_config(tokenizer=tok_path, max_images=10)
    dc.video.frames, dc.video.sampling = 6, "owl3"
    dc.split.mode = "mm1"  # images of SFT records are split, videos' frames never
    build = examples_lib.ExampleBuilder(src_cfg, 0, dc, tokens_per_image=K, image_size=SIZE, image_norm="siglip")
    src = sources.open_source(src_cfg)
    tok = tokenizer_lib.load_tokenizer(tok_path)

    ex = build(src[0])
    assert int(np.sum(ex["tokens"] == tok.image_id)) == 6 * K  # frames x K image tokens
    assert ex["images"].shape == (6, SIZE, SIZE, 3)
    idx = video.sample_indices(30, 6, "owl3")
    want = np.stack([np.asarray(Image.fromarray(f).resize((SIZE, SIZE), Image.BICUBIC)) for f in frames[idx]])
    np.testing.assert_array_equal(ex["images"], want)  # each frame the way a whole image is resized
    assert tok.decode(ex["tokens"]) == "<bos> User : <image> what colour is the square ? Assistant : red . <eos>"
    first = int(np.argmax(ex["tokens"] == tok.image_id))
    assert np.all(ex["tokens"][first:first + 6 * K] == tok.image_id)  # one run of frames x K slots

    ex = build(src[1])  # image then video, in marker order; the image is not split (the record has 7 images)
    assert ex["images"].shape == (7, SIZE, SIZE, 3) and int(np.sum(ex["tokens"] == tok.image_id)) == 7 * K
    assert np.all(ex["images"][0] == ex["images"][0, 0, 0])  # the solid blue picture comes first
    assert tok.decode(ex["tokens"]) == ("<bos> User : <image> what colour is the circle ? <image> what colour is "
                                        "the square ? Assistant : red . <eos>")
    slots = np.flatnonzero(ex["tokens"] == tok.image_id)
    assert np.all(np.diff(slots[:K]) == 1) and np.all(np.diff(slots[K:]) == 1) and slots[K] - slots[K - 1] > 1

    assert build(src[2])["skip"] == "missing_video"
    skip = build(src[3])
    assert skip["skip"] == "too_many_images" and "data.max_images=10" in skip["detail"]
    bad = build({**src[0], "video": "bad.mp4"})
    assert bad["skip"] == "bad_video" and "bad.mp4" in bad["detail"]


def test_summary_prints_a_videos_tokens_and_whether_a_row_fits():
    from configs import tiny  # pylint: disable=import-outside-toplevel
    from mm1_jax.models import summary  # pylint: disable=import-outside-toplevel

    config = tiny.get_config()
    assert config.data.video.frames == 8  # the embedded world's clips fill the tiny model's 8 images
    config.data.video.frames = 24  # MM1.5-Video's
    s = summary.summarize(config)
    assert s["video_frames"] == 24 and s["video_tokens"] == 24 * s["tokens_per_image"]  # frames x K, no splitting
    assert f"video: 24 frames x {s['tokens_per_image']} tokens = {s['video_tokens']} image tokens" in \
        summary.format_summary(s)
    line = summary.format_summary({**s, "seq_len": 4096, "max_images": 24}).splitlines()[-1]
    assert line.endswith(f"no splitting; a row still fits, leaving {4096 - s['video_tokens']} for text"), line
    line = summary.format_summary({**s, "seq_len": 4096, "max_images": 16}).splitlines()[-1]
    assert line.endswith("does NOT fit: 24 frames exceed max_images=16 (video records are skipped)"), line


# --- a video benchmark through the evaluation runner


def test_a_video_question_is_prompted_with_its_sampled_frames(tmp_path):
    """NExT-QA from its release files (val.csv, map_vid_vidorID.json, the video) through `run_tasks`: the prompt holds
    eval.video_frames whole images, frame for frame the ones `read_video` samples by the eval's rule, before the
    question; the scripted answer is scored by NExT-QA's rule."""
    from mm1_jax.data import images as images_lib
    from mm1_jax.eval import tasks
    from tests.test_eval_benchmarks import Scripted, byte_level_tokenizer, tiny_config

    movie = clip(n=30)
    (tmp_path / "NExTVideo" / "1106").mkdir(parents=True)
    write_video(tmp_path / "NExTVideo" / "1106" / "4010069381.mp4", movie, "libx264rgb", "rgb24", {"qp": "0"})
    (tmp_path / "val.csv").write_text(
        "video,frame_count,width,height,question,answer,qid,type,a0,a1,a2,a3,a4\n"
        "4010069381,30,64,48,how does the square move,1,6,CH,it stays,left to right,it jumps,it spins,it shrinks\n")
    (tmp_path / "map_vid_vidorID.json").write_text('{"4010069381": "1106/4010069381"}')
    config = tiny_config({"nextqa": dict(annotations=str(tmp_path / "val.csv"),
                                         video_map=str(tmp_path / "map_vid_vidorID.json"),
                                         videos=str(tmp_path / "NExTVideo"))},
                         byte_level_tokenizer(tmp_path / "tokenizer.json"))
    config.eval.update(video_frames=6, video_sampling="owl3")
    config.data.max_images = config.model.max_images = 8
    config.data.seq_len = 512  # 6 frames x 16 tokens and NExT-QA's listed options
    ctx = tasks.Context.from_config(None, config)
    script = Scripted(ctx.tok, ["B"])
    ctx.generator = lambda batch: script
    scores = tasks.run_tasks(None, None, config, ["nextqa"], [0], context=ctx)
    assert scores == {"nextqa/0shot/accuracy": 1.0, "nextqa/0shot/CH": 1.0, "nextqa/0shot/causal": 1.0}  # eval_mc.py
    (request,) = script.seen
    want = np.stack([images_lib.whole_image(Image.fromarray(f), ctx.image_size)
                     for f in movie[video.sample_indices(30, 6, "owl3")]])
    np.testing.assert_array_equal(request.images, want)  # frames 2, 7, 12, 17, 22, 27, exact (a lossless codec)
    assert list(video.sample_indices(30, 6, "owl3")) == [2, 7, 12, 17, 22, 27]
    text = ctx.tok.decode(request.tokens, mark_images=False)
    assert "how does the square move" in text and text.index("how does") > 0


def test_mvbench_is_asked_with_its_system_text_and_answer_start(tmp_path):
    """MVBench's notebook puts its system text before the question and starts the answer with "Best option:(": the
    prompt holds both, and the reply "A) ..." is read back as "(A) ..." by its check_ans."""
    from mm1_jax.eval import tasks
    from tests.test_eval_benchmarks import Scripted, byte_level_tokenizer, tiny_config

    (tmp_path / "video" / "star" / "Charades_v1_480").mkdir(parents=True)
    movie = clip(n=120)  # 4 s at 30 frames/s
    write_video(tmp_path / "video" / "star" / "Charades_v1_480" / "6H78U.mp4", movie, "libx264rgb", "rgb24",
                {"qp": "0"})
    (tmp_path / "json").mkdir()
    (tmp_path / "json" / "action_sequence.json").write_text(json.dumps([
        {"video": "6H78U.mp4", "question": "What happened after the person took the food?",
         "candidates": ["Ate the medicine.", "Took the box."], "answer": "Ate the medicine.", "start": 1.0,
         "end": 3.0}]))
    config = tiny_config({"mvbench": dict(annotations=str(tmp_path / "json"), videos=str(tmp_path / "video"),
                                          tasks="Action Sequence")},
                         byte_level_tokenizer(tmp_path / "tokenizer.json"))
    config.eval.update(video_frames=4, video_sampling="uniform")
    config.data.seq_len = 512
    ctx = tasks.Context.from_config(None, config)
    script = Scripted(ctx.tok, ["A) Ate the medicine."])
    ctx.generator = lambda batch: script
    scores = tasks.run_tasks(None, None, config, ["mvbench"], [0], context=ctx)
    assert scores["mvbench/0shot/accuracy"] == 1.0
    text = ctx.tok.decode(script.seen[0].tokens, mark_images=False)
    assert text.removeprefix("<bos>").startswith("Carefully watch") and text.endswith("Assistant:Best option:(")
    # Action Sequence is a bound task: frames come from its clip 1.0-3.0 s, frames 30 .. 90 of the file (61 frames);
    # 4 uniform of those: s = 60/4 = 15, edges 0 15 30 45 60 -> midpoints 7 22 37 52, i.e. frames 37 52 67 82
    from mm1_jax.data import images as images_lib
    want = np.stack([images_lib.whole_image(Image.fromarray(f), ctx.image_size) for f in movie[[37, 52, 67, 82]]])
    np.testing.assert_array_equal(script.seen[0].images, want)
