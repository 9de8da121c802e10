"""The training loop: sharded init, jitted train step over the mesh, data, checkpoints, metrics, samples, and the
`mm1_jax.eval` tasks every `train.eval_every` steps.

    train(config, workdir) -> {'losses': [...], 'step': last step, ...}

The train state is {'step', 'params' (encoder/connector/decoder), 'opt_state'}; only the parts named in
`config.train.trainable` get gradients and optimizer state, the others are passed through untouched (bit-identical).
Restarting with the same workdir resumes from the latest complete checkpoint (parameters, optimizer, step and every
host's data iterator), so an interrupted run continues with exactly the batches it would have seen.
"""
from __future__ import annotations

import signal
import time
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from jax.sharding import NamedSharding, PartitionSpec

from mm1_jax.data import pipeline as pipeline_lib
from mm1_jax.data.tokenizer import load_tokenizer
from mm1_jax.models import registry
from mm1_jax.models.decoder import token_loss
from mm1_jax.train import checkpoint as ckpt_lib
from mm1_jax.train import metrics as metrics_lib
from mm1_jax.train import optim, samples, sharding
from mm1_jax.train.config import validate_train_config


def data_fields(model_cfg: ml_collections.ConfigDict) -> dict[str, Any]:
    """tokens_per_image, image_size, image_norm for the pipeline, from the model config."""
    enc = model_cfg.encoder
    return dict(tokens_per_image=registry.image_tokens(model_cfg), image_size=int(enc.image_size),
                image_norm=str(enc.get("norm") or ("siglip" if enc.get("style") == "siglip" else "clip")))


def dummy_batch(config: ml_collections.ConfigDict, batch_size: int) -> dict[str, np.ndarray]:
    """Zeros in the batch contract's shapes (for init and shape inference)."""
    t, m, s = config.data.seq_len, config.data.max_images, config.model.encoder.image_size
    return {"tokens": np.zeros((batch_size, t), np.int32), "targets": np.zeros((batch_size, t), np.int32),
            "loss_weights": np.zeros((batch_size, t), np.float32), "segment_ids": np.ones((batch_size, t), np.int32),
            "positions": np.tile(np.arange(t, dtype=np.int32), (batch_size, 1)),
            "images": np.zeros((batch_size, m, s, s, 3), np.float32), "image_valid": np.zeros((batch_size, m), bool),
            "image_token_index": np.full((batch_size, t), -1, np.int32)}


def split_params(params: dict, trainable: tuple[str, ...]) -> tuple[dict, dict]:
    return ({k: v for k, v in params.items() if k in trainable}, {k: v for k, v in params.items() if k not in trainable})


def make_train_step(model: nn.Module, tx: optax.GradientTransformation, schedule, trainable: tuple[str, ...],
                    accum_steps: int, batch_sharding_fn):
    """(state, batch) -> (state, metrics). The batch is split into `accum_steps` micro-batches whose summed token
    losses and gradients are added up before one update, so accumulation equals the full batch. A non-finite loss or
    gradient leaves the state unchanged (flagged in the metrics)."""

    def loss_sums(train_params, frozen, micro):
        """(summed token loss + MoE auxiliary loss x this micro-batch's weight, (summed token loss, weight))."""
        out = model.apply({"params": {**frozen, **train_params}}, **micro)
        per_token, _ = token_loss(out["logits"], micro["targets"], micro["loss_weights"])
        nll, weight = jnp.sum(per_token), jnp.sum(micro["loss_weights"].astype(jnp.float32))
        # MoE: the router losses are means over the micro-batch; weighting them by its token weight makes the
        # accumulated objective the token-weighted average over micro-batches (exact without accumulation).
        aux = out.get("moe_loss", jnp.float32(0.0))
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
        new_state = {"step": state["step"] + ok.astype(jnp.int32), "params": {**frozen, **keep(new_train, train_params)},
                     "opt_state": keep(new_opt, state["opt_state"])}
        metrics = {"loss": loss, "grad_norm": grad_norm, "lr": schedule(state["step"]), "ok": ok,
                   "target_tokens": weight, "moe_loss": aux / denom}
        return new_state, metrics

    return step


class Trainer:
    """Builds everything from the config; `run()` trains to `config.train.steps`."""

    def __init__(self, config: ml_collections.ConfigDict, workdir: str, devices: list | None = None):
        validate_train_config(config)
        self.config, self.workdir, tc = config, workdir, config.train
        self.model = registry.build_model(config.model)
        self.trainable = tuple(tc.trainable)
        self.mesh = sharding.make_mesh(config.mesh, devices)
        self.fields = data_fields(config.model)
        self.global_batch = tc.global_batch_size
        n_data = self.mesh.shape["data"] * self.mesh.shape["fsdp"] * self.mesh.shape["expert"]
        if self.global_batch % (n_data * tc.grad_accum_steps):
            raise ValueError(f"train.global_batch_size={self.global_batch} is not divisible by the {n_data} "
                             f"data-parallel devices x train.grad_accum_steps={tc.grad_accum_steps}.")
        self._stop_requested = False
        self._eval_context = None  # built on the first evaluation, then reused (compiled generation)
        self._build_state()
        self._build_data()

    # --- sharded state
    def _rules(self):
        return nn.logical_axis_rules(sharding.LOGICAL_AXIS_RULES)

    def batch_sharding(self, ndim: int, micro: bool = False) -> NamedSharding:
        axes = ("data", "fsdp", "expert")
        spec = (None, axes) if micro else (axes,)
        return NamedSharding(self.mesh, PartitionSpec(*spec, *([None] * (ndim - len(spec)))))

    def _build_state(self):
        tc = self.config.train
        example = dummy_batch(self.config, self.global_batch // tc.grad_accum_steps)
        init = lambda rng: self.model.init(rng, **example)["params"]  # noqa: E731
        with jax.set_mesh(self.mesh), self._rules():
            abstract = jax.eval_shape(init, jax.random.PRNGKey(tc.seed))
        self.param_shardings = sharding.param_shardings(abstract, self.mesh)  # outside the mesh context (unbox)
        with jax.set_mesh(self.mesh), self._rules():
            params = jax.jit(lambda r: nn.unbox(init(r)), out_shardings=self.param_shardings)(
                jax.random.PRNGKey(tc.seed))
        params = self._initialise_from(params)
        decoder_params = optim.count_params(params["decoder"])
        self.tx, self.schedule = optim.make_optimizer(tc.optimizer, tc.steps, decoder_params)
        train_params, _ = split_params(params, self.trainable)
        opt_shardings = sharding.like_params_shardings(jax.eval_shape(self.tx.init, train_params), train_params,
                                                       self.mesh)
        with jax.set_mesh(self.mesh):
            opt_state = jax.jit(self.tx.init, out_shardings=opt_shardings)(train_params)
        step = jax.device_put(jnp.zeros((), jnp.int32), NamedSharding(self.mesh, PartitionSpec()))
        self.state = {"step": step, "params": params, "opt_state": opt_state}
        self.state_shardings = jax.tree.map(lambda x: x.sharding, self.state)
        self.num_params = optim.count_params(params)
        step_fn = make_train_step(self.model, self.tx, self.schedule, self.trainable, tc.grad_accum_steps,
                                  self.batch_sharding)
        batch_shardings = {k: self.batch_sharding(v.ndim) for k, v in dummy_batch(self.config, 1).items()}
        self.train_step = jax.jit(step_fn, in_shardings=(self.state_shardings, batch_shardings),
                                  out_shardings=(self.state_shardings, None), donate_argnums=(0,))

    def _initialise_from(self, params: dict) -> dict:
        """A previous stage's checkpoint (init.checkpoint) and/or converted weights (init.encoder / init.decoder)."""
        init = self.config.get("init") or {}
        if init.get("checkpoint"):
            abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding), params)
            params = ckpt_lib.restore_params(init["checkpoint"], abstract)
        if init.get("encoder") or init.get("decoder"):
            try:
                from mm1_jax import pretrained  # pylint: disable=import-outside-toplevel
            except ImportError as e:
                raise ValueError("init.encoder / init.decoder need mm1_jax.pretrained.init_from_checkpoints, "
                                 "which this checkout does not have yet.") from e
            params = pretrained.init_from_checkpoints(init, params)
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
            **self.fields)

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

    # --- checkpoints
    def _restore_if_any(self, manager) -> int:
        step = manager.latest_step()
        if step is None:
            return 0
        abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding), self.state)
        self.state, data_json = ckpt_lib.restore(manager, step, abstract)
        if data_json is not None:
            self.pipeline.set_state_json(data_json)
        else:
            print(f"checkpoint {step}: data state was written by another number of hosts; the data restarts.")
        return int(step)

    def _on_sigterm(self, signum, frame):  # noqa: ARG002
        self._stop_requested = True

    def _stop_everywhere(self) -> bool:
        if jax.process_count() == 1:
            return self._stop_requested
        from jax.experimental import multihost_utils  # pylint: disable=import-outside-toplevel
        flags = multihost_utils.process_allgather(np.array([self._stop_requested], np.int32))
        return bool(np.any(flags))

    # --- the loop
    def run(self) -> dict[str, Any]:
        tc, cc = self.config.train, self.config.train.checkpoint
        manager = ckpt_lib.make_manager(f"{self.workdir}/checkpoints", keep=cc.keep, async_save=cc.async_save)
        start = self._restore_if_any(manager)
        logger = metrics_lib.MetricsLogger(self.workdir, tc.steps)
        tok = load_tokenizer(self.config.data.tokenizer)
        held = captioner = None
        if tc.num_samples:
            held = samples.held_out_shapes(tc.num_samples, self.fields["image_size"], self.fields["image_norm"])
            captioner = samples.make_greedy_captioner(self.model, self.fields["tokens_per_image"], tok)
        previous = signal.signal(signal.SIGTERM, self._on_sigterm)
        tokens_per_step = self.global_batch * self.config.data.seq_len
        losses, result = {}, {"status": "done"}
        nonfinite_total = nonfinite_run = 0
        t_last, s_last, t_start = time.time(), start, None
        step = start
        try:
            batch = self.next_batch() if step < tc.steps else None
            while step < tc.steps:
                with jax.set_mesh(self.mesh), self._rules():
                    self.state, m = self.train_step(self.state, batch)  # dispatched; runs while the host goes on
                data_json = self.pipeline.state_json()  # after exactly the batches this state has seen
                batch = self.next_batch()  # the next batch is read and packed while the step computes
                m = jax.device_get(m)
                if not m["ok"]:
                    nonfinite_total, nonfinite_run = nonfinite_total + 1, nonfinite_run + 1
                    print(f"step {step}: non-finite loss ({m['loss']}) or gradient; update skipped "
                          f"({nonfinite_run} in a row).", flush=True)
                    if nonfinite_run >= tc.max_nonfinite_steps:
                        result = {"status": "nonfinite"}
                        raise FloatingPointError(
                            f"{nonfinite_run} non-finite steps in a row (train.max_nonfinite_steps="
                            f"{tc.max_nonfinite_steps}); stopping, the last good checkpoint is kept.")
                    continue  # the data moves on, the step does not
                nonfinite_run = 0
                step += 1
                losses[step] = float(m["loss"])
                if t_start is None:
                    t_start, t_last, s_last = time.time(), time.time(), step  # first step includes compilation
                if step % tc.log_every == 0 or step == tc.steps:
                    now = time.time()
                    rate = (step - s_last) / max(now - t_last, 1e-9) if step > s_last else 0.0
                    values = {"loss": float(m["loss"]), "lr": float(m["lr"]), "grad_norm": float(m["grad_norm"]),
                              "tokens_per_s": rate * tokens_per_step,
                              "eta_s": (tc.steps - step) / rate if rate else None,
                              "skipped_records": int(sum(self.pipeline.skip_counts().values())),
                              "nonfinite_skips": nonfinite_total}
                    logger.write(step, values)
                    t_last, s_last = now, step
                if captioner and tc.sample_every and step % tc.sample_every == 0 and step != tc.steps:
                    self._samples(captioner, held, tok, logger, step)
                stop = self._stop_everywhere()
                if (cc.every_steps and step % cc.every_steps == 0) or step == tc.steps or stop:
                    ckpt_lib.save(manager, step, self.state, data_json, force=True)
                if stop:
                    result = {"status": "preempted"}
                    print(f"SIGTERM: saved step {step}; exiting (restart with the same workdir to resume).",
                          flush=True)
                    break
                # after the save, so an evaluation that fails (an unreadable annotation file) loses no training
                if tc.eval_every and (step % tc.eval_every == 0 or step == tc.steps):
                    result["eval"] = self._evaluate(logger, step)
            if result["status"] == "done" and tc.num_samples:
                result["caption_accuracy"] = self._samples(captioner, held, tok, logger, step)
        finally:
            if result["status"] != "nonfinite":
                manager.wait_until_finished()
            manager.close()
            logger.close()
            signal.signal(signal.SIGTERM, previous)
        result.update(losses=losses, step=step, nonfinite_skips=nonfinite_total,
                      data_stats=self.pipeline.stats(), wall_s=time.time() - (t_start or time.time()))
        return result

    def _evaluate(self, logger, step) -> dict[str, float]:
        """train.eval_tasks at train.eval_shots on the current parameters, logged as eval/<task>/<N>shot/<metric>."""
        from mm1_jax.eval import tasks as eval_lib  # pylint: disable=import-outside-toplevel

        tc = self.config.train
        if self._eval_context is None:
            self._eval_context = eval_lib.Context.from_config(self.model, self.config)
        with jax.set_mesh(self.mesh), self._rules():
            scores = eval_lib.run_tasks(self.model, self.state["params"], self.config, tuple(tc.eval_tasks),
                                        [int(k) for k in tc.eval_shots], limit=tc.eval_limit,
                                        context=self._eval_context)
        logger.write(step, {f"eval/{k}": v for k, v in scores.items()}, console=False)
        if jax.process_index() == 0:
            print(f"  eval @ {step}: " + ", ".join(f"{k} {v:.3f}" for k, v in scores.items()), flush=True)
        return scores

    def _samples(self, captioner, held, tok, logger, step) -> float:
        images, truth = held
        with jax.set_mesh(self.mesh), self._rules():
            lines, accuracy = samples.sample_captions(captioner, self.state["params"], images, truth, tok)
        logger.text(step, "samples", lines[:8])
        logger.write(step, {"caption_accuracy": accuracy}, console=False)
        if jax.process_index() == 0:
            print(f"  held-out caption accuracy @ {step}: {accuracy:.1%} of {len(truth)} images", flush=True)
        return accuracy


def train(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
    return Trainer(config, workdir).run()
