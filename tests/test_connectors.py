"""Connectors: numerical parity with PyTorch references built here from torch.nn layers, shapes, config errors."""
import re

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
import torch
from jax.sharding import PartitionSpec

from mm1_jax.convert.honeybee import honeybee_to_params
from mm1_jax.models import connectors
from mm1_jax.models.connectors import (
    AttentionPooling,
    AveragePooling,
    CAbstractor,
    MlpProjector,
    adaptive_avg_pool_2d,
    adaptive_pool_matrix,
    build_connector,
    validate_connector_config,
)

torch.manual_seed(0)


def assert_close_to_ref(ours, ref, rel=1e-5):
    ours, ref = np.asarray(ours), np.asarray(ref)
    assert ours.shape == ref.shape
    scale = np.abs(ref).max()
    assert scale > 0
    assert np.abs(ours - ref).max() <= rel * scale, np.abs(ours - ref).max() / scale


def unboxed_params(module, x):
    """Parameter shapes (ShapeDtypeStruct) from init, without running it."""
    return nn.meta.unbox(jax.eval_shape(module.init, jax.random.PRNGKey(0), x)["params"])


# ---------------------------------------------------------------------------------------------- adaptive pooling


@pytest.mark.parametrize("in_hw,out_hw", [((24, 24), (12, 12)), ((27, 27), (12, 12)), ((27, 27), (8, 8)),
                                          ((9, 13), (4, 5)), ((6, 6), (6, 6))])
def test_adaptive_avg_pool_matches_torch(in_hw, out_hw):
    x = torch.randn(2, 5, *in_hw)
    ref = torch.nn.AdaptiveAvgPool2d(out_hw)(x).permute(0, 2, 3, 1).numpy()
    ours = adaptive_avg_pool_2d(jnp.asarray(x.permute(0, 2, 3, 1).numpy()), out_hw)
    np.testing.assert_allclose(np.asarray(ours), ref, atol=1e-6, rtol=0)


def test_adaptive_pool_windows_overlap_for_27_to_12():
    # 27 -> 12: every window is 3 rows wide (not "3 or 4" as a secondary summary of HoneyBee says) and 9 rows feed
    # two cells.
    matrix = adaptive_pool_matrix(27, 12)
    assert set((matrix > 0).sum(axis=1)) == {3}
    assert ((matrix > 0).sum(axis=0) > 1).sum() == 9
    np.testing.assert_allclose(matrix.sum(axis=1), 1.0)
    # cell 1 covers rows floor(27/12)=2 .. ceil(54/12)-1=4
    assert list(np.nonzero(matrix[1])[0]) == [2, 3, 4]
    # 27 -> 8 mixes widths 4 and 5; 24 -> 12 tiles exactly
    assert set((adaptive_pool_matrix(27, 8) > 0).sum(axis=1)) == {4, 5}
    assert ((adaptive_pool_matrix(24, 12) > 0).sum(axis=0) == 1).all()


# ---------------------------------------------------------------------------------------------- C-Abstractor


class TorchLayerNorm2d(torch.nn.LayerNorm):
    def forward(self, x):
        return super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class TorchConvNorm(torch.nn.Module):
    def __init__(self, cin, cout, kernel, groups=1, act=True):
        super().__init__()
        self.conv = torch.nn.Conv2d(cin, cout, kernel, padding=kernel // 2, groups=groups, bias=False)
        self.bn = TorchLayerNorm2d(cout, eps=1e-5)
        self.act = torch.nn.SiLU() if act else torch.nn.Identity()

    def forward(self, x):
        return self.act(self.bn(self.conv(x)))


class TorchSE(torch.nn.Module):
    def __init__(self, channels, hidden):
        super().__init__()
        self.fc1 = torch.nn.Conv2d(channels, hidden, 1)
        self.fc2 = torch.nn.Conv2d(hidden, channels, 1)

    def forward(self, x):
        gate = x.mean((2, 3), keepdim=True)
        return x * torch.sigmoid(self.fc2(torch.nn.functional.silu(self.fc1(gate))))


class TorchBottleneck(torch.nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.conv1 = TorchConvNorm(cin, cout, 1)
        self.conv2 = TorchConvNorm(cout, cout, 3, groups=cout)
        self.se = TorchSE(cout, int(round(0.25 * cin)))
        self.conv3 = TorchConvNorm(cout, cout, 1, act=False)
        self.downsample = TorchConvNorm(cin, cout, 1, act=False) if cin != cout else torch.nn.Identity()

    def forward(self, x):
        y = self.conv3(self.se(self.conv2(self.conv1(x))))
        return torch.nn.functional.silu(y + self.downsample(x))


class TorchStage(torch.nn.Module):
    def __init__(self, depth, cin, cout):
        super().__init__()
        for i in range(depth):
            self.add_module(f"b{i + 1}", TorchBottleneck(cin if i == 0 else cout, cout))

    def forward(self, x):
        for block in self.children():
            x = block(x)
        return x


class TorchCAbstractor(torch.nn.Module):
    """The C-Abstractor as HoneyBee (arXiv 2312.06742) describes it, with its parameter names."""

    def __init__(self, num_input, num_tokens, cv, c, d, depth, mlp_depth):
        super().__init__()
        self.pos_emb = torch.nn.Parameter(torch.randn(1, num_input, cv) * 0.5)
        self.net = torch.nn.Sequential(
            TorchStage(depth, cv, c), torch.nn.AdaptiveAvgPool2d(int(num_tokens**0.5)), TorchStage(depth, c, c)
        )
        layers = [torch.nn.Linear(c, d)]
        for _ in range(mlp_depth - 1):
            layers += [torch.nn.SiLU(), torch.nn.Linear(d, d)]
        self.readout = torch.nn.Sequential(*layers)
        with torch.no_grad():  # make the norms' affine parameters matter
            for name, p in self.named_parameters():
                if name.endswith("bn.weight"):
                    p.copy_(1 + 0.3 * torch.randn_like(p))
                elif name.endswith("bn.bias") or name.endswith("se.fc1.bias") or name.endswith("se.fc2.bias"):
                    p.copy_(0.3 * torch.randn_like(p))

    def forward(self, x):
        x = x + self.pos_emb
        side = int(x.shape[1] ** 0.5)
        x = x.reshape(x.shape[0], side, side, x.shape[2]).permute(0, 3, 1, 2)
        x = self.net(x)
        x = x.flatten(2).transpose(1, 2)
        return self.readout(x)


def torch_state_dict(module, prefix=""):
    return {prefix + k: v.detach().numpy() for k, v in module.state_dict().items()}


@pytest.mark.parametrize("side,out_side,depth,mlp_depth", [(9, 4, 2, 2), (27, 12, 1, 3)])
def test_c_abstractor_matches_torch_reference(side, out_side, depth, mlp_depth):
    cv, c, d = 32, 48, 40
    ref_module = TorchCAbstractor(side * side, out_side**2, cv, c, d, depth, mlp_depth).eval()
    x = torch.randn(2, side * side, cv)
    with torch.no_grad():
        ref = ref_module(x).numpy()

    model = CAbstractor(num_tokens=out_side**2, hidden_dim=c, out_dim=d, depth=depth, mlp_depth=mlp_depth)
    params = honeybee_to_params(torch_state_dict(ref_module, "abstractor."))
    # The converter fills exactly our parameter tree: same names, same shapes.
    expected = unboxed_params(model, jnp.zeros((1, side * side, cv)))
    assert jax.tree.structure(params) == jax.tree.structure(expected)
    assert jax.tree.map(np.shape, params) == jax.tree.map(lambda s: s.shape, expected)

    ours = jax.jit(model.apply)({"params": params}, jnp.asarray(x.numpy()))
    assert ours.shape == (2, out_side**2, d)
    assert_close_to_ref(ours, ref)


def test_c_abstractor_param_names_match_honeybee():
    params = unboxed_params(CAbstractor(num_tokens=4, hidden_dim=24, out_dim=8, depth=2), jnp.zeros((1, 16, 16)))
    assert set(params) == {"pos_emb", "net_0", "net_2", "readout_0", "readout_2"}
    assert set(params["net_0"]) == {"b1", "b2"}
    assert set(params["net_0"]["b1"]) == {"conv1", "conv2", "conv3", "se", "downsample"}
    assert "downsample" not in params["net_0"]["b2"] and "downsample" not in params["net_2"]["b1"]
    assert params["net_0"]["b1"]["conv2"]["conv"]["kernel"].shape == (3, 3, 1, 24)  # depthwise
    assert params["net_0"]["b1"]["se"]["fc1"]["kernel"].shape == (1, 1, 24, 4)  # round(0.25 * 16)
    assert params["net_0"]["b2"]["se"]["fc1"]["kernel"].shape == (1, 1, 24, 6)  # round(0.25 * 24)


def test_honeybee_converter_rejects_unknown_keys_and_trims_class_pos_emb():
    ref_module = TorchCAbstractor(16, 4, 8, 8, 8, 1, 1)
    state = torch_state_dict(ref_module, "abstractor.")
    state["abstractor.net.0.b1.extra.weight"] = np.zeros(3)
    with pytest.raises(ValueError, match=re.escape("'abstractor.net.0.b1.extra.weight'")):
        honeybee_to_params(state)
    state = torch_state_dict(ref_module)
    state["pos_emb"] = np.arange(17 * 8, dtype=np.float32).reshape(1, 17, 8)
    params = honeybee_to_params(state, num_input_tokens=16)
    np.testing.assert_array_equal(params["pos_emb"], state["pos_emb"][0, 1:])


# ---------------------------------------------------------------------------------------------- other connectors


def test_average_pooling_matches_torch():
    linear = torch.nn.Linear(16, 24)
    x = torch.randn(2, 27 * 27, 16)
    with torch.no_grad():
        maps = x.reshape(2, 27, 27, 16).permute(0, 3, 1, 2)
        ref = linear(torch.nn.AdaptiveAvgPool2d(8)(maps).flatten(2).transpose(1, 2)).numpy()
    params = {"proj": {"kernel": linear.weight.detach().numpy().T, "bias": linear.bias.detach().numpy()}}
    ours = AveragePooling(num_tokens=64, out_dim=24).apply({"params": params}, jnp.asarray(x.numpy()))
    assert_close_to_ref(ours, ref)


def test_attention_pooling_matches_torch_multihead_attention():
    cv, heads, k, d = 32, 4, 9, 24
    mha = torch.nn.MultiheadAttention(cv, heads, batch_first=True)
    with torch.no_grad():
        mha.in_proj_bias.normal_()
        mha.out_proj.bias.normal_()
    linear = torch.nn.Linear(cv, d)
    queries = torch.randn(k, cv)
    x = torch.randn(2, 50, cv)
    with torch.no_grad():
        pooled, _ = mha(queries.expand(2, k, cv), x, x, need_weights=False)
        ref = linear(pooled).numpy()

    w = mha.in_proj_weight.detach().numpy()
    b = mha.in_proj_bias.detach().numpy()
    head_dim = cv // heads

    def heads_proj(i):
        rows = slice(i * cv, (i + 1) * cv)
        return {"kernel": w[rows].T.reshape(cv, heads, head_dim), "bias": b[rows].reshape(heads, head_dim)}

    params = {
        "queries": queries.numpy(),
        "query": heads_proj(0),
        "key": heads_proj(1),
        "value": heads_proj(2),
        "out": {"kernel": mha.out_proj.weight.detach().numpy().T.reshape(heads, head_dim, cv),
                "bias": mha.out_proj.bias.detach().numpy()},
        "proj": {"kernel": linear.weight.detach().numpy().T, "bias": linear.bias.detach().numpy()},
    }
    model = AttentionPooling(num_tokens=k, out_dim=d, num_heads=heads)
    expected = unboxed_params(model, jnp.zeros((1, 50, cv)))
    assert jax.tree.map(np.shape, params) == jax.tree.map(lambda s: s.shape, expected)
    ours = model.apply({"params": params}, jnp.asarray(x.numpy()))
    assert_close_to_ref(ours, ref)


@pytest.mark.parametrize("mlp_depth", [2, 3])
def test_mlp_projector_matches_torch_exact_gelu(mlp_depth):
    cv, d = 16, 24
    layers = [torch.nn.Linear(cv, d)]
    for _ in range(mlp_depth - 1):
        layers += [torch.nn.GELU(), torch.nn.Linear(d, d)]
    ref_module = torch.nn.Sequential(*layers)
    x = torch.randn(2, 10, cv) * 3  # wide inputs so erf and tanh GELU differ visibly
    with torch.no_grad():
        ref = ref_module(x).numpy()
    params = {f"layers_{i}": {"kernel": m.weight.detach().numpy().T, "bias": m.bias.detach().numpy()}
              for i, m in enumerate(ref_module) if isinstance(m, torch.nn.Linear)}
    ours = MlpProjector(out_dim=d, mlp_depth=mlp_depth).apply({"params": params}, jnp.asarray(x.numpy()))
    assert_close_to_ref(ours, ref)
    with torch.no_grad():  # the tanh approximation would fail the tolerance above
        for m in ref_module:
            if isinstance(m, torch.nn.GELU):
                m.approximate = "tanh"
        tanh_ref = ref_module(x).numpy()
    assert np.abs(tanh_ref - ref).max() > 5e-5 * np.abs(ref).max()


# ---------------------------------------------------------------------------------------------- factory and config


def make_cfg(**overrides):
    fields = dict(name="c_abstractor", num_tokens=144, hidden_dim=64, depth=1, mlp_depth=2, num_heads=4)
    return ml_collections.ConfigDict({**fields, **overrides})


@pytest.mark.parametrize("name", ["avg_pool", "attn_pool", "c_abstractor", "mlp"])
@pytest.mark.parametrize("num_input,num_tokens", [(576, 64), (576, 144), (576, 16), (729, 144), (729, 64), (729, 16)])
def test_build_connector_output_shapes(name, num_input, num_tokens):
    if name == "mlp":
        num_tokens = num_input
    cfg = make_cfg(name=name, num_tokens=num_tokens)
    model = build_connector(cfg, in_dim=32, out_dim=40, num_input_tokens=num_input, dtype=jnp.float32)
    x = jax.ShapeDtypeStruct((2, num_input, 32), jnp.float32)
    variables = jax.eval_shape(model.init, jax.random.PRNGKey(0), x)
    out = jax.eval_shape(model.apply, variables, x)
    assert out.shape == (2, num_tokens, 40)
    assert connectors.num_connector_tokens(cfg, num_input) == num_tokens


@pytest.mark.parametrize(
    "overrides,num_input,message",
    [
        (dict(name="qformer"), 576, "connector.name='qformer' is unknown; choose one of avg_pool, attn_pool"),
        (dict(num_tokens=150), 576, "connector.num_tokens=150 is not a perfect square"),
        (dict(name="avg_pool", num_tokens=150), 576, "connector.num_tokens=150 is not a perfect square"),
        (dict(num_tokens=144), 577, "needs a square number of input tokens, but the encoder gives 577"),
        (dict(num_tokens=784), 576, "connector.num_tokens=784 exceeds the 576 encoder tokens"),
        (dict(name="avg_pool", num_tokens=900), 729, "connector.num_tokens=900 exceeds the 729 encoder tokens"),
        (dict(name="mlp", num_tokens=144), 576, "connector.num_tokens=144 must equal the 576 encoder tokens"),
        (dict(depth=-1), 576, "connector.depth=-1 must be an integer >= 0"),
        (dict(mlp_depth=0), 576, "connector.mlp_depth=0 must be an integer >= 1"),
        (dict(num_tokens=144.0), 576, "connector.num_tokens=144.0 must be an integer >= 1"),
        (dict(hidden_dim=0), 576, "connector.hidden_dim=0 must be an integer >= 1"),
        (dict(name="attn_pool", num_heads=0), 576, "connector.num_heads=0 must be an integer >= 1"),
        (dict(name="attn_pool", num_tokens=0), 576, "connector.num_tokens=0 must be an integer >= 1"),
    ],
)
def test_config_errors_name_field_and_value(overrides, num_input, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        validate_connector_config(make_cfg(**overrides), num_input)


def test_config_errors_from_build_connector_and_valid_non_square_attention_pooling():
    with pytest.raises(ValueError, match=re.escape("connector.num_heads=5 does not divide the encoder width 32")):
        build_connector(make_cfg(name="attn_pool", num_heads=5), in_dim=32, out_dim=8, num_input_tokens=576,
                        dtype=jnp.float32)
    validate_connector_config(make_cfg(name="attn_pool", num_tokens=150), 577)  # queries need no square
    validate_connector_config(make_cfg(name="c_abstractor", depth=0, hidden_dim=None), 729)
    validate_connector_config(make_cfg(name="mlp", num_tokens=729), 729)


def test_registry_leaves_room_for_new_connectors(monkeypatch):
    monkeypatch.setattr(connectors, "_REGISTRY", dict(connectors._REGISTRY))
    connectors.register_connector(
        "linear", lambda cfg, *, in_dim, out_dim, num_input_tokens, dtype: MlpProjector(out_dim, 1, dtype)
    )
    model = build_connector(make_cfg(name="linear"), in_dim=8, out_dim=4, num_input_tokens=10,
                            dtype=jnp.float32)
    assert isinstance(model, MlpProjector)
    assert "linear" in connectors.connector_names()


# ---------------------------------------------------------------------------------------------- jit, dtypes, axes

ALL_CONNECTORS = [
    (AveragePooling(num_tokens=4, out_dim=12), {"proj": {"kernel": ("vit_embed", "embed"), "bias": ("embed",)}}),
    (AttentionPooling(num_tokens=3, out_dim=12, num_heads=2), {
        "queries": (None, "vit_embed"),
        "query": {"kernel": ("vit_embed", "heads", "head_dim"), "bias": ("heads", "head_dim")},
        "out": {"kernel": ("heads", "head_dim", "vit_embed"), "bias": ("vit_embed",)},
        "proj": {"kernel": ("vit_embed", "embed")},
    }),
    (CAbstractor(num_tokens=4, hidden_dim=12, out_dim=12, depth=1), {
        "pos_emb": (None, "vit_embed"),
        "net_0": {"b1": {
            "conv1": {"conv": {"kernel": (None, None, "conv_in", "conv_out")}, "norm": {"scale": ("conv_out",),
                                                                                      "bias": ("conv_out",)}},
            "conv2": {"conv": {"kernel": (None, None, None, "conv_out")}},
            "se": {"fc1": {"kernel": (None, None, "conv_in", "conv_out"), "bias": ("conv_out",)}},
        }},
        "readout_0": {"kernel": ("conv_out", "embed"), "bias": ("embed",)},
        "readout_2": {"kernel": ("mlp", "embed")},
    }),
    (MlpProjector(out_dim=12, mlp_depth=2), {"layers_0": {"kernel": ("vit_embed", "embed")},
                                             "layers_2": {"kernel": ("mlp", "embed"), "bias": ("embed",)}}),
]


def _check_axes(specs, expected, path=""):
    for key, value in expected.items():
        if isinstance(value, dict):
            _check_axes(specs[key], value, f"{path}/{key}")
        else:
            assert specs[key] == PartitionSpec(*value), f"{path}/{key}: {specs[key]}"


@pytest.mark.parametrize("model,expected_axes", ALL_CONNECTORS, ids=lambda m: type(m).__name__)
def test_every_param_has_logical_axes_and_jit_runs_in_bf16(model, expected_axes):
    x = jax.random.normal(jax.random.PRNGKey(1), (2, 16, 8))
    variables = jax.jit(model.init)(jax.random.PRNGKey(0), x)
    leaves = jax.tree.leaves(variables["params"], is_leaf=lambda v: isinstance(v, nn.LogicallyPartitioned))
    assert leaves and all(isinstance(v, nn.LogicallyPartitioned) for v in leaves)
    assert all(len(v.names) == v.value.ndim for v in leaves)
    for v in leaves:  # no kernel names one logical axis twice (that would be an invalid sharding)
        named = [n for n in v.names if n is not None]
        assert len(named) == len(set(named)), v.names
    _check_axes(nn.get_partition_spec(variables)["params"], expected_axes)

    # jit runs on the boxed tree straight from init; bf16 compute keeps float32 params and tracks float32.
    full = jax.jit(model.apply)(variables, x)
    assert full.dtype == jnp.float32 and np.abs(np.asarray(full)).max() > 0
    low = model.clone(dtype=jnp.bfloat16)
    low_vars = jax.eval_shape(low.init, jax.random.PRNGKey(0), x)
    assert all(leaf.dtype == jnp.float32 for leaf in jax.tree.leaves(nn.meta.unbox(low_vars)))
    out = jax.jit(low.apply)(variables, x)
    assert out.dtype == jnp.bfloat16
    np.testing.assert_allclose(np.asarray(out, np.float32), np.asarray(full), rtol=0.1, atol=0.1)


@pytest.mark.parametrize("module", [connectors.AveragePooling(num_tokens=4, out_dim=8),
                                    connectors.CAbstractor(num_tokens=4, hidden_dim=8, out_dim=8)])
def test_pooling_modules_refuse_a_non_square_token_map(module):
    """Used outside build_connector's checks, the modules still name themselves and the counts."""
    x = jnp.zeros((1, 10, 8))
    with pytest.raises(ValueError, match=f"{type(module).__name__} needs square token counts, got N=10 input and K=4"):
        module.init(jax.random.PRNGKey(0), x)
