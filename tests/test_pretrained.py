"""init_from_checkpoints: converted encoder and decoder into a fresh (scanned) MM1 parameter tree."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
import torch
import transformers as T

from mm1_jax import pretrained
from mm1_jax.convert import checkpoint
from mm1_jax.models import registry, vit


def _model_config(mlp_dim=96):
    return ml_collections.ConfigDict(dict(
        encoder=dict(style="clip", image_size=16, patch_size=4, width=32, depth=2, num_heads=4, mlp_dim=64,
                     norm_eps=1e-5, feature_layer=-1, feature_norm=False, drop_class_token=True, scan=True),
        connector=dict(name="avg_pool", num_tokens=4),
        decoder=dict(vocab_size=64, width=48, depth=2, num_heads=4, num_kv_heads=2, mlp_dim=mlp_dim, rope_theta=1e4,
                     norm_eps=1e-5, scan_layers=True),
        max_images=1, dtype="float32"))


def _init(cfg):
    model = registry.build_model(cfg)
    batch = dict(tokens=jnp.zeros((1, 8), jnp.int32), images=jnp.zeros((1, 1, 16, 16, 3)),
                 image_token_index=jnp.full((1, 8), -1, jnp.int32))
    shapes = nn.unbox(jax.eval_shape(model.init, jax.random.PRNGKey(0), **batch)["params"])
    return model, jax.tree.map(lambda s: np.full(s.shape, 0.5, s.dtype), shapes)


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    root = tmp_path_factory.mktemp("init")
    torch.manual_seed(0)
    # trained at 8 px (a 2 x 2 grid): the model's 16 px needs the position table resized
    clip = T.CLIPVisionModel(T.CLIPVisionConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                                intermediate_size=64, image_size=8, patch_size=4))
    clip.save_pretrained(root / "clip_hf")
    checkpoint.write_converted(checkpoint.read_hf(str(root / "clip_hf")), str(root / "clip"))
    llama = T.LlamaForCausalLM(T.LlamaConfig(vocab_size=64, hidden_size=48, intermediate_size=96, num_hidden_layers=2,
                                             num_attention_heads=4, num_key_value_heads=2, rms_norm_eps=1e-5))
    llama.save_pretrained(root / "llama_hf")
    return dict(encoder=str(root / "clip"), decoder=str(root / "llama_hf"), llama=llama.eval())


def test_init_from_converted_encoder_and_hf_decoder(checkpoints):
    cfg = _model_config()
    model, params = _init(cfg)
    init = ml_collections.ConfigDict(dict(checkpoint="", encoder=checkpoints["encoder"], decoder=checkpoints["decoder"]))
    new = pretrained.init_from_checkpoints(init, params, cfg)
    assert jax.tree.structure(new) == jax.tree.structure(params)
    for fresh, kept in zip(jax.tree.leaves(new["connector"]), jax.tree.leaves(params["connector"])):
        np.testing.assert_array_equal(fresh, kept)
    clip = checkpoint.read_converted(checkpoints["encoder"]).params
    np.testing.assert_array_equal(new["encoder"]["pos_embed"], vit.interpolate_pos_embed(clip["pos_embed"], 2, 4, True))
    np.testing.assert_array_equal(new["encoder"]["layers"]["attn"]["q_proj"]["kernel"][1],
                                  clip["layer_1"]["attn"]["q_proj"]["kernel"])
    # the scanned decoder inside MM1 now computes transformers' logits
    tokens = np.random.RandomState(0).randint(0, 64, (2, 6)).astype(np.int32)
    ours = jax.jit(lambda p, t: model.apply({"params": p}, t)["logits"])(new, tokens)
    with torch.no_grad():
        theirs = checkpoints["llama"](torch.tensor(tokens, dtype=torch.long)).logits.numpy()
    assert np.max(np.abs(np.asarray(ours) - theirs)) <= 1e-4 * np.max(np.abs(theirs))


def test_mismatches_are_named(checkpoints):
    cfg = _model_config(mlp_dim=80)
    _, params = _init(cfg)
    init = dict(encoder="", decoder=checkpoints["decoder"])
    with pytest.raises(ValueError, match=r"layers/mlp/gate_proj/kernel \[2, 48, 96\] \(model \[2, 48, 80\]\)"):
        pretrained.init_from_checkpoints(init, params)
    with pytest.raises(ValueError, match=r"mlp_dim=96 \(model.decoder.mlp_dim=80\)"):
        pretrained.init_from_checkpoints(init, params, cfg)
    with pytest.raises(ValueError, match="holds a decoder"):
        pretrained.init_from_checkpoints(dict(encoder=checkpoints["decoder"]), params)
