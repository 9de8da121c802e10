"""How XLA:TPU reduces an fsdp gradient on each TPU slice: a reduce-scatter, or an all-reduce of the whole gradient.

    python benchmarks/reduce_scatter.py [--topologies v5e-8,v5e-16,...] [--size 1024]

Compiles (for slices that do not exist here; needs libtpu, see docs/aot.md) the update `w - lr * grad(w)` of one
weight whose rows are split over the chips, the batch split the same way: the gradient of every chip's rows must be
summed over all chips and each chip keeps its own rows, which is a reduce-scatter. For each slice it prints the
collectives of the compiled program: with the weight split over every chip (a mesh of fsdp = chips, the trainer's
default), and with the fsdp axis on one physical axis of the slice and a data axis on the rest (the weight split
over fsdp only, replicated over data). The first row is the reference: a slice whose program keeps its
reduce-scatter. Bytes are one chip's operands; the traffic model is `hlo.count_collectives`'.
"""
import argparse
import sys

import jax
import jax.numpy as jnp
from jax.experimental import mesh_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from mm1_jax.train import hlo, tpu

DEFAULT = "v5e-8,v5e-16,v5e-32,v5e-64,v5e-256,v5p-8,v5p-16,v5p-256,v6e-8,v6e-16"


def compile_update(devices: list, mesh_shape: tuple[int, int], size: int) -> dict:
    """Collectives of the compiled update with the weight's rows split over mesh axis 'fsdp' of a (data, fsdp) mesh."""
    mesh = Mesh(mesh_utils.create_device_mesh(mesh_shape, devices), ("data", "fsdp"))

    def update(w, x):
        return w - 0.1 * jax.grad(lambda w: jnp.sum(jnp.tanh(x @ w)))(w)

    w_sharding = NamedSharding(mesh, P("fsdp", None))
    x_sharding = NamedSharding(mesh, P(("data", "fsdp"), None))
    step = jax.jit(update, in_shardings=(w_sharding, x_sharding), out_shardings=w_sharding)
    compiled = step.lower(jax.ShapeDtypeStruct((size, size), jnp.float32),
                          jax.ShapeDtypeStruct((len(devices) * 64, size), jnp.float32)).compile()
    return hlo.count_collectives(compiled.as_text(), len(devices))


def describe(collectives: dict) -> str:
    kinds = ("reduce-scatter", "all-reduce", "all-gather")
    return ", ".join(f"{k} {collectives[k]['count']} x {collectives[k]['bytes'] / 2**20:.1f} MiB" for k in kinds
                     if collectives[k]["count"]) or "none"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--topologies", default=DEFAULT)
    parser.add_argument("--size", type=int, default=1024, help="the weight is size x size float32")
    args = parser.parse_args(argv)
    print(f"jax {jax.__version__}; weight {args.size} x {args.size} float32 ({args.size**2 * 4 / 2**20:.1f} MiB)")
    print(f"{'slice':<10} {'physical':<10} {'fsdp over every chip':<52} fsdp over one physical axis, data the rest")
    for name in args.topologies.split(","):
        try:
            s = tpu.parse_topology(name)
            devices = tpu.topology_devices(s)
        except (ValueError, RuntimeError) as e:
            sys.exit(str(e))
        longest = max(s.dims)
        whole = describe(compile_update(devices, (1, s.chips), args.size))
        split = describe(compile_update(devices, (s.chips // longest, longest), args.size)) if longest < s.chips \
            else "(one axis)"
        print(f"{name:<10} {'x'.join(map(str, s.dims)):<10} {whole:<52} {split}")


if __name__ == "__main__":
    main()
