"""One scanned layout (`mm1_jax.models.decoder.stack_layers`): `pretrained` loads a converted decoder into a scanned
model grouped by its scan period, the ViT conversion stacks with it, and nothing else stacks layers."""
from __future__ import annotations

import ast
import os

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import transformers

from mm1_jax import pretrained
from mm1_jax.convert import checkpoint
from mm1_jax.models import registry
from mm1_jax.models.decoder import scan_period, stack_layers, stacked_period, unstack_layers

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def moe_every_other(tmp_path_factory):
    """A random Qwen2-MoE of 4 layers, MoE every second one (decoder_sparse_step=2: scan period 2), converted."""
    root = tmp_path_factory.mktemp("period2")
    hf_cfg = transformers.Qwen2MoeConfig(
        vocab_size=61, hidden_size=32, num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=2,
        intermediate_size=40, moe_intermediate_size=24, num_experts=4, num_experts_per_tok=2,
        shared_expert_intermediate_size=36, decoder_sparse_step=2, max_position_embeddings=64)
    torch.manual_seed(2)
    hf = transformers.AutoModelForCausalLM.from_config(hf_cfg).eval()
    with torch.no_grad():
        for name, p in hf.named_parameters():
            if "gate" in name and "experts" not in name:  # routers start at zero: give them values
                p.copy_(torch.randn_like(p))
    hf.save_pretrained(root / "hf")
    converted = checkpoint.read_hf(str(root / "hf"))
    checkpoint.write_converted(converted, str(root / "ours"))
    return str(root / "ours"), converted.config


def _load(cfg, path: str, scan: bool) -> tuple[nn.Module, dict]:
    """The decoder built from `cfg` (scanned or not) with fresh parameters replaced by the checkpoint's."""
    cfg = cfg.copy_and_resolve_references()
    cfg.scan_layers = scan
    model = registry.build_decoder(cfg)
    shapes = nn.unbox(jax.eval_shape(model.init, jax.random.PRNGKey(0), jnp.zeros((1, 4), jnp.int32))["params"])
    fresh = jax.tree.map(lambda s: np.zeros(s.shape, s.dtype), shapes)
    return model, pretrained.init_from_checkpoints(dict(decoder=path), {"decoder": fresh})["decoder"]


def test_a_period_2_decoder_loads_scanned_as_unscanned(moe_every_other):
    """Scanned, the layers are grouped by the period (layers/sub_0: the dense layers 0, 2; sub_1: the MoE layers 1, 3),
    unstacking gives the unscanned load bit for bit, and both compute the same logits."""
    path, cfg = moe_every_other
    kinds = registry.build_decoder(cfg).kinds()
    assert scan_period(kinds) == 2 and [moe for _, moe in kinds] == [False, True, False, True]
    flat_model, flat = _load(cfg, path, scan=False)
    scan_model, scanned = _load(cfg, path, scan=True)
    assert stacked_period(scanned) == 2
    assert jax.tree.leaves(scanned["layers"]["sub_1"])[0].shape[0] == 2
    names = {j: {jax.tree_util.keystr(k) for k, _ in jax.tree_util.tree_flatten_with_path(scanned["layers"][j])[0]}
             for j in ("sub_0", "sub_1")}
    assert any("expert" in n for n in names["sub_1"]) and not any("expert" in n for n in names["sub_0"])
    back = unstack_layers(scanned)
    assert jax.tree.structure(back) == jax.tree.structure(flat)
    for a, b in zip(jax.tree.leaves(back), jax.tree.leaves(flat)):
        np.testing.assert_array_equal(a, b)
    tokens = np.random.RandomState(0).randint(0, 61, (2, 7)).astype(np.int32)
    want = flat_model.apply({"params": flat}, tokens)["logits"]
    got = scan_model.apply({"params": scanned}, tokens)["logits"]
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), atol=1e-5, rtol=1e-5)
    assert np.abs(np.asarray(want)).max() > 0.1  # the checkpoint, not zeros


def test_stacking_round_trips_and_keeps_numpy_on_the_host():
    """Period 3 over 6 layers: sub_j holds layers j, j + 3; numpy input stays numpy; a period not dividing the depth
    is refused."""
    params = {f"layer_{i}": {"w": np.full((2,), i, np.float32)} for i in range(6)} | {"norm": np.ones(2, np.float32)}
    stacked = stack_layers(params, 6, 3)
    assert isinstance(stacked["layers"]["sub_1"]["w"], np.ndarray)
    np.testing.assert_array_equal(stacked["layers"]["sub_1"]["w"][:, 0], [1, 4])
    assert stacked_period(stacked) == 3 and stacked_period(stack_layers(params, 6)) == 1
    back = unstack_layers(stacked)
    assert sorted(back) == sorted(params)
    for i in range(6):
        np.testing.assert_array_equal(back[f"layer_{i}"]["w"], params[f"layer_{i}"]["w"])
    with pytest.raises(ValueError, match="scan period of 4 does not divide the depth 6"):
        stack_layers(params, 6, 4)


@pytest.mark.parametrize("path", ["mm1_jax/pretrained.py", "mm1_jax/convert/vit_weights.py"])
def test_no_other_stacking(path):
    """`pretrained` and the ViT conversion use the decoder's stack_layers and stack nothing themselves."""
    with open(os.path.join(ROOT, path)) as f:
        tree = ast.parse(f.read())
    imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module == "mm1_jax.models.decoder"
                for a in n.names}
    stacks = [n.lineno for n in ast.walk(tree) if isinstance(n, ast.Attribute) and n.attr == "stack"]
    assert "stack_layers" in imported and not stacks, (path, stacks)
