"""Writing the embedded dataset: each format's own writer (webdataset tars, parquet, ArrayRecord, LLaVA json /
jsonl, .mp4 videos with LLaVA json), `generate` (the whole world from one seed) and `ensure_generated` (once, into the
cache; `ensure_written` does the same for any folder a function writes)."""
import io
import json
import os
import pathlib
import shutil
import tempfile
import time

import numpy as np

from mm1_jax.data.synthetic.records import (alt_text_records, caption_records, count_vqa_record,
                                            dense_caption_records, distractors_record, doc_vqa_record,
                                            grounding_record, interleaved_record, knowledge_record, math_record,
                                            multi_image_record, ocr_page_records, ocr_record, refer_record,
                                            text_dialogue_record, text_record, video_eval_record, video_record,
                                            vqa_dialogue_record, vqa_record)
from mm1_jax.data.synthetic.screens import PLATFORM, UI_QUESTIONS, ui_eval_record, ui_record
from mm1_jax.data.synthetic.videos import VIDEO_QUESTIONS
from mm1_jax.data.synthetic.world import build_tokenizer

VERSION = "v6"  # v5: videos (sft/video.json, eval/video.json); v6: UI screens (sft/ui.json, eval/ui/), numbers 0-999
SIZES = dict(captions=4000, interleaved=1200, text=1000, vqa=3000, ocr=1000, grounding=1000, vqa_eval=300,
             alt_text=3000, dense_captions=2000, ocr_pages=500, doc_vqa=500, count_vqa=1500, refer=800, math=800,
             knowledge=500, multi_image=800, distractors=800, text_dialogue=500, video=800, video_eval=100, ui=1500,
             ui_eval=30)  # ui_eval: held-out screens per (platform, question family)
# each source's random stream is [seed, its index here]: a new source goes at the end, so the others' streams stay
STREAMS = ("captions", "grounding", "interleaved", "ocr", "text", "vqa", "vqa_eval", "alt_text", "dense_captions",
           "ocr_pages", "doc_vqa", "count_vqa", "refer", "math", "knowledge", "multi_image", "distractors",
           "text_dialogue", "video", "video_eval", "ui", "ui_eval")


def write_wds(root: pathlib.Path, folder: str, records: list[tuple[bytes, str]], shards: int = 2):
    """Webdataset tars: jpg + txt in even shards, jpg + json {"caption"} in odd ones (both layouts are read)."""
    import tarfile  # pylint: disable=g-import-not-at-top

    (root / folder).mkdir(parents=True)
    n = len(records)
    for s in range(shards):
        with tarfile.open(root / folder / f"shard-{s:05d}.tar", "w") as tar:
            for i in range(s, n, shards):
                data, caption = records[i]
                text = (caption if s % 2 == 0 else json.dumps({"caption": caption})).encode()
                for name, payload in ((f"{i:06d}.jpg", data), (f"{i:06d}.{'txt' if s % 2 == 0 else 'json'}", text)):
                    info = tarfile.TarInfo(name)
                    info.size, info.mtime = len(payload), 0
                    tar.addfile(info, io.BytesIO(payload))


def write_captions(root: pathlib.Path, rng, n: int, shards: int = 2):
    write_wds(root, "captions", list(caption_records(rng, n)), shards)


def write_interleaved(root: pathlib.Path, rng, n: int, text_factor: int = 1):
    import pyarrow as pa  # pylint: disable=g-import-not-at-top
    import pyarrow.parquet as pq  # pylint: disable=g-import-not-at-top

    (root / "interleaved").mkdir(parents=True)
    rows = [interleaved_record(rng, text_factor) for _ in range(n)]
    table = pa.table(
        {
            "texts": pa.array([r["texts"] for r in rows], pa.list_(pa.string())),
            "images": pa.array([r["images"] for r in rows], pa.list_(pa.binary())),
        }
    )
    pq.write_table(table, root / "interleaved" / "docs-00000.parquet", row_group_size=256)


def write_text(root: pathlib.Path, rng, n: int, text_factor: int = 1):
    from array_record.python import array_record_module  # pylint: disable=g-import-not-at-top

    (root / "text").mkdir(parents=True)
    writer = array_record_module.ArrayRecordWriter(str(root / "text" / "text-00000.array_record"), "group_size:1")
    for _ in range(n):
        writer.write(json.dumps(text_record(rng, text_factor)).encode())
    writer.close()


def write_sft(root: pathlib.Path, rng, name: str, make, n: int, as_jsonl: bool, folder: str = "sft"):
    """n records of `make(rng, image_name)` -> (image bytes or a list of them, LLaVA record; text-only: no image)."""
    images = root / folder / "images"
    images.mkdir(parents=True, exist_ok=True)
    records = []
    for i in range(n):
        image_name = f"images/{name}-{i:05d}.jpg"
        data, rec = make(rng, image_name)
        names = rec.get("image", [])
        names = names if isinstance(names, list) else [names]
        for image, path in zip(data if isinstance(data, list) else [data], names):
            (root / folder / path).write_bytes(image)
        records.append(rec)
    path = root / folder / (f"{name}.jsonl" if as_jsonl else f"{name}.json")
    with open(path, "w") as f:
        if as_jsonl:
            f.writelines(json.dumps(r) + "\n" for r in records)
        else:
            json.dump(records, f)


def write_videos(root: pathlib.Path, rng, name: str, n: int, folder: str = "sft", held_out: bool = False
                 ) -> list[dict]:
    """n clips as folder/videos/<name>-<i>.mp4 and their LLaVA records as folder/<name>.json ("video" relative to
    the json's folder, a <video> marker): 1-3 questions each (`video_record`), or with held_out one question each,
    the kinds in turn, with its options (`video_eval_record`). Returns the records."""
    (root / folder / "videos").mkdir(parents=True, exist_ok=True)
    records = []
    for i in range(n):
        video_name = f"videos/{name}-{i:05d}.mp4"
        data, rec = (video_eval_record(rng, video_name, VIDEO_QUESTIONS[i % len(VIDEO_QUESTIONS)]) if held_out
                     else video_record(rng, video_name))
        (root / folder / video_name).write_bytes(data)
        records.append(rec)
    with open(root / folder / f"{name}.json", "w") as f:
        json.dump(records, f)
    return records


def write_ui(root: pathlib.Path, rng, n: int, folder: str = "sft") -> list[dict]:
    """n screens as folder/images/ui-<i>.png and their Ferret-UI records (1-3 questions each, `screens.ui_record`)
    as folder/ui.json, the format the `ferret_ui_json` source reads. Returns the records."""
    (root / folder / "images").mkdir(parents=True, exist_ok=True)
    records = []
    for i in range(n):
        image_name = f"images/ui-{i:05d}.png"
        data, rec = ui_record(rng, image_name, i)
        (root / folder / image_name).write_bytes(data)
        records.append(rec)
    with open(root / folder / "ui.json", "w") as f:
        json.dump(records, f)
    return records


def write_ui_eval(root: pathlib.Path, rng, n: int, folder: str = "eval/ui") -> dict[str, list[dict]]:
    """Held-out screens as Ferret-UI's evaluation files, the shape `mm1_jax.eval.readers.ui` reads: for each
    platform (iphone: portrait screens, android: landscape) and question family, n screens with one question each
    in folder/<platform>/<family>_test.json, the screens in folder/images/. Returns {file name: records}."""
    (root / folder / "images").mkdir(parents=True, exist_ok=True)
    out = {}
    for orientation, platform in PLATFORM.items():
        (root / folder / platform).mkdir(exist_ok=True)
        for family in UI_QUESTIONS:
            records = []
            for i in range(n):
                image_name = f"images/{platform}-{family}-{i:05d}.png"
                data, rec = ui_eval_record(rng, image_name, orientation, family, i)
                (root / folder / image_name).write_bytes(data)
                records.append(rec)
            name = f"{platform}/{family}_test.json"
            with open(root / folder / name, "w") as f:
                json.dump(records, f)
            out[name] = records
    return out


# the SFT sources: name -> (record maker, written as jsonl)
SFT_MAKERS = {
    "vqa": (vqa_dialogue_record, False),
    "ocr": (ocr_record, True),
    "grounding": (grounding_record, True),
    "doc_vqa": (doc_vqa_record, False),
    "count_vqa": (count_vqa_record, False),
    "refer": (refer_record, False),
    "math": (math_record, False),
    "knowledge": (knowledge_record, False),
    "multi_image": (multi_image_record, False),
    "distractors": (distractors_record, False),
    "text_dialogue": (text_dialogue_record, False),
}
# the caption-like sources (wds): name -> (folder, record generator)
WDS_MAKERS = {
    "captions": ("captions", caption_records),
    "alt_text": ("alt_text", alt_text_records),
    "dense_captions": ("dense_captions", dense_caption_records),
    "ocr_pages": ("ocr_pages", ocr_page_records),
}


def generate(directory: str, seed: int = 0, scale: float = 1.0, text_factor: int = 1) -> str:
    """Write the whole world into `directory` (created; if it exists it must be empty). Returns the directory.

    text_factor > 1 makes interleaved and text-only documents that many times longer (web-like lengths, for the
    packing benchmark); the default world is what the tiny model learns.
    """
    root = pathlib.Path(directory)
    sizes = {k: max(8, int(v * scale)) for k, v in SIZES.items()}
    rngs = {k: np.random.default_rng([seed, i]) for i, k in enumerate(STREAMS)}
    if root.exists() and any(root.iterdir()):
        raise FileExistsError(f"synthetic.generate: {directory} exists and is not empty.")
    root.mkdir(parents=True, exist_ok=True)
    build_tokenizer(root / "tokenizer.json")
    for name, (folder, records) in WDS_MAKERS.items():
        write_wds(root, folder, list(records(rngs[name], sizes[name])))
    write_interleaved(root, rngs["interleaved"], sizes["interleaved"], text_factor)
    write_text(root, rngs["text"], sizes["text"], text_factor)
    for name, (make, as_jsonl) in SFT_MAKERS.items():
        write_sft(root, rngs[name], name, make, sizes[name], as_jsonl=as_jsonl)
    write_sft(root, rngs["vqa_eval"], "vqa", vqa_record, sizes["vqa_eval"], as_jsonl=False, folder="eval")
    write_videos(root, rngs["video"], "video", sizes["video"])
    write_videos(root, rngs["video_eval"], "video", sizes["video_eval"], folder="eval", held_out=True)
    write_ui(root, rngs["ui"], sizes["ui"])
    write_ui_eval(root, rngs["ui_eval"], sizes["ui_eval"])
    (root / "DONE").write_text(
        json.dumps({"version": VERSION, "seed": seed, "scale": scale, "text_factor": text_factor, "sizes": sizes})
    )
    return str(root)


def cache_directory(name: str) -> str:
    """A folder of the synthetic cache (MM1_JAX_CACHE, default ~/.cache/mm1_jax): <cache>/synthetic/<name>."""
    base = os.environ.get("MM1_JAX_CACHE", os.path.join(os.path.expanduser("~"), ".cache", "mm1_jax"))
    return os.path.join(base, "synthetic", name)


def default_directory(seed: int = 0, scale: float = 1.0) -> str:
    """Where the dataset of `seed` and `scale` is cached (MM1_JAX_CACHE, default ~/.cache/mm1_jax)."""
    return cache_directory(f"{VERSION}-seed{seed}-scale{scale:g}")


def ensure_generated(directory: str | None = None, seed: int = 0, scale: float = 1.0) -> str:
    """The dataset's directory, generating it first if absent (written to a temporary folder, then renamed)."""
    return ensure_written(directory or default_directory(seed, scale),
                          lambda d: generate(d, seed=seed, scale=scale), "the embedded dataset", "about 15 s")


def ensure_written(directory: str, write, what: str, takes: str = "seconds") -> str:
    """`directory`, once `write(folder)` has filled it: written into a temporary folder beside it, marked DONE (if
    `write` did not) and renamed, so a reader never sees half of it and two processes may race. Returns it."""
    if os.path.exists(os.path.join(directory, "DONE")):
        return directory
    parent = os.path.dirname(os.path.abspath(directory))
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(dir=parent, prefix=".tmp-synthetic-")
    start = time.time()
    print(f"generating {what} into {directory} (once, {takes}) ...", end="", flush=True)
    write(os.path.join(tmp, "data"))
    if not os.path.exists(os.path.join(tmp, "data", "DONE")):
        pathlib.Path(tmp, "data", "DONE").write_text(json.dumps({"version": VERSION}))
    print(f" done in {time.time() - start:.0f} s", flush=True)
    try:
        os.rename(os.path.join(tmp, "data"), directory)
    except OSError:  # another process finished first
        if not os.path.exists(os.path.join(directory, "DONE")):
            raise
    shutil.rmtree(tmp, ignore_errors=True)
    return directory
