"""OCRBench: the release's OCRBench.json or VLMEvalKit's OCRBench.tsv."""
from __future__ import annotations

import ast
import os
from typing import Any

from mm1_jax.eval.prompts import Item
from mm1_jax.eval.readers.common import Collect, Skip, image_folder, kind_of, load_json, need, required
from mm1_jax.eval.readers.lmudata import LmuTable


def read_ocrbench(task: str, *, annotations: str, images: str = "") -> tuple[list[Item], list[dict]]:
    """OCRBench, in either of its distributions:
    - the release's OCRBench.json (Yuliang-Liu/MultimodalOCR OCRBench/OCRBench/OCRBench.json, the file example.py
      reads): a JSON list of 1000 {"dataset_name" (IIIT5K, ..., HME100k), "id" (the source dataset's id: not
      unique across the file), "image_path" (relative to the OCRBench_Images folder, `images`), "question",
      "answers" (a string, or a list of accepted strings), "type" (one of the ten categories)};
    - VLMEvalKit's OCRBench.tsv (a .tsv `annotations`): index, image (base64), question, answer (a Python list
      literal, as vlmeval/dataset/image_vqa.py `OCRBench.evaluate` eval()s it), category (the type); a
      dataset_name column is used where present.
    id = the record's position in the list (the JSON) or its index (the TSV); answers = the accepted strings;
    meta = {"dataset_name", "type", "source_id" (the JSON's id)}: what `ocrbench_correct` and `ocrbench_scores`
    take."""
    path = required(task, "annotations", annotations)
    if path.lower().endswith(".tsv"):
        return _ocrbench_tsv(task, path)
    records = load_json(task, "annotations", path, list, "a JSON list of questions (OCRBench.json)")
    folder = image_folder(task, images)
    out = Collect()

    def make(i: int, rec: Any) -> Item:
        answers = need(rec, "answers", (str, list))
        if isinstance(answers, list) and not all(isinstance(a, str) for a in answers):
            raise Skip("field 'answers' is a list with non-strings in it")
        return Item(id=str(i), images=[os.path.join(folder, need(rec, "image_path", str))],
                    question=need(rec, "question", str), answers=[answers] if isinstance(answers, str) else answers,
                    meta={"dataset_name": need(rec, "dataset_name", str), "type": need(rec, "type", str),
                          "source_id": rec.get("id")})

    for i, rec in enumerate(records):
        out.add(path, f"[{i}]", i, make, i, rec)
    return out.result()


def _ocrbench_tsv(task: str, path: str) -> tuple[list[Item], list[dict]]:
    table = LmuTable(task, "annotations", path, ("index", "image", "question", "answer", "category"),
                     "VLMEvalKit's OCRBench TSV (OCRBench.tsv)")
    name_column = next((c for c in ("dataset_name", "dataset") if table.has(c)), "")
    out = Collect()

    def make(row: list[str]) -> Item:
        table.check_width(row)
        raw = table.cell(row, "answer")
        try:
            answers = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            raise Skip(f"answer {raw[:60]!r} is not a Python literal (VLMEvalKit eval()s it)") from None
        if isinstance(answers, str):
            answers = [answers]
        if not isinstance(answers, list) or not all(isinstance(a, str) for a in answers):
            raise Skip(f"answer is {kind_of(answers)}, not a list of strings")
        return Item(id=table.cell(row, "index"), images=table.images(row), question=table.cell(row, "question"),
                    answers=answers, meta={"dataset_name": table.cell(row, name_column) if name_column else "",
                                           "type": table.cell(row, "category"), "source_id": None})

    for n, row in table.rows:
        out.add(path, f"row {n}", table.cell(row, "index") or n, make, row)
    return out.result()
