"""The General category of MM1.5's benchmarks: MME, POPE, SEED-Bench (image), RealWorldQA, each from its release
files or from VLMEvalKit's LMUData TSV (MME.tsv, POPE.tsv, SEEDBench_IMG.tsv, RealWorldQA.tsv).

A VLMEvalKit TSV has a header row and one question a row; its "image" cell is the base64 of the image file, or,
when the image was already given by an earlier row, that row's index (a cell of at most 64 characters: VLMEvalKit
vlmeval/dataset/image_base.py ImageBaseDataset.__init__). Images from a TSV or a parquet table are given to the items
as bytes; images of a release folder as paths (checked to exist; decoded later).
"""
from __future__ import annotations

import os
import re
from typing import Any

from mm1_jax.eval.prompts import Item
from mm1_jax.eval.readers.common import (Collect, Skip, annotation_file, fail, image_folder, kind_of, load_json,
                                         load_jsonl, need, record_id, required, top_list)
from mm1_jax.eval.readers.lmudata import LmuTable
from mm1_jax.eval.scorers.general import SEED_IMAGE_TYPES
from mm1_jax.eval.scorers.mme import MME_SUBTASKS
from mm1_jax.eval.scorers.pope import POPE_SPLITS

_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_MME_IMAGE_TYPES = (".jpg", ".png", ".jpeg", ".JPG", ".PNG", ".JPEG")


def _is_tsv(path: str) -> bool:
    return str(path).lower().endswith(".tsv")


def _letter_index(letter: str, options: list[str], field: str = "answer") -> int:
    letter = letter.strip()
    if len(letter) != 1 or letter.upper() not in _LETTERS[:len(options)]:
        raise Skip(f"{field} {letter!r} is not one of the option letters {_LETTERS[:len(options)]}")
    return _LETTERS.index(letter.upper())


# --- MME -----------------------------------------------------------------------------------------------------------


def read_mme(task: str, *, annotations: str) -> tuple[list[Item], list[dict]]:
    """MME, from the release folder or VLMEvalKit's MME.tsv (`annotations` is either).

    Release (MME_Benchmark_release_version.zip): `annotations` is its MME_Benchmark folder (or the folder holding
    it), one folder per subtask named as the eval_tool's results files (existence, count, ..., OCR,
    commonsense_reasoning, ...). artwork, celebrity, landmark, posters and scene keep their images in images/ and a
    <image name>.txt per image in questions_answers_YN/; the other nine hold image and .txt side by side. Each .txt
    has two lines "question \\t Yes|No": the image's paired questions (by design one answered Yes, the other No).
    A .txt that does not hold exactly two such lines is skipped whole (MME's acc+ scores the pair), as is one without
    its image (<name>.jpg / .png / .jpeg). A subtask folder that is absent is listed in `skipped` (id: the subtask).
    TSV: columns index, image (base64 or the index of a row with the image), question, answer (Yes / No), category
    (the subtask), image_path (VLMEvalKit's MME_rating groups an image's questions by it; without the column, the
    row holding the image is the group).
    Items: question as released (with its "Please answer yes or no."), answers = [Yes / No]; id "<subtask>/<image
    name>/<0|1>" (release) or the TSV index; meta = {"category", "image" (the pair's key), "index" (TSV)}. Items
    come in the release's order, an image's two questions together, as the official scorer pairs them.
    """
    if _is_tsv(annotations):
        return _mme_tsv(task, annotation_file(task, "annotations", annotations))
    root = required(task, "annotations", annotations)
    if not os.path.isdir(root):
        raise ValueError(f"eval task {task!r}: {root!r} (config.eval.{task}.annotations) is neither MME.tsv nor an "
                         f"existing folder (the release's MME_Benchmark folder).")
    if not any(os.path.isdir(os.path.join(root, s)) for s in MME_SUBTASKS):
        inner = os.path.join(root, "MME_Benchmark")
        if os.path.isdir(inner):
            root = inner
    present = [s for s in MME_SUBTASKS if os.path.isdir(os.path.join(root, s))]
    if not present:
        raise fail(task, root, f"expected the MME release's MME_Benchmark folder, with one folder per subtask "
                               f"({', '.join(MME_SUBTASKS)}); none is there")
    out = Collect()
    for subtask in MME_SUBTASKS:
        folder = os.path.join(root, subtask)
        if subtask not in present:
            out.skip(subtask, root, subtask, f"the subtask folder {subtask!r} is absent")
            continue
        qa, pictures = folder, folder
        if os.path.isdir(os.path.join(folder, "questions_answers_YN")) and os.path.isdir(os.path.join(folder,
                                                                                                      "images")):
            qa, pictures = os.path.join(folder, "questions_answers_YN"), os.path.join(folder, "images")
        names = sorted((f for f in os.listdir(qa) if f.endswith(".txt")), key=_natural)
        if not names:
            raise fail(task, qa, "an MME subtask folder without question files (<image name>.txt)")
        for name in names:
            path = os.path.join(qa, name)
            stem = name[:-len(".txt")]
            out.add(path, "file", f"{subtask}/{stem}", _mme_pair, subtask, path, pictures, stem)
    return out.result()


def _natural(name: str) -> tuple:
    return tuple((0, int(t), "") if t.isdigit() else (1, 0, t) for t in re.split(r"(\d+)", name))


def _mme_pair(subtask: str, path: str, pictures: str, stem: str) -> list[Item]:
    try:
        with open(path, encoding="utf-8") as f:
            lines = [line.rstrip("\r\n") for line in f if line.strip()]
    except (OSError, UnicodeDecodeError) as e:
        raise Skip(f"cannot be read ({e})") from None
    if len(lines) != 2:
        raise Skip(f"has {len(lines)} question lines; an MME image has two")
    image = next((os.path.join(pictures, stem + ext) for ext in _MME_IMAGE_TYPES
                  if os.path.isfile(os.path.join(pictures, stem + ext))), None)
    if image is None:
        raise Skip(f"no image {stem}.jpg / .png in {pictures}")
    items = []
    for k, line in enumerate(lines):
        cells = line.split("\t")
        if len(cells) != 2:
            raise Skip(f"line {k + 1} has {len(cells)} tab-separated fields; expected question \\t answer")
        question, answer = cells[0].strip(), cells[1].strip()
        if answer.lower() not in ("yes", "no"):
            raise Skip(f"line {k + 1}: answer {answer!r} is not Yes / No")
        pair = f"{subtask}/{os.path.basename(image)}"
        items.append(Item(id=f"{pair}/{k}", images=[image], question=question, answers=[answer],
                          meta={"category": subtask, "image": pair}))
    return items


def _yes_no_table(task: str, path: str, what: str) -> LmuTable:
    """VLMEvalKit's TSV of a yes / no benchmark (MME.tsv, POPE.tsv)."""
    return LmuTable(task, "annotations", path, ("index", "image", "question", "answer", "category"), what)


def _yes_no_answer(tsv: LmuTable, row: list[str]) -> str:
    """The row's answer, checked: a row of another width or an answer other than Yes / No is skipped."""
    tsv.check_width(row)
    answer = tsv.cell(row, "answer")
    if answer.lower() not in ("yes", "no"):
        raise Skip(f"answer {answer!r} is not Yes / No")
    return answer


def _mme_tsv(task: str, path: str) -> tuple[list[Item], list[dict]]:
    tsv = _yes_no_table(task, path, "VLMEvalKit's MME.tsv")

    def make(n: int, row: list[str]) -> Item:
        answer = _yes_no_answer(tsv, row)
        category = tsv.cell(row, "category")
        if not category:
            raise Skip("has no category (the MME subtask)")
        pair = tsv.cell(row, "image_path") or f"row {tsv.image_key(row)}"
        index = tsv.cell(row, "index")
        return Item(id=index, images=[tsv.image(row)], question=tsv.cell(row, "question"), answers=[answer],
                    meta={"category": category, "image": pair, "index": index})

    return tsv.collect(make)


# --- POPE ----------------------------------------------------------------------------------------------------------


def read_pope(task: str, *, annotations: str, images: str = "", splits: str = "random,popular,adversarial"
              ) -> tuple[list[Item], list[dict]]:
    """POPE, from the release's JSON-lines files or VLMEvalKit's POPE.tsv.

    Release (RUCAIBox/POPE output/coco/): coco_pope_random.json, coco_pope_popular.json, coco_pope_adversarial.json,
    each one {"question_id", "image", "text", "label"} a line (image a COCO val2014 file name, label yes / no;
    question_id counts 1.. within each file). `annotations` is the folder holding them (the `splits` present, a
    comma-separated list, are read; at least one must be there) or one such file (its split from the name
    "<dataset>_pope_<split>.json"); `images` the COCO val2014 folder. id "<split>/<question_id>"; question = text;
    answers = [label]; meta = {"split", "splits": [split], "question_id", "image"}. Items keep each file's order
    (evaluate.py pairs answers and labels by position).
    TSV (`annotations` = POPE.tsv): columns index, image, question, answer (Yes / No), category (the split; VLMEvalKit
    splits it on ","); id = index; meta["splits"] = the listed splits, meta["split"] = the category as written.
    """
    if _is_tsv(annotations):
        return _pope_tsv(task, annotation_file(task, "annotations", annotations))
    path = required(task, "annotations", annotations)
    wanted = [s.strip() for s in str(splits).split(",") if s.strip()]
    unknown = [s for s in wanted if s not in POPE_SPLITS]
    if unknown or not wanted:
        raise ValueError(f"eval task {task!r}: config.eval.{task}.splits={splits!r}: the POPE splits are "
                         f"{', '.join(POPE_SPLITS)}.")
    if os.path.isdir(path):
        files = {}
        for s in wanted:
            hits = sorted(f for f in os.listdir(path) if f.endswith(f"_pope_{s}.json"))
            if hits:
                files[s] = os.path.join(path, hits[0])
        if not files:
            raise fail(task, path, f"no POPE file of the splits {', '.join(wanted)} (expected "
                                   f"coco_pope_<split>.json files)")
    else:
        found = re.search(r"_pope_(random|popular|adversarial)\.jsonl?$", os.path.basename(path))
        if not found:
            raise fail(task, path, "expected a POPE file named <dataset>_pope_<random|popular|adversarial>.json, "
                                   "a folder of them, or POPE.tsv")
        files = {found.group(1): path}
    folder = image_folder(task, images)
    out = Collect()
    for split, file in files.items():
        for n, rec in load_jsonl(task, "annotations", file):
            out.add(file, f"line {n}", f"{split}/{record_id(rec, 'question_id', n)}", _pope_item, split, folder, rec)
    return out.result()


def _pope_item(split: str, folder: str, rec: Any) -> Item:
    if isinstance(rec, Skip):
        raise rec
    qid = need(rec, "question_id", (int, str))
    image = need(rec, "image", str)
    text = need(rec, "text", str)
    label = need(rec, "label", str)
    if label not in ("yes", "no"):
        raise Skip(f"label {label!r} is not yes / no")
    return Item(id=f"{split}/{qid}", images=[os.path.join(folder, image)], question=text, answers=[label],
                meta={"split": split, "splits": [split], "question_id": qid, "image": image})


def _pope_tsv(task: str, path: str) -> tuple[list[Item], list[dict]]:
    tsv = _yes_no_table(task, path, "VLMEvalKit's POPE.tsv")

    def make(n: int, row: list[str]) -> Item:
        answer = _yes_no_answer(tsv, row)
        category = tsv.cell(row, "category")
        names = [s.strip() for s in category.split(",") if s.strip()]
        if not names:
            raise Skip("has no category (the POPE split)")
        index = tsv.cell(row, "index")
        return Item(id=index, images=[tsv.image(row)], question=tsv.cell(row, "question"), answers=[answer],
                    meta={"split": category, "splits": names, "index": index})

    return tsv.collect(make)


# --- SEED-Bench (image) --------------------------------------------------------------------------------------------


def read_seed_bench(task: str, *, annotations: str, images: str = "") -> tuple[list[Item], list[dict]]:
    """SEED-Bench (v1) image questions, from the release's SEED-Bench.json or VLMEvalKit's SEEDBench_IMG.tsv.

    Release (AILab-CVC/SEED-Bench, DATASET.md; eval.py): {"questions": [{"answer": "A".."D", "choice_a",
    "choice_b", "choice_c", "choice_d", "data_id", "data_type", "question", "question_id", "question_type_id"},
    ...], "question_type": {name: id}}; `images` the folder of the image data (SEED-Bench-image), the image file
    being <images>/<data_id> as eval.py joins it. Keeps question types 1-9 (eval.py --task image; the video types
    10-12 are dropped, not reported). options = [choice_a .. choice_d]; id = question_id; meta = {"question_id",
    "question_type_id", "question_type" (its name), "data_id"}.
    TSV (`annotations` = SEEDBench_IMG.tsv): columns index, question, A, B, C, D, answer (a letter), category (the
    dimension's name), image; id = index; meta = {"index", "question_type": category}.
    """
    if _is_tsv(annotations):
        return _choice_tsv(task, annotation_file(task, "annotations", annotations), "VLMEvalKit's SEEDBench_IMG.tsv",
                           "question_type")
    data = load_json(task, "annotations", annotations, (dict, list), "SEED-Bench.json's JSON object")
    records = top_list(task, annotations, data, "questions") if isinstance(data, dict) else data
    folder = image_folder(task, images)
    names = {v: k for k, v in data.get("question_type", {}).items()} if isinstance(data, dict) else {}
    out = Collect()
    for j, rec in enumerate(records):
        out.add(annotations, f"questions[{j}]", record_id(rec, "question_id", j), _seed_item, folder, names, rec)
    return out.result()


def _seed_item(folder: str, names: dict, rec: Any) -> Item | list[Item]:
    kind = need(rec, "question_type_id", (int, str))
    try:
        kind = int(kind)
    except ValueError:
        raise Skip(f"question_type_id {kind!r} is not a number") from None
    if not 1 <= kind <= 9:
        return []
    options = [str(need(rec, f"choice_{c}")) for c in "abcd"]
    index = _letter_index(str(need(rec, "answer")), options)
    data_id = need(rec, "data_id", str)
    qid = need(rec, "question_id", (int, str))
    return Item(id=str(qid), images=[os.path.join(folder, data_id)], question=need(rec, "question", str),
                answers=[options[index]], options=options, answer_index=index,
                meta={"question_id": qid, "question_type_id": kind,
                      "question_type": names.get(kind, SEED_IMAGE_TYPES[kind]), "data_id": data_id})


def _choice_tsv(task: str, path: str, what: str, category_key: str) -> tuple[list[Item], list[dict]]:
    tsv = LmuTable(task, "annotations", path, ("index", "question", "A", "answer", "image"), what)

    def make(n: int, row: list[str]) -> Item:
        tsv.check_width(row)
        options = tsv.options(row)
        if not options:
            raise Skip("has no options (column A is empty)")
        index = _letter_index(tsv.cell(row, "answer"), options)
        rid = tsv.cell(row, "index")
        return Item(id=rid, images=[tsv.image(row)], question=tsv.cell(row, "question"), answers=[options[index]],
                    options=options, answer_index=index,
                    meta={"index": rid, "answer": tsv.cell(row, "answer"), category_key: tsv.cell(row, "category")})

    return tsv.collect(make)


# --- RealWorldQA ---------------------------------------------------------------------------------------------------

_OPTION_LINE = re.compile(r"^([A-Z])\.\s+(.*\S)\s*$")


def read_realworldqa(task: str, *, annotations: str) -> tuple[list[Item], list[dict]]:
    """RealWorldQA, from the release's parquet files or VLMEvalKit's RealWorldQA.tsv.

    Release (xai-org/RealWorldQA on Hugging Face, data/test-0000k-of-00002.parquet): columns image (Hugging Face's
    image struct {"bytes", "path"}), question, answer. `annotations` is one parquet file or the folder of them (read
    in name order). A lettered question lists its options as lines "A. ...", "B. ..." after the question text, then
    its instruction; its answer is the letter. Such a question becomes a choice item: question = the text before the
    option lines, options = the option texts, answer_index = the letter's, meta["release_question"] = the question
    as released (what lmms-eval prompts with). Any other question is an open item: question as released, answers =
    [answer], no options. id = "<file>:<row>"; meta = {"answer": the release's answer}.
    TSV (`annotations` = RealWorldQA.tsv): columns index, question, A, B, ..., answer, image (category when
    present); a choice item per row with options; id = index.
    """
    if _is_tsv(annotations):
        return _choice_tsv(task, annotation_file(task, "annotations", annotations), "VLMEvalKit's RealWorldQA.tsv",
                           "category")
    path = required(task, "annotations", annotations)
    if os.path.isdir(path):
        files = sorted(os.path.join(path, f) for f in os.listdir(path) if f.endswith(".parquet"))
        if not files:
            raise fail(task, path, "no .parquet files (the RealWorldQA release's data/ folder)")
    else:
        files = [annotation_file(task, "annotations", path)]
    import pyarrow  # pylint: disable=g-import-not-at-top
    import pyarrow.parquet as pq  # pylint: disable=g-import-not-at-top
    out = Collect()
    for file in files:
        try:
            table = pq.read_table(file)
        except (OSError, pyarrow.ArrowException) as e:
            raise fail(task, file, f"not a parquet file ({e})") from None
        lacking = [c for c in ("image", "question", "answer") if c not in table.column_names]
        if lacking:
            raise fail(task, file, f"expected the RealWorldQA columns image, question, answer; it lacks "
                                   f"{', '.join(lacking)} (found {', '.join(table.column_names[:12])})")
        name = os.path.basename(file)
        for j, rec in enumerate(table.select(["image", "question", "answer"]).to_pylist()):
            out.add(file, f"row {j}", f"{name}:{j}", _realworldqa_item, f"{name}:{j}", rec)
    return out.result()


def _realworldqa_item(rid: str, rec: dict) -> Item:
    image = rec.get("image")
    data = image.get("bytes") if isinstance(image, dict) else image if isinstance(image, bytes) else None
    if not data:
        raise Skip(f"image has no bytes (found {kind_of(image)})")
    question = need(rec, "question", str)
    answer = str(need(rec, "answer", (str, int))).strip()
    lines = question.split("\n")
    first = next((k for k, line in enumerate(lines) if _OPTION_LINE.match(line.strip())), None)
    options: list[str] = []
    if first is not None:
        for line in lines[first:]:
            found = _OPTION_LINE.match(line.strip())
            if not found or found.group(1) != _LETTERS[len(options)]:
                break
            options.append(found.group(2))
    meta = {"answer": answer}
    if options and len(answer) == 1 and answer.upper() in _LETTERS[:len(options)]:
        index = _LETTERS.index(answer.upper())
        meta["release_question"] = question
        return Item(id=rid, images=[bytes(data)], question="\n".join(lines[:first]).strip(),
                    answers=[options[index]], options=options, answer_index=index, meta=meta)
    return Item(id=rid, images=[bytes(data)], question=question, answers=[answer], meta=meta)
