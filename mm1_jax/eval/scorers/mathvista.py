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
  6. otherwise the model is asked: `extract_answer` returns NEEDS_JUDGE and nothing is invented in its place;
     `judge_extraction` asks our model judge (`mm1_jax.eval.judge`) as the official code asks GPT (below), and the
     extraction it returns is passed on to `mathvista_correct(extraction=...)`.
The model's extraction (extract_answer.py `create_test_prompt`, evaluation/prompts/ext_ans.py `demo_prompt`, and
models/gpt.py `GPT_Model`, whose defaults extract_answer.py keeps; ext_ans.py last changed at 6ea75de6, gpt.py at
01ed3996): one user message, demo_prompt.strip() + "\n\n" + the problem's query + "\n\n" + the response +
"\n\nExtracted answer: " (`MATHVISTA_DEMO_PROMPT`, the official text); temperature 0, max_tokens 1024 (the judge's
config may override both). The first non-empty reply, stripped, is the extraction. GPT_Model asks again while the
reply is empty (up to its "patience" of 1,000,000 requests, then ""): here up to `MATHVISTA_TRIES` requests in all,
then the extraction is "" (which extract_answer.py's verify_extraction calls invalid: such a problem is counted as
unsettled). The official catches every exception of the request and extracts "": here a judge that stays down
raises `JudgeError` (the task stops) rather than scoring "" silently. The query is the problem's "query" (the
prompt the release gives models: hint, question, choices): the Item's question where the reader knew the query.
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

from mm1_jax.eval.judge import Judge, JudgeError, prompt_version
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


# evaluation/prompts/ext_ans.py `demo_prompt`, the official text (create_test_prompt strips it)
MATHVISTA_DEMO_PROMPT = """
Please read the following example. Then extract the answer from the model response and type it at the end of the prompt.

Hint: Please answer the question requiring an integer answer and provide the final value, e.g., 1, 2, 3, at the end.
Question: Which number is missing?

Model response: The number missing in the sequence is 14.

Extracted answer: 14

Hint: Please answer the question requiring a floating-point number with one decimal place and provide the final value, e.g., 1.2, 1.3, 1.4, at the end.
Question: What is the fraction of females facing the camera?

Model response: The fraction of females facing the camera is 0.6, which means that six out of ten females in the group are facing the camera.

Extracted answer: 0.6

Hint: Please answer the question requiring a floating-point number with two decimal places and provide the final value, e.g., 1.23, 1.34, 1.45, at the end.
Question: How much money does Luca need to buy a sour apple candy and a butterscotch candy? (Unit: $)

Model response: Luca needs $1.45 to buy a sour apple candy and a butterscotch candy.

Extracted answer: 1.45

Hint: Please answer the question requiring a Python list as an answer and provide the final list, e.g., [1, 2, 3], [1.2, 1.3, 1.4], at the end.
Question: Between which two years does the line  graph saw its maximum peak?

Model response: The line graph saw its maximum peak between 2007 and 2008.

Extracted answer: [2007, 2008]

Hint: Please answer the question and provide the correct option letter, e.g., A, B, C, D, at the end.
Question: What fraction of the shape is blue?\nChoices:\n(A) 3/11\n(B) 8/11\n(C) 6/11\n(D) 3/5

Model response: The correct answer is (B) 8/11.

Extracted answer: B
"""
MATHVISTA_TEST_TEMPLATE = "{demo}\n\n{query}\n\n{response}\n\nExtracted answer: "  # create_test_prompt
MATHVISTA_TEMPERATURE = 0  # models/gpt.py GPT_Model defaults
MATHVISTA_MAX_TOKENS = 1024
MATHVISTA_TRIES = 3  # requests while the reply is empty (GPT_Model's patience is 1,000,000)
MATHVISTA_PROMPT_VERSION = prompt_version("mathvista_extraction", [MATHVISTA_DEMO_PROMPT, MATHVISTA_TEST_TEMPLATE])


def extraction_prompt(query: str, response: str) -> str:
    """extract_answer.py create_test_prompt(demo_prompt, query, response): the text sent to the model."""
    return MATHVISTA_TEST_TEMPLATE.format(demo=MATHVISTA_DEMO_PROMPT.strip(), query=query, response=response)


def judge_extraction(judge: Judge, query: str, response: str, *, task: str = "mathvista"
                     ) -> tuple[str, list[str], set[str]]:
    """The extraction the official code has GPT make, made by `judge`: (the first non-empty reply stripped, "" when
    all MATHVISTA_TRIES replies were empty; every raw reply; the models that answered). A judge that gives no reply
    raises JudgeError naming the task."""
    messages = [{"role": "user", "content": extraction_prompt(query, response)}]
    replies, served = [], set()
    for _ in range(MATHVISTA_TRIES):
        try:
            reply = judge.ask(messages, temperature=MATHVISTA_TEMPERATURE, max_tokens=MATHVISTA_MAX_TOKENS)
        except JudgeError as e:
            raise JudgeError(f"eval task {task!r}: {e}") from None
        replies.append(reply.text)
        served.add(reply.model)
        if reply.text != "":  # get_response returns any non-empty content, stripped
            return reply.text.strip(), replies, served
    return "", replies, served


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
