"""MMBench's official scorer: CircularEval over VLMEvalKit's rule-based ("exact_matching") answer extraction.

Read from open-compass/VLMEvalKit at e8e78f05 (2026-08-18), the toolkit the MMBench authors name as their official
evaluation code (open-compass/MMBench README; that repository itself holds no evaluation code):
  vlmeval/utils/matching_util.py            can_infer = can_infer_option, else can_infer_text
  vlmeval/dataset/utils/multiple_choice.py  build_choices, build_prompt, build_prompt_cn, build_prompt_blink,
                                            extract_answer_from_item, prefetch_circular_group, eval_vanilla,
                                            eval_circular_group, mcq_circular_eval, mcq_vanilla_eval, report_acc
                                            (the file last changed at 2cf2a36c)
  vlmeval/dataset/image_mcq.py              ImageMCQDataset.evaluate_heuristic: judge 'exact_matching' -> model None,
                                            else build_judge (vlmeval/dataset/utils/judge_util.py)
  vlmeval/smp/vlm.py, vlmeval/smp/misc.py   build_option_str, cn_string
  vlmeval/api/gpt.py, vlmeval/api/base.py   OpenAIWrapper (temperature 0, max_tokens 2048, the reply stripped) and
                                            BaseAPI.generate (retries; an empty reply is a failure); run.py (the
                                            judge model by dataset type)
  vlmeval/tools.py                          CIRCULAR (`vlmutil circular`): how circular copies are built
Rules (official):
  * Letters: the option columns present (A, B, ...). can_infer_option: a reject phrase -> 'Z'; the characters
    .()[],:;!*#{} become spaces and the text is split on white space; exactly one option letter among the words
    (case-sensitive), whose first occurrence is among the last 4 words -> that letter; else no letter and a word 'Z'
    -> 'Z'; else the first match of (?i)(?:correct\\s+)?answer\\s+is\\s+\\**([ABCD])\\** whose letter (upper-cased)
    is an option -> it. can_infer_text (only when no letter): the prediction is ignored if longer than twice the
    options' total length; else the one option whose lower-cased text is a substring of the lower-cased prediction.
  * No judge: an item whose letter cannot be inferred gets 'Z' (vanilla) / its group hit=0 (circular): wrong. That
    is exactly what VLMEvalKit scores without one (judge 'exact_matching').
  * With a judge (`mmbench_judge_choices`, `vlmevalkit_letter`; multiple_choice.py extract_answer_from_item,
    eval_vanilla, prefetch_circular_group, eval_circular_group): an item whose letter can_infer cannot read is sent
    to the judge: one user message, build_prompt(question, build_option_str(choices), prediction) (`VLMEVALKIT_PROMPT`;
    `VLMEVALKIT_PROMPT_CN` when the question holds a CJK character, cn_string; `VLMEVALKIT_PROMPT_BLINK` for the
    dataset 'BLINK'), where the question is the TSV's question column (no hint) and build_option_str (vlmeval/smp/
    vlm.py) is "There are several options: \n" + "{L}. {option}\n" per option; temperature 0, max_tokens 2048
    (vlmeval/api/gpt.py OpenAIWrapper's defaults; run.py names the model: gpt-4o-mini for MCQ datasets at this
    commit, 'chatgpt-0125' = gpt-3.5-turbo-0125 in MMBench's time; our config's judge and overrides apply). The
    reply (stripped, as OpenAIWrapper returns it) is read by can_infer; up to 3 requests (an empty reply, which
    OpenAIWrapper turns into its failure message, is a failed try); after 3 unreadable replies the letter is a
    random choice among the option letters and 'Z' (rd.choice, Python's unseeded global random; here one
    random.Random(seed) per task, drawn in row order), counted as unsettled. A judge that gives no reply raises
    `JudgeError` (VLMEvalKit's wrapper would return its failure message three times and fall back at random).
    Circular: prefetch every pass with can_infer; a prefetched letter that is wrong -> hit 0 with no judge; all
    prefetched right -> hit 1; else the passes are taken in order, the judge asked for each pass can_infer could
    not read, stopping at the first wrong letter (hit 0), hit 1 when none is wrong. The first pass of a group that
    failed before the judge reached it is also judged (VLMEvalKit's vanilla_0 pass, PRINT_VANILLA=1), so that the
    first-presentation accuracy has a letter too.
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

import dataclasses
import random
import re
import string
from collections.abc import Mapping, Sequence
from typing import Any

from mm1_jax.eval.judge import Judge, JudgeError, prompt_version

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


# --- VLMEvalKit's judge step (vlmeval/dataset/utils/multiple_choice.py extract_answer_from_item) -------------------
# build_prompt / build_prompt_cn / build_prompt_blink: the official texts, filled by str.format(question, options,
# prediction)
VLMEVALKIT_PROMPT = (
    'You are an AI assistant who will help me to match '
    'an answer with several options of a single-choice question. '
    'You are provided with a question, several options, and an answer, '
    'and you need to find which option is most similar to the answer. '
    'If the meaning of all options are significantly different from the answer, output Z. '
    'Your should output a single uppercase character in A, B, C, D (if they are valid options), and Z. \n'
    'Example 1: \n'
    'Question: What is the main object in image?\nOptions: A. teddy bear B. rabbit C. cat D. dog\n'
    'Answer: a cute teddy bear\nYour output: A\n'
    'Example 2: \n'
    'Question: What is the main object in image?\nOptions: A. teddy bear B. rabbit C. cat D. dog\n'
    'Answer: Spider\nYour output: Z\n'
    'Example 3: \n'
    'Question: {}?\nOptions: {}\nAnswer: {}\nYour output: '
)
VLMEVALKIT_PROMPT_CN = (
    '你是一个帮助我匹配答案与单选题中多个选项的 AI 助手。'
    '你会被提供：一个问题，多个选项，一个答案。你的任务是找到与答案意义最相近的选项。'
    '如果所有选项的意义都与答案显著不同，则输出 Z。'
    '你应该输出一个单个的大写字母，例如 A, B, C, D（如果它们是有效选项），或 Z。'
    '例 1:'
    '问题: 图中最主要的物体是什么?\n选项: A. 泰迪熊 B. 兔子 C. 猫 D. 狗\n答案: 一只可爱的泰迪熊\n输出: A\n'
    '例 2: \n'
    '问题: 图中最主要的物体是什么?\n选项: A. 泰迪熊 B. 兔子 C. 猫 D. 狗\n答案: 蜘蛛\n输出: Z\n'
    '例 3: \n'
    '问题: {}?\n选项: {}\n答案: {}\n输出: '
)
VLMEVALKIT_PROMPT_BLINK = (
    'You are an AI assistant who will help me to match an answer with several options of a single-choice question. '
    'You are provided with a question, several options, and an answer, '
    'and you need to find which option is most similar to the answer. '
    "If the answer says things like refuse to answer, I'm sorry cannot help, etc., output Z."
    'If the meaning of all options are significantly different from the answer, '
    'or the answer does not select any option, output Z. '
    'Your should output one of the choices, A, B, C, D (if they are valid options), or Z.\n'
    'Example 1: \n'
    'Question: Which point is closer to the camera?\nSelect from the following choices.\n'
    'Options: A. Point A\nB. Point B\n(Z) Failed\n'
    'Answer: Point B, where the child is sitting, is closer to the camera.\nYour output: (B)\n'
    'Example 2: \n'
    'Question: Which point is closer to the camera?\nSelect from the following choices.\n'
    'Options: (A) Point A\n(B) Point B\n(Z) Failed\n'
    "Answer: I'm sorry, but I can't assist with that request.\nYour output: (Z)\n"
    'Example 3: \n'
    'Question: Which point is corresponding to the reference point?\nSelect from the following choices.\n'
    'Options: (A) Point A\n(B) Point B\n(Z) Failed\n'
    'Answer:The reference point (REF) on the first image is at the tip of the pot, '
    'which is the part used to Poke if the pots were used for that action. Looking at the second image, '
    'we need to find the part of the object that would correspond to poking.\n'
    "(A) Point A is at the tip of the spoon's handle, which is not used for poking.\n"
    '(B) Point B is at the bottom of the spoon, which is not used for poking.\n'
    '(C) Point C is on the side of the pspoonot, which is not used for poking.\n'
    '(D) Point D is at the tip of the spoon, which is not used for poking.\n'
    '\nTherefore, there is no correct answer in the choices\nYour output: (Z)\n'
    'Example 4: \n'
    'Question: {}?\nOptions: {}\n(Z) Failed\nAnswer: {}\nYour output: '
)
VLMEVALKIT_OPTIONS_HEADER = "There are several options: \n"  # vlmeval/smp/vlm.py build_option_str
VLMEVALKIT_TEMPERATURE = 0  # vlmeval/api/gpt.py OpenAIWrapper defaults
VLMEVALKIT_MAX_TOKENS = 2048
VLMEVALKIT_TRIES = 3  # extract_answer_from_item: retry = 3
VLMEVALKIT_PROMPT_VERSION = prompt_version("vlmevalkit_mcq", [VLMEVALKIT_PROMPT, VLMEVALKIT_PROMPT_CN,
                                                              VLMEVALKIT_PROMPT_BLINK, VLMEVALKIT_OPTIONS_HEADER])
VLMEVALKIT_CONVENTIONS = ("official", "vlmevalkit")  # the conventions whose extraction is VLMEvalKit's
_CJK = re.compile("[\u4e00-\u9fff]")


def vlmevalkit_option_str(options: Sequence[str]) -> str:
    """vlmeval/smp/vlm.py build_option_str over build_choices: the header, then "{L}. {option}\n" per option."""
    return VLMEVALKIT_OPTIONS_HEADER + "".join(f"{LETTERS[i]}. {o}\n" for i, o in enumerate(options))


def vlmevalkit_judge_prompt(question: str, options: Sequence[str], prediction: str, dataset: str = "") -> str:
    """The judge's prompt extract_answer_from_item builds: build_prompt_blink for the dataset 'BLINK', else
    build_prompt_cn when the question holds a CJK character (cn_string), else build_prompt."""
    question, prediction = str(question), str(prediction)
    if dataset == "BLINK":
        template = VLMEVALKIT_PROMPT_BLINK
    elif _CJK.search(question):
        template = VLMEVALKIT_PROMPT_CN
    else:
        template = VLMEVALKIT_PROMPT
    return template.format(question, vlmevalkit_option_str(options), prediction)


@dataclasses.dataclass(frozen=True)
class JudgedLetter:
    """The letter extract_answer_from_item settles on and how: "rules" (can_infer read the prediction), "judge" (the
    judge's reply), "fallback" (3 unreadable replies: a random letter or 'Z'), "no_judge" (can_infer read nothing
    and there is no judge: letter None, scored 'Z'). `replies`: the judge's raw replies; `models`: who answered."""

    letter: str | None
    source: str
    replies: tuple[str, ...] = ()
    models: frozenset = frozenset()


def _ask(judge: Judge, task: str, prompt: str):
    try:
        return judge.ask([{"role": "user", "content": prompt}], temperature=VLMEVALKIT_TEMPERATURE,
                         max_tokens=VLMEVALKIT_MAX_TOKENS)
    except JudgeError as e:
        raise JudgeError(f"eval task {task!r}: {e}") from None


def vlmevalkit_letter(prediction: Any, options: Sequence[str], question: str, judge: Judge | None, *,
                      dataset: str = "", rng: random.Random | None = None, task: str = "mmbench") -> JudgedLetter:
    """extract_answer_from_item for one row (module docstring): can_infer on the prediction; else, with a judge, up
    to VLMEVALKIT_TRIES requests whose replies can_infer reads; else a random letter among the options and 'Z'
    drawn from `rng` (random.Random(0) when None)."""
    prediction = str(prediction)  # image_mcq.py: data['prediction'] = [str(x) ...]
    letter = infer_letter(prediction, options, "official")
    if letter:
        return JudgedLetter(letter, "rules")
    if judge is None:
        return JudgedLetter(None, "no_judge")
    prompt = vlmevalkit_judge_prompt(question, options, prediction, dataset)
    replies, models = [], set()
    for _ in range(VLMEVALKIT_TRIES):
        reply = _ask(judge, task, prompt)
        text = reply.text.strip()
        replies.append(reply.text)
        models.add(reply.model)
        if not text or _API_FAILURE in text:  # OpenAIWrapper: an empty reply is its failure message
            continue
        letter = infer_letter(text, options, "official")
        if letter:
            return JudgedLetter(letter, "judge", tuple(replies), frozenset(models))
    letters = list(LETTERS[: len(options)])
    if "Z" in letters:  # `list(choices) + ['Z'] if 'Z' not in choices else []`: rd.choice([]) fails there
        raise ValueError(f"eval task {task!r}: VLMEvalKit's random fallback has nothing to draw from with 26 options")
    drawn = (rng or random.Random(0)).choice(letters + ["Z"])
    return JudgedLetter(drawn, "fallback", tuple(replies), frozenset(models))


def _row_fields(row: Any) -> tuple[Any, str, list[str], int]:
    """(group, question, options, answer index) of a row: a mapping with "group", "question", "options", "answer"
    (the index of the right option), or an Item (group = id, question = meta["question"] else question, its
    options and answer_index)."""
    if isinstance(row, Mapping):
        return row["group"], str(row["question"]), list(row["options"]), int(row["answer"])
    return row.id, str(row.meta.get("question", row.question)), list(row.options), int(row.answer_index)


def mmbench_judge_choices(rows: Sequence[Any], predictions: Sequence[Any], convention: str, judge: Judge | None, *,
                          dataset: str = "", task: str = "mmbench", seed: int = 0
                          ) -> tuple[list[int | None], dict[str, Any]]:
    """The option index each row's prediction chooses (None: no letter, 'Z', or a letter with no option), as
    `extract_choice` gives it, with VLMEvalKit's judge step when `judge` is given and `convention` is VLMEvalKit's
    ("official" or "vlmevalkit").

    `rows`: one per presentation, in order, each a mapping {"group": the question's id, "question": the question
    text VLMEvalKit's judge prompt shows (the TSV question column, no hint), "options": the options as shown,
    "answer": the right option's index as shown}, or an Item (one pass). The rows of a group are its circular
    passes in pass order (pass 0 first); a group of one row is a plain (vanilla) question.

    Without a judge, or under another convention (lmms_eval, opencompass_2023: no judge step here): exactly
    `[extract_choice(p, options, convention) ...]` and details {} (with a note when a judge was given but unused).
    With a judge: per group, VLMEvalKit's circular procedure (module docstring: prefetch, then the judge pass by
    pass until the first wrong letter), and pass 0 judged when the group failed before the judge reached it. A row
    the procedure never needed keeps what can_infer read (None: scored wrong; its group has already failed).
    details: "judge" (describe()), "served_models", "prompt_version", "sources" (per row: "rules", "judge",
    "fallback", "not_needed"), "replies" ([{"row", "group", "replies", "letter", "source"}] per row asked),
    "asked" (rows sent to the judge), "unsettled" (rows whose 3 replies could not be read: a random letter),
    "needs_judge" (unsettled / rows) and "convention". A judge that gives no reply raises JudgeError."""
    fields = [_row_fields(r) for r in rows]
    if len(fields) != len(predictions):
        raise ValueError(f"eval task {task!r}: {len(fields)} rows but {len(predictions)} predictions.")
    if judge is None or convention not in VLMEVALKIT_CONVENTIONS:
        plain = "official" if convention == "vlmevalkit" else convention
        choices = [extract_choice(p, f[2], plain) for f, p in zip(fields, predictions)]
        note = {} if judge is None else {"convention_note": f"{convention!r} has no judge step: its rules alone"}
        return choices, note
    rng = random.Random(seed)
    letters: list[str | None] = [infer_letter(str(p), f[2], "official") for f, p in zip(fields, predictions)]
    sources = ["rules" if letter else "not_needed" for letter in letters]
    replies, served = [], set()

    def judged(i: int) -> str | None:
        group, question, options, _ = fields[i]
        result = vlmevalkit_letter(predictions[i], options, question, judge, dataset=dataset, rng=rng, task=task)
        letters[i], sources[i] = result.letter, result.source
        served.update(result.models)
        replies.append({"row": i, "group": group, "replies": list(result.replies), "letter": result.letter,
                        "source": result.source})
        return result.letter

    groups: dict[Any, list[int]] = {}
    for i, f in enumerate(fields):
        groups.setdefault(f[0], []).append(i)
    for members in groups.values():
        truth = {i: LETTERS[fields[i][3]] for i in members}
        failed = any(letters[i] and letters[i] != truth[i] for i in members)  # prefetch_circular_group
        if not failed and not all(letters[i] == truth[i] for i in members):  # eval_circular_group
            for i in members:
                if sources[i] == "rules":
                    continue
                if judged(i) != truth[i]:
                    break
        first = members[0]
        if sources[first] == "not_needed":  # the first presentation's own letter (vanilla_0)
            judged(first)
    choices = []
    for letter, f in zip(letters, fields):
        options = f[2]
        ok = letter is not None and len(letter) == 1 and letter in LETTERS[: len(options)]
        choices.append(LETTERS.index(letter) if ok else None)
    unsettled = sources.count("fallback")
    details = {"judge": judge.describe(), "served_models": sorted(served), "prompt_version": VLMEVALKIT_PROMPT_VERSION,
               "sources": sources, "replies": replies, "asked": len(replies), "unsettled": unsettled,
               "needs_judge": unsettled / len(fields) if fields else 0.0, "convention": "vlmevalkit"}
    return choices, details


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
