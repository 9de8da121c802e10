"""The device mesh and the one table that maps logical axis names to mesh axes.

Mesh axes: data (pure data parallel), fsdp (data parallel + parameters sharded), tensor (model parallel),
expert (MoE experts). A mesh is configuration: `config.mesh = {'data': 1, 'fsdp': -1, 'tensor': 1, 'expert': 1}`
(-1 fills the remaining devices).
"""
from __future__ import annotations

import math
import numbers
from typing import Any, Mapping, Sequence

import flax.linen as nn
import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from mm1_jax.config_keys import did_you_mean

MESH_AXES = ("data", "fsdp", "tensor", "expert")
BATCH_AXES = ("data", "fsdp", "expert")  # the data-parallel axes: a batch's rows are split over all of them

# logical name -> mesh axis (or axes, or None = replicated). Activations shard their batch over every
# data-parallel axis; parameters shard their `embed`-like axis over fsdp and their wide axis over tensor.
# A config overrides single entries with `config.axis_rules = {'embed': None, ...}` (see `axis_rules`).
LOGICAL_AXIS_RULES: tuple[tuple[str, Any], ...] = (
    # activations
    ("act_batch", BATCH_AXES),
    ("act_len", None),
    ("act_embed", None),
    ("act_heads", "tensor"),
    ("act_mlp", "tensor"),
    # decoder parameters
    ("vocab", "tensor"),
    ("embed", "fsdp"),
    ("mlp", "tensor"),
    ("heads", "tensor"),
    ("kv_heads", "tensor"),
    ("head_dim", None),
    ("exp", "expert"),
    ("layers", None),
    # encoder and connector parameters
    ("vit_embed", "fsdp"),
    ("vit_mlp", "tensor"),
    ("vit_heads", "tensor"),
    ("conv_in", None),
    ("conv_out", "tensor"),
)


def check_mesh_spec(spec: Mapping[str, int]) -> None:
    """Refuse, before any device is looked at, an axis that is not a mesh axis, a size that is neither positive
    nor -1, or more than one -1."""
    for axis in sorted(spec):
        if axis not in MESH_AXES:
            raise ValueError(f"mesh has unknown axis {axis!r}{did_you_mean(axis, MESH_AXES)}; the axes are "
                             f"{', '.join(MESH_AXES)}.")
    sizes = {a: spec.get(a, 1) for a in MESH_AXES}
    for a, s in sizes.items():
        if isinstance(s, bool) or not isinstance(s, numbers.Integral) or s == 0 or s < -1:
            raise ValueError(f"mesh.{a}={s!r} must be a positive size or -1.")
    fill = [a for a, s in sizes.items() if s == -1]
    if len(fill) > 1:
        raise ValueError(f"mesh axes {fill} are all -1; at most one axis may fill the remaining devices.")


def mesh_shape(spec: Mapping[str, int], num_devices: int) -> dict[str, int]:
    """Resolve a mesh spec (one axis may be -1) into sizes whose product is `num_devices`."""
    check_mesh_spec(spec)
    sizes = {a: int(spec.get(a, 1)) for a in MESH_AXES}
    fill = [a for a, s in sizes.items() if s == -1]
    known = math.prod(s for s in sizes.values() if s != -1)
    if fill:
        if num_devices % known:
            raise ValueError(f"mesh sizes {sizes} do not divide the {num_devices} devices.")
        sizes[fill[0]] = num_devices // known
    if math.prod(sizes.values()) != num_devices:
        raise ValueError(f"mesh sizes {sizes} multiply to {math.prod(sizes.values())}, not the {num_devices} devices.")
    return sizes


def make_mesh(spec: Mapping[str, int], devices: Sequence[jax.Device] | None = None) -> Mesh:
    """A Mesh with axes (data, fsdp, tensor, expert) over `devices` (default: all)."""
    devices = list(jax.devices() if devices is None else devices)
    sizes = mesh_shape(spec, len(devices))
    shape = tuple(sizes[a] for a in MESH_AXES)
    try:
        grid = jax.experimental.mesh_utils.create_device_mesh(shape, devices)
    except Exception:  # CPU / odd topologies: plain reshape is fine
        grid = np.asarray(devices).reshape(shape)
    return Mesh(grid, MESH_AXES)


def axis_rules(overrides: Mapping[str, Any] | None = None) -> tuple[tuple[str, Any], ...]:
    """The rules table with a config's overrides ({logical name: mesh axis, tuple of axes, or None})."""
    rules = dict(LOGICAL_AXIS_RULES)
    for name, axes in (overrides or {}).items():
        if name not in rules:
            raise ValueError(f"axis_rules.{name} is not a logical axis{did_you_mean(name, rules)}; the names are: "
                             f"{', '.join(rules)}.")
        listed = (axes,) if isinstance(axes, str) else tuple(axes or ())
        unknown = [a for a in listed if a not in MESH_AXES]
        if unknown:
            raise ValueError(f"axis_rules.{name}={axes!r} names {unknown[0]!r}, not a mesh axis "
                             f"({', '.join(MESH_AXES)}).")
        rules[name] = tuple(axes) if isinstance(axes, (list, tuple)) else axes
    return tuple(rules.items())


def param_shardings(abstract_variables: Any, mesh: Mesh, rules=LOGICAL_AXIS_RULES, strict: bool = False) -> Any:
    """NamedShardings for every leaf of boxed (`nn.LogicallyPartitioned`) variables, e.g. from `jax.eval_shape(init)`.

    A mesh axis larger than 1 that does not divide the dimension it should shard is refused with one sentence naming
    the parameter when `strict`; otherwise that dimension is replicated (a small model on a large mesh).
    """
    logical = nn.get_partition_spec(abstract_variables)
    mesh_specs = nn.logical_to_mesh(logical, rules)
    values = nn.unbox(abstract_variables)

    def fit(path, spec: PartitionSpec, logical_spec: PartitionSpec, leaf) -> NamedSharding:
        shape = getattr(leaf, "shape", ())
        dims = []
        for i, axes in enumerate(tuple(spec) + (None,) * (len(shape) - len(spec))):
            names = (axes,) if isinstance(axes, str) else tuple(axes or ())
            size = math.prod(mesh.shape[n] for n in names) if names else 1
            if names and shape[i] % size and strict:
                where = "/".join(str(getattr(k, "key", k)) for k in path)
                raise ValueError(f"parameter {where} {tuple(shape)}: its axis {tuple(logical_spec)[i]!r} (dimension "
                                 f"{shape[i]}) cannot be split over mesh axes {names} of size {size}; change the mesh "
                                 f"or map that axis to None in config.axis_rules.")
            dims.append(axes if names and shape[i] % size == 0 else None)
        return NamedSharding(mesh, PartitionSpec(*dims))

    is_spec = lambda x: isinstance(x, PartitionSpec)  # noqa: E731
    return jax.tree_util.tree_map_with_path(fit, mesh_specs, logical, values, is_leaf=is_spec)


def batch_sharding(mesh: Mesh, ndim: int, micro: bool = False) -> NamedSharding:
    """Leading (batch) dimension over every data-parallel mesh axis, the rest replicated. `micro`: a leading
    micro-batch axis (gradient accumulation) first, unsharded."""
    spec = (None, BATCH_AXES) if micro else (BATCH_AXES,)
    return NamedSharding(mesh, PartitionSpec(*spec, *([None] * (ndim - len(spec)))))


def data_parallel_size(mesh: Mesh) -> int:
    """Devices a batch's rows are split over."""
    return math.prod(mesh.shape[a] for a in BATCH_AXES)


def check_expert_axis(num_experts: int, sizes: Mapping[str, int]) -> None:
    """Refuse an `expert` mesh axis that cannot split the experts evenly."""
    axis = int(sizes.get("expert", 1))
    if num_experts and num_experts % axis:
        raise ValueError(
            f"model.decoder.num_experts={num_experts} is not divisible by the mesh's expert axis of {axis}."
        )


def like_params_shardings(tree: Any, params: Any, mesh: Mesh) -> Any:
    """Shardings for a tree shaped after the params (optimizer state: mu, nu, factored rows...).

    A leaf whose path ends with a parameter's path and whose shape is that parameter's takes its sharding;
    everything else (counts, factored second moments) is replicated.
    """
    def key(path) -> tuple:
        return tuple(str(getattr(k, "key", getattr(k, "name", getattr(k, "idx", k)))) for k in path)

    by_path = {key(p): x for p, x in jax.tree_util.tree_flatten_with_path(params)[0]}
    depth = max((len(k) for k in by_path), default=0)

    def pick(path, leaf):
        k = key(path)
        for n in range(min(depth, len(k)), 0, -1):
            p = by_path.get(k[-n:])
            if p is not None and tuple(p.shape) == tuple(leaf.shape):
                return p.sharding
        return NamedSharding(mesh, PartitionSpec())

    return jax.tree_util.tree_map_with_path(pick, tree)
