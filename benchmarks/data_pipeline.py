"""Data pipeline throughput and packing efficiency for the default 45/45/10 mixture (embedded dataset).

  python benchmarks/data_pipeline.py [--seq_len=4096] [--tokens_per_image=144] [--image_size=336] [--batches=40]

Rows: grain workers off (decoding in the main process) and on; examples/s, images/s and non-pad tokens/s per core
used (workers off: 1 core; n workers: n cores), against the reference measured in the same run: PIL decode + bicubic
resize to uint8 alone, one core, for the embedded captions' JPEGs (the ceiling for image-bound reading; the pipeline
adds reading, tokenising, packing and, with workers, the hand-over between processes). The pipeline carries uint8
pixels (the model normalises on the device), so a batch's images take a quarter of float32's bytes: printed per
batch. Packing efficiency = non-pad tokens / all tokens, for the embedded world's short documents and for web-like
lengths (text_factor 20).
"""

import argparse
import os
import platform
import subprocess
import tarfile
import tempfile
import time

import numpy as np

from mm1_jax.data import images as images_lib
from mm1_jax.data import pipeline
from mm1_jax.data import synthetic


def run(dc, args, workers: int) -> dict:
    dc.worker_count = workers
    it = pipeline.build_pipeline(
        dc,
        seq_len=args.seq_len,
        global_batch_size=args.batch,
        process_index=0,
        process_count=1,
        tokens_per_image=args.tokens_per_image,
        image_size=args.image_size,
        image_norm="clip",
    )
    first = next(it)  # start-up (workers, file indexes) not timed
    stats = it.stats()
    start_examples, start_images, start = sum(stats["examples"].values()), stats["images"], time.perf_counter()
    segs = [next(it)["segment_ids"] for _ in range(args.batches)]
    seconds = time.perf_counter() - start
    segs = np.concatenate(segs)
    stats = it.stats()
    return dict(
        examples_s=(sum(stats["examples"].values()) - start_examples) / seconds,
        images_s=(stats["images"] - start_images) / seconds,
        tokens_s=np.sum(segs > 0) / seconds,
        efficiency=np.mean(segs > 0),
        images_row=stats["images"] / stats["rows"],
        image_bytes=first["images"].nbytes,
        image_dtype=first["images"].dtype,
    )


def reference_decode(root: str, size: int, n: int = 300) -> float:
    """Images/s for PIL decode + bicubic resize to uint8 of the embedded captions' JPEGs (one core)."""
    with tarfile.open(os.path.join(root, "captions", "shard-00000.tar")) as tar:
        blobs = [tar.extractfile(m).read() for m in tar if m.name.endswith(".jpg")][:n]
    start = time.perf_counter()
    for b in blobs:
        images_lib.whole_image(images_lib.decode_image(b), size)
    return len(blobs) / (time.perf_counter() - start)


def cpu_name() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        return next(line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name"))
    except (OSError, subprocess.CalledProcessError, StopIteration):
        return platform.processor() or "unknown CPU"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seq_len", type=int, default=4096)
    parser.add_argument("--tokens_per_image", type=int, default=144)
    parser.add_argument("--image_size", type=int, default=336)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--batches", type=int, default=40)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    tmp = tempfile.mkdtemp(prefix="mm1_data_bench_")
    short = synthetic.generate(os.path.join(tmp, "short"), scale=0.25)
    web = synthetic.generate(os.path.join(tmp, "web"), scale=0.25, text_factor=20)
    print(
        f"seq_len {args.seq_len}, tokens/image {args.tokens_per_image}, image {args.image_size}px, max_images 16, "
        f"batch {args.batch} x {args.batches} batches, {os.cpu_count()} cores ({cpu_name()})"
    )
    print(
        f"{'documents':<10}{'workers':>8}{'examples/s/core':>17}{'images/s/core':>15}{'ref img/s/core':>16}"
        f"{'ratio':>7}{'tokens/s/core':>15}{'images/row':>12}{'packing eff.':>14}{'image MB/batch':>16}"
    )
    for name, root in (("embedded", short), ("web-like", web)):
        for workers in (0, args.workers):
            dc = synthetic.embedded_data_config(directory=root, seq_len=args.seq_len, max_images=16)
            ref = reference_decode(short, args.image_size)  # next to each row: the machine's load changes
            r = run(dc, args, workers)
            cores = max(1, workers)
            images_s = r["images_s"] / cores
            as_float = r["image_bytes"] * np.dtype(np.float32).itemsize // r["image_dtype"].itemsize
            print(
                f"{name:<10}{workers:>8}{r['examples_s'] / cores:>17.1f}{images_s:>15.1f}{ref:>16.1f}"
                f"{images_s / ref:>7.2f}{r['tokens_s'] / cores:>15.0f}{r['images_row']:>12.2f}"
                f"{r['efficiency']:>14.4f}{r['image_bytes'] / 2**20:>8.1f} {r['image_dtype'].name} "
                f"(f32 {as_float / 2**20:.0f})"
            )
    print("ratio = the pipeline's images/s per core / PIL decode+resize alone (one core), measured just before it.")


if __name__ == "__main__":
    main()
