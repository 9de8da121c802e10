"""MathVista's official scorer, its deterministic part, read from lupantech/MathVista (commit 53d52587, 2025-09-28):
evaluation/extract_answer.py (`extract_answer`) and evaluation/calculate_score.py (`normalize_extracted_answer`,
`get_most_similar`, `safe_equal`, `get_acc_with_contion`, main's score table).

The official pipeline is: extraction (a GPT model reads the response and writes the answer) -> normalisation ->
exact comparison with the gold answer string. `extract_answer` only asks the model when its rules do not settle the
answer; those rules, in order, are:
  1. an empty response -> "" (extraction done, the empty string);
  2. a multi_choice question whose response is exactly one of the choices -> the response;
  3. answer_type "integer" and int(response) works -> str(int(response));
  4. answer_type "float" and float(response) works -> str(float(response));
  5. only with --quick_extract (off by default): the first match of  The answer is "(.*)"\\.  -> its group;
  6. otherwise the model is asked: here `extract_answer` returns NEEDS_JUDGE and nothing is invented in its place
     (the judge interface comes later; a judge's extraction is passed on to `mathvista_correct(extraction=...)`).
`normalize_extracted_answer` (ignore_empty_extractions False by default):
  - multi_choice: the extraction as a stripped string; "(X)" anywhere -> its letter upper-cased (the first such);
    a letter among A, B, ... (one per choice) -> that choice's text; anything else -> the choice at the smallest
    Levenshtein distance (the first on ties), so every multi_choice extraction becomes some choice;
  - integer: str(int(float(x))), None if that fails;  float: str(round(float(x), int(precision))), None if that
    fails;  list: str(x);  a free_form question with answer_type "text" has no rule (calculate_score.py fails with
    an unbound variable): ValueError here.
`safe_equal`: prediction == answer (Python ==, the gold answer being the release's string). Scores
(`mathvista_scores`): average {accuracy, correct, total} over all problems, and the same per value of
question_type, answer_type and the metadata fields language, source, category, task, context, grade and skills (a
list: a problem counts for each of its skills), each table sorted by accuracy, highest first.
Conventions: only "official". VLMEvalKit (vlmeval/dataset/utils/mathvista.py) and lmms-eval have their own rules
and judges; they are not reproduced here.
"""
from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from mm1_jax.eval.scorers.text_rich import levenshtein

MATHVISTA_CONVENTIONS = ("official",)
SCORE_KEYS = ("question_type", "answer_type", "language", "source", "category", "task", "context", "grade",
              "skills")  # calculate_score.py target_keys


class _NeedsJudge:
    """The extraction the official code would ask a model for."""

    def __repr__(self) -> str:
        return "needs a judge"

    def __bool__(self) -> bool:
        return False


NEEDS_JUDGE = _NeedsJudge()
_QUICK = re.compile(r'The answer is "(.*)"\.')
_LETTER_IN_PARENS = re.compile(r"\(([a-zA-Z])\)")


def _check(convention: str) -> None:
    if convention not in MATHVISTA_CONVENTIONS:
        raise ValueError(f"mathvista: unknown convention {convention!r}; known: {', '.join(MATHVISTA_CONVENTIONS)}")


def extract_answer(response: str, problem: Mapping[str, Any], quick_extract: bool = False) -> str | _NeedsJudge:
    """extract_answer.py's rules 1-5 (module docstring); NEEDS_JUDGE where the official code asks its model.
    `problem` needs "question_type", "answer_type" and "choices" (None or a list)."""
    if response == "":
        return ""
    choices = problem.get("choices") or []
    if problem["question_type"] == "multi_choice" and response in choices:
        return response
    if problem["answer_type"] == "integer":
        try:
            return str(int(response))
        except ValueError:
            pass
    if problem["answer_type"] == "float":
        try:
            return str(float(response))
        except ValueError:
            pass
    if quick_extract:
        found = _QUICK.search(response)
        if found:
            return found.group(1)
    return NEEDS_JUDGE


def most_similar(prediction: str, choices: Sequence[str]) -> str:
    """calculate_score.py `get_most_similar`: the choice at the smallest edit distance, the first on ties."""
    distances = [levenshtein(prediction, choice) for choice in choices]
    return choices[distances.index(min(distances))]


def normalize_extracted_answer(extraction: Any, choices: Sequence[str] | None, question_type: str,
                               answer_type: str, precision: Any, ignore_empty_extractions: bool = False
                               ) -> str | None:
    """calculate_score.py `normalize_extracted_answer` (module docstring)."""
    if question_type == "multi_choice":
        if isinstance(extraction, str):
            extraction = extraction.strip()
        else:
            try:
                extraction = str(extraction)
            except Exception:  # noqa: BLE001  the official catches everything here too
                extraction = ""
        if ignore_empty_extractions and not extraction:
            return None
        letters = _LETTER_IN_PARENS.findall(extraction)
        if letters:
            extraction = letters[0].upper()
        choices = list(choices or [])
        sequential = [chr(ord("A") + i) for i in range(len(choices))]
        if extraction in sequential:
            return choices[sequential.index(extraction)]
        if not choices:
            raise ValueError("mathvista: a multi_choice problem without choices (min() of nothing in the official)")
        return most_similar(extraction, choices)
    if answer_type == "integer":
        try:
            return str(int(float(extraction)))
        except (TypeError, ValueError, OverflowError):
            return None
    if answer_type == "float":
        try:
            return str(round(float(extraction), int(precision)))
        except (TypeError, ValueError, OverflowError):
            return None
    if answer_type == "list":
        try:
            return str(extraction)
        except Exception:  # noqa: BLE001  as the official
            return None
    raise ValueError(f"mathvista: no normalisation for a {question_type} question of answer_type {answer_type!r} "
                     f"(calculate_score.py has none either)")


def safe_equal(prediction: Any, answer: Any) -> bool:
    """calculate_score.py `safe_equal`: prediction == answer, False if comparing raises."""
    try:
        return bool(prediction == answer)
    except Exception:  # noqa: BLE001  as the official
        return False


def mathvista_correct(response: str, problem: Mapping[str, Any], *, extraction: Any = None,
                      quick_extract: bool = False, convention: str = "official") -> bool | _NeedsJudge:
    """One problem: True / False, or NEEDS_JUDGE when the official extraction would ask its model (pass the judge's
    answer as `extraction` to finish it). `problem`: "question_type", "answer_type", "choices", "precision",
    "answer" (the testmini.json fields)."""
    _check(convention)
    if extraction is None:
        extraction = extract_answer(response, problem, quick_extract)
        if extraction is NEEDS_JUDGE:
            return NEEDS_JUDGE
    prediction = normalize_extracted_answer(extraction, problem.get("choices"), problem["question_type"],
                                            problem["answer_type"], problem.get("precision"))
    return safe_equal(prediction, problem["answer"])


def mathvista_scores(results: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """calculate_score.py's score table from {pid: {"true_false": bool, "question_type", "answer_type", and the
    metadata fields (language, source, category, task, context, grade, skills)}}: {"average": {"accuracy",
    "correct", "total"}, key: {value: {"accuracy", "correct", "total"}} for each key present}."""
    if not results:
        raise ValueError("mathvista_scores: no results (the official divides by zero)")
    correct = sum(bool(r["true_false"]) for r in results.values())
    scores: dict[str, Any] = {"average": {"accuracy": correct / len(results), "correct": correct,
                                          "total": len(results)}}
    for key in SCORE_KEYS:
        if not all(key in r for r in results.values()):
            continue
        tally: dict[Any, list[int]] = {}
        for r in results.values():
            for value in (r[key] if key == "skills" else [r[key]]):
                counts = tally.setdefault(value, [0, 0])
                counts[0] += bool(r["true_false"])
                counts[1] += 1
        table = {v: {"accuracy": c / t, "correct": c, "total": t} for v, (c, t) in tally.items()}
        scores[key] = dict(sorted(table.items(), key=lambda kv: kv[1]["accuracy"], reverse=True))
    return scores
