"""MMBench's official scorer: CircularEval over VLMEvalKit's rule-based ("exact_matching") answer extraction.

Read from open-compass/VLMEvalKit at e8e78f05 (2026-08-18), the toolkit the MMBench authors name as their official
evaluation code (open-compass/MMBench README; that repository itself holds no evaluation code):
  vlmeval/utils/matching_util.py            can_infer = can_infer_option, else can_infer_text
  vlmeval/dataset/utils/multiple_choice.py  build_choices, extract_answer_from_item, prefetch_circular_group,
                                            mcq_circular_eval, mcq_vanilla_eval, report_acc
  vlmeval/dataset/image_mcq.py              ImageMCQDataset.evaluate_heuristic: judge 'exact_matching' -> model None
  vlmeval/tools.py                          CIRCULAR (`vlmutil circular`): how circular copies are built
Rules (official):
  * Letters: the option columns present (A, B, ...). can_infer_option: a reject phrase -> 'Z'; the characters
    .()[],:;!*#{} become spaces and the text is split on white space; exactly one option letter among the words
    (case-sensitive), whose first occurrence is among the last 4 words -> that letter; else no letter and a word 'Z'
    -> 'Z'; else the first match of (?i)(?:correct\\s+)?answer\\s+is\\s+\\**([ABCD])\\** whose letter (upper-cased)
    is an option -> it. can_infer_text (only when no letter): the prediction is ignored if longer than twice the
    options' total length; else the one option whose lower-cased text is a substring of the lower-cased prediction.
  * No judge: an item whose letter cannot be inferred gets 'Z' (vanilla) / its group hit=0 (circular): wrong. The
    ChatGPT fallback of the 'chatgpt-0125' judge is NOT run here; we score exactly what VLMEvalKit scores without one.
  * The TSV holds the circular passes as rows: index + k * 1e6 is pass k of question `index`; g_index = index % 1e6
    (or a g_index column); only groups whose pass 0 (index == g_index) is present count; a group hits when every
    pass's inferred letter equals its answer. Circular accuracy = mean hit over groups (per split, l2-category,
    category in report_acc).
Conventions: 'official' (above); 'lmms_eval' (EvolvingLMMs-Lab/lmms-eval at 75571cfe, lmms_eval/tasks/mmbench/
mmbench_evals.py with eval_method='static', i.e. task mmbench_en_dev_static: the 2023 prefetch rules, then
lmms_eval/tasks/_task_utils/mcq_extract.py extract_mcq_answer instead of the GPT judge); 'opencompass_2023'
(open-compass/opencompass tools/eval_mmbench.py, MMBench's first evaluation script: the same 2023 prefetch rules,
whose ChatGPT fallback is not run: an unresolved prediction is wrong).
"""
from __future__ import annotations

import re
import string
from collections.abc import Mapping, Sequence

CONVENTIONS = ("official", "lmms_eval", "opencompass_2023")
LETTERS = string.ascii_uppercase
CIRCULAR_OFFSET = 1_000_000  # pass k of question i is TSV row i + k * 1e6 (multiple_choice.py mcq_circular_eval)

# --- VLMEvalKit (vlmeval/utils/matching_util.py) -------------------------------------------------------------------
_REJECT_TO_ANSWER = (
    "Sorry, I can't help with images of people yet.",
    "I can't process this file.",
    "I'm sorry, but without the image provided",
    "Cannot determine the answer",
)
_SPACE_CHARS = ".()[],:;!*#{}"
_VERBOSE_ANSWER = re.compile(r"(?i)(?:correct\s+)?answer\s+is\s+\**([ABCD])\**")
_API_FAILURE = "Failed to obtain answer via API"


def _check(convention: str) -> None:
    if convention not in CONVENTIONS:
        raise ValueError(f"unknown MMBench convention {convention!r}; known: {', '.join(CONVENTIONS)}")


def _official_option(answer: str, letters: Sequence[str]) -> str | None:
    if _API_FAILURE in answer:
        return None
    if any(phrase in answer for phrase in _REJECT_TO_ANSWER):
        return "Z"
    spaced = answer
    for ch in _SPACE_CHARS:
        spaced = spaced.replace(ch, " ")
    words = spaced.split()
    count = sum(letter in words for letter in letters)
    if count == 1:
        # the quantifier check ('A' in a longer text) only runs when the VERBOSE environment variable is set
        for letter in letters:
            if letter in words and words.index(letter) > len(words) - 5:
                return letter
    elif count == 0 and "Z" in words:
        return "Z"
    found = _VERBOSE_ANSWER.search(answer)
    if found and found.group(1).upper() in letters:
        return found.group(1).upper()
    return None


def _text_match(answer: str, options: Sequence[str], limit_length: bool) -> str | None:
    lowered = answer.lower()
    if limit_length and len(lowered) > 2 * sum(len(str(o)) for o in options):
        return None
    hits = [LETTERS[i] for i, o in enumerate(options) if str(o).lower() in lowered]
    return hits[0] if len(hits) == 1 else None


# --- The 2023 rules (opencompass tools/eval_mmbench.py; lmms_eval/tasks/mmbench/mmbench_evals.py) -----------------
_OLD_LETTERS = "ABCDE"  # can_infer_option(answer, num_choice=5): always A-E, whatever the item's options
_OLD_AFFIXES = (("", "."), ("", ","), ("", ":"), ("", ")"), ("", ")."), ("(", ")"), ("(", ")."), (":", ""),
                (":", ","), (":", "."), (":", ")"), (":", ")."))


def _old_option(answer: str) -> str | None:
    if _API_FAILURE in answer:
        return None
    words = answer.split()
    if sum(letter in words for letter in _OLD_LETTERS) == 1 and not ("A" in words and len(words) > 3):
        for letter in _OLD_LETTERS:
            if letter in words:
                return letter
    for prefix, suffix in _OLD_AFFIXES:
        if sum(prefix + c + suffix in words for c in _OLD_LETTERS) == 1:
            for letter in _OLD_LETTERS:
                if prefix + letter + suffix in words:
                    return letter
    return None


# --- lmms-eval's static fallback (lmms_eval/tasks/_task_utils/mcq_extract.py extract_mcq_answer) ------------------
_ANSWER_PHRASES = (
    "the answer is", "answer is", "the correct answer is", "correct answer is", "the best answer is",
    "best answer is", "the correct option is", "correct option is", "the best option is", "best option is",
    "the choice is", "choice is", "the correct choice is", "correct choice is", "i choose", "i select", "i pick",
    "my answer is", "my choice is", "옵션", "정답은", "답은", "답:", "答案是", "答案为", "选", "答えは",
)
_PRIORITY = {"start": 10, "end": 9, "phrase": 7, "parentheses": 6, "period": 5, "colon": 4, "right_paren": 3,
             "space": 2, "fallback": 0}
_PATTERNS = (("parentheses", "({})"), ("period", "{}."), ("colon", "{}:"), ("right_paren", "{})"), ("space", "{} "))


def _mcq_extract(response: str, letters: Sequence[str]) -> str | None:
    if not response or not response.strip():
        return None
    letters = list(letters) or list("ABCDEFGH")
    text = response.strip()
    for ch in (",", ".", "!", "?", ";", ":", "'", '"'):
        text = text.strip(ch)
    text = f" {text} "
    found: list[tuple[str, int, str]] = []  # (letter, position, format) in the order the official code appends
    for name, pattern in _PATTERNS:
        for letter in letters:
            mark = pattern.format(letter)
            if mark in text:
                found.append((letter, text.rfind(mark), name))
    lowered = text.lower()
    for phrase in _ANSWER_PHRASES:
        at = lowered.find(phrase)
        if at != -1:
            for letter in letters:
                pos = text.find(letter, at + len(phrase))
                if pos != -1:
                    found.append((letter, pos, "phrase"))
    bare = text.strip()
    for letter in letters:
        if bare.startswith(letter) and (len(bare) == 1 or not bare[1].isalpha()):
            found.append((letter, 0, "start"))
    for letter in letters:
        if bare.endswith(letter) and (len(bare) == 1 or not bare[-2].isalpha()):
            found.append((letter, len(text) - 1, "end"))
    if not found:
        found = [(letter, text.rfind(letter), "fallback") for letter in letters if letter in text]
    if not found:
        return None
    found.sort(key=lambda c: (_PRIORITY[c[2]], c[1]), reverse=True)  # stable: ties keep the append order
    return found[0][0]


# --- Public API ----------------------------------------------------------------------------------------------------
def infer_letter(prediction: str, options: Sequence[str], convention: str = "official") -> str | None:
    """The letter the convention's rules read from a free-text prediction ('Z': a refusal, counted wrong), or None
    when none (VLMEvalKit then assigns 'Z'). Official: vlmeval/utils/matching_util.py can_infer."""
    _check(convention)
    if len(options) > len(LETTERS):
        raise ValueError(f"{len(options)} options: MMBench letters go up to Z")
    prediction = str(prediction)
    if convention == "official":
        letters = LETTERS[: len(options)]
        return _official_option(prediction, letters) or _text_match(prediction, options, limit_length=True)
    prediction = prediction.strip()  # lmms_eval/tasks/mmbench/en_utils.py mmbench_process_results
    abcd = list(options[:4])  # the 2023 build_choices reads columns A-D only
    letter = _old_option(prediction) or _text_match(prediction, abcd, limit_length=False)
    if letter is None and convention == "lmms_eval":
        letter = _mcq_extract(prediction, sorted(LETTERS[: len(abcd)]))
    return letter


def extract_choice(prediction: str, options: Sequence[str], convention: str = "official") -> int | None:
    """Index of the option a prediction chooses under `convention`, or None (scored wrong: no letter, a refusal 'Z',
    or a letter with no option). Official: VLMEvalKit extract_answer_from_item with no judge model."""
    letter = infer_letter(prediction, options, convention)
    if letter is None or len(letter) != 1 or letter not in LETTERS[: len(options)]:
        return None
    return LETTERS.index(letter)


def circular_group(index: int, g_index: int | None = None) -> int:
    """The question a TSV row belongs to: its g_index column when present, else int(index % 1e6)
    (vlmeval/dataset/utils/multiple_choice.py mcq_circular_eval)."""
    return int(g_index) if g_index is not None else int(index % 1e6)


def group_passes(correct_by_index: Mapping[int, bool], g_index: Mapping[int, int] | None = None
                 ) -> dict[int, list[bool]]:
    """{question index: correctness of each of its passes, in index order}, keeping only questions whose pass 0 (the
    row with index == g_index) is present, as mcq_circular_eval's data_main does."""
    groups: dict[int, list[bool]] = {}
    for index in sorted(correct_by_index):
        key = circular_group(index, None if g_index is None else g_index.get(index))
        groups.setdefault(key, []).append(bool(correct_by_index[index]))
    return {k: v for k, v in groups.items() if k in correct_by_index}


def circular_accuracy(correct_by_question: Mapping[object, Sequence[bool]]) -> float:
    """CircularEval: a question counts when every pass was right (multiple_choice.py eval_circular_group with no
    judge); the mean over questions (report_acc 'Overall'); nan for no questions, as np.mean([]) gives."""
    if not correct_by_question:
        return float("nan")
    return sum(all(v) for v in correct_by_question.values()) / len(correct_by_question)


def vanilla_accuracy(correct_by_index: Mapping[int, bool], passes: str = "first") -> float:
    """Plain accuracy over rows (multiple_choice.py mcq_vanilla_eval): passes='first' is image_mcq.py's vanilla_0
    (rows with index <= 1e6), 'all' its vanilla_all (every pass a separate question); nan for none."""
    if passes not in ("first", "all"):
        raise ValueError(f"passes={passes!r}: known 'first', 'all'")
    rows = [bool(v) for i, v in correct_by_index.items() if passes == "all" or i <= CIRCULAR_OFFSET]
    return sum(rows) / len(rows) if rows else float("nan")


def circular_passes(options: Sequence[str], answer_index: int) -> list[tuple[list[str], int]]:
    """(options shown, answer index) of each pass k = 0..n-1 as `vlmutil circular` builds them (vlmeval/tools.py
    CIRCULAR): pass k, TSV index + k * 1e6, shows options[k:] + options[:k], so the answer moves to (a - k) mod n.
    MMBench's released TSVs already hold their passes as rows: present those when reading the TSV."""
    n = len(options)
    if not 0 <= answer_index < n:
        raise ValueError(f"answer index {answer_index} is not one of {n} options")
    return [(list(options[k:]) + list(options[:k]), (answer_index - k) % n) for k in range(n)]


def circular_eligible(options: Sequence[str], answer: str) -> bool:
    """Whether `vlmutil circular` rotates a question (vlmeval/tools.py CIRCULAR abnormal_entry): not when an option's
    words name two or more option letters, an option is itself in 'A..Z' as a substring, or the answer is not one
    letter among the options; such questions get a single pass."""
    letters = LETTERS[: len(options)]
    if len(options) < 2 or len(answer) != 1 or answer not in letters:
        return False
    for option in options:
        words = "".join(c if c in string.ascii_letters or c == " " else " " for c in str(option)).split()
        if len({w for w in words if w in letters}) > 1 or str(option) in LETTERS:
            return False
    return True
