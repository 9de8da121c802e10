"""Tables as images: WikiTableQuestions (WTQ) and TabFact, from TableVQA-Bench (VLMEvalKit's TSV) or DocOwl 1.5's
DocDownstream-1.0 test files.

Which image version MM1.5 used is not known here. Two are read:
  - TableVQA-Bench (naver-ai/tablevqabench) as VLMEvalKit distributes it, tablevqa-bench.tsv: index, image (base64),
    question, answer, split ("vwtq", "vwtq_syn", "vtabfact", "fintabnetqa"); the WTQ answer is the release's
    |-joined, TSV-escaped target list, the TabFact answer "1" (entailed) / "0" (refuted). Columns as VLMEvalKit's
    vlmeval/dataset/image_vqa.py `TableVQABench` and vlmeval/dataset/utils/tablevqabench.py read them (commit
    e8e78f05); no TSV was at hand to check them against;
  - DocOwl 1.5's DocDownstream-1.0 (X-PLUG/mPLUG-DocOwl DocOwl1.5/docowl_benchmark_evaluate.py, commit f91a7685):
    test/WikiTableQuestions_test.jsonl and test/TabFact_test.jsonl, one {"image": [path relative to the
    DocDownstream folder], "messages": [{"role": "user", "content": "<|image|>question"}, {"role": "assistant",
    "content": answer}]} a line: the fields that script reads; the rest of the record and the answers' form
    (how several WTQ answers are joined; TabFact's wording) are UNVERIFIED, no file having been seen.
"""
from __future__ import annotations

import os
from typing import Any

from mm1_jax.eval.prompts import Item
from mm1_jax.eval.readers.common import Collect, Skip, image_folder, load_jsonl, need, required
from mm1_jax.eval.readers.lmudata import LmuTable
from mm1_jax.eval.scorers.wtq import tsv_unescape_list

TABLEVQA_SPLITS = ("vwtq", "vwtq_syn", "vtabfact", "fintabnetqa")


def read_wtq(task: str, *, annotations: str, images: str = "", split: str = "vwtq") -> tuple[list[Item], list[dict]]:
    """WTQ questions on table images: a .tsv `annotations` is TableVQA-Bench (rows of `split`, "vwtq" or
    "vwtq_syn"; answers = the answer cell's items, unescaped as evaluator.py's tsv_unescape_list), a .jsonl one
    DocOwl's WikiTableQuestions_test.jsonl (images relative to the DocDownstream folder, `images`; answers = [the
    assistant's content]). meta = {"answer": the raw cell / content, "split" or "source"}."""
    return _read_table_task(task, annotations, images, split, "wtq")


def read_tabfact(task: str, *, annotations: str, images: str = "", split: str = "vtabfact"
                 ) -> tuple[list[Item], list[dict]]:
    """TabFact statements on table images: a .tsv `annotations` is TableVQA-Bench (rows of `split`; answers =
    ["1"] entailed or ["0"] refuted, other values skipped), a .jsonl one DocOwl's TabFact_test.jsonl (answers =
    [the assistant's content])."""
    return _read_table_task(task, annotations, images, split, "tabfact")


def _read_table_task(task: str, annotations: str, images: str, split: str, kind: str
                     ) -> tuple[list[Item], list[dict]]:
    path = required(task, "annotations", annotations)
    if path.lower().endswith(".tsv"):
        if split not in TABLEVQA_SPLITS:
            raise ValueError(f"eval task {task!r}: split {split!r} is not a TableVQA-Bench split; known: "
                             f"{', '.join(TABLEVQA_SPLITS)}")
        return _tablevqa(task, path, split, kind)
    return _docowl(task, path, images)


def _tablevqa(task: str, path: str, split: str, kind: str) -> tuple[list[Item], list[dict]]:
    table = LmuTable(task, "annotations", path, ("index", "image", "question", "answer", "split"),
                     "TableVQA-Bench's TSV (tablevqa-bench.tsv)")
    out = Collect()

    def make(row: list[str]) -> Item | list[Item]:
        table.check_width(row)
        if table.cell(row, "split") != split:
            return []
        raw = table.cell(row, "answer")
        if kind == "tabfact" and raw not in ("0", "1"):
            raise Skip(f"answer {raw!r} is neither '1' (entailed) nor '0' (refuted)")
        answers = tsv_unescape_list(raw) if kind == "wtq" else [raw]
        return Item(id=table.cell(row, "index"), images=table.images(row), question=table.cell(row, "question"),
                    answers=answers, meta={"answer": raw, "split": split})

    for n, row in table.rows:
        out.add(path, f"row {n}", table.cell(row, "index") or n, make, row)
    return out.result()


def _docowl(task: str, path: str, images: str) -> tuple[list[Item], list[dict]]:
    records = load_jsonl(task, "annotations", path)
    folder = image_folder(task, images)
    out = Collect()

    def make(n: int, rec: Any) -> Item:
        if isinstance(rec, Skip):
            raise rec
        pictures = need(rec, "image", list)
        messages = need(rec, "messages", list)
        if not pictures or not isinstance(pictures[0], str):
            raise Skip("field 'image' is not a list of paths")
        if (len(messages) != 2 or not all(isinstance(m, dict) for m in messages)
                or [m.get("role") for m in messages] != ["user", "assistant"]):
            raise Skip("field 'messages' is not [user, assistant] (docowl_benchmark_evaluate.py asserts it)")
        question = need(messages[0], "content", str, "messages[0].content").replace("<|image|>", "")
        answer = need(messages[1], "content", str, "messages[1].content")
        return Item(id=str(n), images=[os.path.join(folder, pictures[0])], question=question, answers=[answer],
                    meta={"answer": answer, "source": "docowl"})

    for n, rec in records:
        out.add(path, f"line {n}", n, make, n, rec)
    return out.result()
