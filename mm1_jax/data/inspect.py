"""Print what the data pipeline produces for a config.

  python -m mm1_jax.data.inspect --config=configs/tiny.py --batches=20 [--rows=3] [--dump=/tmp/rows]
      [--config.data.seq_len=512 ...]

Shows the observed share of each source against its weight, packing efficiency, images per row, skipped records by
reason, and a few decoded rows (image slots shown as <image>); --dump also writes those rows' images as PNG. With
MM1.5's SFT mixture by category (`data.sft.categories`), each source's category too, and a table of the categories:
group, alpha, resolved weight and observed share (`--config.data.sft.alpha.science=0.5` shows what a change does).
"""

import os
import sys

from absl import flags
from ml_collections import config_flags
import numpy as np
from PIL import Image

from mm1_jax import command_line
from mm1_jax.data import config as config_lib
from mm1_jax.data import pipeline as pipeline_lib
from mm1_jax.data import tokenizer as tokenizer_lib
from mm1_jax.models.inputs import input_spec

_CONFIG = config_flags.DEFINE_config_file("config", None, "Config file with `data` (and `model`).")
_BATCHES = flags.DEFINE_integer("batches", 10, "Batches to read.")
_ROWS = flags.DEFINE_integer("rows", 2, "Rows to decode and print.")
_BATCH = flags.DEFINE_integer("batch_size", 4, "Rows per batch.")
_DUMP = flags.DEFINE_string("dump", "", "Folder to write the printed rows' images to.")


def summarise(it: pipeline_lib.Pipeline, data_config, batches: list[dict]) -> str:
    """The report's numbers as text."""
    stats, lines = it.stats(), []
    weights = config_lib.source_weights(data_config)
    categories = config_lib.sft_categories(data_config)
    total = max(1, sum(stats["examples"].values()))
    lines.append(f"{'source':<16}{'weight':>8}{'observed':>10}{'examples':>10}{'skipped':>9}"
                 + ("  category" if categories else ""))
    for name, w in weights.items():
        n = stats["examples"].get(name, 0)
        lines.append(f"{name:<16}{w:>8.3f}{n / total:>10.3f}{n:>10}{stats['skipped_by_source'].get(name, 0):>9}"
                     + (f"  {categories.get(name, '-')}" if categories else ""))
    if categories:
        lines += sft_lines(data_config, stats["examples"], total)
    seg = np.concatenate([b["segment_ids"] for b in batches])
    n_images = np.concatenate([b["image_valid"] for b in batches]).sum(-1)
    lines.append(f"packing efficiency (non-pad / all tokens): {np.mean(seg > 0):.4f} over {len(seg)} rows")
    lines.append(f"documents per row: mean {np.mean(seg.max(-1)):.2f}")
    lines.append(
        f"images per row: mean {n_images.mean():.2f}, min {n_images.min()}, max {n_images.max()}, "
        f"histogram {np.bincount(n_images, minlength=data_config.max_images + 1).tolist()}"
    )
    lines.append(
        f"skipped records by reason: {stats['skipped'] or 'none'}; truncated SFT examples: {stats['truncated']}"
    )
    return "\n".join(lines)


def sft_lines(data_config, examples: dict[str, int], total: int) -> list[str]:
    """The SFT categories' table: group, alpha (relative to general data), resolved weight, observed share, sources."""
    w_single, w_multi, w_text = config_lib.sft_groups(data_config)
    lines = [(f"SFT mixture (data.sft): groups single-image {w_single:g} / multi-image {w_multi:g} / text-only "
              f"{w_text:g}; alpha: examples per example of general data"),
             f"{'category':<16}{'group':<14}{'alpha':>7}{'weight':>8}{'observed':>10}  sources"]
    for category, row in config_lib.sft_category_table(data_config).items():
        alpha = "-" if row["alpha"] is None else f"{row['alpha']:.3f}"
        observed = sum(examples.get(n, 0) for n in row["sources"]) / total
        sources = ",".join(row["sources"]) or "(no source)"
        lines.append(f"{category:<16}{row['group']:<14}{alpha:>7}{row['weight']:>8.3f}{observed:>10.3f}  {sources}")
    return lines


def decode_row(tok: tokenizer_lib.Tokenizer, batch: dict, row: int) -> str:
    """Each packed document of the row on its own line."""
    seg = batch["segment_ids"][row]
    out = []
    for s in range(1, seg.max() + 1):
        ids = batch["tokens"][row][seg == s]
        out.append(f"  [{s}] {tok.decode(ids)}")
    return "\n".join(out)


def dump_images(batch: dict, row: int, folder: str):
    """Write the row's valid image entries (uint8 pixels, as the pipeline carries them) as PNG."""
    os.makedirs(folder, exist_ok=True)
    for m in np.flatnonzero(batch["image_valid"][row]):
        Image.fromarray(batch["images"][row, m]).save(os.path.join(folder, f"row{row}_image{m:02d}.png"))


def main(argv):
    del argv
    config = _CONFIG.value
    if config is None or "data" not in config or "model" not in config:
        sys.exit("--config must name a config file whose get_config() has `data` and `model` fields.")
    try:
        config_lib.validate_data_config(config.data)  # every field known and within range, before anything is read
    except ValueError as e:
        sys.exit(f"error: {e}")
    fields = input_spec(config.model, config.data).pipeline_fields()
    it = pipeline_lib.build_pipeline(
        config.data, global_batch_size=_BATCH.value, process_index=0, process_count=1, **fields
    )
    batches = [next(it) for _ in range(_BATCHES.value)]
    print(f"data: seq_len {config.data.seq_len}, max_images {config.data.max_images}, {fields}")
    print(summarise(it, config.data, batches))
    tok = tokenizer_lib.load_tokenizer(config.data.tokenizer)
    for r in range(min(_ROWS.value, _BATCH.value)):
        print(f"row {r}:")
        print(decode_row(tok, batches[0], r))
        if _DUMP.value:
            dump_images(batches[0], r, _DUMP.value)
    if _DUMP.value:
        print(f"images written to {_DUMP.value}")


if __name__ == "__main__":
    command_line.run(main)
