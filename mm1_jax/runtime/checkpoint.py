"""Checkpoints: an orbax CheckpointManager over {state (params, opt_state, step), data (every host's iterator)}.

Saves are asynchronous (the step loop goes on while the arrays are written) and atomic: orbax writes a step into a
temporary folder and renames it when complete, so a kill at any moment leaves the last complete step readable.
The data iterator state of every host is gathered into one JSON document, so a restart resumes each host's stream.
"""
from __future__ import annotations

import os
from typing import Any

import flax.linen as nn
import jax
from etils import epath
import numpy as np
import orbax.checkpoint as ocp
from jax.experimental import multihost_utils

from mm1_jax.models.inputs import example_batch, input_spec


def _absolute(directory: str) -> str:
    """Local paths made absolute (orbax needs that); bucket URLs (gs://...) kept as they are."""
    return directory if "://" in directory else os.path.abspath(directory)


def make_manager(directory: str, *, keep: int, async_save: bool = True) -> ocp.CheckpointManager:
    """A manager keeping the last `keep` steps under `directory` (created if absent)."""
    options = ocp.CheckpointManagerOptions(
        max_to_keep=keep, create=True, enable_async_checkpointing=async_save,
        save_decision_policy=ocp.checkpoint_managers.FixedIntervalPolicy(1),  # the trainer decides when to save
    )
    handlers = {"state": ocp.StandardCheckpointHandler(), "data": ocp.JsonCheckpointHandler()}
    return ocp.CheckpointManager(_absolute(directory), options=options, item_handlers=handlers)


def gather_data_states(local_json: str) -> dict[str, str]:
    """Every host's iterator state (JSON text) -> {process index: state}, identical on all hosts."""
    if jax.process_count() == 1:
        return {"0": local_json}
    data = np.frombuffer(local_json.encode(), np.uint8)
    lengths = multihost_utils.process_allgather(np.array([len(data)], np.int32)).reshape(-1)
    padded = np.zeros(int(lengths.max()), np.uint8)
    padded[: len(data)] = data
    everyone = multihost_utils.process_allgather(padded).reshape(len(lengths), -1)
    return {str(i): bytes(everyone[i, : lengths[i]]).decode() for i in range(len(lengths))}


def save(manager: ocp.CheckpointManager, step: int, state: dict[str, Any], data_json: str, *, force: bool = False):
    """Start saving `state` (a pytree of arrays) and the data iterators at `step`; returns at once (async)."""
    data = {"process_count": jax.process_count(), "states": gather_data_states(data_json)}
    manager.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(state), data=ocp.args.JsonSave(data)),
                 force=force)


def _describe(tree: Any) -> dict[str, tuple]:
    """{'params/decoder/...': shape} for every leaf."""
    flat = jax.tree_util.tree_flatten_with_path(tree)[0]
    name = lambda k: str(getattr(k, "key", getattr(k, "name", getattr(k, "idx", k))))  # noqa: E731
    return {"/".join(name(k) for k in path): tuple(leaf.shape) for path, leaf in flat}


def check_compatible(manager: ocp.CheckpointManager, step: int, target: Any) -> None:
    """Refuse (ValueError naming the parameters) a checkpoint whose state does not match this model."""
    meta = manager.item_metadata(step)["state"]
    meta = getattr(meta, "tree", meta)
    saved, wanted = _describe(meta), _describe(target)
    missing = sorted(set(wanted) - set(saved))
    extra = sorted(set(saved) - set(wanted))
    shapes = sorted(k for k in set(saved) & set(wanted) if saved[k] != wanted[k])
    if missing or extra or shapes:
        parts = []
        if shapes:
            parts.append("shape differs for " + ", ".join(f"{k} (checkpoint {saved[k]}, model {wanted[k]})"
                                                          for k in shapes[:5]))
        if missing:
            parts.append("missing from the checkpoint: " + ", ".join(missing[:5]))
        if extra:
            parts.append("not in the model: " + ", ".join(extra[:5]))
        raise ValueError(f"Checkpoint {manager.directory}/{step} holds a different model or optimizer than the config "
                         f"({'; '.join(parts)}); use another workdir or the matching config.")


def restore(manager: ocp.CheckpointManager, step: int, abstract_state: Any) -> tuple[Any, str | None]:
    """The state at `step` laid out as `abstract_state` (ShapeDtypeStructs with shardings) and this host's
    data iterator JSON (None if the checkpoint was written by another number of hosts)."""
    check_compatible(manager, step, abstract_state)
    out = manager.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract_state),
                                                        data=ocp.args.JsonRestore()))
    data = out["data"]
    local = None
    if data.get("process_count") == jax.process_count():
        local = data["states"].get(str(jax.process_index()))
    return out["state"], local


def restore_params(directory: str, abstract_params: Any, field: str = "init.checkpoint") -> Any:
    """Params only, from the latest step of another run's checkpoint directory (a previous training stage);
    `field` is the setting errors name."""
    if not epath.Path(directory).exists():
        raise ValueError(f"{field}={directory!r} holds no complete checkpoint (the folder does not exist).")
    manager = ocp.CheckpointManager(_absolute(directory), options=ocp.CheckpointManagerOptions(create=False),
                                    item_handlers={"state": ocp.PyTreeCheckpointHandler()})
    step = manager.latest_step()
    if step is None:
        raise ValueError(f"{field}={directory!r} holds no complete checkpoint.")
    meta = manager.item_metadata(step)["state"]
    meta = getattr(meta, "tree", meta)
    saved = _describe(meta.get("params", {}) if isinstance(meta, dict) else {})
    wanted = _describe(abstract_params)
    bad = sorted(k for k in wanted if k not in saved or saved[k] != wanted[k])
    if bad:
        raise ValueError(f"{field}={directory!r} does not hold this model's parameters "
                         f"(missing or different shape: {', '.join(bad[:5])}).")
    restore_args = ocp.args.PyTreeRestore(
        item={"params": abstract_params},
        restore_args={"params": ocp.checkpoint_utils.construct_restore_args(abstract_params)},
        partial_restore=True,
    )
    try:
        out = manager.restore(step, args=ocp.args.Composite(state=restore_args))
    finally:
        manager.close()
    return out["state"]["params"]


def load_params(model: Any, model_cfg: Any, directory: str | None, seed: int = 0,
                field: str = "--checkpoint") -> Any:
    """A model's parameters from a checkpoint directory (`directory` or `directory/checkpoints`, e.g. a trainer
    workdir), or a random initialisation from `seed` when `directory` is empty."""
    example = example_batch(input_spec(model_cfg), 1, 8)
    init = lambda rng: nn.unbox(model.init(rng, **example)["params"])  # noqa: E731
    if not directory:
        return jax.jit(init)(jax.random.PRNGKey(seed))
    if os.path.isdir(os.path.join(directory, "checkpoints")):
        directory = os.path.join(directory, "checkpoints")
    return restore_params(directory, jax.eval_shape(init, jax.random.PRNGKey(0)), field)
