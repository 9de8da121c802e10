"""The embedded dataset: a small world of coloured shapes, written in the real formats so the real readers run.

One seed decides everything (each source draws from its own stream [seed, i]). Contents (sizes scale with `scale`):
  captions/     webdataset tars (jpg + txt in shard 0, jpg + json in shard 1): "a red circle and a blue square ."
  alt_text/     wds as captions, alt-text-like: short, often incomplete or noisy (rates: `ALT_NOISE`)
  dense_captions/ wds, VeCap-like synthetic dense captions of 2-6 shapes on a 3 x 3 grid (96 px): every object, its
                colour, position and the counts ("three shapes : two circles and one square . a red circle at ...")
  ocr_pages/    wds, text-rich pages (256-512 px; documents, tables, signs) with their text as the caption
  interleaved/  parquet, OBELICS layout (texts/images aligned, image bytes): 2-4 pictures with sentences; each
                document describes its pictures in its own convention (`CONVENTIONS`), so continuing one needs its
                earlier picture-text pairs (in-context learning)
  text/         ArrayRecord of JSON {"text"}: facts about the shapes ("a square has 4 corners .").
  sft/          LLaVA JSON / jsonl conversations, one file per category:
                  vqa.json          general VQA, 1-5 turns each about a new image
                  ocr.jsonl         a rendered word on a 64 px image
                  grounding.jsonl   "where is the red circle ?" -> "<box> x1 , y1 , x2 , y2 </box>" (0-99 of the side)
                  doc_vqa.json      text-rich pages: "what is written in row 2 ?", "what is the number next to cat ?"
                  count_vqa.json    3-8 small shapes (96-128 px): counts, what is where, left of / above
                  refer.json        a region given as a box in the prompt: "what is in this region ?"
                  math.json         counting and arithmetic: "how many shapes are there in both images ?"
                  knowledge.json    facts about shapes, as text or about an image
                  multi_image.json  2-4 images addressed as "image 2"
                  distractors.json  one question, 2-6 images, "Image 1: <image> ... . In Image X, ..." (mPLUG-Owl3 4.5)
                  text_dialogue.json  text-only multi-turn chat with follow-ups ("and a square ?")
  eval/vqa.json held out VQA (one turn).
  tokenizer.json  a word-level HF tokenizer over the world's closed vocabulary (built here, deterministic; every
                number 0-99 is one token).
Shapes are listed left to right (in reading order on a 3 x 3 grid), so every caption and answer is exact ground truth.
"""

import functools
import io
import json
import os
import pathlib
import shutil
import tempfile
import time
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from mm1_jax.data import config as config_lib
from mm1_jax.data import tokenizer as tokenizer_lib

VERSION = "v4"
IMAGE_SIZE = 64
COLOURS = {
    "red": (220, 30, 30),
    "green": (30, 170, 50),
    "blue": (40, 70, 220),
    "yellow": (240, 210, 30),
    "purple": (140, 50, 170),
    "orange": (250, 140, 20),
}
COLOUR_NAMES = tuple(COLOURS)
SHAPES = ("circle", "square", "triangle")
PLURAL = {"circle": "circles", "square": "squares", "triangle": "triangles"}
CORNERS = {"circle": "0", "square": "4", "triangle": "3"}
COUNTS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
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
# words printed on the text-rich pages (numbers 10-99 too)
PAGE_WORDS = OCR_WORDS + (
    "apple", "ball", "bag", "cup", "egg", "hat", "key", "leaf", "nest", "pen",
    "ring", "sock", "toy", "van", "web", "zoo", "bus", "jam", "map", "owl",
)
FILLER = ("here is a picture .", "look at this one .", "another picture follows .", "this is the next image .")
# positions on a 3 x 3 grid (reading order), as dense captions and counting questions name them
POSITIONS = (
    "at the top left", "at the top", "at the top right",
    "on the left", "in the centre", "on the right",
    "at the bottom left", "at the bottom", "at the bottom right",
)
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
# words of the v4 additions (conventions, dense captions, pages, the SFT categories)
MORE_WORDS = (
    "i", "see", "objects", "top", "bottom", "centre", "nothing", "above", "region", "both", "images", "total",
    "not", "which", "same", "do", "Image", "In", "title", "line", "row", "first", "sign", "number", "to", "plus",
    "name", "show",
)
SIZES = dict(captions=4000, interleaved=1200, text=1000, vqa=3000, ocr=1000, grounding=1000, vqa_eval=300,
             alt_text=3000, dense_captions=2000, ocr_pages=500, doc_vqa=500, count_vqa=1500, refer=800, math=800,
             knowledge=500, multi_image=800, distractors=800, text_dialogue=500)
# each source's random stream is [seed, its index here] (the first seven as in v3, so those sources are unchanged)
STREAMS = ("captions", "grounding", "interleaved", "ocr", "text", "vqa", "vqa_eval", "alt_text", "dense_captions",
           "ocr_pages", "doc_vqa", "count_vqa", "refer", "math", "knowledge", "multi_image", "distractors",
           "text_dialogue")


def vocabulary() -> list[str]:
    """Every word of the world, sorted, after the special tokens (ids are stable across runs)."""
    words = set(BASE_WORDS) | set(MORE_WORDS) | set(COUNTS) | set(PAGE_WORDS) | {str(i) for i in range(100)}
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
        colour, shape = _pick(rng, COLOUR_NAMES), _pick(rng, SHAPES)
        side = int(rng.integers(14, min(slot, 30)))
        x1 = i * slot + int(rng.integers(0, slot - side))
        y1 = int(rng.integers(0, IMAGE_SIZE - side))
        box = (x1, y1, x1 + side - 1, y1 + side - 1)
        _draw_shape(draw, shape, box, COLOURS[colour])
        objects.append({"colour": colour, "shape": shape, "box": box})
    return _jpeg(img), objects


def scene_image(rng: np.random.Generator, n: int, size: int = 96, sides: tuple[int, int] | None = None
                ) -> tuple[bytes, list[dict[str, Any]]]:
    """n (1-9) shapes, one in each of n distinct cells of a 3 x 3 grid over a size x size picture, in reading order;
    JPEG bytes and each shape's colour / shape / box / cell (0-8) / position (`POSITIONS`). sides: the range of a
    shape's side in pixels (default size/8 .. size/5)."""
    lo, hi = sides or (size // 8, size // 5)
    img = Image.new("RGB", (size, size), (235, 235, 235))
    draw = ImageDraw.Draw(img)
    cell, objects = size // 3, []
    for c in sorted(int(c) for c in rng.choice(9, n, replace=False)):
        colour, shape = _pick(rng, COLOUR_NAMES), _pick(rng, SHAPES)
        side = int(rng.integers(lo, hi + 1))
        row, col = divmod(c, 3)
        x1 = col * cell + int(rng.integers(0, cell - side + 1))
        y1 = row * cell + int(rng.integers(0, cell - side + 1))
        box = (x1, y1, x1 + side - 1, y1 + side - 1)
        _draw_shape(draw, shape, box, COLOURS[colour])
        objects.append({"colour": colour, "shape": shape, "box": box, "cell": c, "position": POSITIONS[c]})
    return _jpeg(img), objects


def text_image(rng: np.random.Generator) -> tuple[bytes, str]:
    """A word written in black on white (the OCR stand-in)."""
    word = _pick(rng, OCR_WORDS)
    img = Image.new("RGB", (IMAGE_SIZE, IMAGE_SIZE), (255, 255, 255))
    draw = ImageDraw.Draw(img)
    font = ImageFont.load_default(size=18)
    x, y = int(rng.integers(0, 14)), int(rng.integers(4, 40))
    draw.text((x, y), word, fill=(0, 0, 0), font=font)
    return _jpeg(img), word


def _jpeg(img: Image.Image, quality: int = 95) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def describe(objects: list[dict[str, Any]]) -> str:
    return " and ".join(f"{_article(o['colour'])} {o['colour']} {o['shape']}" for o in objects)


def _pick(rng: np.random.Generator, options) -> Any:
    """One of `options` (what rng.choice draws, from the same stream, without its overhead)."""
    return options[int(rng.integers(len(options)))]


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def _shapes(n: int) -> str:
    return f"{COUNTS[n]} {'shape' if n == 1 else 'shapes'}"


def _and_list(parts: list[str]) -> str:
    return parts[0] if len(parts) == 1 else " , ".join(parts[:-1]) + " and " + parts[-1]


# --- text-rich pages: small fixed-pitch text, legible at the split resolution (3 x 3 crops of 64 px) or above, not
# at 64 px. Each character is drawn from a cached glyph mask at a known place, so a reader can be checked.

PAGE_SIZES = (256, 320, 384, 448, 512)
PAGE_LAYOUTS = ("document", "table", "sign")
FONT_FRACTION = 0.045  # the font size (em) as a fraction of the page side: ~8.6 px at 192 px, ~2.9 px at 64 px
SIGN_COLOURS = ((250, 240, 170), (190, 225, 250), (200, 240, 200), (250, 215, 190))
PAGE_ALPHABET = "".join(sorted(set("".join(PAGE_WORDS)) | set("0123456789")))


class Glyphs:
    """One font size's glyph masks (uint8 [height, pitch], 255 = ink), drawn with Pillow's bundled font."""

    def __init__(self, size: int):
        font = ImageFont.load_default(size=size)
        ascent, descent = font.getmetrics()
        self.size, self.height = size, ascent + descent
        self.pitch = int(np.ceil(max(font.getlength(c) for c in PAGE_ALPHABET))) + 1
        self.masks = {}
        for c in PAGE_ALPHABET:
            img = Image.new("L", (self.pitch, self.height), 0)
            ImageDraw.Draw(img).text(((self.pitch - font.getlength(c)) / 2, 0), c, fill=255, font=font)
            self.masks[c] = np.asarray(img)
        self.paper = {c: (255 - m.astype(np.uint16))[:, :, None] for c, m in self.masks.items()}  # 255 - ink


@functools.cache
def glyphs(size: int) -> Glyphs:
    return Glyphs(size)


def page_font_size(side: int) -> int:
    return max(8, round(side * FONT_FRACTION))


def _page_item(rng, numbers: bool = True) -> str:
    return str(int(rng.integers(10, 100))) if numbers and rng.random() < 0.3 else _pick(rng, PAGE_WORDS)


def page_image(rng: np.random.Generator, layout: str | None = None, side: int | None = None
               ) -> tuple[bytes, dict[str, Any]]:
    """A text-rich page: JPEG bytes and what is on it: layout (document | table | sign), side, font_size, lines (the
    text in reading order), title (document), rows (table: [word, number, ...]), chars [(char, x, y)]: every
    character's cell's top-left corner (cells are `glyphs(font_size)`.pitch x .height)."""
    layout = layout or _pick(rng, PAGE_LAYOUTS)
    side = side or _pick(rng, PAGE_SIZES)
    g = glyphs(page_font_size(side))
    info: dict[str, Any] = {"layout": layout, "side": side, "font_size": g.size, "lines": [], "chars": []}
    img = Image.new("RGB", (side, side), (255, 255, 255))
    draw = ImageDraw.Draw(img)
    margin, row_h = side // 16, int(g.height * 1.5)
    places = []  # (text, x, y)
    if layout == "document":
        title = " ".join(str(w) for w in rng.choice(PAGE_WORDS, int(rng.integers(1, 3)), replace=False))
        body = [" ".join(_page_item(rng) for _ in range(int(rng.integers(2, 4))))
                for _ in range(int(rng.integers(3, 7)))]
        width = max(len(t) for t in [title] + body) * g.pitch
        x0 = margin + int(rng.integers(0, max(1, side - 2 * margin - width)))
        y = margin + int(rng.integers(0, max(1, side - 2 * margin - (len(body) + 2) * row_h)))
        places.append((title, x0, y))
        draw.line((x0, y + g.height + 2, x0 + len(title) * g.pitch, y + g.height + 2), fill=(90, 90, 90), width=1)
        for k, line in enumerate(body):
            places.append((line, x0, y + (k + 1) * row_h + row_h // 2))
        info.update(title=title, body=body, lines=[title] + body)
    elif layout == "table":
        n_rows, n_cols = int(rng.integers(3, 7)), int(rng.integers(2, 4))
        words = [str(w) for w in rng.choice(PAGE_WORDS, n_rows, replace=False)]
        numbers = [int(v) for v in rng.choice(np.arange(10, 100), n_rows * (n_cols - 1), replace=False)]
        rows = [[w] + [str(numbers[r * (n_cols - 1) + c]) for c in range(n_cols - 1)] for r, w in enumerate(words)]
        pad = g.pitch // 2
        widths = [max(len(w) for w in words) * g.pitch + 2 * pad] + [2 * g.pitch + 2 * pad] * (n_cols - 1)
        x0 = margin + int(rng.integers(0, max(1, side - 2 * margin - sum(widths))))
        y0 = margin + int(rng.integers(0, max(1, side - 2 * margin - n_rows * row_h)))
        for r, row in enumerate(rows):
            x = x0
            for c, cell in enumerate(row):
                places.append((cell, x + pad, y0 + r * row_h + (row_h - g.height) // 2))
                x += widths[c]
        for r in range(n_rows + 1):
            draw.line((x0, y0 + r * row_h, x0 + sum(widths), y0 + r * row_h), fill=(150, 150, 150), width=1)
        for c in range(n_cols + 1):
            x = x0 + sum(widths[:c])
            draw.line((x, y0, x, y0 + n_rows * row_h), fill=(150, 150, 150), width=1)
        info.update(rows=rows, lines=[" ".join(r) for r in rows])
    else:  # sign: a pale board with one or two short lines
        lines = [" ".join(_page_item(rng) for _ in range(int(rng.integers(1, 3))))
                 for _ in range(int(rng.integers(1, 3)))]
        pad = g.pitch
        w, h = max(len(t) for t in lines) * g.pitch + 2 * pad, len(lines) * row_h + 2 * pad
        x0 = margin + int(rng.integers(0, max(1, side - 2 * margin - w)))
        y0 = margin + int(rng.integers(0, max(1, side - 2 * margin - h)))
        board = SIGN_COLOURS[int(rng.integers(len(SIGN_COLOURS)))]
        img.paste((235, 235, 235), (0, 0, side, side))
        draw.rectangle((x0, y0, x0 + w, y0 + h), fill=board, outline=(70, 70, 70), width=2)
        for k, line in enumerate(lines):
            places.append((line, x0 + pad, y0 + pad + k * row_h + (row_h - g.height) // 2))
        info.update(lines=lines)
    pixels = np.array(img)
    for text, x, y in places:
        for j, ch in enumerate(text):
            if ch == " ":
                continue
            cx = x + j * g.pitch
            cell = pixels[y:y + g.height, cx:cx + g.pitch]
            cell[:] = (cell.astype(np.uint16) * g.paper[ch] + 127) // 255  # black ink over what is there
            info["chars"].append((ch, cx, y))
    return _jpeg(Image.fromarray(pixels), quality=90), info


def page_text(info: dict[str, Any]) -> str:
    """The page's text in reading order, lines separated by ' , ' (the ocr_pages caption)."""
    return " , ".join(info["lines"]) + " ."


def page_question(rng: np.random.Generator, info: dict[str, Any]) -> tuple[str, str, str]:
    """(question, answer, type) about a page's text."""
    layout, q = info["layout"], int(rng.integers(0, 3))
    if layout == "table":
        rows = info["rows"]
        r = int(rng.integers(len(rows)))
        if q == 0:
            return f"what is the number next to {rows[r][0]} ?", f"{rows[r][1]} .", "number_next_to"
        if q == 1:
            return f"what is written in row {r + 1} ?", f"{' '.join(rows[r])} .", "row"
        return f"which word is next to {rows[r][1]} ?", f"{rows[r][0]} .", "word_next_to"
    if layout == "document":
        body = info["body"]
        k = int(rng.integers(len(body)))
        if q == 0:
            return "what is the title ?", f"{info['title']} .", "title"
        if q == 1:
            return f"what is written in line {k + 1} ?", f"{body[k]} .", "line"
        return f"what is the first word of line {k + 1} ?", f"{body[k].split()[0]} .", "first_word"
    if q == 2:
        return "what is the first word on the sign ?", f"{info['lines'][0].split()[0]} .", "first_word"
    return "what does the sign say ?", f"{' '.join(info['lines'])} .", "sign"


# --- text in the world's styles


# Interleaved documents describe their pictures in one of these conventions each (the caption source keeps the plain
# style of `describe`). The first three start alike (the first shape's colour and name), so a document's convention
# shows only through its earlier picture-text pairs. Every convention differs from the plain style and from the
# others after VQA normalisation (articles and punctuation dropped), for one shape or two.
CONVENTIONS = ("colour_position", "colour_count", "colour_corners", "shape_first", "objects_colon", "i_see",
               "count_first")


def _position(o: dict[str, Any], objects: list[dict[str, Any]], size: int = IMAGE_SIZE) -> str:
    if len(objects) > 1:
        return "on the left" if o is objects[0] else "on the right"
    centre = (o["box"][0] + o["box"][2]) / 2
    return "on the left" if centre < size / 3 else "on the right" if centre > 2 * size / 3 else "in the centre"


def convention_caption(objects: list[dict[str, Any]], convention: str) -> str:
    """A picture's description (`shapes_image` objects) in one of the `CONVENTIONS`."""
    names = [f"{o['colour']} {o['shape']}" for o in objects]
    if convention == "colour_position":
        return " and ".join(f"{nm} {_position(o, objects)}" for nm, o in zip(names, objects)) + " ."
    if convention == "colour_count":
        return " and ".join(names) + f" , {_shapes(len(objects))} ."
    if convention == "colour_corners":
        return " and ".join(f"{nm} with {CORNERS[o['shape']]} corners" for nm, o in zip(names, objects)) + " ."
    if convention == "shape_first":
        return " and ".join(f"{o['shape']} , {o['colour']}" for o in objects) + " ."
    if convention == "objects_colon":
        return "objects : " + " , ".join(names) + " ."
    if convention == "i_see":
        return f"i see {describe(objects)} ."
    if convention == "count_first":
        return f"{_shapes(len(objects))} : " + " , ".join(names) + " ."
    raise ValueError(f"convention {convention!r} is not one of {', '.join(CONVENTIONS)}")


# Alt-text noise: each alt text is one of these (rates are probabilities): clean ("red circle and blue square", no
# article or full stop), no_colour ("circle and square"), partial (one of two shapes left out; for one shape its name:
# "red"), wrong_colour (one shape's colour replaced by another), generic ("photo", ..., nothing about the shapes).
ALT_NOISE = {"clean": 0.40, "no_colour": 0.20, "partial": 0.15, "wrong_colour": 0.15, "generic": 0.10}
ALT_GENERIC = ("photo", "image", "picture", "shapes", "photo of shapes")


def alt_text(rng: np.random.Generator, objects: list[dict[str, Any]]) -> tuple[str, str]:
    """(alt text, its noise kind) for a picture's objects."""
    kind = str(rng.choice(list(ALT_NOISE), p=list(ALT_NOISE.values())))
    names = [f"{o['colour']} {o['shape']}" for o in objects]
    if kind == "no_colour":
        names = [o["shape"] for o in objects]
    elif kind == "partial":
        names = [names[int(rng.integers(2))]] if len(objects) == 2 else [objects[0]["colour"]]
    elif kind == "wrong_colour":
        j = int(rng.integers(len(objects)))
        wrong = [c for c in COLOURS if c != objects[j]["colour"]]
        names[j] = f"{wrong[int(rng.integers(len(wrong)))]} {objects[j]['shape']}"
    elif kind == "generic":
        return _pick(rng, ALT_GENERIC), kind
    return " and ".join(names), kind


def dense_caption(objects: list[dict[str, Any]]) -> str:
    """Every object of a `scene_image`, its colour and position, and the counts (VeCap-like)."""
    counts = [f"{COUNTS[k]} {s if k == 1 else PLURAL[s]}" for s in SHAPES
              if (k := sum(o["shape"] == s for o in objects))]
    each = [f"{_article(o['colour'])} {o['colour']} {o['shape']} {o['position']}" for o in objects]
    return f"{_shapes(len(objects))} : {_and_list(counts)} . {' , '.join(each)} ."


def count_question(rng: np.random.Generator, objects: list[dict[str, Any]]) -> tuple[str, str, str]:
    """(question, answer, type) about a scene: how many (shapes / circles / red shapes), what is at a position, or
    whether one shape is left of / above another."""
    q = int(rng.integers(0, 5))
    if q == 1:
        shape = _pick(rng, SHAPES)
        return f"how many {PLURAL[shape]} are there ?", f"{COUNTS[sum(o['shape'] == shape for o in objects)]} .", \
            "count_shape"
    if q == 2:
        colour = _pick(rng, [o["colour"] for o in objects] if rng.random() < 0.7 else COLOUR_NAMES)
        return f"how many {colour} shapes are there ?", f"{COUNTS[sum(o['colour'] == colour for o in objects)]} .", \
            "count_colour"
    if q == 3:
        cell = int(rng.integers(9))
        at = [o for o in objects if o["cell"] == cell]
        answer = f"{_article(at[0]['colour'])} {at[0]['colour']} {at[0]['shape']} ." if at else "nothing ."
        return f"what is {POSITIONS[cell]} ?", answer, "position"
    if q == 4:
        key = lambda o: (o["colour"], o["shape"])
        unique = [o for o in objects if sum(key(x) == key(o) for x in objects) == 1]
        if len(unique) >= 2:
            a, b = (unique[int(i)] for i in rng.choice(len(unique), 2, replace=False))
            (ra, ca), (rb, cb) = divmod(a["cell"], 3), divmod(b["cell"], 3)
            name = lambda o: f"the {o['colour']} {o['shape']}"
            if ca != cb:
                return f"is {name(a)} left of {name(b)} ?", "yes ." if ca < cb else "no .", "left_of"
            return f"is {name(a)} above {name(b)} ?", "yes ." if ra < rb else "no .", "above"
    return "how many shapes are there ?", f"{COUNTS[len(objects)]} .", "count"


def count_scene(rng: np.random.Generator) -> tuple[bytes, list[dict[str, Any]]]:
    """3-8 small shapes on a 96 or 128 px picture (fine detail: counting and positions)."""
    size = _pick(rng, (96, 128))
    return scene_image(rng, int(rng.integers(3, 9)), size, (size // 12, size // 7))


# --- records


def caption_records(rng, n):
    for _ in range(n):
        data, objs = shapes_image(rng, int(rng.integers(1, 3)))
        yield data, describe(objs) + " ."


def alt_text_records(rng, n):
    for _ in range(n):
        data, objs = shapes_image(rng, int(rng.integers(1, 3)))
        yield data, alt_text(rng, objs)[0]


def dense_caption_records(rng, n):
    for _ in range(n):
        data, objs = scene_image(rng, int(rng.integers(2, 7)), 96)
        yield data, dense_caption(objs)


def ocr_page_records(rng, n):
    for _ in range(n):
        data, info = page_image(rng)
        yield data, page_text(info)


def interleaved_record(rng, text_factor: int = 1) -> dict[str, Any]:
    """2-4 pictures, each described in the document's convention (drawn first, independent of everything else)."""
    convention = CONVENTIONS[int(rng.integers(len(CONVENTIONS)))]
    n = int(rng.integers(2, 5))
    texts, images = [], []
    for i in range(n):
        texts.append(_pick(rng, FILLER) if i else "this document has pictures of shapes .")
        images.append(None)
        data, objs = shapes_image(rng, int(rng.integers(1, 3)))
        texts.append(None)
        images.append(data)
        texts.append(
            convention_caption(objs, convention)
            + "".join(" " + text_record(rng)["text"] for _ in range(text_factor - 1))
        )
        images.append(None)
    texts.append(f"there were {COUNTS[n]} pictures .")
    images.append(None)
    return {"texts": texts, "images": images}


def text_record(rng, text_factor: int = 1) -> dict[str, Any]:
    sentences = []
    for _ in range(int(rng.integers(3, 8)) * text_factor):
        shape, colour = _pick(rng, SHAPES), _pick(rng, COLOUR_NAMES)
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
        colour, shape = _pick(rng, COLOUR_NAMES), _pick(rng, SHAPES)
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


def doc_vqa_record(rng, image_name: str) -> tuple[bytes, dict[str, Any]]:
    """1-3 different questions about one text-rich page."""
    data, info = page_image(rng)
    pairs = [page_question(rng, info)[:2] for _ in range(int(rng.integers(1, 4)))]
    return data, _dialogue(image_name, _distinct(pairs))


def count_vqa_record(rng, image_name: str) -> tuple[bytes, dict[str, Any]]:
    """1-3 different counting / position questions about one scene of 3-8 small shapes."""
    data, objs = count_scene(rng)
    pairs = [count_question(rng, objs)[:2] for _ in range(int(rng.integers(1, 4)))]
    return data, _dialogue(image_name, _distinct(pairs))


def refer_record(rng, image_name: str) -> tuple[bytes, dict[str, Any]]:
    """A region given as a box in the prompt (0-99 of the side): what is in it, or its colour."""
    data, objs = scene_image(rng, int(rng.integers(2, 5)), IMAGE_SIZE, (8, 16))
    o = objs[int(rng.integers(len(objs)))]
    box = "<box> " + " , ".join(str(v * 100 // IMAGE_SIZE) for v in o["box"]) + " </box>"
    if rng.random() < 0.7:
        pair = (f"{box} what is in this region ?", f"{_article(o['colour'])} {o['colour']} {o['shape']} .")
    else:
        pair = (f"what colour is the shape in the region {box} ?", f"{o['colour']} .")
    return data, _dialogue(image_name, [pair])


def math_record(rng, image_name: str) -> tuple[list[bytes], dict[str, Any]]:
    """Counting and arithmetic over one or two pictures; answers are numbers ("7 .")."""
    q = int(rng.integers(0, 4))
    scenes = [scene_image(rng, int(rng.integers(1, 5)), IMAGE_SIZE, (10, 18)) for _ in range(2 if q < 2 else 1)]
    objs = scenes[0][1]
    if q < 2:
        pair = ("how many shapes are there in both images ?", f"{len(objs) + len(scenes[1][1])} .")
    elif q == 2:
        pair = ("how many corners are there in total ?", f"{sum(int(CORNERS[o['shape']]) for o in objs)} .")
    else:
        colour = _pick(rng, [o["colour"] for o in objs])
        pair = (f"how many shapes are not {colour} ?", f"{sum(o['colour'] != colour for o in objs)} .")
    return _multi_image(image_name, [s[0] for s in scenes], "<image>\n" * len(scenes) + pair[0], pair[1])


def knowledge_record(rng, image_name: str) -> tuple[list[bytes], dict[str, Any]]:
    """A fact about shapes: asked in text ("how many corners does a triangle have ?") or about a picture."""
    q = int(rng.integers(0, 3))
    if rng.random() < 0.5:
        shape = _pick(rng, SHAPES)
        question, answer = [
            (f"how many corners does a {shape} have ?", f"{CORNERS[shape]} ."),
            (f"which shape has {CORNERS[shape]} corners ?", f"a {shape} ."),
            (f"is a {shape} round ?", "yes ." if shape == "circle" else "no ."),
        ][q]
        return [], {"id": image_name.rsplit(".", 1)[0], "conversations": _turns([(question, answer)])}
    data, objs = shapes_image(rng, 1)
    shape = objs[0]["shape"]
    question, answer = [
        ("how many corners does this shape have ?", f"{CORNERS[shape]} ."),
        ("what is the name of this shape ?", f"a {shape} ."),
        ("is this shape round ?", "yes ." if shape == "circle" else "no ."),
    ][q]
    return _multi_image(image_name, [data], f"<image>\n{question}", answer)


def multi_image_record(rng, image_name: str) -> tuple[list[bytes], dict[str, Any]]:
    """2-4 pictures of one shape each listed as "image 1 <image> image 2 <image> ..." and a question that addresses
    one or two of them by number (the layout of the embedded_multi task)."""
    n = int(rng.integers(2, 5))
    pics, objs = zip(*[shapes_image(rng, 1) for _ in range(n)])
    objs = [o[0] for o in objs]
    t, q = int(rng.integers(n)), int(rng.integers(0, 3))
    listing = " ".join(f"image {j + 1} <image>" for j in range(n))
    same = [j for j in range(n) if (objs[j]["colour"], objs[j]["shape"]) == (objs[t]["colour"], objs[t]["shape"])]
    if q == 1 and len(same) == 1:
        o = objs[t]
        pair = (f"which image shows {_article(o['colour'])} {o['colour']} {o['shape']} ?", f"image {t + 1} .")
    elif q == 2:
        a, b = (int(i) for i in sorted(rng.choice(n, 2, replace=False)))
        pair = (f"do image {a + 1} and image {b + 1} show the same shape ?",
                "yes ." if objs[a]["shape"] == objs[b]["shape"] else "no .")
    else:
        pair = (f"what colour is the {objs[t]['shape']} in image {t + 1} ?", f"{objs[t]['colour']} .")
    return _multi_image(image_name, list(pics), f"{listing} {pair[0]}", pair[1])


def distractors_record(rng, image_name: str) -> tuple[list[bytes], dict[str, Any]]:
    """One VQA question about Image X among 2-6 pictures, the others distractors, prompted as mPLUG-Owl3 Sec. 4.5
    ("Image 1: <image> Image 2: <image> ... . In Image X, question")."""
    n = int(rng.integers(2, 7))
    t = int(rng.integers(n))
    data, question, answer = vqa_turn(rng)
    pics = [shapes_image(rng, int(rng.integers(1, 3)))[0] for _ in range(n - 1)]
    pics = pics[:t] + [data] + pics[t:]
    listing = " ".join(f"Image {j + 1}: <image>" for j in range(n))
    return _multi_image(image_name, pics, f"{listing}. In Image {t + 1}, {question}", answer)


def text_dialogue_record(rng, image_name: str) -> tuple[list[bytes], dict[str, Any]]:
    """A text-only chat of 2-4 turns; follow-ups ("and a square ?", "and plus 3 ?") need the earlier turns."""
    pairs, last = [], None
    for _ in range(int(rng.integers(2, 5))):
        q = int(rng.integers(0, 4))
        if last and last[0] == "corners" and q < 2:
            shape = _pick(rng, [s for s in SHAPES if s != last[1]])
            pairs.append((f"and a {shape} ?", f"a {shape} has {CORNERS[shape]} corners ."))
            last = ("corners", shape)
        elif last and last[0] == "plus" and q < 2:
            b = int(rng.integers(0, 10))
            pairs.append((f"and plus {b} ?", f"{last[1] + b} ."))
            last = ("plus", last[1] + b)
        elif q == 0:
            shape = _pick(rng, SHAPES)
            pairs.append((f"how many corners does a {shape} have ?", f"a {shape} has {CORNERS[shape]} corners ."))
            last = ("corners", shape)
        elif q == 1:
            a, b = int(rng.integers(0, 10)), int(rng.integers(0, 10))
            pairs.append((f"what is {a} plus {b} ?", f"{a + b} ."))
            last = ("plus", a + b)
        elif q == 2:
            shape = _pick(rng, SHAPES)
            pairs.append((f"which shape has {CORNERS[shape]} corners ?", f"a {shape} ."))
            last = None
        else:
            shape = _pick(rng, SHAPES)
            pairs.append((f"is a {shape} round ?", "yes ." if shape == "circle" else "no ."))
            last = None
    return [], {"id": image_name.rsplit(".", 1)[0], "conversations": _turns(pairs)}


def _conversation(image_name: str, question: str, answer: str) -> dict[str, Any]:
    return {
        "id": image_name.rsplit(".", 1)[0],
        "image": image_name,
        "conversations": [{"from": "human", "value": f"<image>\n{question}"}, {"from": "gpt", "value": answer}],
    }


def _distinct(pairs: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The question-answer pairs without repeats, in order."""
    return [p for i, p in enumerate(pairs) if p not in pairs[:i]]


def _turns(pairs: list[tuple[str, str]]) -> list[dict[str, str]]:
    return [t for q, a in pairs for t in ({"from": "human", "value": q}, {"from": "gpt", "value": a})]


def _dialogue(image_name: str, pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """Several questions about one image (`<image>` in the first)."""
    rec = _conversation(image_name, *pairs[0])
    rec["conversations"] += _turns(pairs[1:])
    return rec


def _multi_image(image_name: str, pics: list[bytes], question: str, answer: str) -> tuple[list[bytes], dict]:
    """One question over several images (`<image>` markers in the question place them)."""
    stem = image_name.rsplit(".", 1)[0]
    return pics, {"id": stem, "image": [f"{stem}-{j}.jpg" for j in range(len(pics))],
                  "conversations": _turns([(question, answer)])}


# --- writers (each format's own writer)


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
    start = time.time()
    print(f"generating the embedded dataset into {directory} (once, about 10 s) ...", end="", flush=True)
    generate(os.path.join(tmp, "data"), seed=seed, scale=scale)
    print(f" done in {time.time() - start:.0f} s", flush=True)
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
    "alt_text": ("caption", "wds", "alt_text", "shard-*.tar"),
    "dense_captions": ("caption", "wds", "dense_captions", "shard-*.tar"),
    "ocr_pages": ("caption", "wds", "ocr_pages", "shard-*.tar"),
    **{name: ("sft", "llava_json", "sft", f"{name}.json")
       for name in ("doc_vqa", "count_vqa", "refer", "math", "knowledge", "multi_image", "distractors",
                    "text_dialogue")},
}
MIXTURES = {
    "pretrain": {"caption": 45, "interleaved": 45, "text": 10},
    # the README's main job; every other source is listed at weight 0 (never opened) so data.weights can use it
    "main": {"caption": 45, "interleaved": 37, "text": 8, "vqa": 10,
             **{name: 0 for name in EMBEDDED_SOURCES if name not in ("caption", "interleaved", "text", "vqa")}},
    # MM1.5's continual pre-training: OCR-rich data at high resolution (its final recipe: OCR data alone)
    "cpt": {"ocr_pages": 100, "dense_captions": 0, "caption": 0, "alt_text": 0, "text": 0},
    "sft": {"vqa": 20, "ocr": 8, "grounding": 8, "doc_vqa": 15, "count_vqa": 10, "refer": 8, "math": 7,
            "knowledge": 5, "multi_image": 7, "distractors": 6, "text_dialogue": 6},
}


def embedded_data_config(
    stage: str = "pretrain", directory: str | None = None, seed: int = 0, scale: float = 1.0, **overrides: Any
):
    """Data config over the embedded dataset; nothing is written: the pipeline generates the dataset into
    `directory` (default: `default_directory(seed, scale)`) when it first reads it (`ensure_data`).
    stage: pretrain | main | cpt | sft.

    pretrain: captions 45 / interleaved 45 / text 10 (MM1).
    main (the README's main job): captions 45 / interleaved 37 / text 8 / multi-turn VQA dialogues 10, so one short
    run gives a model that both captions and answers questions (0-shot, or k-shot as a (k+1)-turn chat); every
    other source at weight 0, for `data.weights` (e.g. "caption:0,alt_text:45").
    cpt (MM1.5 continual pre-training): text-rich pages (ocr_pages) alone; dense captions, captions, alt text and
    text at weight 0.
    sft: the SFT categories: general VQA 20 / ocr 8 / grounding 8 / doc_vqa 15 / count_vqa 10 / refer 8 / math 7 /
    knowledge 5 / multi_image 7 / distractors 6 / text_dialogue 6.
    Defaults sized for the tiny model: seq_len 256, max_images 8; overrides replace any top-level field.
    """
    if stage not in MIXTURES:
        raise ValueError(f"embedded_data_config: stage must be one of {', '.join(MIXTURES)}, got {stage!r}.")
    root = directory or default_directory(seed, scale)
    j = lambda *p: os.path.join(root, *p)  # noqa: E731
    sources = [config_lib.source(name, *EMBEDDED_SOURCES[name][:2], j(*EMBEDDED_SOURCES[name][2:]), weight)
               for name, weight in MIXTURES[stage].items()]
    fields = dict(sources=sources, tokenizer=j("tokenizer.json"), seq_len=256, max_images=8, seed=seed,
                  embedded=dict(directory=root, seed=seed, scale=float(scale)))
    fields.update(overrides)
    return config_lib.get_data_config(**fields)


def ensure_data(data_config: Any) -> str:
    """Generate the embedded dataset a data config reads (`data.embedded`) if it is missing; its directory, or ''
    when the config reads other data. Called where the data is first needed (the pipeline, an evaluation)."""
    embedded = data_config.get("embedded") if hasattr(data_config, "get") else None
    if not embedded or not embedded.get("directory"):
        return ""
    return ensure_generated(embedded["directory"], embedded.get("seed", 0), embedded.get("scale", 1.0))


def vocab_size() -> int:
    """Tokens of the world's tokenizer (`build_tokenizer`), known without writing it: every special token is a
    word of `vocabulary()`."""
    return len(vocabulary())
