"""Text-rich pages (documents, tables, signs): small fixed-pitch text, legible at the split resolution (3 x 3 crops
of 64 px) or above, not at 64 px. Each character is drawn from a cached glyph mask at a known place, so a reader can
be checked; `page_text` and `page_question` say what is written."""
import functools
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from mm1_jax.data.synthetic.images import jpeg
from mm1_jax.data.synthetic.world import PAGE_WORDS, pick

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
    """The glyph masks of one font size, drawn once."""
    return Glyphs(size)


def page_font_size(side: int) -> int:
    """The font size of a page of `side` pixels."""
    return max(8, round(side * FONT_FRACTION))


def _page_item(rng, numbers: bool = True) -> str:
    return str(int(rng.integers(10, 100))) if numbers and rng.random() < 0.3 else pick(rng, PAGE_WORDS)


def page_image(rng: np.random.Generator, layout: str | None = None, side: int | None = None
               ) -> tuple[bytes, dict[str, Any]]:
    """A text-rich page: JPEG bytes and what is on it: layout (document | table | sign), side, font_size, lines (the
    text in reading order), title (document), rows (table: [word, number, ...]), chars [(char, x, y)]: every
    character's cell's top-left corner (cells are `glyphs(font_size)`.pitch x .height)."""
    layout = layout or pick(rng, PAGE_LAYOUTS)
    side = side or pick(rng, PAGE_SIZES)
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
    return jpeg(Image.fromarray(pixels), quality=90), info


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
