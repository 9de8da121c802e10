"""Knowledge benchmarks: MMMU (validation) and MathVista (testmini), from their official releases or VLMEvalKit's TSVs.

MMMU's `<image k>` placeholders (k = 1..7) become the `<image>` markers of our prompts: the question's placeholders,
in the order they appear, each takes image_k (a repeated placeholder repeats the image); images that only the
options name (some questions' options are pictures: "<image 2>") follow, and their options keep the "<image k>"
text; meta["image_numbers"] lists the k of each image in Item.images, meta["option_images"] says whether options
name images.
"""
from __future__ import annotations

import ast
import json
import os
import re
from typing import Any

from mm1_jax.eval.prompts import Item
from mm1_jax.eval.readers.common import (
    Collect,
    Skip,
    annotation_file,
    fail,
    image_folder,
    kind_of,
    load_json,
    need,
    record_id,
    required,
)
from mm1_jax.eval.readers.lmudata import LmuTable

_PLACEHOLDER = re.compile(r"<image (\d+)>")
MMMU_TYPES = ("multiple-choice", "open")
MATHVISTA_QUESTION_TYPES = ("multi_choice", "free_form")
MATHVISTA_ANSWER_TYPES = ("text", "integer", "float", "list")
_MATHVISTA_META = ("language", "source", "category", "task", "context", "grade", "skills", "split")


# ------------------------------------------------------------------------------------------------ MMMU


def _literal_list(text: Any, name: str) -> list[str]:
    """A Python-literal list of strings (MMMU writes its options as one: "['a', 'b']")."""
    if isinstance(text, list):
        value = text
    else:
        try:
            value = ast.literal_eval(str(text))
        except (ValueError, SyntaxError):
            raise Skip(f"field {name!r} is not a Python list literal ({str(text)[:60]!r})") from None
    if not isinstance(value, list):
        raise Skip(f"field {name!r} is {kind_of(value)}, not a list")
    return [str(v) for v in value]


def _mmmu_item(qid: str, question: str, options: list[str], answer: str, question_type: str,
               image_of: Any, meta: dict) -> Item:
    """One MMMU question; image_of(k) is image k's bytes (Skip when it is absent)."""
    if question_type not in MMMU_TYPES:
        raise Skip(f"question_type {question_type!r} is none of {', '.join(MMMU_TYPES)}")
    numbers = [int(k) for k in _PLACEHOLDER.findall(question)]
    in_options = [int(k) for option in options for k in _PLACEHOLDER.findall(option)]
    numbers += [k for k in dict.fromkeys(in_options) if k not in numbers]
    images = [image_of(k) for k in numbers]
    text = _PLACEHOLDER.sub("<image>", question)
    if question_type == "multiple-choice":
        letter = answer.strip()
        if not options:
            raise Skip("is multiple-choice but has no options")
        if len(letter) != 1 or not "A" <= letter < chr(ord("A") + len(options)):
            raise Skip(f"answer {answer!r} is not one of the option letters A-{chr(ord('A') + len(options) - 1)}")
        index = ord(letter) - ord("A")
        gold: str | list[str] = letter
        answers, answer_index, shown = [options[index]], index, options
    else:
        gold = _literal_list(answer, "answer") if answer.strip().startswith("[") else answer
        answers, answer_index, shown = ([gold] if isinstance(gold, str) else list(gold)), -1, []
    return Item(id=qid, images=images, question=text, answers=answers, options=shown, answer_index=answer_index,
                meta={"id": qid, "subject": "_".join(qid.split("_")[1:-1]), "question_type": question_type,
                      "answer": gold, "options": options, "image_numbers": numbers,
                      "option_images": bool(in_options), **meta})


def read_mmmu(task: str, *, annotations: str, split: str = "validation") -> tuple[list[Item], list[dict]]:
    """MMMU, in either of its distributions:
    - the release on the Hugging Face hub (MMMU/MMMU): one folder per subject holding <split>-*.parquet; rows
      {"id": "validation_Art_1", "question" (with <image k> placeholders), "options": "['..', '..']" (a Python list
      literal, "[]" for open questions), "answer" (a letter, or the open answer: a string or a list literal),
      "question_type": "multiple-choice" / "open", "image_1".."image_7": {"bytes", "path"} or null, "subfield",
      "img_type", "topic_difficulty", "explanation"}, as mmmu/utils/data_utils.py and lmms-eval's mmmu/utils.py
      read them. `annotations` is a parquet file (all its rows) or a folder (its <split>-*.parquet files, searched
      through sub-folders);
    - VLMEvalKit's MMMU_DEV_VAL.tsv (a .tsv `annotations`): index, question, A, B, ... (options), answer, image (a
      base64 image or a list literal of them, image k at position k - 1 as VLMEvalKit's split_MMMU takes it), and
      where present id, split (rows of `split` kept), question_type (else "multiple-choice" when the row has
      options, "open" when not), category.
    id = the MMMU id (the TSV's index when it has no id column); meta: id, subject, question_type, answer (the gold
    as the official scorer takes it: the letter, or the open answer(s)), options, image_numbers, option_images, and
    subfield / img_type / topic_difficulty / category where given."""
    path = required(task, "annotations", annotations)
    if path.lower().endswith(".tsv"):
        return _mmmu_tsv(task, path, split)
    return _mmmu_parquet(task, path, split)


def _parquet_rows(task: str, path: str) -> list[dict]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise ValueError(f"eval task {task!r}: reading {path} (parquet) needs pyarrow, which is not installed.") from None
    try:
        return pq.read_table(path).to_pylist()
    except Exception as e:  # noqa: BLE001  pyarrow raises many kinds (ArrowInvalid, OSError) for a bad file
        raise fail(task, path, f"not a readable parquet file ({type(e).__name__}: {e})") from None


def _mmmu_parquet(task: str, path: str, split: str) -> tuple[list[Item], list[dict]]:
    if os.path.isdir(path):
        files = sorted(os.path.join(root, f) for root, _, names in os.walk(path) for f in names
                       if f.startswith(f"{split}-") and f.endswith(".parquet"))
        if not files:
            raise ValueError(f"eval task {task!r}: annotation folder {path!r} holds no {split}-*.parquet file (the "
                             f"MMMU hub layout: <Subject>/{split}-00000-of-00001.parquet).")
    else:
        files = [annotation_file(task, "annotations", path)]
    out = Collect()
    for file in files:
        rows = _parquet_rows(task, file)
        columns = set(rows[0]) if rows else set()
        lacking = [c for c in ("id", "question", "options", "answer", "question_type") if c not in columns]
        if rows and lacking:
            raise fail(task, file, f"expected MMMU columns id, question, options, answer, question_type, "
                                   f"image_1..image_7; it lacks {', '.join(lacking)} (found {', '.join(sorted(columns))})")
        for i, rec in enumerate(rows):
            out.add(file, f"row {i}", record_id(rec, "id", i), _mmmu_record, rec)
    return out.result()


def _mmmu_record(rec: dict) -> Item:
    qid = str(need(rec, "id", str))

    def image_of(k: int) -> bytes:
        value = rec.get(f"image_{k}")
        if isinstance(value, dict):
            value = value.get("bytes")
        if not isinstance(value, (bytes, bytearray)) or not value:
            raise Skip(f"refers to <image {k}> but its image_{k} is empty")
        return bytes(value)

    meta = {k: rec[k] for k in ("subfield", "img_type", "topic_difficulty") if rec.get(k) is not None}
    item = _mmmu_item(qid, need(rec, "question", str), _literal_list(need(rec, "options", (str, list)), "options"),
                      str(need(rec, "answer")), need(rec, "question_type", str), image_of, meta)
    if not item.meta["image_numbers"] and rec.get("image_1"):  # no placeholder: image_1, as data_utils.py's
        item.images, item.meta["image_numbers"] = [image_of(1)], [1]  # process_single_sample takes it
    return item


def _mmmu_tsv(task: str, path: str, split: str) -> tuple[list[Item], list[dict]]:
    table = LmuTable(task, "annotations", path, ("index", "question", "answer", "image"),
                     "VLMEvalKit's MMMU TSV (MMMU_DEV_VAL.tsv)")
    letters = []
    while table.has(chr(ord("A") + len(letters))):
        letters.append(chr(ord("A") + len(letters)))
    out = Collect()

    def make(row: list[str]) -> Item | list[Item]:
        table.check_width(row)
        if table.has("split") and table.cell(row, "split") != split:
            return []
        options = []
        for letter in letters:
            value = table.cell(row, letter)
            if not value or value.lower() == "nan":
                break
            options.append(value)
        qtype = table.cell(row, "question_type") or ("multiple-choice" if options else "open")
        pictures = table.images(row)

        def image_of(k: int) -> bytes:
            if not 1 <= k <= len(pictures):
                raise Skip(f"refers to <image {k}> but its image cell holds {len(pictures)} image(s)")
            return pictures[k - 1]

        qid = table.cell(row, "id") or table.cell(row, "index")
        meta = {"index": table.cell(row, "index")}
        if table.has("category"):
            meta["category"] = table.cell(row, "category")
        item = _mmmu_item(qid, table.cell(row, "question"), options, table.cell(row, "answer"), qtype, image_of,
                          meta)
        if not item.meta["image_numbers"]:  # no placeholder: the row's images go before the question
            item.images, item.meta["image_numbers"] = pictures, list(range(1, len(pictures) + 1))
        return item

    for n, row in table.rows:
        out.add(path, f"row {n}", table.cell(row, "index") or n, make, row)
    return out.result()


# ------------------------------------------------------------------------------------------------ MathVista


def _mathvista_fields(question_type: str, answer_type: str, choices: Any, answer: str, precision: Any
                      ) -> tuple[list[str], int]:
    """Checks the scorer's fields; (options, answer index) for a multi_choice problem, ([], -1) otherwise."""
    if question_type not in MATHVISTA_QUESTION_TYPES:
        raise Skip(f"question_type {question_type!r} is none of {', '.join(MATHVISTA_QUESTION_TYPES)}")
    if answer_type not in MATHVISTA_ANSWER_TYPES:
        raise Skip(f"answer_type {answer_type!r} is none of {', '.join(MATHVISTA_ANSWER_TYPES)}")
    if answer_type == "float" and not isinstance(precision, (int, float)):
        raise Skip(f"answer_type float needs a precision; it is {kind_of(precision)}")
    if question_type != "multi_choice":
        if answer_type == "text":
            raise Skip("a free_form question of answer_type text, which calculate_score.py cannot normalise")
        return [], -1
    if not isinstance(choices, list) or not choices:
        raise Skip("is multi_choice but has no choices list")
    options = [str(c) for c in choices]
    if answer not in options:
        raise Skip(f"answer {answer!r} is not one of its {len(options)} choices")
    return options, options.index(answer)


def read_mathvista(task: str, *, annotations: str, images: str = "", queries: str = ""
                   ) -> tuple[list[Item], list[dict]]:
    """MathVista testmini, in either of its distributions:
    - the release's testmini.json (lupantech/MathVista data/, the hub's AI4Math/MathVista testmini split): {pid:
      {"pid", "question", "image": "images/1.jpg", "choices": [...] or null, "unit", "precision" (decimal places of
      a float answer, else null), "answer" (a string), "question_type": "multi_choice" / "free_form",
      "answer_type": "text" / "integer" / "float" / "list", "metadata": {"split", "language", "source", "category",
      "task", "context", "grade", "skills": [...], ...}, "query" (the hub's; the repository keeps the queries in
      data/query.json, {pid: query}, given as `queries`)}}; image = <images>/<image> (`images`: the folder holding
      images/);
    - VLMEvalKit's MathVista_MINI.tsv (a .tsv `annotations`): index, image (base64), question, answer,
      question_type, answer_type, and choices (a list literal), precision, unit, answer_option, task, skills (a list
      literal) where present (the columns vlmeval/dataset/utils/mathvista.py reads; no TSV was at hand).
    question = the query (the prompt the release gives models: hint, question, choices) where known, else the
    question; options / answer_index for multi_choice; answers = [answer]; meta: pid, question, question_type,
    answer_type, choices, precision, unit, answer and the metadata fields, so that `mathvista_correct(response,
    item.meta)` and `mathvista_scores` take it as it is."""
    path = required(task, "annotations", annotations)
    if path.lower().endswith(".tsv"):
        return _mathvista_tsv(task, path)
    data = load_json(task, "annotations", path, dict, "a JSON object of pid -> problem (testmini.json)")
    folder = image_folder(task, images)
    query_of = load_json(task, "queries", queries, dict, "a JSON object of pid -> query (query.json)") if queries \
        else {}
    out = Collect()

    def make(pid: str, rec: Any) -> Item:
        question = need(rec, "question", str)
        image = need(rec, "image", str)
        answer = str(need(rec, "answer"))
        qtype, atype = need(rec, "question_type", str), need(rec, "answer_type", str)
        options, index = _mathvista_fields(qtype, atype, rec.get("choices"), answer, rec.get("precision"))
        metadata = rec.get("metadata") if isinstance(rec.get("metadata"), dict) else {}
        query = query_of.get(str(pid), rec.get("query"))
        meta = {"pid": str(rec.get("pid", pid)), "question": question, "question_type": qtype, "answer_type": atype,
                "choices": rec.get("choices"), "precision": rec.get("precision"), "unit": rec.get("unit"),
                "answer": answer, **{k: metadata[k] for k in _MATHVISTA_META if k in metadata}}
        return Item(id=str(pid), images=[os.path.join(folder, image)],
                    question=query if isinstance(query, str) and query else question, answers=[answer],
                    options=options, answer_index=index, meta=meta)

    for pid, rec in data.items():
        out.add(path, f"[{json.dumps(pid)}]", pid, make, pid, rec)
    return out.result()


def _mathvista_tsv(task: str, path: str) -> tuple[list[Item], list[dict]]:
    table = LmuTable(task, "annotations", path,
                     ("index", "question", "answer", "image", "question_type", "answer_type"),
                     "VLMEvalKit's MathVista TSV (MathVista_MINI.tsv)")
    out = Collect()

    def make(row: list[str]) -> Item:
        table.check_width(row)
        qtype, atype = table.cell(row, "question_type"), table.cell(row, "answer_type")
        raw_choices = table.cell(row, "choices")
        choices = _literal_list(raw_choices, "choices") if raw_choices and raw_choices.lower() not in ("nan", "none") \
            else None
        precision: Any = table.cell(row, "precision")
        try:
            precision = float(precision) if precision and precision.lower() != "nan" else None
        except ValueError:
            raise Skip(f"precision {precision!r} is not a number") from None
        answer = table.cell(row, "answer")
        options, index = _mathvista_fields(qtype, atype, choices, answer, precision)
        skills = table.cell(row, "skills")
        meta = {"pid": table.cell(row, "index"), "question": table.cell(row, "question"), "question_type": qtype,
                "answer_type": atype, "choices": choices, "precision": precision,
                "unit": table.cell(row, "unit") or None, "answer": answer}
        if table.has("task"):
            meta["task"] = table.cell(row, "task")
        if skills:
            meta["skills"] = _literal_list(skills, "skills") if skills.startswith("[") else [skills]
        return Item(id=table.cell(row, "index"), images=table.images(row), question=table.cell(row, "question"),
                    answers=[answer], options=options, answer_index=index, meta=meta)

    for n, row in table.rows:
        out.add(path, f"row {n}", table.cell(row, "index") or n, make, row)
    return out.result()
