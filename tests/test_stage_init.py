"""A stage starting from the previous stage's checkpoint (config.init.checkpoint / init.checkpoint_step).

MM1's SFT and MM1.5's high-resolution continual pre-training raise the encoder's resolution: the position tables
(the ViT's pos_embed with its class-token row, the C-Abstractor's pos_emb sized by the encoder grid) are resized by
torch's bicubic kernel; every other parameter must match exactly.
"""
import numpy as np
import pytest
from PIL import Image

import jax

from mm1_jax.data import images
from mm1_jax.models import registry
from mm1_jax.models.inputs import input_spec
from mm1_jax.runtime import checkpoint as ckpt
from mm1_jax.train import config as train_config
from mm1_jax.train import trainer
from tests.test_train import small_config

TABLES = {"encoder/pos_embed": 1, "connector/pos_emb": 0}  # -> class-token rows


def _config(image_size=16, patch_size=4, **decoder):
    c = small_config()
    c.model.encoder.update(image_size=image_size, patch_size=patch_size)
    c.model.decoder.update(decoder)
    return c


def _init(cfg, seed=0):
    """Random parameters of cfg's model (host arrays)."""
    return jax.device_get(ckpt.load_params(registry.build_model(cfg.model), cfg.model, None, seed))


def _save(directory, steps_params):
    manager = ckpt.make_manager(str(directory), keep=5, async_save=False)
    for step, params in steps_params:
        ckpt.save(manager, step, {"params": params}, "{}")
    manager.wait_until_finished()
    manager.close()


def _flat(tree):
    return {ckpt._path_key(p): np.asarray(v) for p, v in jax.tree_util.tree_flatten_with_path(tree)[0]}


def _torch_bicubic(table, old, new, class_rows):
    import torch  # pylint: disable=import-outside-toplevel

    grid = torch.from_numpy(np.array(table[class_rows:], np.float32)).reshape(1, old, old, -1).permute(0, 3, 1, 2)
    out = torch.nn.functional.interpolate(grid, size=(new, new), mode="bicubic", align_corners=False)
    return np.concatenate([table[:class_rows], out.permute(0, 2, 3, 1).reshape(new * new, -1).numpy()])


@pytest.mark.slow
def test_higher_resolution_stage_interpolates_position_tables(tmp_path, capsys):
    """16 px (4x4 grid) -> 32 px (8x8): both tables are torch's bicubic resize, all else bit-identical; back into a
    16 px model everything is bit-identical."""
    small = _config(16)
    saved = _init(small, seed=3)
    _save(tmp_path / "ckpt", [(2, saved)])
    big = _config(32)
    model = registry.build_model(big.model)
    got = _flat(ckpt.load_params(model, big.model, str(tmp_path / "ckpt"), field="init.checkpoint"))
    want = _flat(saved)
    assert set(got) == set(want)
    for key, class_rows in TABLES.items():
        assert got[key].shape == (64 + class_rows, 32) and want[key].shape == (16 + class_rows, 32)
        np.testing.assert_allclose(got[key], _torch_bicubic(want[key], 4, 8, class_rows), rtol=1e-5, atol=1e-7)
    np.testing.assert_array_equal(got["encoder/pos_embed"][0], want["encoder/pos_embed"][0])  # class-token row
    for key in set(want) - set(TABLES):
        np.testing.assert_array_equal(got[key], want[key], err_msg=key)
    log = capsys.readouterr().out
    assert "encoder/pos_embed 4x4 -> 8x8 (class-token row kept)" in log and "connector/pos_emb 4x4 -> 8x8" in log
    model = registry.build_model(small.model)
    same = _flat(ckpt.load_params(model, small.model, str(tmp_path / "ckpt")))
    for key in want:
        np.testing.assert_array_equal(same[key], want[key], err_msg=key)
    assert "interpolated" not in capsys.readouterr().out


@pytest.mark.slow
def test_mm15_continual_1344px_image_enters_a_672px_encoder_from_a_378px_checkpoint(tmp_path):
    """MM1.5 high-resolution continual pre-training: a 378 px checkpoint (27x27 grid) starts a model whose encoder
    runs at 672 px (48x48), and a 1344 px image becomes 4 crops + an overview of 672 px. (Narrow encoder, no
    672 px forward pass.)"""
    pre = _config(378, 14)
    saved = _init(pre, seed=1)
    _save(tmp_path / "pretrain", [(1, saved)])
    high = _config(672, 14)
    spec = input_spec(high.model)
    assert spec.image_size == 672
    crops = images.split_image_dynamic(Image.new("RGB", (1344, 1344), (90, 120, 200)), size=spec.image_size,
                                       norm=spec.image_norm, r=672, n_min=4, n_max=9)
    assert crops.shape == (5, 672, 672, 3)
    got = _flat(ckpt.load_params(registry.build_model(high.model), high.model, str(tmp_path / "pretrain")))
    want = _flat(saved)
    for key, class_rows in TABLES.items():
        assert got[key].shape == (48 * 48 + class_rows, 32)
        np.testing.assert_allclose(got[key], _torch_bicubic(want[key], 27, 48, class_rows), rtol=1e-5, atol=1e-7)


@pytest.mark.slow
def test_checkpoint_step_picks_that_step(tmp_path):
    """init.checkpoint_step=3 starts the trainer (parameters sharded over every device) from step 3's parameters, not
    the latest (5), here at twice the checkpoint's resolution; a step the directory lacks is refused naming the field,
    the value and the steps there are."""
    cfg = _config(16)
    p3, p5 = _init(cfg, seed=3), _init(cfg, seed=5)
    _save(tmp_path / "ckpt", [(3, p3), (5, p5)])
    cfg = _config(32)
    cfg.init.checkpoint = str(tmp_path / "ckpt")
    cfg.init.checkpoint_step = 3
    t = trainer.Trainer(cfg, str(tmp_path / "stage2"))
    got, want = _flat(jax.device_get(t.state["params"])), _flat(p3)
    for key in set(want) - set(TABLES):
        np.testing.assert_array_equal(got[key], want[key], err_msg=key)
    for key, class_rows in TABLES.items():
        np.testing.assert_allclose(got[key], _torch_bicubic(want[key], 4, 8, class_rows), rtol=1e-5, atol=1e-7)
    abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), p3)
    jax.tree.map(np.testing.assert_array_equal, jax.device_get(ckpt.restore_params(str(tmp_path / "ckpt"), abstract)),
                 p5)
    with pytest.raises(ValueError, match=r"init.checkpoint_step=4 is not a step of init.checkpoint='.*ckpt'; "
                                         r"its steps are 3, 5\."):
        ckpt.restore_params(str(tmp_path / "ckpt"), abstract, step=4)


def test_checkpoint_step_config_checks():
    cfg = small_config()
    cfg.init.checkpoint_step = 3
    with pytest.raises(ValueError, match="init.checkpoint_step=3 needs init.checkpoint"):
        train_config.validate_train_config(cfg)
    cfg.init.checkpoint = "/somewhere"
    train_config.validate_train_config(cfg)
    cfg.init.checkpoint_step = -2
    with pytest.raises(ValueError, match="init.checkpoint_step=-2 must be a step number"):
        train_config.validate_train_config(cfg)


def test_other_shape_differences_are_refused(tmp_path):
    """A decoder of another mlp_dim, or another connector, is refused naming the parameters, even alongside a
    resolution change."""
    saved = _init(_config(16), seed=0)
    _save(tmp_path / "ckpt", [(1, saved)])
    wider = _config(32, mlp_dim=96)
    model = registry.build_model(wider.model)
    with pytest.raises(ValueError, match=r"init.checkpoint='.*ckpt' does not hold this model's parameters \(missing "
                                         r"or different shape: decoder/layer_0/mlp/down_proj/kernel \(checkpoint "
                                         r"\[64, 32\], model \[96, 32\]\)"):
        ckpt.load_params(model, wider.model, str(tmp_path / "ckpt"), field="init.checkpoint")
    other = _config(16)
    other.model.connector = dict(name="avg_pool", num_tokens=4)
    model = registry.build_model(other.model)
    with pytest.raises(ValueError, match=r"does not hold this model's parameters \(missing or different shape: "
                                         r"connector/proj"):
        ckpt.load_params(model, other.model, str(tmp_path / "ckpt"), field="init.checkpoint")


def test_keep_steps_are_saved_and_never_deleted(tmp_path):
    """train.checkpoint.keep_steps (MM1 Fig. 7c: SFT from several steps of one pre-training run): the trainer saves
    at those steps as well as every every_steps, and the manager keeps them beside the last `keep`."""
    import types

    cfg = small_config()
    cfg.train.update(steps=9)
    cfg.train.checkpoint.update(every_steps=4, keep=1, keep_steps=(3,))
    train_config.validate_train_config(cfg)
    due = [s for s in range(1, 10) if trainer.Trainer._due_hooks(types.SimpleNamespace(config=cfg), s)["save"]]
    assert due == [3, 4, 8, 9]  # keep_steps, every 4, the last
    manager = ckpt.make_manager(str(tmp_path / "ckpt"), keep=1, async_save=False, keep_steps=(3,))
    state = {"w": np.arange(4.0)}
    for step in due:
        ckpt.save(manager, step, state, "{}", force=True)
    manager.wait_until_finished()
    assert sorted(manager.all_steps()) == [3, 9]  # 4 and 8 gave way to the last one; 3 stays
    manager.close()
    cfg.train.checkpoint.keep_steps = (0, 5)
    with pytest.raises(ValueError, match=r"train.checkpoint.keep_steps=\(0, 5\) must be a tuple of positive step"):
        train_config.validate_train_config(cfg)
