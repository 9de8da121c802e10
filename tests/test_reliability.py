"""Reliability drills: damaged or half-written checkpoints, bad numbers refused before set-up, packing exact for
gradients, bfloat16 compute, no torch import."""
import copy
import glob
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import tiny
from mm1_jax.models import registry
from mm1_jax.models.inputs import example_batch, input_spec
from mm1_jax.models.mm1 import loss_terms
from mm1_jax.runtime import checkpoint as ckpt_lib
from mm1_jax.train import config as train_config
from mm1_jax.train import trainer
from tests.support import user_env
from tests.test_train import small_config

pytestmark = pytest.mark.slow  # processes started, models trained: see pyproject.toml
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = user_env()  # one device, as a user runs it


# --- damaged checkpoints

@pytest.fixture(scope="module")
def trained(small_run):
    """A 6-step run of the small config (checkpoints at steps 3 and 6) and its losses; tests damage copies of it. The
    session's run (tests/conftest.py), shared with test_train."""
    workdir, losses = small_run
    assert sorted(os.listdir(workdir / "checkpoints")) == ["3", "6"]
    return workdir, losses


def _copy(trained, tmp_path):
    workdir = tmp_path / "run"
    shutil.copytree(trained[0], workdir)
    return workdir


def _truncate_arrays(step_dir):
    """What a full disk leaves: every array data file of the step cut to half its size."""
    files = glob.glob(os.path.join(step_dir, "state", "**", "d", "*"), recursive=True)
    assert files
    for f in files:
        os.truncate(f, os.path.getsize(f) // 2)


DAMAGE = r"checkpoint step 6 in {dir}/checkpoints is damaged: (state/\S+|\S+ in state/) cannot be read \(OUT_OF_RANGE: "


def test_damaged_newest_step_is_moved_aside_and_the_run_resumes_from_the_older_one(trained, tmp_path, capsys):
    """Step 6's array files truncated: the restart names the step and the file in one console line, moves the step to
    checkpoints/damaged/6 (its files kept as they were), resumes from step 3 and reproduces the uninterrupted run's
    losses for steps 4-6 exactly; metrics.jsonl has a row saying so."""
    workdir = _copy(trained, tmp_path)
    _truncate_arrays(workdir / "checkpoints" / "6")
    sizes = {os.path.relpath(f, workdir / "checkpoints" / "6"): os.path.getsize(f)
             for f in glob.glob(str(workdir / "checkpoints" / "6" / "**"), recursive=True) if os.path.isfile(f)}
    capsys.readouterr()
    out = trainer.Trainer(small_config(), str(workdir)).run()
    lines = capsys.readouterr().out.splitlines()
    assert [out["losses"][s] for s in (4, 5, 6)] == [trained[1][s] for s in (4, 5, 6)]  # resumed from step 3
    damage = [line for line in lines if "is damaged" in line]
    assert len(damage) == 1 and re.match(DAMAGE.format(dir=re.escape(str(workdir))), damage[0]), lines
    assert damage[0].endswith(f"; moved it to {workdir}/checkpoints/damaged/6 and resumed from step 3.")
    assert f"resumed from step 3 of {workdir}" in lines
    moved = workdir / "checkpoints" / "damaged" / "6"
    assert {os.path.relpath(f, moved): os.path.getsize(f) for f in glob.glob(str(moved / "**"), recursive=True)
            if os.path.isfile(f)} == sizes  # nothing deleted or rewritten
    assert sorted(os.listdir(workdir / "checkpoints")) == ["3", "6", "damaged"]  # a fresh step 6
    with open(workdir / "metrics.jsonl") as f:
        rows = [json.loads(line) for line in f]
    (row,) = [r for r in rows if "checkpoint_damaged" in r]
    assert (row["step"], row["checkpoint_damaged"], row["moved_to"]) == (3, 6, str(moved))
    assert row["damaged_file"] in damage[0] and row["damage"].startswith("OUT_OF_RANGE: ")


def test_damaged_checkpoint_stops_in_one_sentence(trained, tmp_path, monkeypatch):
    """on_damage=stop, a later stage's init.checkpoint (restore_params), and a run whose only step is damaged: one
    sentence naming the step and the file, nothing moved. An error that names no file of the step (a bug, not damage)
    propagates as it is and moves nothing."""
    workdir = _copy(trained, tmp_path)
    os.remove(workdir / "checkpoints" / "6" / "data" / "metadata")
    t = trainer.Trainer(small_config(), str(workdir))  # each run() below is a restart of this workdir
    t.config.train.checkpoint.on_damage = "stop"
    with pytest.raises(ValueError) as e:
        t.run()
    assert str(e.value) == (f"checkpoint step 6 in {workdir}/checkpoints is damaged: data/metadata cannot be read (the "
                            "file is missing); train.checkpoint.on_damage=stop, so the run stops (resume_older would "
                            f"move the step to {workdir}/checkpoints/damaged/ and resume from an older step).")
    assert sorted(os.listdir(workdir / "checkpoints")) == ["3", "6"]

    _truncate_arrays(workdir / "checkpoints" / "6")
    abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding), t.state["params"])
    with pytest.raises(ValueError, match=re.escape(f"init.checkpoint='{workdir}/checkpoints' step 6 is damaged: ")
                       + r"(state/\S+|\S+ in state/) cannot be read \(OUT_OF_RANGE: .*\); start from an older step "
                       r"with init.checkpoint_step \(its steps are 3, 6\)\.$"):
        ckpt_lib.restore_params(str(workdir / "checkpoints"), abstract)  # what a later stage's trainer calls

    t.config.train.checkpoint.on_damage = "resume_older"
    monkeypatch.setattr(ckpt_lib.ocp.CheckpointManager, "restore", lambda *a, **k: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        t.run()
    monkeypatch.undo()
    assert sorted(os.listdir(workdir / "checkpoints")) == ["3", "6"]
    shutil.rmtree(workdir / "checkpoints" / "3")
    with pytest.raises(ValueError, match=re.escape(
            f"checkpoint step 6 in {workdir}/checkpoints is damaged: data/metadata cannot be read (the file is "
            f"missing); there is no older step, so the run stops with nothing moved (move {workdir}/checkpoints "
            "aside to start afresh).")):
        t.run()
    assert sorted(os.listdir(workdir / "checkpoints")) == ["6"]


def test_tensorstore_messages_name_the_file():
    """The two forms a truncated array takes in TensorStore's errors: a data file of the step, or an array's key in
    the step's OCDBT database."""
    root = "/w/checkpoints/6/state"
    by_key = ValueError(f'OUT_OF_RANGE: Error reading "opt_state.1.0.mu.decoder.embed.embedding/0.2" in OCDBT database '
                        f'at local file "{root}/": Requested byte range [8176, 12062) is not valid for value of size '
                        '100 [source locations=\'tensorstore/kvstore/byte_range.cc:39\']')
    assert ckpt_lib._read_failure(RuntimeError("reading failed"), "/w/checkpoints", 6) is None
    wrapped = Exception("Encountered error while reading array index")
    wrapped.__cause__ = by_key
    assert ckpt_lib._read_failure(wrapped, "/w/checkpoints", 6) == (
        "opt_state.1.0.mu.decoder.embed.embedding/0.2 in state/",
        "OUT_OF_RANGE: Requested byte range [8176, 12062) is not valid for value of size 100")
    by_file = ValueError(f'OUT_OF_RANGE: Error opening "zarr" driver: Error reading "opt_state.1.0.count/.zarray" in '
                         f'OCDBT database at local file "{root}/": Error reading Byte range [0, 399809) of local file '
                         f'"{root}/d/613f": Requested byte range [0, 399809) is not valid for value of size 100')
    assert ckpt_lib._read_failure(by_file, "/w/checkpoints", 6) == (
        "state/d/613f", "OUT_OF_RANGE: Requested byte range [0, 399809) is not valid for value of size 100")
    assert ckpt_lib._read_failure(by_file, "/w/checkpoints", 3) is None  # another step's file: not this step's damage


KILLED_SAVE = """
import os, signal, sys
import jax, jax.numpy as jnp
from mm1_jax.runtime import checkpoint as ckpt_lib
manager = ckpt_lib.make_manager(sys.argv[1], keep=3, async_save=True)
state = lambda v: {"step": jnp.int32(v), "w": jax.random.normal(jax.random.PRNGKey(v), (2048, 2048))}  # 16 MB
ckpt_lib.save(manager, 1, state(1), '{"at": 1}', force=True)
manager.wait_until_finished()
ckpt_lib.save(manager, 2, state(2), '{"at": 2}', force=True)  # returns while the arrays are written
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_a_save_killed_midway_never_looks_complete(tmp_path):
    """A process killed (SIGKILL) while its asynchronous save of step 2 is being written leaves only orbax's temporary
    folder: the restart lists step 1 alone, restores it exactly, and saving step 2 again works."""
    directory = tmp_path / "checkpoints"
    proc = subprocess.run([sys.executable, "-c", KILLED_SAVE, str(directory)], cwd=REPO, env=ENV, capture_output=True,
                          text=True, timeout=300, check=False)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    names = sorted(os.listdir(directory))
    assert names[0] == "1" and len(names) == 2 and names[1].startswith("2.orbax-checkpoint-tmp"), names
    manager = ckpt_lib.make_manager(str(directory), keep=3, async_save=False)
    assert manager.all_steps() == [1]
    like = {"step": jax.ShapeDtypeStruct((), jnp.int32, sharding=jax.sharding.SingleDeviceSharding(jax.devices()[0])),
            "w": jax.ShapeDtypeStruct((2048, 2048), jnp.float32,
                                      sharding=jax.sharding.SingleDeviceSharding(jax.devices()[0]))}
    state, data = ckpt_lib.restore(manager, 1, like)
    assert int(state["step"]) == 1 and data == '{"at": 1}'
    np.testing.assert_array_equal(state["w"], jax.random.normal(jax.random.PRNGKey(1), (2048, 2048)))
    ckpt_lib.save(manager, 2, {"step": jnp.int32(2), "w": jnp.zeros((2048, 2048))}, '{"at": 2}', force=True)
    manager.reload()
    assert manager.all_steps() == [1, 2] and ckpt_lib.restore(manager, 2, like)[1] == '{"at": 2}'
    manager.close()


# --- bad numbers, before anything heavy

def test_bad_numbers_stop_the_command_before_set_up(tmp_path):
    """A negative row length or learning rate: exit 1 within seconds, one line naming the field and the value, before
    even the workdir is created."""
    for arg, message in (("--config.data.seq_len=-8", "error: data.seq_len=-8 must be a positive integer."),
                         ("--config.train.optimizer.lr=-1", "error: train.optimizer.lr=-1.0 must be positive.")):
        start = time.time()
        out = subprocess.run([sys.executable, "-m", "mm1_jax.train", "--config=configs/tiny.py",
                              f"--workdir={tmp_path}/run", arg], cwd=REPO, env=ENV, capture_output=True, text=True,
                             timeout=300, check=False)
        assert out.returncode == 1 and out.stderr.strip().splitlines() == [message], out.stderr
        assert time.time() - start < 30 and not os.path.exists(tmp_path / "run")


@pytest.mark.parametrize("field,value,message", [
    ("data.seq_len", 0, "data.seq_len=0 must be a positive integer."),
    ("data.max_images", -1, "data.max_images=-1 must be a non-negative integer."),
    ("data.worker_buffer_size", 0, "data.worker_buffer_size=0 must be a positive integer."),
    ("data.max_error_rate", 1.5, "data.max_error_rate=1.5 must lie in [0, 1]."),
    ("data.pack.min_piece", -2, "data.pack.min_piece=-2 must be a non-negative integer."),
    ("data.split.n_max", 2, "data.split.n_max=2 is smaller than data.split.n_min=4."),
    ("model.encoder.image_size", 0, "model.encoder.image_size=0 is smaller than model.encoder.patch_size=8."),
    ("model.max_images", 3, "data.max_images=8 differs from model.max_images=3"),
    ("train.steps", 0, "train.steps=0 must be a positive integer."),
    ("train.global_batch_size", -8, "train.global_batch_size=-8 must be a positive integer."),
    ("train.seed", -1, "train.seed=-1 must be a non-negative integer."),
    ("train.optimizer.lr", 0.0, "train.optimizer.lr=0.0 must be positive."),
    ("train.optimizer.lr", float("nan"), "train.optimizer.lr=nan must be positive."),
    ("train.optimizer.weight_decay", -0.1, "train.optimizer.weight_decay=-0.1 must be non-negative."),
    ("train.optimizer.warmup_steps", -1, "train.optimizer.warmup_steps=-1 must be a non-negative integer."),
    ("train.optimizer.clip_norm", -1.0, r"train.optimizer.clip_norm=-1.0 must be non-negative (0: no clipping)."),
    ("train.optimizer.b2", 1.0, "train.optimizer.b2=1.0 must be in [0, 1)."),
    ("train.optimizer.eps", 0.0, "train.optimizer.eps=0.0 must be positive."),
    ("train.checkpoint.keep", 0, "train.checkpoint.keep=0 must be a positive integer."),
    ("train.checkpoint.on_damage", "skip", "train.checkpoint.on_damage='skip' is not one of resume_older, stop."),
])
def test_every_number_is_checked_with_its_field(field, value, message, tiny_config):
    config = copy.deepcopy(tiny_config)
    section, name = field.rsplit(".", 1)
    node = config
    for part in section.split("."):
        node = node[part]
    node[name] = value
    with pytest.raises(ValueError, match=re.escape(message)):
        train_config.validate_config(config)


@pytest.fixture(scope="module")
def tiny_config():
    config = tiny.get_config()
    train_config.validate_config(config)  # the config as it ships is valid
    return config


# --- packing is exact for gradients; bfloat16 compute

def _packing_batches(spec, vocab):
    """Two documents with an image each, packed in one row (A then B then padding; a second row all padding), and the
    same two unpacked in two rows: tokens, targets, weights and images in the layout mm1_jax.data produces."""
    rng, k, t = np.random.RandomState(0), spec.tokens_per_image, 28
    docs = [(13, 2), (11, 4)]  # (length, first image slot)
    images = rng.randn(2, spec.image_size, spec.image_size, 3).astype(np.float32)
    tokens = [rng.randint(5, vocab, n).astype(np.int32) for n, _ in docs]
    targets = [rng.randint(5, vocab, n).astype(np.int32) for n, _ in docs]
    weights = [np.where((np.arange(n) < n - 1) & ((np.arange(n) < s - 1) | (np.arange(n) >= s + k)), 1.0, 0.0
                        ).astype(np.float32) for n, s in docs]

    def row(parts, image_slots):
        out = {key: np.zeros(t, np.int32) for key in ("tokens", "targets", "segment_ids", "positions")}
        out.update(loss_weights=np.zeros(t, np.float32), image_token_index=np.full(t, -1, np.int32),
                   images=np.zeros((2,) + images.shape[1:], np.float32), image_valid=np.zeros(2, bool))
        at = 0
        for segment, (d, slot) in enumerate(zip(parts, image_slots), 1):
            n, s = docs[d]
            out["tokens"][at:at + n], out["targets"][at:at + n] = tokens[d], targets[d]
            out["loss_weights"][at:at + n], out["segment_ids"][at:at + n] = weights[d], segment
            out["positions"][at:at + n] = np.arange(n)
            out["image_token_index"][at + s:at + s + k] = slot * k + np.arange(k)
            out["images"][slot], out["image_valid"][slot] = images[d], True
            at += n
        return out

    stack = lambda rows: {key: np.stack([r[key] for r in rows]) for key in rows[0]}
    return stack([row([0, 1], [0, 1]), row([], [])]), stack([row([0], [0]), row([1], [0])])  # [2, T] both: one compile


def test_packing_is_exact_for_gradients():
    """Two documents (an image each) packed in one row give, for every parameter (vision encoder and connector
    included), the gradient of the summed token loss that the two rows unpacked give, to float32 precision."""
    cfg = small_config()
    model = registry.build_model(cfg.model)
    spec = input_spec(cfg.model, cfg.data)
    params = nn.unbox(jax.jit(model.init)(jax.random.PRNGKey(0), **example_batch(spec, 2, 28))["params"])
    packed, unpacked = _packing_batches(spec, cfg.model.decoder.vocab_size)

    def summed_loss(p, batch):
        terms = loss_terms(model.apply({"params": p}, **batch), batch["targets"], batch["loss_weights"])
        return terms["nll_sum"], terms["weight"]

    grads = jax.jit(jax.grad(summed_loss, has_aux=True))
    (g_packed, w_packed), (g_rows, w_rows) = grads(params, packed), grads(params, unpacked)
    assert float(w_packed) == float(w_rows) == 12  # the same target tokens in both layouts
    pairs = list(zip(jax.tree.leaves(g_packed), jax.tree.leaves(g_rows)))
    largest = max(float(np.abs(b).max()) for _, b in pairs)
    # per parameter, relative to its largest entry; parameters whose exact gradient is 0 (a key bias: softmax ignores
    # a shift) hold only rounding noise (~1e-9) and are held to the global bound below instead
    rel = max(float(np.abs(a - b).max() / np.abs(b).max()) for a, b in pairs if np.abs(b).max() > 1e-6 * largest)
    flat = lambda g: np.concatenate([np.ravel(x) for x in jax.tree.leaves(g)])
    vision_p, vision_r = flat(g_packed["encoder"]), flat(g_rows["encoder"])
    cosine = float(vision_p @ vision_r / np.linalg.norm(vision_p) / np.linalg.norm(vision_r))
    print(f"packing gradients: max relative difference {rel:.2e}, vision-encoder cosine {cosine:.9f}")
    assert np.linalg.norm(vision_r) > 1e-3 and np.linalg.norm(flat(g_rows["connector"])) > 1e-3  # both learn here
    for a, b in pairs:
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6 * largest)
    assert rel < 1e-4 and cosine > 1 - 1e-6


def test_bfloat16_compute_follows_float32():
    """model.dtype=bfloat16 on the small trainer: four steps' losses within 0.005 of float32's (not equal: the setting
    is in effect), parameters and optimizer state stay float32, nothing non-finite."""
    runs = {}
    for dtype in ("float32", "bfloat16"):
        cfg = small_config()
        cfg.model.dtype = dtype
        t = trainer.Trainer(cfg, "/nonexistent", devices=jax.devices()[:1])
        losses = []
        with jax.set_mesh(t.mesh), t._rules():
            for _ in range(4):
                t.state, m = t.train_step(t.state, t.next_batch())
                losses.append(float(m["loss"]))
        runs[dtype] = (np.array(losses), jax.device_get(t.state))
    (f32, _), (bf16, state) = runs["float32"], runs["bfloat16"]
    print(f"bf16 - f32 loss per step: {np.round(bf16 - f32, 5).tolist()} (f32 {np.round(f32, 4).tolist()})")
    assert np.all(np.isfinite(bf16)) and np.abs(bf16 - f32).max() < 0.005 and np.abs(bf16 - f32).max() > 0
    leaves = jax.tree.leaves({"params": state["params"], "opt_state": state["opt_state"]})
    assert {x.dtype for x in leaves if np.issubdtype(x.dtype, np.floating)} == {np.dtype(np.float32)}
    assert all(np.all(np.isfinite(x)) for x in leaves if np.issubdtype(x.dtype, np.floating))


# --- imports

LMMS_ADAPTER = "mm1_jax.eval.lmms_eval_model"
NO_TORCH = f"""
import importlib, json, pkgutil, sys
from absl import flags
import mm1_jax

# lmms-eval's model adapter is the one module that needs torch (lmms-eval imports it): the [lmms] extra's
names = sorted(m.name for m in pkgutil.walk_packages(mm1_jax.__path__, "mm1_jax.") if m.name != "{LMMS_ADAPTER}")
for name in names:
    before = set(flags.FLAGS)
    importlib.import_module(name)
    for flag in set(flags.FLAGS) - before:  # each command's flags, so the next command can define its own
        delattr(flags.FLAGS, flag)
print(json.dumps({{"modules": names, "torch": sorted(m for m in sys.modules if m.split(".")[0] == "torch")}}))
"""


def test_no_module_imports_torch():
    """Importing every mm1_jax module (the commands' and the converters' included: torch is read only inside the
    legacy .bin reader) leaves torch unimported, in a fresh interpreter."""
    out = subprocess.run([sys.executable, "-c", NO_TORCH], cwd=REPO, env=ENV, capture_output=True, text=True,
                         timeout=300, check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert {"mm1_jax.convert.tensor_files", "mm1_jax.train.__main__", "mm1_jax.eval.__main__"} <= set(report["modules"])
    assert report["torch"] == []
