"""LLaVA models in the eval harness: our image preprocessing against transformers' processors, and a tiny random
LLaVA-OneVision built in transformers, converted, and evaluated through the eval command's loader.

The preprocessing (`data.llava_images`) equals transformers' PIL-backend processors (LLaVA-OneVision, LLaVA-NeXT,
SigLIP, CLIP; tiny configs, no downloads) exactly on images of several shapes and modes. On the converted model:
a generation task's prediction is transformers' greedy `generate` on the same prompt (laid out in the release's chat
template, each <image> expanded as transformers' processor expands it, its pixels from transformers' processor),
a likelihood choice is the argmax of transformers' option log-probs (ours equal theirs to 2e-5), and the distractor
task (`mmbench_distractors` on a tiny MMBench TSV) runs end to end with N = 3 images.
"""
import numpy as np
import pytest
import torch
import transformers as T
from PIL import Image
from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil
from transformers.models.llava_next.image_processing_pil_llava_next import LlavaNextImageProcessorPil
from transformers.models.llava_onevision.image_processing_pil_llava_onevision import LlavaOnevisionImageProcessorPil
from transformers.models.siglip.image_processing_pil_siglip import SiglipImageProcessorPil

from mm1_jax.convert import llava as convert_llava
from mm1_jax.convert.__main__ import main as convert_main
from mm1_jax.data import llava_images
from mm1_jax.data.tokenizer import load_tokenizer
from mm1_jax.eval import datasets, tasks
from mm1_jax.eval.prompts import Item
from mm1_jax.runtime import generate as gen
from tests.test_eval_benchmarks import byte_level_tokenizer
from tests.test_eval_distractors import mmbench_tsv
from tests.test_llava_onevision import PINPOINTS, QWEN2, SIGLIP, _perturb

QWEN2_SPECIAL = ("<|endoftext|>", "<|im_start|>", "<|im_end|>", "<image>")  # LLaVA's Qwen2 tokenizer's roles


def _image(height, width, seed=0, mode="RGB"):
    channels = {"RGB": 3, "RGBA": 4, "L": 1}[mode]
    pixels = np.random.default_rng(seed).integers(0, 256, size=(height, width, channels), dtype=np.uint8)
    return Image.fromarray(pixels[..., 0] if mode == "L" else pixels, mode)


# ----------------------------------------------------------------------------------------------------------------
# Preprocessing
# ----------------------------------------------------------------------------------------------------------------
SHAPES = [(32, 32, "RGB"), (20, 100, "RGB"), (100, 100, "RGB"), (45, 17, "L"), (150, 130, "RGBA"), (33, 70, "RGB")]


def _check(theirs, ours, want_sizes=True):
    padded = llava_images.padded_batch(ours["pixel_values"])
    pixels = theirs["pixel_values"]
    padded = padded[:, 0] if pixels.ndim == 4 else padded  # the plain processors: one view per image
    assert pixels.shape == padded.shape and pixels.dtype == padded.dtype == np.float32
    np.testing.assert_array_equal(pixels, padded)
    if want_sizes:
        np.testing.assert_array_equal(theirs["image_sizes"], ours["image_sizes"])


def test_preprocessing_equals_transformers():
    images = [_image(h, w, i, mode) for i, (h, w, mode) in enumerate(SHAPES)]
    onevision = LlavaOnevisionImageProcessorPil(size={"height": 32, "width": 32}, image_grid_pinpoints=PINPOINTS)
    nxt = LlavaNextImageProcessorPil(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32},
                                     image_grid_pinpoints=PINPOINTS)
    siglip = SiglipImageProcessorPil(size={"height": 32, "width": 32}, image_mean=[0.5] * 3, image_std=[0.5] * 3)
    clip = CLIPImageProcessorPil(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    for hf, plain in ((onevision, False), (nxt, False), (siglip, True), (clip, True)):
        proc = llava_images.ImageProcessor.from_hf(hf.to_dict())
        _check(hf(images, return_tensors="np"), llava_images.process(images, proc), want_sizes=not plain)
    # LLaVA-OneVision's prompts of several images: each padded square with the mean colour (CLIP's: 122, 116, 104)
    proc = llava_images.ImageProcessor.from_hf(onevision.to_dict())
    theirs = onevision([images[:3], images[3:]], return_tensors="np")
    ours = llava_images.process(images, proc, batch_num_images=[3, 3])
    _check(theirs, ours)
    assert ours["batch_num_images"] == theirs["batch_num_images"].tolist() == [3, 3]
    assert [len(v) for v in ours["pixel_values"]] == [1] * 6
    # the defaults of a llava-hf release's style are its processor's (SigLIP statistics, the tile size)
    cfg = convert_llava.config_from_hf(T.LlavaOnevisionConfig(vision_config=SIGLIP, text_config=QWEN2, image_token_index=7,
                                                              image_grid_pinpoints=PINPOINTS).to_dict())
    default = llava_images.ImageProcessor.for_model(cfg)
    want = LlavaOnevisionImageProcessorPil(size={"height": 32, "width": 32}, image_grid_pinpoints=PINPOINTS,
                                           image_mean=[0.5] * 3, image_std=[0.5] * 3)
    assert default == llava_images.ImageProcessor.from_hf(want.to_dict())
    _check(want(images, return_tensors="np"), llava_images.process(images, default))


# ----------------------------------------------------------------------------------------------------------------
# A converted tiny LLaVA-OneVision through the eval harness
# ----------------------------------------------------------------------------------------------------------------
def _hf_processor(image_token_id):
    """transformers' LLaVA-OneVision processor's text expansion at the tiny sizes (no tokenizer needed)."""
    processor = object.__new__(T.LlavaOnevisionProcessor)
    processor.image_processor = LlavaOnevisionImageProcessorPil(
        size={"height": 32, "width": 32}, image_grid_pinpoints=PINPOINTS, image_mean=[0.5] * 3, image_std=[0.5] * 3)
    processor.num_image_tokens, processor.vision_aspect_ratio = 16, "anyres_max_4"
    processor.vision_feature_select_strategy, processor.image_token = "full", "<image>"
    return processor


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory):
    """A tiny random LLaVA-OneVision (its vocabulary a Qwen2-style byte-level tokenizer's), converted by the command
    line, loaded by the eval command's loader and run on embedded_vqa and mmbench_distractors (N = 3, likelihood)."""
    from configs import llava_eval
    from mm1_jax.eval.results import load

    root = tmp_path_factory.mktemp("llava_eval")
    tokenizer = byte_level_tokenizer(root / "tokenizer.json", QWEN2_SPECIAL)
    tok = load_tokenizer(tokenizer)
    assert tok.pad_id == tok.eos_id == 0 and tok.image_id == 3  # <|endoftext|>, <image>
    config = T.LlavaOnevisionConfig(vision_config=SIGLIP, text_config={**QWEN2, "vocab_size": tok.vocab_size},
                                    image_token_index=tok.image_id, video_token_index=tok.vocab_size - 1,
                                    image_grid_pinpoints=PINPOINTS, vision_feature_layer=-1,
                                    vision_feature_select_strategy="full", vision_aspect_ratio="anyres_max_4")
    torch.manual_seed(0)
    model = _perturb(T.LlavaOnevisionForConditionalGeneration(config))
    with torch.no_grad():
        model.model.image_newline.add_(1.0)  # far from the features, so a misplaced newline shows
    hf, out = str(root / "hf"), str(root / "out")
    model.save_pretrained(hf)
    assert convert_main(["--src", hf, "--dst", out, "--no-progress"]) == 0
    cfg = llava_eval.get_config(tokenizer)
    cfg.data.seq_len = 1024
    cfg.eval.mmbench_distractors.update(annotations=mmbench_tsv(root / "dev.tsv", rows=8), num_images=3,
                                        answer_mode="likelihood")
    datasets.check_eval_config(cfg.eval, ["embedded_vqa", "mmbench_distractors"])
    params, ctx = load(cfg, out, 0, 4)
    assert (ctx.template, ctx.k, ctx.image_token_id, ctx.llava.processor.style) == ("llava", 1, 3, "llava_onevision")
    reports = {}
    tasks.run_tasks(ctx.model, params, cfg, ["embedded_vqa", "mmbench_distractors"], [0], limit=2, reports=reports,
                    context=ctx)
    return {"model": model, "config": cfg, "ctx": ctx, "params": params, "reports": reports, "tok": tok}


def _prompt(ctx, task, item, pool, values, max_tokens):
    """The first presentation of item 0 as `evaluate` lays it out for a LLaVA context."""
    shown = tasks.presentations(task, item, 0, pool, 0, values)[0]
    query = tasks.llava_parts(shown.query, task.fmt, tasks.llava_loader(), template=tasks.LLAVA_TEMPLATE)
    return shown, tasks.llava_prompt(ctx, [], query, max_tokens)


def _hf_features(prompt, processor):
    """transformers' processor's pixels for one prompt's images (their count decides any-res, as for ours)."""
    pics = [image.decode() for image in prompt.images]
    features = processor.image_processor([pics], return_tensors="pt")
    counts = [len(processor.replace_image_token(features, i)) // len("<image>") for i in range(len(pics))]
    assert counts == [p.tokens for p in prompt.plans]  # the processor expands <image> as we do
    return features


@pytest.mark.slow
def test_generation_equals_transformers_greedy(evaluated):
    ctx, tok, reports = evaluated["ctx"], evaluated["tok"], evaluated["reports"]
    vqa = reports["embedded_vqa/0shot"]
    assert not vqa["skipped"] and len(vqa["predictions"]) == 2
    task = datasets.TASKS["embedded_vqa"]
    items, _, _ = tasks.load_task(task, evaluated["config"], 2)
    new = tasks.new_tokens(task, ctx)
    _, prompt = _prompt(ctx, task, items[0], items, {}, ctx.max_tokens - new)
    (plan,) = prompt.plans
    assert plan.grid == (2, 2) and plan.tokens == 16 + 8 * 9  # one 64 px image alone: any-res, newlines per row
    # the release's chat template: '<|im_start|>user ' <image> '\n' question '<|im_end|><|im_start|>assistant\n'
    want = (tok.encode("<|im_start|>user ") + [tok.image_id] * plan.tokens + tok.encode("\n" + items[0].question)
            + tok.encode("<|im_end|><|im_start|>assistant\n"))
    assert prompt.tokens.tolist() == want
    features = _hf_features(prompt, _hf_processor(tok.image_id))
    stops = list(tasks.stop_ids(ctx))
    with torch.no_grad():
        out = evaluated["model"].generate(input_ids=torch.tensor(prompt.tokens[None].astype(np.int64)), **features,
                                          max_new_tokens=new, do_sample=False, eos_token_id=stops,
                                          pad_token_id=tok.pad_id)[0, len(prompt.tokens):].tolist()
    theirs = out[:next((i for i, t in enumerate(out) if t in stops), len(out))]
    assert len(theirs) >= 2, out  # a real answer, not an immediate stop
    assert vqa["predictions"][0]["prediction"] == tok.decode(theirs, mark_images=False).strip()


@pytest.mark.slow
def test_likelihood_choice_equals_transformers_log_probs(evaluated):
    ctx, tok, params = evaluated["ctx"], evaluated["tok"], evaluated["params"]
    dis = evaluated["reports"]["mmbench_distractors/0shot"]
    assert not dis["skipped"] and not dis.get("stopped") and len(dis["predictions"]) == 8  # 2 questions x 4 passes
    assert "circular_accuracy" in dis["scores"]
    task = datasets.TASKS["mmbench_distractors"]
    items, pool, _ = tasks.load_task(task, evaluated["config"], 2)
    values = datasets.task_config(task, evaluated["config"].eval)
    shown, prompt = _prompt(ctx, task, items[0], pool, values, ctx.max_tokens)
    assert len(prompt.images) == 3 and [p.tokens for p in prompt.plans] == [17] * 3  # base views and a newline each
    assert tok.decode(prompt.tokens).startswith("<|im_start|>user \nImage 1: <image> Image 2: <image> Image 3:")
    features = _hf_features(prompt, _hf_processor(tok.image_id))
    theirs = []
    for option in shown.options:
        cont = tok.encode(option)
        ids = torch.tensor(np.concatenate([prompt.tokens, cont])[None].astype(np.int64))
        with torch.no_grad():
            logp = torch.log_softmax(evaluated["model"](input_ids=ids, **features).logits[0].double(), -1).numpy()
        theirs.append(sum(logp[len(prompt.tokens) - 1 + j, t] for j, t in enumerate(cont)))
    theirs = np.array(theirs)
    request = tasks._request(ctx, prompt)
    ours = gen.score_continuations(ctx.model, params, [request] * len(shown.options),
                                   [tok.encode(o) for o in shown.options], pad_id=tok.pad_id, **ctx.inputs)
    assert np.max(np.abs(np.array(ours) - theirs)) < 2e-5, (ours, theirs)
    assert np.sort(theirs)[-1] - np.sort(theirs)[-2] > 1e-3  # a clear winner
    assert dis["predictions"][0]["choice"] == shown.options[int(np.argmax(theirs))]


def test_expanded_prompts_drop_demonstrations_to_fit(tmp_path):
    """Demonstrations are dropped until the prompt fits once every <image> is expanded; the layout refuses tiles
    that do not match the plans."""
    tok = load_tokenizer(byte_level_tokenizer(tmp_path / "tokenizer.json", QWEN2_SPECIAL))
    cfg = convert_llava.config_from_hf(T.LlavaOnevisionConfig(
        vision_config=SIGLIP, text_config=QWEN2, image_token_index=tok.image_id, image_grid_pinpoints=PINPOINTS,
        vision_aspect_ratio="anyres_max_4").to_dict())
    ctx = tasks.Context(model=None, tok=tok, k=1, image_size=32, norm="siglip", max_tokens=0, max_images=8,
                        template="llava", image_token_id=tok.image_id,
                        llava=tasks.LlavaInputs(cfg, llava_images.ImageProcessor.for_model(cfg)))
    load = tasks.llava_loader()
    pixels = np.asarray(_image(40, 70, 1))
    item = Item(id="q", images=[pixels], question="what is it?")
    demos = [tasks.llava_parts(item, "vqa", load, answer="a cat", template=tasks.LLAVA_TEMPLATE) for _ in range(3)]
    query = tasks.llava_parts(item, "vqa", load, template=tasks.LLAVA_TEMPLATE)
    full = tasks.llava_prompt(ctx, demos, query, 10_000)
    assert full.dropped_demos == 0 and [p.tokens for p in full.plans] == [17] * 4  # 4 images: base views
    assert tok.decode(full.tokens).count("<|im_start|>assistant \na cat<|im_end|>") == 3
    fitted = tasks.llava_prompt(ctx, demos, query, len(full.tokens) - 1)
    assert fitted.dropped_demos == 1 and len(fitted.tokens) <= len(full.tokens) - 1 and len(fitted.images) == 3
    alone = tasks.llava_prompt(ctx, [], query, 10_000)  # the query's image alone in its prompt: any-res
    assert alone.plans[0].tiles > 1 and alone.plans[0].tokens > 17
    request = tasks._request(ctx, alone)
    assert request.images.shape == (alone.plans[0].tiles, 32, 32, 3) and request.images.dtype == np.float32
    layout = gen.LlavaImages(tok.image_id).bind([request])
    padded = gen.left_pad([request.tokens], length=len(request.tokens), pad_id=0)
    with pytest.raises(ValueError, match=r"request 0: .* image tokens .* but its 1 image plans take"):
        layout.arrays([gen.Request(request.tokens, request.images[:1], request.plans)], padded)
