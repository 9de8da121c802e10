"""Readers for the standard annotation files, and the COCO results writer.

  COCO captions   captions_*.json: {"images": [{"id", "file_name"}], "annotations": [{"image_id", "caption"}]}
  VQAv2           questions {"questions": [{"question_id", "image_id", "question"}]} +
                  annotations {"annotations": [{"question_id", "answers": [{"answer"}]}]}
  TextVQA style   one file {"data": [{"question_id", "image_id", "question", "answers": [str]}]}
  multiple choice jsonl, one {"id", "question", "options": [str], "answer": index or option text, "image"?} a line
A file of the wrong schema raises one ValueError naming the file, the record and the missing field. Image files that
do not exist are reported (returned in `missing`) and their items left out.
"""
from __future__ import annotations

import json
import os
from typing import Any

from mm1_jax.eval.prompts import Item


def _load_json(path: str) -> Any:
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        raise FileNotFoundError(f"annotation file {path!r} does not exist.") from None
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON ({e}).") from None


def _need(record: Any, field: str, path: str, where: str) -> Any:
    if not isinstance(record, dict) or field not in record:
        raise ValueError(f"{path}: {where} lacks the field {field!r}.")
    return record[field]


def _split_missing(items: list[Item]) -> tuple[list[Item], list[dict]]:
    kept, missing = [], []
    for item in items:
        absent = [p for p in item.images if isinstance(p, str) and not os.path.exists(p)]
        if absent:
            missing.append({"id": item.id, "reason": f"missing image file {absent[0]}"})
        else:
            kept.append(item)
    return kept, missing


def read_coco_captions(path: str, image_dir: str) -> tuple[list[Item], list[dict]]:
    """One item per image with all its reference captions; (items, missing images)."""
    data = _load_json(path)
    images = _need(data, "images", path, "the top level")
    anns = _need(data, "annotations", path, "the top level")
    refs: dict[Any, list[str]] = {}
    for i, ann in enumerate(anns):
        refs.setdefault(_need(ann, "image_id", path, f"annotations[{i}]"), []).append(
            _need(ann, "caption", path, f"annotations[{i}]"))
    items = []
    for i, img in enumerate(images):
        image_id = _need(img, "id", path, f"images[{i}]")
        name = _need(img, "file_name", path, f"images[{i}]")
        if image_id in refs:
            items.append(Item(id=str(image_id), images=[os.path.join(image_dir, name)], answers=refs[image_id],
                              meta={"image_id": image_id}))
    return _split_missing(items)


def write_coco_results(path: str, predictions: list[dict]) -> None:
    """COCO results JSON: [{"image_id", "caption"}] (what the COCO caption evaluation server reads)."""
    with open(path, "w") as f:
        json.dump([{"image_id": p["image_id"], "caption": p["caption"]} for p in predictions], f)


def read_vqa(questions_path: str, annotations_path: str | None, image_dir: str,
             image_pattern: str = "COCO_val2014_{image_id:012d}.jpg") -> tuple[list[Item], list[dict]]:
    """VQAv2 (questions + annotations) or, without annotations_path, a TextVQA-style {"data": [...]} file."""
    if annotations_path is None:
        data = _load_json(questions_path)
        records = _need(data, "data", questions_path, "the top level")
        answers = {}
        for i, r in enumerate(records):
            answers[_need(r, "question_id", questions_path, f"data[{i}]")] = _need(
                r, "answers", questions_path, f"data[{i}]")
    else:
        records = _need(_load_json(questions_path), "questions", questions_path, "the top level")
        anns = _need(_load_json(annotations_path), "annotations", annotations_path, "the top level")
        answers = {}
        for i, a in enumerate(anns):
            humans = _need(a, "answers", annotations_path, f"annotations[{i}]")
            answers[_need(a, "question_id", annotations_path, f"annotations[{i}]")] = [
                _need(h, "answer", annotations_path, f"annotations[{i}].answers") for h in humans]
    items = []
    for i, r in enumerate(records):
        where = f"{'data' if annotations_path is None else 'questions'}[{i}]"
        qid = _need(r, "question_id", questions_path, where)
        image_id = _need(r, "image_id", questions_path, where)
        question = _need(r, "question", questions_path, where)
        if qid not in answers:
            raise ValueError(f"{annotations_path}: no annotation for question_id {qid!r}.")
        try:
            name = image_pattern.format(image_id=image_id)
        except (ValueError, TypeError):
            name = f"{image_id}.jpg"
        items.append(Item(id=str(qid), images=[os.path.join(image_dir, name)], question=question,
                          answers=list(answers[qid]), meta={"question_id": qid}))
    return _split_missing(items)


def read_multiple_choice(path: str, image_dir: str = "") -> tuple[list[Item], list[dict]]:
    """jsonl multiple choice; `answer` is the option's index or its text."""
    items = []
    try:
        with open(path) as f:
            lines = f.read().splitlines()
    except FileNotFoundError:
        raise FileNotFoundError(f"multiple-choice file {path!r} does not exist.") from None
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            r = json.loads(line)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}: line {n} is not valid JSON ({e}).") from None
        where = f"line {n}"
        options = _need(r, "options", path, where)
        answer = _need(r, "answer", path, where)
        index = answer if isinstance(answer, int) else options.index(answer) if answer in options else -1
        if not 0 <= index < len(options):
            raise ValueError(f"{path}: line {n}: answer {answer!r} is not one of its {len(options)} options.")
        image = r.get("image")
        images = [] if not image else [os.path.join(image_dir, x) for x in (image if isinstance(image, list) else [image])]
        items.append(Item(id=str(r.get("id", n)), images=images, question=str(r.get("question", "")),
                          options=[str(o) for o in options], answer_index=index, answers=[str(options[index])]))
    return _split_missing(items)
