"""Command line: Hugging Face directory <-> converted (orbax) directory.

  python -m mm1_jax.convert --src HF_DIR --dst OUT_DIR [--dtype float32|bfloat16] [--overwrite]
  python -m mm1_jax.convert --to-hf --src OUT_DIR --dst HF_DIR [--overwrite]
  python -m mm1_jax.convert --list        the supported families and their model types
"""
from __future__ import annotations

import argparse
import sys
import time

from mm1_jax import convert
from mm1_jax.convert import checkpoint
from mm1_jax.convert.tensor_files import CheckpointError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mm1_jax.convert", description=__doc__.split("\n")[0])
    parser.add_argument("--src", help="a Hugging Face model directory (or, with --to-hf, a converted one)")
    parser.add_argument("--dst", help="the directory to create (written to DST.tmp-XXXX, then renamed)")
    parser.add_argument("--dtype", default="float32", choices=sorted(checkpoint.DTYPES), help="stored params dtype")
    parser.add_argument("--to-hf", action="store_true", help="convert a converted directory back to Hugging Face")
    parser.add_argument("--overwrite", action="store_true", help="replace DST if it exists")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--list", action="store_true", help="list the supported families and exit")
    args = parser.parse_args(argv)
    if args.list:
        for name, module in sorted(convert.families().items()):
            print(f"{name:14s} {module.KIND:10s} {', '.join(module.MODEL_TYPES)}")
        return 0
    if not args.src or not args.dst:
        parser.error("--src and --dst are required.")
    start = time.perf_counter()
    try:
        if args.to_hf:
            converted = checkpoint.read_converted(args.src)
            checkpoint.write_hf(converted, args.dst, overwrite=args.overwrite)
        else:
            converted = checkpoint.read_hf(args.src, args.dtype, progress=not args.no_progress)
            checkpoint.write_converted(converted, args.dst, overwrite=args.overwrite)
    except (CheckpointError, ValueError, FileExistsError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"{converted.family} ({converted.config.get('style', converted.source_hf_config.get('model_type'))}) "
          f"{args.src} -> {args.dst} in {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
