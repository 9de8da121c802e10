"""Conversion of every family from random transformers models: parity, round trip, bad input, the command line."""
import json
import os
import re

import numpy as np
import pytest
import torch
import transformers as T

from mm1_jax import convert, pretrained
from mm1_jax.convert import checkpoint
from mm1_jax.convert.__main__ import main
from mm1_jax.convert.tensor_files import open_checkpoint, write_safetensors

DECODER = dict(vocab_size=97, hidden_size=54, intermediate_size=70, num_hidden_layers=2, num_attention_heads=6,
               rope_theta=5000.0, rms_norm_eps=1e-6, max_position_embeddings=64)
VISION = dict(hidden_size=36, num_hidden_layers=2, num_attention_heads=3, intermediate_size=52, image_size=32,
              patch_size=8)


def _perturb(model):
    """Non-trivial norms and biases, so a swapped scale / missing bias shows."""
    torch.manual_seed(1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name or name.endswith("bias"):
                p.add_(0.1 * torch.randn_like(p))
    return model.eval()


def _decoder(kind, **extra):
    cls = {"llama": T.LlamaConfig, "qwen2": T.Qwen2Config}[kind]
    torch.manual_seed(0)
    return _perturb(T.AutoModelForCausalLM.from_config(cls(**{**DECODER, **extra})))


def _vision(kind):
    torch.manual_seed(0)
    if kind == "clip_in_clipmodel":
        config = T.CLIPConfig(vision_config=VISION, text_config=dict(hidden_size=16, intermediate_size=20,
                              num_hidden_layers=1, num_attention_heads=2), projection_dim=8)
        return _perturb(T.CLIPModel(config))
    cls, config_cls, extra = {
        "clip": (T.CLIPVisionModel, T.CLIPVisionConfig, {}),
        "siglip": (T.SiglipVisionModel, T.SiglipVisionConfig, dict(vision_use_head=True)),
        "aimv2": (T.Aimv2VisionModel, T.Aimv2VisionConfig, dict(use_head=True)),
    }[kind]
    return _perturb(cls(config_cls(**VISION, **extra)))


def _save(model, path, bf16=False, shard=None):
    """Save; the reference is transformers' float32 model read back from the files (bf16 weights cast up)."""
    if bf16:
        model.to(torch.bfloat16)
    model.save_pretrained(path, **({"max_shard_size": shard} if shard else {}))
    return type(model).from_pretrained(path, dtype=torch.float32).eval()


def _close(ours, theirs, tol=1e-4):
    ours, theirs = np.asarray(ours), np.asarray(theirs)
    assert ours.shape == theirs.shape
    err, scale = np.max(np.abs(ours - theirs)), np.max(np.abs(theirs))
    assert err <= tol * scale, f"max error {err:.3g} vs scale {scale:.3g}"


def _round_trip(src, tmp_path):
    """HF -> orbax (CLI) -> HF (CLI): the tensors come back bit-identical; returns the orbax directory."""
    out, back = str(tmp_path / "out"), str(tmp_path / "back")
    assert main(["--src", src, "--dst", out, "--no-progress"]) == 0
    assert main(["--to-hf", "--src", out, "--dst", back]) == 0
    original, returned = open_checkpoint(src), open_checkpoint(back)
    kept = {k for k in original if not k.startswith(("text_model.", "visual_projection", "text_projection",
                                                     "logit_scale"))}
    strip = "vision_model." if any(k.startswith("vision_model.") for k in kept) else ""
    assert {k[len(strip):] for k in kept} == set(returned)
    for name in kept:
        a, b = original[name], returned[name[len(strip):]]
        assert a.dtype == b.dtype and a.shape == b.shape, name
        np.testing.assert_array_equal(a.view(np.uint8), b.view(np.uint8), err_msg=name)
    return out


DECODER_CASES = {
    # grouped KV (2 of 6 heads), odd width 54, head_dim 8 != 54 / 6, untied, sharded index
    "llama_gqa_sharded": ("llama", dict(num_key_value_heads=2, head_dim=8, tie_word_embeddings=False), False, "20KB"),
    "qwen2_tied_bf16": ("qwen2", dict(num_key_value_heads=2, head_dim=10, tie_word_embeddings=True), True, None),
    "qwen2_untied": ("qwen2", dict(num_key_value_heads=3, head_dim=10, tie_word_embeddings=False), False, None),
}


@pytest.mark.parametrize("case", list(DECODER_CASES))
def test_decoder_families(case, tmp_path):
    kind, extra, bf16, shard = DECODER_CASES[case]
    src = str(tmp_path / "hf")
    model = _save(_decoder(kind, **extra), src, bf16, shard)
    if shard:
        assert os.path.exists(os.path.join(src, "model.safetensors.index.json"))
    out = _round_trip(src, tmp_path)
    tokens = np.random.RandomState(0).randint(0, DECODER["vocab_size"], (2, 7)).astype(np.int32)
    with torch.no_grad():
        ref = model(torch.tensor(tokens, dtype=torch.long), output_hidden_states=True)
    loaded, from_hf = pretrained.load(out), pretrained.load(src)
    assert loaded.config.tie_embeddings == extra["tie_word_embeddings"]
    _close(loaded.logits(tokens), ref.logits.numpy())
    hidden = loaded.hidden_states(tokens)
    assert len(hidden) == len(ref.hidden_states) == DECODER["num_hidden_layers"] + 1
    for ours, theirs in zip(hidden, ref.hidden_states):
        _close(ours, theirs.numpy())
    np.testing.assert_array_equal(np.asarray(from_hf.logits(tokens)), np.asarray(loaded.logits(tokens)))
    # transformers reads the way back and gives the same logits
    back = T.AutoModelForCausalLM.from_pretrained(str(tmp_path / "back"), dtype=torch.float32).eval()
    with torch.no_grad():
        np.testing.assert_array_equal(back(torch.tensor(tokens, dtype=torch.long)).logits.numpy(), ref.logits.numpy())


@pytest.mark.parametrize("kind,shard", [("clip", None), ("clip_in_clipmodel", None), ("siglip", "30KB"),
                                        ("aimv2", None)])
def test_encoder_families(kind, shard, tmp_path):
    src = str(tmp_path / "hf")
    model = _save(_vision(kind), src, shard=shard)
    out = _round_trip(src, tmp_path)
    pixels = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        ref = (model.vision_model if kind == "clip_in_clipmodel" else model)(pixel_values=pixels,
                                                                              output_hidden_states=True)
    loaded = pretrained.load(out)
    ours = loaded.encode_images(pixels.numpy().transpose(0, 2, 3, 1))
    _close(ours["last_hidden_state"], ref.last_hidden_state.numpy())
    assert len(ours["hidden_states"]) == len(ref.hidden_states) == VISION["num_hidden_layers"] + 1
    for mine, theirs in zip(ours["hidden_states"], ref.hidden_states):
        _close(mine, theirs.numpy())
    if ref.pooler_output is not None:
        _close(ours["pooled"], ref.pooler_output.numpy())
    back = T.AutoModel.from_pretrained(str(tmp_path / "back")).eval()
    with torch.no_grad():
        again = back(pixel_values=pixels).last_hidden_state.numpy()
    np.testing.assert_array_equal(again, ref.last_hidden_state.numpy())


def test_honeybee_projector(tmp_path):
    from tests.test_connectors import TorchCAbstractor  # the C-Abstractor as HoneyBee describes it

    torch.manual_seed(0)
    side, out_side, cv, c, d = 6, 3, 16, 24, 20
    ref = TorchCAbstractor(side * side, out_side**2, cv, c, d, depth=2, mlp_depth=2).eval()
    src = tmp_path / "hf"
    src.mkdir()
    write_safetensors(str(src / "model.safetensors"),
                      {"abstractor." + k: v.detach().numpy() for k, v in ref.state_dict().items()})
    (src / "config.json").write_text(json.dumps(dict(
        projector_type="c-abs", encoder_hidden_size=cv, hidden_size=c, output_hidden_size=d, depth=2, mlp_depth=2,
        num_query_tokens=out_side**2, num_input_tokens=side * side, pos_emb=True)))
    out = _round_trip(str(src), tmp_path)
    features = torch.randn(2, side * side, cv, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        expected = ref(features).numpy()
    for path in (str(src), out):
        connected = pretrained.load(path).connect(features.numpy())
        assert connected.shape == (2, out_side**2, d)
        _close(connected, expected)


def test_family_interface_is_complete():
    found = convert.families()
    assert {"llama", "vit_weights", "honeybee"} <= set(found)
    for name in ("llama", "vit_weights", "honeybee"):
        assert all(hasattr(found[name], attr) for attr in convert.REQUIRED), name
    assert convert.family_for({"model_type": "qwen2"}) is found["llama"]
    assert convert.family_for({"architectures": ["SiglipVisionModel"]}) is found["vit_weights"]


# ----------------------------------------------------------------------------------------------------------------
# Bad input
# ----------------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def llama_dir(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("llama") / "hf")
    _save(_decoder("llama", num_key_value_heads=2, head_dim=8, tie_word_embeddings=False), path)
    return path


def _copy_with(src, dst, tensors):
    os.makedirs(dst)
    write_safetensors(os.path.join(dst, "model.safetensors"), tensors)
    with open(os.path.join(src, "config.json")) as f, open(os.path.join(dst, "config.json"), "w") as g:
        g.write(f.read())


def test_missing_unexpected_and_misshaped_tensors_in_one_error(llama_dir, tmp_path):
    state = dict(open_checkpoint(llama_dir).items())
    del state["model.layers.1.mlp.up_proj.weight"]
    state["model.layers.0.self_attn.k_proj.weight"] = state["model.layers.0.self_attn.k_proj.weight"][:-1]
    state["model.layers.0.extra.weight"] = np.zeros((3, 2), np.float32)
    bad = str(tmp_path / "bad")
    _copy_with(llama_dir, bad, state)
    with pytest.raises(ValueError) as err:
        checkpoint.read_hf(bad)
    message = str(err.value)
    assert "missing: model.layers.1.mlp.up_proj.weight [70, 54]" in message
    assert "mis-shaped: model.layers.0.self_attn.k_proj.weight [15, 54] (expected [16, 54])" in message
    assert "unexpected: model.layers.0.extra.weight [3, 2]" in message


def test_unknown_model_type_lists_the_families(llama_dir, tmp_path):
    bad = str(tmp_path / "bert")
    _copy_with(llama_dir, bad, dict(open_checkpoint(llama_dir).items()))
    with open(os.path.join(bad, "config.json"), "w") as f:
        json.dump({"model_type": "bert", "architectures": ["BertModel"]}, f)
    with pytest.raises(ValueError, match=r"model_type='bert'.*llama \(llama, qwen2\).*vit_weights \(clip_vision"):
        checkpoint.read_hf(bad)


def test_truncated_file_names_it_and_leaves_nothing_at_dst(llama_dir, tmp_path, capsys):
    bad = str(tmp_path / "truncated")
    _copy_with(llama_dir, bad, dict(open_checkpoint(llama_dir).items()))
    path = os.path.join(bad, "model.safetensors")
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) - 100)
    dst = tmp_path / "dst"
    assert main(["--src", bad, "--dst", str(dst), "--no-progress"]) == 1
    assert re.search(re.escape(path) + " is truncated", capsys.readouterr().err)
    assert sorted(os.listdir(tmp_path)) == ["truncated"]  # no dst, no dst.tmp-*
    # a failure after reading (here: an existing destination) also writes nothing
    os.makedirs(dst)
    assert main(["--src", llama_dir, "--dst", str(dst), "--no-progress"]) == 1
    assert os.listdir(dst) == []


def test_torch_bin_checkpoints_load_with_weights_only(llama_dir, tmp_path):
    legacy = tmp_path / "bin"
    legacy.mkdir()
    state = {k: torch.from_numpy(v) for k, v in open_checkpoint(llama_dir).items()}
    torch.save(state, legacy / "pytorch_model.bin")
    (legacy / "config.json").write_text(open(os.path.join(llama_dir, "config.json")).read())
    a, b = checkpoint.read_hf(str(legacy)), checkpoint.read_hf(llama_dir)
    np.testing.assert_array_equal(a.params["layer_1"]["attn"]["o_proj"]["kernel"],
                                  b.params["layer_1"]["attn"]["o_proj"]["kernel"])
