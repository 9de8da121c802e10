"""mm1_jax.models.flops: the analytic model FLOPs against XLA's own count of the compiled step, and the one owner that
the AOT report and the benchmarks use."""
from __future__ import annotations

import ast
import os

import flax.linen as nn
import jax
import pytest
from flax import traverse_util

from configs import tiny
from mm1_jax.models import flops, registry, summary
from mm1_jax.models.inputs import example_batch, input_spec
from mm1_jax.models.mm1 import loss_terms

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ROWS, SEQ = 2, 128


def _compiled_flops(model_cfg, train: bool) -> tuple[float, dict]:
    """(XLA's FLOPs of the summed token loss, or of its gradient, on ROWS x SEQ tokens; the abstract parameters)."""
    model = registry.build_model(model_cfg)
    spec = input_spec(model_cfg)
    params = nn.unbox(jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), **example_batch(spec, 1, 8)))["params"])

    def loss(p, batch):
        out = model.apply({"params": p}, **batch)
        return loss_terms(out, batch["targets"], batch["loss_weights"])["nll_sum"]

    fn = jax.grad(loss) if train else loss
    cost = jax.jit(fn).lower(params, example_batch(spec, ROWS, SEQ)).compile().cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    return float(cost["flops"]), params


@pytest.mark.parametrize("train", [True, False])
def test_decoder_flops_match_the_compiler(train):
    """Text only (no image slots): the formula is within 3% of XLA's count of the forward (2N + 4LTd per token) and of
    the forward and backward (6N + 12LTd); leaving out attention (~30% here) or the tied output layer would fail."""
    cfg = tiny.get_config().model
    cfg.max_images = 0
    compiled, params = _compiled_flops(cfg, train)
    trains = None if train else {p: False for p in flops.PARTS}
    analytic = flops.step_flops(cfg, params, rows=ROWS, seq_len=SEQ, trains=trains)
    assert analytic["encoder"] == analytic["connector"] == 0
    assert analytic["total"] == pytest.approx(compiled, rel=0.03)


def test_mm1_step_flops_match_the_compiler():
    """configs/tiny.py's whole model (CLIP ViT -> C-Abstractor -> decoder), gradient of the loss: within 8% of XLA's
    count (the connector's term is approximate: the C-Abstractor's second stage runs on the pooled grid)."""
    cfg = tiny.get_config().model
    compiled, params = _compiled_flops(cfg, True)
    analytic = flops.step_flops(cfg, params, rows=ROWS, seq_len=SEQ)
    assert analytic["encoder"] > 0 and analytic["connector"] > 0
    assert analytic["total"] == pytest.approx(compiled, rel=0.08)


def test_the_vit_runs_its_class_token():
    """A CLIP ViT's layers run patches + the class token, whatever the features keep; SigLIP has none."""
    enc = tiny.get_config().model.encoder
    assert (enc.style, enc.image_size, enc.patch_size) == ("clip", 64, 8)
    assert flops.vit_sequence_length(enc) == 65 and registry.num_encoder_tokens(enc) == 64
    enc.style = "siglip"
    assert flops.vit_sequence_length(enc) == 64


def test_moe_counts_the_experts_a_token_uses():
    """Top-1 of 4 experts: the decoder's count drops by 6 x 3/4 of the expert matrices per token, against top-4; the
    expert axis is read from the parameters' logical names, derived from the config when none are given."""
    cfg = tiny.get_config().model
    cfg.decoder.num_experts, cfg.decoder.top_k = 4, 4
    params = summary.abstract_params(cfg)
    logical = flops.logical_axes(cfg)
    flat = traverse_util.flatten_dict(params, sep="/")
    spec = traverse_util.flatten_dict(logical, sep="/")
    experts = sum(v.size for k, v in flat.items() if k.startswith("decoder/") and "exp" in tuple(spec.get(k) or ()))
    assert experts > 0
    all_k = flops.step_flops(cfg, params, rows=ROWS, seq_len=SEQ)["decoder"]
    cfg.decoder.top_k = 1
    top_1 = flops.step_flops(cfg, params, rows=ROWS, seq_len=SEQ)["decoder"]
    assert top_1 == flops.step_flops(cfg, params, rows=ROWS, seq_len=SEQ, logical=logical)["decoder"]
    assert all_k - top_1 == pytest.approx(6 * ROWS * SEQ * experts * 3 / 4)


def _imports_and_defs(path: str) -> tuple[set[str], set[str]]:
    """(names imported from mm1_jax.models.flops, names of the functions the file defines)."""
    with open(os.path.join(ROOT, path)) as f:
        tree = ast.parse(f.read())
    imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module == "mm1_jax.models.flops"
                for a in n.names}
    defs = {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)}
    return imported, defs


@pytest.mark.parametrize("path", ["mm1_jax/train/aot.py", "benchmarks/mm1_step.py", "benchmarks/train_step.py",
                                  "benchmarks/gpu_step.py"])
def test_every_user_takes_the_one_formula(path):
    """The AOT report and the benchmarks import the formula and define no FLOPs formula of their own (the AOT report's
    `model_flops` only reads the trainable parts from the training config)."""
    imported, defs = _imports_and_defs(path)
    assert imported & {"step_flops", "transformer_flops_per_token"}, path
    allowed = {"model_flops"} if path.endswith("aot.py") else set()
    assert {d for d in defs if "flops" in d} <= allowed, (path, defs)


def test_the_aot_report_counts_with_the_owner():
    """The AOT report's analytic FLOPs for configs/tiny.py are `step_flops` with the configured batch, to the FLOP."""
    from mm1_jax.train import aot  # pylint: disable=import-outside-toplevel

    config = tiny.get_config()
    params = summary.abstract_params(config.model)
    got = aot.model_flops(config, params)
    want = flops.step_flops(config.model, params, rows=config.train.global_batch_size, seq_len=config.data.seq_len)
    assert got == want
    assert got["tokens"] == config.train.global_batch_size * config.data.seq_len
