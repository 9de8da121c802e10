"""MMMU's official scorer, read from the benchmark's own code: MMMU-Benchmark/MMMU mmmu/utils/eval_utils.py
(`parse_multi_choice_response`, `parse_open_response`, `normalize_str`, `extract_numbers`, `eval_multi_choice`,
`eval_open`, `evaluate`, `calculate_ins_level_acc`), mmmu/main_eval_only.py and mmmu/utils/data_utils.py
(`DOMAIN_CAT2SUB_CAT`, `get_multi_choice_info`), commit bb0b95a9 (2025-05-19).

Multiple choice (question_type "multiple-choice"): the letters are A, B, ... one per option; the response is parsed
to one letter and the question is correct iff that letter equals the gold letter (`eval_multi_choice`: plain ==).
`parse_multi_choice_response`:
  1. the characters , . ! ? ; : ' are stripped from both ends, one character kind after another in that order
     (response.strip(',') then .strip('.') ...), then a space is put on each side;
  2. candidates: every letter L with "(L)" in the response; if none, every L with " L " in it; if still none and the
     response has more than 5 white-space separated words, every letter whose option text (lower-cased) is a
     substring of the lower-cased response ("content" answers);
  3. no candidate: a letter drawn uniformly at random (`random.choice(all_choices)`). The official module calls
     random.seed(42) when it is imported and draws from Python's global generator; here the draw comes from the
     `random.Random` passed in (`mmmu_rng()`: Random(42), the same generator and seed), so a run matches the official
     one when the same responses are parsed in the same order with one generator and nothing else draws from it;
  4. one candidate: it; several: the one whose last occurrence (str.rfind of "(L)", " L " or the option text) is
     the rightmost, the first candidate on ties (np.argmax).
Open questions: `parse_open_response` cuts the lower-cased response into lines (its regex `\\.\\s(?=[A-Z])` runs on
the lower-cased text, so it never splits on sentences), keeps from each line the shortest tail after one of the
indicators "could be ", "so ", "is ", "thus ", "therefore ", "final ", "answer ", "result " (and "=" for the last
line), adds every number found in those tails, and normalises each: a string that float() takes after removing
commas becomes that float rounded to 2 places, any other string is lower-cased, and a one-character string becomes
the two strings " c" and "c " (to avoid trivial containment). `eval_open`: correct iff some normalised prediction
string CONTAINS some normalised gold string, or some prediction number EQUALS a gold number; the gold (a string, or
a list of strings) is normalised the same way.
Scores (`mmmu_scores`, as main_eval_only.py prints them): per subject acc = correct / questions; per domain and
"Overall" the question-weighted mean over the subjects present (`calculate_ins_level_acc`). The subject of an id
"validation_Art_Theory_12" is "Art_Theory" ("_".join(id.split("_")[1:-1])).

Conventions: only "official". lmms-eval (lmms_eval/tasks/mmmu/utils.py, commit 75571cfe) keeps these rules but
scores an open question on str(parsed[0]) of the set-ordered list, which depends on string hashing; it is not
reproduced here.
"""
from __future__ import annotations

import random
import re
from collections.abc import Mapping, Sequence
from typing import Any

MMMU_CONVENTIONS = ("official",)
SEED = 42  # eval_utils.py: random.seed(42) at import

# mmmu/utils/data_utils.py DOMAIN_CAT2SUB_CAT
DOMAINS = {
    "Art and Design": ("Art", "Art_Theory", "Design", "Music"),
    "Business": ("Accounting", "Economics", "Finance", "Manage", "Marketing"),
    "Science": ("Biology", "Chemistry", "Geography", "Math", "Physics"),
    "Health and Medicine": ("Basic_Medical_Science", "Clinical_Medicine", "Diagnostics_and_Laboratory_Medicine",
                            "Pharmacy", "Public_Health"),
    "Humanities and Social Science": ("History", "Literature", "Sociology", "Psychology"),
    "Tech and Engineering": ("Agriculture", "Architecture_and_Engineering", "Computer_Science", "Electronics",
                             "Energy_and_Power", "Materials", "Mechanical_Engineering"),
}

_EDGE_PUNCTUATION = (",", ".", "!", "?", ";", ":", "'")
_KEY_INDICATORS = ("could be ", "so ", "is ", "thus ", "therefore ", "final ", "answer ", "result ")
_TRIVIAL = (":", ",", ".", "!", "?", ";", ":", "'")
_NUMBER_WITH_COMMAS = re.compile(r"-?\b\d{1,3}(?:,\d{3})+\b")
_NUMBER_SCIENTIFIC = re.compile(r"-?\d+(?:\.\d+)?[eE][+-]?\d+")
_NUMBER_SIMPLE = re.compile(r"-?(?:\d+\.\d+|\.\d+|\d+\b)(?![eE][+-]?\d+)(?![,\d])")


def _check(convention: str) -> None:
    if convention not in MMMU_CONVENTIONS:
        raise ValueError(f"mmmu: unknown convention {convention!r}; known: {', '.join(MMMU_CONVENTIONS)}")


def mmmu_rng(seed: int = SEED) -> random.Random:
    """A generator for the multiple-choice parser's random fallback: Random(42), as eval_utils.py seeds Python's."""
    return random.Random(seed)


def choice_letters(options: Sequence[str]) -> tuple[list[str], dict[str, str]]:
    """(all_choices, index2ans): letters A, B, ... and letter -> option text (data_utils.py get_multi_choice_info)."""
    letters = [chr(ord("A") + i) for i in range(len(options))]
    return letters, dict(zip(letters, options))


# ------------------------------------------------------------------------------------------------ multiple choice


def parse_multi_choice_response(response: str, all_choices: Sequence[str], index2ans: Mapping[str, str],
                                rng: random.Random) -> str:
    """The letter a response names, by eval_utils.py `parse_multi_choice_response` (rules 1-4 of the module
    docstring); `rng` supplies the random letter when nothing matches (pass one `mmmu_rng()` for a whole run)."""
    for char in _EDGE_PUNCTUATION:
        response = response.strip(char)
    response = " " + response + " "
    letter_answer, bracketed, candidates = True, False, []
    for choice in all_choices:
        if f"({choice})" in response:
            candidates.append(choice)
            bracketed = True
    if not candidates:
        candidates = [choice for choice in all_choices if f" {choice} " in response]
    if not candidates and len(response.split()) > 5:
        for letter, text in index2ans.items():
            if text.lower() in response.lower():
                candidates.append(letter)
                letter_answer = False
    if not candidates:
        return rng.choice(list(all_choices))
    if len(candidates) == 1:
        return candidates[0]
    if letter_answer:
        where = [response.rfind(f"({c})" if bracketed else f" {c} ") for c in candidates]
    else:
        where = [response.lower().rfind(index2ans[c].lower()) for c in candidates]
    return candidates[where.index(max(where))]  # np.argmax: the first of the maxima


def eval_multi_choice(gold: str | Sequence[str], prediction: str) -> bool:
    """eval_utils.py `eval_multi_choice`: the parsed letter equals the gold letter (or one of a list of them)."""
    if isinstance(gold, list):
        return any(answer == prediction for answer in gold)
    return gold == prediction


# ------------------------------------------------------------------------------------------------ open questions


def check_is_number(text: str) -> bool:
    """eval_utils.py `check_is_number`: float() accepts the text once commas are removed."""
    try:
        float(text.replace(",", ""))
        return True
    except ValueError:
        return False


def normalize_str(text: str) -> list[str | float]:
    """eval_utils.py `normalize_str`: [float rounded to 2 places] for a number, else the lower-cased string, a
    one-character string as [" c", "c "]."""
    text = text.strip()
    if check_is_number(text):
        return [round(float(text.replace(",", "")), 2)]
    text = text.lower()
    if len(text) == 1:
        return [" " + text, text + " "]
    return [text]


def extract_numbers(text: str) -> list[str]:
    """eval_utils.py `extract_numbers`: numbers with thousands commas, then scientific notation, then plain ones."""
    return (_NUMBER_WITH_COMMAS.findall(text) + _NUMBER_SCIENTIFIC.findall(text)
            + _NUMBER_SIMPLE.findall(text))


def _key_subresponses(response: str) -> list[str]:
    response = response.strip().strip(".").lower()
    lines = re.split(r"\.\s(?=[A-Z])|\n", response)  # on lower-cased text: only the newlines split
    keys = []
    for index, line in enumerate(lines):
        indicators = list(_KEY_INDICATORS) + (["="] if index == len(lines) - 1 else [])
        shortest = None
        for indicator in indicators:
            if indicator in line:
                tail = line.split(indicator)[-1].strip()
                if not shortest or len(tail) < len(shortest):  # `if not shortest`: an empty tail is replaced
                    shortest = tail
        if shortest and shortest.strip() not in _TRIVIAL:
            keys.append(shortest)
    return keys or [response]


def parse_open_response(response: str) -> list[str | float]:
    """eval_utils.py `parse_open_response`: the normalised key tails and the numbers in them, without duplicates
    (the official list(set(...)) order is arbitrary; this keeps the first-seen order, which no rule depends on)."""
    keys = _key_subresponses(response)
    found = list(keys)
    for key in keys:
        found.extend(extract_numbers(key))
    out: list[str | float] = []
    for text in found:
        for value in normalize_str(text):
            if value not in out:
                out.append(value)
    return out


def eval_open(gold: str | Sequence[str], predictions: Sequence[str | float]) -> bool:
    """eval_utils.py `eval_open`: a prediction string containing a gold string, or a prediction number equal to a
    gold number (gold normalised by `normalize_str`)."""
    golds = [gold] if isinstance(gold, str) else list(gold)
    norm = [value for answer in golds for value in normalize_str(answer)]
    for pred in predictions:
        if isinstance(pred, str):
            if any(isinstance(answer, str) and answer in pred for answer in norm):
                return True
        elif pred in norm:
            return True
    return False


# ------------------------------------------------------------------------------------------------ per question / all


def mmmu_correct(response: str, question_type: str, options: Sequence[str], gold: str | Sequence[str],
                 rng: random.Random, convention: str = "official") -> bool:
    """One MMMU question: a multiple-choice response parsed to a letter and compared with the gold letter, an open
    one parsed and matched against the gold answer(s) (main_parse_and_eval.py + `evaluate`)."""
    _check(convention)
    if question_type == "multiple-choice":
        letters, index2ans = choice_letters(options)
        return eval_multi_choice(gold, parse_multi_choice_response(response, letters, index2ans, rng))
    return eval_open(gold, parse_open_response(response))


def subject_of(question_id: str) -> str:
    """main_eval_only.py: the subject of "validation_Art_Theory_12" is "Art_Theory"."""
    return "_".join(question_id.split("_")[1:-1])


def mmmu_scores(correct: Mapping[str, bool]) -> dict[str, dict[str, Any]]:
    """main_eval_only.py's table from {question id: correct}: {subject: {"num", "acc"}} for each subject present,
    {"Overall-<domain>": {"num", "acc"}} for each of the six domains and {"Overall": ...}; acc is a fraction (the
    official print rounds it to 3 places; this does not). A domain without questions has acc 0 (as
    `calculate_ins_level_acc` returns); ids of no MMMU subject are left out, as the official loop never reaches
    them."""
    per_subject: dict[str, list[bool]] = {}
    for qid, ok in correct.items():
        per_subject.setdefault(subject_of(qid), []).append(bool(ok))
    known = {s for subjects in DOMAINS.values() for s in subjects}  # main_eval_only.py loops over CAT_SHORT2LONG
    table = {s: {"num": len(v), "acc": sum(v) / len(v)} for s, v in per_subject.items() if s in known}
    out: dict[str, dict[str, Any]] = {}
    for domain, subjects in DOMAINS.items():
        present = [table[s] for s in subjects if s in table]
        num = sum(r["num"] for r in present)
        out["Overall-" + domain] = {"num": num, "acc": sum(r["acc"] * r["num"] for r in present) / num if num else 0}
        for s in subjects:
            if s in table:
                out[s] = table[s]
    num = sum(r["num"] for r in table.values())
    out["Overall"] = {"num": num, "acc": sum(r["acc"] * r["num"] for r in table.values()) / num if num else 0}
    return out
