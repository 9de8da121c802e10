"""The embedded dataset: a small world of coloured shapes, written in the real formats so the real readers run.

One seed decides everything. Contents (sizes scale with `scale`):
  captions/    webdataset tars (jpg + txt in shard 0, jpg + json in shard 1): "a red circle and a blue square ."
  interleaved/ parquet, OBELICS layout (texts/images aligned, image bytes): 2-4 pictures with sentences.
  text/        ArrayRecord of JSON {"text"}: facts about the shapes ("a square has 4 corners .").
  sft/         vqa.json (LLaVA JSON; 1-5 turns, each about a new image), ocr.jsonl (images of a rendered word), grounding.jsonl (boxes as
               "<box> x1 , y1 , x2 , y2 </box>", 0-99 of the image side), eval/vqa.json held out (one turn).
  tokenizer.json  a word-level HF tokenizer over the world's closed vocabulary (built here, deterministic).
Shapes are listed left to right, so every caption and answer is exact ground truth.
"""

import io
import json
import os
import pathlib
import shutil
import tempfile
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from mm1_jax.data import config as config_lib
from mm1_jax.data import tokenizer as tokenizer_lib

VERSION = "v3"
IMAGE_SIZE = 64
COLOURS = {
    "red": (220, 30, 30),
    "green": (30, 170, 50),
    "blue": (40, 70, 220),
    "yellow": (240, 210, 30),
    "purple": (140, 50, 170),
    "orange": (250, 140, 20),
}
SHAPES = ("circle", "square", "triangle")
CORNERS = {"circle": "0", "square": "4", "triangle": "3"}
COUNTS = ("zero", "one", "two", "three", "four")
OCR_WORDS = (
    "cat",
    "dog",
    "sun",
    "moon",
    "tree",
    "fish",
    "bird",
    "star",
    "car",
    "book",
    "lamp",
    "cake",
    "ship",
    "frog",
    "rain",
    "king",
    "door",
    "milk",
    "rose",
    "bell",
)
FILLER = ("here is a picture .", "look at this one .", "another picture follows .", "this is the next image .")
BASE_WORDS = (
    "a",
    "an",
    "and",
    "the",
    "is",
    "are",
    "of",
    "on",
    "in",
    "left",
    "right",
    "has",
    "have",
    "corners",
    "shape",
    "shapes",
    "colour",
    "what",
    "how",
    "many",
    "there",
    "yes",
    "no",
    "it",
    "shows",
    "picture",
    "pictures",
    "this",
    "here",
    "look",
    "at",
    "one",
    "another",
    "follows",
    "next",
    "image",
    "were",
    "text",
    "does",
    "say",
    "where",
    "word",
    "written",
    "round",
    "User",
    "Assistant",
    "photo",
    "with",
    "document",
    "ends",
    "facts",
    "about",
    "colours",
    "red",
    "green",
    "blue",
    "yellow",
    "purple",
    "orange",
    "circle",
    "square",
    "triangle",
    "circles",
    "squares",
    "triangles",
    ".",
    ",",
    "?",
    ":",
    "!",
)
SIZES = dict(captions=4000, interleaved=1200, text=1000, vqa=3000, ocr=1000, grounding=1000, vqa_eval=300)


def vocabulary() -> list[str]:
    """Every word of the world, sorted, after the special tokens (ids are stable across runs)."""
    words = set(BASE_WORDS) | set(COUNTS) | set(OCR_WORDS) | {str(i) for i in range(100)}
    return list(tokenizer_lib.SPECIAL_TOKENS) + sorted(words - set(tokenizer_lib.SPECIAL_TOKENS))


def build_tokenizer(path: str) -> None:
    """Write a word-level HF tokenizer.json for the world (special tokens first: <pad>=0, <bos>=1, ...)."""
    import tokenizers  # pylint: disable=g-import-not-at-top

    vocab = {w: i for i, w in enumerate(vocabulary())}
    tok = tokenizers.Tokenizer(tokenizers.models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = tokenizers.pre_tokenizers.Whitespace()
    tok.add_special_tokens(
        [tokenizers.AddedToken(t, special=True, normalized=False) for t in tokenizer_lib.SPECIAL_TOKENS]
    )
    tok.save(str(path))


# --- images


def _draw_shape(draw: ImageDraw.ImageDraw, shape: str, box: tuple[int, int, int, int], colour: tuple[int, ...]):
    x1, y1, x2, y2 = box
    if shape == "circle":
        draw.ellipse(box, fill=colour)
    elif shape == "square":
        draw.rectangle(box, fill=colour)
    else:
        draw.polygon([((x1 + x2) // 2, y1), (x2, y2), (x1, y2)], fill=colour)


def shapes_image(rng: np.random.Generator, n: int) -> tuple[bytes, list[dict[str, Any]]]:
    """n (1 or 2) shapes left to right on a light background; JPEG bytes and each shape's colour/shape/box."""
    img = Image.new("RGB", (IMAGE_SIZE, IMAGE_SIZE), (235, 235, 235))
    draw = ImageDraw.Draw(img)
    objects, slot = [], IMAGE_SIZE // n
    for i in range(n):
        colour, shape = str(rng.choice(list(COLOURS))), str(rng.choice(SHAPES))
        side = int(rng.integers(14, min(slot, 30)))
        x1 = i * slot + int(rng.integers(0, slot - side))
        y1 = int(rng.integers(0, IMAGE_SIZE - side))
        box = (x1, y1, x1 + side - 1, y1 + side - 1)
        _draw_shape(draw, shape, box, COLOURS[colour])
        objects.append({"colour": colour, "shape": shape, "box": box})
    return _jpeg(img), objects


def text_image(rng: np.random.Generator) -> tuple[bytes, str]:
    """A word written in black on white (the OCR stand-in)."""
    word = str(rng.choice(OCR_WORDS))
    img = Image.new("RGB", (IMAGE_SIZE, IMAGE_SIZE), (255, 255, 255))
    draw = ImageDraw.Draw(img)
    font = ImageFont.load_default(size=18)
    x, y = int(rng.integers(0, 14)), int(rng.integers(4, 40))
    draw.text((x, y), word, fill=(0, 0, 0), font=font)
    return _jpeg(img), word


def _jpeg(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=95)
    return buf.getvalue()


def describe(objects: list[dict[str, Any]]) -> str:
    return " and ".join(f"{_article(o['colour'])} {o['colour']} {o['shape']}" for o in objects)


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


# --- records


def caption_records(rng, n):
    for _ in range(n):
        data, objs = shapes_image(rng, int(rng.integers(1, 3)))
        yield data, describe(objs) + " ."


def interleaved_record(rng, text_factor: int = 1) -> dict[str, Any]:
    n = int(rng.integers(2, 5))
    texts, images = [], []
    for i in range(n):
        texts.append(str(rng.choice(FILLER)) if i else "this document has pictures of shapes .")
        images.append(None)
        data, objs = shapes_image(rng, int(rng.integers(1, 3)))
        texts.append(None)
        images.append(data)
        texts.append(
            f"it shows {describe(objs)} ." + "".join(" " + text_record(rng)["text"] for _ in range(text_factor - 1))
        )
        images.append(None)
    texts.append(f"there were {COUNTS[n]} pictures .")
    images.append(None)
    return {"texts": texts, "images": images}


def text_record(rng, text_factor: int = 1) -> dict[str, Any]:
    sentences = []
    for _ in range(int(rng.integers(3, 8)) * text_factor):
        shape, colour = str(rng.choice(SHAPES)), str(rng.choice(list(COLOURS)))
        sentences.append(f"{_article(colour)} {colour} {shape} has {CORNERS[shape]} corners .")
    return {"text": " ".join(sentences)}


def vqa_turn(rng) -> tuple[bytes, str, str]:
    """An image and one colour / count / yes-no question about it, with its exact answer."""
    data, objs = shapes_image(rng, int(rng.integers(1, 3)))
    q = int(rng.integers(0, 3))
    if q == 0:
        o = objs[int(rng.integers(0, len(objs)))]
        question, answer = f"what colour is the {o['shape']} ?", f"{o['colour']} ."
        if sum(x["shape"] == o["shape"] for x in objs) > 1:
            question = f"what colour is the {o['shape']} on the {'left' if o is objs[0] else 'right'} ?"
    elif q == 1:
        question, answer = "how many shapes are there ?", f"{COUNTS[len(objs)]} ."
    else:
        colour, shape = str(rng.choice(list(COLOURS))), str(rng.choice(SHAPES))
        present = any(o["colour"] == colour and o["shape"] == shape for o in objs)
        question, answer = f"is there {_article(colour)} {colour} {shape} ?", "yes ." if present else "no ."
    return data, question, answer


def vqa_record(rng, image_name: str) -> tuple[bytes, dict[str, Any]]:
    data, question, answer = vqa_turn(rng)
    return data, _conversation(image_name, question, answer)


def vqa_dialogue_record(rng, image_name: str, max_turns: int = 5) -> tuple[list[bytes], dict[str, Any]]:
    """1..max_turns question turns, each about a new image (`<image>` marks where): a chat model's multi-turn,
    multi-image data, and the layout of a few-shot VQA prompt (demonstrations are earlier turns)."""
    stem = image_name.rsplit(".", 1)[0]
    images, names, turns = [], [], []
    for j in range(int(rng.integers(1, max_turns + 1))):
        data, question, answer = vqa_turn(rng)
        images.append(data)
        names.append(f"{stem}-{j}.jpg")
        turns += [{"from": "human", "value": f"<image>\n{question}"}, {"from": "gpt", "value": answer}]
    return images, {"id": stem, "image": names, "conversations": turns}


def grounding_record(rng, image_name: str) -> tuple[bytes, dict[str, Any]]:
    data, objs = shapes_image(rng, int(rng.integers(1, 3)))
    o = objs[int(rng.integers(0, len(objs)))]
    coords = " , ".join(str(v * 100 // IMAGE_SIZE) for v in o["box"])
    question = f"where is the {o['colour']} {o['shape']} ?"
    return data, _conversation(image_name, question, f"<box> {coords} </box>")


def ocr_record(rng, image_name: str) -> tuple[bytes, dict[str, Any]]:
    data, word = text_image(rng)
    return data, _conversation(image_name, "what does the text say ?", f"{word} .")


def _conversation(image_name: str, question: str, answer: str) -> dict[str, Any]:
    return {
        "id": image_name.rsplit(".", 1)[0],
        "image": image_name,
        "conversations": [{"from": "human", "value": f"<image>\n{question}"}, {"from": "gpt", "value": answer}],
    }


# --- writers (each format's own writer)


def write_captions(root: pathlib.Path, rng, n: int, shards: int = 2):
    import tarfile  # pylint: disable=g-import-not-at-top

    (root / "captions").mkdir(parents=True)
    records = list(caption_records(rng, n))
    for s in range(shards):
        with tarfile.open(root / "captions" / f"shard-{s:05d}.tar", "w") as tar:
            for i in range(s, n, shards):
                data, caption = records[i]
                text = (caption if s % 2 == 0 else json.dumps({"caption": caption})).encode()
                for name, payload in ((f"{i:06d}.jpg", data), (f"{i:06d}.{'txt' if s % 2 == 0 else 'json'}", text)):
                    info = tarfile.TarInfo(name)
                    info.size, info.mtime = len(payload), 0
                    tar.addfile(info, io.BytesIO(payload))


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
    images = root / folder / "images"
    images.mkdir(parents=True, exist_ok=True)
    records = []
    for i in range(n):
        image_name = f"images/{name}-{i:05d}.jpg"
        data, rec = make(rng, image_name)
        names = rec["image"] if isinstance(rec["image"], list) else [rec["image"]]
        for image, path in zip(data if isinstance(data, list) else [data], names):
            (root / folder / path).write_bytes(image)
        records.append(rec)
    path = root / folder / (f"{name}.jsonl" if as_jsonl else f"{name}.json")
    with open(path, "w") as f:
        if as_jsonl:
            f.writelines(json.dumps(r) + "\n" for r in records)
        else:
            json.dump(records, f)


def generate(directory: str, seed: int = 0, scale: float = 1.0, text_factor: int = 1) -> str:
    """Write the whole world into `directory` (created; must not exist). Returns the directory.

    text_factor > 1 makes interleaved and text-only documents that many times longer (web-like lengths, for the
    packing benchmark); the default world is what the tiny model learns.
    """
    root = pathlib.Path(directory)
    sizes = {k: max(8, int(v * scale)) for k, v in SIZES.items()}
    rngs = {k: np.random.default_rng([seed, i]) for i, k in enumerate(sorted(SIZES))}
    root.mkdir(parents=True)
    build_tokenizer(root / "tokenizer.json")
    write_captions(root, rngs["captions"], sizes["captions"])
    write_interleaved(root, rngs["interleaved"], sizes["interleaved"], text_factor)
    write_text(root, rngs["text"], sizes["text"], text_factor)
    write_sft(root, rngs["vqa"], "vqa", vqa_dialogue_record, sizes["vqa"], as_jsonl=False)
    write_sft(root, rngs["ocr"], "ocr", ocr_record, sizes["ocr"], as_jsonl=True)
    write_sft(root, rngs["grounding"], "grounding", grounding_record, sizes["grounding"], as_jsonl=True)
    write_sft(root, rngs["vqa_eval"], "vqa", vqa_record, sizes["vqa_eval"], as_jsonl=False, folder="eval")
    (root / "DONE").write_text(
        json.dumps({"version": VERSION, "seed": seed, "scale": scale, "text_factor": text_factor, "sizes": sizes})
    )
    return str(root)


def default_directory(seed: int = 0, scale: float = 1.0) -> str:
    base = os.environ.get("MM1_JAX_CACHE", os.path.join(os.path.expanduser("~"), ".cache", "mm1_jax"))
    return os.path.join(base, "synthetic", f"{VERSION}-seed{seed}-scale{scale:g}")


def ensure_generated(directory: str | None = None, seed: int = 0, scale: float = 1.0) -> str:
    """The dataset's directory, generating it first if absent (written to a temporary folder, then renamed)."""
    directory = directory or default_directory(seed, scale)
    if os.path.exists(os.path.join(directory, "DONE")):
        return directory
    parent = os.path.dirname(os.path.abspath(directory))
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(dir=parent, prefix=".tmp-synthetic-")
    generate(os.path.join(tmp, "data"), seed=seed, scale=scale)
    try:
        os.rename(os.path.join(tmp, "data"), directory)
    except OSError:  # another process finished first
        if not os.path.exists(os.path.join(directory, "DONE")):
            raise
    shutil.rmtree(tmp, ignore_errors=True)
    return directory


# The world's sources (kind, format, path parts) and each stage's mixture weights.
EMBEDDED_SOURCES = {
    "caption": ("caption", "wds", "captions", "shard-*.tar"),
    "interleaved": ("interleaved", "parquet", "interleaved", "*.parquet"),
    "text": ("text", "arrayrecord", "text", "*.array_record"),
    "vqa": ("sft", "llava_json", "sft", "vqa.json"),
    "ocr": ("sft", "jsonl", "sft", "ocr.jsonl"),
    "grounding": ("sft", "jsonl", "sft", "grounding.jsonl"),
}
MIXTURES = {
    "pretrain": {"caption": 45, "interleaved": 45, "text": 10},
    "main": {"caption": 45, "interleaved": 37, "text": 8, "vqa": 10},
    "sft": {"vqa": 50, "ocr": 25, "grounding": 25},
}


def embedded_data_config(
    stage: str = "pretrain", directory: str | None = None, seed: int = 0, scale: float = 1.0, **overrides: Any
):
    """Data config over the embedded dataset (generated on first use). stage: pretrain | sft | main.

    pretrain: captions 45 / interleaved 45 / text 10 (MM1). sft: vqa 50 / ocr 25 / grounding 25.
    main (the README's main job): captions 45 / interleaved 37 / text 8 / multi-turn VQA dialogues 10, so one short
    run gives a model that both captions and answers questions (0-shot, or k-shot as a (k+1)-turn chat).
    Defaults sized for the tiny model: seq_len 256, max_images 8; overrides replace any top-level field.
    """
    if stage not in MIXTURES:
        raise ValueError(f"embedded_data_config: stage must be one of {', '.join(MIXTURES)}, got {stage!r}.")
    root = ensure_generated(directory, seed, scale)
    j = lambda *p: os.path.join(root, *p)  # noqa: E731
    sources = [config_lib.source(name, *EMBEDDED_SOURCES[name][:2], j(*EMBEDDED_SOURCES[name][2:]), weight)
               for name, weight in MIXTURES[stage].items()]
    fields = dict(sources=sources, tokenizer=j("tokenizer.json"), seq_len=256, max_images=8, seed=seed)
    fields.update(overrides)
    return config_lib.get_data_config(**fields)
