"""One owner for each model fact: the defaults of `config.model` (mm1_jax/models/config.py), one builder for both
kinds (`registry.build_model`, chosen by `model.kind`), and the parameters the model declares resolution-dependent
(`vit.RESOLUTION_PARAMS`), which the stage restore and converted weights both resize."""
import dataclasses
import re

import flax.linen as nn
import jax
import ml_collections
import numpy as np
import pytest

from mm1_jax import pretrained
from mm1_jax.models import c_abstractor, decoder, inputs, mm1, owl3, registry, summary, vit
from mm1_jax.models import config as model_config
from mm1_jax.runtime import checkpoint as ckpt


def mm1_config(image_size=16, **top):
    """A CPU-sized MM1 config that leaves every defaulted field out (CLIP encoder: a class-token row)."""
    return ml_collections.ConfigDict(dict(
        encoder=dict(style="clip", image_size=image_size, patch_size=4, width=32, depth=2, num_heads=4, mlp_dim=64,
                     norm_eps=1e-5),
        connector=dict(name="avg_pool", num_tokens=4),
        decoder=dict(vocab_size=64, width=48, depth=2, num_heads=4, num_kv_heads=2, mlp_dim=96), **top))


# ----------------------------------------------------------------------------------------------------------------
# Defaults: one owner
# ----------------------------------------------------------------------------------------------------------------
def test_a_default_changed_at_the_owner_reaches_validator_builder_input_spec_and_summary(monkeypatch):
    cfg = mm1_config()
    monkeypatch.setitem(model_config.MODEL, "max_images", 3)
    monkeypatch.setitem(model_config.DECODER, "capacity_factor", 2.5)
    monkeypatch.setitem(model_config.ENCODER, "feature_layer", -2)
    model = registry.build_model(cfg)
    assert model.max_images == 3 and model.decoder.capacity_factor == 2.5 and model.encoder.feature_layer == -2
    assert inputs.input_spec(cfg).max_images == 3
    assert summary.summarize(ml_collections.ConfigDict(dict(model=cfg)))["max_images"] == 3
    monkeypatch.setitem(model_config.OWL3, "projector_depth", 2)
    owl = owl3.tiny_owl3_config()
    del owl["projector_depth"]
    assert registry.build_model(owl).vision2text.mlp_depth == 2
    monkeypatch.setitem(model_config.MODEL, "max_images", -1)
    with pytest.raises(ValueError, match=re.escape("model.max_images=-1 must be a non-negative integer.")):
        registry.validate_model_config(cfg)
    monkeypatch.setitem(model_config.MODEL, "max_images", 3)
    monkeypatch.setitem(model_config.DECODER, "capacity_factor", 0.0)
    monkeypatch.setitem(model_config.DECODER, "num_experts", 2)
    with pytest.raises(ValueError, match=re.escape("model.decoder.capacity_factor=0.0 must be > 0.")):
        registry.validate_model_config(cfg)


def test_module_field_defaults_agree_with_the_owner():
    """Modules used directly (`Decoder(**dims)`) and built from a config start from the same defaults."""
    def defaults(cls):
        return {f.name: f.default for f in dataclasses.fields(cls) if f.default is not dataclasses.MISSING}

    dec, enc = defaults(decoder.Decoder), defaults(vit.ViT)
    assert {k: dec[k] for k in model_config.DECODER} == model_config.DECODER
    assert {k: enc[k] for k in model_config.ENCODER} == model_config.ENCODER
    assert defaults(mm1.MM1)["max_images"] == model_config.MODEL["max_images"]
    assert defaults(owl3.Owl3)["image_token_id"] == model_config.OWL3["image_token_id"]
    assert defaults(c_abstractor.CAbstractor)["use_pos_emb"] == model_config.CONNECTOR["pos_emb"]


# ----------------------------------------------------------------------------------------------------------------
# One builder, chosen by model.kind
# ----------------------------------------------------------------------------------------------------------------
def test_one_builder_and_one_input_spec_for_both_kinds():
    plain = mm1_config()
    assert isinstance(registry.build_model(plain), mm1.MM1)  # kind left out: 'mm1'
    owl = owl3.tiny_owl3_config()
    model = registry.build_model(owl)
    assert isinstance(model, owl3.Owl3) and model.decoder.hyper_layers == (1, 3)
    assert model.image_token_id == owl.image_token_id and model.vision2text.mlp_depth == 1
    spec = inputs.input_spec(owl)
    assert (spec.tokens_per_image, spec.image_size, spec.image_norm) == (1, 28, "siglip")
    assert inputs.input_spec(plain).tokens_per_image == 4 and inputs.input_spec(plain).image_norm == "clip"
    counts = summary.part_counts(summary.abstract_params(owl))
    assert counts["connector"] == 32 * 64 + 64  # the one Linear of projector_depth 1
    with pytest.raises(ValueError, match=re.escape("model.kind='llava' is not one of mm1, owl3.")):
        registry.build_model(mm1_config(kind="llava"))


def test_the_retired_spelling_gets_one_sentence_naming_the_new_field():
    owl = owl3.tiny_owl3_config()
    owl.hyper_layers = owl.decoder.hyper_layers
    with pytest.raises(ValueError, match=re.escape(
            "model.hyper_layers=[1, 3] is no longer a field; set model.decoder.hyper_layers=(1, 3) instead "
            "(zero-based decoder layer indices, for MM1 and mPLUG-Owl3 alike).")):
        registry.build_model(owl)
    with pytest.raises(ValueError, match=re.escape("model.hyper_layers=[1] is no longer a field")):
        registry.validate_model_config(mm1_config(hyper_layers=(1,)))
    untyped = owl3.tiny_owl3_config()
    del untyped["kind"]
    with pytest.raises(ValueError, match=re.escape(
            "model.projector_depth is an mPLUG-Owl3 field, but model.kind='mm1'; set model.kind='owl3'")):
        registry.build_model(untyped)


# ----------------------------------------------------------------------------------------------------------------
# Resolution-dependent parameters: declared once, resized by both paths
# ----------------------------------------------------------------------------------------------------------------
def _params(cfg, seed=0):
    return jax.device_get(ckpt.load_params(registry.build_model(cfg), cfg, None, seed))


@pytest.fixture(scope="module")
def low_resolution(tmp_path_factory):
    """A stage checkpoint and a converted encoder, both trained at 8 px (a 2 x 2 grid, class-token row)."""
    from mm1_jax.convert import checkpoint as converted  # pylint: disable=import-outside-toplevel

    root = tmp_path_factory.mktemp("resolution")
    low = mm1_config(image_size=8)
    params = _params(low)
    manager = ckpt.make_manager(str(root / "stage"), keep=1, async_save=False)
    ckpt.save(manager, 1, {"params": params}, "{}")
    manager.wait_until_finished()
    manager.close()
    encoder = ml_collections.ConfigDict({**model_config.ENCODER, **low.encoder.to_dict()})
    converted.write_converted(converted.Converted("vit_weights", encoder, params["encoder"], {}),
                              str(root / "encoder"))
    return dict(stage=str(root / "stage"), encoder=str(root / "encoder"), table=params["encoder"]["pos_embed"])


def test_a_declared_parameter_is_resized_by_the_stage_restore_and_converted_weights(low_resolution, monkeypatch):
    high = mm1_config(image_size=16)  # 4 x 4 grid
    want = vit.interpolate_pos_embed(np.asarray(low_resolution["table"], np.float32), 2, 4, True)
    restored = ckpt.load_params(registry.build_model(high), high, low_resolution["stage"])
    np.testing.assert_allclose(restored["encoder"]["pos_embed"], want, atol=1e-6)
    init = dict(encoder=low_resolution["encoder"], decoder="")
    loaded = pretrained.init_from_checkpoints(init, nn.unbox(_params(high)), high)
    np.testing.assert_allclose(loaded["encoder"]["pos_embed"], want, atol=1e-6)

    monkeypatch.setattr(vit, "RESOLUTION_PARAMS", ("pos_emb",))  # the declaration no longer names the ViT's table
    with pytest.raises(ValueError, match=r"missing or different shape: encoder/pos_embed"):
        ckpt.load_params(registry.build_model(high), high, low_resolution["stage"])
    with pytest.raises(ValueError, match=r"does not fit model.encoder: pos_embed \[5, 32\] \(model \[17, 32\]\)"):
        pretrained.init_from_checkpoints(init, nn.unbox(_params(high)), high)
