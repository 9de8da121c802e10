"""The training loop: sharded init, a jitted train step over the mesh, and periodic hooks (log, checkpoint, evaluate).

    train(config, workdir) -> {'losses': {step: loss}, 'step': last step, 'status', 'eval', ...}

The train state is {'step', 'params' (encoder/connector/decoder), 'opt_state'}; only the parts named in
`config.train.trainable` get gradients and optimizer state, the others are passed through untouched (bit-identical).
Restarting with the same workdir resumes from the latest complete checkpoint (parameters, optimizer, step and every
host's data iterator), so an interrupted run continues with exactly the batches it would have seen. A newest step
whose files cannot be read is moved to checkpoints/damaged/ and the run resumes from the newest step that restores
(`train.checkpoint.on_damage`).

The step loop only dispatches steps. Metrics stay on the devices until a hook is due (a log, checkpoint, evaluation
or sample step, the last step, or a stop request); then every step since the last fetch is read back at once, which
also tells how many steps were skipped as non-finite. Evaluation is built from the config: `config.train.evaluator`
names the module (default `mm1_jax.eval.evaluator`), imported by name, so the trainer imports nothing from eval.
"""
from __future__ import annotations

import fnmatch
import functools
import signal
import threading
import time
from typing import Any

import flax.linen as nn
from flax import traverse_util
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from mm1_jax import pretrained
from mm1_jax.data import pipeline as pipeline_lib
from mm1_jax.models import config as model_config
from mm1_jax.models import registry
from mm1_jax.models.inputs import example_batch, input_spec
from mm1_jax.models.mm1 import loss_terms
from mm1_jax.runtime import checkpoint as ckpt_lib
from mm1_jax.runtime import distributed
from mm1_jax.train import metrics as metrics_lib
from mm1_jax.train import optim, sharding
from mm1_jax.train.config import evaluator_module, validate_config


def is_trainable(path: str, trainable: tuple[str, ...]) -> bool:
    """A parameter path ('decoder/layer_1/attn/gate_proj/kernel') trains when an entry of `trainable` is a part
    ('decoder'), a leading path ('decoder/layer_1') or an fnmatch pattern ('decoder/*/attn/image_*') that it matches."""
    return any(path == p or path.startswith(p + "/") or fnmatch.fnmatchcase(path, p) for p in trainable)


def split_params(params: dict, trainable: tuple[str, ...]) -> tuple[dict, dict]:
    """(the trainable parameters, the frozen ones): two nested dicts that `merge_params` joins again."""
    flat = traverse_util.flatten_dict(params, sep="/")
    train = {k: v for k, v in flat.items() if is_trainable(k, trainable)}
    frozen = {k: v for k, v in flat.items() if k not in train}
    return traverse_util.unflatten_dict(train, sep="/"), traverse_util.unflatten_dict(frozen, sep="/")


def merge_params(a: dict, b: dict) -> dict:
    return traverse_util.unflatten_dict({**traverse_util.flatten_dict(a, sep="/"),
                                         **traverse_util.flatten_dict(b, sep="/")}, sep="/")


def make_train_step(model: nn.Module, tx: optax.GradientTransformation, schedule, trainable: tuple[str, ...],
                    accum_steps: int, batch_sharding_fn):
    """(state, batch) -> (state, metrics). The batch is split into `accum_steps` micro-batches whose summed token
    losses and gradients are added up before one update, so accumulation equals the full batch. A non-finite loss or
    gradient leaves the state unchanged (flagged in the metrics)."""

    def loss_sums(train_params, frozen, micro):
        """(summed token loss + MoE auxiliary loss x this micro-batch's weight, (summed token loss, weight))."""
        out = model.apply({"params": merge_params(frozen, train_params)}, **micro)
        terms = loss_terms(out, micro["targets"], micro["loss_weights"])
        nll, weight, aux = terms["nll_sum"], terms["weight"], terms["moe_loss"]
        # MoE: the router losses are means over the micro-batch; weighting them by its token weight makes the
        # accumulated objective the token-weighted average over micro-batches (exact without accumulation).
        return nll + aux * weight, (nll, weight, aux)

    grad_fn = jax.value_and_grad(loss_sums, has_aux=True)

    def step(state, batch):
        train_params, frozen = split_params(state["params"], trainable)
        if accum_steps == 1:
            (_, (nll, weight, aux)), grads = grad_fn(train_params, frozen, batch)
            aux = aux * weight
        else:
            # micro-batch i = rows i, i+k, i+2k, ...: every device keeps a share of every micro-batch.
            def to_micro(x):
                x = x.reshape((x.shape[0] // accum_steps, accum_steps) + x.shape[1:]).swapaxes(0, 1)
                return jax.lax.with_sharding_constraint(x, batch_sharding_fn(x.ndim, micro=True))

            micros = jax.tree.map(to_micro, batch)

            def body(carry, micro):
                (_, (nll_i, w_i, aux_i)), g_i = grad_fn(train_params, frozen, micro)
                nll, w, aux, g = carry
                return (nll + nll_i, w + w_i, aux + aux_i * w_i, jax.tree.map(jnp.add, g, g_i)), None

            zeros = jax.tree.map(jnp.zeros_like, train_params)
            init = (jnp.float32(0), jnp.float32(0), jnp.float32(0), zeros)
            (nll, weight, aux, grads), _ = jax.lax.scan(body, init, micros)
        denom = jnp.maximum(weight, 1e-8)
        loss = nll / denom  # the language-model loss; the MoE auxiliary loss is reported beside it
        grads = jax.tree.map(lambda g: g / denom, grads)
        grad_norm = optax.global_norm(grads)
        updates, new_opt = tx.update(grads, state["opt_state"], train_params)
        new_train = optax.apply_updates(train_params, updates)
        ok = jnp.isfinite(loss) & jnp.isfinite(grad_norm)
        keep = lambda new, old: jax.tree.map(lambda a, b: jnp.where(ok, a, b), new, old)  # noqa: E731
        new_state = {"step": state["step"] + ok.astype(jnp.int32),
                     "params": merge_params(frozen, keep(new_train, train_params)),
                     "opt_state": keep(new_opt, state["opt_state"])}
        metrics = {"loss": loss, "grad_norm": grad_norm, "lr": schedule(state["step"]), "ok": ok,
                   "target_tokens": weight, "moe_loss": aux / denom}
        return new_state, metrics

    return step


def _described(tree: Any, shardings: Any) -> Any:
    return jax.tree.map(lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s), tree, shardings)


def plan_train_step(config: ml_collections.ConfigDict, model: nn.Module, mesh: Mesh, rules, example: dict) -> dict:
    """Everything about the train step except the values, allocating nothing: the trainer fills the state in, and
    `train.aot` compiles the same step for a TPU slice. `example` is one micro-batch (arrays or ShapeDtypeStructs).

    Returns {'boxed' (abstract parameters with their logical axes), 'param_shardings' (boxed like them), 'tx',
    'schedule', 'state' (ShapeDtypeStructs with shardings), 'state_shardings', 'step' (jitted, state donated)}."""
    tc, trainable = config.train, tuple(config.train.trainable)
    sharding.check_expert_axis(model_config.get(config.model.decoder, "decoder", "num_experts"), mesh.shape)
    n_data = sharding.data_parallel_size(mesh)
    if tc.global_batch_size % (n_data * tc.grad_accum_steps):
        raise ValueError(f"train.global_batch_size={tc.global_batch_size} is not divisible by the {n_data} "
                         f"data-parallel devices x train.grad_accum_steps={tc.grad_accum_steps}.")
    rng = jax.eval_shape(jax.random.PRNGKey, tc.seed)
    with jax.set_mesh(mesh), nn.logical_axis_rules(rules):
        boxed = jax.eval_shape(lambda r, ex: model.init(r, **ex)["params"], rng, example)
    param_shardings = sharding.param_shardings(boxed, mesh, rules, strict=True)  # outside the mesh context (unbox)
    params = _described(nn.unbox(boxed), nn.unbox(param_shardings))
    tx, schedule = optim.make_optimizer(tc.optimizer, tc.steps, optim.count_params(params["decoder"]))
    train_params, _ = split_params(params, trainable)
    opt_abstract = jax.eval_shape(tx.init, train_params)
    opt_state = _described(opt_abstract, sharding.like_params_shardings(opt_abstract, train_params, mesh))
    step0 = jax.ShapeDtypeStruct((), jnp.int32, sharding=NamedSharding(mesh, PartitionSpec()))
    state = {"step": step0, "params": params, "opt_state": opt_state}
    state_shardings = jax.tree.map(lambda x: x.sharding, state)
    batch_fn = functools.partial(sharding.batch_sharding, mesh)
    step_fn = make_train_step(model, tx, schedule, trainable, tc.grad_accum_steps, batch_fn)
    batch_shardings = {k: batch_fn(v.ndim) for k, v in example.items()}
    step = jax.jit(step_fn, in_shardings=(state_shardings, batch_shardings), out_shardings=(state_shardings, None),
                   donate_argnums=(0,))
    return {"boxed": boxed, "param_shardings": param_shardings, "tx": tx, "schedule": schedule, "state": state,
            "state_shardings": state_shardings, "step": step}


class Trainer:
    """Builds everything from the config; `run()` trains to `config.train.steps`."""

    def __init__(self, config: ml_collections.ConfigDict, workdir: str, devices: list | None = None):
        validate_config(config)  # every field, before anything is built
        self.config, self.workdir, tc = config, workdir, config.train
        self.spec = input_spec(config.model, config.data)
        self.model = registry.build_model(config.model)
        self.trainable = tuple(tc.trainable)
        self.rules = sharding.axis_rules(config.get("axis_rules"))
        self.mesh = sharding.make_mesh(config.mesh, devices)
        self.global_batch = tc.global_batch_size
        self._stop_requested = False
        self._damage_rows: list[tuple[int, dict]] = []  # (resumed step, metrics row) per damaged step moved aside
        self._evaluator = None  # built on the first evaluation, then reused (compiled generation)
        self._build_state()
        self._build_data()

    # --- sharded state
    def _rules(self):
        return nn.logical_axis_rules(self.rules)

    def batch_sharding(self, ndim: int, micro: bool = False) -> NamedSharding:
        return sharding.batch_sharding(self.mesh, ndim, micro)

    def _build_state(self):
        tc = self.config.train
        example = example_batch(self.spec, self.global_batch // tc.grad_accum_steps, self.config.data.seq_len)
        plan = plan_train_step(self.config, self.model, self.mesh, self.rules, example)
        self.param_shardings, self.tx, self.schedule = plan["param_shardings"], plan["tx"], plan["schedule"]
        with jax.set_mesh(self.mesh), self._rules():
            params = jax.jit(lambda r: nn.unbox(self.model.init(r, **example)["params"]),
                             out_shardings=self.param_shardings)(jax.random.PRNGKey(tc.seed))
        params = self._initialise_from(params)
        paths = list(traverse_util.flatten_dict(params, sep="/"))
        for entry in self.trainable:
            if not any(is_trainable(path, (entry,)) for path in paths):
                raise ValueError(f"train.trainable entry {entry!r} matches no parameter of this model (e.g. "
                                 f"{paths[0]!r}); give a part, a leading path or an fnmatch pattern.")
        if tc.optimizer.warmup_steps > tc.steps and jax.process_index() == 0:
            print(f"note: train.optimizer.warmup_steps={tc.optimizer.warmup_steps} is longer than train.steps="
                  f"{tc.steps}; the learning rate warms up over all {tc.steps} steps.", flush=True)
        self.state_shardings = plan["state_shardings"]
        with jax.set_mesh(self.mesh):
            opt_state = jax.jit(self.tx.init, out_shardings=self.state_shardings["opt_state"])(
                split_params(params, self.trainable)[0])
        step = jax.device_put(jnp.zeros((), jnp.int32), self.state_shardings["step"])
        self.state = {"step": step, "params": params, "opt_state": opt_state}
        self.num_params = optim.count_params(params)
        self.train_step = plan["step"]

    def _initialise_from(self, params: dict) -> dict:
        """A previous stage's checkpoint (init.checkpoint at init.checkpoint_step; position tables resized to this
        encoder's grid) and/or converted weights (init.encoder / init.decoder)."""
        init = self.config.get("init") or {}
        if init.get("checkpoint"):
            abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding), params)
            params = ckpt_lib.restore_params(init["checkpoint"], abstract, step=init.get("checkpoint_step", -1))
        if init.get("encoder") or init.get("decoder"):
            params = pretrained.init_from_checkpoints(init, params, self.config.model)
            params = jax.device_put(params, nn.unbox(self.param_shardings))
        return params

    # --- data
    def _build_data(self):
        tc = self.config.train
        if tc.host_data == "global":  # every host reads the whole global batch and keeps its rows (reproducible)
            index, count = 0, 1
        else:  # every host reads its own shard of the records (the efficient default)
            index, count = jax.process_index(), jax.process_count()
        self.pipeline = pipeline_lib.build_pipeline(
            self.config.data, global_batch_size=self.global_batch, process_index=index, process_count=count,
            **self.spec.pipeline_fields())

    def next_batch(self) -> dict[str, jax.Array]:
        host = {k: v for k, v in next(self.pipeline).items() if not k.startswith("meta_")}
        out = {}
        for k, v in host.items():
            s = self.batch_sharding(v.ndim)
            if self.config.train.host_data == "global":
                out[k] = jax.make_array_from_callback(v.shape, s, lambda idx, v=v: v[idx])
            else:
                out[k] = jax.make_array_from_process_local_data(s, v)
        return out

    # --- checkpoints and stopping
    def _restore_if_any(self, manager) -> int:
        """Restore the newest checkpoint step (0 when there is none). A step whose files cannot be read is, under
        train.checkpoint.on_damage=resume_older, moved to checkpoints/damaged/ once an older step has restored
        completely (one console line each, and a metrics row once the logger is open); under stop, or when no older
        step restores, the run stops with one sentence naming the step and the file."""
        steps = sorted(manager.all_steps(), reverse=True)
        if not steps:
            return 0
        abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding), self.state)
        on_damage, damaged = self.config.train.checkpoint.on_damage, []
        for step in steps:
            try:
                state, data_json = ckpt_lib.restore(manager, step, abstract)
                error = None
            except ckpt_lib.DamagedCheckpoint as e:
                error = e
            error = ckpt_lib.agree_on_damage(error, str(manager.directory), step)
            if error is None:
                break
            if on_damage == "stop":
                hint = (f"resume_older would move the step to {manager.directory}/{ckpt_lib.DAMAGED}/ and resume "
                        "from an older step" if step != steps[-1] else "there is no older step to resume from")
                raise ValueError(f"{error}; train.checkpoint.on_damage=stop, so the run stops ({hint}).") from None
            damaged.append(error)
        else:
            older = ("there is no older step" if len(steps) == 1 else
                     f"the older steps ({', '.join(map(str, steps[1:]))}) cannot be read either")
            raise ValueError(f"{damaged[0]}; {older}, so the run stops with nothing moved (move {manager.directory} "
                             "aside to start afresh).") from None
        self.state = state
        for error in damaged:  # only now, with a complete step restored: nothing is moved when none restores
            moved = ckpt_lib.move_aside(str(manager.directory), error.step)
            self._damage_rows.append((step, {"checkpoint_damaged": error.step, "damaged_file": error.file,
                                             "damage": error.reason, "moved_to": moved}))
            if jax.process_index() == 0:
                print(f"{error}; moved it to {moved} and resumed from step {step}.", flush=True)
        if damaged:
            manager.reload()
        if data_json is not None:
            self.pipeline.set_state_json(data_json)
        else:
            print(f"checkpoint {step}: data state was written by another number of hosts; the data restarts.")
        if jax.process_index() == 0:
            print(f"resumed from step {step} of {self.workdir}", flush=True)
        return int(step)

    def _on_stop_signal(self, signum, frame):  # noqa: ARG002
        """SIGTERM (preemption) or a first Ctrl-C: save at the next step and exit; a second Ctrl-C exits at once."""
        self._stop_requested = True
        self._stop_signal = signal.Signals(signum).name
        if signum == signal.SIGINT:
            signal.signal(signal.SIGINT, signal.default_int_handler)
            print("\nCtrl-C: saving at the next step, then exiting (press Ctrl-C again to exit without saving).",
                  flush=True)

    def _stop_everywhere(self) -> bool:
        """Whether any host was asked to stop (one all-gather; called only when metrics are fetched anyway)."""
        if jax.process_count() == 1:
            return self._stop_requested
        from jax.experimental import multihost_utils  # pylint: disable=import-outside-toplevel
        flags = multihost_utils.process_allgather(np.array([self._stop_requested], np.int32))
        return bool(np.any(flags))

    # --- the loop
    def _due_hooks(self, step: int) -> dict[str, bool]:
        """Which hooks run at this step: each every N steps (0: never periodically) and all of them at the last step
        (evaluation and samples only when configured)."""
        tc, final = self.config.train, step >= self.config.train.steps
        every = lambda n: final or bool(n and step % n == 0)  # noqa: E731
        return {"log": every(tc.log_every),
                "save": every(tc.checkpoint.every_steps) or step in tuple(tc.checkpoint.get("keep_steps", ())),
                "eval": bool(tc.eval_every) and every(tc.eval_every),
                "samples": bool(tc.num_samples) and every(tc.sample_every)}

    def _due(self, step: int) -> bool:
        """A hook runs at this step (so its metrics must be on the host)."""
        return any(self._due_hooks(step).values())

    def run(self) -> dict[str, Any]:
        tc, cc = self.config.train, self.config.train.checkpoint
        manager = ckpt_lib.make_manager(f"{self.workdir}/checkpoints", keep=cc.keep, async_save=cc.async_save,
                                        keep_steps=tuple(cc.get("keep_steps", ())))
        distributed.watch_hosts(tc.host_timeout_s, str(manager.directory), self.workdir)  # a lost host: a sentence
        try:
            step = hooked = self._restore_if_any(manager)
        except BaseException:
            manager.close()
            raise
        if step == 0 and jax.process_index() == 0:
            print(f"starting fresh in {self.workdir}", flush=True)
        logger = metrics_lib.MetricsLogger(self.workdir, tc.steps)
        for at, row in self._damage_rows:
            logger.write(at, row, console=False)
        self._stop_signal = "SIGTERM"
        main_thread = threading.current_thread() is threading.main_thread()  # handlers can only be set there
        previous = {s: signal.signal(s, self._on_stop_signal) for s in (signal.SIGTERM, signal.SIGINT) if main_thread}
        compiled = step >= tc.steps
        self._losses, self._nonfinite, self._clock = {}, [0, 0], (time.time(), step, None)  # (time, step, start)
        self._hook_s = {"since_log": 0.0}  # each hook's last duration, and the hooks' time since the last log
        result: dict[str, Any] = {"status": "done"}
        pending: list = []  # device metrics of the steps dispatched since the last fetch
        try:
            batch = self.next_batch() if step < tc.steps else None
            while step < tc.steps:
                started = time.time()
                with jax.set_mesh(self.mesh), self._rules():
                    self.state, m = self.train_step(self.state, batch)  # dispatched; runs while the host goes on
                if not compiled:  # the first call returns once the step is compiled
                    compiled = True
                    if jax.process_index() == 0:
                        print(f"train step compiled in {time.time() - started:.0f} s", flush=True)
                data_json = self.pipeline.state_json()  # after exactly the batches this state has seen
                pending.append(m)
                batch = self.next_batch()  # the next batch is read and packed while the step computes
                if not (self._due(step + len(pending)) or self._stop_requested):
                    continue
                step, last = self._fetch(step, pending)
                pending = []
                stop = self._stop_everywhere()
                if step > hooked and self._due(step):
                    hooked = step
                    self._hooks(step, last, logger, manager, data_json, result)
                if stop:
                    if manager.latest_step() != step:
                        ckpt_lib.save(manager, step, self.state, data_json, force=True)
                    result["status"] = "preempted"
                    print(f"{self._stop_signal}: saved step {step}; exiting (restart with the same workdir to "
                          "resume).", flush=True)
                    break
        except FloatingPointError:
            result["status"] = "nonfinite"
            raise
        finally:
            if result["status"] != "nonfinite":
                manager.wait_until_finished()
            manager.close()
            logger.close()
            for s, handler in previous.items():
                signal.signal(s, handler)
        result.update(losses=self._losses, step=step, nonfinite_skips=self._nonfinite[0],
                      data_stats=self.pipeline.stats(), wall_s=time.time() - (self._clock[2] or time.time()))
        return result

    def _fetch(self, step: int, pending: list) -> tuple[int, dict]:
        """Read the pending steps' metrics (one transfer); count the applied and the non-finite ones."""
        tc, last = self.config.train, None
        for m in jax.device_get(pending):
            if not m["ok"]:
                self._nonfinite[0] += 1
                self._nonfinite[1] += 1
                print(f"step {step}: non-finite loss ({m['loss']}) or gradient; update skipped "
                      f"({self._nonfinite[1]} in a row).", flush=True)
                if self._nonfinite[1] >= tc.max_nonfinite_steps:
                    raise FloatingPointError(
                        f"{self._nonfinite[1]} non-finite steps in a row (train.max_nonfinite_steps="
                        f"{tc.max_nonfinite_steps}); stopping, the last good checkpoint is kept.")
                continue  # the data moved on, the step did not
            self._nonfinite[1] = 0
            step += 1
            self._losses[step] = float(m["loss"])
            last = m
        if self._clock[2] is None and last is not None:  # the first fetch includes compilation
            self._clock = (time.time(), step, time.time())
        return step, last

    def _hooks(self, step: int, m: dict | None, logger, manager, data_json: str, result: dict) -> None:
        """Everything that runs at a due step: log, checkpoint, then evaluate and sample (after the save, so an
        evaluation that fails loses no training)."""
        due = self._due_hooks(step)
        if m is not None and due["log"]:
            now, (t_last, s_last, start) = time.time(), self._clock
            train_s = now - t_last - self._hook_s["since_log"]  # the steps' own time: evaluations are counted apart
            rate = (step - s_last) / max(train_s, 1e-9) if step > s_last else 0.0
            eta, unknown = self._eta(step, rate)
            logger.write(step, {"loss": float(m["loss"]), "lr": float(m["lr"]), "grad_norm": float(m["grad_norm"]),
                                "tokens_per_s": rate * self.global_batch * self.config.data.seq_len if rate else None,
                                "eta_s": eta, "eta_excludes": unknown,
                                "skipped_records": int(sum(self.pipeline.skip_counts().values())),
                                "nonfinite_skips": self._nonfinite[0]})
            self._clock, self._hook_s["since_log"] = (now, step, start), 0.0
        for kind in ("save", "eval", "samples"):
            if not due[kind]:
                continue
            started = time.time()
            if kind == "save":
                ckpt_lib.save(manager, step, self.state, data_json, force=True)
            else:
                result[kind] = self._evaluate(logger, step) if kind == "eval" else self._samples(logger, step)
            self._hook_s[kind] = time.time() - started
            self._hook_s["since_log"] += self._hook_s[kind]

    def _eta(self, step: int, rate: float) -> tuple[float | None, str]:
        tc = self.config.train
        every = {"save": tc.checkpoint.every_steps, "eval": tc.eval_every if tc.eval_every else None,
                 "samples": tc.sample_every if tc.num_samples else None}
        return metrics_lib.eta(step, tc.steps, rate, {k: v for k, v in every.items() if v is not None}, self._hook_s)

    def _evaluate(self, logger, step) -> dict[str, float]:
        """train.eval_tasks at train.eval_shots on the current parameters, logged as eval/<task>/<N>shot/<metric>."""
        tc = self.config.train
        scores, _ = self._run_evaluator(tc.eval_tasks, tc.eval_shots, tc.eval_limit)
        logger.write(step, {f"eval/{k}": v for k, v in scores.items()}, console=False)
        if jax.process_index() == 0:
            print(f"  eval @ {step}: " + ", ".join(f"{k} {v:.3f}" for k, v in scores.items()), flush=True)
        return scores

    def _samples(self, logger, step) -> dict[str, float]:
        """The 0-shot predictions of train.sample_task on its first train.num_samples items, logged as text (the
        first 8) beside the task's scores."""
        tc = self.config.train
        scores, reports = self._run_evaluator((tc.sample_task,), (0,), tc.num_samples)
        rows = reports[f"{tc.sample_task}/0shot"]["predictions"]
        logger.text(step, "samples", [f"{r['prediction']!r}  (true: {r['answers'][0]!r})" for r in rows[:8]])
        logger.write(step, {f"samples/{k}": v for k, v in scores.items()}, console=False)
        if jax.process_index() == 0:
            print(f"  samples @ {step}: " + ", ".join(f"{k} {v:.3f}" for k, v in scores.items()), flush=True)
        return scores

    def _run_evaluator(self, tasks, shots, limit):
        if self._evaluator is None:
            self._evaluator = evaluator_module(self.config).Evaluator(self.model, self.config)
        with jax.set_mesh(self.mesh), self._rules():
            return self._evaluator(self.state["params"], tuple(tasks), tuple(int(k) for k in shots), int(limit))


def train(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
    return Trainer(config, workdir).run()
