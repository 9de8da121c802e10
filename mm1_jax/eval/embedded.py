"""The embedded benchmark: held-out items of the synthetic world, so every config can be scored on CPU.

Each task returns (eval items, support items): the support split gives the few-shot demonstrations. Items are drawn
with the synthetic module's public functions from seeds the training data never uses (training uses [seed, i] for
i < len(synthetic.STREAMS)); VQA reads the dataset's own held-out `eval/vqa.json` and its training `sft/vqa.json`
as support.

  cap        caption 1-2 shapes                         CIDEr-D, exact match
  vqa        colour / count / yes-no questions         VQA accuracy (the one answer x 10 humans), exact match
  ocr        read the rendered word                     exact match
  grounding  "where is the red circle ?" -> <box>      accuracy at IoU >= 0.5 (coordinates 0-99 of the side)
  multi      4 images, "image X" addressing (mPLUG-Owl3's distractor protocol: one image holds the answer)
  mc         colour question, options listed in the prompt, scored by likelihood, circular over rotations
  text       TextCore-style: "a red square has" -> {0, 3, 4} corners by likelihood
  fewshot    caption 1-2 shapes in one of the interleaved documents' conventions (`synthetic.CONVENTIONS`; item
             meta "group"): demonstrations of the same convention show it, 0-shot cannot know it; exact match, CIDEr
  docvqa     a question about a held-out text-rich page (256-512 px: document, table, sign)  exact match, ANLS
  count      3-8 small shapes (96-128 px): how many, what is at a position, left of / above   exact match
  distractors  mc's questions, each image among num_images - 1 others: "Image 1: <image> ... In Image X, ..."
             (mPLUG-Owl3 Sec. 4.5), CircularEval; a reader-backed task (`read_colour_questions`), so config
             sections with kind='embedded_distractors' add other N
  video      200 held-out clips (`synthetic.videos`: order, direction, count, colour change, 50 each), one question
             each with 4 options, scored by likelihood: accuracy (chance 0.25); item meta "type" is the kind
  video_open the same questions answered in words: exact match
  ui_ref     held-out UI screens (`synthetic.screens`), Ferret-UI's referring questions: the widget's type, its icon,
             its text, given its box "[x1, y1, x2, y2]" (0-999 grid); exact match per (platform, family), "accuracy"
             their mean (Ref-i / Ref-A as ref_i / ref_a). Chance (a uniform guess of the right kind of answer): type
             1/6, icon 1/6, text 1/40 (`PAGE_WORDS`): 0.12 mean (the six widget types are each 14-18% of the
             widgets, so always answering one type is no better). 30 screens a (platform, family) cell.
  ui_grd     the same screens' grounding questions: find a text, an icon, the one widget of a type -> a box; a hit
             at IoU >= 0.5 of the first box (Ferret-UI's grounding rule as scorers.ui reads it). Chance: a box of a
             widget of the screen drawn at random hits 0.06 (17 widgets a screen on average; measured over 3,000
             screens); a box that is no widget's scores less.
The video tasks are reader-backed (`read_video_choice`, `read_video_open`) so that their items take the path every
video benchmark takes: meta["video"] names the clip's .mp4 file, and `mm1_jax.eval.tasks.load_task` puts its frames
(eval.video_frames, else data.video.frames; the embedded data configs': 8, 'uniform') before the question. The clips
are written once into the cache (`synthetic.cache_directory`) from the eval seed, never a training seed.
"""
from __future__ import annotations

import json
import os
import pathlib

import numpy as np

from mm1_jax.data import synthetic
from mm1_jax.data.synthetic import writers
from mm1_jax.eval.prompts import Item
from mm1_jax.eval.readers import ui as ui_reader

EVAL_SEED = 424_242  # not a training seed
HUMANS = 10  # VQA accuracy needs 10 human answers; the world's one exact answer is given 10 times


def _rng(task: str, split: str) -> np.random.Generator:
    return np.random.default_rng([EVAL_SEED, sum(map(ord, task)), split == "support"])


def captioning(n: int, split: str) -> list[Item]:
    rng = _rng("cap", split)
    items = []
    for i in range(n):
        data, objects = synthetic.shapes_image(rng, int(rng.integers(1, 3)))
        items.append(Item(id=f"cap-{split}-{i}", images=[data], answers=[synthetic.describe(objects) + " ."]))
    return items


def vqa(root: str, n: int, split: str) -> list[Item]:
    """The first n question turns of eval/vqa.json (held out) or sft/vqa.json (training dialogues, for support)."""
    path = os.path.join(root, "eval" if split == "eval" else "sft", "vqa.json")
    with open(path) as f:
        records = json.load(f)
    items = []
    for r in records:
        refs = r["image"] if isinstance(r["image"], list) else [r["image"]]
        turns = r["conversations"]
        for j, (ask, reply) in enumerate(zip(turns[::2], turns[1::2])):
            if len(items) == n:
                return items
            question = ask["value"].replace("<image>", "").strip()
            image = os.path.join(os.path.dirname(path), refs[j])
            items.append(Item(id=f"vqa-{split}-{r['id']}-{j}", images=[image], question=question,
                              answers=[reply["value"]] * HUMANS))
    return items


def ocr(n: int, split: str) -> list[Item]:
    rng = _rng("ocr", split)
    items = []
    for i in range(n):
        data, word = synthetic.text_image(rng)
        items.append(Item(id=f"ocr-{split}-{i}", images=[data], question="what does the text say ?",
                          answers=[f"{word} ."]))
    return items


def grounding(n: int, split: str) -> list[Item]:
    rng = _rng("grounding", split)
    items = []
    for i in range(n):
        data, record = synthetic.grounding_record(rng, f"g-{i}.jpg")
        question = record["conversations"][0]["value"].replace("<image>", "").strip()
        items.append(Item(id=f"grounding-{split}-{i}", images=[data], question=question,
                          answers=[record["conversations"][1]["value"]]))
    return items


def multi_image(n: int, split: str, num_images: int = 4) -> list[Item]:
    rng = _rng("multi", split)
    items = []
    for i in range(n):
        pics, objects = zip(*[synthetic.shapes_image(rng, 1) for _ in range(num_images)])
        target = int(rng.integers(0, num_images))
        shape = objects[target][0]["shape"]
        listing = " ".join(f"image {j + 1} <image>" for j in range(num_images))
        items.append(Item(id=f"multi-{split}-{i}", images=list(pics), answers=[f"{objects[target][0]['colour']} ."],
                          question=f"{listing} what colour is the {shape} in image {target + 1} ?"))
    return items


def multiple_choice(n: int, split: str, num_options: int = 3) -> list[Item]:
    rng = _rng("mc", split)
    items = []
    for i in range(n):
        data, objects = synthetic.shapes_image(rng, 1)
        truth = objects[0]["colour"]
        others = [c for c in rng.permutation(list(synthetic.COLOURS)) if c != truth][: num_options - 1]
        options = [truth] + [str(c) for c in others]
        order = rng.permutation(num_options)
        options = [options[j] for j in order]
        items.append(Item(id=f"mc-{split}-{i}", images=[data], question=f"what colour is the {objects[0]['shape']} ?",
                          options=[f"{o} ." for o in options], answer_index=int(np.argmax(order == 0)),
                          answers=[f"{truth} ."]))
    return items


def read_colour_questions(task: str) -> tuple[list[Item], list[dict]]:  # noqa: ARG001 (a reader's signature)
    """`multiple_choice`'s 200 held-out items as a file reader returns them (nothing skipped): the pool the
    `embedded_distractors` task draws its questions and distractor images from."""
    return multiple_choice(200, "eval"), []


def text_choice(n: int, split: str) -> list[Item]:
    rng = _rng("text", split)
    items = []
    for i in range(n):
        shape, colour = str(rng.choice(synthetic.SHAPES)), str(rng.choice(list(synthetic.COLOURS)))
        article = "an" if colour[0] in "aeiou" else "a"
        options = [f"{c} corners ." for c in ("0", "3", "4")]
        answer = options.index(f"{synthetic.CORNERS[shape]} corners .")
        items.append(Item(id=f"text-{split}-{i}", images=[], question="", options=options, answer_index=answer,
                          answers=[options[answer]], meta={"context": f"{article} {colour} {shape} has"}))
    return items


def fewshot(n: int, split: str) -> list[Item]:
    """Captions in one of the conventions, taken in turn (meta["group"] names it, so demonstrations match it)."""
    rng = _rng("fewshot", split)
    items = []
    for i in range(n):
        data, objects = synthetic.shapes_image(rng, int(rng.integers(1, 3)))
        convention = synthetic.CONVENTIONS[i % len(synthetic.CONVENTIONS)]
        items.append(Item(id=f"fewshot-{split}-{i}", images=[data],
                          answers=[synthetic.convention_caption(objects, convention)], meta={"group": convention}))
    return items


def docvqa(n: int, split: str) -> list[Item]:
    """One question about each of n pages drawn from the eval seed (never a training page)."""
    rng = _rng("docvqa", split)
    items = []
    for i in range(n):
        data, page = synthetic.page_image(rng)
        question, answer, kind = synthetic.page_question(rng, page)
        items.append(Item(id=f"docvqa-{split}-{i}", images=[data], question=question, answers=[answer],
                          meta={"layout": page["layout"], "type": kind}))
    return items


def counting(n: int, split: str) -> list[Item]:
    """One counting or position question about each of n scenes of 3-8 small shapes."""
    rng = _rng("count", split)
    items = []
    for i in range(n):
        data, objects = synthetic.count_scene(rng)
        question, answer, kind = synthetic.count_question(rng, objects)
        items.append(Item(id=f"count-{split}-{i}", images=[data], question=question, answers=[answer],
                          meta={"type": kind}))
    return items


VIDEO_ITEMS = 200  # held-out clips of the video tasks, question kinds in turn


def video_root() -> str:
    """The folder of the video tasks' held-out clips (eval/video.json, eval/videos/*.mp4), written on first use."""
    directory = synthetic.cache_directory(f"{writers.VERSION}-video-eval{EVAL_SEED}-n{VIDEO_ITEMS}")
    rng = _rng("video", "eval")
    return synthetic.ensure_written(
        directory, lambda d: synthetic.write_videos(pathlib.Path(d), rng, "video", VIDEO_ITEMS, "eval", held_out=True),
        "the embedded video benchmark's clips", "a few seconds")


def video_questions(choice: bool) -> list[Item]:
    """The held-out clips' questions: with their 4 options (choice) or open; meta: the clip's path and the kind."""
    root = os.path.join(video_root(), "eval")
    with open(os.path.join(root, "video.json")) as f:
        records = json.load(f)
    items = []
    for r in records:
        ask, reply = r["conversations"][:2]
        item = Item(id=os.path.basename(r["id"]), images=[],
                    question=ask["value"].replace("<video>", "").strip(), answers=[reply["value"]],
                    meta={"video": os.path.join(root, r["video"]), "type": r["type"]})
        if choice:
            item.options, item.answer_index = list(r["options"]), int(r["answer_index"])
        items.append(item)
    return items


UI_ITEMS = 30  # held-out screens per (platform, question family): 90 referring and 90 grounding items a platform


def ui_root() -> str:
    """The folder of the UI tasks' held-out screens (Ferret-UI's evaluation files: <platform>/<family>_test.json,
    images/), written on first use from the eval seed."""
    directory = synthetic.cache_directory(f"{writers.VERSION}-ui-eval{EVAL_SEED}-n{UI_ITEMS}")
    rng = _rng("ui", "eval")
    return synthetic.ensure_written(directory, lambda d: synthetic.write_ui_eval(pathlib.Path(d), rng, UI_ITEMS, "ui"),
                                    "the embedded UI benchmark's screens", "a second")


def _read_ui(task: str, families: tuple[str, ...]) -> tuple[list[Item], list[dict]]:
    root = os.path.join(ui_root(), "ui")
    return ui_reader.read_ferret_ui(task, annotations=root, images=os.path.join(root, "images"),
                                    families=",".join(families))


def read_ui_ref(task: str) -> tuple[list[Item], list[dict]]:  # a reader's signature
    """The `embedded_ui_ref` task's items: the held-out screens' referring questions, read by Ferret-UI's reader."""
    return _read_ui(task, synthetic.screens.REFERRING)


def read_ui_grd(task: str) -> tuple[list[Item], list[dict]]:  # a reader's signature
    """The `embedded_ui_grd` task's items: the held-out screens' grounding questions, read by Ferret-UI's reader."""
    return _read_ui(task, synthetic.screens.GROUNDING)


def read_video_choice(task: str) -> tuple[list[Item], list[dict]]:  # a reader's signature
    """The `embedded_video` task's items as a file reader returns them (nothing skipped)."""
    return video_questions(choice=True), []


def read_video_open(task: str) -> tuple[list[Item], list[dict]]:  # a reader's signature
    """The `embedded_video_open` task's items as a file reader returns them (nothing skipped)."""
    return video_questions(choice=False), []
