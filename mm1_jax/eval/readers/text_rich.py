"""Questions on documents and charts: DocVQA / InfoVQA, ChartQA."""
from __future__ import annotations

import os
from typing import Any

from mm1_jax.eval.prompts import Item
from mm1_jax.eval.readers.common import Collect, Skip, image_folder, load_json, need, record_id, strings, top_list


def read_docvqa(task: str, *, annotations: str, images: str) -> tuple[list[Item], list[dict]]:
    """DocVQA val_v1.0.json: {"dataset_name", "data": [{"questionId", "question", "image": "documents/xxx.png",
    "docId", "answers": [...], ...}]}; InfoVQA infographicsVQA_val_v1.0.json: the same with "image_local_name":
    "xxx.jpeg" for the image (told per record). image = <images>/<that value>; test files have no answers.
    meta = {"questionId"}."""
    records = top_list(task, annotations, load_json(task, "annotations", annotations), "data")
    images = image_folder(task, images)
    out = Collect()

    def make(rec: Any) -> Item:
        qid = need(rec, "questionId", (int, str))
        question = need(rec, "question", str)
        if rec.get("image") is None and rec.get("image_local_name") is None:
            raise Skip("lacks the field 'image' (or 'image_local_name')")
        name = need(rec, "image" if rec.get("image") is not None else "image_local_name", str)
        refs = strings(rec["answers"], "answers") if rec.get("answers") is not None else []
        return Item(id=str(qid), images=[os.path.join(images, name)], question=question, answers=refs,
                    meta={"questionId": qid})

    for i, rec in enumerate(records):
        out.add(annotations, f"data[{i}]", record_id(rec, "questionId", i), make, rec)
    return out.result()


def read_chartqa(task: str, *, annotations: str, images: str) -> tuple[list[Item], list[dict]]:
    """ChartQA test_human.json / test_augmented.json (images: test/png/): a JSON list of {"imgname", "query",
    "label"}; answers = [str(label)]; id = the record's index; meta = {"imgname"}."""
    records = load_json(task, "annotations", annotations, list, "a JSON list of questions")
    images = image_folder(task, images)
    out = Collect()

    def make(i: int, rec: Any) -> Item:
        name = need(rec, "imgname", str)
        question = need(rec, "query", str)
        label = need(rec, "label")
        return Item(id=str(i), images=[os.path.join(images, name)], question=question, answers=[str(label)],
                    meta={"imgname": name})

    for i, rec in enumerate(records):
        out.add(annotations, f"[{i}]", i, make, i, rec)
    return out.result()
