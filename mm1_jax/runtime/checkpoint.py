"""Checkpoints: an orbax CheckpointManager over {state (params, opt_state, step), data (every host's iterator)}.

Saves are asynchronous (the step loop goes on while the arrays are written) and atomic: orbax writes a step into a
temporary folder and renames it when complete, so a kill at any moment leaves the last complete step readable.
The data iterator state of every host is gathered into one JSON document, so a restart resumes each host's stream.

A step whose files were damaged after it was written (truncated or removed by a full disk or a storage hiccup) is
refused with `DamagedCheckpoint`, which names the step and the file; `move_aside` puts such a step into
`<directory>/damaged/`, out of the manager's sight, without deleting anything.
"""
from __future__ import annotations

import json
import os
import re
import sys
from typing import Any

import flax.linen as nn
import jax
from etils import epath
import numpy as np
import orbax.checkpoint as ocp
from jax.experimental import multihost_utils

from mm1_jax.models import vit
from mm1_jax.models.inputs import example_batch, input_spec


def _absolute(directory: str) -> str:
    """Local paths made absolute (orbax needs that); bucket URLs (gs://...) kept as they are."""
    return directory if "://" in directory else os.path.abspath(directory)


DAMAGED = "damaged"  # the sub-folder damaged steps are moved into (not a step name, so orbax ignores it)


class DamagedCheckpoint(ValueError):
    """A checkpoint step that cannot be read completely: `file` (relative to the step's folder) could not be read."""

    def __init__(self, directory: str, step: int, file: str, reason: str):
        self.directory, self.step, self.file, self.reason = str(directory), int(step), file, reason
        super().__init__(f"checkpoint step {step} in {directory} is damaged: {file} cannot be read ({reason})")


def _step_dir(directory: str, step: int) -> epath.Path:
    return epath.Path(_absolute(str(directory))) / str(step)


def check_step_files(directory: str, step: int, items: tuple[str, ...] = ("state", "data")) -> None:
    """Raise DamagedCheckpoint when a small file every restore reads is missing or undecodable: the state's
    _METADATA (and its OCDBT manifest), the data item's JSON. Cheap; the array data are checked by reading them."""
    root = _step_dir(directory, step)
    if not root.exists():
        raise DamagedCheckpoint(directory, step, f"{step}/", "the folder is gone")
    try:
        meta = json.loads((root / "state" / "_METADATA").read_text())
    except FileNotFoundError:
        raise DamagedCheckpoint(directory, step, "state/_METADATA", "the file is missing") from None
    except (OSError, ValueError) as e:
        raise DamagedCheckpoint(directory, step, "state/_METADATA", f"not valid JSON: {e}") from None
    if not isinstance(meta, dict) or not meta.get("tree_metadata"):
        raise DamagedCheckpoint(directory, step, "state/_METADATA", "it lists no arrays")
    if meta.get("use_ocdbt") and not (root / "state" / "manifest.ocdbt").exists():
        raise DamagedCheckpoint(directory, step, "state/manifest.ocdbt", "the file is missing")
    if "data" in items:
        try:
            json.loads((root / "data" / "metadata").read_text())
        except FileNotFoundError:
            raise DamagedCheckpoint(directory, step, "data/metadata", "the file is missing") from None
        except (OSError, ValueError) as e:
            raise DamagedCheckpoint(directory, step, "data/metadata", f"not valid JSON: {e}") from None


_STATUS = re.compile(r"\b(OUT_OF_RANGE|NOT_FOUND|DATA_LOSS|FAILED_PRECONDITION|INVALID_ARGUMENT|UNKNOWN|INTERNAL|"
                     r"UNAVAILABLE|PERMISSION_DENIED|ABORTED|RESOURCE_EXHAUSTED): ")


def _read_failure(error: BaseException, directory: str, step: int) -> tuple[str, str] | None:
    """(the file under the step's folder that failed, a short reason) when `error` or an error it came from is a
    TensorStore or file-system read failure naming a file of that step; None for anything else (a real bug)."""
    root = str(_step_dir(directory, step)).rstrip("/")
    plain = root.split("://", 1)[-1]  # tensorstore may name a bucket object without the scheme
    needles = {root + "/", plain + "/", plain.split("/", 1)[-1] + "/"}
    seen, e = set(), error
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        text = str(e)
        if isinstance(e, OSError) and e.filename and any(n in str(e.filename) + "/" for n in needles):
            return _relative(str(e.filename), needles), e.strerror or type(e).__name__
        status = _STATUS.search(text)
        if status and any(n in text for n in needles):
            return _failed_file(text, needles), _reason(text[status.start():])
        e = e.__cause__ or e.__context__
    return None


def _relative(path: str, needles: set[str]) -> str:
    for n in sorted(needles, key=len, reverse=True):
        if n in path:
            return path.split(n, 1)[1]
    return path


def _failed_file(text: str, needles: set[str]) -> str:
    """The most precise name of what failed in a TensorStore message: a data file of the step, else the array key
    in the step's OCDBT database ('<key> in state/')."""
    files = [f for f in re.findall(r'file "([^"]+)"', text) if any(n in f for n in needles)]
    data_files = [f for f in files if not f.endswith("/")]
    if data_files:
        return _relative(data_files[-1], needles)
    key = re.search(r'Error (?:reading|writing) "([^"]+)" in OCDBT database at [^"]*"([^"]+)"', text)
    if key:
        return f"{key.group(1)} in {_relative(key.group(2), needles) or './'}"
    return _relative(files[-1], needles) if files else "an array file"


def _reason(text: str) -> str:
    """'OUT_OF_RANGE: Requested byte range [..) is not valid for value of size 100' from a TensorStore message (its
    last clause, file names cut: the sentence names the file already); 'NOT_FOUND: the file is missing'."""
    text = re.split(r"\s*\[(?:source locations|tensorstore_spec)=", text.splitlines()[0])[0].rstrip()
    code, _, rest = text.partition(": ")
    if code == "NOT_FOUND":
        return "NOT_FOUND: the file is missing"
    last = re.sub(r' (?:of|at|in) (?:local file|OCDBT database at local file) "[^"]*"', "",
                  re.split(r'(?<=["\)]): ', rest)[-1]).strip()
    return f"{code}: {last}" if last else code


def _checked(directory: str, step: int, read):
    """`read()` with a read failure of the step's files turned into DamagedCheckpoint (anything else propagates)."""
    drop_late_read_errors()  # before the read: a failed one's late deliveries may come before its exception does
    try:
        return read()
    except Exception as e:  # sorted out by _read_failure: only a failure naming a file of the step is damage
        failure = _read_failure(e, directory, step)
        if failure is None:
            raise
        raise DamagedCheckpoint(directory, step, *failure) from e


def drop_late_read_errors() -> None:
    """After a failed restore, TensorStore still delivers the abandoned reads' results to orbax's event loop, which
    is closed by then: each delivery prints 'RuntimeError: Event loop is closed' with a traceback (through
    sys.unraisablehook, from a native thread), around the one sentence the damage gets. Drop exactly those (nothing
    else reaches that hook with that error: it is what a callback into a closed asyncio loop raises)."""
    previous = sys.unraisablehook
    if getattr(previous, "drops_late_reads", False):
        return

    def hook(unraisable):
        if not (unraisable.exc_type is RuntimeError and str(unraisable.exc_value) == "Event loop is closed"):
            previous(unraisable)

    hook.drops_late_reads = True
    sys.unraisablehook = hook


def agree_on_damage(error: DamagedCheckpoint | None, directory: str, step: int) -> DamagedCheckpoint | None:
    """Multi-host: the first host's damage report, on every host (each host reads only its own shards, so one may
    fail where another succeeds); the local one on a single host."""
    if jax.process_count() == 1:
        return error
    reports = gather_data_states(json.dumps([error.file, error.reason] if error else None))
    for index in sorted(reports, key=int):
        report = json.loads(reports[index])
        if report:
            return error or DamagedCheckpoint(directory, step, report[0], f"{report[1]}, on host {index}")
    return None


def move_aside(directory: str, step: int) -> str:
    """Rename the step's folder to <directory>/damaged/<step> (<step>-2, -3... when taken); returns the new path.
    Process 0 renames, every host waits for it. Nothing is deleted."""
    target_dir = epath.Path(_absolute(str(directory))) / DAMAGED
    target, n = target_dir / str(step), 1
    while target.exists():
        n += 1
        target = target_dir / f"{step}-{n}"
    if jax.process_count() > 1:  # every host has named the target before it exists
        multihost_utils.sync_global_devices(f"mm1_jax_naming_damaged_step_{step}")
    if jax.process_index() == 0:
        target_dir.mkdir(parents=True, exist_ok=True)
        _step_dir(directory, step).rename(target)
    if jax.process_count() > 1:
        multihost_utils.sync_global_devices(f"mm1_jax_moved_damaged_step_{step}")
    return str(target)


def make_manager(directory: str, *, keep: int, async_save: bool = True, keep_steps: tuple[int, ...] = ()
                 ) -> ocp.CheckpointManager:
    """A manager keeping the last `keep` steps under `directory` (created if absent), and `keep_steps` for good."""
    policies = ocp.checkpoint_managers
    kept = dict(max_to_keep=keep) if not keep_steps else dict(preservation_policy=policies.AnyPreservationPolicy(
        [policies.LatestN(keep), policies.CustomSteps(list(keep_steps))]))
    options = ocp.CheckpointManagerOptions(
        create=True, enable_async_checkpointing=async_save,
        save_decision_policy=policies.FixedIntervalPolicy(1),  # the trainer decides when to save
        **kept,
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
    data iterator JSON (None if the checkpoint was written by another number of hosts).

    DamagedCheckpoint (naming the file) when a file of the step cannot be read; ValueError for another model."""
    directory = str(manager.directory)
    check_step_files(directory, step)
    _checked(directory, step, lambda: manager.item_metadata(step))
    check_compatible(manager, step, abstract_state)
    out = _checked(directory, step, lambda: manager.restore(step, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(abstract_state), data=ocp.args.JsonRestore())))
    data = out["data"]
    local = None
    if data.get("process_count") == jax.process_count():
        local = data["states"].get(str(jax.process_index()))
    return out["state"], local


def _place(value: np.ndarray, like: Any) -> Any:
    """A host array laid out as the abstract leaf `like` (its sharding when it has one; works across hosts)."""
    value = np.asarray(value, like.dtype)
    sharding = getattr(like, "sharding", None)
    if sharding is None:
        return jax.numpy.asarray(value)
    return jax.make_array_from_callback(value.shape, sharding, lambda index: value[index])


def _damaged_init(e: DamagedCheckpoint, field: str, step_field: str, directory: str, steps: list) -> ValueError:
    """The one sentence a later stage stops with when the checkpoint it starts from is damaged."""
    older = [s for s in steps if s < e.step]
    hint = (f"start from an older step with {step_field} (its steps are {', '.join(map(str, steps))})" if older
            else "it has no older step to start from")
    return ValueError(f"{field}={directory!r} step {e.step} is damaged: {e.file} cannot be read ({e.reason}); {hint}.")


def restore_params(directory: str, abstract_params: Any, field: str = "init.checkpoint", step: int = -1,
                   step_field: str = "init.checkpoint_step") -> Any:
    """Params only, from another run's checkpoint directory (a previous training stage): its latest step, or `step`
    when it is not -1. `field` / `step_field` are the settings errors name.

    Shapes must match the model's except for the parameters the model declares resolution-dependent
    (`vit.RESOLUTION_PARAMS`) whose grid changed: a stage that raises the encoder's resolution gets them resized by
    torch's bicubic kernel (`vit.interpolate_pos_embed`, the ViT's class-token row kept), and one line says which.
    Any other difference is refused naming the parameters.
    """
    if not epath.Path(directory).exists():
        raise ValueError(f"{field}={directory!r} holds no complete checkpoint (the folder does not exist).")
    manager = ocp.CheckpointManager(_absolute(directory), options=ocp.CheckpointManagerOptions(create=False),
                                    item_handlers={"state": ocp.PyTreeCheckpointHandler(),
                                                   "data": ocp.JsonCheckpointHandler()})  # named: no orbax warning
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
        try:
            check_step_files(directory, step, items=("state",))
            meta = _checked(directory, step, lambda: manager.item_metadata(step))["state"]
        except DamagedCheckpoint as e:
            raise _damaged_init(e, field, step_field, directory, steps) from None
        meta = getattr(meta, "tree", meta)
        saved = _describe(meta.get("params", {}) if isinstance(meta, dict) else {})
        wanted = _describe(abstract_params)
        resize = {k: vit.resolution_resize(k, saved[k], wanted[k], wanted)
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
        try:
            out = _checked(directory, step, lambda: manager.restore(step, args=ocp.args.Composite(
                state=ocp.args.PyTreeRestore(item={"params": read_as}, restore_args={"params": restore_args},
                                             partial_restore=True))))
        except DamagedCheckpoint as e:
            raise _damaged_init(e, field, step_field, directory, steps) from None
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
        return _place(vit.interpolate_pos_embed(np.asarray(value, np.float32), old, new, class_row), like)

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
