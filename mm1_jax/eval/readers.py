"""Readers for the papers' evaluation benchmarks, each reading the benchmark's official release files, and the COCO
results writer.

Every reader is `read_X(task, *, <files...>) -> (items, skipped)`; `task` is the eval task name and the keyword
names are the task's `config.eval.<task>.<keyword>` fields.

  captions     COCO captions JSON (COCO Karpathy / val2014, NoCaps) or TextCaps' own {"data": [...]} release
  vqa          VQAv2 / OK-VQA questions + annotations JSON (answers optional: predictions only)
  vizwiz       VizWiz-VQA val.json, a list of {"image", "question", "answers": [{"answer"}]}
  textvqa      TextVQA_0.5.1_val.json, {"data": [{"question_id", "image_id", "question", "answers"}]}
  gqa          GQA *_balanced_questions.json, {question_id: {"imageId", "question", "answer"}}
  docvqa       DocVQA val_v1.0.json / InfoVQA infographicsVQA_val_v1.0.json, {"data": [{"questionId", ...}]}
  chartqa      ChartQA test_human.json / test_augmented.json, a list of {"imgname", "query", "label"}
  refcoco      the refer release: refs(unc).p (a pickle) + instances.json (COCO instances)
  mmbench      MMBench TSV (MMBench_DEV_EN.tsv), images base64 in the "image" column
  scienceqa    ScienceQA problems.json, {pid: {"question", "choices", "answer", "hint", "image", "split"}}
  ai2d         AI2D questions/ folder of <image>.json files (+ an optional test id list)
  multiple     our jsonl multiple choice, one {"id", "question", "options", "answer", "image"?} a line
  arc / piqa / lambada   TextCore text-only tasks (ARC jsonl, PIQA jsonl + labels, LAMBADA jsonl)

Problems with a file (missing, unparsable, the wrong top-level schema) raise one ValueError naming the task and
the file. Problems with one record (a missing field, an answer out of range, an image file that does not exist)
skip that record: it is returned in `skipped` as {"id", "reason": "<file>: <record>: <what is wrong>"} and the
others are kept. Image files are only checked for existence here; they are decoded later.
"""
from __future__ import annotations

import base64
import binascii
import csv
import io
import json
import os
import pickle
import re
from collections.abc import Callable
from typing import Any

from mm1_jax.eval.prompts import Item
from mm1_jax.eval.scorers import gqa

_MMBENCH_CIRCULAR = 1_000_000  # MMBench's pre-rotated copies of question i have index i + k * 1e6


# --- errors: file-level (ValueError) and record-level (_Skip)


class _Skip(Exception):
    """A record-level problem: the record is skipped with this reason (file / record when not the current ones)."""

    def __init__(self, what: str, file: str | None = None, where: str | None = None):
        super().__init__(what)
        self.file, self.where = file, where


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    return {dict: "a JSON object", list: "a list", str: "a string"}.get(type(value), type(value).__name__)


def _need(record: Any, field: str, kind: type | tuple[type, ...] | None = None, name: str | None = None) -> Any:
    """record[field], or _Skip when the record is not an object, lacks the field or the value is of another kind."""
    if not isinstance(record, dict):
        raise _Skip(f"is {_kind(record)}, not a JSON object")
    if field not in record or record[field] is None:
        raise _Skip(f"lacks the field {name or field!r}")
    value = record[field]
    allowed = kind if isinstance(kind, tuple) else (kind,) if kind is not None else None
    if allowed and (not isinstance(value, allowed) or (isinstance(value, bool) and bool not in allowed)):
        raise _Skip(f"field {name or field!r} is {_kind(value)}")  # (a JSON true / false is no number)
    return value


def _fail(task: str, path: str, what: str) -> ValueError:
    return ValueError(f"eval task {task!r}: {path}: {what}.")


def _required(task: str, keyword: str, value: str) -> str:
    if not value:
        raise ValueError(f"eval task {task!r} needs config.eval.{task}.{keyword}; it is unset.")
    return str(value)


def _annotation_file(task: str, keyword: str, path: str) -> str:
    path = _required(task, keyword, path)
    if not os.path.exists(path):
        raise ValueError(f"eval task {task!r}: annotation file {path!r} does not exist.")
    if os.path.isdir(path):
        raise ValueError(f"eval task {task!r}: annotation file {path!r} is a folder, not a file.")
    return path


def _image_folder(task: str, path: str, keyword: str = "images") -> str:
    path = _required(task, keyword, path)
    if not os.path.isdir(path):
        raise ValueError(f"eval task {task!r}: image folder {path!r} (config.eval.{task}.{keyword}) does not exist.")
    return path


def _read_text(task: str, path: str) -> str:
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except UnicodeDecodeError as e:
        raise _fail(task, path, f"not UTF-8 text ({e.reason} at byte {e.start})") from None
    except OSError as e:
        raise _fail(task, path, f"cannot be read ({e.strerror or e})") from None


def _load_json(task: str, keyword: str, path: str, kind: type = dict, shape: str = "a JSON object") -> Any:
    """The parsed JSON file `path` (config field `keyword`), which must be of `kind`; ValueError naming the task
    and the file otherwise."""
    path = _annotation_file(task, keyword, path)
    try:
        data = json.loads(_read_text(task, path))
    except json.JSONDecodeError as e:
        raise _fail(task, path, f"not valid JSON ({e.msg}: line {e.lineno} column {e.colno})") from None
    if not isinstance(data, kind):
        raise _fail(task, path, f"expected {shape}, found {_kind(data)}")
    return data


def _top_list(task: str, path: str, data: Any, key: str) -> list:
    """data[key], which must be a list: the records of a {"<key>": [...]} file."""
    if not isinstance(data, dict) or not isinstance(data.get(key), list):
        found = f"keys {sorted(data)[:8]}" if isinstance(data, dict) else _kind(data)
        raise _fail(task, path, f"expected a JSON object with a {key!r} list, found {found}")
    return data[key]


def _load_jsonl(task: str, keyword: str, path: str) -> list[tuple[int, Any]]:
    """(line number, parsed record) for each non-blank line; a line that does not parse is kept as a _Skip (that
    record is skipped), but a file where no line parses as a JSON object is not JSON lines: ValueError."""
    path = _annotation_file(task, keyword, path)
    records: list[tuple[int, Any]] = []
    first_error = ""
    for n, line in enumerate(_read_text(task, path).splitlines(), 1):
        if not line.strip():
            continue
        try:
            records.append((n, json.loads(line)))
        except json.JSONDecodeError as e:
            first_error = first_error or f"line {n}: {e.msg}: column {e.colno}"
            records.append((n, _Skip(f"not valid JSON ({e.msg}: column {e.colno})")))
    if not records:
        raise _fail(task, path, "has no JSON lines (the file is empty)")
    if not any(isinstance(r, dict) for _, r in records):
        raise _fail(task, path, f"not JSON lines, one JSON object a line ({first_error or 'no line is an object'})")
    return records


def _text_lines(task: str, keyword: str, path: str) -> list[tuple[int, str]]:
    """(line number, stripped text) of the non-blank lines of a plain text file."""
    path = _annotation_file(task, keyword, path)
    return [(n, line.strip()) for n, line in enumerate(_read_text(task, path).splitlines(), 1) if line.strip()]


# --- collecting items record by record


class _Collect:
    """Items made record by record. A record-level problem (_Skip) or a repeated id skips the record with a reason
    naming the file and the record; `result` then sets aside items whose image files do not exist."""

    def __init__(self) -> None:
        self.built: list[tuple[Item, str]] = []  # (item, "<file>: <record>")
        self.skipped: list[dict] = []
        self._ids: set[str] = set()

    def skip(self, rid: Any, file: str, where: str, what: str) -> None:
        self.skipped.append({"id": str(rid), "reason": f"{file}: {where}: {what}"})

    def add(self, file: str, where: str, rid: Any, make: Callable[..., Item | list[Item]], *args: Any) -> None:
        """Items from make(*args), or the record skipped (`rid`: its id, or its index when it has none)."""
        try:
            made = make(*args)
        except _Skip as e:
            self.skip(rid, e.file or file, e.where or where, str(e))
            return
        for item in made if isinstance(made, list) else [made]:
            if item.id in self._ids:
                self.skip(item.id, file, where, f"repeats the id {item.id!r} of an earlier record")
                continue
            self._ids.add(item.id)
            self.built.append((item, f"{file}: {where}"))

    def result(self) -> tuple[list[Item], list[dict]]:
        return _split_missing(self.built, self.skipped)


def _split_missing(built: list[tuple[Item, str]], skipped: list[dict]) -> tuple[list[Item], list[dict]]:
    """Items whose image files all exist (checked, not decoded); the others go to `skipped` with the missing file."""
    exists: dict[str, bool] = {}
    kept = []
    for item, source in built:
        absent = None
        for ref in item.images:
            if isinstance(ref, str):
                if ref not in exists:
                    exists[ref] = os.path.isfile(ref)
                if not exists[ref]:
                    absent = ref
                    break
        if absent is None:
            kept.append(item)
        else:
            skipped.append({"id": item.id, "reason": f"{source}: image file {absent!r} does not exist"})
    return kept, skipped


def _rid(record: Any, key: str, fallback: Any) -> str:
    """A record's id for the skipped list: record[key] when present, else its index."""
    value = record.get(key) if isinstance(record, dict) else None
    return str(fallback if value is None else value)


def _strings(values: Any, name: str) -> list[str]:
    if not isinstance(values, list):
        raise _Skip(f"field {name!r} is {_kind(values)}, not a list")
    return [str(v) for v in values]


def _choice(options: list[str], answer: Any, name: str = "answer") -> int:
    """`answer`, the index of the right option, checked against the options."""
    if isinstance(answer, bool) or not isinstance(answer, int):
        raise _Skip(f"field {name!r} is {_kind(answer)}, not an option index")
    if not 0 <= answer < len(options):
        raise _Skip(f"{name} {answer} is out of range for its {len(options)} options")
    return answer


def _with_hint(hint: Any, question: str) -> str:
    hint = "" if hint is None else str(hint).strip()
    return f"{hint}\n{question}" if hint and hint.lower() != "nan" else question


def _pattern_name(task: str, pattern: str, image_id: Any) -> str:
    """The image file name for `image_id`: a pattern naming unknown fields is a config error (ValueError), a value
    the pattern cannot format skips the record."""
    try:
        return pattern.format(image_id=image_id)
    except (KeyError, IndexError, AttributeError) as e:
        raise ValueError(f"eval task {task!r}: config.eval.{task}.image_pattern {pattern!r} names a field other "
                         f"than image_id ({type(e).__name__}: {e}).") from None
    except (ValueError, TypeError) as e:
        raise _Skip(f"image_pattern {pattern!r} cannot format image_id {image_id!r} ({e})") from None


# --- captioning


def read_captions(task: str, *, annotations: str, images: str) -> tuple[list[Item], list[dict]]:
    """Captioning references, one item per image with all its reference captions as `answers`.

    COCO caption format (COCO Karpathy / captions_val2014.json, NoCaps nocaps_val_4500_captions.json):
      {"images": [{"id", "file_name", ...}], "annotations": [{"image_id", "caption", ...}]}; a file without
      "annotations" (an image-info file) gives items without references. meta = {"image_id"}.
    TextCaps release (TextCaps_0.1_val.json): {"data": [{"image_id", "image_name", "image_path", "caption_str",
      "reference_strs": [...], ...}]}, one record per caption; grouped by image_id, references = the first
      record's reference_strs (else every record's caption_str); image = <images>/<image_name>.jpg (or the
      basename of image_path). The format is told by the top-level key: "images" or "data".
    """
    data = _load_json(task, "annotations", annotations)
    images = _image_folder(task, images)
    if "data" in data and "images" not in data:
        return _textcaps(task, annotations, data, images)
    if "images" not in data:
        raise _fail(task, annotations, f"expected COCO captions ({{\"images\", \"annotations\"}}) or TextCaps "
                                       f"({{\"data\": [...]}}), found keys {sorted(data)[:8]}")
    records = _top_list(task, annotations, data, "images")
    out = _Collect()
    refs: dict[Any, list[str]] | None = None
    if "annotations" in data:
        refs = {}
        for i, ann in enumerate(_top_list(task, annotations, data, "annotations")):
            try:
                image_id, caption = _need(ann, "image_id", (int, str)), str(_need(ann, "caption"))
            except _Skip as e:
                out.skip(_rid(ann, "id", i), annotations, f"annotations[{i}]", str(e))
                continue
            refs.setdefault(image_id, []).append(caption)

    def make(img: Any) -> Item:
        image_id = _need(img, "id", (int, str))
        name = _need(img, "file_name", str)
        if refs is not None and image_id not in refs:
            raise _Skip(f"no caption in 'annotations' has image_id {image_id!r}")
        return Item(id=str(image_id), images=[os.path.join(images, name)],
                    answers=list(refs[image_id]) if refs is not None else [], meta={"image_id": image_id})

    for i, img in enumerate(records):
        out.add(annotations, f"images[{i}]", _rid(img, "id", i), make, img)
    return out.result()


def _textcaps(task: str, path: str, data: dict, images: str) -> tuple[list[Item], list[dict]]:
    out = _Collect()
    groups: dict[Any, list[tuple[int, dict]]] = {}
    for i, rec in enumerate(_top_list(task, path, data, "data")):
        try:
            groups.setdefault(_need(rec, "image_id", (int, str)), []).append((i, rec))
        except _Skip as e:
            out.skip(i, path, f"data[{i}]", str(e))

    def make(image_id: Any, recs: list[tuple[int, dict]]) -> Item:
        first = recs[0][1]
        if first.get("image_name"):
            name = str(first["image_name"]) + ".jpg"
        elif first.get("image_path"):
            name = os.path.basename(str(first["image_path"]))
        else:
            raise _Skip("lacks the field 'image_name' (and 'image_path')")
        if first.get("reference_strs") is not None:
            answers = _strings(first["reference_strs"], "reference_strs")
        else:
            answers = [str(r["caption_str"]) for _, r in recs if r.get("caption_str") is not None]
        return Item(id=str(image_id), images=[os.path.join(images, name)], answers=answers,
                    meta={"image_id": image_id})

    for image_id, recs in groups.items():
        out.add(path, f"data[{recs[0][0]}]", image_id, make, image_id, recs)
    return out.result()


def write_coco_results(path: str, predictions: list[dict]) -> None:
    """COCO results JSON: [{"image_id", "caption"}] (what the COCO caption evaluation server reads)."""
    with open(path, "w") as f:
        json.dump([{"image_id": p["image_id"], "caption": p["caption"]} for p in predictions], f)


# --- VQA


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
    data = _load_json(task, "questions", questions)
    records = _top_list(task, questions, data, "questions")
    images = _image_folder(task, images)
    out = _Collect()
    answers: dict[Any, list[str] | _Skip] | None = None
    if annotations:
        anns = _top_list(task, annotations, _load_json(task, "annotations", annotations), "annotations")
        answers = {}
        for i, ann in enumerate(anns):
            try:
                qid = _need(ann, "question_id", (int, str))
            except _Skip as e:
                out.skip(i, annotations, f"annotations[{i}]", str(e))
                continue
            try:
                humans = _need(ann, "answers", list)
                answers[qid] = [str(_need(h, "answer", name=f"answers[{j}].answer")) for j, h in enumerate(humans)]
            except _Skip as e:
                answers[qid] = _Skip(str(e), annotations, f"annotations[{i}]")

    def make(rec: Any) -> Item:
        qid = _need(rec, "question_id", (int, str))
        image_id = _need(rec, "image_id", (int, str))
        question = _need(rec, "question", str)
        refs: list[str] = []
        if answers is not None:
            if qid not in answers:
                raise _Skip(f"no record in {annotations} has question_id {qid!r}")
            found = answers[qid]
            if isinstance(found, _Skip):
                raise _Skip(str(found), found.file, found.where)
            refs = list(found)
        name = _pattern_name(task, image_pattern, image_id)
        return Item(id=str(qid), images=[os.path.join(images, name)], question=question, answers=refs,
                    meta={"question_id": qid, "image_id": image_id})

    for i, rec in enumerate(records):
        out.add(questions, f"questions[{i}]", _rid(rec, "question_id", i), make, rec)
    return out.result()


def read_vizwiz(task: str, *, annotations: str, images: str) -> tuple[list[Item], list[dict]]:
    """VizWiz-VQA val.json (test.json: no answers): a list of {"image": "VizWiz_val_00000000.jpg", "question",
    "answers": [{"answer", "answer_confidence"}] * 10, "answer_type", "answerable"}. answers = the 10 answer
    strings ("unanswerable" included); id = the image name without extension; meta = {"image"}."""
    records = _load_json(task, "annotations", annotations, list, "a JSON list of questions")
    images = _image_folder(task, images)
    out = _Collect()

    def make(rec: Any) -> Item:
        image = _need(rec, "image", str)
        question = _need(rec, "question", str)
        refs = []
        if rec.get("answers") is not None:
            humans = _need(rec, "answers", list)
            refs = [str(_need(h, "answer", name=f"answers[{j}].answer")) for j, h in enumerate(humans)]
        return Item(id=os.path.splitext(image)[0], images=[os.path.join(images, image)], question=question,
                    answers=refs, meta={"image": image})

    for i, rec in enumerate(records):
        out.add(annotations, f"[{i}]", _rid(rec, "image", i), make, rec)
    return out.result()


def read_textvqa(task: str, *, annotations: str, images: str,
                 image_pattern: str = "{image_id}.jpg") -> tuple[list[Item], list[dict]]:
    """TextVQA TextVQA_0.5.1_val.json (images: train_images/): {"dataset_name", "data": [{"question_id", "image_id",
    "question", "answers": [10 strings], "image_classes", "flickr_original_url", ...}]}; test records have no
    answers. meta = {"question_id", "image_id"}."""
    records = _top_list(task, annotations, _load_json(task, "annotations", annotations), "data")
    images = _image_folder(task, images)
    out = _Collect()

    def make(rec: Any) -> Item:
        qid = _need(rec, "question_id", (int, str))
        image_id = _need(rec, "image_id", (int, str))
        question = _need(rec, "question", str)
        refs = _strings(rec["answers"], "answers") if rec.get("answers") is not None else []
        name = _pattern_name(task, image_pattern, image_id)
        return Item(id=str(qid), images=[os.path.join(images, name)], question=question, answers=refs,
                    meta={"question_id": qid, "image_id": image_id})

    for i, rec in enumerate(records):
        out.add(annotations, f"data[{i}]", _rid(rec, "question_id", i), make, rec)
    return out.result()


def read_gqa(task: str, *, questions: str, images: str) -> tuple[list[Item], list[dict]]:
    """GQA testdev_balanced_questions.json: a JSON object {question_id: {"imageId", "question", "answer",
    "fullAnswer", "semantic", "types", "isBalanced", ...}}; answers = [answer] (none in the test-server files);
    image = <images>/<imageId>.jpg; meta = {"question_id", "answer_type"} (open when types.structural is "query",
    else binary: the release's eval.py split). Questions with "isBalanced": false are not read (eval.py scores
    only the balanced ones); a record without the field counts as balanced."""
    data = _load_json(task, "questions", questions, dict, "a JSON object of question_id -> question")
    images = _image_folder(task, images)
    out = _Collect()

    def make(qid: str, rec: Any) -> Item:
        image_id = _need(rec, "imageId", str)
        question = _need(rec, "question", str)
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


def read_docvqa(task: str, *, annotations: str, images: str) -> tuple[list[Item], list[dict]]:
    """DocVQA val_v1.0.json: {"dataset_name", "data": [{"questionId", "question", "image": "documents/xxx.png",
    "docId", "answers": [...], ...}]}; InfoVQA infographicsVQA_val_v1.0.json: the same with "image_local_name":
    "xxx.jpeg" for the image (told per record). image = <images>/<that value>; test files have no answers.
    meta = {"questionId"}."""
    records = _top_list(task, annotations, _load_json(task, "annotations", annotations), "data")
    images = _image_folder(task, images)
    out = _Collect()

    def make(rec: Any) -> Item:
        qid = _need(rec, "questionId", (int, str))
        question = _need(rec, "question", str)
        if rec.get("image") is None and rec.get("image_local_name") is None:
            raise _Skip("lacks the field 'image' (or 'image_local_name')")
        name = _need(rec, "image" if rec.get("image") is not None else "image_local_name", str)
        refs = _strings(rec["answers"], "answers") if rec.get("answers") is not None else []
        return Item(id=str(qid), images=[os.path.join(images, name)], question=question, answers=refs,
                    meta={"questionId": qid})

    for i, rec in enumerate(records):
        out.add(annotations, f"data[{i}]", _rid(rec, "questionId", i), make, rec)
    return out.result()


def read_chartqa(task: str, *, annotations: str, images: str) -> tuple[list[Item], list[dict]]:
    """ChartQA test_human.json / test_augmented.json (images: test/png/): a JSON list of {"imgname", "query",
    "label"}; answers = [str(label)]; id = the record's index; meta = {"imgname"}."""
    records = _load_json(task, "annotations", annotations, list, "a JSON list of questions")
    images = _image_folder(task, images)
    out = _Collect()

    def make(i: int, rec: Any) -> Item:
        name = _need(rec, "imgname", str)
        question = _need(rec, "query", str)
        label = _need(rec, "label")
        return Item(id=str(i), images=[os.path.join(images, name)], question=question, answers=[str(label)],
                    meta={"imgname": name})

    for i, rec in enumerate(records):
        out.add(annotations, f"[{i}]", i, make, i, rec)
    return out.result()


# --- grounding


def _load_pickle(task: str, keyword: str, path: str) -> Any:
    path = _annotation_file(task, keyword, path)
    try:
        with open(path, "rb") as f:
            # Python 2 byte strings (the release was pickled by Python 2) are decoded as UTF-8
            return pickle.load(f, encoding="utf-8", errors="replace")
    except OSError as e:
        raise _fail(task, path, f"cannot be read ({e.strerror or e})") from None
    except Exception as e:  # noqa: BLE001  unpickling arbitrary bytes can raise nearly anything
        raise _fail(task, path, f"not a readable pickle ({type(e).__name__}: {e})") from None


def read_refcoco(task: str, *, refs: str, instances: str, images: str, split: str = "val"
                 ) -> tuple[list[Item], list[dict]]:
    """Referring expressions from the refer release (lichengunc/refer; RefCOCO, RefCOCO+, RefCOCOg):

      refs       refs(unc).p / refs(google).p / refs(umd).p: a Python pickle of a list of {"ref_id", "ann_id",
                 "image_id", "split", "sentences": [{"sent", "raw", "tokens", "sent_id"}], "category_id", ...}.
                 Unpickling runs code named in the file: only load a trusted copy of the release.
      instances  instances.json, COCO instances: {"images": [{"id", "file_name", "width", "height"}],
                 "annotations": [{"id", "image_id", "bbox": [x, y, w, h]}], ...}
    One item per (ref of `split`, sentence): question = the sentence, images = [<images>/<file_name>], no answers,
    meta = {"ref_id", "box": [x1, y1, x2, y2] in pixels, "width", "height"}; id = "<ref_id>_<sentence index>".
    """
    loaded = _load_pickle(task, "refs", refs)
    if not isinstance(loaded, list):
        raise _fail(task, refs, f"expected a pickled list of refs, found a {type(loaded).__name__}")
    data = _load_json(task, "instances", instances)
    pictures = _top_list(task, instances, data, "images")
    boxes = _top_list(task, instances, data, "annotations")
    images = _image_folder(task, images)
    splits = sorted({str(r["split"]) for r in loaded if isinstance(r, dict) and r.get("split") is not None})
    if split not in splits:
        raise _fail(task, refs, f"has no refs of split {split!r}; the splits present are {', '.join(splits)}")
    image_of = {p["id"]: p for p in pictures if isinstance(p, dict) and "id" in p}
    box_of = {b["id"]: b for b in boxes if isinstance(b, dict) and "id" in b}
    out = _Collect()

    def make(ref: Any) -> list[Item]:
        ref_id = _need(ref, "ref_id", (int, str))
        _need(ref, "split")
        ann_id = _need(ref, "ann_id", (int, str))
        sentences = _need(ref, "sentences", list)
        if ann_id not in box_of:
            raise _Skip(f"ann_id {ann_id!r} is not an annotation of {instances}")
        ann = box_of[ann_id]
        bbox = _need(ann, "bbox", list)
        if len(bbox) != 4:
            raise _Skip(f"annotation {ann_id!r} of {instances} has a bbox of {len(bbox)} numbers, not 4")
        image_id = _need(ann, "image_id", (int, str))
        if image_id not in image_of:
            raise _Skip(f"image_id {image_id!r} of annotation {ann_id!r} is not an image of {instances}")
        picture = image_of[image_id]
        name = _need(picture, "file_name", str)
        x, y, w, h = (float(v) for v in bbox)
        meta = {"ref_id": ref_id, "box": [x, y, x + w, y + h], "width": picture.get("width"),
                "height": picture.get("height")}
        texts = [str(_need(s, "sent", name=f"sentences[{j}].sent")) for j, s in enumerate(sentences)]
        return [Item(id=f"{ref_id}_{j}", images=[os.path.join(images, name)], question=text, meta=dict(meta))
                for j, text in enumerate(texts)]

    for i, ref in enumerate(loaded):
        if isinstance(ref, dict) and ref.get("split") is not None and str(ref["split"]) != split:
            continue
        out.add(refs, f"refs[{i}]", _rid(ref, "ref_id", i), make, ref)
    return out.result()


# --- multiple choice


def _read_tsv(task: str, keyword: str, path: str) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """The header and (row number, cells) of a tab-separated file; row 1 is the first row after the header."""
    text = _read_text(task, _annotation_file(task, keyword, path))
    csv.field_size_limit(2**31 - 1)  # images are base64 cells of megabytes
    try:
        rows = list(csv.reader(io.StringIO(text, newline=""), delimiter="\t"))
    except csv.Error as e:
        raise _fail(task, path, f"not a valid TSV file ({e})") from None
    if not rows or not any(cell.strip() for cell in rows[0]):
        raise _fail(task, path, "is empty; expected a TSV file with a header row")
    return [c.strip() for c in rows[0]], [(n, row) for n, row in enumerate(rows[1:], 1) if any(row)]


def read_mmbench(task: str, *, annotations: str) -> tuple[list[Item], list[dict]]:
    """MMBench TSV (MMBench_DEV_EN.tsv, MMBench_TEST_EN.tsv, the CN versions): tab-separated with a header row:
    index, question, hint, A, B, C, D (E, F where present), answer (a letter; absent in test files), category,
    image (base64 of the image file, or another row's index whose image it shares), and l2-category, split,
    source, comment where present. options = the letter columns up to the first empty / "nan" cell;
    question = hint + "\\n" + question when there is a hint; images = [decoded bytes]; meta = {"index", "category"}.
    Rows with index >= 1_000_000 are MMBench's circular copies (pass k of question i is row i + k * 1e6, or the row
    whose g_index column is i, as VLMEvalKit's vlmeval/dataset/utils/multiple_choice.py groups them): they become
    meta["passes"] of question i, [(options, answer index)] for pass 0, 1, ..., which CircularEval presents."""
    header, rows = _read_tsv(task, "annotations", annotations)
    col = {name: j for j, name in enumerate(header)}
    for name in ("index", "question", "image", "A"):
        if name not in col:
            raise _fail(task, annotations, f"expected a TSV header with index, question, image and option columns "
                                           f"A, B, ...; it lacks {name!r} (found {', '.join(header[:16])})")
    letters = []
    while chr(ord("A") + len(letters)) in col:
        letters.append(chr(ord("A") + len(letters)))

    def cell(row: list[str], name: str) -> str:
        return row[col[name]].strip() if name in col and col[name] < len(row) else ""

    def index_of(row: list[str]) -> int:
        try:
            return int(float(cell(row, "index")))
        except ValueError:
            raise _Skip(f"index {cell(row, 'index')!r} is not a number") from None

    encoded: dict[str, str] = {}  # index -> base64, for rows that give their image as another row's index
    for _, row in rows:
        image = cell(row, "image")
        if len(row) == len(header) and image and not _is_index_ref(image):
            encoded[cell(row, "index")] = image
    decoded: dict[str, bytes] = {}  # base64 -> bytes, decoded once for the rows that share an image
    out = _Collect()

    copies: dict[int, dict[int, tuple[list[str], int]]] = {}  # question -> {pass: (options, answer index)}

    def make(row: list[str]) -> Item | list[Item]:
        index = index_of(row)
        if len(row) != len(header):
            raise _Skip(f"has {len(row)} cells, the header {len(header)}")
        options = []
        for letter in letters:
            value = cell(row, letter)
            if not value or value.lower() == "nan":
                break
            options.append(value)
        if not options:
            raise _Skip("has no options (column A is empty)")
        answer_index, answers = -1, []
        if "answer" in col:
            letter = cell(row, "answer").upper()
            if len(letter) != 1 or not "A" <= letter < chr(ord("A") + len(options)):
                raise _Skip(f"answer {cell(row, 'answer')!r} is not one of the option letters "
                            f"{''.join(letters[:len(options)])}")
            answer_index = ord(letter) - ord("A")
            answers = [options[answer_index]]
        if index >= _MMBENCH_CIRCULAR:
            group = int(float(cell(row, "g_index"))) if cell(row, "g_index") else index % _MMBENCH_CIRCULAR
            copies.setdefault(group, {})[index // _MMBENCH_CIRCULAR] = (options, answer_index)
            return []
        image = cell(row, "image")
        if _is_index_ref(image):
            if image not in encoded:
                raise _Skip(f"image refers to row index {image}, which has no image")
            image = encoded[image]
        if not image:
            raise _Skip("has no image")
        if image not in decoded:
            try:
                decoded[image] = base64.b64decode("".join(image.split()), validate=True)
            except (binascii.Error, ValueError) as e:
                raise _Skip(f"image is not base64 ({e})") from None
        question = _with_hint(cell(row, "hint"), cell(row, "question"))
        return Item(id=str(index), images=[decoded[image]], question=question, answers=answers, options=options,
                    answer_index=answer_index, meta={"index": index, "category": cell(row, "category")})

    for n, row in rows:
        out.add(annotations, f"row {n}", cell(row, "index") or n, make, row)
    items, skipped = out.result()
    for item in items:
        if item.meta["index"] in copies:
            later = copies[item.meta["index"]]
            item.meta["passes"] = [(item.options, item.answer_index)] + [later[k] for k in sorted(later)]
    return items, skipped


def _is_index_ref(image: str) -> bool:
    """An MMBench image cell holding another row's index instead of base64 (a short digit string)."""
    return image.isdigit() and len(image) <= 64


def read_scienceqa(task: str, *, annotations: str, images: str, split: str = "test", image_only: bool = True
                   ) -> tuple[list[Item], list[dict]]:
    """ScienceQA problems.json: {pid: {"question", "choices": [...], "answer": index, "hint", "image": "image.png"
    or null, "split", "subject", "lecture", "solution", ...}}; images in the release's <images>/<split>/<pid>/<image>
    layout. Keeps the problems of `split`; image_only keeps only those with an image (ScienceQA-IMG, what the MLLM
    papers report; the others are dropped, not reported). question = hint + "\\n" + question when there is a hint;
    options = choices; id = pid; meta = {"pid"}."""
    data = _load_json(task, "annotations", annotations, dict, "a JSON object of pid -> problem")
    images = _image_folder(task, images)
    splits = sorted({str(p["split"]) for p in data.values() if isinstance(p, dict) and p.get("split") is not None})
    if split not in splits:
        raise _fail(task, annotations, f"has no problems of split {split!r}; the splits present are "
                                       f"{', '.join(splits)}")
    out = _Collect()

    def make(pid: str, rec: Any) -> Item | list[Item]:
        if str(_need(rec, "split")) != split:
            return []
        image = rec.get("image")
        if image_only and not image:
            return []
        question = _need(rec, "question", str)
        options = _strings(_need(rec, "choices", list), "choices")
        index = _choice(options, _need(rec, "answer"))
        pictures = [os.path.join(images, split, str(pid), str(image))] if image else []
        return Item(id=str(pid), images=pictures, question=_with_hint(rec.get("hint"), question),
                    answers=[options[index]], options=options, answer_index=index, meta={"pid": pid})

    for pid, rec in data.items():
        out.add(annotations, f"[{json.dumps(pid)}]", pid, make, pid, rec)
    return out.result()


def _natural(name: str) -> tuple:
    """Sort key that orders 2.png.json before 10.png.json."""
    return tuple(int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name))


def _image_key(name: str) -> str:
    """AI2D image id: "12.png.json" / "12.png" / "12" -> "12"."""
    name = name.removesuffix(".json")
    return os.path.splitext(name)[0] if name.lower().endswith((".png", ".jpg", ".jpeg")) else name


def read_ai2d(task: str, *, annotations: str, images: str, ids: str = "") -> tuple[list[Item], list[dict]]:
    """AI2D release (ai2d-all.zip): `annotations` is its questions/ folder of <image>.json files (12.png.json):
    {"imageName": "12.png", "questions": {question text: {"answerTexts": [...], "correctAnswer": index,
    "questionId": "12.png-0", "abcLabel": bool}}}; images = [<images>/<imageName>]; `ids` (optional) is a file of
    image ids, one a line (the test split list, ai2d_test_ids.csv: names without ".png"), keeping only those.
    id = questionId; meta = {"questionId", "abcLabel"}."""
    folder = _required(task, "annotations", annotations)
    if not os.path.isdir(folder):
        raise ValueError(f"eval task {task!r}: annotation folder {folder!r} (the AI2D questions/ folder) does not "
                         f"exist." if not os.path.exists(folder) else
                         f"eval task {task!r}: {folder}: expected the AI2D questions/ folder, found a file.")
    images = _image_folder(task, images)
    files = {_image_key(f): f for f in sorted(os.listdir(folder), key=_natural) if f.endswith(".json")}
    out = _Collect()
    wanted = list(files)
    if ids:
        wanted = []
        for n, line in _text_lines(task, "ids", ids):
            key = _image_key(line.split(",")[0].strip())
            if key in files:
                wanted.append(key)
            else:
                out.skip(key, ids, f"line {n}", f"no questions file for image {key!r} in {folder}")

    for key in wanted:
        path = os.path.join(folder, files[key])
        data = _load_json(task, "annotations", path)
        image = data.get("imageName")
        if not isinstance(image, str) or not isinstance(data.get("questions"), dict):
            raise _fail(task, path, f"expected an AI2D questions file {{\"imageName\", \"questions\": {{...}}}}, "
                                    f"found keys {sorted(data)[:8]}")
        for j, (text, rec) in enumerate(data["questions"].items()):
            out.add(path, f"questions[{json.dumps(text)}]", _rid(rec, "questionId", f"{image}-{j}"),
                    _ai2d_item, os.path.join(images, image), text, rec)
    return out.result()


def _ai2d_item(image: str, text: str, rec: Any) -> Item:
    options = _strings(_need(rec, "answerTexts", list), "answerTexts")
    index = _choice(options, _need(rec, "correctAnswer"), "correctAnswer")
    qid = _need(rec, "questionId", (int, str))
    return Item(id=str(qid), images=[image], question=text, answers=[options[index]], options=options,
                answer_index=index, meta={"questionId": qid, "abcLabel": bool(rec.get("abcLabel", False))})


def read_multiple_choice(task: str, *, annotations: str, images: str = "") -> tuple[list[Item], list[dict]]:
    """Our jsonl multiple choice: one {"id", "question", "options": [str], "answer": index or option text,
    "image"?: a path or a list of paths relative to `images`} a line; id defaults to the line number."""
    records = _load_jsonl(task, "annotations", annotations)
    if images:
        images = _image_folder(task, images)
    out = _Collect()

    def make(n: int, rec: Any) -> Item:
        if isinstance(rec, _Skip):
            raise rec
        options = _strings(_need(rec, "options", list), "options")
        answer = _need(rec, "answer")
        if isinstance(answer, str):
            if answer not in options:
                raise _Skip(f"answer {answer!r} is not one of its {len(options)} options")
            answer = options.index(answer)
        index = _choice(options, answer)
        image = rec.get("image")
        pictures = [] if not image else [os.path.join(images, str(x)) for x in (image if isinstance(image, list)
                                                                                 else [image])]
        return Item(id=str(rec.get("id", n)), images=pictures, question=str(rec.get("question", "")),
                    options=options, answer_index=index, answers=[options[index]])

    for n, rec in records:
        out.add(annotations, f"line {n}", _rid(rec, "id", n), make, n, rec)
    return out.result()


# --- TextCore (text only: meta["context"] is the text the options / answer continue)


def read_arc(task: str, *, annotations: str) -> tuple[list[Item], list[dict]]:
    """ARC ARC-Easy-Test.jsonl / ARC-Challenge-Test.jsonl: one {"id", "question": {"stem", "choices": [{"text",
    "label"}]}, "answerKey"} a line (labels A-E or 1-4). meta["context"] = "Question: <stem>\\nAnswer:";
    options = [" " + text] (continuations); answer_index = the choice labelled answerKey."""
    records = _load_jsonl(task, "annotations", annotations)
    out = _Collect()

    def make(rec: Any) -> Item:
        if isinstance(rec, _Skip):
            raise rec
        rid = _need(rec, "id", (int, str))
        question = _need(rec, "question", dict)
        stem = _need(question, "stem", str, name="question.stem")
        choices = _need(question, "choices", list, name="question.choices")
        labels = [str(_need(c, "label", name=f"question.choices[{j}].label")) for j, c in enumerate(choices)]
        options = [" " + str(_need(c, "text", name=f"question.choices[{j}].text")) for j, c in enumerate(choices)]
        key = str(_need(rec, "answerKey"))
        if key not in labels:
            raise _Skip(f"answerKey {key!r} is not one of the choice labels {labels}")
        index = labels.index(key)
        return Item(id=str(rid), images=[], options=options, answer_index=index, answers=[options[index]],
                    meta={"context": f"Question: {stem}\nAnswer:"})

    for n, rec in records:
        out.add(annotations, f"line {n}", _rid(rec, "id", n), make, rec)
    return out.result()


def read_piqa(task: str, *, annotations: str, labels: str) -> tuple[list[Item], list[dict]]:
    """PIQA valid.jsonl (one {"goal", "sol1", "sol2"} a line) + valid-labels.lst (one 0 / 1 a line, the same
    order). meta["context"] = "Question: <goal>\\nAnswer:"; options = [" " + sol1, " " + sol2]; id = the record's
    0-based position (the line of its label)."""
    records = _load_jsonl(task, "annotations", annotations)
    answers = _text_lines(task, "labels", labels)
    if len(answers) != len(records):
        raise ValueError(f"eval task {task!r}: {labels} has {len(answers)} labels but {annotations} has "
                         f"{len(records)} records; they must pair line by line.")
    out = _Collect()

    def make(i: int, rec: Any, label_line: int, label: str) -> Item:
        if isinstance(rec, _Skip):
            raise rec
        goal = _need(rec, "goal", str)
        options = [" " + _need(rec, "sol1", str), " " + _need(rec, "sol2", str)]
        if label not in ("0", "1"):
            raise _Skip(f"label {label!r} is not 0 or 1", labels, f"line {label_line}")
        index = int(label)
        return Item(id=str(i), images=[], options=options, answer_index=index, answers=[options[index]],
                    meta={"context": f"Question: {goal}\nAnswer:"})

    for i, ((n, rec), (label_line, label)) in enumerate(zip(records, answers)):
        out.add(annotations, f"line {n}", i, make, i, rec, label_line, label)
    return out.result()


def read_lambada(task: str, *, annotations: str) -> tuple[list[Item], list[dict]]:
    """LAMBADA, OpenAI's lambada_test.jsonl: one {"text"} a line. meta["context"] = the text up to (not including)
    the whitespace before its last word; answers = [last word] (the evaluator generates the continuation and
    compares its first word); id = the record's 0-based position."""
    records = _load_jsonl(task, "annotations", annotations)
    out = _Collect()

    def make(i: int, rec: Any) -> Item:
        if isinstance(rec, _Skip):
            raise rec
        parts = _need(rec, "text", str).rsplit(None, 1)
        if len(parts) != 2:
            raise _Skip("text has a single word: no context before its last word")
        return Item(id=str(i), images=[], answers=[parts[1]], meta={"context": parts[0]})

    for i, (n, rec) in enumerate(records):
        out.add(annotations, f"line {n}", i, make, i, rec)
    return out.result()
