"""MM1.5-Video's SFT data in its release formats: ShareGPTVideo's jsonl (frame folders), VideoChat2's instruction json
(QA lists, clips) and ActivityNet-QA's question / answer files, each read into LLaVA video records, then through the
example builder and the pipeline; bad records skipped and counted, bad files refused in one sentence naming them;
configs/mm15_video.py validates with the paper's numbers."""

import json
import math

import av
import numpy as np
import pytest
from PIL import Image

from mm1_jax.data import config as config_lib
from mm1_jax.data import examples as examples_lib
from mm1_jax.data import pipeline as pipeline_lib
from mm1_jax.data import sources, synthetic, video
from mm1_jax.data import tokenizer as tokenizer_lib

K, SIZE, FRAMES, N = 4, 16, 24, 30  # tokens per frame, frame size, frames sampled, frames in each written video


def level(i: int) -> int:
    """The grey level of frame i of every video written here: which frames were sampled shows in the pixels."""
    return 8 * i


def write_mp4(path, n: int = N, fps: int = 10) -> None:
    """n solid grey 32x32 frames (frame i at level(i)), lossless H.264 (qp 0) in mp4 at `fps` frames/s."""
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width = stream.height = 32
        stream.pix_fmt = "yuv444p"
        stream.options = {"qp": "0"}
        for i in range(n):
            frame = av.VideoFrame.from_ndarray(np.full((32, 32, 3), level(i), np.uint8), format="rgb24")
            out.mux(stream.encode(frame))
        out.mux(stream.encode())


def write_frames(folder, n: int = N) -> None:
    """A frame folder of n PNGs (lossless), names zero-padded as ShareGPTVideo's are listed and name-sorted."""
    folder.mkdir(parents=True)
    for i in range(n):
        Image.new("RGB", (24, 20), (level(i),) * 3).save(folder / f"{i + 1:04d}.png")


def frame_levels(images: np.ndarray) -> np.ndarray:
    return images.reshape(len(images), -1).mean(axis=1)


def expected_levels(n: int = N, lo: int = 0) -> np.ndarray:
    return np.array([level(lo + int(j)) for j in video.sample_indices(n, FRAMES, "uniform", warn=False)], float)


@pytest.fixture(scope="module")
def tok_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("tok") / "tokenizer.json"
    synthetic.build_tokenizer(path)
    return str(path)


def data_config(tok_path, **overrides):
    dc = config_lib.get_data_config(tokenizer=tok_path, max_images=FRAMES, seq_len=FRAMES * K + 40, **overrides)
    dc.video.update(frames=FRAMES, sampling="uniform")
    return dc


def builder(src_cfg, tok_path):
    return examples_lib.ExampleBuilder(src_cfg, 0, data_config(tok_path), tokens_per_image=K, image_size=SIZE,
                                       image_norm="clip")


def check_video_example(ex, tok_path, levels, text):
    tok = tokenizer_lib.load_tokenizer(tok_path)
    assert ex["images"].shape == (FRAMES, SIZE, SIZE, 3)
    np.testing.assert_allclose(frame_levels(ex["images"]), levels, atol=1)  # the frames the rule samples, in order
    slots = np.flatnonzero(ex["tokens"] == tok.image_id)
    assert len(slots) == FRAMES * K and np.all(np.diff(slots) == 1)  # one run of frames x K slots at <video>
    assert tok.decode(ex["tokens"]) == text


# --- ShareGPTVideo: LLaVA records one a line (format jsonl), "video" a frame folder under image_root


def test_sharegptvideo_jsonl_lines_are_llava_video_records_of_frame_folders(tmp_path, tok_path):
    write_frames(tmp_path / "train_300k" / "v_abc")
    lines = [
        json.dumps({"id": "v_abc_0", "video": "v_abc", "conversations": [
            {"from": "human", "value": "<video>\nwhat colour is the square ?"}, {"from": "gpt", "value": "red ."}]}),
        "{not json",
        json.dumps(["a", "list"]),
        json.dumps({"id": "v_abc_1", "video": "v_abc"}),  # no conversations
        json.dumps({"id": "v_gone_0", "video": "v_gone", "conversations": [
            {"from": "human", "value": "<video>\nwhat ?"}, {"from": "gpt", "value": "x"}]}),
    ]
    (tmp_path / "sft").mkdir()
    (tmp_path / "sft" / "video_240k_caption_15k.jsonl").write_text("\n".join(lines) + "\n")
    src_cfg = config_lib.source("sharegptvideo", "sft", "jsonl", str(tmp_path / "sft" / "*.jsonl"), 1.0,
                                image_root=str(tmp_path / "train_300k"))
    src, build = sources.open_source(src_cfg), builder(src_cfg, tok_path)
    assert len(src) == 5
    assert src[0]["video"] == "v_abc" and src[0]["conversations"][0]["value"] == "<video>\nwhat colour is the square ?"
    check_video_example(build(src[0]), tok_path, expected_levels(),
                        "<bos> User : <image> what colour is the square ? Assistant : red . <eos>")
    assert [build(src[i])["skip"] for i in range(1, 5)] == ["bad_json", "wrong_schema", "wrong_schema",
                                                           "missing_video"]


# --- VideoChat2: {"video", "QA": [{"i", "q", "a"}], "start"?, "end"?}


def videochat2_files(tmp_path):
    folder = tmp_path / "videochat2" / "conversation_x"  # train.json in its videos' folder: image_root empty
    folder.mkdir(parents=True)
    write_mp4(folder / "clip.mp4")
    records = [
        {"video": "clip.mp4", "QA": [
            {"i": "look at the picture .", "q": "what colour is the square ?", "a": "red ."},
            {"i": "ignored after the first", "q": "what colour is the circle ?", "a": "blue ."}]},
        {"video": "clip.mp4", "QA": [{"i": "say what you see .", "q": "", "a": "a red square ."},  # caption
                                     {"i": "", "q": "", "a": "it does not move ."}]},
        {"video": "clip.mp4", "start": 1.0, "end": 2.0, "QA": [{"i": "", "q": "what is here ?", "a": "a cat ."}]},
        {"video": "clip.mp4"},  # no QA
        {"video": "clip.mp4", "QA": [{"q": "how many ?", "a": 3}]},  # an answer that is not a string
        {"video": "clip.mp4", "start": "0:01", "end": 2, "QA": [{"q": "what ?", "a": "x"}]},
        ["not", "a", "record"],
        {"QA": [{"q": "what ?", "a": "x"}]},  # no video
    ]
    (folder / "train.json").write_text(json.dumps(records))
    return folder


def test_videochat2_records_become_llava_conversations(tmp_path):
    folder = videochat2_files(tmp_path)
    src = sources.open_source(config_lib.source("videochat2", "sft", "videochat2_json",
                                                str(tmp_path / "videochat2" / "*" / "train.json"), 1.0))
    assert len(src) == 8
    first = src[0]
    assert first["video"] == "clip.mp4" and first["__folder__"] == str(folder)
    assert first["conversations"] == [  # the first QA's i and q joined by a space after <video>; later QAs: q only
        {"from": "human", "value": "<video>\nlook at the picture . what colour is the square ?"},
        {"from": "gpt", "value": "red ."},
        {"from": "human", "value": "what colour is the circle ?"},
        {"from": "gpt", "value": "blue ."}]
    assert src[1]["conversations"] == [{"from": "human", "value": "<video>\nsay what you see ."},
                                       {"from": "gpt", "value": "a red square ."},
                                       {"from": "gpt", "value": "it does not move ."}]  # no question: no human turn
    assert src[2]["video"] == {"path": "clip.mp4", "start": 1.0, "end": 2.0}
    assert src[2]["conversations"][0] == {"from": "human", "value": "<video>\nwhat is here ?"}
    for i in range(3, 8):
        assert src[i] == {"__error__": "wrong_schema", "__key__": f"train.json#{i}"}, i


def test_videochat2_examples_hold_the_sampled_frames_and_clips_sample_within(tmp_path, tok_path):
    videochat2_files(tmp_path)
    src_cfg = config_lib.source("videochat2", "sft", "videochat2_json",
                                str(tmp_path / "videochat2" / "*" / "train.json"), 1.0)
    src, build = sources.open_source(src_cfg), builder(src_cfg, tok_path)
    check_video_example(build(src[0]), tok_path, expected_levels(),
                        "<bos> User : <image> look at the picture . what colour is the square ? Assistant : red . "
                        "<eos> User : what colour is the circle ? Assistant : blue . <eos>")
    # 1.0-2.0 s at 10 frames/s: frames round(10) .. round(20), 11 frames, sampled as a whole video of 11
    clip = build(src[2])
    assert clip["images"].shape == (FRAMES, SIZE, SIZE, 3)
    np.testing.assert_allclose(frame_levels(clip["images"]), expected_levels(11, lo=10), atol=1)
    assert [build(src[i])["skip"] for i in range(3, 8)] == ["wrong_schema"] * 5


# --- ActivityNet-QA: train_q.json + train_a.json, videos v_<video_name>.<ext> in image_root


def activitynet_files(tmp_path):
    (tmp_path / "anet").mkdir()
    videos = tmp_path / "videos"
    videos.mkdir()
    write_mp4(videos / "v_abc.mp4")
    write_frames(videos / "def")  # a frame folder named without v_ is found too
    (videos / "v_abc.txt").write_text("not a video")
    questions = [
        {"video_name": "abc", "question": "is the square red", "question_id": "v_abc_1"},
        {"video_name": "def", "question": "what colour is the circle", "question_id": "v_def_2"},
        {"video_name": "abc", "question": "no answer for this one", "question_id": "v_abc_9"},
        {"video_name": 7, "question": "what", "question_id": "v_7_1"},
        {"video_name": "zzz", "question": "where is the video", "question_id": "v_zzz_1"},
    ]
    answers = [{"answer": "yes", "type": 3, "question_id": "v_abc_1"},
               {"answer": "blue", "type": 4, "question_id": "v_def_2"},
               {"answer": "x", "type": 8, "question_id": "v_7_1"},
               {"answer": "x", "type": 8, "question_id": "v_zzz_1"}]
    (tmp_path / "anet" / "train_q.json").write_text(json.dumps(questions))
    (tmp_path / "anet" / "train_a.json").write_text(json.dumps(answers))
    return config_lib.source("activitynet_qa", "sft", "activitynet_qa", str(tmp_path / "anet" / "train_*.json"), 1.0,
                             image_root=str(videos))


def test_activitynet_qa_release_files_become_video_questions(tmp_path, tok_path):
    src_cfg = activitynet_files(tmp_path)
    src, build = sources.open_source(src_cfg), builder(src_cfg, tok_path)
    assert len(src) == 5  # train_a.json, matched by the glob too, is the questions' answers, not more questions
    assert src[0]["video"] == "v_abc.mp4" and src[0]["conversations"] == [
        {"from": "human", "value": "<video>\nis the square red"}, {"from": "gpt", "value": "yes"}]
    assert src[1]["video"] == "def"
    check_video_example(build(src[0]), tok_path, expected_levels(),
                        "<bos> User : <image> is the square red Assistant : yes <eos>")
    check_video_example(build(src[1]), tok_path, expected_levels(),
                        "<bos> User : <image> what colour is the circle Assistant : blue <eos>")
    assert src[2] == {"__error__": "wrong_schema", "__key__": "train_q.json#v_abc_9"}
    assert src[3] == {"__error__": "wrong_schema", "__key__": "train_q.json#v_7_1"}
    missing = build(src[4])
    assert missing["skip"] == "missing_video" and "v_zzz.mp4" in missing["detail"]


@pytest.mark.parametrize("fmt, files, path, sentence", [
    ("videochat2_json", {"train.json": "[{"}, "train.json",
     "VideoChat2 instruction file '{d}/train.json' is not valid JSON"),
    ("videochat2_json", {"train.json": "{}"}, "train.json",
     "VideoChat2 instruction file '{d}/train.json' must hold a JSON list, got dict."),
    ("activitynet_qa", {"train.json": "[]"}, "train.json",
     "ActivityNet-QA file '{d}/train.json' is not a question file: name the <split>_q.json files"),
    ("activitynet_qa", {"val_q.json": "[]"}, "val_q.json",
     "ActivityNet-QA answers file '{d}/val_a.json' (for '{d}/val_q.json') does not exist."),
    ("activitynet_qa", {"val_q.json": "[]", "val_a.json": '{"a": 1}'}, "val_q.json",
     "ActivityNet-QA answers file '{d}/val_a.json' must hold a JSON list, got dict."),
    ("activitynet_qa", {"val_q.json": "[]", "val_a.json": "[]"}, "val_q.json",
     "ActivityNet-QA video folder '{d}/nowhere' does not exist"),
])
def test_a_malformed_file_is_one_sentence_naming_it(tmp_path, fmt, files, path, sentence):
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    src_cfg = config_lib.source("s", "sft", fmt, str(tmp_path / path), 1.0, image_root=str(tmp_path / "nowhere"))
    with pytest.raises(ValueError) as e:
        sources.open_source(src_cfg)
    assert str(e.value).startswith(sentence.format(d=tmp_path)), str(e.value)
    assert "\n" not in str(e.value)


# --- through the pipeline: one video a row, bad records skipped and counted


def test_pipeline_rows_hold_one_videos_frames_and_count_the_skipped(tmp_path, tok_path):
    videochat2_files(tmp_path)
    dc = data_config(tok_path, shuffle=False, max_error_rate=1.0)
    dc.sources = [config_lib.source("videochat2", "sft", "videochat2_json",
                                    str(tmp_path / "videochat2" / "*" / "train.json"), 1.0)]
    it = pipeline_lib.build_pipeline(dc, global_batch_size=1, tokens_per_image=K, image_size=SIZE,
                                     image_norm="clip", process_index=0, process_count=1)
    rows = [next(it) for _ in range(4)]  # records 0, 1, 2, then (3-7 skipped) record 0 again
    for row, levels in zip(rows, (expected_levels(), expected_levels(), expected_levels(11, lo=10))):
        assert row["images"].shape == (1, FRAMES, SIZE, SIZE, 3) and bool(np.all(row["image_valid"]))
        np.testing.assert_allclose(frame_levels(row["images"][0]), levels, atol=1)
    stats = it.stats()
    assert stats["skipped"] == {"wrong_schema": 5} and stats["skipped_by_source"] == {"videochat2": 5}
    assert stats["examples"] == {"videochat2": 5}  # 4 rows out, the fifth example carried over to the next row


# --- configs/mm15_video.py


def test_mm15_video_config_validates_with_the_papers_numbers():
    from configs import mm15_video  # pylint: disable=import-outside-toplevel
    from mm1_jax.models.inputs import input_spec  # pylint: disable=import-outside-toplevel
    from mm1_jax.train.config import validate_config  # pylint: disable=import-outside-toplevel

    config = mm15_video.get_config("decoder=3b")
    validate_config(config)
    d = config.data
    assert (d.video.frames, d.video.sampling, d.split.mode) == (24, "uniform", "none")
    assert {s["name"]: s["format"] for s in d.sources} == {
        "sharegptvideo": "jsonl", "videochat2": "videochat2_json", "activitynet_qa": "activitynet_qa"}
    weights = config_lib.source_weights(d)
    total = 556_000 + 225_000 + 31_500
    for name, size in (("sharegptvideo", 556_000), ("videochat2", 225_000), ("activitynet_qa", 31_500)):
        assert math.isclose(weights[name], size / total), name
    assert d.max_images == config.model.max_images >= 24
    k = input_spec(config.model, d).tokens_per_image
    assert 24 * k == 3456 and d.seq_len >= 3456 + 512  # a video and its conversation fit one row
    assert config.init.checkpoint and config.model.encoder.image_size == 672  # on top of the image SFT model
