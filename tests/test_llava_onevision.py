"""LLaVA-OneVision (and LLaVA-NeXT, LLaVA) converted both ways, against transformers on tiny random models built here.

The concatenation baseline of mPLUG-Owl3 (arXiv 2408.04840v2, Sec. 4.5). Pixels come from transformers' own image
processors (PIL backends, tiny configs, no downloads); logits are compared in float32 for an image at the base
resolution, any-res images whose tile grid is larger than 1x1 (unpadded; shrunk by anyres_max), several images in
one prompt, then after the way back to Hugging Face (transformers loads it and gives the same logits).
"""
import json
import os

import numpy as np
import pytest
import torch
import transformers as T
from PIL import Image
from transformers.models.llava_next.image_processing_pil_llava_next import LlavaNextImageProcessorPil
from transformers.models.llava_onevision.image_processing_pil_llava_onevision import LlavaOnevisionImageProcessorPil

from mm1_jax import convert, pretrained
from mm1_jax.convert import checkpoint
from mm1_jax.convert import llava as convert_llava
from mm1_jax.convert.__main__ import main
from mm1_jax.convert.tensor_files import CheckpointError, open_checkpoint, write_safetensors
from mm1_jax.models import llava
from tests.test_convert import _perturb

SIGLIP = dict(model_type="siglip_vision_model", hidden_size=32, intermediate_size=48, num_hidden_layers=2,
              num_attention_heads=2, image_size=32, patch_size=8, vision_use_head=False)
QWEN2 = dict(model_type="qwen2", vocab_size=120, hidden_size=48, intermediate_size=64, num_hidden_layers=2,
             num_attention_heads=4, num_key_value_heads=2, rope_theta=5000.0)
PINPOINTS = [[32 * i, 32 * j] for i in (1, 2, 3) for j in (1, 2, 3)]  # tiles of 32 px, grids up to 3x3
TOKEN = 119
TOLERANCE = 1e-5  # float32, max abs difference of logits


def _image(height, width, seed=0):
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, size=(height, width, 3), dtype=np.uint8))


def _prompts(counts, seed=0, text=3):
    """Rows of text around each image's expanded tokens, all rows one length (filled with text at the end)."""
    rng = np.random.default_rng(seed)
    rows = [np.concatenate([rng.integers(0, 100, text)] + [np.concatenate([np.full(n, TOKEN), rng.integers(0, 100, 2)])
                                                           for n in row]) for row in counts]
    width = max(len(r) for r in rows)
    return np.stack([np.concatenate([r, rng.integers(0, 100, width - len(r))]) for r in rows]).astype(np.int64)


def _reference(model, ids, features):
    with torch.no_grad():
        return model(input_ids=torch.tensor(ids), **features).logits.numpy()


def _ours(loaded, ids, features):
    return loaded.logits(ids, features["pixel_values"].numpy(), features.get("image_sizes"),
                         features.get("batch_num_images"))


def _max_diff(a, b):
    assert a.shape == b.shape
    return float(np.max(np.abs(np.asarray(a) - np.asarray(b))))


@pytest.fixture(scope="module")
def onevision(tmp_path_factory):
    """A tiny random LLaVA-OneVision (anyres_max_4: a 3x3 grid gets shrunk), saved, converted by the command line."""
    root = tmp_path_factory.mktemp("onevision")
    config = T.LlavaOnevisionConfig(vision_config=SIGLIP, text_config=QWEN2, image_token_index=TOKEN,
                                    video_token_index=TOKEN - 1, image_grid_pinpoints=PINPOINTS,
                                    vision_feature_layer=-1, vision_feature_select_strategy="full",
                                    vision_aspect_ratio="anyres_max_4")
    torch.manual_seed(0)
    model = _perturb(T.LlavaOnevisionForConditionalGeneration(config))
    with torch.no_grad():
        model.model.image_newline.add_(1.0)  # far from the features, so a misplaced newline shows
    hf, out = str(root / "hf"), str(root / "out")
    model.save_pretrained(hf)
    assert main(["--src", hf, "--dst", out, "--no-progress"]) == 0
    processor = LlavaOnevisionImageProcessorPil(size={"height": 32, "width": 32}, image_grid_pinpoints=PINPOINTS,
                                                image_mean=[0.5] * 3, image_std=[0.5] * 3)
    return dict(model=model, hf=hf, out=out, root=root, processor=processor, loaded=pretrained.load(out))


def test_family_is_listed_and_found(capsys):
    assert main(["--list"]) == 0
    assert "llava          llava      llava_onevision, llava_next, llava" in capsys.readouterr().out
    found = convert.families()["llava"]
    for config in ({"model_type": "llava_onevision"}, {"architectures": ["LlavaNextForConditionalGeneration"]}):
        assert convert.family_for(config) is found


def test_plans_follow_transformers_rules():
    cfg = convert_llava.config_from_hf(T.LlavaOnevisionConfig(
        vision_config=SIGLIP, text_config=QWEN2, image_token_index=TOKEN, image_grid_pinpoints=PINPOINTS,
        vision_aspect_ratio="anyres_max_4").to_dict())
    assert (cfg.style, cfg.anyres_max, cfg.feature_select, tuple(cfg.feature_layers)) == ("llava_onevision", 4,
                                                                                         "full", (-1,))
    base, wide, big = llava.plan_images(cfg, [(32, 32), (20, 100), (100, 100)])
    assert base == llava.ImagePlan(2, (1, 1), (0, 4, 0, 4), (4, 4), True, 16 + 4 * 5)
    assert wide.grid == (1, 3) and wide.crop == (1, 3, 0, 12) and wide.tokens == 16 + 2 * 13  # padding rows cut
    assert big.grid == (3, 3) and big.size == (8, 8) and big.tokens == 16 + 8 * 9  # 12x12 shrunk (ratio 1.5)
    alone = llava.plan_images(cfg, [(20, 100), (100, 100)], batch_num_images=[2])  # a prompt with two images
    assert [p.tiles for p in alone] == [1, 1] and [p.tokens for p in alone] == [17, 17]
    assert llava.select_best_resolution((20, 100), PINPOINTS) == (32, 96)
    np.testing.assert_allclose(llava.bilinear_matrix(4, 2), [[0.5, 0.5, 0, 0], [0, 0, 0.5, 0.5]])
    assert convert_llava.config_from_hf(convert_llava.hf_config_to(cfg)).to_dict() == cfg.to_dict()


RELEASE = {  # llava-hf/llava-onevision-qwen2-0.5b-ov-hf config.json, the fields that matter here
    "architectures": ["LlavaOnevisionForConditionalGeneration"], "model_type": "llava_onevision",
    "image_token_index": 151646, "projector_hidden_act": "gelu", "vision_aspect_ratio": "anyres_max_9",
    "vision_feature_layer": -1, "vision_feature_select_strategy": "full", "tie_word_embeddings": True,
    "text_config": {"model_type": "qwen2", "hidden_size": 896, "intermediate_size": 4864, "num_attention_heads": 14,
                    "num_hidden_layers": 24, "num_key_value_heads": 2, "rope_theta": 1000000.0, "vocab_size": 152000,
                    "tie_word_embeddings": True, "use_sliding_window": False},
    "vision_config": {"model_type": "siglip_vision_model", "hidden_size": 1152, "image_size": 384,
                      "intermediate_size": 4304, "num_attention_heads": 16, "num_hidden_layers": 26, "patch_size": 14,
                      "vision_use_head": False},
}


def test_release_config_and_token_counts_agree_with_the_processor():
    """At the release's sizes (27x27 features per 384 px tile, the default 6x6 pinpoints, anyres_max_9) our plans'
    token counts equal transformers' processor's (`_get_number_of_features`, its own arithmetic) for many shapes."""
    cfg = convert_llava.config_from_hf(RELEASE)
    assert cfg.encoder.allow_partial_patches and cfg.decoder.tie_embeddings and len(cfg.image_grid_pinpoints) == 36
    processor = object.__new__(T.LlavaOnevisionProcessor)  # its counting needs no tokenizer
    processor.image_processor = LlavaOnevisionImageProcessorPil()
    processor.num_image_tokens, processor.vision_aspect_ratio = 27 * 27, "anyres_max_9"
    sizes = [(384, 384), (1080, 1920), (1920, 1080), (480, 640), (100, 2000), (3000, 500), (333, 777), (50, 60)]
    plans = llava.plan_images(cfg, sizes)
    assert [p.tokens for p in plans] == [processor._get_number_of_features(h, w, 384, 384) for h, w in sizes]
    assert any(p.size != (p.crop[1] - p.crop[0], p.crop[3] - p.crop[2]) for p in plans)  # some are shrunk


def test_base_resolution_image_equals_transformers(onevision):
    features = onevision["processor"]([_image(32, 32)], return_tensors="pt")
    assert features["pixel_values"].shape[1] == 2  # the base view and one tile
    ids = _prompts([[onevision["loaded"].image_token_counts(features["image_sizes"])[0]]])
    diff = _max_diff(_ours(onevision["loaded"], ids, features), _reference(onevision["model"], ids, features))
    assert diff < TOLERANCE, diff


@pytest.mark.slow
def test_anyres_grids_equal_transformers(onevision):
    """Two one-image prompts: a 20x100 image (a 1x3 grid whose padding rows are cut) and a 100x100 one (a 3x3 grid
    shrunk bilinearly by anyres_max_4)."""
    loaded = onevision["loaded"]
    features = onevision["processor"]([_image(20, 100, 1), _image(100, 100, 2)], return_tensors="pt")
    plans = loaded.plans(features["image_sizes"], batch_num_images=features["batch_num_images"])
    assert [p.grid for p in plans] == [(1, 3), (3, 3)] and plans[0].crop == (1, 3, 0, 12) and plans[1].size == (8, 8)
    ids = _prompts([[plans[0].tokens], [plans[1].tokens]], seed=1)
    ours, theirs = _ours(loaded, ids, features), _reference(onevision["model"], ids, features)
    assert _max_diff(ours, theirs) < TOLERANCE, _max_diff(ours, theirs)
    # the features matter: another image's pixels give other logits after the image tokens
    swapped = dict(features, pixel_values=features["pixel_values"].flip(-1))
    assert _max_diff(_ours(loaded, ids, swapped)[:, -3:], ours[:, -3:]) > 1e-3


@pytest.mark.slow
def test_several_images_in_one_prompt_equal_transformers(onevision):
    loaded = onevision["loaded"]
    images = [_image(40, 70, 3), _image(32, 32, 4), _image(90, 30, 5)]
    features = onevision["processor"]([images], return_tensors="pt")  # one prompt: base views only, padded square
    assert features["batch_num_images"].tolist() == [3]
    counts = loaded.image_token_counts(features["image_sizes"], batch_num_images=[3])
    assert counts == [17, 17, 17]
    ids = _prompts([counts], seed=2)
    diff = _max_diff(_ours(loaded, ids, features), _reference(onevision["model"], ids, features))
    assert diff < TOLERANCE, diff
    # one <image> per image in a prompt, expanded as the processor expands the text
    short = [np.array([5, TOKEN, 6, TOKEN, TOKEN, 7])]
    expanded = loaded.expand_image_tokens(short, features["image_sizes"], batch_num_images=[3])[0]
    assert len(expanded) == 3 + 51 and int(np.sum(expanded == TOKEN)) == 51 and expanded[0] == 5


@pytest.mark.slow
def test_way_back_loads_in_transformers_with_the_same_logits(onevision):
    back = str(onevision["root"] / "back")
    assert main(["--to-hf", "--src", onevision["out"], "--dst", back]) == 0
    source, returned = open_checkpoint(onevision["hf"]), open_checkpoint(back)
    assert set(source) == set(returned)
    for name in source:
        np.testing.assert_array_equal(source[name], returned[name], err_msg=name)
    model = T.LlavaOnevisionForConditionalGeneration.from_pretrained(back, dtype=torch.float32).eval()
    features = onevision["processor"]([_image(20, 100, 1)], return_tensors="pt")
    ids = _prompts([[onevision["loaded"].image_token_counts(features["image_sizes"])[0]]], seed=3)
    np.testing.assert_array_equal(_reference(model, ids, features), _reference(onevision["model"], ids, features))
    from_hf = pretrained.load(back)  # a Hugging Face directory loads directly too
    np.testing.assert_array_equal(_ours(from_hf, ids, features), _ours(onevision["loaded"], ids, features))


def test_release_and_transformers4_names_read_alike(onevision, tmp_path):
    """llava-hf's release files (vision_tower.vision_model.*) and transformers 4.5x saves (model.*, lm_head) read as
    the transformers 5 save does."""
    state = dict(open_checkpoint(onevision["hf"]).items())
    release = {k.replace("vision_tower.", "vision_tower.vision_model.", 1): v for k, v in state.items()}
    saved_4 = {("lm_head.weight" if k == "language_model.lm_head.weight" else
                "model." + k.replace("language_model.model.", "language_model.", 1)): v for k, v in release.items()}
    want = checkpoint.read_hf(onevision["hf"]).params
    for name, tensors in (("release", release), ("saved_4", saved_4)):
        os.makedirs(tmp_path / name)
        write_safetensors(str(tmp_path / name / "model.safetensors"), tensors)
        (tmp_path / name / "config.json").write_text(open(os.path.join(onevision["hf"], "config.json")).read())
        got = checkpoint.read_hf(str(tmp_path / name)).params
        flat = lambda tree: {"/".join(p): v for p, v in _leaves(tree)}  # noqa: E731
        assert flat(got).keys() == flat(want).keys()
        for key, value in flat(want).items():
            np.testing.assert_array_equal(flat(got)[key], value, err_msg=f"{name}: {key}")


def _leaves(tree, path=()):
    for k, v in tree.items():
        yield from _leaves(v, path + (k,)) if isinstance(v, dict) else [(path + (k,), v)]


@pytest.mark.slow
def test_generation_equals_transformers(onevision):
    loaded = onevision["loaded"]
    features = onevision["processor"]([_image(100, 100, 6)], return_tensors="pt")
    ids = _prompts([[loaded.image_token_counts(features["image_sizes"])[0]]], seed=4)
    with torch.no_grad():
        theirs = onevision["model"].generate(input_ids=torch.tensor(ids), **features, max_new_tokens=4,
                                             do_sample=False)[:, ids.shape[1]:].numpy()
    ours = loaded.generate(ids, features["pixel_values"].numpy(), features["image_sizes"], max_new_tokens=4)
    np.testing.assert_array_equal(ours, theirs)
    # a batch of prompts of other lengths, left-padded: each row generates what it generates alone
    small = onevision["processor"]([_image(32, 32, 7)], return_tensors="pt")
    other = _prompts([[loaded.image_token_counts(small["image_sizes"])[0]]], seed=5, text=9)[0]
    pixels = [features["pixel_values"][0].numpy(), small["pixel_values"][0].numpy()]
    sizes = np.concatenate([features["image_sizes"], small["image_sizes"]])
    both = loaded.generate([ids[0], other], pixels, sizes, max_new_tokens=4)
    np.testing.assert_array_equal(both[0], ours[0])
    np.testing.assert_array_equal(both[1], loaded.generate([other], pixels[1:], sizes[1:], max_new_tokens=4)[0])


# ----------------------------------------------------------------------------------------------------------------
# LLaVA-NeXT (CLIP, class token dropped by 'default', the second-to-last layer) and LLaVA (LLaVA-NeXT-Interleave)
# ----------------------------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_llava_next_and_llava_equal_transformers(tmp_path):
    clip = dict(model_type="clip_vision_model", hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                num_attention_heads=2, image_size=32, patch_size=8)
    torch.manual_seed(0)
    next_model = _perturb(T.LlavaNextForConditionalGeneration(T.LlavaNextConfig(
        vision_config=clip, text_config={**QWEN2, "model_type": "llama"}, image_token_index=TOKEN,
        image_grid_pinpoints=PINPOINTS, vision_feature_layer=-2, vision_feature_select_strategy="default")))
    plain_model = _perturb(T.LlavaForConditionalGeneration(T.LlavaConfig(
        vision_config=SIGLIP, text_config=QWEN2, image_token_index=TOKEN, vision_feature_layer=[-1, -2],
        vision_feature_select_strategy="full")))
    next_processor = LlavaNextImageProcessorPil(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32},
                                                image_grid_pinpoints=PINPOINTS)
    plain_pixels = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    for name, model in (("next", next_model), ("plain", plain_model)):
        model.save_pretrained(str(tmp_path / name))
        loaded = pretrained.load(str(tmp_path / name))
        if name == "next":
            features = next_processor([_image(20, 100, 7)], return_tensors="pt")
            assert loaded.plans(features["image_sizes"])[0].grid == (1, 3)
            counts = loaded.image_token_counts(features["image_sizes"])
            rows = [counts]
        else:
            features = {"pixel_values": plain_pixels}
            counts = loaded.image_token_counts(num_images=2)
            assert counts == [16, 16] and "image_newline" not in loaded.params
            rows = [[16], [16]]
        ids = _prompts(rows, seed=5)
        diff = _max_diff(_ours(loaded, ids, features), _reference(model, ids, features))
        assert diff < TOLERANCE, (name, diff)


# ----------------------------------------------------------------------------------------------------------------
# Bad input
# ----------------------------------------------------------------------------------------------------------------
def _with_config(onevision, tmp_path, change):
    """A copy of the converted-from checkpoint whose config.json went through `change`."""
    os.makedirs(tmp_path)
    write_safetensors(str(tmp_path / "model.safetensors"), dict(open_checkpoint(onevision["hf"]).items()))
    config = json.load(open(os.path.join(onevision["hf"], "config.json")))
    change(config)
    (tmp_path / "config.json").write_text(json.dumps(config))
    return str(tmp_path)


@pytest.mark.parametrize("change,field", [
    (lambda c: c.update(projector_hidden_act="relu"), "projector_hidden_act='relu'"),
    (lambda c: c["text_config"].update(model_type="mistral"), "text_config.model_type='mistral'"),
    (lambda c: c["text_config"].update(use_sliding_window=True), "text_config: use_sliding_window=true"),
    (lambda c: c.update(vision_aspect_ratio="anyres"), "vision_aspect_ratio='anyres'"),
    (lambda c: c.update(image_grid_pinpoints=[[32, 48]]), "image_grid_pinpoints holds [32, 48]"),
    (lambda c: c.update(vision_feature_layer=5), "vision_feature_layer=5"),
])
def test_unsupported_config_gets_one_sentence_naming_file_and_field(onevision, tmp_path, capsys, change, field):
    src = _with_config(onevision, tmp_path / "bad", change)
    with pytest.raises(CheckpointError) as err:
        checkpoint.read_hf(src)
    message = str(err.value)
    assert message.startswith(os.path.join(src, "config.json")) and field in message, message
    assert message.count(". ") == 0 and message.endswith(".")
    assert main(["--src", src, "--dst", str(tmp_path / "dst"), "--no-progress"]) == 1
    assert field in capsys.readouterr().err and not os.path.exists(tmp_path / "dst")


def test_mismatched_config_names_the_file_and_tensors(onevision, tmp_path):
    src = _with_config(onevision, tmp_path / "bad", lambda c: c["text_config"].update(intermediate_size=40))
    with pytest.raises(CheckpointError, match=r"model\.safetensors does not fit the llava config .*mis-shaped: "
                                              r"language_model\.model\.layers\.0\.mlp\.gate_proj\.weight \[64, 48\] "
                                              r"\(expected \[40, 48\]\)"):
        checkpoint.read_hf(src)


def test_image_token_count_and_tiles_are_checked(onevision):
    loaded = onevision["loaded"]
    features = onevision["processor"]([_image(32, 32)], return_tensors="pt")
    ids = _prompts([[35]])  # one short of the 36 the image fills
    with pytest.raises(ValueError, match=r"input_ids hold 35 image tokens \(id 119\) but the 1 images have 36 "):
        _ours(loaded, ids, features)
    with pytest.raises(ValueError, match=r"image 0 has tiles of shape \(1, 32, 32, 3\); it needs 2 tiles"):
        loaded.logits(_prompts([[36]]), features["pixel_values"].numpy()[:, :1], features["image_sizes"])
