"""One record of each embedded source: (image bytes, caption) for the caption-like sources, an OBELICS document, a
text document, LLaVA conversations (`*_record(rng, image_name)` -> image bytes or a list of them, the record) and
video conversations (`video_record(rng, video_name)` -> .mp4 bytes, the record with "video" and a <video> marker)."""
from typing import Any

from mm1_jax.data.synthetic.descriptions import (CONVENTIONS, alt_text, convention_caption, count_question,
                                                 dense_caption, describe)
from mm1_jax.data.synthetic.images import count_scene, scene_image, shapes_image, text_image
from mm1_jax.data.synthetic.pages import page_image, page_question, page_text
from mm1_jax.data.synthetic.videos import question_kinds, render_video, video_bytes, video_question, video_scene
from mm1_jax.data.synthetic.world import COLOUR_NAMES, CORNERS, COUNTS, FILLER, IMAGE_SIZE, SHAPES, article, pick


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
        texts.append(pick(rng, FILLER) if i else "this document has pictures of shapes .")
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
        shape, colour = pick(rng, SHAPES), pick(rng, COLOUR_NAMES)
        sentences.append(f"{article(colour)} {colour} {shape} has {CORNERS[shape]} corners .")
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
        colour, shape = pick(rng, COLOUR_NAMES), pick(rng, SHAPES)
        present = any(o["colour"] == colour and o["shape"] == shape for o in objs)
        question, answer = f"is there {article(colour)} {colour} {shape} ?", "yes ." if present else "no ."
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
        pair = (f"{box} what is in this region ?", f"{article(o['colour'])} {o['colour']} {o['shape']} .")
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
        colour = pick(rng, [o["colour"] for o in objs])
        pair = (f"how many shapes are not {colour} ?", f"{sum(o['colour'] != colour for o in objs)} .")
    return _multi_image(image_name, [s[0] for s in scenes], "<image>\n" * len(scenes) + pair[0], pair[1])


def knowledge_record(rng, image_name: str) -> tuple[list[bytes], dict[str, Any]]:
    """A fact about shapes: asked in text ("how many corners does a triangle have ?") or about a picture."""
    q = int(rng.integers(0, 3))
    if rng.random() < 0.5:
        shape = pick(rng, SHAPES)
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
        pair = (f"which image shows {article(o['colour'])} {o['colour']} {o['shape']} ?", f"image {t + 1} .")
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
            shape = pick(rng, [s for s in SHAPES if s != last[1]])
            pairs.append((f"and a {shape} ?", f"a {shape} has {CORNERS[shape]} corners ."))
            last = ("corners", shape)
        elif last and last[0] == "plus" and q < 2:
            b = int(rng.integers(0, 10))
            pairs.append((f"and plus {b} ?", f"{last[1] + b} ."))
            last = ("plus", last[1] + b)
        elif q == 0:
            shape = pick(rng, SHAPES)
            pairs.append((f"how many corners does a {shape} have ?", f"a {shape} has {CORNERS[shape]} corners ."))
            last = ("corners", shape)
        elif q == 1:
            a, b = int(rng.integers(0, 10)), int(rng.integers(0, 10))
            pairs.append((f"what is {a} plus {b} ?", f"{a + b} ."))
            last = ("plus", a + b)
        elif q == 2:
            shape = pick(rng, SHAPES)
            pairs.append((f"which shape has {CORNERS[shape]} corners ?", f"a {shape} ."))
            last = None
        else:
            shape = pick(rng, SHAPES)
            pairs.append((f"is a {shape} round ?", "yes ." if shape == "circle" else "no ."))
            last = None
    return [], {"id": image_name.rsplit(".", 1)[0], "conversations": _turns(pairs)}


def video_record(rng, video_name: str) -> tuple[bytes, dict[str, Any]]:
    """A clip (`videos.video_scene`) and 1-3 questions of different kinds about it, "<video>" before the first; half
    of them multiple choice, the 4 options listed after the question as the evaluation lists them for a question
    with images ("which way does the red circle move ? up , left , down , right"; the answer is the option's text),
    as video SFT data holds multiple-choice questions (VideoChat2's)."""
    scene = video_scene(rng)
    kinds = question_kinds(scene)
    asked = rng.choice(len(kinds), int(rng.integers(1, min(3, len(kinds)) + 1)), replace=False)
    pairs = []
    for j in asked:
        q = video_question(rng, scene, kinds[int(j)])
        listed = " " + " , ".join(o.rstrip(" .") for o in q["options"]) if rng.random() < 0.5 else ""
        pairs.append((q["question"] + listed, q["answer"]))
    turns = _turns(pairs)
    turns[0]["value"] = "<video>\n" + turns[0]["value"]
    return video_bytes(render_video(scene)), {"id": video_name.rsplit(".", 1)[0], "video": video_name,
                                               "conversations": turns}


def video_eval_record(rng, video_name: str, kind: str) -> tuple[bytes, dict[str, Any]]:
    """A held-out clip with one question of `kind` (`videos.VIDEO_QUESTIONS`); the record also holds the question's
    kind ("type"), its 4 options and the answer's index among them (multiple choice)."""
    scene = video_scene(rng, need=kind)
    q = video_question(rng, scene, kind)
    rec = {"id": video_name.rsplit(".", 1)[0], "video": video_name,
           "conversations": _turns([("<video>\n" + q["question"], q["answer"])]),
           "type": kind, "options": q["options"], "answer_index": q["answer_index"]}
    return video_bytes(render_video(scene)), rec


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
