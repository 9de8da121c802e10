"""TextCore's text-only tasks: ARC, PIQA, LAMBADA. meta["context"] is the text the options / answer continue."""
from __future__ import annotations

from typing import Any

from mm1_jax.eval.prompts import Item
from mm1_jax.eval.readers.common import Collect, Skip, load_jsonl, need, record_id, text_lines


def read_arc(task: str, *, annotations: str) -> tuple[list[Item], list[dict]]:
    """ARC ARC-Easy-Test.jsonl / ARC-Challenge-Test.jsonl: one {"id", "question": {"stem", "choices": [{"text",
    "label"}]}, "answerKey"} a line (labels A-E or 1-4). meta["context"] = "Question: <stem>\\nAnswer:";
    options = [" " + text] (continuations); answer_index = the choice labelled answerKey."""
    records = load_jsonl(task, "annotations", annotations)
    out = Collect()

    def make(rec: Any) -> Item:
        if isinstance(rec, Skip):
            raise rec
        rid = need(rec, "id", (int, str))
        question = need(rec, "question", dict)
        stem = need(question, "stem", str, name="question.stem")
        choices = need(question, "choices", list, name="question.choices")
        labels = [str(need(c, "label", name=f"question.choices[{j}].label")) for j, c in enumerate(choices)]
        options = [" " + str(need(c, "text", name=f"question.choices[{j}].text")) for j, c in enumerate(choices)]
        key = str(need(rec, "answerKey"))
        if key not in labels:
            raise Skip(f"answerKey {key!r} is not one of the choice labels {labels}")
        index = labels.index(key)
        return Item(id=str(rid), images=[], options=options, answer_index=index, answers=[options[index]],
                    meta={"context": f"Question: {stem}\nAnswer:"})

    for n, rec in records:
        out.add(annotations, f"line {n}", record_id(rec, "id", n), make, rec)
    return out.result()


def read_piqa(task: str, *, annotations: str, labels: str) -> tuple[list[Item], list[dict]]:
    """PIQA valid.jsonl (one {"goal", "sol1", "sol2"} a line) + valid-labels.lst (one 0 / 1 a line, the same
    order). meta["context"] = "Question: <goal>\\nAnswer:"; options = [" " + sol1, " " + sol2]; id = the record's
    0-based position (the line of its label)."""
    records = load_jsonl(task, "annotations", annotations)
    answers = text_lines(task, "labels", labels)
    if len(answers) != len(records):
        raise ValueError(f"eval task {task!r}: {labels} has {len(answers)} labels but {annotations} has "
                         f"{len(records)} records; they must pair line by line.")
    out = Collect()

    def make(i: int, rec: Any, label_line: int, label: str) -> Item:
        if isinstance(rec, Skip):
            raise rec
        goal = need(rec, "goal", str)
        options = [" " + need(rec, "sol1", str), " " + need(rec, "sol2", str)]
        if label not in ("0", "1"):
            raise Skip(f"label {label!r} is not 0 or 1", labels, f"line {label_line}")
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
    records = load_jsonl(task, "annotations", annotations)
    out = Collect()

    def make(i: int, rec: Any) -> Item:
        if isinstance(rec, Skip):
            raise rec
        parts = need(rec, "text", str).rsplit(None, 1)
        if len(parts) != 2:
            raise Skip("text has a single word: no context before its last word")
        return Item(id=str(i), images=[], answers=[parts[1]], meta={"context": parts[0]})

    for i, (n, rec) in enumerate(records):
        out.add(annotations, f"line {n}", i, make, i, rec)
    return out.result()
