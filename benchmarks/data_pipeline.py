"""Data pipeline throughput and packing efficiency for the default 45/45/10 mixture (embedded dataset).

  python benchmarks/data_pipeline.py [--seq_len=4096] [--tokens_per_image=144] [--image_size=336] [--batches=40]
      [--only=all|mixture|video] [--video_frames_in_clip=300] [--video_sampled=24] [--video_image_size=378]

Rows: grain workers off (decoding in the main process) and on; examples/s, images/s and non-pad tokens/s per core
used (workers off: 1 core; n workers: n cores), against the reference measured in the same run: PIL decode + bicubic
resize to uint8 alone, one core, for the embedded captions' JPEGs (the ceiling for image-bound reading; the pipeline
adds reading, tokenising, packing and, with workers, the hand-over between processes). The pipeline carries uint8
pixels (the model normalises on the device), so a batch's images take a quarter of float32's bytes: printed per
batch. Packing efficiency = non-pad tokens / all tokens, for the embedded world's short documents and for web-like
lengths (text_factor 20).

Video (MM1.5-Video's SFT data: 24 frames sampled uniformly a clip; `--only=video` runs this section alone): a
synthetic clip written with PyAV (`--video_frames_in_clip` frames, 320x240, H.264, 30 frames/s, moving content),
read by our reader (`mm1_jax.data.video.read_video`: the frame count from the header, the sampling rule, decoding in
stream order to the last sampled frame, RGB conversion of the sampled ones) against PyAV's decode alone of the same
frames (open, decode to the same last frame, the same frames to RGB; same thread setting), alternating in one run.
Per core = sampled frames per CPU second of the process (FFmpeg's decoding threads included); ratio = ours / PyAV's
(target >= 0.8). Then one packed video batch from the pipeline (a jsonl of LLaVA video records, data.video.frames
24, `--video_image_size` px): its images' bytes on the host, uint8 (and as float32 would be).
"""

import argparse
import json
import os
import platform
import subprocess
import tarfile
import tempfile
import time

import numpy as np

from mm1_jax.data import config as config_lib
from mm1_jax.data import images as images_lib
from mm1_jax.data import pipeline
from mm1_jax.data import synthetic
from mm1_jax.data import video as video_lib


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


# --- video: our reader against PyAV's decode alone, and one packed video batch


def write_clip(path: str, n: int, width: int = 320, height: int = 240, fps: int = 30) -> None:
    """n frames of moving content (a scrolling gradient and a bouncing square) as H.264 in mp4."""
    import av  # pylint: disable=import-outside-toplevel

    y, x = np.mgrid[0:height, 0:width]
    with av.open(path, "w") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for i in range(n):
            img = np.stack([(x + 3 * i) % 256, (y + 2 * i) % 256, (x + y + i) % 256], -1).astype(np.uint8)
            top, left = (7 * i) % (height - 40), (11 * i) % (width - 40)
            img[top:top + 40, left:left + 40] = (255, 255, 255)
            out.mux(stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")))
        out.mux(stream.encode())


def pyav_decode(path: str, wanted: np.ndarray) -> list:
    """PyAV alone: decode in stream order to the last wanted frame, the wanted ones converted to RGB."""
    import av  # pylint: disable=import-outside-toplevel

    want, last, out = set(wanted.tolist()), int(wanted.max()), {}
    with av.open(path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"  # as our reader sets it
        for i, frame in enumerate(container.decode(stream)):
            if i in want:
                out[i] = frame.to_ndarray(format="rgb24")
            if i >= last:
                break
    return [out[i] for i in wanted.tolist()]


def video_decode(path: str, n: int, k: int, repeats: int) -> dict:
    """Sampled frames / wall second and / CPU second for our reader and PyAV alone, measured alternately."""
    wanted = video_lib.sample_indices(n, k, "uniform")
    assert np.array_equal(video_lib.read_video(path, k, "uniform"), np.stack(pyav_decode(path, wanted)))
    wall, cpu = {"ours": 0.0, "pyav": 0.0}, {"ours": 0.0, "pyav": 0.0}
    for _ in range(repeats):
        for name, fn in (("ours", lambda: video_lib.read_video(path, k, "uniform")),
                         ("pyav", lambda: pyav_decode(path, wanted))):
            w, c = time.perf_counter(), time.process_time()
            fn()
            wall[name] += time.perf_counter() - w
            cpu[name] += time.process_time() - c
    frames = k * repeats
    decoded = (int(wanted.max()) + 1) * repeats
    return {name: dict(frames_s=frames / wall[name], frames_cpu_s=frames / cpu[name],
                       decoded_cpu_s=decoded / cpu[name], cores=cpu[name] / wall[name]) for name in wall}


def video_batch(tmp: str, clip: str, args) -> dict:
    """One packed batch of the pipeline over LLaVA video records (jsonl, one video a row): its images' bytes."""
    tok = os.path.join(tmp, "tokenizer.json")
    synthetic.build_tokenizer(tok)
    records = os.path.join(tmp, "video_sft.jsonl")
    with open(records, "w") as f:
        for i in range(8):
            f.write(json.dumps({"id": str(i), "video": os.path.basename(clip), "conversations": [
                {"from": "human", "value": "<video>\nwhat colour is the square ?"},
                {"from": "gpt", "value": "red ."}]}) + "\n")
    dc = config_lib.get_data_config(
        sources=[config_lib.source("video", "sft", "jsonl", records, 1.0, image_root=os.path.dirname(clip))],
        tokenizer=tok, seq_len=args.seq_len, max_images=args.video_sampled)
    dc.video.update(frames=args.video_sampled, sampling="uniform")
    it = pipeline.build_pipeline(dc, global_batch_size=args.video_batch, tokens_per_image=args.tokens_per_image,
                                 image_size=args.video_image_size, image_norm="clip", process_index=0,
                                 process_count=1)
    batch = next(it)
    start = time.perf_counter()
    for _ in range(2):
        next(it)
    rows_s = 2 * args.video_batch / (time.perf_counter() - start)
    return dict(shape=batch["images"].shape, dtype=batch["images"].dtype, nbytes=batch["images"].nbytes,
                valid=int(batch["image_valid"].sum()), rows_s=rows_s)


def video_section(args) -> None:
    tmp = tempfile.mkdtemp(prefix="mm1_video_bench_")
    clip = os.path.join(tmp, "clip.mp4")
    write_clip(clip, args.video_frames_in_clip)
    n, k = args.video_frames_in_clip, args.video_sampled
    print(f"\nvideo: {n}-frame 320x240 H.264 clip, {k} frames sampled (uniform; decoding runs to frame "
          f"{int(video_lib.sample_indices(n, k).max())}), {args.video_repeats} reads each, alternating; "
          f"{os.cpu_count()} cores ({cpu_name()})")
    r = video_decode(clip, n, k, args.video_repeats)
    print(f"{'reader':<22}{'frames/s':>10}{'frames/s/core':>15}{'decoded/s/core':>16}{'cores used':>12}{'ratio':>7}"
          f"{'wall ratio':>12}")
    for name, label in (("ours", "ours (read_video)"), ("pyav", "PyAV decode alone")):
        x = r[name]
        ratio = x["frames_cpu_s"] / r["pyav"]["frames_cpu_s"]
        print(f"{label:<22}{x['frames_s']:>10.1f}{x['frames_cpu_s']:>15.1f}{x['decoded_cpu_s']:>16.1f}"
              f"{x['cores']:>12.2f}{ratio:>7.2f}{x['frames_s'] / r['pyav']['frames_s']:>12.2f}")
    print("frames = sampled frames; per core = per CPU second of the process (decoding threads included); "
          "ratio = ours / PyAV's frames/s/core (target >= 0.8); wall ratio the same for frames/s.")
    b = video_batch(tmp, clip, args)
    per_row = b["nbytes"] / b["shape"][0]
    print(f"packed video batch: images {b['shape']} {b['dtype'].name} ({b['valid']} frames valid) = "
          f"{b['nbytes'] / 2**20:.1f} MiB on the host, {per_row / 2**20:.2f} MiB a row (float32: "
          f"{4 * b['nbytes'] / 2**20:.1f} MiB); pipeline {b['rows_s']:.2f} video rows/s, workers off (decode + "
          f"{k} resizes to {args.video_image_size} px a row)")
    at672 = k * 672 * 672 * 3
    print(f"configs/mm15_video.py (frames at 672 px): {at672 / 2**20:.1f} MiB a row (computed: {k} x 672 x 672 x 3 "
          f"bytes), {256 * at672 / 2**30:.2f} GiB a global batch of 256 rows")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seq_len", type=int, default=4096)
    parser.add_argument("--tokens_per_image", type=int, default=144)
    parser.add_argument("--image_size", type=int, default=336)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--batches", type=int, default=40)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--only", choices=("all", "mixture", "video"), default="all")
    parser.add_argument("--video_frames_in_clip", type=int, default=300)
    parser.add_argument("--video_sampled", type=int, default=24)
    parser.add_argument("--video_repeats", type=int, default=20)
    parser.add_argument("--video_image_size", type=int, default=378)
    parser.add_argument("--video_batch", type=int, default=4)
    args = parser.parse_args()
    if args.only in ("all", "mixture"):
        mixture_section(args)
    if args.only in ("all", "video"):
        video_section(args)


def mixture_section(args) -> None:
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
