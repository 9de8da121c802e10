"""mPLUG-Owl3's distractor task (arXiv 2408.04840v2 Sec. 4.5) on MMBench-format items, on both image routes of a tiny
MM1 (hyper attention at N = 1, 8, 64; image slots at N = 1, 8) and on a converted mPLUG-Owl3 directory: the prompts
follow the protocol, and each choice is the argmax of option log-likelihoods from a plain full forward of the model
(no padding, batching or cache), which the images demonstrably reach."""
import base64
import csv
import io
import os
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import skimage.data
from PIL import Image

from mm1_jax.eval import datasets, tasks
from mm1_jax.eval.prompts import TEMPLATES, build_prompt, item_parts
from tests.test_eval_benchmarks import byte_level_tokenizer

QWEN2_SPECIAL = ("<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|image|>")

PHOTOS = os.path.dirname(skimage.data.__file__)
SOURCES = ("astronaut.png", "coffee.png", "chelsea.png", "rocket.jpg", "motorcycle_left.png", "retina.jpg")
ROWS = 70  # enough others for 63 distractors


def mmbench_tsv(path, rows=ROWS):
    """An MMBench-dev-style TSV: 4 options, a letter answer, each row its own base64 photograph (a different crop)."""
    header = ["index", "question", "hint", "A", "B", "C", "D", "answer", "category", "image", "source",
              "l2-category", "split"]
    with open(path, "w", newline="") as f:
        w = csv.writer(f, delimiter="\t")
        w.writerow(header)
        for i in range(rows):
            with Image.open(os.path.join(PHOTOS, SOURCES[i % len(SOURCES)])) as img:
                img = img.convert("RGB")
                side = min(img.size) // 2 + 3 * i
                crop = img.crop((i, i, i + side, i + side)).resize((32, 32))
            buf = io.BytesIO()
            crop.save(buf, format="JPEG")
            w.writerow([i, f"What is shown in picture {i}?", "", "a cat", "a cup", "a rocket", "a person",
                        "ABCD"[i % 4], "image_scene", base64.b64encode(buf.getvalue()).decode(), "x", "y", "dev"])
    return str(path)


def test_distractor_prompts_follow_the_protocol(tmp_path):
    """N images, the item's own at the position 'In Image X' names, the others drawn from other items without
    repeats, a fresh draw per rotation of the options, reproducible."""
    from mm1_jax.eval import readers

    items, skipped = readers.read_mmbench("mmbench_distractors", annotations=mmbench_tsv(tmp_path / "dev.tsv"))
    assert len(items) == ROWS and not skipped
    task = datasets.TASKS["mmbench_distractors"]
    for n in (1, 8, 64):
        values = dict(num_images=n, answer_mode="likelihood")
        shown = tasks.presentations(task, items[5], 5, items, 0, values)
        assert len(shown) == 4  # CircularEval: one presentation per rotation of the 4 options
        draws = set()
        for r, p in enumerate(shown):
            q = p.query.question
            listing = " ".join(f"Image {j + 1}: <image>" for j in range(n))
            x = int(re.match(rf"{re.escape(listing)}\. In Image (\d+), What is shown in picture 5\?", q).group(1))
            assert 1 <= x <= n and len(p.query.images) == n
            assert p.query.images[x - 1] is items[5].images[0]
            others = [im for j, im in enumerate(p.query.images) if j != x - 1]
            owners = [next(i for i, it in enumerate(items) if it.images[0] is im) for im in others]
            assert 5 not in owners and len(set(owners)) == n - 1
            assert p.options == ["a cat", "a cup", "a rocket", "a person"][r:] + ["a cat", "a cup", "a rocket",
                                                                                   "a person"][:r]
            assert p.options[p.answer] == "a cup"  # row 5's answer: B
            draws.add((x, tuple(owners)))
        assert len(draws) == (1 if n == 1 else 4)
        again = tasks.presentations(task, items[5], 5, items, 0, values)
        assert [p.query.question for p in again] == [p.query.question for p in shown]


def _mm1(route, n):
    from configs import tiny
    from mm1_jax.models import build_model
    from mm1_jax.runtime import checkpoint

    config = tiny.get_config()
    if route == "hyper":
        config.model.decoder.hyper_layers = (1,)
        config.model.connector.update(name="mlp", num_tokens=64)
    config.data.max_images = config.model.max_images = max(n, 8)
    config.data.seq_len = 512
    model = build_model(config.model)
    params = checkpoint.load_params(model, config.model, None, seed=3)
    return config, model, params


PAD_TO = 512  # right padding: a causal model's logits at a position never see later tokens


def _forward(apply):
    """log-probs [T, V] of one unpadded sequence, computed on it right-padded to PAD_TO (one compilation)."""
    jitted = jax.jit(lambda ids, images: jax.nn.log_softmax(apply(ids, images).astype(jnp.float32), axis=-1))

    def run(ids, images):
        padded = np.zeros((1, PAD_TO), np.int32)
        padded[0, :len(ids)] = ids
        return np.asarray(jitted(jnp.asarray(padded), jnp.asarray(images)))[0, :len(ids)]

    return run


def _mm1_forward(ctx, model, params):
    def apply(ids, images):
        slots = ids == ctx.tok.image_id
        index = jnp.where(slots, jnp.cumsum(slots, axis=1) - 1, -1).astype(jnp.int32)
        return model.apply({"params": params}, ids, images=images[None], image_token_index=index,
                           positions=jnp.arange(ids.shape[1])[None], segment_ids=jnp.ones_like(ids))["logits"]

    return _forward(apply)


def _option_scores(forward, tok, prompt, options, images=None):
    """log p(option | prompt) summed over the option's tokens."""
    out = []
    for option in options:
        cont = tok.encode(option)
        logp = forward(np.concatenate([prompt.tokens, cont]), prompt.images if images is None else images)
        out.append(sum(logp[len(prompt.tokens) - 1 + j, t] for j, t in enumerate(cont)))
    return np.array(out)


def _prompt(ctx, task, item, index, pool, values):
    p = tasks.presentations(task, item, index, pool, 0, values)[0]
    load = tasks.image_loader(ctx.image_size, ctx.norm, ctx.split)
    template = TEMPLATES[ctx.template]
    query = item_parts(p.query, task.fmt, load, template=template)
    prompt = build_prompt([], query, ctx.tok, ctx.k, max_tokens=ctx.max_tokens, max_images=ctx.max_images,
                          image_shape=(ctx.image_size,) * 2 + (3,), bos=template.bos, start=template.start)
    return p, prompt


@pytest.mark.slow
@pytest.mark.parametrize("route,n", [("hyper", 1), ("hyper", 8), ("hyper", 64), ("slots", 1), ("slots", 8)])
def test_distractor_task_on_both_image_routes(tmp_path, route, n):
    from mm1_jax.eval import readers

    config, model, params = _mm1(route, n)
    config.eval.mmbench_distractors.update(annotations=mmbench_tsv(tmp_path / "dev.tsv"), num_images=n,
                                           answer_mode="likelihood")
    ctx = tasks.Context.from_config(model, config, batch_size=4)
    assert ctx.k == (1 if route == "hyper" else 16)
    items, _ = readers.read_mmbench("mmbench_distractors", annotations=config.eval.mmbench_distractors.annotations)
    reports = {}
    scores = tasks.run_tasks(model, params, config, ["mmbench_distractors"], [0], limit=1, reports=reports,
                             context=ctx)
    report = reports["mmbench_distractors/0shot"]
    assert not report["skipped"] and len(report["predictions"]) == 4 and report["truncated"] == 0
    assert set(scores) == {"mmbench_distractors/0shot/circular_accuracy", "mmbench_distractors/0shot/accuracy"}
    task = datasets.TASKS["mmbench_distractors"]
    shown, prompt = _prompt(ctx, task, items[0], 0, items, dict(num_images=n, answer_mode="likelihood"))
    assert len(prompt.images) == n and int(np.sum(prompt.tokens == ctx.tok.image_id)) == n * ctx.k
    forward = _mm1_forward(ctx, model, params)
    direct = _option_scores(forward, ctx.tok, prompt, shown.options)
    assert report["predictions"][0]["choice"] == shown.options[int(np.argmax(direct))]
    if n > 1:  # the images reach the scores: the target swapped with a distractor changes them
        x = int(re.search(r"In Image (\d+),", shown.query.question).group(1)) - 1
        swapped = prompt.images.copy()
        other = (x + 1) % n
        swapped[[x, other]] = swapped[[other, x]]
        moved = _option_scores(forward, ctx.tok, prompt, shown.options, images=swapped)
        assert np.max(np.abs(moved - direct)) > 1e-4


def converted_owl3(tmp_path) -> tuple[str, str]:
    """(a Qwen2-style byte-level tokenizer.json, a converted tiny mPLUG-Owl3 directory with perturbed weights)."""
    import flax.linen as nn

    from mm1_jax.convert import checkpoint as converted
    from mm1_jax.data.tokenizer import load_tokenizer
    from mm1_jax.models import build_model
    from mm1_jax.models.owl3 import tiny_owl3_config

    tokenizer = byte_level_tokenizer(tmp_path / "tokenizer.json", QWEN2_SPECIAL)
    tok = load_tokenizer(tokenizer)
    cfg = tiny_owl3_config(vocab_size=tok.vocab_size)
    cfg.image_token_id = tok.image_id
    module = build_model(cfg)
    ids = np.array([[1, tok.image_id, 2]], np.int32)
    params = nn.unbox(module.init(jax.random.PRNGKey(0), ids, np.zeros((1, 28, 28, 3), np.float32))["params"])
    params = jax.tree.map(lambda x: np.asarray(x) + 0.05 * np.random.default_rng(1).standard_normal(x.shape)
                          .astype(np.float32), params)
    path = str(tmp_path / "owl3")
    converted.write_converted(converted.Converted("owl3", cfg, params, {"model_type": "mplugowl3"}), path)
    return tokenizer, path


@pytest.mark.slow
def test_converted_owl3_runs_the_tasks(tmp_path):
    """A converted mPLUG-Owl3 directory through the eval command's loader: ChatML prompts without <bos>, one
    placeholder per image; its greedy VQA answer equals a plain full-forward greedy decode, and its distractor choice
    the argmax of full-forward option likelihoods."""
    from configs import tiny
    from mm1_jax.data.tokenizer import load_tokenizer
    from mm1_jax.eval.results import load

    config = tiny.get_config()  # its embedded_vqa items; the tokenizer as Qwen2's special tokens are
    config.data.tokenizer, path = converted_owl3(tmp_path)
    config.eval.owl3_cut = False  # images whole, as `_prompt` lays them out (the release's cutting: test_owl3_video)
    tok = load_tokenizer(config.data.tokenizer)
    assert tok.special["<pad>"] == tok.eos_id == 0 and tok.image_id == 3  # <|endoftext|>, <|image|>
    config.eval.mmbench_distractors.update(annotations=mmbench_tsv(tmp_path / "dev.tsv"), num_images=8,
                                           answer_mode="likelihood")
    loaded_params, ctx = load(config, path, 0, 4)
    assert (ctx.template, ctx.k, ctx.image_token_id, ctx.image_size) == ("chatml", 1, tok.image_id, 28)
    reports = {}
    tasks.run_tasks(ctx.model, loaded_params, config, ["embedded_vqa", "mmbench_distractors"], [0], limit=2,
                    reports=reports, context=ctx)
    vqa = reports["embedded_vqa/0shot"]
    assert not vqa["skipped"] and len(vqa["predictions"]) == 2
    task = datasets.TASKS["embedded_vqa"]
    items, _, _ = tasks.load_task(task, config, 2)
    _, prompt = _prompt(ctx, task, items[0], 0, items, {})
    text = tok.decode(prompt.tokens)
    assert text.startswith("<|im_start|>system\n<|im_end|>\n<|im_start|>user\n <image> is there")  # build_text_qwen
    assert text.endswith("<|im_end|>\n<|im_start|>assistant\n")
    assert tok.bos_id not in prompt.tokens
    forward = _forward(lambda ids, images: ctx.model.apply({"params": loaded_params}, ids, images,
                                                            image_token_id=tok.image_id)["logits"])
    ids, stops, new = list(prompt.tokens), set(tasks.stop_ids(ctx)), []
    for _ in range(task.max_new_tokens):  # greedy, one full forward per new token
        nxt = int(np.argmax(forward(np.array(ids), prompt.images)[-1]))
        if nxt in stops:
            break
        new.append(nxt)
        ids.append(nxt)
    assert vqa["predictions"][0]["prediction"] == tok.decode(new, mark_images=False).strip()

    dis = reports["mmbench_distractors/0shot"]
    assert not dis["skipped"] and len(dis["predictions"]) == 8
    from mm1_jax.eval import readers

    mmb, _ = readers.read_mmbench("mmbench_distractors", annotations=config.eval.mmbench_distractors.annotations)
    shown, prompt = _prompt(ctx, datasets.TASKS["mmbench_distractors"], mmb[0], 0, mmb,
                            dict(num_images=8, answer_mode="likelihood"))
    scores = _option_scores(forward, tok, prompt, shown.options)
    assert dis["predictions"][0]["choice"] == shown.options[int(np.argmax(scores))]


def test_embedded_distractor_task_and_a_section_per_n():
    """`embedded_distractors` draws the embedded colour questions (`embedded.multiple_choice`) and their distractors
    from its 200 held-out items; a config section of its kind adds another N, checked like any task's."""
    from configs import tiny
    from mm1_jax.eval import embedded

    config = tiny.get_config()
    config.eval.distractors_8 = dict(kind="embedded_distractors", num_images=8)
    datasets.check_eval_config(config.eval, ["embedded_distractors", "distractors_8"])
    task = datasets.task_for("distractors_8", config.eval)
    items, pool, skipped = tasks.load_task(task, config, 5)
    reference = embedded.multiple_choice(200, "eval")
    assert [i.id for i in items] == [i.id for i in reference[:5]] and len(pool) == 200 and skipped == []
    values = datasets.task_config(task, config.eval)
    shown = tasks.presentations(task, items[0], 0, pool, 0, values)
    assert len(shown) == 3 and all(len(p.query.images) == 8 for p in shown)  # 3 rotations, 8 images each
    assert all(p.query.images.count(items[0].images[0]) == 1 for p in shown)
    assert re.match(r"Image 1: <image> .* Image 8: <image>\. In Image [1-8], what colour is the ", shown[0].query.question)
    config.eval.distractors_8.num_images = 0
    with pytest.raises(ValueError, match=r"eval.distractors_8.num_images=0 must be a positive integer"):
        datasets.check_eval_config(config.eval, ["distractors_8"])
