"""Data pipeline throughput and packing efficiency for the default 45/45/10 mixture (embedded dataset).

  python benchmarks/data_pipeline.py [--seq_len=4096] [--tokens_per_image=144] [--image_size=336] [--batches=6]

Rows: grain workers off (decoding in the main process) and on; examples/s and non-pad tokens/s, per core used
(workers off: 1 core; n workers: n cores), against a reference measured in the same run: PIL decode + bicubic
resize + normalise alone for the same images (the ceiling for image-bound reading). Packing efficiency = non-pad
tokens / all tokens, for the embedded world's short documents and for web-like lengths (text_factor 20).
"""

import argparse
import io
import os
import tempfile
import time

import numpy as np
from PIL import Image

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
    next(it)  # start-up (workers, file indexes) not timed
    start_examples, start = sum(it.stats()["examples"].values()), time.perf_counter()
    segs = [next(it)["segment_ids"] for _ in range(args.batches)]
    seconds = time.perf_counter() - start
    segs = np.concatenate(segs)
    n_examples = sum(it.stats()["examples"].values()) - start_examples
    return dict(
        examples_s=n_examples / seconds,
        tokens_s=np.sum(segs > 0) / seconds,
        efficiency=np.mean(segs > 0),
        images_row=it.stats()["images"] / it.stats()["rows"],
    )


def reference_decode(root: str, size: int, n: int = 300) -> float:
    """Images/s for PIL decode + resize + normalise of the embedded captions' JPEGs (one core)."""
    import tarfile  # pylint: disable=g-import-not-at-top

    with tarfile.open(os.path.join(root, "captions", "shard-00000.tar")) as tar:
        blobs = [tar.extractfile(m).read() for m in tar if m.name.endswith(".jpg")][:n]
    start = time.perf_counter()
    for b in blobs:
        images_lib.whole_image(Image.open(io.BytesIO(b)).convert("RGB"), size, "clip")
    return len(blobs) / (time.perf_counter() - start)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seq_len", type=int, default=4096)
    parser.add_argument("--tokens_per_image", type=int, default=144)
    parser.add_argument("--image_size", type=int, default=336)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--batches", type=int, default=6)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    tmp = tempfile.mkdtemp(prefix="mm1_data_bench_")
    short = synthetic.generate(os.path.join(tmp, "short"), scale=0.25)
    web = synthetic.generate(os.path.join(tmp, "web"), scale=0.25, text_factor=20)
    ref = reference_decode(short, args.image_size)
    print(
        f"seq_len {args.seq_len}, tokens/image {args.tokens_per_image}, image {args.image_size}px, max_images 16, "
        f"batch {args.batch} x {args.batches} batches, {os.cpu_count()} cores"
    )
    print(f"reference: PIL decode+resize+normalise alone: {ref:.0f} images/s/core")
    print(
        f"{'documents':<10}{'workers':>8}{'examples/s/core':>17}{'tokens/s/core':>15}{'images/row':>12}"
        f"{'packing eff.':>14}{'img/s vs ref':>14}"
    )
    for name, root in (("embedded", short), ("web-like", web)):
        for workers in (0, args.workers):
            dc = synthetic.embedded_data_config(directory=root, seq_len=args.seq_len, max_images=16)
            r = run(dc, args, workers)
            cores = max(1, workers)
            images_s = r["images_row"] * r["tokens_s"] / (r["efficiency"] * args.seq_len) / cores
            print(
                f"{name:<10}{workers:>8}{r['examples_s'] / cores:>17.1f}{r['tokens_s'] / cores:>15.0f}"
                f"{r['images_row']:>12.2f}{r['efficiency']:>14.4f}{images_s / ref:>14.2f}"
            )


if __name__ == "__main__":
    main()
