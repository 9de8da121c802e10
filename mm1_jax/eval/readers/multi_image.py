"""MM1.5's multi-image benchmarks (MVBench, a video benchmark, aside): Q-Bench2 (A1 pairs), Mantis-Eval, NLVR2, BLINK
and MuirBench, from the files their authors release, and BLINK / MuirBench from VLMEvalKit's LMUData TSVs.

Every item lists its images in order. A question places them with "<image>" markers where its release does (Mantis-
Eval's questions, MuirBench's questions and options); where the release does not place them (Q-Bench2, NLVR2,
BLINK), the question has no marker and the images go before it. A record whose markers do not match its images is
skipped with the counts (MuirBench, BLINK); Mantis's eval.py puts a Mantis question's missing markers first, and so
does the reader. Images of parquet and TSV files are given as bytes, those of a release folder as paths (checked to
exist, decoded later). What the scorers (`mm1_jax.eval.scorers.multi_image`) need is in meta: "answer" (the gold as
the scorer compares it), "options" where the scorer reads the options as released, the subtask / category fields.

A parquet `annotations` is one file or a folder: the folder's <split>-*.parquet files, searched through its
sub-folders (the hub layouts: BLINK <Subtask>/val-*.parquet, MUIRBench / Q-Bench2-HF data/<split>-*.parquet,
Mantis-Eval mantis_eval/test-*.parquet).
"""
from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

from mm1_jax.eval.prompts import Item
from mm1_jax.eval.readers.common import (Collect, Skip, annotation_file, fail, image_folder, kind_of, load_json,
                                         load_jsonl, need, record_id, required)
from mm1_jax.eval.readers.lmudata import LmuTable

_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
MARKER = "<image>"
MANTIS_QUESTION_TYPES = ("multi-choice", "short-answer")
# data/nlvr2/prepare_vqa_v3.py: how Mantis asks an NLVR2 statement (the images before it)
NLVR2_QUESTION = "Here is a statement about the images. Is it true or false?\n{sentence}"
NLVR2_OPTIONS = ("True", "False")


# --- shared --------------------------------------------------------------------------------------------------------


def _is_tsv(path: str) -> bool:
    return str(path).lower().endswith(".tsv")


def _is_parquet(path: str) -> bool:
    return str(path).lower().endswith(".parquet") or os.path.isdir(path)


def _parquet_files(task: str, path: str, split: str, inner: str = "") -> list[str]:
    """`path` as a list of parquet files: the file itself, or a folder's <split>-*.parquet (in its sub-folder `inner`
    when it has one: a hub repository holding several configurations)."""
    path = required(task, "annotations", path)
    if not os.path.isdir(path):
        return [annotation_file(task, "annotations", path)]
    if inner and os.path.isdir(os.path.join(path, inner)):
        path = os.path.join(path, inner)
    files = sorted(os.path.join(root, f) for root, _, names in os.walk(path) for f in names
                   if f.startswith(f"{split}-") and f.endswith(".parquet"))
    if not files:
        raise ValueError(f"eval task {task!r}: annotation folder {path!r} holds no {split}-*.parquet file.")
    return files


def _parquet_rows(task: str, path: str, columns: tuple[str, ...], what: str) -> Iterator[dict]:
    """The rows of a parquet file as dicts, a few at a time (image columns are large); ValueError naming the task and
    the file when it is not a readable parquet file or lacks one of `columns`."""
    try:
        import pyarrow.parquet as pq  # pylint: disable=import-outside-toplevel
    except ImportError:
        raise ValueError(f"eval task {task!r}: reading {path} (parquet) needs pyarrow, which is not installed.") \
            from None
    try:
        table = pq.ParquetFile(path)
        names = list(table.schema_arrow.names)
    except Exception as e:  # noqa: BLE001  pyarrow raises many kinds (ArrowInvalid, OSError) for a bad file
        raise fail(task, path, f"not a readable parquet file ({type(e).__name__}: {e})") from None
    lacking = [c for c in columns if c not in names]
    if lacking:
        raise fail(task, path, f"expected {what} with the columns {', '.join(columns)}; it lacks "
                               f"{', '.join(repr(c) for c in lacking)} (found {', '.join(names[:16])})")

    def rows() -> Iterator[dict]:
        try:
            for batch in table.iter_batches(batch_size=16):
                yield from batch.to_pylist()
        except Exception as e:  # noqa: BLE001
            raise fail(task, path, f"not a readable parquet file ({type(e).__name__}: {e})") from None

    return rows()


def _image_bytes(value: Any, field: str) -> bytes:
    """An image cell of a hub parquet file (Hugging Face's {"bytes", "path"} struct, or bytes) as bytes."""
    if isinstance(value, dict):
        value = value.get("bytes")
    if not isinstance(value, (bytes, bytearray)) or not value:
        raise Skip(f"field {field!r} holds no image bytes")
    return bytes(value)


def _string_list(value: Any, field: str) -> list[str]:
    if not isinstance(value, (list, tuple)):
        raise Skip(f"field {field!r} is {kind_of(value)}, not a list")
    if not all(isinstance(v, str) for v in value):
        raise Skip(f"field {field!r} is not a list of strings")
    return list(value)


def _letter_index(letter: str, options: list[str], field: str = "answer") -> int:
    bare = str(letter).strip().strip("()").strip()
    if len(bare) != 1 or bare.upper() not in _LETTERS[:len(options)]:
        raise Skip(f"{field} {letter!r} is not one of the option letters {_LETTERS[:len(options)] or '(none)'}")
    return _LETTERS.index(bare.upper())


def _markers_match(texts: list[str], n_images: int, where: str) -> None:
    """Skip unless the texts hold no "<image>" marker (the images go first) or exactly one per image."""
    count = sum(t.count(MARKER) for t in texts)
    if count and count != n_images:
        raise Skip(f"has {count} {MARKER} markers in {where} but {n_images} images")


def _collect_rows(out: Collect, file: str, rows: Iterator[dict], key: str, make: Callable[[dict], Any]) -> None:
    for i, rec in enumerate(rows):
        out.add(file, f"row {i}", record_id(rec, key, i), make, rec)


# --- Q-Bench2 (A1 pairs) -------------------------------------------------------------------------------------------

_QBENCH2_COLUMNS = ("id", "image1", "image2", "question", "option0", "option1", "correct_choice")


def read_qbench2(task: str, *, annotations: str, images: str = "", split: str = "dev"
                 ) -> tuple[list[Item], list[dict]]:
    """Q-Bench2's perception questions on image pairs (A1-pair), from either release:
    - q-future/Q-Bench2-HF (parquet; data/<split>-0000k-of-00003.parquet, splits dev / test): columns id (int),
      image1, image2 (image structs), question, option0..option3 ("N/A" for an absent option), question_type (int),
      question_concern (int), correct_choice (a letter), as lmms-eval's qbench2_dev reads them;
    - q-future/q-bench2's q-bench2-a1-<split>.jsonl (a .jsonl `annotations`): {"type", "concern", "question",
      "img_path": "llvisionqa_compare_dev\\\\00079.jpg_cat_09769.jpg.jpg", "candidates", "correct_ans",
      "correct_choice"}; `images` the folder of single images (all_single_images/), the pair's files named by
      img_path ("00079.jpg" and "09769.jpg") as Mantis's data/qbench2/prepare.py finds them. id = the record's
      position (0-based), as Mantis numbers them.
    The options end at the first absent one; the answer letter must name an option (and, in the jsonl, correct_ans
    be that option's text). question as released (the images before it); options = the candidates; meta = {"answer"
    (the letter), "question_type", "question_concern", "id"}."""
    path = required(task, "annotations", annotations)
    out = Collect()
    if path.lower().endswith(".jsonl"):
        folder = image_folder(task, images)
        for i, (n, rec) in enumerate(load_jsonl(task, "annotations", path)):
            out.add(path, f"line {n}", i, _qbench2_jsonl_item, i, folder, rec)
        return out.result()
    for file in _parquet_files(task, path, split):
        rows = _parquet_rows(task, file, _QBENCH2_COLUMNS, "Q-Bench2-HF's table")
        _collect_rows(out, file, rows, "id", _qbench2_row)
    return out.result()


def _qbench2_item(qid: str, pictures: list, question: str, options: list[str], letter: str, qtype: Any,
                  concern: Any) -> Item:
    if not options:
        raise Skip("has no options")
    index = _letter_index(letter, options, "correct_choice")
    return Item(id=qid, images=pictures, question=question, answers=[options[index]], options=options,
                answer_index=index, meta={"answer": _LETTERS[index], "question_type": qtype,
                                          "question_concern": concern, "id": qid})


def _qbench2_row(rec: dict) -> Item:
    qid = str(need(rec, "id", (int, str)))
    options: list[str] = []
    for k in range(4):
        value = rec.get(f"option{k}")
        if value is None or str(value).strip() in ("", "N/A"):
            if any(rec.get(f"option{j}") not in (None, "", "N/A") for j in range(k + 1, 4)):
                raise Skip(f"option{k} is absent but a later option is not")
            break
        options.append(str(value))
    pictures = [_image_bytes(rec.get("image1"), "image1"), _image_bytes(rec.get("image2"), "image2")]
    return _qbench2_item(qid, pictures, need(rec, "question", str), options, str(need(rec, "correct_choice", str)),
                         rec.get("question_type"), rec.get("question_concern"))


def _qbench2_jsonl_item(i: int, folder: str, rec: Any) -> Item:
    if isinstance(rec, Skip):
        raise rec
    img_path = need(rec, "img_path", str)
    name = img_path.replace("\\", "/").split("/")[-1]
    if name.lower().endswith(".jpg"):
        name = name[:-len(".jpg")]
    pair = name.split("_cat_")
    if len(pair) != 2 or not all(pair):
        raise Skip(f"img_path {img_path!r} does not name an image pair (<first>_cat_<second>.jpg)")
    options = _string_list(need(rec, "candidates"), "candidates")
    item = _qbench2_item(str(i), [os.path.join(folder, p) for p in pair], need(rec, "question", str), options,
                         str(need(rec, "correct_choice", str)), rec.get("type"), rec.get("concern"))
    if rec.get("correct_ans") is not None and str(rec["correct_ans"]) != item.answers[0]:
        raise Skip(f"correct_ans {rec['correct_ans']!r} is not the option of correct_choice "
                   f"{rec['correct_choice']!r} ({item.answers[0]!r})")
    return item


# --- Mantis-Eval ---------------------------------------------------------------------------------------------------

_MANTIS_COLUMNS = ("id", "question_type", "question", "images", "options", "answer")


def read_mantis(task: str, *, annotations: str, split: str = "test") -> tuple[list[Item], list[dict]]:
    """Mantis-Eval (TIGER-Lab/Mantis-Eval): parquet rows {"id", "question_type": "multi-choice" / "short-answer",
    "question" (with "<image>" markers), "images" (a list of image structs), "options" (a list; "(A) Image 1" or
    plain), "answer" (a letter, or the short answer), "data_source", "category"}; `annotations` a parquet file or a
    folder (its mantis_eval/ configuration when present), or the JSON list eval.py also reads (images: paths
    relative to the JSON file).
    A question with fewer markers than images gets the missing ones first (eval.py); more markers than images, or a
    multi-choice answer that names no option, skip the record. options = the option texts without a leading "(A) " /
    "A. " / "A: " / "A) " of their own letter; answers = [the right option's text] or [the short answer]; meta =
    {"question_type", "answer" (as released), "options" (as released: eval.py reads them), "category",
    "data_source", "id"}."""
    return _read_mantis_format(task, annotations, split, "mantis_eval", "Mantis-Eval")


def _read_mantis_format(task: str, annotations: str, split: str, inner: str, what: str, source: str = "mantis"
                        ) -> tuple[list[Item], list[dict]]:
    path = required(task, "annotations", annotations)
    out = Collect()
    if path.lower().endswith(".json") and not os.path.isdir(path):
        records = load_json(task, "annotations", path, list, f"{what} as a JSON list of questions")
        base = os.path.dirname(os.path.abspath(path))
        for i, rec in enumerate(records):
            out.add(path, f"[{i}]", record_id(rec, "id", i), _mantis_record, rec, base, source)
        return out.result()
    for file in _parquet_files(task, path, split, inner):
        rows = _parquet_rows(task, file, _MANTIS_COLUMNS, f"{what}'s table")
        _collect_rows(out, file, rows, "id", lambda rec: _mantis_record(rec, None, source))
    return out.result()


def _plain_option(option: str, letter: str) -> str:
    """An option's text without the "(A) " / "A. " / "A: " / "A) " (then a space) its own letter may start it with."""
    text = option.strip()
    for prefix in (f"({letter})", f"{letter}.", f"{letter}:", f"{letter})"):
        if text.startswith(prefix + " ") and text[len(prefix):].strip():
            return text[len(prefix):].strip()
    return option


def _mantis_record(rec: Any, base: str | None, source: str) -> Item:
    qid = str(need(rec, "id", (str, int)))
    qtype = need(rec, "question_type", str)
    if qtype not in MANTIS_QUESTION_TYPES:
        raise Skip(f"question_type {qtype!r} is neither multi-choice nor short-answer")
    question = need(rec, "question", str)
    raw_images = need(rec, "images", (list, tuple))
    if base is None:
        pictures: list = [_image_bytes(v, f"images[{k}]") for k, v in enumerate(raw_images)]
    else:
        if not all(isinstance(v, str) for v in raw_images):
            raise Skip("field 'images' is not a list of paths")
        pictures = [os.path.join(base, v) for v in raw_images]
    if not pictures:
        raise Skip("has no images")
    count = question.count(MARKER)
    if count > len(pictures):
        raise Skip(f"has {count} {MARKER} markers but {len(pictures)} images")
    question = MARKER * (len(pictures) - count) + question  # eval.py: the missing markers go first
    released = rec.get("options")
    released = [] if released is None else _string_list(released, "options")
    answer = str(need(rec, "answer", (str, int)))
    meta = {"question_type": qtype, "answer": answer, "options": released, "category": rec.get("category") or "",
            "data_source": rec.get("data_source") or "", "id": qid, "source": source}
    if qtype == "short-answer":
        return Item(id=qid, images=pictures, question=question, answers=[answer], meta=meta)
    if not released:
        raise Skip("is multi-choice but has no options")
    ref = answer.strip("()\n ")
    if len(ref) != 1:
        ref = next((c for c in ref if c.isalpha()), ref)
    index = _letter_index(ref, released)
    options = [_plain_option(o, _LETTERS[k]) for k, o in enumerate(released)]
    return Item(id=qid, images=pictures, question=question, answers=[options[index]], options=options,
                answer_index=index, meta=meta)


# --- NLVR2 ---------------------------------------------------------------------------------------------------------


def read_nlvr2(task: str, *, annotations: str, images: str = "", split: str = "test") -> tuple[list[Item], list[dict]]:
    """NLVR2, from the release (lil-lab/nlvr nlvr2/data/dev.json, test1.json, ...: JSON lines {"identifier":
    "dev-850-0-0", "sentence", "label": "True" / "False", "left_url", "right_url", "synset", "query", ...}) or from
    Mantis's NLVR2 task (TIGER-Lab/NLVR2 parquet, its nlvr2/ configuration when a folder; or Mantis's JSON list: the
    Mantis-Eval schema, read as `read_mantis` reads it).
    Release: `images` is the split's image folder; the identifier split-set_id-pair_id-sentence_id names the pair
    <images>/split-set_id-pair_id-img0.png (left) and -img1.png (right) (README; train images under their
    "directory" sub-folder when not at the top). id = identifier; question = Mantis's wording (data/nlvr2/
    prepare_vqa_v3.py) "Here is a statement about the images. Is it true or false?\\n{sentence}", the images
    before it; options ["True", "False"]; answers = [label]; meta = {"identifier", "sentence", "label", "answer"
    ("A" true, "B" false), "options", "question_type": "multi-choice", "source": "nlvr2"}."""
    path = required(task, "annotations", annotations)
    if _is_parquet(path) or _starts_with_list(task, path):
        return _read_mantis_format(task, path, split, "nlvr2", "Mantis's NLVR2", source="mantis")
    folder = image_folder(task, images)
    out = Collect()
    for n, rec in load_jsonl(task, "annotations", path):
        out.add(path, f"line {n}", record_id(rec, "identifier", n), _nlvr2_item, folder, rec)
    return out.result()


def _starts_with_list(task: str, path: str) -> bool:
    """Whether a JSON annotation file is one JSON list (Mantis's files) rather than JSON lines (the release's)."""
    path = annotation_file(task, "annotations", path)
    try:
        with open(path, encoding="utf-8") as f:
            head = f.read(256).lstrip()
    except (OSError, UnicodeDecodeError) as e:
        raise fail(task, path, f"cannot be read ({e})") from None
    return head.startswith("[")


def _nlvr2_item(folder: str, rec: Any) -> Item:
    if isinstance(rec, Skip):
        raise rec
    identifier = need(rec, "identifier", str)
    sentence = need(rec, "sentence", str)
    label = str(need(rec, "label", (str, bool)))
    if label.lower() not in ("true", "false"):
        raise Skip(f"label {label!r} is not True / False")
    label = "True" if label.lower() == "true" else "False"
    if identifier.count("-") != 3:
        raise Skip(f"identifier {identifier!r} is not split-set_id-pair_id-sentence_id")
    pair = identifier[:identifier.rfind("-")]
    pictures = []
    for side in ("img0", "img1"):
        name = f"{pair}-{side}.png"
        flat = os.path.join(folder, name)
        nested = os.path.join(folder, str(rec.get("directory", "")), name)
        pictures.append(nested if rec.get("directory") is not None and not os.path.isfile(flat) else flat)
    index = NLVR2_OPTIONS.index(label)
    return Item(id=identifier, images=pictures, question=NLVR2_QUESTION.format(sentence=sentence), answers=[label],
                options=list(NLVR2_OPTIONS), answer_index=index,
                meta={"identifier": identifier, "sentence": sentence, "label": label, "answer": _LETTERS[index],
                      "options": list(NLVR2_OPTIONS), "question_type": "multi-choice", "source": "nlvr2"})


# --- BLINK ---------------------------------------------------------------------------------------------------------

_BLINK_COLUMNS = ("idx", "question", "choices", "answer", "prompt", "image_1")


def blink_subtask(idx: str) -> str:
    """The subtask evaluate.py reads from an idx: "val_Art_Style_1" -> "Art_Style"."""
    parts = str(idx).split("_")
    return "_".join(parts[1:-1]) if len(parts) > 2 else str(idx)


def read_blink(task: str, *, annotations: str, split: str = "val") -> tuple[list[Item], list[dict]]:
    """BLINK, from the release (BLINK-Benchmark/BLINK: one configuration per subtask, <Subtask>/<split>-*.parquet;
    rows {"idx": "val_Art_Style_1", "question", "sub_task", "image_1".."image_4" (image structs or null), "choices",
    "answer": "(A)", "prompt" (the full text the authors prompt with: the question and its lettered choices),
    "explanation"}) or VLMEvalKit's BLINK.tsv (index, question, A, B, ..., answer, image (a list literal of base64
    images), category).
    Release: id = idx; images image_1..image_4 in order (the non-null ones); question = prompt (before it the
    images: the release places no marker); options = choices; meta = {"answer": "(A)", "subtask" (from idx as
    evaluate.py names it), "sub_task", "question", "prompt", "idx"}. The test split's answers are withheld ("hidden"):
    such records are skipped.
    TSV: id = index; question = the question; meta["subtask"] = the category; meta["answer"] in the release's "(A)"
    form."""
    path = required(task, "annotations", annotations)
    if _is_tsv(path):
        return _mcq_tsv(task, annotation_file(task, "annotations", path), "VLMEvalKit's BLINK.tsv", _blink_tsv_meta)
    out = Collect()
    for file in _parquet_files(task, path, split):
        rows = _parquet_rows(task, file, _BLINK_COLUMNS, "BLINK's table")
        _collect_rows(out, file, rows, "idx", _blink_row)
    return out.result()


def _blink_row(rec: dict) -> Item:
    idx = str(need(rec, "idx", str))
    choices = _string_list(need(rec, "choices"), "choices")
    answer = need(rec, "answer", str).strip()
    if answer.lower() == "hidden":
        raise Skip("answer is 'hidden' (the test split's answers are withheld)")
    if not choices:
        raise Skip("has no choices")
    index = _letter_index(answer, choices)
    pictures = [_image_bytes(rec[k], k) for k in ("image_1", "image_2", "image_3", "image_4") if rec.get(k)]
    if not pictures:
        raise Skip("has no image")
    prompt = need(rec, "prompt", str)
    _markers_match([prompt], len(pictures), "its prompt")
    sub_task = str(rec.get("sub_task") or "")
    return Item(id=idx, images=pictures, question=prompt, answers=[choices[index]], options=choices,
                answer_index=index,
                meta={"answer": f"({_LETTERS[index]})", "subtask": blink_subtask(idx) or sub_task,
                      "sub_task": sub_task, "question": need(rec, "question", str), "prompt": prompt, "idx": idx})


def _blink_tsv_meta(table: LmuTable, row: list[str], index: int) -> dict:
    category = table.cell(row, "category")
    return {"answer": f"({_LETTERS[index]})", "subtask": category, "category": category,
            "hint": table.cell(row, "hint") if table.cell(row, "hint").lower() not in ("", "nan") else ""}


def _mcq_tsv(task: str, path: str, what: str, meta_of: Callable[[LmuTable, list[str], int], dict]
             ) -> tuple[list[Item], list[dict]]:
    """An LMUData multiple-choice TSV with several images a row (BLINK.tsv, MUIRBench.tsv)."""
    table = LmuTable(task, "annotations", path, ("index", "question", "A", "answer", "image"), what)

    def make(n: int, row: list[str]) -> Item:
        table.check_width(row)
        options = table.options(row)
        if not options:
            raise Skip("has no options (column A is empty)")
        index = _letter_index(table.cell(row, "answer"), options)
        question = table.cell(row, "question")
        pictures = table.images(row)
        _markers_match([question] + options, len(pictures), "its question and options")
        rid = table.cell(row, "index")
        meta = {"index": rid, "question": question, "source": "tsv", **meta_of(table, row, index)}
        return Item(id=rid, images=pictures, question=question, answers=[options[index]], options=options,
                    answer_index=index, meta=meta)

    return table.collect(make)


# --- MuirBench -----------------------------------------------------------------------------------------------------

_MUIR_COLUMNS = ("idx", "task", "question", "options", "answer", "image_list")


def read_muirbench(task: str, *, annotations: str, split: str = "test") -> tuple[list[Item], list[dict]]:
    """MuirBench, from the release (MUIRBENCH/MUIRBENCH, data/test-*.parquet: rows {"idx", "task", "image_relation",
    "image_type", "question", "options" (a list), "answer" (a letter), "image_list" (image structs, in order),
    "counterpart_idx"}) or VLMEvalKit's MUIRBench.tsv (index, question, A..E, answer, image (a list literal of base64
    images), category (the task), and where present "multi-image relation").
    The question and the options place the images with "<image>" markers (images in the options: a visual retrieval
    question's answers are images); their count must equal the images' (or be 0: the images go first). id = idx
    (the TSV's index); options as released; meta = {"answer" (the letter), "task", "image_relation", "image_type",
    "counterpart_idx", "idx"}."""
    path = required(task, "annotations", annotations)
    if _is_tsv(path):
        return _mcq_tsv(task, annotation_file(task, "annotations", path), "VLMEvalKit's MUIRBench.tsv",
                        _muir_tsv_meta)
    out = Collect()
    for file in _parquet_files(task, path, split):
        rows = _parquet_rows(task, file, _MUIR_COLUMNS, "MUIRBench's table")
        _collect_rows(out, file, rows, "idx", _muir_row)
    return out.result()


def _muir_row(rec: dict) -> Item:
    idx = str(need(rec, "idx", (str, int)))
    options = _string_list(need(rec, "options"), "options")
    if not options:
        raise Skip("has no options")
    index = _letter_index(need(rec, "answer", str), options)
    raw = need(rec, "image_list", (list, tuple))
    pictures = [_image_bytes(v, f"image_list[{k}]") for k, v in enumerate(raw)]
    if not pictures:
        raise Skip("has no images")
    question = need(rec, "question", str)
    _markers_match([question] + options, len(pictures), "its question and options")
    return Item(id=idx, images=pictures, question=question, answers=[options[index]], options=options,
                answer_index=index,
                meta={"answer": _LETTERS[index], "task": str(need(rec, "task", str)),
                      "image_relation": str(rec.get("image_relation") or ""),
                      "image_type": str(rec.get("image_type") or ""),
                      "counterpart_idx": str(rec.get("counterpart_idx") or ""), "idx": idx})


def _muir_tsv_meta(table: LmuTable, row: list[str], index: int) -> dict:
    return {"answer": _LETTERS[index], "task": table.cell(row, "category"),
            "image_relation": table.cell(row, "multi-image relation"), "image_type": table.cell(row, "image_type")}
