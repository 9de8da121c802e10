"""Open-ended VQA on photographs: VQAv2 / OK-VQA, VizWiz-VQA, TextVQA, GQA."""
from __future__ import annotations

import json
import os
from typing import Any

from mm1_jax.eval.prompts import Item
from mm1_jax.eval.readers.common import Collect, Skip, image_folder, load_json, need, record_id, strings, top_list
from mm1_jax.eval.scorers import gqa


def _pattern_name(task: str, pattern: str, image_id: Any) -> str:
    """The image file name for `image_id`: a pattern naming unknown fields is a config error (ValueError), a value
    the pattern cannot format skips the record."""
    try:
        return pattern.format(image_id=image_id)
    except (KeyError, IndexError, AttributeError) as e:
        raise ValueError(f"eval task {task!r}: config.eval.{task}.image_pattern {pattern!r} names a field other "
                         f"than image_id ({type(e).__name__}: {e}).") from None
    except (ValueError, TypeError) as e:
        raise Skip(f"image_pattern {pattern!r} cannot format image_id {image_id!r} ({e})") from None


def read_vqa(task: str, *, questions: str, annotations: str, images: str,
             image_pattern: str = "COCO_val2014_{image_id:012d}.jpg") -> tuple[list[Item], list[dict]]:
    """VQAv2 / OK-VQA (the same format):

      questions   v2_OpenEnded_mscoco_val2014_questions.json / OpenEnded_mscoco_val2014_questions.json:
                  {"questions": [{"question_id", "image_id", "question"}], "info", ...}
      annotations v2_mscoco_val2014_annotations.json / mscoco_val2014_annotations.json:
                  {"annotations": [{"question_id", "image_id", "answers": [{"answer", "answer_confidence",
                  "answer_id"}], "multiple_choice_answer", ...}], ...}
    answers = the 10 human answers; with annotations "" the items have none (predictions for the test server).
    image = <images>/image_pattern.format(image_id=...). meta = {"question_id", "image_id"}.
    """
    data = load_json(task, "questions", questions)
    records = top_list(task, questions, data, "questions")
    images = image_folder(task, images)
    out = Collect()
    answers: dict[Any, list[str] | Skip] | None = None
    if annotations:
        anns = top_list(task, annotations, load_json(task, "annotations", annotations), "annotations")
        answers = {}
        for i, ann in enumerate(anns):
            try:
                qid = need(ann, "question_id", (int, str))
            except Skip as e:
                out.skip(i, annotations, f"annotations[{i}]", str(e))
                continue
            try:
                humans = need(ann, "answers", list)
                answers[qid] = [str(need(h, "answer", name=f"answers[{j}].answer")) for j, h in enumerate(humans)]
            except Skip as e:
                answers[qid] = Skip(str(e), annotations, f"annotations[{i}]")

    def make(rec: Any) -> Item:
        qid = need(rec, "question_id", (int, str))
        image_id = need(rec, "image_id", (int, str))
        question = need(rec, "question", str)
        refs: list[str] = []
        if answers is not None:
            if qid not in answers:
                raise Skip(f"no record in {annotations} has question_id {qid!r}")
            found = answers[qid]
            if isinstance(found, Skip):
                raise Skip(str(found), found.file, found.where)
            refs = list(found)
        name = _pattern_name(task, image_pattern, image_id)
        return Item(id=str(qid), images=[os.path.join(images, name)], question=question, answers=refs,
                    meta={"question_id": qid, "image_id": image_id})

    for i, rec in enumerate(records):
        out.add(questions, f"questions[{i}]", record_id(rec, "question_id", i), make, rec)
    return out.result()


def read_vizwiz(task: str, *, annotations: str, images: str) -> tuple[list[Item], list[dict]]:
    """VizWiz-VQA val.json (test.json: no answers): a list of {"image": "VizWiz_val_00000000.jpg", "question",
    "answers": [{"answer", "answer_confidence"}] * 10, "answer_type", "answerable"}. answers = the 10 answer
    strings ("unanswerable" included); id = the image name without extension; meta = {"image"}."""
    records = load_json(task, "annotations", annotations, list, "a JSON list of questions")
    images = image_folder(task, images)
    out = Collect()

    def make(rec: Any) -> Item:
        image = need(rec, "image", str)
        question = need(rec, "question", str)
        refs = []
        if rec.get("answers") is not None:
            humans = need(rec, "answers", list)
            refs = [str(need(h, "answer", name=f"answers[{j}].answer")) for j, h in enumerate(humans)]
        return Item(id=os.path.splitext(image)[0], images=[os.path.join(images, image)], question=question,
                    answers=refs, meta={"image": image})

    for i, rec in enumerate(records):
        out.add(annotations, f"[{i}]", record_id(rec, "image", i), make, rec)
    return out.result()


def read_textvqa(task: str, *, annotations: str, images: str,
                 image_pattern: str = "{image_id}.jpg") -> tuple[list[Item], list[dict]]:
    """TextVQA TextVQA_0.5.1_val.json (images: train_images/): {"dataset_name", "data": [{"question_id", "image_id",
    "question", "answers": [10 strings], "image_classes", "flickr_original_url", ...}]}; test records have no
    answers. meta = {"question_id", "image_id"}."""
    records = top_list(task, annotations, load_json(task, "annotations", annotations), "data")
    images = image_folder(task, images)
    out = Collect()

    def make(rec: Any) -> Item:
        qid = need(rec, "question_id", (int, str))
        image_id = need(rec, "image_id", (int, str))
        question = need(rec, "question", str)
        refs = strings(rec["answers"], "answers") if rec.get("answers") is not None else []
        name = _pattern_name(task, image_pattern, image_id)
        return Item(id=str(qid), images=[os.path.join(images, name)], question=question, answers=refs,
                    meta={"question_id": qid, "image_id": image_id})

    for i, rec in enumerate(records):
        out.add(annotations, f"data[{i}]", record_id(rec, "question_id", i), make, rec)
    return out.result()


def read_gqa(task: str, *, questions: str, images: str) -> tuple[list[Item], list[dict]]:
    """GQA testdev_balanced_questions.json: a JSON object {question_id: {"imageId", "question", "answer",
    "fullAnswer", "semantic", "types", "isBalanced", ...}}; answers = [answer] (none in the test-server files);
    image = <images>/<imageId>.jpg; meta = {"question_id", "answer_type"} (open when types.structural is "query",
    else binary: the release's eval.py split). Questions with "isBalanced": false are not read (eval.py scores
    only the balanced ones); a record without the field counts as balanced."""
    data = load_json(task, "questions", questions, dict, "a JSON object of question_id -> question")
    images = image_folder(task, images)
    out = Collect()

    def make(qid: str, rec: Any) -> Item:
        image_id = need(rec, "imageId", str)
        question = need(rec, "question", str)
        refs = [str(rec["answer"])] if rec.get("answer") is not None else []
        types = rec.get("types")
        kind = gqa.gqa_answer_type(rec) if isinstance(types, dict) and "structural" in types else ""
        return Item(id=str(qid), images=[os.path.join(images, image_id + ".jpg")], question=question,
                    answers=refs, meta={"question_id": qid, "answer_type": kind})

    for qid, rec in data.items():
        if isinstance(rec, dict) and rec.get("isBalanced", True) is False:
            continue
        out.add(questions, f"[{json.dumps(qid)}]", qid, make, qid, rec)
    return out.result()
