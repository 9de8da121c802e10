"""OCRBench's official scorer, read from Yuliang-Liu/MultimodalOCR OCRBench/example.py (the evaluation at the end of
its main; commit 794c36d6, 2026-04-28), the script the OCRBench README points to.

Per question (`result` 0 / 1); `answers` is the record's "answers", a string or a list of strings:
  - a record of dataset_name "HME100k" (handwritten formulas): answer and prediction are stripped, newlines become
    spaces, then every space is deleted; correct iff some answer is a substring of the prediction;
  - every other record: answer and prediction are lower-cased, stripped, newlines become spaces; correct iff some
    answer is a substring of the prediction. An answer that is empty after this matches any prediction;
  - a record without a prediction (the script's `data[i].get('predict', 0) == 0`) is not scored (None here) and
    counts for nothing.
Totals (`ocrbench_scores`): when the file has exactly 1000 records, the script sums `result` per "type" (ten
categories), "Text Recognition" = the six recognition types, and "Final Score" = the sum over all ten (out of
1000); for any other number of records it prints instead, per dataset_name, the fraction correct (out of all that
dataset's records, scored or not). Both tables are returned as that rule says.
Conventions: "vlmevalkit" (open-compass/VLMEvalKit vlmeval/dataset/image_vqa.py `OCRBench.evaluate`, commit
e8e78f05): the same rules, but the formula rule is chosen by category == "Handwritten Mathematical Expression
Recognition" (the TSV has no dataset_name), the prediction is str(prediction); its table adds "Final Score Norm" =
Final Score / 10 and is computed whatever the number of rows. "lmms_eval" (EvolvingLMMs-Lab/lmms-eval
lmms_eval/tasks/ocrbench/utils.py, commit 75571cfe): the prediction is stripped first and, outside HME100k, answer
and prediction have their fullwidth ASCII (U+FF01-U+FF5E) folded to ASCII and U+3000 to a space before the rule.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

OCRBENCH_CONVENTIONS = ("official", "vlmevalkit", "lmms_eval")
HME_TYPE = "Handwritten Mathematical Expression Recognition"
RECOGNITION_TYPES = ("Regular Text Recognition", "Irregular Text Recognition", "Artistic Text Recognition",
                     "Handwriting Recognition", "Digit String Recognition", "Non-Semantic Text Recognition")
TYPES = RECOGNITION_TYPES + ("Scene Text-centric VQA", "Doc-oriented VQA", "Key Information Extraction", HME_TYPE)


def _check(convention: str) -> None:
    if convention not in OCRBENCH_CONVENTIONS:
        raise ValueError(f"ocrbench: unknown convention {convention!r}; known: {', '.join(OCRBENCH_CONVENTIONS)}")


def _formula_form(text: str) -> str:
    return text.strip().replace("\n", " ").replace(" ", "")


def _text_form(text: str) -> str:
    return text.lower().strip().replace("\n", " ")


def _fold_fullwidth(text: str) -> str:
    # lmms-eval's _fold_fullwidth_ascii
    return "".join(chr(ord(c) - 0xFEE0) if 0xFF01 <= ord(c) <= 0xFF5E else " " if c == "\u3000" else c for c in text)


def ocrbench_correct(prediction: str | None, answers: str | Sequence[str], dataset_name: str = "",
                     question_type: str = "", convention: str = "official") -> int | None:
    """One OCRBench question: 1 if an answer is contained in the prediction under its rule (module docstring), else
    0; None when there is no prediction (official: not scored). The formula rule applies to dataset_name "HME100k"
    ("official", "lmms_eval") or to question_type HME_TYPE ("vlmevalkit")."""
    _check(convention)
    if prediction is None:
        return None
    if convention == "vlmevalkit":
        prediction = str(prediction)
        formula = question_type == HME_TYPE
    else:
        formula = dataset_name == "HME100k"
    if convention == "lmms_eval":
        prediction = prediction.strip()
    answers = [answers] if isinstance(answers, str) else list(answers)
    form = _formula_form if formula else _text_form
    fold = _fold_fullwidth if convention == "lmms_eval" and not formula else (lambda s: s)
    return int(any(form(fold(answer)) in form(fold(prediction)) for answer in answers))


def ocrbench_scores(records: Sequence[Mapping[str, Any]], convention: str = "official") -> dict[str, float]:
    """The script's totals from records {"type", "dataset_name", "result": 0 / 1 / None}: with 1000 records (or
    any number, "vlmevalkit") the ten per-type sums, "Text Recognition" and "Final Score" ("Final Score Norm" too,
    "vlmevalkit"); otherwise {dataset_name: correct / records of it} for the datasets present."""
    _check(convention)
    if len(records) == 1000 or convention == "vlmevalkit":
        table: dict[str, float] = {t: 0 for t in TYPES}
        for r in records:
            if r.get("result") is not None:
                if r["type"] not in table:
                    raise ValueError(f"ocrbench_scores: unknown type {r['type']!r}; known: {', '.join(TYPES)}")
                table[r["type"]] += r["result"]
        table["Text Recognition"] = sum(table[t] for t in RECOGNITION_TYPES)
        table["Final Score"] = table["Text Recognition"] + sum(table[t] for t in TYPES[len(RECOGNITION_TYPES):])
        if convention == "vlmevalkit":
            table["Final Score Norm"] = table["Final Score"] / 10
        return table
    counts: dict[str, list[int]] = {}
    for r in records:
        c = counts.setdefault(r["dataset_name"], [0, 0])
        c[1] += 1
        c[0] += r.get("result") or 0
    return {name: hit / total for name, (hit, total) in counts.items()}
