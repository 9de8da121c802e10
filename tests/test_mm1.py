"""MM1 model: image slots, packed sequences, sharded forward on 8 devices, config errors, paper sizes."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from contextlib import nullcontext
from jax.sharding import NamedSharding

from configs import mm1_pretrain
from mm1_jax.data import images as images_lib
from mm1_jax.models import presets, registry
from mm1_jax.models.inputs import input_spec
from mm1_jax.models.mm1 import encoder_norm
from mm1_jax.models.vit import NORMS, STYLES
from mm1_jax.models.summary import summarize
from mm1_jax.train import sharding

K = 4  # image tokens per image in the small model below


def small_config(**decoder) -> ml_collections.ConfigDict:
    return ml_collections.ConfigDict(
        dict(
            encoder=dict(style="clip", image_size=16, patch_size=4, width=32, depth=2, num_heads=4, mlp_dim=64,
                         norm_eps=1e-5, feature_layer=-1, feature_norm=False, drop_class_token=True),
            connector=dict(name="c_abstractor", num_tokens=K, hidden_dim=24, depth=1, mlp_depth=2),
            decoder=dict(vocab_size=64, width=48, depth=2, num_heads=4, num_kv_heads=2, mlp_dim=96, **decoder),
            max_images=2,
            dtype="float32",
        )
    )


def make_batch(seed=0, t=16):
    """Two rows; row 0 has images at slots 3..6 and 10..13, row 1 one image at 5..8."""
    rng = np.random.RandomState(seed)
    tokens = rng.randint(5, 64, (2, t)).astype(np.int32)
    index = -np.ones((2, t), np.int32)
    index[0, 3:7] = np.arange(K)
    index[0, 10:14] = K + np.arange(K)
    index[1, 5:9] = np.arange(K)
    images = rng.randn(2, 2, 16, 16, 3).astype(np.float32)
    return dict(tokens=jnp.asarray(tokens), images=jnp.asarray(images), image_token_index=jnp.asarray(index))


@pytest.fixture(scope="module")
def model_and_params():
    model = registry.build_model(small_config())
    batch = make_batch()
    params = nn.unbox(jax.jit(model.init)(jax.random.PRNGKey(0), **batch)["params"])
    return model, params, jax.jit(lambda p, b: model.apply({"params": p}, **b)["logits"])


def test_parts_are_named(model_and_params):
    _, params, _ = model_and_params
    assert set(params) == {"encoder", "connector", "decoder"}


def test_image_changes_only_logits_at_and_after_its_slot(model_and_params):
    _, params, fwd = model_and_params
    batch = make_batch()
    base = fwd(params, batch)
    other = dict(batch, images=batch["images"].at[0, 1].set(batch["images"][0, 1] * -2.0))  # row 0, 2nd image
    changed = fwd(params, other)
    np.testing.assert_array_equal(base[0, :10], changed[0, :10])  # before its first slot: bit-identical
    assert np.abs(base[0, 10:] - changed[0, 10:]).max() > 1e-4
    np.testing.assert_array_equal(base[1], changed[1])  # the other row never sees it


def test_slot_embeddings_are_the_connector_outputs(model_and_params):
    """The decoder sees exactly connector(encoder(image)) at the slots, the token embedding elsewhere."""
    model, params, _ = model_and_params
    batch = make_batch()
    embeds = model.apply({"params": params}, batch["images"], method=model.encode_images)  # [B, M*K, D]
    logits_direct = model.apply(
        {"params": params},
        batch["tokens"],
        method=lambda m, tok: m.decoder(
            inputs_embeds=jnp.where(
                (batch["image_token_index"] >= 0)[..., None],
                jnp.take_along_axis(embeds, jnp.maximum(batch["image_token_index"], 0)[..., None], axis=1),
                m.decoder.embed(tok),
            )
        )["logits"],
    )
    np.testing.assert_allclose(model.apply({"params": params}, **batch)["logits"], logits_direct, atol=1e-6)
    # and the image embedding differs from what the slot's token id would have given
    tok_embed = params["decoder"]["embed_tokens"]["embedding"][batch["tokens"][0, 3]]
    assert np.abs(embeds[0, 0] - tok_embed).max() > 1e-3


def test_packed_rows_with_images_equal_each_document_alone(model_and_params):
    """Document A (with an image) and B packed in one row give the logits each has alone."""
    _, params, fwd = model_and_params
    rng = np.random.RandomState(3)
    a = rng.randint(5, 64, 9).astype(np.int32)
    b = rng.randint(5, 64, 5).astype(np.int32)
    img = rng.randn(1, 2, 16, 16, 3).astype(np.float32)
    idx_a = -np.ones(9, np.int32)
    idx_a[2:6] = np.arange(K)
    alone_a = fwd(params, dict(tokens=a[None], images=img, image_token_index=idx_a[None]))
    alone_b = fwd(params, dict(tokens=b[None], images=img, image_token_index=-np.ones((1, 5), np.int32)))
    packed = dict(
        tokens=np.concatenate([a, b, [0, 0]])[None],
        images=img,
        image_token_index=np.concatenate([idx_a, -np.ones(7, np.int32)])[None],
        segment_ids=np.array([[1] * 9 + [2] * 5 + [0] * 2]),
        positions=np.array([list(range(9)) + list(range(5)) + [0, 0]]),
    )
    out = fwd(params, jax.tree.map(jnp.asarray, packed))
    np.testing.assert_allclose(out[:, :9], alone_a, atol=1e-5)
    np.testing.assert_allclose(out[:, 9:14], alone_b, atol=1e-5)


def test_loss_weights_and_value(model_and_params):
    model, params, _ = model_and_params
    batch = make_batch()
    targets = jnp.roll(batch["tokens"], -1, axis=1)
    weights = (batch["image_token_index"] < 0).astype(jnp.float32).at[:, -1].set(0.0)
    out = model.apply({"params": params}, dict(batch, targets=targets, loss_weights=weights), method=model.loss)
    logp = jax.nn.log_softmax(out["logits"])
    nll = -np.take_along_axis(np.asarray(logp), np.asarray(targets)[..., None], -1)[..., 0]
    expected = (nll * weights).sum() / weights.sum()
    np.testing.assert_allclose(out["loss"], expected, rtol=1e-6)


def test_loss_terms_are_the_sums_the_loss_divides(model_and_params):
    """`loss_terms` (shared with the trainer): summed weighted NLL, summed weights, MoE loss 0 for a dense decoder."""
    from mm1_jax.models.mm1 import loss_terms

    model, params, _ = model_and_params
    batch = make_batch()
    targets = jnp.roll(batch["tokens"], -1, axis=1)
    weights = (batch["image_token_index"] < 0).astype(jnp.float32).at[:, -1].set(0.0) * 0.5
    out = model.apply({"params": params}, **batch)
    terms = loss_terms(out, targets, weights)
    assert set(terms) == {"nll_sum", "weight", "moe_loss"}
    assert all(v.dtype == jnp.float32 and v.shape == () for v in terms.values())
    logp = jax.nn.log_softmax(out["logits"])
    nll = -np.take_along_axis(np.asarray(logp), np.asarray(targets)[..., None], -1)[..., 0]
    np.testing.assert_allclose(terms["nll_sum"], (nll * weights).sum(), rtol=1e-6)
    np.testing.assert_allclose(terms["weight"], weights.sum(), rtol=1e-6)
    assert float(terms["moe_loss"]) == 0.0
    full = model.apply({"params": params}, dict(batch, targets=targets, loss_weights=weights), method=model.loss)
    np.testing.assert_allclose(full["loss"], terms["nll_sum"] / terms["weight"], rtol=1e-6)


def test_sharded_forward_equals_single_device(model_and_params):
    """jit over an 8-device mesh (fsdp 4 x tensor 2) gives the single-device logits; params really are sharded."""
    model, params, fwd = model_and_params
    batch = dict(make_batch(seed=1), segment_ids=jnp.ones((2, 16), jnp.int32))
    batch = {k: jnp.concatenate([v, v, v, v]) for k, v in batch.items()}  # batch 8 divides the data axes
    expected = fwd(params, batch)
    mesh = sharding.make_mesh({"fsdp": 4, "tensor": 2})
    abstract = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), **batch))["params"]
    shardings = sharding.param_shardings(abstract, mesh)
    sharded_params = jax.device_put(params, shardings)
    in_batch = {k: jax.device_put(v, sharding.batch_sharding(mesh, v.ndim)) for k, v in batch.items()}
    with jax.set_mesh(mesh), nn.logical_axis_rules(sharding.LOGICAL_AXIS_RULES):
        out = jax.jit(lambda p, b: model.apply({"params": p}, **b)["logits"])(sharded_params, in_batch)
    np.testing.assert_allclose(out, expected, atol=1e-5)
    q = sharded_params["decoder"]["layer_0"]["attn"]["q_proj"]["kernel"]  # [embed 48, heads 4, head_dim 12]
    assert q.sharding.spec == jax.sharding.PartitionSpec("fsdp", "tensor", None)
    assert {s.data.shape for s in q.addressable_shards} == {(12, 2, 12)}
    emb = sharded_params["decoder"]["embed_tokens"]["embedding"]  # [vocab 64, embed 48]
    assert emb.sharding.spec == jax.sharding.PartitionSpec("tensor", "fsdp")
    vit_fc1 = sharded_params["encoder"]["layer_0"]["mlp"]["fc1"]["kernel"]  # [vit_embed 32, vit_mlp 64]
    assert vit_fc1.sharding.spec == jax.sharding.PartitionSpec("fsdp", "tensor")
    assert isinstance(out.sharding, NamedSharding)


def uint8_pixels(seed=1, shape=(2, 2, 16, 16, 3)):
    return np.random.RandomState(seed).randint(0, 256, shape).astype(np.uint8)


def test_uint8_pixels_are_normalised_exactly_once(model_and_params):
    """uint8 pixels give the logits of the same pixels normalised by the numpy reference (`images.normalize` with the
    encoder's statistics) and fed as floats; normalising twice, or not at all, gives other logits."""
    _, params, fwd = model_and_params
    batch, pixels = make_batch(), uint8_pixels()
    reference = images_lib.normalize(pixels, "clip")
    got = np.asarray(fwd(params, dict(batch, images=pixels)))
    np.testing.assert_allclose(got, fwd(params, dict(batch, images=reference)), atol=1e-5, rtol=1e-5)
    mean, std = NORMS["clip"]
    for wrong in (pixels.astype(np.float32), (reference / 255.0 - mean) / std):  # not at all; twice
        assert np.abs(got - np.asarray(fwd(params, dict(batch, images=wrong)))).max() > 1e-2


@pytest.mark.parametrize("style", sorted(STYLES))
def test_model_normalises_with_the_statistics_the_data_contract_names(style):
    """The norm the model applies (its encoder's style) is `input_spec(...).image_norm`, for every encoder style."""
    cfg = small_config()
    cfg.encoder.style = style
    assert encoder_norm(registry.build_model(cfg).encoder) == input_spec(cfg).image_norm == STYLES[style]["image_norm"]


def test_sharded_uint8_batch_keeps_its_sharding_at_a_quarter_of_the_bytes(model_and_params):
    """uint8 images sharded over the data axes: each device holds its rows in a quarter of float32's bytes, and the
    sharded forward equals the single-device one on the reference-normalised floats."""
    model, params, fwd = model_and_params
    batch = dict(make_batch(seed=1), segment_ids=jnp.ones((2, 16), jnp.int32))
    batch = {k: jnp.concatenate([v, v, v, v]) for k, v in batch.items()}
    pixels = uint8_pixels(shape=(8, 2, 16, 16, 3))
    expected = fwd(params, dict(batch, images=images_lib.normalize(pixels, "clip")))
    mesh = sharding.make_mesh({"fsdp": 4, "tensor": 2})
    shardings = sharding.param_shardings(jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), **batch))["params"],
                                         mesh)
    in_batch = {k: jax.device_put(v, sharding.batch_sharding(mesh, v.ndim))
                for k, v in dict(batch, images=pixels).items()}
    images = in_batch["images"]
    assert images.dtype == jnp.uint8 and images.sharding == sharding.batch_sharding(mesh, 5)
    assert {s.data.nbytes for s in images.addressable_shards} == {2 * 2 * 16 * 16 * 3}  # 2 rows each, 1 byte a value
    assert images.nbytes * 4 == images_lib.normalize(pixels, "clip").nbytes
    with jax.set_mesh(mesh), nn.logical_axis_rules(sharding.LOGICAL_AXIS_RULES):
        out = jax.jit(lambda p, b: model.apply({"params": p}, **b)["logits"])(jax.device_put(params, shardings),
                                                                                in_batch)
    np.testing.assert_allclose(out, expected, atol=1e-5)


def test_mesh_spec_errors():
    assert sharding.mesh_shape({"fsdp": -1, "tensor": 2}, 8) == {"data": 1, "fsdp": 4, "tensor": 2, "expert": 1}
    with pytest.raises(ValueError, match="mesh has unknown axis 'model'"):
        sharding.mesh_shape({"model": 2}, 8)
    with pytest.raises(ValueError, match="do not divide the 8 devices"):
        sharding.mesh_shape({"fsdp": -1, "tensor": 3}, 8)


@pytest.mark.parametrize(
    "section,change,message",
    [
        ("decoder", dict(num_heads=5), "model.decoder.num_heads=5 does not divide model.decoder.width=48"),
        ("decoder", dict(num_kv_heads=3), "model.decoder.num_kv_heads=3 does not divide model.decoder.num_heads=4"),
        ("decoder", dict(widht=48), "model.decoder.widht is not a known field"),
        ("decoder", dict(remat_policy="some"), "model.decoder.remat_policy='some' is not one of"),
        ("decoder", dict(attention="flash"), "model.decoder.attention='flash' is not one of xla, cudnn"),
        ("encoder", dict(image_size=18), "model.encoder.image_size=18 is not a multiple of model.encoder.patch_size=4"),
        ("encoder", dict(num_heads=5), "model.encoder.width=32 is not divisible by model.encoder.num_heads=5"),
        ("connector", dict(num_tokens=6), "model.connector.num_tokens=6 is not a perfect square"),
        ("connector", dict(name="perceiver"), "model.connector.name='perceiver' is unknown; choose one of avg_pool"),
        (None, dict(dtype="fp8"), "model.dtype='fp8' is not one of"),
        (None, dict(vision="x"), "model.vision is not a known field"),
    ],
)
def test_config_errors_name_field_and_value(section, change, message):
    cfg = small_config()
    target = cfg if section is None else cfg[section]
    with target.unlocked() if hasattr(target, "unlocked") else nullcontext():
        target.update(change)
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(".", r"\.")):
        registry.build_model(cfg)


def test_more_images_than_slots_is_refused(model_and_params):
    model, params, _ = model_and_params
    batch = make_batch()
    batch["images"] = jnp.concatenate([batch["images"]] * 2, axis=1)  # 4 per row, max_images=2
    with pytest.raises(ValueError, match="images has 4 per row, more than model.max_images=2"):
        model.apply({"params": params}, **batch)


@pytest.mark.parametrize("size", ["1b", "3b", "7b", "30b"])
def test_decoder_presets_hit_nominal_size(size):
    """The summary (eval_shape, nothing allocated) puts each decoder within 5% of its nominal size."""
    s = summarize(mm1_pretrain.get_config(f"decoder={size}"))
    nominal = presets.NOMINAL_PARAMS[size]
    assert abs(s["params"]["decoder"] - nominal) / nominal < 0.05, s["params"]["decoder"]
    assert s["tokens_per_image"] == 144 and s["encoder_tokens"] == 27 * 27  # ViT-H/14 @378: 27 x 27 patches
    # ViT-H/14 is ~632M parameters (open_clip's vision tower without its projection: 631.4M)
    assert abs(s["params"]["encoder"] - 631.4e6) / 631.4e6 < 0.01


def test_config_arg_rows():
    assert mm1_pretrain.parse_arg("decoder=7b,tokens=64")["tokens"] == "64"
    with pytest.raises(ValueError, match="config argument 'size=7b' is not key=value"):
        mm1_pretrain.parse_arg("size=7b")
    s = summarize(mm1_pretrain.get_config("decoder=1b,encoder=clip_vit_l14_224,connector=avg_pool,tokens=64"))
    assert s["tokens_per_image"] == 64 and s["encoder_tokens"] == 256
