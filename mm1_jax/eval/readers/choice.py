"""Multiple choice with images: MMBench TSV, ScienceQA, AI2D, our jsonl."""
from __future__ import annotations

import base64
import binascii
import json
import os
import re
from typing import Any

from mm1_jax.eval.prompts import Item
from mm1_jax.eval.readers.common import (Collect, Skip, fail, image_folder, kind_of, load_json, load_jsonl, need,
                                         read_tsv, record_id, required, strings, text_lines)

_MMBENCH_CIRCULAR = 1_000_000  # MMBench's pre-rotated copies of question i have index i + k * 1e6


def _choice(options: list[str], answer: Any, name: str = "answer") -> int:
    """`answer`, the index of the right option, checked against the options."""
    if isinstance(answer, bool) or not isinstance(answer, int):
        raise Skip(f"field {name!r} is {kind_of(answer)}, not an option index")
    if not 0 <= answer < len(options):
        raise Skip(f"{name} {answer} is out of range for its {len(options)} options")
    return answer


def _with_hint(hint: Any, question: str) -> str:
    """`question` after its hint and a newline, when there is a hint (MMBench writes a missing one as "nan")."""
    hint = "" if hint is None else str(hint).strip()
    return f"{hint}\n{question}" if hint and hint.lower() != "nan" else question


def read_mmbench(task: str, *, annotations: str) -> tuple[list[Item], list[dict]]:
    """MMBench TSV (MMBench_DEV_EN.tsv, MMBench_TEST_EN.tsv, the CN versions): tab-separated with a header row:
    index, question, hint, A, B, C, D (E, F where present), answer (a letter; absent in test files), category,
    image (base64 of the image file, or another row's index whose image it shares), and l2-category, split,
    source, comment where present. options = the letter columns up to the first empty / "nan" cell;
    question = hint + "\\n" + question when there is a hint; images = [decoded bytes]; meta = {"index", "category"}.
    Rows with index >= 1_000_000 are MMBench's circular copies (pass k of question i is row i + k * 1e6, or the row
    whose g_index column is i, as VLMEvalKit's vlmeval/dataset/utils/multiple_choice.py groups them): they become
    meta["passes"] of question i, [(options, answer index)] for pass 0, 1, ..., which CircularEval presents."""
    header, rows = read_tsv(task, "annotations", annotations)
    col = {name: j for j, name in enumerate(header)}
    for name in ("index", "question", "image", "A"):
        if name not in col:
            raise fail(task, annotations, f"expected a TSV header with index, question, image and option columns "
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
            raise Skip(f"index {cell(row, 'index')!r} is not a number") from None

    encoded: dict[str, str] = {}  # index -> base64, for rows that give their image as another row's index
    for _, row in rows:
        image = cell(row, "image")
        if len(row) == len(header) and image and not _is_index_ref(image):
            encoded[cell(row, "index")] = image
    decoded: dict[str, bytes] = {}  # base64 -> bytes, decoded once for the rows that share an image
    out = Collect()

    copies: dict[int, dict[int, tuple[list[str], int]]] = {}  # question -> {pass: (options, answer index)}

    def make(row: list[str]) -> Item | list[Item]:
        index = index_of(row)
        if len(row) != len(header):
            raise Skip(f"has {len(row)} cells, the header {len(header)}")
        options = []
        for letter in letters:
            value = cell(row, letter)
            if not value or value.lower() == "nan":
                break
            options.append(value)
        if not options:
            raise Skip("has no options (column A is empty)")
        answer_index, answers = -1, []
        if "answer" in col:
            letter = cell(row, "answer").upper()
            if len(letter) != 1 or not "A" <= letter < chr(ord("A") + len(options)):
                raise Skip(f"answer {cell(row, 'answer')!r} is not one of the option letters "
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
                raise Skip(f"image refers to row index {image}, which has no image")
            image = encoded[image]
        if not image:
            raise Skip("has no image")
        if image not in decoded:
            try:
                decoded[image] = base64.b64decode("".join(image.split()), validate=True)
            except (binascii.Error, ValueError) as e:
                raise Skip(f"image is not base64 ({e})") from None
        question = _with_hint(cell(row, "hint"), cell(row, "question"))
        return Item(id=str(index), images=[decoded[image]], question=question, answers=answers, options=options,
                    answer_index=answer_index, meta={"index": index, "category": cell(row, "category"),
                                                     "tsv_question": cell(row, "question")})

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
    data = load_json(task, "annotations", annotations, dict, "a JSON object of pid -> problem")
    images = image_folder(task, images)
    splits = sorted({str(p["split"]) for p in data.values() if isinstance(p, dict) and p.get("split") is not None})
    if split not in splits:
        raise fail(task, annotations, f"has no problems of split {split!r}; the splits present are "
                                       f"{', '.join(splits)}")
    out = Collect()

    def make(pid: str, rec: Any) -> Item | list[Item]:
        if str(need(rec, "split")) != split:
            return []
        image = rec.get("image")
        if image_only and not image:
            return []
        question = need(rec, "question", str)
        options = strings(need(rec, "choices", list), "choices")
        index = _choice(options, need(rec, "answer"))
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
    folder = required(task, "annotations", annotations)
    if not os.path.isdir(folder):
        raise ValueError(f"eval task {task!r}: annotation folder {folder!r} (the AI2D questions/ folder) does not "
                         f"exist." if not os.path.exists(folder) else
                         f"eval task {task!r}: {folder}: expected the AI2D questions/ folder, found a file.")
    images = image_folder(task, images)
    files = {_image_key(f): f for f in sorted(os.listdir(folder), key=_natural) if f.endswith(".json")}
    out = Collect()
    wanted = list(files)
    if ids:
        wanted = []
        for n, line in text_lines(task, "ids", ids):
            key = _image_key(line.split(",")[0].strip())
            if key in files:
                wanted.append(key)
            else:
                out.skip(key, ids, f"line {n}", f"no questions file for image {key!r} in {folder}")

    for key in wanted:
        path = os.path.join(folder, files[key])
        data = load_json(task, "annotations", path)
        image = data.get("imageName")
        if not isinstance(image, str) or not isinstance(data.get("questions"), dict):
            raise fail(task, path, f"expected an AI2D questions file {{\"imageName\", \"questions\": {{...}}}}, "
                                    f"found keys {sorted(data)[:8]}")
        for j, (text, rec) in enumerate(data["questions"].items()):
            out.add(path, f"questions[{json.dumps(text)}]", record_id(rec, "questionId", f"{image}-{j}"),
                    _ai2d_item, os.path.join(images, image), text, rec)
    return out.result()


def _ai2d_item(image: str, text: str, rec: Any) -> Item:
    options = strings(need(rec, "answerTexts", list), "answerTexts")
    index = _choice(options, need(rec, "correctAnswer"), "correctAnswer")
    qid = need(rec, "questionId", (int, str))
    return Item(id=str(qid), images=[image], question=text, answers=[options[index]], options=options,
                answer_index=index, meta={"questionId": qid, "abcLabel": bool(rec.get("abcLabel", False))})


def read_multiple_choice(task: str, *, annotations: str, images: str = "") -> tuple[list[Item], list[dict]]:
    """Our jsonl multiple choice: one {"id", "question", "options": [str], "answer": index or option text,
    "image"?: a path or a list of paths relative to `images`} a line; id defaults to the line number."""
    records = load_jsonl(task, "annotations", annotations)
    if images:
        images = image_folder(task, images)
    out = Collect()

    def make(n: int, rec: Any) -> Item:
        if isinstance(rec, Skip):
            raise rec
        options = strings(need(rec, "options", list), "options")
        answer = need(rec, "answer")
        if isinstance(answer, str):
            if answer not in options:
                raise Skip(f"answer {answer!r} is not one of its {len(options)} options")
            answer = options.index(answer)
        index = _choice(options, answer)
        image = rec.get("image")
        pictures = [] if not image else [os.path.join(images, str(x)) for x in (image if isinstance(image, list)
                                                                                 else [image])]
        return Item(id=str(rec.get("id", n)), images=pictures, question=str(rec.get("question", "")),
                    options=options, answer_index=index, answers=[options[index]])

    for n, rec in records:
        out.add(annotations, f"line {n}", record_id(rec, "id", n), make, n, rec)
    return out.result()
