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
from mm1_jax.models.vit import interpolate_pos_embed


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


def _path_key(path: tuple) -> str:
    """'params/decoder/...' for a pytree key path."""
    return "/".join(str(getattr(k, "key", getattr(k, "name", getattr(k, "idx", k)))) for k in path)


def _describe(tree: Any) -> dict[str, tuple]:
    """{'params/decoder/...': shape} for every leaf."""
    return {_path_key(path): tuple(leaf.shape) for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]}


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


POSITION_TABLES = ("pos_embed", "pos_emb")  # the ViT's learned table, the C-Abstractor's (sized by the encoder grid)


def _side(n: int) -> int | None:
    """s when n = s*s (s >= 1), else None."""
    s = int(round(max(n, 0) ** 0.5))
    return s if s >= 1 and s * s == n else None


def _position_resize(key: str, saved: tuple, wanted: tuple, keys: set[str]) -> tuple[int, int, bool] | None:
    """(checkpoint side, model side, class-token row) when `key` is a square position table ([N(+1), C]) whose only
    difference is the grid; None otherwise. A ViT table has a class-token row when its module has a `class_token`."""
    parent, _, leaf = key.rpartition("/")
    if leaf not in POSITION_TABLES or len(saved) != 2 or len(wanted) != 2 or saved[1] != wanted[1]:
        return None
    class_row = leaf == "pos_embed" and f"{parent}/class_token" in keys
    old, new = _side(saved[0] - class_row), _side(wanted[0] - class_row)
    return None if old is None or new is None else (old, new, class_row)


def _place(value: np.ndarray, like: Any) -> Any:
    """A host array laid out as the abstract leaf `like` (its sharding when it has one; works across hosts)."""
    value = np.asarray(value, like.dtype)
    sharding = getattr(like, "sharding", None)
    if sharding is None:
        return jax.numpy.asarray(value)
    return jax.make_array_from_callback(value.shape, sharding, lambda index: value[index])


def restore_params(directory: str, abstract_params: Any, field: str = "init.checkpoint", step: int = -1,
                   step_field: str = "init.checkpoint_step") -> Any:
    """Params only, from another run's checkpoint directory (a previous training stage): its latest step, or `step`
    when it is not -1. `field` / `step_field` are the settings errors name.

    Shapes must match the model's except for position tables (`POSITION_TABLES`) whose grid changed: a stage that
    raises the encoder's resolution gets them resized by torch's bicubic kernel (`vit.interpolate_pos_embed`, the
    ViT's class-token row kept), and one line says which. Any other difference is refused naming the parameters.
    """
    if not epath.Path(directory).exists():
        raise ValueError(f"{field}={directory!r} holds no complete checkpoint (the folder does not exist).")
    manager = ocp.CheckpointManager(_absolute(directory), options=ocp.CheckpointManagerOptions(create=False),
                                    item_handlers={"state": ocp.PyTreeCheckpointHandler(),
                                                   "data": ocp.JsonCheckpointHandler()})  # named, so orbax does not warn it is left
    try:
        steps = sorted(int(s) for s in manager.all_steps())
        if not steps:
            raise ValueError(f"{field}={directory!r} holds no complete checkpoint.")
        if step is None or int(step) == -1:
            step = steps[-1]
        elif int(step) not in steps:
            raise ValueError(f"{step_field}={step} is not a step of {field}={directory!r}; its steps are "
                             f"{', '.join(map(str, steps))}.")
        step = int(step)
        meta = manager.item_metadata(step)["state"]
        meta = getattr(meta, "tree", meta)
        saved = _describe(meta.get("params", {}) if isinstance(meta, dict) else {})
        wanted = _describe(abstract_params)
        resize = {k: _position_resize(k, saved[k], wanted[k], set(wanted))
                  for k in wanted if k in saved and saved[k] != wanted[k]}
        bad = sorted(k for k in wanted if k not in saved or (saved[k] != wanted[k] and resize[k] is None))
        if bad:
            shown = [k if k not in saved else f"{k} (checkpoint {list(saved[k])}, model {list(wanted[k])})"
                     for k in bad[:5]]
            raise ValueError(f"{field}={directory!r} does not hold this model's parameters "
                             f"(missing or different shape: {', '.join(shown)}"
                             f"{f' and {len(bad) - 5} more' if len(bad) > 5 else ''}).")
        resize = {k: v for k, v in resize.items() if v is not None}

        def item(path, leaf):  # the resized tables are read at the checkpoint's shape, as host arrays
            key = _path_key(path)
            return jax.ShapeDtypeStruct(saved[key], leaf.dtype) if key in resize else leaf

        def args(path, leaf, arg):
            return ocp.RestoreArgs(restore_type=np.ndarray, dtype=leaf.dtype) if _path_key(path) in resize else arg

        read_as = jax.tree_util.tree_map_with_path(item, abstract_params)
        restore_args = jax.tree_util.tree_map_with_path(
            args, abstract_params, ocp.checkpoint_utils.construct_restore_args(abstract_params))
        out = manager.restore(step, args=ocp.args.Composite(state=ocp.args.PyTreeRestore(
            item={"params": read_as}, restore_args={"params": restore_args}, partial_restore=True)))
    finally:
        manager.close()
    params = out["state"]["params"]
    if not resize:
        return params

    def resized(path, value, like):
        key = _path_key(path)
        if key not in resize:
            return value
        old, new, class_row = resize[key]
        return _place(interpolate_pos_embed(np.asarray(value, np.float32), old, new, class_row), like)

    params = jax.tree_util.tree_map_with_path(resized, params, abstract_params)
    if jax.process_index() == 0:
        print(f"{field}={directory!r} step {step}: interpolated the position tables (bicubic) "
              + ", ".join(f"{k} {o}x{o} -> {n}x{n}{' (class-token row kept)' if c else ''}"
                          for k, (o, n, c) in sorted(resize.items())) + ".")
    return params


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
