"""ViT encoders against transformers (CLIP, SigLIP, AIMv2) and a torch spelling of apple/ml-aim's AIM v1 math."""
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
import torch
import torch.nn.functional as F
import transformers as T
from flax import linen as nn
from transformers.models.aimv2.modeling_aimv2 import build_2d_sinusoidal_position_embedding

from mm1_jax.convert.vit_weights import hf_vit_to_params, vit_from_hf_config
from mm1_jax.models import vit

HF = {
    "clip": (T.CLIPVisionModel, T.CLIPVisionConfig, {}),
    "siglip": (T.SiglipVisionModel, T.SiglipVisionConfig, dict(vision_use_head=True)),
    "aim_v2": (T.Aimv2VisionModel, T.Aimv2VisionConfig, dict(use_head=True)),
    "aim_v2_native": (T.Aimv2VisionModel, T.Aimv2VisionConfig, dict(use_head=False, is_native=True)),
}
TINY = dict(hidden_size=36, num_hidden_layers=3, num_attention_heads=3, intermediate_size=52, image_size=32,
            patch_size=8)


def _hf_model(kind: str, seed: int = 0):
    cls, config_cls, extra = HF[kind]
    torch.manual_seed(seed)
    model = cls(config_cls(**TINY, **extra)).eval()
    with torch.no_grad():  # non-trivial norm parameters, so that a swapped scale/bias shows
        for name, p in model.named_parameters():
            if "norm" in name:
                p.add_(0.1 * torch.randn_like(p))
    return model


def _state_dict(model) -> dict:
    return {k: v.detach().numpy() for k, v in model.state_dict().items()}


def _images(size: int, seed: int = 1, batch: int = 2) -> torch.Tensor:
    return torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(seed))


def _run(cfg, params, pixels: torch.Tensor, **kw):
    model = vit.ViT(**cfg)
    return model.apply({"params": params}, jnp.asarray(pixels.numpy().transpose(0, 2, 3, 1)), **kw)


def _assert_close(ours, theirs, tol: float = 1e-4):
    theirs = theirs.detach().numpy() if isinstance(theirs, torch.Tensor) else np.asarray(theirs)
    ours = np.asarray(ours)
    assert ours.shape == theirs.shape
    err, scale = np.max(np.abs(ours - theirs)), np.max(np.abs(theirs))
    assert err <= tol * scale, f"max error {err:.3g} vs scale {scale:.3g}"


@pytest.fixture(scope="module", params=list(HF))
def converted(request):
    model = _hf_model(request.param)
    cfg = vit_from_hf_config(model.config.to_dict())
    return request.param, model, cfg, hf_vit_to_params(_state_dict(model), cfg)


# ----------------------------------------------------------------------------------------------------------------
# Parity with transformers
# ----------------------------------------------------------------------------------------------------------------
def test_parity_with_transformers(converted):
    kind, model, cfg, params = converted
    shapes = jax.eval_shape(lambda: vit.ViT(**cfg).init(jax.random.PRNGKey(0), jnp.zeros((1, 32, 32, 3))))
    assert jax.tree.map(lambda x: x.shape, nn.unbox(shapes["params"])) == jax.tree.map(np.shape, params)

    pixels = _images(32)
    with torch.no_grad():
        theirs = model(pixel_values=pixels, output_hidden_states=True)
    ours = _run(cfg, params, pixels, return_hidden_states=True)
    _assert_close(ours["last_hidden_state"], theirs.last_hidden_state)
    assert len(ours["hidden_states"]) == len(theirs.hidden_states) == TINY["num_hidden_layers"] + 1
    for mine, reference in zip(ours["hidden_states"], theirs.hidden_states):
        _assert_close(mine, reference)
    if theirs.pooler_output is not None:
        _assert_close(ours["pooled"], theirs.pooler_output)
    else:
        assert "pooled" not in ours


@pytest.mark.parametrize("kind", ["clip", "siglip"])
@pytest.mark.parametrize("size", [48, 24])  # up- and down-sampling the 4 x 4 grid
def test_interpolated_positions_match_transformers(kind, size):
    model = _hf_model(kind)
    cfg = vit_from_hf_config(model.config.to_dict())
    params = hf_vit_to_params(_state_dict(model), cfg)
    pixels = _images(size)
    with torch.no_grad():
        theirs = model(pixel_values=pixels, interpolate_pos_encoding=True)
    ours = _run(cfg, params, pixels)
    _assert_close(ours["last_hidden_state"], theirs.last_hidden_state)

    # The same numbers from a checkpoint resized at load time to a 48 px config.
    if size == 48:
        big = vit_from_hf_config(model.config.to_dict(), image_size=48)
        resized = hf_vit_to_params(_state_dict(model), big)
        assert resized["pos_embed"].shape[0] == 36 + (kind == "clip")
        _assert_close(_run(big, resized, pixels)["last_hidden_state"], theirs.last_hidden_state)


@pytest.mark.parametrize("old,new", [((4, 4), (6, 6)), ((6, 6), (4, 4)), ((5, 3), (7, 9)), ((24, 24), (27, 27))])
@pytest.mark.parametrize("class_token", [True, False])
def test_interpolate_pos_embed_is_torch_bicubic(old, new, class_token):
    rng = np.random.default_rng(0)
    table = rng.normal(size=(old[0] * old[1] + class_token, 5)).astype(np.float32)
    grid = torch.from_numpy(table[class_token:]).reshape(1, *old, 5).permute(0, 3, 1, 2)
    expected = F.interpolate(grid, size=new, mode="bicubic", align_corners=False)
    expected = expected.permute(0, 2, 3, 1).reshape(-1, 5).numpy()
    for resized in (vit.interpolate_pos_embed(table, old, new, class_token),
                    np.asarray(vit.interpolate_pos_embed(jnp.asarray(table), old, new, class_token))):
        assert resized.shape == (new[0] * new[1] + class_token, 5)
        np.testing.assert_allclose(resized[class_token:], expected, atol=1e-5)
        if class_token:
            np.testing.assert_array_equal(resized[0], table[0])


# ----------------------------------------------------------------------------------------------------------------
# Which tensor feeds the connector
# ----------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind,feature_layer,feature_norm,drop_class_token", [
    ("clip", -1, False, True),  # MM1
    ("clip", -2, True, False),
    ("clip", 0, False, True),
    ("siglip", -2, False, True),  # mPLUG-Owl3
    ("siglip", -1, True, True),
    ("siglip", 1, True, True),
])
def test_feature_selection(kind, feature_layer, feature_norm, drop_class_token):
    model = _hf_model(kind)
    cfg = vit_from_hf_config(model.config.to_dict(), feature_layer=feature_layer, feature_norm=feature_norm,
                             drop_class_token=drop_class_token)
    params = hf_vit_to_params(_state_dict(model), cfg)
    pixels = _images(32)
    with torch.no_grad():
        expected = model(pixel_values=pixels, output_hidden_states=True).hidden_states[feature_layer]
        if feature_norm:
            expected = model.post_layernorm(expected)
    if kind == "clip" and drop_class_token:
        expected = expected[:, 1:]
    features = _run(cfg, params, pixels)["features"]
    assert features.shape == (2, 16 + (kind == "clip" and not drop_class_token), 36)
    _assert_close(features, expected)


# ----------------------------------------------------------------------------------------------------------------
# AIM v1: no transformers class; a torch spelling of apple/ml-aim's aim-v1 recipe (layers.py / models.py)
# ----------------------------------------------------------------------------------------------------------------
def _aim_v1_sincos(h: int, w: int, dim: int) -> torch.Tensor:
    """ml-aim SinCosPosEmbed: meshgrid(w, h, 'xy'), 'emb_h' from grid[0], each half [sin | cos], omega over dim/4."""
    grid = torch.stack(torch.meshgrid(torch.arange(w).float(), torch.arange(h).float(), indexing="xy")).reshape(
        2, 1, h, w)

    def one_d(d, pos):
        omega = 1.0 / 10000 ** (torch.arange(d // 2).float() / (d / 2.0))
        out = pos.reshape(-1)[:, None] * omega[None]
        return torch.cat([out.sin(), out.cos()], dim=1)

    return torch.cat([one_d(dim // 2, grid[0]), one_d(dim // 2, grid[1])], dim=1)


def _aim_v1_state_dict(width: int, depth: int, mlp: int, patch: int) -> dict:
    g = torch.Generator().manual_seed(3)
    rand = lambda *s, scale=0.2: torch.randn(*s, generator=g) * scale  # noqa: E731
    sd = {"preprocessor.patchifier.proj.weight": rand(width, 3, patch, patch),
          "preprocessor.patchifier.proj.bias": rand(width),
          "preprocessor.patchifier.norm.weight": 1 + rand(width), "preprocessor.patchifier.norm.bias": rand(width),
          "trunk.post_trunk_norm.weight": 1 + rand(width), "trunk.post_trunk_norm.bias": rand(width)}
    for i in range(depth):
        b = f"trunk.blocks.{i}."
        sd.update({b + "attn.qkv.weight": rand(3 * width, width), b + "attn.proj.weight": rand(width, width),
                   b + "norm_1.weight": 1 + rand(width), b + "norm_1.bias": rand(width),
                   b + "norm_2.weight": 1 + rand(width), b + "norm_2.bias": rand(width),
                   b + "mlp.fc1.weight": rand(mlp, width), b + "mlp.fc2.weight": rand(width, mlp)})
    return sd


def _aim_v1_reference(sd: dict, pixels: torch.Tensor, heads: int, depth: int, patch: int):
    """Tokens after every block and after the trunk norm, as ml-aim's Transformer computes them."""
    width = sd["trunk.post_trunk_norm.weight"].shape[0]
    ln = lambda x, n: F.layer_norm(x, (width,), sd[n + ".weight"], sd[n + ".bias"], eps=1e-6)  # noqa: E731
    x = F.conv2d(pixels, sd["preprocessor.patchifier.proj.weight"], sd["preprocessor.patchifier.proj.bias"],
                 stride=patch)
    h, w = x.shape[2:]
    x = ln(x.flatten(2).transpose(1, 2), "preprocessor.patchifier.norm") + _aim_v1_sincos(h, w, width)[None]
    states = [x]
    for i in range(depth):
        b = f"trunk.blocks.{i}."
        y = ln(x, b + "norm_1")
        q, k, v = (y @ sd[b + "attn.qkv.weight"].T).reshape(*y.shape[:2], 3, heads, -1).permute(2, 0, 3, 1, 4)
        attn = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(y.shape)
        x = x + attn @ sd[b + "attn.proj.weight"].T
        x = x + F.gelu(ln(x, b + "norm_2") @ sd[b + "mlp.fc1.weight"].T) @ sd[b + "mlp.fc2.weight"].T
        states.append(x)
    return states, ln(x, "trunk.post_trunk_norm")


@pytest.mark.parametrize("size", [32, 40])  # 40 px: sin-cos recomputed for a 5 x 5 grid
def test_aim_v1_matches_reference_math(size):
    width, depth, heads, mlp, patch = 48, 2, 4, 96, 8
    sd = _aim_v1_state_dict(width, depth, mlp, patch)
    cfg = ml_collections.ConfigDict(dict(vit.VIT_PRESETS["aim_600m_224"], image_size=32, patch_size=patch,
                                         width=width, depth=depth, num_heads=heads, mlp_dim=mlp))
    params = hf_vit_to_params({k: v.numpy() for k, v in sd.items()}, cfg)
    assert "pos_embed" not in params
    pixels = _images(size)
    states, last = _aim_v1_reference(sd, pixels, heads, depth, patch)
    ours = _run(cfg, params, pixels, return_hidden_states=True)
    _assert_close(ours["last_hidden_state"], last)
    for mine, reference in zip(ours["hidden_states"], states):
        _assert_close(mine, reference)
    _assert_close(ours["features"], states[-1])  # MM1: last layer, before the final norm
    assert "pooled" not in ours


def test_sincos_matches_aim_v1_and_aimv2_native():
    for h, w, dim in [(4, 4, 8), (3, 5, 16), (16, 16, 1536)]:
        table = vit.sincos_pos_embed((h, w), dim)
        np.testing.assert_allclose(table, _aim_v1_sincos(h, w, dim).numpy(), atol=2e-5)
        canonical = build_2d_sinusoidal_position_embedding(h, w, dim).numpy()  # [sin_h|cos_h|sin_w|cos_w]
        np.testing.assert_allclose(table, np.roll(canonical, dim // 2, axis=1), atol=1e-6)
    # Row 1 (x=1, y=0) of a 2-wide grid with dim 4: [sin 1, cos 1, sin 0, cos 0].
    np.testing.assert_allclose(vit.sincos_pos_embed((1, 2), 4)[1], [np.sin(1), np.cos(1), 0, 1], atol=1e-7)


# ----------------------------------------------------------------------------------------------------------------
# Scan / remat, axis names, configs and presets
# ----------------------------------------------------------------------------------------------------------------
def test_scanned_and_rematerialised_layers_give_the_same_numbers():
    model = _hf_model("clip")
    cfg = vit_from_hf_config(model.config.to_dict())
    scanned_cfg = vit_from_hf_config(model.config.to_dict(), scan=True, remat=True)
    params = hf_vit_to_params(_state_dict(model), cfg)
    scanned = hf_vit_to_params(_state_dict(model), scanned_cfg)
    assert scanned["layers"]["attn"]["q_proj"]["kernel"].shape == (3, 36, 3, 12)
    pixels = _images(32)
    plain = _run(cfg, params, pixels, return_hidden_states=True)
    stacked = _run(scanned_cfg, scanned, pixels, return_hidden_states=True)
    for a, b in zip(plain["hidden_states"] + (plain["pooled"],), stacked["hidden_states"] + (stacked["pooled"],)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-6)


@pytest.mark.parametrize("style,extra", [("clip", {}), ("siglip", dict(use_head=True)),
                                         ("aim_v1", {}), ("aim_v2", dict(use_head=True, scan=True))])
def test_every_parameter_has_logical_axes(style, extra):
    cfg = dict(vit.FIELD_DEFAULTS, **vit.MM1_FEATURES, style=style, image_size=32, patch_size=8, width=32, depth=2,
               num_heads=4, mlp_dim=48, norm_eps=1e-6)
    cfg.update(extra)
    boxed = jax.eval_shape(lambda: vit.ViT(**cfg).init(jax.random.PRNGKey(0), jnp.zeros((1, 32, 32, 3))))["params"]
    leaves = jax.tree.leaves(boxed, is_leaf=lambda x: isinstance(x, nn.Partitioned))
    assert leaves and all(isinstance(x, nn.LogicallyPartitioned) and len(x.names) == x.value.ndim for x in leaves)
    names = jax.tree.map(lambda x: x.names, boxed, is_leaf=lambda x: isinstance(x, nn.Partitioned))
    assert names["patch_embed"]["kernel"] == (None, None, None, "vit_embed")
    block = names["layers"] if extra.get("scan") else names["layer_0"]
    lead = (None,) if extra.get("scan") else ()
    assert block["attn"]["q_proj"]["kernel"] == lead + ("vit_embed", "vit_heads", "head_dim")
    assert block["attn"]["o_proj"]["kernel"] == lead + ("vit_heads", "head_dim", "vit_embed")
    first = "gate_proj" if style == "aim_v2" else "fc1"
    assert block["mlp"][first]["kernel"] == lead + ("vit_embed", "vit_mlp")


@pytest.mark.parametrize("change,message", [
    (dict(style="dino"), "encoder.style='dino' is not one of 'clip', 'siglip', 'aim_v1', 'aim_v2'"),
    (dict(image_size=10, patch_size=14), "encoder.image_size=10 is smaller than encoder.patch_size=14"),
    (dict(image_size=230), "encoder.image_size=230 is not a multiple of encoder.patch_size=14"),
    (dict(width=100, num_heads=16), "encoder.width=100 is not divisible by encoder.num_heads=16"),
    (dict(feature_layer=25), "encoder.feature_layer=25 is out of range for encoder.depth=24"),
    (dict(feature_layer=-26), "encoder.feature_layer=-26 is out of range"),
    (dict(activation="relu6"), "encoder.activation='relu6' is not one of"),
    (dict(pos_embed="rope"), "encoder.pos_embed='rope' is not one of 'learned', 'sincos'"),
])
def test_config_errors(change, message):
    cfg = ml_collections.ConfigDict(dict(vit.VIT_PRESETS["clip_vit_l14_224"], **change))
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        vit.validate_vit_config(cfg)
    for ok in (-25, 24, -1, 0):  # every hidden state of a 24-layer model
        vit.validate_vit_config(dict(vit.VIT_PRESETS["clip_vit_l14_224"], feature_layer=ok))
    vit.validate_vit_config(dict(vit.VIT_PRESETS["clip_vit_l14_224"], image_size=230, allow_partial_patches=True))


def test_an_unset_feature_layer_takes_the_modules_default():
    """An encoder config that leaves feature_layer out is checked with the ViT module's default (-1, the last hidden
    state), not refused with a TypeError."""
    cfg = {k: v for k, v in vit.VIT_PRESETS["clip_vit_l14_224"].items() if k != "feature_layer"}
    vit.validate_vit_config(cfg)
    assert vit.ViT.feature_layer == -1


def test_vit_from_hf_config_reads_nested_and_flat_configs():
    clip = T.CLIPConfig(vision_config=dict(hidden_size=1280, num_hidden_layers=32, num_attention_heads=16,
                                           intermediate_size=5120, patch_size=14, image_size=378, hidden_act="gelu"))
    cfg = vit_from_hf_config(clip.to_dict())
    expected = dict(vit.VIT_PRESETS["clip_vit_h14_378"])
    assert {k: cfg[k] for k in expected} == expected
    siglip = vit_from_hf_config(T.SiglipConfig(vision_config=dict(
        hidden_size=1152, num_hidden_layers=27, num_attention_heads=16, intermediate_size=4304, patch_size=14,
        image_size=384)).to_dict(), **vit.OWL3_FEATURES, use_head=False)
    assert {k: siglip[k] for k in vit.VIT_PRESETS["siglip_so400m14_384"]} == vit.VIT_PRESETS["siglip_so400m14_384"]
    aim = vit_from_hf_config({"model_type": "aimv2_vision_model", "is_native": True, "hidden_size": 64})
    assert (aim.style, aim.pos_embed, aim.width, aim.norm_eps, aim.activation) == ("aim_v2", "sincos", 64, 1e-5, "silu")
    with pytest.raises(ValueError, match="model_type='vit' is not a vision config"):
        vit_from_hf_config({"model_type": "vit"})


def test_converter_reports_unused_and_missing_tensors():
    model = _hf_model("siglip")
    sd = _state_dict(model)
    wrong_depth = vit_from_hf_config(model.config.to_dict(), depth=2)
    with pytest.raises(ValueError, match="more than encoder.depth=2 layers"):
        hf_vit_to_params(sd, wrong_depth)
    cfg = vit_from_hf_config(model.config.to_dict())
    del sd["encoder.layers.1.mlp.fc2.bias"]
    with pytest.raises(ValueError, match="no tensor 'encoder.layers.1.mlp.fc2.bias'"):
        hf_vit_to_params(sd, cfg)
    prefixed = {"vision_model." + k: v for k, v in _state_dict(model).items()}
    prefixed["text_model.embeddings.token_embedding.weight"] = np.zeros((4, 4), np.float32)
    params = hf_vit_to_params(prefixed, cfg)  # a whole SiglipModel state dict: the vision tower is found
    np.testing.assert_array_equal(params["post_norm"]["norm"]["scale"], _state_dict(model)["post_layernorm.weight"])


@pytest.mark.parametrize("name,hf_kind", [("clip_vit_l14_336", "clip"), ("clip_vit_h14_378", "clip"),
                                          ("siglip_so400m14_384", "siglip"), ("aim_600m_224", None)])
def test_presets_build_with_the_published_sizes(name, hf_kind):
    preset = vit.VIT_PRESETS[name]
    size = preset["image_size"]
    shapes = jax.eval_shape(lambda: vit.ViT(**preset).init(jax.random.PRNGKey(0), jnp.zeros((1, size, size, 3))))
    ours = sum(int(np.prod(x.shape)) for x in jax.tree.leaves(nn.unbox(shapes["params"])))
    out = jax.eval_shape(lambda p: vit.ViT(**preset).apply(p, jnp.zeros((1, size, size, 3))), shapes)
    grid = size // preset["patch_size"]
    assert out["features"].shape == (1, grid * grid, preset["width"])
    if hf_kind is None:  # AIM-600M: 24 blocks of 12 * 1536^2 weights, norms, patch embedding
        assert 670e6 < ours < 690e6
        return
    cls, config_cls, _ = HF[hf_kind]
    fields = dict(hidden_size=preset["width"], num_hidden_layers=preset["depth"], intermediate_size=preset["mlp_dim"],
                  num_attention_heads=preset["num_heads"], image_size=size, patch_size=preset["patch_size"])
    if hf_kind == "siglip":
        fields["vision_use_head"] = False
    with torch.device("meta"):
        theirs = sum(p.numel() for p in cls(config_cls(**fields)).parameters())
    assert ours == theirs


def test_aimv2_native_recomputes_sincos_at_another_resolution():
    model = _hf_model("aim_v2_native")
    cfg = vit_from_hf_config(model.config.to_dict())
    params = hf_vit_to_params(_state_dict(model), cfg)
    pixels = _images(48)
    with torch.no_grad():
        theirs = model(pixel_values=pixels)
    _assert_close(_run(cfg, params, pixels)["last_hidden_state"], theirs.last_hidden_state)


def test_bfloat16_compute_stays_close_to_float32():
    model = _hf_model("siglip")
    cfg = vit_from_hf_config(model.config.to_dict())
    params = hf_vit_to_params(_state_dict(model), cfg)
    pixels = _images(32)
    full = _run(cfg, params, pixels)
    half = jax.jit(lambda p, x: vit.ViT(**dict(cfg, dtype=jnp.bfloat16)).apply({"params": p}, x))(
        params, jnp.asarray(pixels.numpy().transpose(0, 2, 3, 1)))
    assert half["features"].dtype == jnp.bfloat16
    _assert_close(half["pooled"].astype(jnp.float32), full["pooled"], tol=5e-2)
    _assert_close(half["last_hidden_state"].astype(jnp.float32), full["last_hidden_state"], tol=5e-2)
