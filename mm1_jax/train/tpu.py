"""TPU chips and slices: each chip's published figures (`CHIPS`), slice names (`parse_topology`) and the compile-only
devices libtpu describes for a slice that is not attached (`topology_devices`)."""
from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import math
import os
import re
import sys

import jax

GIB = 2 ** 30


@dataclasses.dataclass(frozen=True)
class Chip:
    """One TPU chip's published figures (per chip; v4 and v5p: both TensorCores, one JAX device in megacore mode)."""
    family: str
    peak_flops: float  # dense bf16 FLOP/s
    hbm_bytes: float
    hbm_bandwidth: float  # bytes/s
    ici_bandwidth: float  # bytes/s, bidirectional, all of the chip's ICI links together
    source: str


# The one table of chip figures. Sources (Google Cloud TPU documentation, "System architecture" of each version):
#   v4   https://cloud.google.com/tpu/docs/v4   275 TFLOPs bf16; HBM2 32 GiB, 1200 GBps. The page gives no per-chip ICI
#        figure: 6 ICI links x 50 GB/s per direction from the TPU v4 paper (Jouppi et al., ISCA 2023,
#        arXiv:2304.01433), i.e. 600 GB/s bidirectional.
#   v5e  https://cloud.google.com/tpu/docs/v5e  197 TFLOPs bf16; HBM2 16 GB, 819 GBps; bidirectional ICI 400 GBps
#        per chip (older revisions of the page: "Interchip Interconnect BW 1600 Gbps").
#   v5p  https://cloud.google.com/tpu/docs/v5p  459 TFLOPs bf16; HBM2e 95 GiB, 2765 GBps; bidirectional ICI 1200 GBps
#        per chip (older revisions of the page: 4800 Gbps).
#   v6e  https://cloud.google.com/tpu/docs/v6e  918 TFLOPs bf16; HBM 32 GB, 1600 GBps; bidirectional ICI 800 GBps per
#        chip (an earlier revision of the page listed 1640 GBps and 3584 Gbps).
# HBM "GB" on the v5e/v6e pages is taken as GiB (the compiler's usable limit, e.g. 15.75 GiB on v5e, sits just under).
CHIPS: dict[str, Chip] = {
    "v4": Chip("v4", 275e12, 32 * GIB, 1200e9, 600e9, "cloud.google.com/tpu/docs/v4; ICI: TPU v4 paper (ISCA 2023)"),
    "v5e": Chip("v5e", 197e12, 16 * GIB, 819e9, 400e9, "cloud.google.com/tpu/docs/v5e"),
    "v5p": Chip("v5p", 459e12, 95 * GIB, 2765e9, 1200e9, "cloud.google.com/tpu/docs/v5p"),
    "v6e": Chip("v6e", 918e12, 32 * GIB, 1600e9, 800e9, "cloud.google.com/tpu/docs/v6e"),
}
# family -> (libtpu's name, megacore: one device per chip of 2 TensorCores, and slice names count TensorCores)
_FAMILIES = {"v4": ("v4", True), "v5p": ("v5", True), "v5e": ("v5e", False), "v6e": ("v6e", False)}
# chips -> shape of the slices Cloud TPU offers (v5e/v6e: 2D; v4/v5p: 3D), as MaxText's accelerator_to_spec_map
_SHAPES_2D = {1: "1x1", 4: "2x2", 8: "2x4", 16: "4x4", 32: "4x8", 64: "8x8", 128: "8x16", 256: "16x16"}
_SHAPES_3D = {4: "2x2x1", 8: "2x2x2", 16: "2x2x4", 32: "2x4x4", 64: "4x4x4", 128: "4x4x8", 256: "4x8x8",
              512: "8x8x8", 1024: "8x8x16", 2048: "8x16x16", 4096: "16x16x16", 6144: "16x16x24"}


@dataclasses.dataclass(frozen=True)
class Slice:
    """A TPU slice: its chip, libtpu topology ('v5e:2x2') and chip count."""
    name: str
    chip: Chip
    topology: str
    dims: tuple[int, ...]

    @property
    def chips(self) -> int:
        return math.prod(self.dims)

    @property
    def label(self) -> str:
        return f"{self.name} slice ({self.chip.family} {'x'.join(map(str, self.dims))}, {self.chips} chips)"


def known_topologies() -> str:
    """The accepted names, in one line (for the unknown-name sentence)."""
    parts = []
    for family, (_, megacore) in _FAMILIES.items():
        shapes = _SHAPES_3D if megacore else _SHAPES_2D
        sizes = [n * (2 if megacore else 1) for n in shapes if family != "v4" or n <= 2048]
        parts.append(f"{family}-{{{','.join(map(str, sizes))}}}")
    return "; ".join(parts) + "; or FAMILY:AxB[xC] (v5e:2x2, v5p:4x4x8)"


def parse_topology(name: str) -> Slice:
    """'v5p-256' (TensorCores for v4/v5p, chips for v5e/v6e) or 'v5e:2x2' -> Slice; ValueError in one sentence."""
    text = name.strip().lower()
    m = re.fullmatch(r"(v4|v5p|v5e|v6e|v5)[:](\d+(?:x\d+){1,2})", text)
    if m:
        family = "v5p" if m.group(1) == "v5" else m.group(1)
        dims = tuple(int(d) for d in m.group(2).split("x"))
        want = 3 if _FAMILIES[family][1] else 2
        if len(dims) != want or 0 in dims:
            raise ValueError(f"--topology={name}: a {family} slice has {want} dimensions "
                             f"(e.g. {family}:{'2x2x1' if want == 3 else '2x2'}).")
    else:
        m = re.fullmatch(r"(v4|v5p|v5e|v6e)-(\d+)", text)
        shapes = None
        if m:
            family, count = m.group(1), int(m.group(2))
            megacore = _FAMILIES[family][1]
            shapes = _SHAPES_3D if megacore else _SHAPES_2D
            chips = count // 2 if megacore else count
            if (megacore and count % 2) or chips not in shapes or (family == "v4" and chips > 2048):
                shapes = None
        if shapes is None:
            raise ValueError(f"--topology={name} is not a TPU slice this tool knows; use one of {known_topologies()}.")
        dims = tuple(int(d) for d in shapes[chips].split("x"))
    return Slice(name, CHIPS[family], f"{_FAMILIES[family][0]}:{'x'.join(map(str, dims))}", dims)


@contextlib.contextmanager
def quiet_stderr():
    """libtpu prints start-up warnings straight to file descriptor 2 (no TPU here: expected); hide them."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def topology_devices(s: Slice) -> list:
    """The slice's compile-only TPU devices (libtpu; no TPU needed)."""
    if importlib.util.find_spec("libtpu") is None:
        raise ValueError("compiling for a TPU slice needs the libtpu wheel: pip install -e '.[aot]'.")
    from jax.experimental import topologies  # pylint: disable=import-outside-toplevel

    # compile-only: the chips are never opened, so libtpu's one-process lock (/tmp/libtpu_lockfile) must not refuse a
    # second compile running beside this one (or beside a training run on a TPU host)
    os.environ.setdefault("ALLOW_MULTIPLE_LIBTPU_LOAD", "1")
    megacore = _FAMILIES[s.chip.family][1]
    dims3 = s.dims + (1,) * (3 - len(s.dims))
    if megacore:  # a torus where every side has 4 chips or more (as MaxText's accelerator_to_spec_map)
        wrap = (min(s.dims) >= 4,) * 3
    else:  # v5e/v6e: a 16-chip side wraps around
        wrap = tuple(d == 16 for d in dims3[:2]) + (False,)
    try:
        with quiet_stderr():
            topo = topologies.get_topology_desc(
                platform="tpu", topology_name=s.topology, chip_config_name="megacore" if megacore else "default",
                chips_per_host_bounds=(1, 1, 1) if s.chips == 1 else (2, 2, 1), num_slices=1, wrap=wrap)
    except jax.errors.JaxRuntimeError as e:  # INVALID_ARGUMENT: a shape libtpu does not offer
        reason = str(e).splitlines()[0].split(": ", 1)[-1]
        raise ValueError(f"--topology={s.name}: libtpu cannot describe a {s.topology} slice ({reason}).") from None
    return list(topo.devices)
