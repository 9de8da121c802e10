"""The conversion pipeline: HF directory -> checked, streamed params -> orbax directory, and the way back.

  read_hf(src, dtype)            -> Converted (family, config, params): used by the command line and by
                                    `mm1_jax.pretrained.load` on a Hugging Face directory
  write_converted(converted, dst) : OUT/config.json + OUT/params (orbax), written into OUT.tmp-XXXX then renamed
  read_converted(src)            -> Converted, params as stored
  write_hf(converted, dst)       : model.safetensors + config.json that transformers' from_pretrained loads

Before any tensor is read, the checkpoint's names and shapes (from the file headers) are compared with the ones the
family's `params_to_hf` produces for shape-only parameters (numpy arrays of an empty structured dtype: any shape, zero
bytes), so a checkpoint that does not fit the config gets one error listing every missing, unexpected and mis-shaped
tensor. Tensors are then read one at a time, cast to the target dtype as they are read.
"""
from __future__ import annotations

import collections
import dataclasses
import json
import os
import shutil
import tempfile
from types import ModuleType
from typing import Any, Iterator, Mapping

import jax
import ml_collections
import ml_dtypes
import numpy as np

from mm1_jax import convert
from mm1_jax.convert.tensor_files import CheckpointError, TensorFiles, open_checkpoint, write_safetensors

DTYPES = {"float32": np.dtype(np.float32), "bfloat16": np.dtype(ml_dtypes.bfloat16)}
SHAPE_ONLY = np.dtype([])  # itemsize 0: transposes, reshapes and concatenations cost nothing
ALWAYS_IGNORED = ("position_ids", "rotary_emb.inv_freq", "num_batches_tracked")
FORMAT_VERSION = 1


def _np_dtype(name: str) -> np.dtype:
    return DTYPES[name] if name in DTYPES else np.dtype(name)


@dataclasses.dataclass
class Converted:
    """A family's config and params, with what the way back needs about the source."""

    family: str
    config: ml_collections.ConfigDict
    params: dict
    source_hf_config: dict
    dtype: str = "float32"
    source_dtype: str = "float32"
    source_dtype_exceptions: dict = dataclasses.field(default_factory=dict)  # HF name -> dtype, where not source_dtype

    @property
    def module(self) -> ModuleType:
        return convert.family(self.family)


def read_hf_config(src: str) -> dict:
    path = os.path.join(src, "config.json")
    if not os.path.exists(path):
        raise CheckpointError(f"{src} has no config.json.")
    try:
        with open(path) as f:
            config = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{path} is not valid JSON ({e}).") from None
    if not isinstance(config, dict):
        raise CheckpointError(f"{path} holds a JSON {type(config).__name__}, not an object of config fields.")
    return config


# ----------------------------------------------------------------------------------------------------------------
# Checking names and shapes
# ----------------------------------------------------------------------------------------------------------------
def expected_tensors(family: ModuleType, cfg: ml_collections.ConfigDict) -> dict[str, tuple[int, ...]] | None:
    """{HF name: shape} the family's params_to_hf gives for this config; None when the family cannot say."""
    if not hasattr(family, "param_shapes"):
        return None
    shapes = family.param_shapes(cfg)
    shape_only = jax.tree.map(lambda s: np.zeros(s.shape, SHAPE_ONLY), shapes)
    try:
        out = family.params_to_hf(shape_only, cfg)
    except (TypeError, ValueError):  # a params_to_hf doing arithmetic cannot run on shape-only arrays
        return None
    return {name: tuple(np.shape(v)) for name, v in out.items()}


def find_prefix(names: list[str], expected: Mapping[str, Any]) -> str:
    """The prefix under which most expected names are found ('' for a plain checkpoint, 'vision_model.' ...)."""
    votes: collections.Counter = collections.Counter()
    present = set(names)
    for key in expected:
        if key in present:
            votes[""] += 1
        for name in names:
            if name.endswith("." + key):
                votes[name[: -len(key)]] += 1
    return votes.most_common(1)[0][0] if votes else ""


def checkpoint_names(family: ModuleType, tensors: Any) -> dict[str, str]:
    """{the family's name for a tensor: its name in the checkpoint}: the family's `checkpoint_name` (one model saved
    under several naming layouts, e.g. LLaVA by transformers 4 and 5) or the names as they are."""
    rename = getattr(family, "checkpoint_name", None)
    return {rename(name) if rename else name: name for name in tensors}


def _is_ignored(family: ModuleType, name: str, cfg: Any) -> bool:
    if any(name.endswith(suffix) for suffix in ALWAYS_IGNORED):
        return True
    return bool(getattr(family, "ignored", lambda *_: False)(name, cfg))


def _listing(items: list[str], limit: int = 12) -> str:
    return ", ".join(items[:limit]) + (f" and {len(items) - limit} more" if len(items) > limit else "")


def check_tensors(family_name: str, family: ModuleType, cfg: Any, tensors: TensorFiles, where: str) -> str:
    """Compare the checkpoint with what the config needs; raise one CheckpointError listing all differences.

    Returns the prefix the family's tensors live under.
    """
    expected = expected_tensors(family, cfg)
    if expected is None:
        return ""
    names = checkpoint_names(family, tensors)
    prefix = find_prefix(list(names), expected)
    local = {name[len(prefix):]: original for name, original in names.items() if name.startswith(prefix)}
    missing = [f"{k} {list(v)}" for k, v in expected.items() if k not in local]
    misshaped = [f"{k} {list(tensors.shape(local[k]))} (expected {list(v)})" for k, v in expected.items()
                 if k in local and tuple(tensors.shape(local[k])) != tuple(v)]
    unexpected = [f"{k} {list(tensors.shape(n))}" for k, n in local.items()
                  if k not in expected and not _is_ignored(family, k, cfg)]
    if missing or misshaped or unexpected:
        parts = [f"{label}: {_listing(items)}" for label, items in
                 (("missing", missing), ("mis-shaped", misshaped), ("unexpected", unexpected)) if items]
        raise CheckpointError(f"{where} does not fit the {family_name} config from its config.json "
                              f"(prefix {prefix!r}); " + "; ".join(parts) + ".")
    return prefix


class _StreamingView(Mapping):
    """The family's view of the checkpoint: prefix removed, tensors cast on read, reads counted for progress."""

    def __init__(self, tensors: TensorFiles, prefix: str, dtype: np.dtype, progress: Any,
                 names: Mapping[str, str] | None = None):
        self._tensors, self._dtype, self._progress = tensors, dtype, progress
        names = {name: name for name in tensors} if names is None else names
        self._names = {name[len(prefix):]: original for name, original in names.items() if name.startswith(prefix)}
        self.source_dtypes: dict[str, str] = {}

    def __getitem__(self, name: str) -> np.ndarray:
        full = self._names[name]
        array = self._tensors[full]
        self.source_dtypes[name] = np.dtype(array.dtype).name
        if self._progress is not None:
            self._progress.update(array.nbytes)
        return array.astype(self._dtype, copy=False) if array.dtype.kind == "f" else array

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)


def _flatten(tree: Mapping, prefix: str = "") -> dict[str, Any]:
    out = {}
    for k, v in tree.items():
        out.update(_flatten(v, f"{prefix}{k}/") if isinstance(v, Mapping) else {prefix + k: v})
    return out


def check_param_shapes(family_name: str, family: ModuleType, cfg: Any, params: Mapping) -> None:
    """Our side of the check: the converted tree has exactly the module's parameter names and shapes."""
    if not hasattr(family, "param_shapes"):
        return
    want = {k: tuple(v.shape) for k, v in _flatten(family.param_shapes(cfg)).items()}
    got = {k: tuple(np.shape(v)) for k, v in _flatten(params).items()}
    problems = ([f"missing {k} {list(v)}" for k, v in want.items() if k not in got]
                + [f"unexpected {k} {list(v)}" for k, v in got.items() if k not in want]
                + [f"{k} {list(got[k])} (expected {list(v)})" for k, v in want.items() if k in got and got[k] != v])
    if problems:
        raise ValueError(f"the {family_name} conversion produced parameters that do not fit the module: "
                         f"{_listing(problems)}.")


# ----------------------------------------------------------------------------------------------------------------
# HF -> params
# ----------------------------------------------------------------------------------------------------------------
def read_hf(src: str, dtype: str = "float32", progress: bool = False) -> Converted:
    """Convert the Hugging Face directory `src` in memory (tensor by tensor) to our params in `dtype`."""
    if dtype not in DTYPES:
        raise ValueError(f"dtype={dtype!r} is not one of {', '.join(DTYPES)}.")
    hf_config = read_hf_config(src)
    config_path = os.path.join(src, "config.json")
    family = convert.family_for(hf_config, config_path)
    family_name = family.__name__.rsplit(".", 1)[-1]
    try:
        cfg = family.config_from_hf(hf_config)
    except KeyError as e:
        raise CheckpointError(f"{config_path} lacks the field {e.args[0]!r} that the {family_name} family "
                              "needs.") from None
    except ValueError as e:  # the family's sentence names the field; the path names the file
        message = str(e)
        message = message[len("config.json"):] if message.startswith("config.json") else f": {message}"
        raise CheckpointError(config_path + message) from None
    if hasattr(family, "update_config_from_dir"):  # fields kept beside config.json (Owl3: the <|image|> token id)
        cfg = family.update_config_from_dir(cfg, src)
    tensors = open_checkpoint(src)
    prefix = check_tensors(family_name, family, cfg, tensors, tensors.description)
    names = checkpoint_names(family, tensors)
    bar = None
    if progress:
        from tqdm import tqdm

        total = sum(int(np.prod(tensors.shape(n))) * tensors.dtype(n).itemsize for k, n in names.items()
                    if k.startswith(prefix))
        bar = tqdm(total=total, unit="B", unit_scale=True, desc=f"converting {family_name}")
    view = _StreamingView(tensors, prefix, DTYPES[dtype], bar, names)
    try:
        params = family.hf_to_params(view, cfg)
    except KeyError as e:
        raise CheckpointError(f"{tensors.description} has no tensor {e.args[0]!r}, which the {family_name} "
                              "config needs.") from None
    finally:
        if bar is not None:
            bar.close()
    params = jax.tree.map(lambda x: np.asarray(x).astype(DTYPES[dtype], copy=False)
                          if np.asarray(x).dtype.kind == "f" else np.asarray(x), params)
    check_param_shapes(family_name, family, cfg, params)
    counts = collections.Counter(view.source_dtypes.values())
    source_dtype = counts.most_common(1)[0][0] if counts else "float32"
    exceptions = {k: v for k, v in view.source_dtypes.items() if v != source_dtype}
    return Converted(family_name, cfg, params, hf_config, dtype, source_dtype, exceptions)


# ----------------------------------------------------------------------------------------------------------------
# Orbax directories
# ----------------------------------------------------------------------------------------------------------------
class _AtomicDirectory:
    """Write into DST.tmp-XXXX and rename it to DST on success; remove it on failure. DST must not exist."""

    def __init__(self, dst: str, overwrite: bool = False):
        self.dst, self.overwrite = os.path.abspath(dst.rstrip("/")), overwrite
        if os.path.exists(self.dst) and not overwrite:
            raise FileExistsError(f"{dst} already exists; choose another destination or pass --overwrite.")

    def __enter__(self) -> str:
        parent = os.path.dirname(self.dst)
        os.makedirs(parent, exist_ok=True)
        self.tmp = tempfile.mkdtemp(prefix=os.path.basename(self.dst) + ".tmp-", dir=parent)
        return self.tmp

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)
            return
        if os.path.exists(self.dst):
            old = self.tmp + ".old"
            os.rename(self.dst, old)
            os.rename(self.tmp, self.dst)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(self.tmp, self.dst)


def _to_device_in_place(tree: dict) -> None:
    """Replace numpy leaves by jax arrays one at a time, dropping each numpy array as its copy is made.

    orbax copies numpy leaves while saving (a second full copy of the model); it writes jax arrays as they are.
    """
    for key, value in tree.items():
        if isinstance(value, dict):
            _to_device_in_place(value)
        elif isinstance(value, np.ndarray):
            tree[key] = jax.device_put(np.ascontiguousarray(value))
            del value


def write_converted(converted: Converted, dst: str, overwrite: bool = False) -> None:
    """OUT/config.json and OUT/params (orbax), all or nothing."""
    import orbax.checkpoint as ocp

    meta = dict(format_version=FORMAT_VERSION, family=converted.family, kind=converted.module.KIND,
                source_model_type=converted.source_hf_config.get("model_type"), dtype=converted.dtype,
                source_dtype=converted.source_dtype, source_dtype_exceptions=converted.source_dtype_exceptions,
                config=converted.config.to_dict(), source_hf_config=converted.source_hf_config)
    with _AtomicDirectory(dst, overwrite) as tmp:
        _to_device_in_place(converted.params)
        checkpointer = ocp.StandardCheckpointer()
        checkpointer.save(os.path.join(tmp, "params"), converted.params)
        checkpointer.wait_until_finished()
        checkpointer.close()
        with open(os.path.join(tmp, "config.json"), "w") as f:
            json.dump(meta, f, indent=2, sort_keys=True)


def is_converted(path: str) -> bool:
    """A converted directory: config.json with a 'family' field and a params/ checkpoint."""
    config = os.path.join(path, "config.json")
    if not (os.path.isdir(os.path.join(path, "params")) and os.path.exists(config)):
        return False
    return "family" in read_hf_config(path)  # an unreadable config.json: one sentence naming it


def read_converted(src: str) -> Converted:
    """A converted directory's config and params (numpy, in the stored dtype)."""
    import orbax.checkpoint as ocp

    from mm1_jax.runtime.checkpoint import drop_late_read_errors  # pylint: disable=import-outside-toplevel

    meta = read_hf_config(src)
    missing = [k for k in ("family", "config", "source_hf_config", "dtype", "source_dtype") if k not in meta]
    if missing:
        raise CheckpointError(f"{os.path.join(src, 'config.json')} is not a converted directory's config (it lacks "
                              f"{', '.join(missing)}).")
    params_dir = os.path.join(os.path.abspath(src), "params")
    checkpointer = ocp.StandardCheckpointer()
    drop_late_read_errors()  # a damaged file: no 'Event loop is closed' tracebacks around the one sentence
    try:
        params = checkpointer.restore(params_dir)
    except Exception as e:  # noqa: BLE001  orbax / tensorstore raise many kinds for a damaged checkpoint
        raise CheckpointError(f"{params_dir} cannot be restored by orbax: {e}") from None
    finally:  # closed at once: left to the garbage collector, its threads print a traceback after the error
        checkpointer.close()
    params = jax.tree.map(np.asarray, params)
    return Converted(meta["family"], ml_collections.ConfigDict(meta["config"]), params, meta["source_hf_config"],
                     meta["dtype"], meta["source_dtype"], meta.get("source_dtype_exceptions", {}))


# ----------------------------------------------------------------------------------------------------------------
# params -> HF
# ----------------------------------------------------------------------------------------------------------------
def write_hf(converted: Converted, dst: str, overwrite: bool = False) -> None:
    """model.safetensors (tensors in their source dtypes) + config.json, all or nothing."""
    family = converted.module
    tensors = family.params_to_hf(converted.params, converted.config)
    exceptions = converted.source_dtype_exceptions

    def cast(name: str, array: np.ndarray) -> np.ndarray:
        array = np.asarray(array)
        if array.dtype.kind != "f":
            return array
        return array.astype(_np_dtype(exceptions.get(name, converted.source_dtype)), copy=False)

    hf_config = family.hf_config_to(converted.config)
    source = converted.source_hf_config
    if source.get("model_type") == hf_config["model_type"]:  # the source's other fields stay, nested ones too
        hf_config = {**source, **{k: {**source[k], **v} if isinstance(v, dict) and isinstance(source.get(k), dict)
                                  and source[k].get("model_type") == v.get("model_type") else v
                                  for k, v in hf_config.items()}}
    hf_config["dtype"] = converted.source_dtype
    with _AtomicDirectory(dst, overwrite) as tmp:
        write_safetensors(os.path.join(tmp, "model.safetensors"), ((k, cast(k, v)) for k, v in tensors.items()))
        with open(os.path.join(tmp, "config.json"), "w") as f:
            json.dump(hf_config, f, indent=2, sort_keys=True)
