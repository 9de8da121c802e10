"""The trainer: sharded step = single-device step, accumulation = full batch, freezing, resume, bad input."""
import json
import os
import shutil
import signal

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import tiny
from mm1_jax.models.mm1 import loss_terms
from mm1_jax.train import optim, trainer

# Every test builds the same small model: the persistent cache compiles its steps once for the whole module.


def small_config(**train):
    """The tiny config shrunk further: 16 px images, 4 image tokens, 64-token rows, batch 8."""
    c = tiny.get_config()
    c.data.seq_len, c.data.max_images = 64, 2
    c.model.max_images = 2
    c.model.encoder.update(image_size=16, patch_size=4, width=32, depth=1, num_heads=2, mlp_dim=64)
    c.model.connector.update(num_tokens=4, hidden_dim=32, depth=1)
    c.model.decoder.update(width=32, depth=2, num_heads=4, num_kv_heads=2, mlp_dim=64)
    c.train.update(steps=6, global_batch_size=8, log_every=1, num_samples=0, sample_every=0, eval_every=0)
    c.train.optimizer.update(warmup_steps=2, lr=3e-3)
    c.train.checkpoint.update(every_steps=3, keep=2, async_save=True)
    c.train.update(train)
    return c


def sgd_config(lr=1.0, clip_norm=0.0, **train):
    """small_config with plain SGD at `lr` from the first step (no warmup): the update is -lr x the (clipped)
    gradient, so a step shows the gradient's scale (Adam's first step is ~lr x its sign whatever the scale)."""
    return small_config(optimizer=dict(name="sgd", lr=lr, warmup_steps=0, clip_norm=clip_norm), **train)


_ONE_STEP: dict = {}


def one_step(config, devices, batch=None):
    """One step of a fresh trainer: (parameters before, state after, metrics, the host batch, the trainer). A config
    already stepped on the same devices from its own first batch gives the same answer again (tests only read it)."""
    key = (config.to_json_best_effort(sort_keys=True), tuple(d.id for d in devices))
    if batch is None and key in _ONE_STEP:
        return _ONE_STEP[key]
    out = _one_step(config, devices, batch)
    if batch is None:
        _ONE_STEP[key] = out
    return out


def _one_step(config, devices, batch):
    t = trainer.Trainer(config, "/nonexistent", devices=devices)
    before = jax.device_get(t.state["params"])
    batch = batch if batch is not None else {k: np.asarray(v) for k, v in t.next_batch().items()}
    put = {k: jax.device_put(v, t.batch_sharding(v.ndim)) for k, v in batch.items()}
    with jax.set_mesh(t.mesh), t._rules():
        state, m = t.train_step(t.state, put)
    return before, jax.device_get(state), jax.device_get(m), batch, t


def change(before, after):
    """after - before, leaf by leaf, in float64 (the update a step applied)."""
    return jax.tree.map(lambda a, b: np.asarray(b, np.float64) - np.asarray(a, np.float64), before, after)


def norm(tree) -> float:
    return float(np.sqrt(sum(np.sum(np.square(np.asarray(x, np.float64))) for x in jax.tree.leaves(tree))))


def assert_trees_close(got, want, params=None, rtol=1e-4, noise=1e-6):
    """Every leaf equal to `rtol` of its own largest entry in `want` (float32 sums in another order): a leaf of small
    gradients is held to its own scale, not to the largest leaf's. Two floors below which nothing can be told apart:
    float32's accumulation noise (`noise` x the largest entry of all leaves; a key bias's gradient is 0 in exact
    arithmetic and ~1e-11 of noise here) and, when `got` is an update measured as float32 parameters after minus
    before, the float32 spacing of those `params` (an update of 1e-5 to a norm scale of 1.0 is read to 1.2e-7)."""
    floor = noise * max(float(np.abs(np.asarray(x)).max(initial=0.0)) for x in jax.tree.leaves(want))
    params = jax.tree.map(np.zeros_like, want) if params is None else params

    def close(path, a, b, p):
        scale = float(np.abs(np.asarray(b)).max(initial=0.0))
        ulp = np.spacing(np.abs(np.asarray(p, np.float32))).astype(np.float64)
        bad = np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64)) > np.maximum(rtol * scale, floor) + ulp
        assert not bad.any(), (f"{jax.tree_util.keystr(path)}: {int(bad.sum())} of {bad.size} entries differ by more "
                               f"than {rtol} x the leaf's largest {scale:.3g} (first: {np.asarray(a)[bad][0]!r} vs "
                               f"{np.asarray(b)[bad][0]!r})")

    jax.tree_util.tree_map_with_path(close, got, want, params)


def micro_batch_scans(step, state, batch) -> list[tuple[int, tuple[int, ...]]]:
    """(length, token array shape per iteration) of each scan in the compiled train step that runs over the batch's
    tokens: grad_accum_steps=4 on 8 rows of 64 tokens is one scan of 4 iterations over [2, 64] token micro-batches."""
    abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), (state, batch))
    tokens = batch["tokens"].shape
    found = []

    def walk(jaxpr):
        for eqn in jaxpr.eqns:
            if eqn.primitive.name == "scan":
                xs = [v.aval.shape for v in eqn.invars[eqn.params["num_consts"] + eqn.params["num_carry"]:]]
                found.extend((eqn.params["length"], s[1:]) for s in xs if len(s) == len(tokens) + 1
                             and s[0] * s[1] == tokens[0] and s[2:] == tokens[1:] and eqn.params["length"] == s[0])
            for value in eqn.params.values():
                for sub in value if isinstance(value, (tuple, list)) else (value,):
                    if hasattr(sub, "eqns") or hasattr(sub, "jaxpr"):
                        walk(getattr(sub, "jaxpr", sub))

    walk(jax.make_jaxpr(step)(*abstract).jaxpr)
    return sorted(set(found))


def grads_by_hand(model, params, batch):
    """The gradient of the mean token loss (+ the MoE auxiliary loss) on the whole batch: jax.grad of `loss_terms`."""
    def loss(p):
        terms = loss_terms(model.apply({"params": p}, **batch), batch["targets"], batch["loss_weights"])
        return terms["nll_sum"] / terms["weight"] + terms["moe_loss"]

    return jax.device_get(jax.jit(jax.grad(loss))(params))


def test_mm1_learning_rate_law():
    assert [round(optim.mm1_peak_lr(n), 6) for n in (3e9, 7e9, 30e9)] == [5.8e-5, 4.1e-5, 2.2e-5]
    opt = small_config().train.optimizer
    opt.lr_rule = "mm1_law"
    lr, wd = optim.resolve_lr(opt, 7_000_000_000)
    assert lr == pytest.approx(4.082e-5, rel=1e-3) and wd == pytest.approx(0.1 * lr)


def test_schedule_warmup_then_cosine_to_floor():
    s = optim.make_schedule(1e-3, total_steps=100, warmup_steps=10, final_fraction=0.1)
    assert float(s(0)) == 0.0 and float(s(10)) == pytest.approx(1e-3) and float(s(100)) == pytest.approx(1e-4)
    assert float(s(55)) == pytest.approx(1e-4 + 0.9e-3 * 0.5, rel=1e-4)  # half way down the cosine


def test_a_run_shorter_than_its_warmup_warms_up_over_the_run():
    """--config.train.steps=20 with the config's 50 warmup steps: warmup over the 20 steps (a note says so)."""
    short = optim.make_schedule(1e-3, total_steps=20, warmup_steps=50, final_fraction=0.1)
    clamped = optim.make_schedule(1e-3, total_steps=20, warmup_steps=20, final_fraction=0.1)
    assert [float(short(i)) for i in range(21)] == [float(clamped(i)) for i in range(21)]
    assert float(short(10)) == pytest.approx(0.5e-3) and float(short(20)) == pytest.approx(1e-3)
    with pytest.raises(ValueError, match="train.optimizer.warmup_steps=-1 must not be negative"):
        optim.make_schedule(1e-3, total_steps=20, warmup_steps=-1, final_fraction=0.1)


@pytest.mark.slow
def test_sharded_step_equals_single_device():
    """fsdp 4 x tensor 2 over 8 devices takes the 1-device step: with plain SGD at lr 1 the parameters move by minus
    the gradient, which equals the single device's to 1e-4 of its largest entry; parameters really are sharded."""
    before, ref_state, ref_m, batch, _ = one_step(sgd_config(), jax.devices()[:1])
    cfg = sgd_config()
    cfg.mesh = dict(data=1, fsdp=4, tensor=2, expert=1)
    _, state, m, _, _ = one_step(cfg, jax.devices(), batch)
    assert float(m["loss"]) == pytest.approx(float(ref_m["loss"]), abs=1e-5)
    assert float(m["grad_norm"]) == pytest.approx(float(ref_m["grad_norm"]), rel=1e-5)
    ref_update = change(before, ref_state["params"])
    assert norm(ref_update) == pytest.approx(float(ref_m["grad_norm"]), rel=1e-4)  # the step is the gradient
    assert float(ref_m["grad_norm"]) > 0.1
    assert_trees_close(change(before, state["params"]), ref_update, before)


@pytest.mark.slow
@pytest.mark.parametrize("optimizer", ["sgd", "adamw", "adafactor"])
def test_grad_accumulation_equals_full_batch(optimizer):
    """4 micro-batches give the full batch's loss, gradient norm and update at a learning rate that moves the
    parameters (no warmup). With plain SGD at lr 1 the update is minus the gradient, checked against jax.grad of the
    whole batch's loss by hand: accumulating a wrong gradient (e.g. 7x the last micro-batch's) fails here."""
    lr = 1.0 if optimizer == "sgd" else 3e-3
    opt = {"name": optimizer, "warmup_steps": 0, "clip_norm": 0.0, "lr": lr}
    before, full, m_full, batch, t = one_step(small_config(optimizer=opt), jax.devices()[:1])
    _, acc, m_acc, _, t_acc = one_step(small_config(grad_accum_steps=4, optimizer=opt), jax.devices()[:1], batch)
    # the accumulating step really runs 4 micro-batches of 2 rows (the full-batch step runs none), so the equalities
    # below compare two different computations
    with jax.set_mesh(t_acc.mesh), t_acc._rules():
        assert micro_batch_scans(t_acc.train_step, t_acc.state, batch) == [(4, (2, 64))]
    with jax.set_mesh(t.mesh), t._rules():
        assert micro_batch_scans(t.train_step, t.state, batch) == []
    # a mean over 4 micro-batches of 2 rows against one over 8: float32 sums in another order, a few ulp apart
    assert float(m_acc["loss"]) == pytest.approx(float(m_full["loss"]), rel=1e-6)
    assert float(m_acc["grad_norm"]) == pytest.approx(float(m_full["grad_norm"]), rel=1e-5)
    by_hand = grads_by_hand(t.model, before, batch)
    assert norm(by_hand) == pytest.approx(float(m_acc["grad_norm"]), rel=1e-4)
    update, acc_update = change(before, full["params"]), change(before, acc["params"])
    still = [jax.tree_util.keystr(p) for p, u in jax.tree_util.tree_flatten_with_path(update)[0] if not np.any(u)]
    assert still == ["['encoder']['post_norm']['norm']['bias']", "['encoder']['post_norm']['norm']['scale']"]  # unused
    if optimizer == "sgd":
        assert_trees_close(update, jax.tree.map(np.negative, by_hand), before)
        assert_trees_close(acc_update, update, before)
    else:  # the first AdamW / Adafactor update is ~lr x sign(gradient): compared where the gradient is above float32
        #    noise (a key bias has gradient 0 in exact arithmetic, ~1e-11 here, so its sign is noise)
        floor = 1e-6 * max(float(np.abs(g).max()) for g in jax.tree.leaves(by_hand))
        for a, b, g in zip(jax.tree.leaves(acc_update), jax.tree.leaves(update), jax.tree.leaves(by_hand)):
            np.testing.assert_allclose(a[np.abs(g) > floor], b[np.abs(g) > floor], rtol=1e-3, atol=1e-4 * lr)


@pytest.mark.slow
def test_clipping_scales_the_update_to_clip_norm():
    """A gradient norm above train.optimizer.clip_norm: the SGD update is the gradient (jax.grad by hand) times
    clip_norm / its norm, so the update's norm is lr x clip_norm; the logged grad_norm is the unclipped one."""
    before, state, m, batch, t = one_step(sgd_config(lr=0.5, clip_norm=0.2), jax.devices()[:1])
    g = grads_by_hand(t.model, before, batch)
    g_norm = norm(g)
    assert float(m["grad_norm"]) == pytest.approx(g_norm, rel=1e-4) and g_norm > 2 * 0.2
    update = change(before, state["params"])
    assert norm(update) == pytest.approx(0.5 * 0.2, rel=1e-4)
    assert_trees_close(update, jax.tree.map(lambda x: -0.5 * x * 0.2 / g_norm, g), before)


@pytest.mark.slow
def test_moe_auxiliary_losses_enter_the_loss_at_their_weights():
    """MoE decoder: the load-balance and router z-losses weigh 0.01 and 0.001 by default (MM1), the logged moe_loss is
    0.01 x load balance + 0.001 x z (means over the MoE layers), and the SGD update is minus the gradient of
    mean token loss + those weighted losses, taken by hand from the model's router statistics."""
    cfg = sgd_config()
    cfg.model.decoder.update(num_experts=4, top_k=2)
    before, state, m, batch, t = one_step(cfg, jax.devices()[:1])
    assert (t.model.decoder.load_balance_weight, t.model.decoder.z_loss_weight) == (0.01, 0.001)

    def loss(p):
        out = t.model.apply({"params": p}, **batch)
        terms = loss_terms(out, batch["targets"], batch["loss_weights"])
        balance, z = jnp.mean(out["moe_stats"]["load_balance_loss"]), jnp.mean(out["moe_stats"]["z_loss"])
        return terms["nll_sum"] / terms["weight"] + 0.01 * balance + 0.001 * z, (balance, z)

    (_, (balance, z)), g = jax.jit(jax.value_and_grad(loss, has_aux=True))(before)
    assert float(balance) > 1 and float(z) > 0
    assert float(m["moe_loss"]) == pytest.approx(0.01 * float(balance) + 0.001 * float(z), rel=1e-5)
    update = change(before, state["params"])
    assert_trees_close(update, jax.tree.map(np.negative, jax.device_get(g)), before)
    assert sorted(update["decoder"]["layer_0"]["moe"]) == ["router", "wi_gate", "wi_up", "wo"]


@pytest.mark.slow
def test_frozen_parts_stay_bit_identical(tmp_path):
    t = trainer.Trainer(small_config(steps=3, trainable=("connector", "decoder")), str(tmp_path))
    before = jax.device_get(t.state["params"])
    t.run()
    after = jax.device_get(t.state["params"])
    jax.tree.map(np.testing.assert_array_equal, after["encoder"], before["encoder"])
    changed = jax.tree.leaves(jax.tree.map(lambda a, b: np.abs(a - b).max(), after["decoder"], before["decoder"]))
    assert min(changed) > 0  # every decoder parameter moved
    assert "encoder" not in t.state["opt_state"][1][0].mu


def _losses(workdir):
    rows = [json.loads(line) for line in open(os.path.join(workdir, "metrics.jsonl"))]
    return {r["step"]: r["loss"] for r in rows if "loss" in r}


@pytest.mark.slow
def test_interrupt_and_resume_reproduce_the_uninterrupted_run(tmp_path, monkeypatch, small_run):
    full = small_run[1]  # trainer.Trainer(small_config(), ...).run()'s losses (tests/conftest.py)

    calls = {"n": 0}
    original = trainer.Trainer.next_batch

    def dying(self):  # the process "dies" reading batch 6, during step 5 (after the step-3 save)
        calls["n"] += 1
        if calls["n"] == 6:
            raise KeyboardInterrupt
        return original(self)

    monkeypatch.setattr(trainer.Trainer, "next_batch", dying)
    with pytest.raises(KeyboardInterrupt):
        trainer.Trainer(small_config(), str(tmp_path / "cut")).run()
    monkeypatch.setattr(trainer.Trainer, "next_batch", original)
    resumed = trainer.Trainer(small_config(), str(tmp_path / "cut"))
    out = resumed.run()
    assert min(out["losses"]) == 4  # resumed after step 3
    assert [out["losses"][s] for s in (4, 5, 6)] == [full[s] for s in (4, 5, 6)]  # exactly
    assert _losses(tmp_path / "cut")[6] == full[6]


@pytest.mark.slow
def test_sigterm_and_ctrl_c_save_and_resume(tmp_path, monkeypatch, capsys, small_run):
    """A preemption notice (SIGTERM) saves the step and exits; the restart resumes, and a first Ctrl-C (SIGINT) in
    the resumed run does the same; the last restart ends on the uninterrupted run's losses."""
    full = small_run[1]  # the uninterrupted run's losses (tests/conftest.py)
    original = trainer.Trainer.next_batch
    handlers = lambda: (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT))  # noqa: E731
    before = handlers()

    def interrupt(sig, at):  # the signal arrives while the run's batch number `at` is read (during the step before)
        calls = {"n": 0}

        def preempted(self):
            calls["n"] += 1
            if calls["n"] == at:
                os.kill(os.getpid(), sig)
            return original(self)

        monkeypatch.setattr(trainer.Trainer, "next_batch", preempted)

    interrupt(signal.SIGTERM, 3)
    out = trainer.Trainer(small_config(), str(tmp_path / "pre")).run()
    assert out["status"] == "preempted" and out["step"] == 2
    assert "SIGTERM: saved step 2; exiting" in capsys.readouterr().out
    assert handlers() == before  # the run's handlers removed
    assert sorted(os.listdir(tmp_path / "pre" / "checkpoints")) == ["2"]  # saved at once, before the step-3 save
    interrupt(signal.SIGINT, 3)  # resumed at step 2: its third batch is read during step 4
    out = trainer.Trainer(small_config(), str(tmp_path / "pre")).run()
    assert out["status"] == "preempted" and out["step"] == 4 and min(out["losses"]) == 3
    assert "SIGINT: saved step 4; exiting" in capsys.readouterr().out
    assert handlers() == before
    assert sorted(os.listdir(tmp_path / "pre" / "checkpoints"), key=int) == ["3", "4"]
    monkeypatch.setattr(trainer.Trainer, "next_batch", original)
    out = trainer.Trainer(small_config(), str(tmp_path / "pre")).run()
    assert out["status"] == "done" and min(out["losses"]) == 5
    assert [out["losses"][s] for s in (5, 6)] == [full[s] for s in (5, 6)]
    assert {s: v for s, v in _losses(tmp_path / "pre").items() if s >= 3} == {s: full[s] for s in range(3, 7)}


@pytest.mark.slow
def test_checkpoint_of_another_model_is_refused(tmp_path, small_run):
    shutil.copytree(small_run[0], tmp_path / "run")  # the session's 6-step run: checkpoints at steps 3 and 6
    other = small_config(steps=9)
    other.model.decoder.mlp_dim = 48
    with pytest.raises(ValueError, match=r"different model.*mlp/gate_proj/kernel \(checkpoint \(32, 64\), "
                                         r"model \(32, 48\)\)"):
        trainer.Trainer(other, str(tmp_path / "run")).run()
    assert sorted(os.listdir(tmp_path / "run" / "checkpoints")) == ["3", "6"]  # nothing written over


@pytest.mark.slow
def test_nonfinite_losses_are_skipped_then_stop(tmp_path, monkeypatch):
    original = trainer.Trainer.next_batch
    calls = {"n": 0}

    def poisoned(self):  # batch 3 is NaN once; from batch 5 on every batch is NaN
        calls["n"] += 1
        batch = original(self)
        if calls["n"] == 3 or calls["n"] >= 5:
            batch["images"] = batch["images"] * np.nan
        return batch

    monkeypatch.setattr(trainer.Trainer, "next_batch", poisoned)
    t = trainer.Trainer(small_config(steps=10, max_nonfinite_steps=3), str(tmp_path))
    with pytest.raises(FloatingPointError, match="3 non-finite steps in a row"):
        t.run()
    assert int(jax.device_get(t.state["step"])) == 3  # batches 1, 2, 4 applied; 3 and 5-7 skipped
    assert np.all(np.isfinite(jax.device_get(t.state["params"])["decoder"]["final_norm"]["scale"]))
    assert sorted(os.listdir(tmp_path / "checkpoints")) == ["3"]


@pytest.mark.parametrize("change,message", [
    (dict(stepz=3), "train.stepz is not a known field"),
    (dict(trainable=("vision",)), r"train.trainable=\('vision',\) must name some of encoder"),
    (dict(optimizer=dict(name="sdg")), "train.optimizer.name='sdg' is not one of adamw, adafactor, sgd"),
    (dict(eval_every=2, eval_tasks=("coco",)), r"train.eval_tasks: eval task 'coco' does not exist; the tasks are: "),
    (dict(eval_every=2, eval_shots=(0, -4)), r"train.eval_shots=\(0, -4\) must be non-negative integers"),
    (dict(eval_every=2, eval_tasks=("embedded_cap", "coco_cap")),
     "eval task 'coco_cap' needs config.eval.coco_cap.annotations; it is unset"),
    (dict(grad_accum_steps=3), "train.global_batch_size=8 is not divisible by the 1 data-parallel devices x "
                               "train.grad_accum_steps=3"),
])
def test_config_errors(change, message):
    cfg = small_config()
    for k, v in change.items():
        if isinstance(v, dict):
            cfg.train[k].update(v)
        else:
            cfg.train[k] = v
    with pytest.raises(ValueError, match=message):
        trainer.Trainer(cfg, "/nonexistent", devices=jax.devices()[:1])


@pytest.mark.slow
def test_stage_initialises_from_previous_checkpoint(tmp_path):
    """A second stage (decoder only, Adafactor) starts from the first stage's parameters, not a fresh init."""
    first = trainer.Trainer(small_config(steps=2), str(tmp_path / "pretrain"))
    first.run()
    cfg = small_config(steps=2, trainable=("decoder",), optimizer=dict(name="adafactor"))
    cfg.train.seed = 1  # a different fresh init, which must be overwritten
    cfg.init.checkpoint = str(tmp_path / "pretrain" / "checkpoints")
    second = trainer.Trainer(cfg, str(tmp_path / "sft"))
    jax.tree.map(np.testing.assert_array_equal, jax.device_get(second.state["params"]),
                 jax.device_get(first.state["params"]))
    cfg.init.checkpoint = str(tmp_path / "nothing")
    with pytest.raises(ValueError, match="init.checkpoint=.*nothing.* holds no complete checkpoint"):
        trainer.Trainer(cfg, str(tmp_path / "sft2"))


@pytest.mark.slow
def test_eval_every_and_samples_score_the_checkpointed_parameters(tmp_path, monkeypatch):
    """eval_every=3 in a 6-step run: run_tasks sees exactly the parameters checkpointed at steps 3 and 6, and what it
    returns is logged (eval/<task>/<N>shot/<metric>) and returned. The held-out samples at the end are the embedded
    captioning task: `python -m mm1_jax.eval`'s loading path on the saved checkpoint predicts the same captions, and
    the logged accuracy is that task's exact match; TensorBoard's own reader sees the losses and the samples."""
    from mm1_jax.eval import tasks as eval_lib
    from mm1_jax.runtime import checkpoint as ckpt_lib

    seen, real = {}, eval_lib.run_tasks

    def spy(model, params, config, tasks, shots, **kw):
        scores = real(model, params, config, tasks, shots, **kw)
        if tuple(tasks) != ("embedded_cap",):  # the samples' call is checked below, from the checkpoint
            seen[len(seen)] = (jax.device_get(params), scores, tuple(tasks), tuple(shots), kw["limit"])
        return scores

    monkeypatch.setattr(eval_lib, "run_tasks", spy)
    cfg = small_config(eval_every=3, eval_tasks=("embedded_vqa", "embedded_mc"), eval_shots=(0, 1), eval_limit=3,
                       num_samples=4, sample_task="embedded_cap")
    t = trainer.Trainer(cfg, str(tmp_path))
    result = t.run()
    assert len(seen) == 2 and seen[1][2:] == (("embedded_vqa", "embedded_mc"), (0, 1), 3)
    assert sorted(result["eval"]) == sorted(f"{task}/{k}shot/{m}" for task, ms in
                                            (("embedded_vqa", ("vqa_accuracy", "exact_match")),
                                             ("embedded_mc", ("accuracy", "circular_accuracy"))) for k in (0, 1)
                                            for m in ms)
    manager = ckpt_lib.make_manager(str(tmp_path / "checkpoints"), keep=2, async_save=False)
    abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding), t.state)
    for call, step in enumerate((3, 6)):
        saved, _ = ckpt_lib.restore(manager, step, abstract)
        jax.tree.map(np.testing.assert_array_equal, seen[call][0], jax.device_get(saved["params"]))
    rows = [json.loads(line) for line in open(tmp_path / "metrics.jsonl")]
    evals = {row["step"]: {k[5:]: v for k, v in row.items() if k.startswith("eval/")} for row in rows
             if any(k.startswith("eval/") for k in row)}
    assert evals == {3: seen[0][1], 6: seen[1][1]} and result["eval"] == seen[1][1]

    logged = [row["samples"] for row in rows if "samples" in row][-1]
    params = ckpt_lib.load_params(t.model, cfg.model, str(tmp_path), seed=123)
    reports = {}
    scores = real(t.model, params, cfg, ["embedded_cap"], [0], limit=4, reports=reports)
    predictions = reports["embedded_cap/0shot"]["predictions"]
    assert logged == [f"{r['prediction']!r}  (true: {r['answers'][0]!r})" for r in predictions] and len(logged) == 4
    assert result["samples"] == scores
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.util import tensor_util

    tb = EventAccumulator(str(tmp_path / "tb"), size_guidance={"tensors": 0, "scalars": 0})
    tb.Reload()
    losses = {row["step"]: row["loss"] for row in rows if "loss" in row}
    assert losses and {e.step: e.value for e in tb.Scalars("loss")} == pytest.approx(losses, rel=1e-6)  # float32
    (text,) = tb.Tensors("samples")
    assert text.step == 6 and tensor_util.make_ndarray(text.tensor_proto).item().decode() == "\n\n".join(logged)


@pytest.mark.slow
def test_axis_rules_come_from_the_config():
    """fsdp 4 x tensor 2: parameters sharded by the rules table, AdamW's moments like their parameters;
    config.axis_rules overrides one entry of the table (embed replicated instead of fsdp-sharded); an axis that
    cannot divide its dimension, an unknown logical name and an unknown mesh axis are refused, naming them."""
    cfg = small_config()  # AdamW
    cfg.mesh = dict(data=1, fsdp=4, tensor=2, expert=1)
    t = trainer.Trainer(cfg, "/nonexistent")
    kernel = t.state["params"]["decoder"]["layer_0"]["mlp"]["gate_proj"]["kernel"]  # (embed, mlp)
    assert kernel.sharding.spec == jax.sharding.PartitionSpec("fsdp", "tensor")
    q = t.state["params"]["decoder"]["layer_0"]["attn"]["q_proj"]["kernel"]
    assert q.sharding.spec == jax.sharding.PartitionSpec("fsdp", "tensor", None)
    mu = t.state["opt_state"][1][0].mu
    assert mu["decoder"]["layer_0"]["attn"]["q_proj"]["kernel"].sharding.spec == q.sharding.spec
    cfg.axis_rules = {"embed": None}
    t = trainer.Trainer(cfg, "/nonexistent")
    kernel = t.state["params"]["decoder"]["layer_0"]["mlp"]["gate_proj"]["kernel"]
    assert kernel.sharding.spec == jax.sharding.PartitionSpec(None, "tensor")  # embed no longer on fsdp
    cfg.axis_rules = {"embedding": None}
    with pytest.raises(ValueError, match="axis_rules.embedding is not a logical axis"):
        trainer.Trainer(cfg, "/nonexistent")
    cfg.axis_rules = {"embed": "fsdpp"}
    with pytest.raises(ValueError, match=r"axis_rules.embed='fsdpp' names 'fsdpp', not a mesh axis"):
        trainer.Trainer(cfg, "/nonexistent")
    del cfg.axis_rules
    cfg.mesh = dict(data=1, fsdp=1, tensor=8, expert=1)
    cfg.model.decoder.vocab_size = 271  # the embedded tokenizer's own size, not padded: it cannot be split 8 ways
    with pytest.raises(ValueError, match=r"parameter decoder/embed_tokens/embedding \(271, 32\): its axis 'vocab' "
                                         r"\(dimension 271\) cannot be split over mesh axes \('tensor',\) of size 8"):
        trainer.Trainer(cfg, "/nonexistent")


def test_model_and_data_must_agree_on_images_per_row():
    """One contract: the packed rows hold exactly the images the model takes (models.inputs.input_spec checks it)."""
    from mm1_jax.models.inputs import example_batch, input_spec

    cfg = small_config()
    spec = input_spec(cfg.model, cfg.data)
    assert (spec.tokens_per_image, spec.image_size, spec.image_norm, spec.max_images) == (4, 16, "clip", 2)
    assert example_batch(spec, 3, 64)["images"].shape == (3, 2, 16, 16, 3)
    from mm1_jax.models import presets  # the pixel statistics belong to the encoder's style (AIMv1: ImageNet's)
    norms = [input_spec(presets.model_config(encoder=e)).image_norm for e in ("aim_600m_224", "siglip_so400m14_384")]
    assert norms == ["imagenet", "siglip"]
    cfg.data.max_images = 3
    with pytest.raises(ValueError, match=r"data.max_images=3 differs from model.max_images=2"):
        trainer.Trainer(cfg, "/nonexistent", devices=jax.devices()[:1])
    cfg = small_config(evaluator="mm1_jax.eval.nothing", eval_every=2, eval_tasks=("embedded_cap",))
    with pytest.raises(ValueError, match=r"train.evaluator='mm1_jax.eval.nothing' cannot be imported"):
        trainer.Trainer(cfg, "/nonexistent", devices=jax.devices()[:1])


@pytest.mark.slow
def test_trainable_parameter_patterns_owl3_stage_one(tmp_path):
    """mPLUG-Owl3's first stage trains only the projector, the hyper layers' image key/value projections and their
    gate (arXiv 2408.04840): given as path patterns, exactly those parameters change and everything else is
    bit-identical; a pattern that matches nothing is refused, naming it."""
    cfg = small_config(steps=2, trainable=("connector", "decoder/*/attn/image_*", "decoder/*/attn/gate_proj/*"))
    cfg.model.decoder.hyper_layers = (1,)
    cfg.model.connector.update(name="mlp", num_tokens=16, mlp_depth=1)
    t = trainer.Trainer(cfg, str(tmp_path))
    before = jax.device_get(t.state["params"])
    t.run()
    after = jax.device_get(t.state["params"])
    flat = lambda tree: {"/".join(str(getattr(k, "key", k)) for k in p): v  # noqa: E731
                         for p, v in jax.tree_util.tree_flatten_with_path(tree)[0]}
    b, a = flat(before), flat(after)
    changed = sorted(k for k in b if not np.array_equal(b[k], a[k]))
    assert changed and all(k.startswith("connector/") or k.startswith("decoder/layer_1/attn/image_")
                           or k.startswith("decoder/layer_1/attn/gate_proj/") for k in changed), changed
    assert any(k.startswith("decoder/layer_1/attn/image_k_proj") for k in changed)
    assert any(k.startswith("connector/") for k in changed)
    cfg.train.trainable = ("decoder/*/attn/image_q_proj/*",)
    with pytest.raises(ValueError, match=r"train.trainable entry 'decoder/\*/attn/image_q_proj/\*' matches no "
                                         r"parameter"):
        trainer.Trainer(cfg, str(tmp_path / "other"))
