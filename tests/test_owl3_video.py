"""A converted mPLUG-Owl3 on video, and the release's cutting of a still image, at evaluation and in
`python -m mm1_jax.generate`, against the release's rules written out here from its files (X-PLUG/mPLUG-Owl,
mPLUG-Owl3/evaluation and the model's processing_mplugowl3.py / image_processing_mplugowl3.py):

- video (evaluation/tasks/task_define/video_utils.py `get_frame_indices(sample='middle')`, 8 frames by default in
  base.py `_load_video`; general_task_pipeline2.py and processing_mplugowl3.py replace <|video|> by one <|image|>
  per frame and never cut frames): the frames of a video question are the centres of 8 equal segments, decoded here
  with PyAV, each resized whole (PIL bicubic) and given one <|image|>, one after another, before the question;
- cutting (image_processing_mplugowl3.py `anchor_rank`, `_process_image`, the 'v2_global' prompt): the grid of
  'grid_squ_6' with the highest 100 * shape IoU + IoU, computed in the release's tensor types (int64 boxes, the
  reshaped height truncated, float32 scores, the first best on ties); crops row-major then the global view; the
  placeholder replaced by 'Cut to h rows w columns with a global view' and a line of 'subimg(i,j)<|image|>' per row,
  then 'global_view<|image|>', the text between placeholders tokenized as one piece (encode_text_sft).
One tiny converted model (tests/test_eval_distractors.py `converted_owl3`) serves the file.
"""
import io
import pathlib
import types

import av
import numpy as np
import pytest
from PIL import Image

from configs import owl3_eval
from mm1_jax import pretrained
from mm1_jax.data import video as video_lib
from mm1_jax.eval import prompts, results, tasks
from mm1_jax.runtime import generate as gen
from tests.test_eval_benchmarks import Scripted
from tests.test_eval_distractors import converted_owl3
from tests.test_video import clip, write_video

QUESTION = "what does the square do ?"
ASSISTANT = "<|im_end|>\n<|im_start|>assistant\n"  # Qwen2's ChatML, eval.template of configs/owl3_eval.py


@pytest.fixture(scope="module")
def owl3(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("owl3_video")
    tokenizer, path = converted_owl3(tmp)
    config = owl3_eval.get_config(tokenizer)
    params, ctx = results.load(config, path, 0, 1)
    movie = write_video(tmp / "clip.mp4", clip(n=21), "libx264rgb", "rgb24", {"qp": "0"})  # lossless
    return types.SimpleNamespace(tmp=tmp, tokenizer=tokenizer, path=path, config=config, params=params, ctx=ctx,
                                 loaded=pretrained.load(path), movie=movie)


# ----------------------------------------------------------------------------------------------------------------
# The release's rules, written from its files
# ----------------------------------------------------------------------------------------------------------------
def release_frames(path, num_frames=8):
    """Every frame decoded with PyAV, then video_utils.py get_frame_indices(sample='middle'): intervals
    int(linspace(0, vlen, n + 1)), ranges (start, next - 1), the middle (start + end) // 2, padded with the last."""
    with av.open(str(path)) as container:
        decoded = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    acc = min(num_frames, len(decoded))
    edges = np.linspace(0, len(decoded), acc + 1).astype(int)
    idx = [(int(a) + int(b) - 1) // 2 for a, b in zip(edges[:-1], edges[1:])]
    idx += [idx[-1]] * (num_frames - len(idx))
    return [decoded[i] for i in idx]


def release_grid(width, height, size):
    """anchor_rank over grid_squ_6 in the release's tensor types: anchors int64 xyxy (0, 0, cols*size, rows*size);
    the shape box's height height/width * anchor width as float32, stored into the int64 box (truncated)."""
    grids = [(2, 2), (1, 3), (1, 4), (3, 1), (4, 1), (2, 3), (3, 2)]
    aw = np.array([c * size for _, c in grids], np.int64)
    ah = np.array([r * size for r, _ in grids], np.int64)
    area = aw * ah
    shaped = (np.float32(height / width) * aw.astype(np.float32)).astype(np.int64)

    def iou(w2, h2):  # boxes anchored at (0, 0); union + 1e-5 in float32, as box_iou's
        inter = np.minimum(aw, w2) * np.minimum(ah, h2)
        return inter.astype(np.float32) / ((area + w2 * h2 - inter).astype(np.float32) + np.float32(1e-5))

    score = iou(aw, shaped) * np.float32(100) + iou(np.int64(width), np.int64(height))
    return grids[int(np.argmax(score))]


def release_cut(img, size):
    """(the text that replaces the placeholder, crops row-major then the global view as uint8)."""
    rows, cols = release_grid(img.width, img.height, size)
    big = np.asarray(img.resize((cols * size, rows * size), Image.BICUBIC))
    crops = [big[i * size:(i + 1) * size, j * size:(j + 1) * size] for i in range(rows) for j in range(cols)]
    lines = "\n".join(" ".join(f"subimg({i},{j})<|image|>" for j in range(cols)) for i in range(rows))
    text = f"Cut to {rows} rows {cols} columns with a global view\n{lines}\nglobal_view<|image|>"
    return text, np.stack(crops + [np.asarray(img.resize((size, size), Image.BICUBIC))])


def release_tokens(tok, content):
    """ChatML around `content` as build_text_qwen lays it out (an empty system turn first), the text between
    <|image|> placeholders tokenized as one piece each."""
    chunks = ("<|im_start|>system\n<|im_end|>\n<|im_start|>user\n" + content + ASSISTANT).split("<|image|>")
    ids = tok.encode(chunks[0])
    for chunk in chunks[1:]:
        ids += [tok.image_id] + (tok.encode(chunk) if chunk else [])
    return np.array(ids, np.int32)


def greedy(loaded, tokens, pixels, stops, new):
    """Full-forward greedy decoding (the prompt and the tokens so far, padded on the right to one length)."""
    out = []
    row = np.zeros((1, len(tokens) + new), np.int32)
    row[0, :len(tokens)] = tokens
    for t in range(new):
        nxt = int(loaded.logits(row, pixels)[0, len(tokens) + t - 1].argmax())
        if nxt in stops:
            break
        out.append(nxt)
        row[0, len(tokens) + t] = nxt
    return out


def png(pixels) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return buf.getvalue()


class Recording:
    """The context's generator, keeping the requests it is given."""

    def __init__(self, generator):
        self.generator, self.seen = generator, []

    def __call__(self, params, requests, sampling):
        self.seen += list(requests)
        return self.generator(params, requests, sampling)


def layout(ctx, images, question=QUESTION):
    """An item's generator request, laid out as `tasks.evaluate` lays out a query."""
    item = prompts.Item("x", list(images), question=question)
    parts = prompts.item_parts(item, "vqa", tasks.prompt_loader(ctx), template=prompts.TEMPLATES[ctx.template])
    prompt = tasks.layout_prompt(ctx, [], parts, ctx.max_tokens - 16, bos=False)
    return prompt, tasks.request(ctx, prompt)


# ----------------------------------------------------------------------------------------------------------------
# (a) a video question = its sampled frames given as images
# ----------------------------------------------------------------------------------------------------------------
def test_a_video_question_is_its_frames_as_images(owl3):
    """NExT-QA through `run_tasks` on the converted model with configs/owl3_eval.py: the request holds the release's
    8 frames, whole, one <|image|> each before the question; the same frames given as 8 still images (PNG) make the
    same request, logits and answer, and the answer is a full-forward greedy decode of that prompt."""
    ctx, tok = owl3.ctx, owl3.ctx.tok
    assert tasks.video_settings(owl3.config) == (8, "owl3")
    (owl3.tmp / "NExTVideo" / "1106").mkdir(parents=True)
    (owl3.tmp / "NExTVideo" / "1106" / "4010069381.mp4").write_bytes(pathlib.Path(owl3.movie).read_bytes())
    (owl3.tmp / "val.csv").write_text(
        "video,frame_count,width,height,question,answer,qid,type,a0,a1,a2,a3,a4\n"
        "4010069381,21,64,48,how does the square move,1,6,CH,it stays,left to right,it jumps,it spins,it shrinks\n")
    (owl3.tmp / "map.json").write_text('{"4010069381": "1106/4010069381"}')
    config = owl3_eval.get_config(owl3.tokenizer)
    config.eval.nextqa.update(annotations=str(owl3.tmp / "val.csv"), video_map=str(owl3.tmp / "map.json"),
                              videos=str(owl3.tmp / "NExTVideo"))
    recording = Recording(ctx.generator(1))
    ctx.generator = lambda batch: recording
    try:
        reports = {}
        tasks.run_tasks(ctx.model, owl3.params, config, ["nextqa"], [0], limit=1, reports=reports, context=ctx)
    finally:
        del ctx.generator  # the class's method again
    (row,) = reports["nextqa/0shot"]["predictions"]
    (video_request,) = recording.seen

    frames = release_frames(owl3.movie)
    want_pixels = np.stack([np.asarray(Image.fromarray(f).resize((28, 28), Image.BICUBIC)) for f in frames])
    np.testing.assert_array_equal(video_request.images, want_pixels)
    want_tokens = release_tokens(tok, "<|image|>" * 8 + row["question"])
    np.testing.assert_array_equal(video_request.tokens, want_tokens)

    prompt, as_images = layout(ctx, [png(f) for f in frames], row["question"])
    assert not prompt.cut  # 8 still images: none is cut
    np.testing.assert_array_equal(as_images.tokens, video_request.tokens)
    np.testing.assert_array_equal(as_images.images, video_request.images)
    np.testing.assert_array_equal(owl3.loaded.logits(as_images.tokens[None], as_images.images),
                                  owl3.loaded.logits(video_request.tokens[None], video_request.images))
    ids, _ = ctx.generator(1)(owl3.params, [as_images], gen.Sampling(16, stop_ids=tasks.stop_ids(ctx)))[0]
    answer = tok.decode(ids, mark_images=False).strip()
    want = greedy(owl3.loaded, want_tokens, want_pixels, set(tasks.stop_ids(ctx)), 16)
    assert want and ids == want and answer == row["prediction"] == tok.decode(want, mark_images=False).strip()

    # one frame of a video stays whole, where the same frame as the prompt's only still image is cut
    one, _ = layout(ctx, video_lib.video_frames(owl3.movie, 1, "owl3"))
    still, _ = layout(ctx, [png(release_frames(owl3.movie, 1)[0])])
    assert (int(np.sum(one.tokens == tok.image_id)), one.cut) == (1, False)
    rows, cols = release_grid(64, 48, 28)
    assert still.cut and int(np.sum(still.tokens == tok.image_id)) == rows * cols + 1


# ----------------------------------------------------------------------------------------------------------------
# (b) a still image cut as the release cuts it
# ----------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("size", [(64, 64), (300, 100), (300, 80), (37, 120), (60, 240), (100, 50), (80, 115),
                                  (19, 23)])  # every grid: 2x2, 1x3, 1x4, 3x1, 4x1, 2x3, 3x2, and a small image
def test_the_only_still_image_is_cut_as_the_release_cuts(owl3, size):
    """A question with one image: its prompt and pixels are the release's (written above); two images, a video's
    frames or eval.owl3_cut=False keep every image whole with one <|image|> each."""
    ctx, tok = owl3.ctx, owl3.ctx.tok
    img = Image.fromarray(np.random.default_rng(size[0]).integers(0, 256, size=size[::-1] + (3,), dtype=np.uint8))
    prompt, request = layout(ctx, [png(np.asarray(img))])
    text, pixels = release_cut(img, 28)
    np.testing.assert_array_equal(request.tokens, release_tokens(tok, text + QUESTION))
    np.testing.assert_array_equal(request.images, pixels)
    assert prompt.cut and request.images.dtype == np.uint8

    whole = np.asarray(img.resize((28, 28), Image.BICUBIC))
    _, two = layout(ctx, [png(np.asarray(img))] * 2)
    np.testing.assert_array_equal(two.tokens, release_tokens(tok, "<|image|><|image|>" + QUESTION))
    np.testing.assert_array_equal(two.images, np.stack([whole, whole]))
    off = tasks.Context.for_owl3(owl3.loaded.module, owl3.loaded.config, owl3_config(owl3, owl3_cut=False))
    _, uncut = layout(off, [png(np.asarray(img))])
    np.testing.assert_array_equal(uncut.tokens, release_tokens(tok, "<|image|>" + QUESTION))
    np.testing.assert_array_equal(uncut.images, whole[None])


def owl3_config(owl3, **eval_fields):
    config = owl3_eval.get_config(owl3.tokenizer)
    config.eval.update(eval_fields)
    return config


def test_evaluation_cuts_a_single_image_benchmark_and_not_distractors(owl3):
    """Through `run_tasks` (a scripted generator) on one MMBench-style TSV: MMBench's question (one image) is cut as
    above; the distractor task's 4 images stay whole, one <|image|> each; a bad eval.owl3_cut is one sentence."""
    from mm1_jax.eval import datasets
    from tests.test_eval_distractors import mmbench_tsv

    config = owl3_config(owl3)
    tsv = mmbench_tsv(owl3.tmp / "dev.tsv")
    config.eval.mmbench.update(annotations=tsv, answer_mode="letter")
    config.eval.mmbench_distractors.update(annotations=tsv, num_images=4)
    ctx = tasks.Context.for_owl3(owl3.loaded.module, owl3.loaded.config, config)
    script = Scripted(ctx.tok, ["A"] * 8)  # CircularEval: a request per rotation of the 4 options
    ctx.generator = lambda batch: script
    tasks.run_tasks(None, None, config, ["mmbench", "mmbench_distractors"], [0], limit=1, context=ctx)
    mmbench, distractors = script.seen[0], script.seen[4]
    task = datasets.TASKS["mmbench"]
    items, support, _ = tasks.load_task(task, config, 1)
    question = tasks.presentations(task, items[0], 0, support, 0, config.eval.mmbench.to_dict())[0].query.question
    text, pixels = release_cut(Image.open(io.BytesIO(items[0].images[0])).convert("RGB"), 28)
    np.testing.assert_array_equal(mmbench.tokens, release_tokens(ctx.tok, text + question))
    np.testing.assert_array_equal(mmbench.images, pixels)
    assert len(pixels) == 5  # 32 x 32: 2 rows 2 columns and the global view
    assert int(np.sum(distractors.tokens == ctx.tok.image_id)) == len(distractors.images) == 4
    assert "Cut to" not in ctx.tok.decode(distractors.tokens)
    with pytest.raises(ValueError, match=r"^eval.owl3_cut='yes' must be True \(cut a prompt's only still image"):
        bad = owl3_config(owl3)
        bad.eval = type(bad.eval)({**bad.eval.to_dict(), "owl3_cut": "yes"})  # a new ConfigDict takes a str
        tasks.Context.for_owl3(owl3.loaded.module, owl3.loaded.config, bad)


# ----------------------------------------------------------------------------------------------------------------
# (c) python -m mm1_jax.generate --video with a converted Owl3 directory, in this process
# ----------------------------------------------------------------------------------------------------------------
def test_generate_cli_on_a_video(owl3, capsys, monkeypatch):
    """main(argv) with configs/owl3_eval.py: the printed answer is the full-forward greedy decode of the release's
    prompt for the video's 8 frames, then for one photograph, cut; a misspelt override is one sentence."""
    from mm1_jax import generate
    from mm1_jax.runtime import console

    monkeypatch.setattr(console, "quiet_libraries", lambda: None)  # leaves this process's logging alone
    repo = pathlib.Path(__file__).parents[1]
    generate.main(["mm1_jax.generate", f"--config={repo}/configs/owl3_eval.py:{owl3.tokenizer}",
                   f"--checkpoint={owl3.path}", f"--video={owl3.movie}", f"--prompt={QUESTION}",
                   "--max_new_tokens=6"])
    printed = capsys.readouterr().out.strip()
    tok = owl3.ctx.tok
    frames = release_frames(owl3.movie)
    pixels = np.stack([np.asarray(Image.fromarray(f).resize((28, 28), Image.BICUBIC)) for f in frames])
    want = greedy(owl3.loaded, release_tokens(tok, "<|image|>" * 8 + QUESTION), pixels,
                  set(tasks.stop_ids(owl3.ctx)), 6)
    assert want and printed == tok.decode(want, mark_images=False).strip()

    photo = owl3.tmp / "photo.png"  # one still image: cut, as the evaluation cuts it
    Image.fromarray(np.random.default_rng(3).integers(0, 256, size=(40, 90, 3), dtype=np.uint8)).save(photo)
    generate.main(["mm1_jax.generate", f"--config={repo}/configs/owl3_eval.py:{owl3.tokenizer}",
                   f"--checkpoint={owl3.path}", f"--image={photo}", f"--prompt={QUESTION}", "--max_new_tokens=6"])
    printed = capsys.readouterr().out.strip()
    text, pixels = release_cut(Image.open(photo).convert("RGB"), 28)
    want = greedy(owl3.loaded, release_tokens(tok, text + QUESTION), pixels, set(tasks.stop_ids(owl3.ctx)), 6)
    assert want and printed == tok.decode(want, mark_images=False).strip()
    with pytest.raises(SystemExit, match=r"^error: --config.eval.owl3_cutt=false: the config has no field "):
        generate.main(["mm1_jax.generate", f"--config={repo}/configs/owl3_eval.py:{owl3.tokenizer}",
                       "--config.eval.owl3_cutt=false", f"--video={owl3.movie}"])
