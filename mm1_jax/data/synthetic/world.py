"""The embedded world's facts and words: its colours, shapes, counts, positions and vocabulary, the word-level tokenizer
over that closed vocabulary, and the small phrases every text of the world is built from."""
from typing import Any

import numpy as np

from mm1_jax.data import tokenizer as tokenizer_lib

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
# words of the interleaved conventions, dense captions, pages and SFT categories
MORE_WORDS = (
    "i", "see", "objects", "top", "bottom", "centre", "nothing", "above", "region", "both", "images", "total",
    "not", "which", "same", "do", "Image", "In", "title", "line", "row", "first", "sign", "number", "to", "plus",
    "name", "show",
)
# words of the videos' questions and answers (mm1_jax.data.synthetic.videos)
VIDEO_WORDS = ("appear", "appears", "last", "way", "move", "up", "down", "turn")
# words of the UI screens' questions and answers (mm1_jax.data.synthetic.screens: widget types, icon names, the
# brackets of Ferret's coordinates "[x1, y1, x2, y2]"; the numbers 0-999 of its grid are in `vocabulary`)
UI_WORDS = ("type", "widget", "button", "label", "toggle", "field", "tab", "icon",
            "play", "stop", "menu", "close", "back", "[", "]")
GRID_NUMBERS = 1000  # every number 0-999 is one word: Ferret's 0-999 grid (mm1_jax.data.coordinates)


def vocabulary() -> list[str]:
    """Every word of the world, sorted, after the special tokens (ids are stable across runs)."""
    words = set(BASE_WORDS) | set(MORE_WORDS) | set(VIDEO_WORDS) | set(UI_WORDS) | set(COUNTS) | set(PAGE_WORDS)
    words |= {str(i) for i in range(GRID_NUMBERS)}
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


def vocab_size() -> int:
    """Tokens of the world's tokenizer (`build_tokenizer`), known without writing it: every special token is a
    word of `vocabulary()`."""
    return len(vocabulary())


def pick(rng: np.random.Generator, options) -> Any:
    """One of `options` (what rng.choice draws, from the same stream, without its overhead)."""
    return options[int(rng.integers(len(options)))]


def article(word: str) -> str:
    """"a" or "an" before `word`."""
    return "an" if word[0] in "aeiou" else "a"


def shapes_phrase(n: int) -> str:
    """"one shape", "three shapes"."""
    return f"{COUNTS[n]} {'shape' if n == 1 else 'shapes'}"


def and_list(parts: list[str]) -> str:
    """"a", "a and b", "a , b and c"."""
    return parts[0] if len(parts) == 1 else " , ".join(parts[:-1]) + " and " + parts[-1]
