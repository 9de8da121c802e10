"""What the world's texts say about a picture: the plain description (`describe`), the interleaved documents'
conventions, alt text with its noise, dense captions, and counting and position questions about a scene."""
from typing import Any

import numpy as np

from mm1_jax.data.synthetic.world import (COLOUR_NAMES, COLOURS, CORNERS, COUNTS, IMAGE_SIZE, PLURAL, POSITIONS, SHAPES,
                                          and_list, article, pick, shapes_phrase)


def describe(objects: list[dict[str, Any]]) -> str:
    """The plain description of a picture's objects: "a red circle and a blue square" (the captions' style)."""
    return " and ".join(f"{article(o['colour'])} {o['colour']} {o['shape']}" for o in objects)


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
        return " and ".join(names) + f" , {shapes_phrase(len(objects))} ."
    if convention == "colour_corners":
        return " and ".join(f"{nm} with {CORNERS[o['shape']]} corners" for nm, o in zip(names, objects)) + " ."
    if convention == "shape_first":
        return " and ".join(f"{o['shape']} , {o['colour']}" for o in objects) + " ."
    if convention == "objects_colon":
        return "objects : " + " , ".join(names) + " ."
    if convention == "i_see":
        return f"i see {describe(objects)} ."
    if convention == "count_first":
        return f"{shapes_phrase(len(objects))} : " + " , ".join(names) + " ."
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
        return pick(rng, ALT_GENERIC), kind
    return " and ".join(names), kind


def dense_caption(objects: list[dict[str, Any]]) -> str:
    """Every object of a `scene_image`, its colour and position, and the counts (VeCap-like)."""
    counts = [f"{COUNTS[k]} {s if k == 1 else PLURAL[s]}" for s in SHAPES
              if (k := sum(o["shape"] == s for o in objects))]
    each = [f"{article(o['colour'])} {o['colour']} {o['shape']} {o['position']}" for o in objects]
    return f"{shapes_phrase(len(objects))} : {and_list(counts)} . {' , '.join(each)} ."


def count_question(rng: np.random.Generator, objects: list[dict[str, Any]]) -> tuple[str, str, str]:
    """(question, answer, type) about a scene: how many (shapes / circles / red shapes), what is at a position, or
    whether one shape is left of / above another."""
    q = int(rng.integers(0, 5))
    if q == 1:
        shape = pick(rng, SHAPES)
        return f"how many {PLURAL[shape]} are there ?", f"{COUNTS[sum(o['shape'] == shape for o in objects)]} .", \
            "count_shape"
    if q == 2:
        colour = pick(rng, [o["colour"] for o in objects] if rng.random() < 0.7 else COLOUR_NAMES)
        return f"how many {colour} shapes are there ?", f"{COUNTS[sum(o['colour'] == colour for o in objects)]} .", \
            "count_colour"
    if q == 3:
        cell = int(rng.integers(9))
        at = [o for o in objects if o["cell"] == cell]
        answer = f"{article(at[0]['colour'])} {at[0]['colour']} {at[0]['shape']} ." if at else "nothing ."
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
