"""The world's UI screens: phone screens of buttons, labels, icons, toggles, text fields and tab bars (`screen`), each
widget with its type, text or icon name and pixel box, and the Ferret-UI questions a screen answers (`ui_question`),
written as Ferret-UI's release records (`ui_record`, `ui_eval_record`: <bbox_locationK> placeholders and
box_x1y1x2y2, read by the `ferret_ui_json` source and by `mm1_jax.eval.readers.ui`).

A screen is portrait (96 x 192 px, "iphone" in the held-out files) or landscape (192 x 96 px, "android"): the
platform split of Ferret-UI's benchmarks stands for orientation here, the only thing that tells the world's two
kinds of screens apart. Widgets sit on an 8 px layout grid, in rows two cells (16 px) high (a body row: at most 3
widgets portrait, 4 landscape; 0.4 of the rows empty; a screen without any widget is drawn again), each drawn 1 px
inside its cells so neighbours never touch; a widget's box is [x1, y1, x2, y2] with x2, y2 exclusive (the pixels
drawn are x1 .. x2 - 1, as Rico / Ferret-UI bounds are left, top, right, bottom). Every widget fills its box (a
plate, an outline or a tile), so the box is exactly where its pixels differ from the white screen.

  button   a coloured plate with a word in white          label   a word on a grey plate
  field    a white box with a grey outline and a word     toggle  a pill, green with the knob right (on) or grey
  icon     a tile with a black glyph (`ICONS`: play, stop, menu, plus, close, back)
  tab      the tab bar's cells along the bottom (3 on portrait, 4 on landscape screens, with probability 0.7)
Words come from the world's `PAGE_WORDS`, each at most once on a screen; icons at most once each.

Questions (`UI_QUESTIONS`, Ferret-UI's task families; the box text is `mm1_jax.data.coordinates.box_to_text`, the
0-999 grid of the whole screen, written by the readers, never here):
  referring  widget_classification  "what is the type of the widget <bbox_location0> ?"   "button ."
             icon_recognition       "what is the icon <bbox_location0> ?"                 "play ."
             ocr                    "what does the text <bbox_location0> say ?"           "cat ."
  grounding  find_text              "where is the text cat ?"                             "<bbox_location0> ."
             find_icons             "where is the play icon ?"                            "<bbox_location0> ."
             find_widget            "where is the toggle ?" (a type found once on it)     "<bbox_location0> ."
Ferret-UI's widget_listing (every widget with its box in one answer) is not written: too long for the tiny model.
"""
from __future__ import annotations

import functools
import io
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from mm1_jax.data.synthetic.world import COLOURS, PAGE_WORDS, pick

CELL = 8  # the layout grid, px
ROW = 2  # a widget row's height in cells
SCREENS = {"portrait": (96, 192), "landscape": (192, 96)}  # width, height
PLATFORM = {"portrait": "iphone", "landscape": "android"}  # the held-out files' platform of each orientation
WIDGET_TYPES = ("button", "label", "icon", "toggle", "field", "tab")
ICONS = ("play", "stop", "menu", "plus", "close", "back")
REFERRING = ("widget_classification", "icon_recognition", "ocr")
GROUNDING = ("find_text", "find_icons", "find_widget")
UI_QUESTIONS = REFERRING + GROUNDING
BACKGROUND = (255, 255, 255)
TAB_PROBABILITY = 0.7
EMPTY_ROW = 0.4
PER_ROW = {"portrait": 3, "landscape": 4}  # widgets in a body row at most
_BUTTONS = ("red", "green", "blue", "purple", "orange")
ICON_TILE = (225, 232, 245)  # one tile colour: an icon is told by its glyph alone
FONT_SIZE = 9


@functools.cache
def _font() -> ImageFont.ImageFont:
    return ImageFont.load_default(size=FONT_SIZE)


def _text_width(word: str) -> int:
    return int(np.ceil(_font().getlength(word)))


def _cells_for(word: str) -> int:
    """Columns of a text widget: the word and 3 px either side, inside the 1 px inset."""
    return -(-(_text_width(word) + 8) // CELL)


def _place(kind: str, col: int, row: int, cols: int, **fields) -> dict[str, Any]:
    box = (col * CELL + 1, row * CELL + 1, (col + cols) * CELL - 1, (row + ROW) * CELL - 1)
    return dict(type=kind, text=fields.get("text"), icon=fields.get("icon"), on=fields.get("on"),
                colour=fields.get("colour"), box=box)


def screen(rng: np.random.Generator, orientation: str | None = None) -> dict[str, Any]:
    """A screen's description: dict(orientation, width, height, widgets (each: type, text, icon, on, colour, box),
    top to bottom, left to right); drawn again until it has a widget."""
    orientation = orientation or pick(rng, tuple(SCREENS))
    while True:
        scr = _draw_screen(rng, orientation)
        if scr["widgets"]:
            return scr


def _draw_screen(rng: np.random.Generator, orientation: str) -> dict[str, Any]:
    width, height = SCREENS[orientation]
    cols, rows = width // CELL, height // CELL
    words = [PAGE_WORDS[int(j)] for j in rng.permutation(len(PAGE_WORDS))]
    icons = [ICONS[int(j)] for j in rng.permutation(len(ICONS))]
    widgets: list[dict[str, Any]] = []
    tabs = rng.random() < TAB_PROBABILITY
    body = rows - (ROW if tabs else 0)
    for row in range(0, body - ROW + 1, ROW):
        if rng.random() < EMPTY_ROW:
            continue
        col, placed = int(rng.integers(2)), 0
        while placed < PER_ROW[orientation]:
            kind = pick(rng, ("button", "label", "icon", "toggle", "field"))
            if kind == "icon" and not icons:
                kind = "label"
            if kind in ("button", "label", "field"):
                word = words[-1]
                span = _cells_for(word) + (2 if kind == "field" else 0)
            else:
                span = 2 if kind == "icon" else 3
            if col + span > cols:
                break
            if kind == "icon":
                widgets.append(_place(kind, col, row, span, icon=icons.pop()))
            elif kind == "toggle":
                widgets.append(_place(kind, col, row, span, on=bool(rng.integers(2))))
            else:
                widgets.append(_place(kind, col, row, span, text=words.pop(),
                                      colour=pick(rng, _BUTTONS) if kind == "button" else None))
            col, placed = col + span + int(rng.integers(2)), placed + 1
    if tabs:
        n = 3 if orientation == "portrait" else 4
        span = cols // n
        for i in range(n):
            widgets.append(_place("tab", i * span, rows - ROW, span, text=words.pop()))
    return dict(orientation=orientation, width=width, height=height, widgets=widgets)


def _glyph(draw: ImageDraw.ImageDraw, name: str, box: tuple[int, int, int, int]) -> None:
    x1, y1, x2, y2 = box[0] + 3, box[1] + 3, box[2] - 4, box[3] - 4  # inside the tile (inclusive corners)
    cx, cy, ink = (x1 + x2) // 2, (y1 + y2) // 2, (0, 0, 0)
    if name == "play":
        draw.polygon([(x1, y1), (x2, cy), (x1, y2)], fill=ink)
    elif name == "stop":
        draw.rectangle((x1 + 1, y1 + 1, x2 - 1, y2 - 1), fill=ink)
    elif name == "menu":
        for y in (y1, cy, y2):
            draw.line((x1, y, x2, y), fill=ink, width=1)
    elif name == "plus":
        draw.line((cx, y1, cx, y2), fill=ink, width=2)
        draw.line((x1, cy, x2, cy), fill=ink, width=2)
    elif name == "close":
        draw.line((x1, y1, x2, y2), fill=ink, width=2)
        draw.line((x1, y2, x2, y1), fill=ink, width=2)
    elif name == "back":
        draw.line((x2, y1, x1, cy), fill=ink, width=2)
        draw.line((x1, cy, x2, y2), fill=ink, width=2)
    else:
        raise ValueError(f"icon {name!r} is not one of {', '.join(ICONS)}.")


def _word(draw: ImageDraw.ImageDraw, word: str, box: tuple[int, int, int, int], ink: tuple[int, ...]) -> None:
    x1, y1, x2, y2 = box
    left = (x1 + x2 - _text_width(word)) // 2
    draw.text((left, (y1 + y2) // 2), word, fill=ink, font=_font(), anchor="lm")


def draw_widget(draw: ImageDraw.ImageDraw, w: dict[str, Any]) -> None:
    """One widget, every pixel inside its box and its box's edges drawn (x2, y2 exclusive)."""
    x1, y1, x2, y2 = w["box"]
    inner = (x1, y1, x2 - 1, y2 - 1)  # PIL's rectangles include both corners
    if w["type"] == "button":
        draw.rectangle(inner, fill=COLOURS[w["colour"]])
        _word(draw, w["text"], w["box"], (255, 255, 255))
    elif w["type"] == "label":
        draw.rectangle(inner, fill=(222, 222, 222))
        _word(draw, w["text"], w["box"], (0, 0, 0))
    elif w["type"] == "field":
        draw.rectangle(inner, fill=(255, 255, 255), outline=(120, 120, 120))
        _word(draw, w["text"], w["box"], (90, 90, 90))
    elif w["type"] == "tab":
        draw.rectangle(inner, fill=(190, 200, 235))
        _word(draw, w["text"], w["box"], (0, 0, 0))
    elif w["type"] == "toggle":
        draw.rectangle(inner, fill=(30, 170, 50) if w["on"] else (170, 170, 170))
        knob = (x2 - 11, y1 + 2, x2 - 3, y2 - 3) if w["on"] else (x1 + 2, y1 + 2, x1 + 10, y2 - 3)
        draw.rectangle(knob, fill=(255, 255, 255))
    elif w["type"] == "icon":
        draw.rectangle(inner, fill=ICON_TILE)
        _glyph(draw, w["icon"], w["box"])
    else:
        raise ValueError(f"widget type {w['type']!r} is not one of {', '.join(WIDGET_TYPES)}.")


def render_screen(scr: dict[str, Any]) -> np.ndarray:
    """The screen's pixels, uint8 RGB [height, width, 3]."""
    img = Image.new("RGB", (scr["width"], scr["height"]), BACKGROUND)
    draw = ImageDraw.Draw(img)
    for w in scr["widgets"]:
        draw_widget(draw, w)
    return np.asarray(img)


def png(pixels: np.ndarray) -> bytes:
    """The pixels as PNG bytes (lossless: a box is exactly where its pixels are)."""
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return buf.getvalue()


def question_families(scr: dict[str, Any]) -> list[str]:
    """The families a screen answers (icons need an icon, text a word, find_widget a type found once)."""
    kinds = [w["type"] for w in scr["widgets"]]
    has_text, has_icon = any(w["text"] for w in scr["widgets"]), "icon" in kinds
    once = any(kinds.count(k) == 1 for k in kinds)
    return [f for f in UI_QUESTIONS if f == "widget_classification" and kinds
            or f in ("icon_recognition", "find_icons") and has_icon or f in ("ocr", "find_text") and has_text
            or f == "find_widget" and once]


def ui_question(rng: np.random.Generator, scr: dict[str, Any], family: str) -> dict[str, Any]:
    """A question of `family` about the screen: dict(family, question, answer (with <bbox_location0> for a box),
    boxes (box_x1y1x2y2 of the question and answer turns: [[box], []] referring, [[], [box]] grounding),
    widget (the one asked about))."""
    ws = scr["widgets"]
    if family == "widget_classification":
        w = pick(rng, ws)
        question, answer = "what is the type of the widget <bbox_location0> ?", f"{w['type']} ."
    elif family in ("icon_recognition", "find_icons"):
        w = pick(rng, [w for w in ws if w["type"] == "icon"])
        question, answer = (("what is the icon <bbox_location0> ?", f"{w['icon']} .") if family == "icon_recognition"
                            else (f"where is the {w['icon']} icon ?", "<bbox_location0> ."))
    elif family in ("ocr", "find_text"):
        w = pick(rng, [w for w in ws if w["text"]])
        question, answer = (("what does the text <bbox_location0> say ?", f"{w['text']} .") if family == "ocr"
                            else (f"where is the text {w['text']} ?", "<bbox_location0> ."))
    elif family == "find_widget":
        kinds = [w["type"] for w in ws]
        w = pick(rng, [w for w in ws if kinds.count(w["type"]) == 1])
        question, answer = f"where is the {w['type']} ?", "<bbox_location0> ."
    else:
        raise ValueError(f"UI question family {family!r} is not one of {', '.join(UI_QUESTIONS)}.")
    box = list(w["box"])
    boxes = [[box], []] if family in REFERRING else [[], [box]]
    return dict(family=family, question=question, answer=answer, boxes=boxes, widget=w)


def ui_record(rng: np.random.Generator, image_name: str, index: int = 0) -> tuple[bytes, dict[str, Any]]:
    """A training screen (either orientation) with 1-3 questions of distinct families, as a Ferret-UI record: PNG
    bytes and {"id", "image", "image_h", "image_w", "conversations", "box_x1y1x2y2" (one list per turn)}."""
    scr = screen(rng)
    families = question_families(scr)
    picked = [families[int(j)] for j in rng.permutation(len(families))[: int(rng.integers(1, 4))]]
    turns, boxes = [], []
    for k, family in enumerate(picked):
        q = ui_question(rng, scr, family)
        turns += [{"from": "human", "value": ("<image>\n" if k == 0 else "") + q["question"]},
                  {"from": "gpt", "value": q["answer"]}]
        boxes += q["boxes"]
    rec = {"id": f"ui-{index:05d}", "image": image_name, "image_h": scr["height"], "image_w": scr["width"],
           "conversations": turns, "box_x1y1x2y2": boxes}
    return png(render_screen(scr)), rec


def ui_eval_record(rng: np.random.Generator, image_name: str, orientation: str, family: str, index: int = 0
                   ) -> tuple[bytes, dict[str, Any]]:
    """A held-out screen of `orientation` with one question of `family`, in the shape `readers.ui` reads (the gold
    answer is the second turn; a grounding answer's box is box_x1y1x2y2[1])."""
    while True:
        scr = screen(rng, orientation)
        if family in question_families(scr):
            break
    q = ui_question(rng, scr, family)
    rec = {"id": index, "image": image_name, "image_h": scr["height"], "image_w": scr["width"],
           "conversations": [{"from": "human", "value": "<image>\n" + q["question"]},
                             {"from": "gpt", "value": q["answer"]}],
           "box_x1y1x2y2": q["boxes"]}
    return png(render_screen(scr)), rec
