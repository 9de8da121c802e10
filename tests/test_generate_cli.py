"""`python -m mm1_jax.generate`: your own image captioned or asked about, the answer printed as it is generated, and
equal to what the evaluation's batched generator gives for the same prompt; a bad image is one sentence first."""
import os
import subprocess
import sys

import numpy as np
import skimage.data
from PIL import Image

from mm1_jax.eval import prompts, tasks
from mm1_jax.runtime import generate as gen

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}


def test_generate_prints_what_the_generator_gives(tmp_path):
    from configs import tiny
    from mm1_jax.eval.results import load

    path = str(tmp_path / "chelsea.jpg")
    Image.open(os.path.join(os.path.dirname(skimage.data.__file__), "chelsea.png")).convert("RGB").save(path)
    question = "what colour is the circle ?"
    out = subprocess.run([sys.executable, "-m", "mm1_jax.generate", "--config=configs/tiny.py", f"--image={path}",
                          f"--prompt={question}", "--max_new_tokens=8", "--seed=3"], cwd=REPO, env=ENV,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    config = tiny.get_config()
    params, ctx = load(config, None, seed=3, batch_size=1)  # the same random initialisation
    with open(path, "rb") as f:
        item = prompts.Item("x", [f.read()], question=question)
    parts = prompts.item_parts(item, "vqa", tasks.image_loader(ctx.image_size, ctx.norm, ctx.split))
    prompt = prompts.build_prompt([], parts, ctx.tok, ctx.k, max_tokens=ctx.max_tokens - 8, max_images=ctx.max_images,
                                  image_shape=(ctx.image_size, ctx.image_size, 3), split=ctx.split)
    ids, _ = ctx.generator(1)(params, [gen.Request(prompt.tokens, prompt.images)],
                              gen.Sampling(max_new_tokens=8, stop_ids=tasks.stop_ids(ctx)))[0]
    expected = ctx.tok.decode(ids, mark_images=False).strip()
    assert len(ids) > 0 and out.stdout.strip() == expected
    assert not np.isnan(prompt.images).any() and prompt.images.shape[0] == 1


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
