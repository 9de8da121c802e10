"""`python -m mm1_jax.generate`: your own image captioned or asked about, the answer printed as it is generated, and
equal to what the evaluation's batched generator gives for the same prompt, on a trainer checkpoint and on a converted
mPLUG-Owl3; a bad image is one sentence first."""
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest
import skimage.data
from PIL import Image

from mm1_jax.eval import prompts, tasks
from mm1_jax.runtime import generate as gen
from tests.support import user_env

pytestmark = pytest.mark.slow  # processes started, models trained: see pyproject.toml

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = user_env()


def _photo(tmp_path, name: str) -> str:
    path = str(tmp_path / f"{name}.jpg")
    Image.open(os.path.join(os.path.dirname(skimage.data.__file__), f"{name}.png")).convert("RGB").save(path)
    return path


def _expected(ctx, params, paths, question, max_new_tokens, frames=()):
    """What the evaluation's batched generator answers for the same images and prompt (greedy); `frames`: a video's
    frame references (mm1_jax.data.video.video_frames), before the images."""
    from mm1_jax.eval.prompts import TEMPLATES

    template = TEMPLATES[ctx.template]
    pictures = list(frames) + [pathlib.Path(p).read_bytes() for p in paths]
    item = prompts.Item("x", pictures, question=question)
    load = tasks.image_loader(ctx.image_size, ctx.norm, ctx.split)
    parts = prompts.item_parts(item, "vqa" if question else "caption", load, template=template)
    prompt = prompts.build_prompt([], parts, ctx.tok, ctx.k, max_tokens=ctx.max_tokens - max_new_tokens,
                                  max_images=ctx.max_images, image_shape=(ctx.image_size, ctx.image_size, 3),
                                  split=ctx.split, bos=template.bos, start=template.start)
    assert prompt.images.shape[0] >= len(paths)
    ids, _ = ctx.generator(1)(params, [gen.Request(prompt.tokens, prompt.images)],
                              gen.Sampling(max_new_tokens=max_new_tokens, stop_ids=tasks.stop_ids(ctx)))[0]
    return ctx.tok.decode(ids, mark_images=False).strip()


def test_generate_on_a_checkpoint_with_two_photographs(tmp_path):
    """The README's command on a trainer checkpoint and two photographs (scikit-image's astronaut and coffee): the
    printed caption is the generator's on the restored parameters (perturbed, so no initialisation reproduces them).
    Then a video (written with PyAV) and one photograph: its 2 sampled frames come first, as a video question's."""
    import jax

    from configs import tiny
    from mm1_jax.eval.results import load
    from mm1_jax.runtime import checkpoint as ckpt_lib

    config = tiny.get_config()
    params, _ = load(config, None, seed=5, batch_size=1)
    rng = np.random.default_rng(0)
    params = jax.tree.map(lambda x: np.asarray(x) + 0.02 * rng.standard_normal(x.shape).astype(np.float32), params)
    manager = ckpt_lib.make_manager(str(tmp_path / "run" / "checkpoints"), keep=1, async_save=False)
    ckpt_lib.save(manager, 7, {"params": params}, "{}")
    manager.wait_until_finished()
    manager.close()
    paths = [_photo(tmp_path, "astronaut"), _photo(tmp_path, "coffee")]
    out = subprocess.run([sys.executable, "-m", "mm1_jax.generate", "--config=configs/tiny.py",
                          f"--checkpoint={tmp_path / 'run'}", *[f"--image={p}" for p in paths],
                          "--max_new_tokens=8"], cwd=REPO, env=ENV, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    restored, ctx = load(config, str(tmp_path / "run"), seed=0, batch_size=1)
    jax.tree.map(np.testing.assert_array_equal, jax.device_get(restored), params)
    expected = _expected(ctx, restored, paths, "", 8)
    assert expected and out.stdout.strip() == expected
    from mm1_jax.data import video
    from tests.test_video import clip, write_video

    movie = write_video(tmp_path / "clip.mp4", clip(n=12), "libx264rgb", "rgb24", {"qp": "0"})
    out = subprocess.run([sys.executable, "-m", "mm1_jax.generate", "--config=configs/tiny.py",
                          f"--checkpoint={tmp_path / 'run'}", f"--video={movie}", f"--image={paths[1]}",
                          "--config.eval.video_frames=2", "--prompt=What changes?", "--max_new_tokens=8"],
                         cwd=REPO, env=ENV, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    expected = _expected(ctx, restored, paths[1:], "What changes?", 8, video.video_frames(movie, 2, "uniform"))
    assert expected and out.stdout.strip() == expected


def test_generate_on_a_converted_owl3(tmp_path):
    """A converted mPLUG-Owl3 directory through the same command (ChatML, one <|image|> per image)."""
    from configs import owl3_eval
    from mm1_jax.eval.results import load
    from tests.test_eval_distractors import converted_owl3

    tokenizer, path = converted_owl3(tmp_path)
    paths = [_photo(tmp_path, "astronaut"), _photo(tmp_path, "coffee")]
    question = "which picture shows a cup ?"
    out = subprocess.run([sys.executable, "-m", "mm1_jax.generate", f"--config=configs/owl3_eval.py:{tokenizer}",
                          f"--checkpoint={path}", *[f"--image={p}" for p in paths], f"--prompt={question}",
                          "--max_new_tokens=6"], cwd=REPO, env=ENV, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    params, ctx = load(owl3_eval.get_config(tokenizer), path, 0, 1)
    assert ctx.template == "chatml"
    expected = _expected(ctx, params, paths, question, 6)
    assert expected and out.stdout.strip() == expected


def test_a_bad_image_is_one_sentence(tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not a jpeg")
    out = subprocess.run([sys.executable, "-m", "mm1_jax.generate", "--config=configs/tiny.py", f"--image={bad}"],
                         cwd=REPO, env=ENV, capture_output=True, text=True, timeout=300)
    assert out.returncode == 1 and out.stderr.strip().startswith(f"error: --image={bad}: cannot decode image")
    out = subprocess.run([sys.executable, "-m", "mm1_jax.generate", "--config=configs/tiny.py",
                          f"--image={tmp_path}/none.jpg"], cwd=REPO, env=ENV, capture_output=True, text=True,
                         timeout=300)
    assert out.stderr.strip() == f"error: --image={tmp_path}/none.jpg: No such file or directory."
    out = subprocess.run([sys.executable, "-m", "mm1_jax.generate", "--config=configs/tiny.py", f"--video={bad}"],
                         cwd=REPO, env=ENV, capture_output=True, text=True, timeout=300)
    assert out.returncode == 1 and out.stderr.strip().startswith(f"error: video {str(bad)!r} ") and \
        "\n" not in out.stderr.strip(), out.stderr
