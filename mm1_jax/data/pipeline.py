"""The data pipeline: sources -> host shard -> shuffle -> examples -> weighted mixture -> packed batches (grain).

    it = build_pipeline(config.data, global_batch_size=256, tokens_per_image=144, image_size=378, image_norm="clip")
    batch = next(it); state = it.get_state(); ...; it.set_state(state)

Mixing happens on record indices (grain `MapDataset.mix`), so source shares are exact and deterministic from the
seed; records that cannot make an example are skipped in the packer, counted, and stop the run past the error rate.
Images travel as uint8 pixels (a quarter of float32's bytes between grain worker processes and to the devices); the
model normalises them with `image_norm`'s statistics, which the data side uses only for the splitting canvas's
padding colour.
"""

import json
from typing import Any

from absl import flags
import grain
import jax
import numpy as np

from mm1_jax.data import config as config_lib
from mm1_jax.data import examples as examples_lib
from mm1_jax.data import packing
from mm1_jax.data import sources as sources_lib
from mm1_jax.data import synthetic
from mm1_jax.data import tokenizer as tokenizer_lib


class DataError(RuntimeError):
    """Too many bad records in a source: the run stops with this message."""


def source_dataset(
    src: dict[str, Any],
    index: int,
    data_config,
    *,
    seed: int,
    process_index: int,
    process_count: int,
    builder: examples_lib.ExampleBuilder,
) -> grain.MapDataset:
    """One source as an infinite MapDataset of examples: this host's shard, shuffled anew each epoch."""
    ds = grain.MapDataset.source(sources_lib.open_source(src))
    if data_config.shard_by_host and process_count > 1:
        if len(ds) < process_count:
            raise ValueError(
                f"Data source {src['name']!r} has {len(ds)} records, fewer than the {process_count} hosts."
            )
        ds = ds[process_index::process_count]
    if data_config.shuffle:
        ds = EpochShuffle(ds, seed=seed + 7919 * index)
    return ds.repeat().map(builder)


class EpochShuffle(grain.MapDataset):
    """A fresh permutation of the records each epoch, from (seed, epoch).

    Same role as grain's `shuffle`, whose per-element index_shuffle costs more than reading and tokenizing a record;
    one numpy permutation per epoch (4 bytes a record) is O(1) per element.
    """

    def __init__(self, parent: grain.MapDataset, seed: int):
        super().__init__(parent)
        self._seed, self._perms = int(seed), {}

    def __len__(self) -> int:
        return len(self._parent)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return self.slice(index)
        epoch, i = divmod(index, len(self._parent))
        perm = self._perms.get(epoch)
        if perm is None:
            perm = np.random.default_rng([self._seed, epoch]).permutation(len(self._parent)).astype(np.int64)
            self._perms = {epoch: perm, **{e: p for e, p in self._perms.items() if e == epoch - 1}}
        return self._parent[int(perm[i])]


class ErrorCheck:
    """Stops the run when a source's skipped share passes the limit, or when nothing but bad records arrive."""

    def __init__(self, names: list[str], max_rate: float, min_records: int, max_consecutive: int = 10_000):
        self.names, self.max_rate, self.min_records, self.max_consecutive = (
            names,
            max_rate,
            min_records,
            max_consecutive,
        )

    def __call__(self, counts: dict, source: int, consecutive: int):
        key = str(source)
        bad = counts["skipped_by_source"].get(key, 0)
        seen = bad + counts["examples"].get(key, 0)
        too_many = seen >= self.min_records and bad > self.max_rate * seen
        if too_many or consecutive >= self.max_consecutive:
            raise DataError(
                f"Data source {self.names[source]!r}: {bad} of {seen} records were bad (limit max_error_rate="
                f"{self.max_rate}); e.g. {counts['samples'].get(key, '?')}; by reason: {counts['skipped']}."
            )


class Pipeline:
    """Iterator of host-local batches with get_state/set_state and the skip counters for metrics."""

    def __init__(self, dataset: grain.IterDataset, names: list[str]):
        self._it = iter(dataset)
        self.source_names = names

    def __iter__(self):
        return self

    def __next__(self) -> dict[str, np.ndarray]:
        return next(self._it)

    next = __next__

    def get_state(self) -> dict[str, Any]:
        return self._it.get_state()

    def set_state(self, state: dict[str, Any]):
        self._it.set_state(state)

    def state_json(self) -> str:
        """The state as JSON text (to store beside a checkpoint)."""
        return json.dumps(self.get_state(), default=_to_builtin)

    def set_state_json(self, text: str):
        self.set_state(json.loads(text))

    def skip_counts(self) -> dict[str, int]:
        """Skipped records by reason since the start of training (restored with the state)."""
        return dict(self._packer.counts["skipped"])

    def stats(self) -> dict[str, Any]:
        """Examples and skips per source name (every source, 0 for one never read), rows, tokens, images, truncations
        so far."""
        c = self._packer.counts
        by_name = lambda d: {n: d.get(str(i), 0) for i, n in enumerate(self.source_names)}  # noqa: E731
        return {
            "examples": by_name(c["examples"]),
            "skipped": dict(c["skipped"]),
            "skipped_by_source": by_name(c["skipped_by_source"]),
            "rows": c["rows"],
            "tokens": c["tokens"],
            "images": c["images"],
            "truncated": c["truncated"],
        }

    @property
    def iterator(self) -> packing.PackedBatchIterator:
        """The grain DatasetIterator itself (for grain.checkpoint / orbax handlers that take one)."""
        return self._it

    _packer = iterator


def build_pipeline(
    data_config,
    *,
    seq_len: int | None = None,
    global_batch_size: int,
    tokens_per_image: int,
    image_size: int,
    image_norm: str,
    process_index: int | None = None,
    process_count: int | None = None,
) -> Pipeline:
    """Batches of global_batch_size // process_count packed rows for this host (see the module docstring)."""
    process_index = jax.process_index() if process_index is None else process_index
    process_count = jax.process_count() if process_count is None else process_count
    seq_len = seq_len or data_config.seq_len
    if global_batch_size % process_count:
        raise ValueError(f"global_batch_size={global_batch_size} is not divisible by process_count={process_count}.")
    if not data_config.sources:
        raise ValueError("Data config: `sources` is empty; add at least one source (see mm1_jax/data/config.py).")
    if tokens_per_image + 2 > seq_len:
        raise ValueError(f"tokens_per_image={tokens_per_image} does not fit in seq_len={seq_len}.")
    weights = config_lib.source_weights(data_config)  # checks data.weights before any file is opened
    names = [s["name"] for s in data_config.sources]
    synthetic.ensure_data(data_config)  # the embedded dataset, written on first use (`data.embedded`)
    tok = tokenizer_lib.load_tokenizer(data_config.tokenizer)
    parts, shares = [], []
    for i, src in enumerate(data_config.sources):
        if weights[src["name"]] == 0:  # dropped: never opened; `i` stays its index in stats and meta_source_id
            continue
        builder = examples_lib.ExampleBuilder(
            src, i, data_config, tokens_per_image=tokens_per_image, image_size=image_size, image_norm=image_norm
        )
        parts.append(
            source_dataset(
                src,
                i,
                data_config,
                seed=data_config.seed,
                process_index=process_index,
                process_count=process_count,
                builder=builder,
            )
        )
        shares.append(weights[src["name"]])
    mixed = grain.MapDataset.mix(parts, shares) if len(parts) > 1 else parts[0]
    ds = mixed.to_iter_dataset(
        grain.ReadOptions(num_threads=data_config.read_threads, prefetch_buffer_size=data_config.prefetch_buffer_size)
    )
    if data_config.worker_count > 0:
        if not flags.FLAGS.is_parsed():  # grain workers read absl flags; a library caller may not have parsed any.
            flags.FLAGS.mark_as_parsed()
        ds = ds.mp_prefetch(
            grain.MultiprocessingOptions(
                num_workers=data_config.worker_count, per_worker_buffer_size=data_config.worker_buffer_size
            )
        )
    check = ErrorCheck(names, data_config.max_error_rate, data_config.min_records_for_rate)
    packed = packing.PackedBatches(
        ds,
        batch_size=global_batch_size // process_count,
        seq_len=seq_len,
        max_images=data_config.max_images,
        k=tokens_per_image,
        image_shape=(image_size, image_size, 3),
        image_id=tok.image_id,
        split_documents=data_config.pack.split_documents,
        min_piece=data_config.pack.min_piece,
        error_check=check,
    )
    return Pipeline(packed, names)


def _to_builtin(x):
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, bytes):
        return x.decode("latin-1")
    raise TypeError(f"cannot store {type(x).__name__} in the data iterator state")
