"""The Owl3 model against a PyTorch reference, conversion of the release's checkpoint layout, cached decoding and
generation, image cutting, bad input.

The PyTorch reference: transformers' Qwen2ForCausalLM and SiglipVisionModel with our weights (via params_to_hf),
and the hyper layers' cross-attention added with hooks, written from the released modeling_hyper_qwen2.py facts:
media_offset[t] = number of placeholders before t, MI-RoPE at the index where media_offset changes plus one, mask
media_offset[t] > j, v_kv_proj laid out 'BL Lv (H KV D)', gate Linear(Dh, Dh) + sigmoid, queries from the first
token that sees an image.
"""
import jax
import numpy as np
import pytest
import torch
import transformers
from PIL import Image
from transformers.models.qwen2.modeling_qwen2 import apply_rotary_pos_emb, repeat_kv

from mm1_jax.convert import owl3 as convert_owl3
from mm1_jax.data import images as images_lib
from mm1_jax.data import owl3_images
from mm1_jax.models import build_model
from mm1_jax.models.owl3 import tiny_owl3_config
from mm1_jax.pretrained import LoadedOwl3
from tests.test_hyper_attention import randomize

CFG = tiny_owl3_config()
TOKEN = CFG.image_token_id


@pytest.fixture(scope="module")
def loaded():
    module = build_model(CFG)
    ids = np.array([[1, TOKEN, 2]], np.int32)
    params = module.init(jax.random.PRNGKey(0), ids, np.zeros((1, 28, 28, 3), np.float32))["params"]
    return LoadedOwl3(module, randomize(params, 5, scale=0.3), CFG, TOKEN)


def batch(seed=0):
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, TOKEN, size=(2, 10)).astype(np.int32)
    ids[0, [3, 6]] = TOKEN  # row 0: text, image, text, image, text
    ids[1, 0] = TOKEN  # row 1: an image first
    return ids, rng.normal(size=(3, 28, 28, 3)).astype(np.float32)


# ----------------------------------------------------------------------------------------------------------------
# PyTorch reference
# ----------------------------------------------------------------------------------------------------------------
def torch_reference(state, hf, input_ids, images):
    d = hf["hidden_size"]
    h, kvh = hf["num_attention_heads"], hf["num_key_value_heads"]
    dh = d // h
    vision_cfg = transformers.SiglipVisionConfig(**{k: v for k, v in hf["vision_config"].items()
                                                    if k not in ("model_type", "architectures")})
    vision = transformers.SiglipVisionModel(vision_cfg).eval()
    vision.load_state_dict({k[len("vision_model."):]: torch.tensor(v) for k, v in state.items()
                            if k.startswith("vision_model.")})
    qwen_cfg = transformers.Qwen2Config(
        vocab_size=hf["vocab_size"], hidden_size=d, num_hidden_layers=hf["num_hidden_layers"], num_attention_heads=h,
        num_key_value_heads=kvh, intermediate_size=hf["intermediate_size"], rms_norm_eps=hf["rms_norm_eps"],
        rope_theta=hf["rope_theta"], tie_word_embeddings=False, attn_implementation="eager")
    lm = transformers.Qwen2ForCausalLM(qwen_cfg).eval()
    lm_state = {k[len("language_model."):]: torch.tensor(v) for k, v in state.items() if k.startswith("language_model.")}
    missing, unexpected = lm.load_state_dict(lm_state, strict=False)
    assert not missing and all("v_kv_proj" in k or "gate_proj.0" in k for k in unexpected)

    with torch.no_grad():
        feats = vision(torch.tensor(images).permute(0, 3, 1, 2), output_hidden_states=True).hidden_states[-2]
        feats = feats @ torch.tensor(state["vision2text_model.weight"]).T + torch.tensor(state["vision2text_model.bias"])
    ids = torch.tensor(input_ids, dtype=torch.long)
    starts = [np.nonzero(row == TOKEN)[0] for row in input_ids]
    first = np.cumsum([0] + [len(s) for s in starts])
    inv_freq = 1.0 / hf["rope_theta"] ** (torch.arange(0, dh, 2).float() / dh)
    captured = {}

    def capture(module, args, kwargs):
        captured["h"], captured["cos_sin"] = kwargs["hidden_states"], kwargs["position_embeddings"]

    def hyper(i):
        layer = lm.model.layers[i]
        p = f"language_model.model.layers.{i}.self_attn."
        w_kv, b_kv = torch.tensor(state[p + "v_kv_proj.weight"]), torch.tensor(state[p + "v_kv_proj.bias"])
        w_g, b_g = torch.tensor(state[p + "gate_proj.0.weight"]), torch.tensor(state[p + "gate_proj.0.bias"])

        def mix(module, args):
            s = args[0].clone()  # [B, L, H*Dh], the attention output before o_proj
            hs, (cos, sin) = captured["h"], captured["cos_sin"]
            b, length = hs.shape[:2]
            q = layer.self_attn.q_proj(hs).view(b, length, h, dh).transpose(1, 2)
            q, _ = apply_rotary_pos_emb(q, q, cos, sin)
            out = s.clone()
            for row in range(b):
                if not len(starts[row]):
                    continue
                offset = (torch.arange(length)[:, None] > torch.tensor(starts[row])[None, :]).sum(1)
                v = layer.input_layernorm(feats[first[row]:first[row + 1]]) @ w_kv.T + b_kv  # [n, Lv, KVH*2*Dh]
                n, lv = v.shape[:2]
                kv = v.reshape(n * lv, kvh, 2, dh).permute(2, 1, 0, 3)  # KV, H, (n Lv), D
                image_pos = torch.nonzero(offset[1:] - offset[:-1]).squeeze(1) + 1
                freqs = torch.repeat_interleave(image_pos.float(), lv)[:, None] * inv_freq[None]
                emb = torch.cat([freqs, freqs], -1)
                key = kv[0] * emb.cos() + torch.cat([-kv[0][..., dh // 2:], kv[0][..., :dh // 2]], -1) * emb.sin()
                shift = int(torch.nonzero(offset)[0])
                allowed = torch.repeat_interleave(offset[shift:, None] > torch.arange(n)[None, :], lv, dim=1)
                c = torch.nn.functional.scaled_dot_product_attention(
                    q[row:row + 1, :, shift:], repeat_kv(key[None], h // kvh), repeat_kv(kv[1][None], h // kvh),
                    attn_mask=allowed[None, None])
                c = c[0].transpose(0, 1).reshape(length - shift, h * dh)
                sr = s[row, shift:]
                g = torch.sigmoid(sr.view(-1, h, dh) @ w_g.T + b_g).reshape(length - shift, h * dh)
                out[row, shift:] = sr * (1 - g) + c * g
            return (out,)

        layer.self_attn.register_forward_pre_hook(capture, with_kwargs=True)
        layer.self_attn.o_proj.register_forward_pre_hook(mix)

    for i in [j - 1 for j in hf["hyper_layers"]]:
        hyper(i)
    with torch.no_grad():
        return lm(input_ids=ids, use_cache=False).logits.numpy(), feats.numpy()


@pytest.mark.slow
def test_logits_equal_pytorch_reference(loaded):
    ids, images = batch()
    state = convert_owl3.params_to_hf(jax.tree.map(np.asarray, loaded.params), CFG)
    want, _ = torch_reference(state, convert_owl3.hf_config_to(CFG), ids, images)
    ours = loaded.logits(ids, images)
    assert ours.dtype == np.float32 and ours.shape == (2, 10, CFG.decoder.vocab_size)
    np.testing.assert_allclose(ours, want, atol=2e-4, rtol=1e-4)
    # the hyper layers matter: without them (plain Qwen2) the logits after the first image differ
    gate_closed = jax.tree.map(np.array, loaded.params)
    for i in CFG.decoder.hyper_layers:
        gate_closed["decoder"][f"layer_{i}"]["attn"]["gate_proj"]["bias"][:] = -1e4
    plain = LoadedOwl3(loaded.module, gate_closed, CFG, TOKEN).logits(ids, images)
    assert np.abs(plain[0, 4:] - ours[0, 4:]).max() > 1e-3
    np.testing.assert_allclose(plain[0, :4], ours[0, :4], atol=1e-5)


def test_checkpoint_round_trip_and_missing_tensors(loaded):
    params = jax.tree.map(np.asarray, loaded.params)
    state = convert_owl3.params_to_hf(params, CFG)
    assert state["language_model.model.layers.1.self_attn.v_kv_proj.weight"].shape == (2 * 2 * 16, 64)
    assert state["language_model.model.layers.3.self_attn.gate_proj.0.weight"].shape == (16, 16)
    back = convert_owl3.hf_to_params(state, CFG)
    jax.tree.map(np.testing.assert_array_equal, back, params)
    for name in ("v_kv_proj.weight", "gate_proj.0.bias"):
        broken = {k: v for k, v in state.items() if not k.endswith(f"layers.3.self_attn.{name}")}
        with pytest.raises(ValueError, match=rf"no tensor 'language_model.model.layers.3.self_attn.{name}', which "
                                             r"hyper layer 3"):
            convert_owl3.hf_to_params(broken, CFG)


def test_config_from_released_config_json():
    released = {"model_type": "mplugowl3", "hidden_size": 3584, "intermediate_size": 18944, "num_attention_heads": 28,
                "num_hidden_layers": 28, "num_key_value_heads": 4, "rms_norm_eps": 1e-6, "rope_theta": 1e6,
                "vocab_size": 151851, "tie_word_embeddings": False, "hyper_layers": [1, 9, 17, 25],
                "vision_config": {"hidden_size": 1152, "image_size": 384, "intermediate_size": 4304,
                                  "model_type": "siglip_vision_model", "num_attention_heads": 16,
                                  "num_hidden_layers": 27, "patch_size": 14}}
    cfg = convert_owl3.config_from_hf(released)
    assert tuple(cfg.decoder.hyper_layers) == (0, 8, 16, 24) and cfg.projector_depth == 1
    assert (cfg.decoder.width, cfg.decoder.num_kv_heads, cfg.decoder.head_dim, cfg.decoder.qkv_bias) == (3584, 4, 128, True)
    assert (cfg.encoder.feature_layer, cfg.encoder.feature_norm, cfg.encoder.width) == (-2, False, 1152)
    again = convert_owl3.config_from_hf(convert_owl3.hf_config_to(cfg))
    assert again.to_dict() == cfg.to_dict()
    with pytest.raises(ValueError, match=r"hyper_layers=\[1, 29\] holds 29, outside the decoder's layers 1..28"):
        convert_owl3.config_from_hf({**released, "hyper_layers": [1, 29]})


def test_images_do_not_reach_earlier_tokens_and_counts_are_checked(loaded):
    ids, images = batch()
    a = loaded.logits(ids, images)
    b = loaded.logits(ids, images[::-1].copy())
    np.testing.assert_array_equal(a[0, :4], b[0, :4])  # up to and including the first placeholder (index 3)
    assert np.abs(a[0, 4:] - b[0, 4:]).min() > 0 and np.abs(a[1] - b[1]).max() > 1e-4
    with pytest.raises(ValueError, match=r"input_ids hold 3 image placeholder tokens \(id 127\) but 2 images"):
        loaded.logits(ids, images[:2])
    with pytest.raises(ValueError, match=r"input_ids hold 3 image placeholder tokens \(id 127\) but 4 images"):
        loaded.logits(ids, np.concatenate([images, images[:1]]))


@pytest.mark.slow
def test_uint8_images_are_normalised_once_with_siglip_statistics(loaded):
    """uint8 pixels (what `owl3_images.process` gives) = the same pixels normalised by the numpy reference with
    SigLIP's statistics; not normalising, or normalising twice, gives other logits."""
    ids, _ = batch()
    pixels = np.random.default_rng(7).integers(0, 256, size=(3, 28, 28, 3), dtype=np.uint8)
    reference = images_lib.normalize(pixels, "siglip")
    got = loaded.logits(ids, pixels)
    np.testing.assert_allclose(got, loaded.logits(ids, reference), atol=1e-5, rtol=1e-5)
    for wrong in (pixels.astype(np.float32), (reference / 255.0 - 0.5) / 0.5):  # not at all; twice
        assert np.abs(got - loaded.logits(ids, wrong)).max() > 1e-2
    new = loaded.generate(ids[:1, :7], pixels[:2], max_new_tokens=3)  # generation batches keep the uint8 pixels
    np.testing.assert_array_equal(new, loaded.generate(ids[:1, :7], reference[:2], max_new_tokens=3))


@pytest.mark.slow
def test_cached_decoding_equals_full_forward_and_generation(loaded):
    def init_cache(module, params, b, length, images, token):  # zero caches for `length` tokens and the images
        tokens = jax.ShapeDtypeStruct((b, length), np.int32)
        shapes = jax.eval_shape(lambda t, im: module.apply({"params": params}, t, im, image_token_id=token,
                                                           decode=True, mutable=["cache"])[1]["cache"], tokens, images)
        return jax.tree.map(lambda s: np.zeros(s.shape, s.dtype), shapes)

    ids, images = batch(1)
    ids, images = ids[:1], images[:2]
    full = loaded.logits(ids, images)
    module, params = loaded.module, loaded.params
    cache = init_cache(module, params, 1, 10, images, TOKEN)
    run = jax.jit(lambda c, t, im, pos: module.apply({"params": params, "cache": c}, t, im, image_token_id=TOKEN,
                                                     positions=pos, decode=True, mutable=["cache"]))
    out, state = run(cache, ids[:, :7], images, np.arange(7)[None])  # the prompt holds both placeholders (3, 6)
    np.testing.assert_allclose(np.asarray(out["logits"]), full[:, :7], atol=1e-5, rtol=1e-5)
    cache = state["cache"]
    for t in range(7, 10):
        out, state = run(cache, ids[:, t:t + 1], None, np.array([[t]]))
        cache = state["cache"]
        np.testing.assert_allclose(np.asarray(out["logits"])[:, 0], full[:, t], atol=1e-5, rtol=1e-5)

    new = loaded.generate(ids[:, :7], images, max_new_tokens=4)
    whole = loaded.logits(np.concatenate([ids[:, :7], new], 1), images)
    np.testing.assert_array_equal(new[0], whole[0, 6:10].argmax(-1))
    assert np.array_equal(loaded.generate(ids[:, :7], images, max_new_tokens=4, temperature=1.0, top_k=1), new)


# ----------------------------------------------------------------------------------------------------------------
# Image processing
# ----------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("size,grid", [
    ((384, 384), (2, 2)),  # square: only 2x2 has the image's shape
    ((1000, 500), (2, 3)),  # 2:1 -> 2x3 (shape IoU 0.75) beats 1x3 (0.67)
    ((500, 1000), (3, 2)),
    ((1920, 1080), (2, 3)),  # 16:9: 2x3 (0.84) beats 2x2 (0.56) and 1x3 (0.59)
    ((300, 1200), (4, 1)),  # 1:4 exactly
    ((1200, 300), (1, 4)),
    ((3000, 1000), (1, 3)),  # 3:1 exactly
    ((100, 100), (2, 2)),  # small images are cut too
])
def test_grid_choice(size, grid):
    assert owl3_images.choose_cut_grid(*size) == grid


def test_cut_prompt_and_pixels():
    assert owl3_images.cut_prompt(2, 3) == (
        "Cut to 2 rows 3 columns with a global view\n"
        "subimg(0,0)<|image|> subimg(0,1)<|image|> subimg(0,2)<|image|>\n"
        "subimg(1,0)<|image|> subimg(1,1)<|image|> subimg(1,2)<|image|>\n"
        "global_view<|image|>")
    img = Image.fromarray(np.random.default_rng(0).integers(0, 256, size=(500, 1000, 3), dtype=np.uint8))
    text, pixels = owl3_images.process("Look: <|image|> what?", [img], size=32)
    assert text == "Look: " + owl3_images.cut_prompt(2, 3) + " what?"
    assert pixels.shape == (7, 32, 32, 3) and pixels.dtype == np.uint8 and text.count("<|image|>") == 7
    big = np.asarray(img.resize((96, 64), Image.BICUBIC))  # uint8: the model normalises (SigLIP's statistics)
    np.testing.assert_array_equal(pixels[5], big[32:, 64:])  # crop (1, 2)
    np.testing.assert_array_equal(pixels[6], np.asarray(img.resize((32, 32), Image.BICUBIC)))  # global view last
    with pytest.raises(ValueError, match="the text has 1 <\\|image\\|> placeholders but 2 images"):
        owl3_images.process("<|image|>", [img, img])
