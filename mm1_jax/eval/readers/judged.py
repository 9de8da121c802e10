"""The judged benchmarks' release files: LLaVA-Bench (In-the-Wild), MM-Vet, Ferret-Bench. Their answers are graded by
a model judge (`mm1_jax.eval.judge`, `scorers.judged`); the items carry in `meta` what the judge is shown.

Formats as released (field names as in the files):
  LLaVA-Bench (In-the-Wild)  liuhaotian/llava-bench-in-the-wild (the Hugging Face dataset; LLaVA's docs/Evaluation.md
      extracts it to playground/data/eval/llava-bench-in-the-wild): questions.jsonl {"image", "text", "category"
      (conv / detail / complex), "question_id"}, context.jsonl {"id", "image", "caption"} (one a image; caption a
      string), answers_gpt4.jsonl {"question_id", "prompt", "answer_id", "model_id", "metadata", "text"} (the
      text-only GPT-4 reference answers), images/.
  MM-Vet  mm-vet.zip (yuweihao/MM-Vet release v1): mm-vet.json {"v1_0": {"imagename", "capability": [...],
      "question", "answer"}, ...} and images/.
  Ferret-Bench  apple/ml-ferret ferret/eval/ferret_gpt4_data/ (at 3c9e5c93): one folder per category, each with
      question.jsonl {"question_id", "image", "category", "text"} (regions written "[x1, y1, x2, y2]" in [0, 1]),
      context.jsonl {"question_id", "image", "category", "text"} (objects, relationships, region descriptions and
      captions: what the judge is shown) and answer.jsonl (same fields; GPT-4's answers). The refer_desc category's
      folder is released as refer_caption/ (gpt4_eval_script.sh calls it refer_desc/: both are read). Images: COCO
      val2017 (model_gpt4eval_3newclass.py's default image_path, "dataset/cocoval2017").
The official scripts pair questions, reference answers and model answers line by line (zip); here references are
joined to questions by question_id (a question without one is skipped), contexts by image as the scripts do.
"""
from __future__ import annotations

import os
import re
from typing import Any

from mm1_jax.eval.prompts import Item
from mm1_jax.eval.readers.common import (Collect, Skip, fail, image_folder, load_json, load_jsonl, need, record_id,
                                         required)
from mm1_jax.eval.scorers.judged import FERRET_CATEGORIES, FERRET_GRID, LLAVA_CATEGORIES

FERRET_FOLDERS = {"refer_desc": ("refer_caption", "refer_desc"), "refer_reason": ("refer_reason",),
                  "ground_conv": ("ground_conv",)}


def _folder(task: str, annotations: str, what: str) -> str:
    root = required(task, "annotations", annotations)
    if not os.path.isdir(root):
        raise ValueError(f"eval task {task!r}: {root!r} (config.eval.{task}.annotations) is not an existing folder "
                         f"({what}).")
    return root


def _file(task: str, root: str, name: str, what: str) -> str:
    path = os.path.join(root, name)
    if not os.path.isfile(path):
        raise fail(task, root, f"has no {name} ({what})")
    return path


def _lookup(out: Collect, task: str, path: str, key: str, value: str, kinds: tuple) -> dict[Any, Any]:
    """{record[key]: record[value]} of a JSON-lines file; a record without them is listed in `skipped`."""
    table = {}
    for n, rec in load_jsonl(task, "annotations", path):
        try:
            if isinstance(rec, Skip):
                raise rec
            table[need(rec, key, (int, str))] = need(rec, value, kinds)
        except Skip as e:
            out.skip(f"{os.path.basename(path)}:{n}", path, f"line {n}", str(e))
    return table


def _id_key(value: Any) -> Any:
    return str(value)


# --- LLaVA-Bench (In-the-Wild) -------------------------------------------------------------------------------------


def read_llava_w(task: str, *, annotations: str, images: str = "") -> tuple[list[Item], list[dict]]:
    """LLaVA-Bench (In-the-Wild): `annotations` is the release folder (questions.jsonl, context.jsonl,
    answers_gpt4.jsonl), `images` its images/ folder (default <annotations>/images). id = str(question_id);
    question = text; answers = [the GPT-4 reference]; meta = {"category", "caption" (as released), "reference",
    "question_id", "image"}."""
    root = _folder(task, annotations, "the llava-bench-in-the-wild folder")
    questions = _file(task, root, "questions.jsonl", "the questions")
    folder = image_folder(task, images or os.path.join(root, "images"))
    out = Collect()
    contexts = _lookup(out, task, _file(task, root, "context.jsonl", "the image captions"), "image", "caption",
                       (str, list))
    references = {_id_key(k): v for k, v in _lookup(out, task, _file(task, root, "answers_gpt4.jsonl",
                                                                     "the GPT-4 reference answers"),
                                                    "question_id", "text", (str,)).items()}

    def make(rec: Any) -> Item:
        if isinstance(rec, Skip):
            raise rec
        qid = need(rec, "question_id", (int, str))
        image = need(rec, "image", str)
        category = need(rec, "category", str)
        if category not in LLAVA_CATEGORIES:
            raise Skip(f"category {category!r} is not one of {', '.join(LLAVA_CATEGORIES)} (rule.json has no "
                       f"'llava_bench_{category}')")
        if image not in contexts:
            raise Skip(f"context.jsonl has no caption for image {image!r}")
        caption = contexts[image]
        if isinstance(caption, list) and not all(isinstance(c, str) for c in caption):
            raise Skip(f"the caption of image {image!r} is a list with non-strings in it")
        if _id_key(qid) not in references:
            raise Skip(f"answers_gpt4.jsonl has no reference answer for question_id {qid!r}")
        reference = references[_id_key(qid)]
        return Item(id=str(qid), images=[os.path.join(folder, image)], question=need(rec, "text", str),
                    answers=[reference], meta={"category": category, "caption": caption, "reference": reference,
                                               "question_id": qid, "image": image})

    for n, rec in load_jsonl(task, "annotations", questions):
        out.add(questions, f"line {n}", record_id(rec, "question_id", n), make, rec)
    return out.result()


# --- MM-Vet --------------------------------------------------------------------------------------------------------


def read_mmvet(task: str, *, annotations: str, images: str = "") -> tuple[list[Item], list[dict]]:
    """MM-Vet: `annotations` is mm-vet.json or the folder holding it, `images` the images/ folder (default: beside
    mm-vet.json). id = the record's key ("v1_0"); question as released; answers = [answer] (with its <AND> / <OR>);
    meta = {"capability" (as released), "answer", "image"}."""
    path = required(task, "annotations", annotations)
    if os.path.isdir(path):
        path = _file(task, path, "mm-vet.json", "the MM-Vet questions")
    data = load_json(task, "annotations", path, dict, 'a JSON object {"v1_0": {...}, ...} (mm-vet.json)')
    folder = image_folder(task, images or os.path.join(os.path.dirname(path), "images"))
    out = Collect()

    def make(key: str, rec: Any) -> Item:
        capability = need(rec, "capability", list)
        if not capability or not all(isinstance(c, str) for c in capability):
            raise Skip(f"field 'capability' is {'empty' if not capability else 'a list with non-strings in it'}")
        image = need(rec, "imagename", str)
        answer = need(rec, "answer", str)
        return Item(id=key, images=[os.path.join(folder, image)], question=need(rec, "question", str),
                    answers=[answer], meta={"capability": list(capability), "answer": answer, "image": image})

    for key, rec in data.items():
        out.add(path, key, key, make, key, rec)
    return out.result()


# --- Ferret-Bench --------------------------------------------------------------------------------------------------

_BRACKET = re.compile(r"\[.*?\]")


def ferret_regions(text: str, grid: int = FERRET_GRID) -> tuple[str, list[list[float]]]:
    """The question as Ferret's model is asked it (model_gpt4eval_3newclass.py without region features: every
    "[x1, y1, x2, y2]" in [0, 1] rewritten as int(v * 1000) on the grid) and the regions in [0, 1]; Skip when a
    bracket does not hold 4 numbers (the official reader fails there)."""
    regions = []
    for match in _BRACKET.findall(text):
        try:
            box = [float(v.strip()) for v in match[1:-1].split(",")]
        except ValueError:
            raise Skip(f"region {match!r} does not hold numbers") from None
        if len(box) != 4:
            raise Skip(f"region {match!r} has {len(box)} numbers, not 4")
        regions.append(box)
        text = text.replace(match, "[" + ", ".join(str(int(v * grid)) for v in box) + "]")
    return text, regions


def read_ferret_bench(task: str, *, annotations: str, images: str,
                      categories: str = "refer_desc,refer_reason,ground_conv") -> tuple[list[Item], list[dict]]:
    """Ferret-Bench: `annotations` is the ferret_gpt4_data folder, `images` COCO val2017; the `categories` listed
    (comma-separated) are read, a category whose folder is absent is listed in `skipped`. id = "<category>/
    <question_id>"; question = the text with its regions on Ferret's 0-999 grid; answers = [GPT-4's answer]; meta =
    {"category", "context", "reference", "release_question" (the text as released, what the judge is shown),
    "regions" ([0, 1] boxes), "question_id", "image"}."""
    root = _folder(task, annotations, "the ferret_gpt4_data folder")
    wanted = [c.strip() for c in str(categories).split(",") if c.strip()]
    unknown = [c for c in wanted if c not in FERRET_CATEGORIES]
    if unknown or not wanted:
        raise ValueError(f"eval task {task!r}: config.eval.{task}.categories={categories!r}: the Ferret-Bench "
                         f"categories are {', '.join(FERRET_CATEGORIES)}.")
    found = {c: next((os.path.join(root, f) for f in FERRET_FOLDERS[c] if os.path.isdir(os.path.join(root, f))), "")
             for c in wanted}
    if not any(found.values()):
        raise fail(task, root, f"expected the ferret_gpt4_data folder, with a folder per category "
                               f"({', '.join(f for c in wanted for f in FERRET_FOLDERS[c])}); none is there")
    folder = image_folder(task, images)
    out = Collect()
    for category in wanted:
        where = found[category]
        if not where:
            out.skip(category, root, category, f"the category folder ({' or '.join(FERRET_FOLDERS[category])}) "
                                               f"is absent")
            continue
        questions = _file(task, where, "question.jsonl", "the questions")
        contexts = _lookup(out, task, _file(task, where, "context.jsonl", "the judge's context"), "image", "text",
                           (str,))
        references = {_id_key(k): v for k, v in _lookup(out, task, _file(task, where, "answer.jsonl",
                                                                         "GPT-4's answers"),
                                                        "question_id", "text", (str,)).items()}

        def make(rec: Any, category: str = category, contexts: dict = contexts, references: dict = references
                 ) -> Item:
            if isinstance(rec, Skip):
                raise rec
            qid = need(rec, "question_id", (int, str))
            image = need(rec, "image", str)
            text = need(rec, "text", str)
            written = need(rec, "category", str)
            if written != category:
                raise Skip(f"category {written!r} in the {category} folder")
            if image not in contexts:
                raise Skip(f"context.jsonl has no context for image {image!r}")
            if _id_key(qid) not in references:
                raise Skip(f"answer.jsonl has no answer for question_id {qid!r}")
            question, regions = ferret_regions(text)
            return Item(id=f"{category}/{qid}", images=[os.path.join(folder, image.split("/")[-1])],
                        question=question, answers=[references[_id_key(qid)]],
                        meta={"category": category, "context": contexts[image], "reference": references[_id_key(qid)],
                              "release_question": text, "regions": regions, "question_id": qid, "image": image})

        for n, rec in load_jsonl(task, "annotations", questions):
            out.add(questions, f"line {n}", f"{category}/{record_id(rec, 'question_id', n)}", make, rec)
    return out.result()

