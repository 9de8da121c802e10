"""The table benchmarks' scorers: WikiTableQuestions (WTQ) denotation accuracy and TabFact verdict accuracy, read from
their evaluation code.

WTQ, official: ppasupat/WikiTableQuestions evaluator.py (v1.0.2, commit 7d455a5a; Python 2), ported rule by rule:
  * normalize(s): diacritics removed (NFKD, combining marks dropped); the quotes ‘’´` -> ' and “” -> "; the dashes
    ‐‑‒–—− -> -; then, until nothing changes: trailing citations (a [..] not at the start, [digits], or the marks
    •♦†‡*#+) removed, trailing " (...)" details removed (not at the start), one pair of outer double quotes removed
    (each on the stripped string); then one final '.' removed; white-space runs -> one space, lower-cased, stripped.
    Python 2's `\\d` (no re.UNICODE) is ASCII digits: kept so here;
  * to_value(original, canon=None): the text to parse is canon (the CoreNLP value the tagged release gives) or the
    original. int() of it, else float() of it unless NaN / infinite -> a number (Python 2 parsing: no '_' digit
    separators); else "yyyy-mm-dd" with "xx" (or "xxxx" for the year) for unknown fields, months 1-12, days 1-31,
    not all unknown -> a date, a year alone becoming a number; else a string. A number within 1e-6 of an integer
    is that integer; every value keeps normalize(original) as its string form;
  * a target value matches a predicted one if their normalised strings are equal, or both are numbers within 1e-6,
    or both are dates with equal (year, month, day);
  * check_denotation: the value LISTS are deduplicated (set); correct iff they have the same size and every target
    matches some prediction. Accuracy = correct / examples (printed rounded to 4 places).
  The official prediction file holds one line per question, "id<TAB>item<TAB>item..."; a prediction given here as
  one string is split on tabs like that line, a list is taken as its items.
Conventions for WTQ: "tablevqabench": the image version TableVQA-Bench (naver-ai/tablevqabench) as VLMEvalKit scores
  it (open-compass/VLMEvalKit vlmeval/dataset/image_vqa.py `TableVQABench.evaluate` + vlmeval/dataset/utils/
  tablevqabench.py `evaluate_wtq`, commit e8e78f05): a leading "Answer: " is removed, "||" becomes "|", and the
  prediction is split into items on "|" with the release's TSV unescaping (\\n newline, \\p bar, \\\\ backslash);
  the targets are the answer cell split the same way (`read_wtq` does that); then the rules above under Python 3
  (int() / float() also take '_' separators; a NaN / infinite number, "nan" or "inf", makes its port fail: a
  ValueError here). "docowl": DocOwl 1.5's run of the DUE benchmark's scorer
  (X-PLUG/mPLUG-DocOwl DocOwl1.5/evaluation/due_benchmarks_eval.py + due_evaluator/scorers/wtq_scorer.py, commit
  f91a7685): the prediction is one item, str(answer).strip() with newlines deleted; prediction and targets are
  upper-cased (DueEvaluator ignore_case=True) before the rules, under Python 3.

TabFact (entailed "1" / refuted "0"): the statement-verification label has no generation scorer in its release
(wenhuchen/Table-Fact-Checking scores classifier labels); the image version's own scorer is taken as official:
  "official": TableVQA-Bench's `evaluate_tabfact` (same VLMEvalKit files): the prediction lower-cased (None ->
    "none"); both "true" and "false" in it -> None (unparsed, counted as wrong: it stays in the denominator);
    "true" in it and the gold "1", or "false" in it and the gold "0" -> 1; otherwise 0;
  "docowl": DocOwl 1.5's ExactAccuracy for TabFact (DocOwl1.5/docowl_benchmark_evaluate.py -> evaluation/
    benchmarks_eval.py `llm_benchmark_eval` -> evaluation/evaluator.py `exact_match`, commit f91a7685): the gold
    answer text and the prediction with newlines deleted and stripped, one trailing '.' removed from the gold, then
    case-sensitive equality.
"""
from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Sequence
from typing import Any

WTQ_CONVENTIONS = ("official", "tablevqabench", "docowl")
TABFACT_CONVENTIONS = ("official", "docowl")


def _check(convention: str, known: Sequence[str], scorer: str) -> None:
    if convention not in known:
        raise ValueError(f"{scorer}: unknown convention {convention!r}; known: {', '.join(known)}")


# ------------------------------------------------------------------------------------------------ evaluator.py

_CITATIONS = re.compile(r"((?<!^)\[[^\]]*\]|\[[0-9]+\]|[•♦†‡*#+])*$")
_DETAILS = re.compile(r"(?<!^)( \([^)]*\))*$")
_QUOTED = re.compile(r'^"([^"]*)"$')


def normalize(text: str) -> str:
    """evaluator.py `normalize` (module docstring)."""
    text = "".join(c for c in unicodedata.normalize("NFKD", text) if unicodedata.category(c) != "Mn")
    text = re.sub(r"[‘’´`]", "'", text)
    text = re.sub(r"[“”]", '"', text)
    text = re.sub(r"[‐‑‒–—−]", "-", text)
    while True:
        old = text
        text = _CITATIONS.sub("", text.strip())
        text = _DETAILS.sub("", text.strip())
        text = _QUOTED.sub(r"\1", text.strip())
        if text == old:
            break
    if text and text[-1] == ".":
        text = text[:-1]
    return re.sub(r"\s+", " ", text).lower().strip()


class Value:
    """A denotation item: its normalised string form and how it matches another value."""

    normalized: str

    def match(self, other: Value) -> bool:
        return self.normalized == other.normalized


class StringValue(Value):
    def __init__(self, content: str):
        self.normalized = normalize(content)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, StringValue) and self.normalized == other.normalized

    def __hash__(self) -> int:
        return hash(self.normalized)

    def __repr__(self) -> str:
        return f"S{[self.normalized]}"


def _py2_str(amount: float) -> str:
    # Python 2's unicode(float): 12 significant digits ('%.12g'), '.0' added to what looks like an integer
    if isinstance(amount, int):
        return str(amount)
    text = f"{amount:.12g}"
    return text if any(c in text for c in ".eEn") else text + ".0"


class NumberValue(Value):
    def __init__(self, amount: float, original: str | None = None, py2: bool = True):
        self.amount = int(amount) if abs(amount - round(amount)) < 1e-6 else float(amount)
        self.normalized = normalize(original) if original else (_py2_str(self.amount) if py2 else str(self.amount))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, NumberValue) and self.amount == other.amount

    def __hash__(self) -> int:
        return hash(self.amount)

    def match(self, other: Value) -> bool:
        if self.normalized == other.normalized:
            return True
        return isinstance(other, NumberValue) and abs(self.amount - other.amount) < 1e-6

    def __repr__(self) -> str:
        return f"N({self.amount}){[self.normalized]}"


class DateValue(Value):
    def __init__(self, year: int, month: int, day: int, original: str | None = None):
        self.ymd = (year, month, day)
        # the official compares day with the STRING '-1', so an unknown day prints as -1 (never 'xx')
        self.normalized = normalize(original) if original else "{}-{}-{}".format(
            year if year != -1 else "xx", month if month != -1 else "xx", day)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, DateValue) and self.ymd == other.ymd

    def __hash__(self) -> int:
        return hash(self.ymd)

    def match(self, other: Value) -> bool:
        if self.normalized == other.normalized:
            return True
        return isinstance(other, DateValue) and self.ymd == other.ymd

    def __repr__(self) -> str:
        return f"D{self.ymd}{[self.normalized]}"


def parse_number(text: str, py2: bool = True, nan_fails: bool = False) -> int | float | None:
    """NumberValue.parse: int(text), else float(text) unless NaN / infinite, else None. py2: Python 2's int() and
    float() take no '_' separators. nan_fails: VLMEvalKit's port catches only ValueError, so its assert on a NaN /
    infinite float escapes and ends the evaluation: ValueError here."""
    if py2 and "_" in text:
        return None
    try:
        return int(text)
    except ValueError:
        pass
    try:
        amount = float(text)
    except ValueError:
        return None
    if (math.isnan(amount) or math.isinf(amount)) and nan_fails:
        raise ValueError(f"wtq: the value {text!r} is NaN / infinite, on which VLMEvalKit's evaluate_wtq fails "
                         f"(AssertionError in NumberValue.parse)")
    return None if math.isnan(amount) or math.isinf(amount) else amount


def parse_date(text: str, py2: bool = True) -> tuple[int, int, int] | None:
    """DateValue.parse: "yyyy-mm-dd" with xx for unknown fields -> (year, month, day) with -1 for those, or None."""
    if py2 and "_" in text:
        return None
    parts = text.lower().split("-")
    if len(parts) != 3:
        return None
    try:
        year = -1 if parts[0] in ("xx", "xxxx") else int(parts[0])
        month = -1 if parts[1] == "xx" else int(parts[1])
        day = -1 if parts[2] == "xx" else int(parts[2])
    except ValueError:
        return None
    if year == month == day == -1 or not (month == -1 or 1 <= month <= 12) or not (day == -1 or 1 <= day <= 31):
        return None
    return year, month, day


def to_value(original: str, canon: str | None = None, py2: bool = True, nan_fails: bool = False) -> Value:
    """evaluator.py `to_value` (module docstring)."""
    text = canon or original
    amount = parse_number(text, py2, nan_fails)
    if amount is not None:
        return NumberValue(amount, original, py2)
    ymd = parse_date(text, py2)
    if ymd is not None:
        if ymd[1] == ymd[2] == -1:
            return NumberValue(ymd[0], original, py2)
        return DateValue(*ymd, original)
    return StringValue(original)


def to_value_list(originals: Sequence[str], canons: Sequence[str | None] | None = None, py2: bool = True,
                  nan_fails: bool = False) -> list[Value]:
    """evaluator.py `to_value_list`: the values, deduplicated (a set)."""
    if canons is not None and len(canons) != len(originals):
        raise ValueError(f"to_value_list: {len(originals)} values but {len(canons)} CoreNLP values")
    canons = canons if canons is not None else [None] * len(originals)
    return list({to_value(x, y, py2, nan_fails) for x, y in zip(originals, canons)})


def check_denotation(targets: Sequence[Value], predictions: Sequence[Value]) -> bool:
    """evaluator.py `check_denotation`: equal sizes and every target matches some prediction."""
    return len(targets) == len(predictions) and all(any(t.match(p) for p in predictions) for t in targets)


def tsv_unescape(text: str) -> str:
    """evaluator.py `tsv_unescape`: \\n -> newline, \\p -> |, \\\\ -> \\ (in that order)."""
    return text.replace(r"\n", "\n").replace(r"\p", "|").replace("\\\\", "\\")


def tsv_unescape_list(text: str) -> list[str]:
    """evaluator.py `tsv_unescape_list`: the items of a |-joined TSV cell."""
    return [tsv_unescape(y) for y in text.split("|")]


def wtq_correct(prediction: str | Sequence[str], targets: Sequence[str], canons: Sequence[str | None] | None = None,
                convention: str = "official") -> bool:
    """One WTQ question: the predicted denotation equals the target one (module docstring). `targets`: the target
    strings (the release's targetValue items); `canons`: their CoreNLP values (the tagged release's targetCanon),
    when known (official only)."""
    _check(convention, WTQ_CONVENTIONS, "wtq_correct")
    if isinstance(targets, str):
        raise TypeError(f"wtq_correct: targets must be a sequence of strings, not one string ({targets!r})")
    if convention == "official":
        items = prediction.split("\t") if isinstance(prediction, str) else list(prediction)
        return check_denotation(to_value_list(list(targets), canons), to_value_list(items))
    if not isinstance(prediction, str):
        raise TypeError(f"wtq_correct({convention!r}): the prediction is the model's answer, one string")
    if convention == "tablevqabench":
        items = tsv_unescape_list(re.sub(r"^Answer: ", "", prediction).replace("||", "|"))
        return check_denotation(to_value_list(list(targets), py2=False, nan_fails=True),
                                to_value_list(items, py2=False, nan_fails=True))
    answer = str(prediction).strip().replace("\n", "").upper()  # docowl
    return check_denotation(to_value_list([t.upper() for t in targets], py2=False),
                            to_value_list([answer], py2=False))


def wtq_scores(correct: Sequence[bool]) -> dict[str, float]:
    """{"accuracy": correct / examples, "correct", "total"} (evaluator.py prints round((c + 1e-9) / (n + 1e-9), 4))."""
    n, c = len(correct), sum(bool(x) for x in correct)
    return {"accuracy": c / n if n else 0.0, "correct": c, "total": n}


# ------------------------------------------------------------------------------------------------ TabFact


def tabfact_correct(prediction: str | None, answer: str, convention: str = "official") -> int | None:
    """One TabFact statement: 1 / 0, or None when the official reading finds both "true" and "false" (counted as
    wrong in the accuracy). `answer`: "1" (entailed) / "0" (refuted) for "official"; the gold text for "docowl"."""
    _check(convention, TABFACT_CONVENTIONS, "tabfact_correct")
    if convention == "docowl":
        gold = answer.replace("\n", "").strip()
        gold = gold.removesuffix(".")
        return int((prediction or "").replace("\n", "").strip() == gold)
    pred = ("none" if prediction is None else prediction).lower()
    if "true" in pred and "false" in pred:
        return None
    if ("true" in pred and answer == "1") or ("false" in pred and answer == "0"):
        return 1
    return 0


def tabfact_scores(results: Sequence[int | None]) -> dict[str, Any]:
    """{"accuracy": correct / statements, "correct", "total", "unparsed"}: an unparsed (None) statement counts in the
    total and not as correct (evaluate_tabfact; it prints the accuracy as round(..., 8) * 100)."""
    n, c = len(results), sum(r == 1 for r in results)
    return {"accuracy": c / n if n else 0.0, "correct": c, "total": n,
            "unparsed": sum(r is None for r in results)}
