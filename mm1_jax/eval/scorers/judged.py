"""The judged benchmarks' official scorers: LLaVA-Bench (In-the-Wild), MM-Vet and Ferret-Bench, each a model judge
(`mm1_jax.eval.judge`) asked with the benchmark's own prompt and its reply read and summarised by the benchmark's rules.

LLaVA-Bench (In-the-Wild). Read from haotian-liu/LLaVA at c121f043 (2024-05-12; the files last changed at ce1aa08d):
llava/eval/eval_gpt_review_bench.py (get_eval, parse_score, the review content), llava/eval/table/rule.json
("llava_bench_conv", "llava_bench_detail", "llava_bench_complex": one text, role "Assistant"),
llava/eval/summarize_gpt_review.py, and scripts/v1_5/eval/llavabench.sh (answer 1 = answers_gpt4.jsonl, the text-only
GPT-4 reference; answer 2 = the model's). Rules:
  * one request per question: system "You are a helpful and precise assistant for checking the quality of the
    answer.", user = "[Context]\\n{caption}\\n\\n[Question]\\n{question}\\n\\n[Assistant 1]\\n{reference}\\n\\n[End of
    Assistant 1]\\n\\n[Assistant 2]\\n{answer}\\n\\n[End of Assistant 2]\\n\\n[System]\\n{rule prompt}\\n\\n";
    model gpt-4-0314, temperature 0.2, max_tokens 1024 (its default). {caption} is '\\n'.join(context["caption"]): the
    release's context.jsonl gives each caption as ONE string, so the official judge sees it one character a line;
    that is reproduced (a caption given as a list of strings is joined a line each). The official get_eval retries
    every 0.5 s forever; here the judge's bounded retries apply (`judge.OpenAIJudge`).
  * parse_score: the reply's first line ("\\n"-split), "," replaced by " ", split on single spaces; exactly two
    pieces, both float(), are (reference score, model score); anything else (one number, "8, 9" -> three pieces,
    "8 9 " with a trailing space, a word) is [-1, -1]. The official summary KEEPS [-1, -1] in the means; so does
    "gpt_score" here, and every such reply is counted ("unparsed", a fraction, and details["unparsed"] with the
    reply); details["excluding_unparsed"] is the same table without them.
  * summary, per category ("conv", "detail", "complex") and over all: the two means, each round(., 3), and the
    relative score round(100 * model mean / reference mean, 1). "gpt_score" = the overall relative score / 100.
MM-Vet. Read from yuweihao/MM-Vet at acde843e (2025-01-19; the evaluator last changed at c7ff270d): mm-vet_evaluator.py
and mm-vet_evaluator.ipynb (the same rules). Rules:
  * one user message: the few-shot prompt (`MMVET_PROMPT`) + "\\n" + " | ".join([question, answer with "<AND>" ->
    " <AND> " and "<OR>" -> " <OR> ", prediction, ""]); model gpt-4-0613, max_tokens 3, temperature 0.0.
  * the reply's content.split(" ")[0].strip() must float() to a number not above 1.0 and not below 0.0 (so "nan"
    passes, as in the official code). Otherwise the prompt gets "\\nPredict the correctness of the answer (digit): "
    appended and is asked again at the current temperature, which then rises by 0.5 (requests at 0.0, 0.0, 0.5, 1.0,
    1.5, 2.0); after the 6th request's reply (never parsed: try_time > 5) the score is 0.0. Such an item is scored
    0.0 as the official code does, counted ("unparsed") and listed in details["unparsed"] with its replies.
  * summary (one run; the paper's 5 runs are 5 calls): per capability, 100 * sum of the scores of the questions with
    it / their number, round(., 1); "total" likewise over all; per capability integration (the question's set of
    capabilities) likewise. The official column names join a Python set (an order that varies between runs); here the
    capabilities are sorted. "gpt_score" = total / 100.
Ferret-Bench. Read from apple/ml-ferret at 3c9e5c93 (2024-10-08; the files last changed at 5fc7ff83):
ferret/eval/eval_gpt_review_3newclass.py, ferret/eval/ferret_gpt4_data/rule.json, ferret/eval/summarize_gpt_review.py,
ferret/eval/gpt4_eval_script.sh (answer 1 = the release's answer.jsonl, GPT-4's; answer 2 = the model's), and
ferret/eval/model_gpt4eval_3newclass.py (VOCAB_IMAGE_W = VOCAB_IMAGE_H = 1000). Rules:
  * the model's answer is post-processed first (postprocess_answer): refer_desc / refer_reason delete every " [...]"
    (a bracket after a space); ground_conv rewrites every "[a, b, c, d]" as its numbers / 1000 with 3 decimals. A
    bracket whose pieces are not all numbers, or fewer than 4, stops the official script (an uncaught ValueError /
    IndexError); here it is deleted (what the code does for a bracket of more than 4 numbers) and the item listed in
    details["postprocess_failed"].
  * the request is LLaVA's (same system message, model, temperature 0.2, max_tokens 1024) with the rule of the
    question's category, except that the context line is f'[Context]\\{context}' (a literal backslash, no newline:
    the script's '\\{' escape) with the context.jsonl "text" of the question's image.
  * parse_score and the summary as LLaVA's (the [-1, -1] kept in the means, counted here), one review file per
    category. "gpt_score" = the mean of the categories' relative scores / 100 (the Ferret paper's "Avg" column; the
    summary script prints the categories only).

Every aggregate returns (scores, per-item rows, details) as `scorers.items` does, with the judge as its 4th argument:
None gives ({}, [{}...], {"not_scored": "no judge"}). The details carry the judge (`Judge.describe()`: backend, model,
URL without key), the models that answered, the prompt version ("<benchmark>-<hash of the prompt texts>") and every
raw reply. A judge that stays down raises `judge.JudgeError` naming the task.
"""
from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from mm1_jax.eval.judge import NOT_SCORED, Judge, JudgeError, prompt_version
from mm1_jax.eval.prompts import Item

JUDGE_SYSTEM = "You are a helpful and precise assistant for checking the quality of the answer."
REVIEW_ROLE = "Assistant"
REVIEW_MODEL = "gpt-4-0314"  # the official judge of LLaVA-Bench and Ferret-Bench
REVIEW_TEMPERATURE = 0.2
REVIEW_MAX_TOKENS = 1024
REVIEW_TEMPLATE = ("[Context]\n{context}\n\n[Question]\n{question}\n\n[{role} 1]\n{answer1}\n\n[End of {role} 1]\n\n"
                   "[{role} 2]\n{answer2}\n\n[End of {role} 2]\n\n[System]\n{prompt}\n\n")
FERRET_TEMPLATE = "[Context]\\" + REVIEW_TEMPLATE[len("[Context]\n"):]  # f'[Context]\{inst["text"]}\n\n'

# --- LLaVA-Bench (In-the-Wild): rule.json "llava_bench_conv" / "_detail" / "_complex" (one text)
LLAVA_CATEGORIES = ("conv", "detail", "complex")
_LLAVA_PROMPT = (
    "We would like to request your feedback on the performance of two AI assistants in response to the user question "
    "displayed above. The user asks the question on observing an image. For your reference, the visual content in the "
    "image is represented with a few sentences describing the image. \n"
    "Please rate the helpfulness, relevance, accuracy, level of details of their responses. Each assistant receives an "
    "overall score on a scale of 1 to 10, where a higher score indicates better overall performance.\n"
    "Please first output a single line containing only two values indicating the scores for Assistant 1 and 2, "
    "respectively. The two scores are separated by a space.\n"
    "In the subsequent line, please provide a comprehensive explanation of your evaluation, avoiding any potential "
    "bias and ensuring that the order in which the responses were presented does not affect your judgment.")
LLAVA_RULES = {category: _LLAVA_PROMPT for category in LLAVA_CATEGORIES}

# --- Ferret-Bench: ferret_gpt4_data/rule.json (refer_desc and refer_reason share one text)
FERRET_CATEGORIES = ("refer_desc", "refer_reason", "ground_conv")
FERRET_GRID = 1000  # VOCAB_IMAGE_W = VOCAB_IMAGE_H: Ferret writes boxes on a 0-999 grid
_FERRET_CONTEXT = (
    "For your reference, the visual content in the image is represented with five descriptive sentences describing "
    "the same image. In addition, specific object locations within the image are given, along with detailed "
    "coordinates. These coordinates are in the form of bounding boxes, represented as (x1, y1, x2, y2) with floating "
    "numbers ranging from 0 to 1. These values correspond to the top left x, top left y, bottom right x, and bottom "
    "right y. Also, the relationships between pairs of objects are provided, in the format of object -> relationship "
    "-> subject, where the object/subject are indexed by object id from previous object lists as well as the object "
    "names. Also, several region description are given, each describing a box region of image, with detailed "
    "coordinates. \n")
_FERRET_OUTPUT = (
    "Each assistant receives an overall score on a scale of 1 to 10, where a higher score indicates better overall "
    "performance.\n"
    "Please first output a single line containing only two values indicating the scores for Assistant 1 and 2, "
    "respectively. The two scores are separated by a space.\n"
    "In the subsequent line, please provide a comprehensive explanation of your evaluation, avoiding any potential "
    "bias and ensuring that the order in which the responses were presented does not affect your judgment.")
_FERRET_REFER = (
    "We would like to request your feedback on the performance of two AI assistants in response to the user question "
    "displayed above. The user asks the question about specific region of an image. " + _FERRET_CONTEXT +
    "Please rate the spatial correspondence, helpfulness, relevance, accuracy, level of details of their responses. "
    + _FERRET_OUTPUT)
_FERRET_GROUND = (
    "We would like to request your feedback on the performance of two AI assistants in response to the user question "
    "displayed above. The user asks the question that requires model to predict the coordinates of relevant object. "
    + _FERRET_CONTEXT +
    "Please rate the predicted coordinates, helpfulness, relevance, accuracy, level of details of their responses. "
    "Specifically, pay your attention to the precision of the coordinates and whether it matches the object. Small "
    "deviation (<20% of ground-truth box width or height) of coordinates is allowed and shouldn't be punished. More "
    "than that, the degree of deviation should be reflected in scoring too.  " + _FERRET_OUTPUT)
FERRET_RULES = {"refer_desc": _FERRET_REFER, "refer_reason": _FERRET_REFER, "ground_conv": _FERRET_GROUND}

# --- MM-Vet: mm-vet_evaluator.py `prompt` and the retry's suffix
MMVET_MODEL = "gpt-4-0613"
MMVET_MAX_TOKENS = 3
MMVET_TEMPERATURE_STEP = 0.5
MMVET_TRIES = 5  # the score is 0.0 once try_time > 5 (after the 6th request)
MMVET_PROMPT = """Compare the ground truth and prediction from AI models, to give a correctness score for the prediction. <AND> in the ground truth means it is totally right only when all elements in the ground truth are present in the prediction, and <OR> means it is totally right when any one element in the ground truth is present in the prediction. The correctness score is 0.0 (totally wrong), 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, or 1.0 (totally right). Just complete the last space of the correctness score.

Question | Ground truth | Prediction | Correctness
--- | --- | --- | ---
What is x in the equation? | -1 <AND> -5 | x = 3 | 0.0
What is x in the equation? | -1 <AND> -5 | x = -1 | 0.5
What is x in the equation? | -1 <AND> -5 | x = -5 | 0.5
What is x in the equation? | -1 <AND> -5 | x = -5 or 5 | 0.5
What is x in the equation? | -1 <AND> -5 | x = -1 or x = -5 | 1.0
Can you explain this meme? | This meme is poking fun at the fact that the names of the countries Iceland and Greenland are misleading. Despite its name, Iceland is known for its beautiful green landscapes, while Greenland is mostly covered in ice and snow. The meme is saying that the person has trust issues because the names of these countries do not accurately represent their landscapes. | The meme talks about Iceland and Greenland. It's pointing out that despite their names, Iceland is not very icy and Greenland isn't very green. | 0.4
Can you explain this meme? | This meme is poking fun at the fact that the names of the countries Iceland and Greenland are misleading. Despite its name, Iceland is known for its beautiful green landscapes, while Greenland is mostly covered in ice and snow. The meme is saying that the person has trust issues because the names of these countries do not accurately represent their landscapes. | The meme is using humor to point out the misleading nature of Iceland's and Greenland's names. Iceland, despite its name, has lush green landscapes while Greenland is mostly covered in ice and snow. The text 'This is why I have trust issues' is a playful way to suggest that these contradictions can lead to distrust or confusion. The humor in this meme is derived from the unexpected contrast between the names of the countries and their actual physical characteristics. | 1.0
"""  # the official text, one table row a line
MMVET_RETRY = "\nPredict the correctness of the answer (digit): "

LLAVA_PROMPT_VERSION = prompt_version("llava_bench", [JUDGE_SYSTEM, REVIEW_ROLE, REVIEW_TEMPLATE,
                                                      *(LLAVA_RULES[c] for c in LLAVA_CATEGORIES)])
FERRET_PROMPT_VERSION = prompt_version("ferret_bench", [JUDGE_SYSTEM, REVIEW_ROLE, FERRET_TEMPLATE,
                                                        *(FERRET_RULES[c] for c in FERRET_CATEGORIES)])
MMVET_PROMPT_VERSION = prompt_version("mmvet", [MMVET_PROMPT, MMVET_RETRY])


# --------------------------------------------------------------------------------------------------------------------
# Pairwise reviews (LLaVA-Bench, Ferret-Bench)
# --------------------------------------------------------------------------------------------------------------------
def parse_score(review: str) -> tuple[list[float], bool]:
    """eval_gpt_review_bench.py / eval_gpt_review_3newclass.py parse_score: ([reference, model], True), or
    ([-1, -1], False) when the official parser fails."""
    try:
        pieces = str(review).split("\n")[0].replace(",", " ").split(" ")
        if len(pieces) == 2:
            return [float(pieces[0]), float(pieces[1])], True
    except ValueError:
        pass
    return [-1, -1], False


def llava_context(caption: str | Sequence[str]) -> str:
    """The context the official review shows: '\\n'.join(caption) (a string caption: one character a line)."""
    return "\n".join(caption)


def review_messages(template: str, context: str, question: str, reference: str, answer: str, rule: str
                    ) -> list[dict[str, str]]:
    """The official review request (system message and content) for one question."""
    content = template.format(context=context, question=question, role=REVIEW_ROLE, answer1=reference,
                              answer2=answer, prompt=rule)
    return [{"role": "system", "content": JUDGE_SYSTEM}, {"role": "user", "content": content}]


def llava_w_messages(item: Item, prediction: str) -> list[dict[str, str]]:
    """LLaVA-Bench's review request for an item (meta: category, caption, reference) and the model's answer."""
    meta = item.meta
    return review_messages(REVIEW_TEMPLATE, llava_context(meta["caption"]), meta.get("release_question", item.question),
                           meta["reference"], str(prediction), LLAVA_RULES[meta["category"]])


def ferret_postprocess(answer: str, category: str, grid: int = FERRET_GRID) -> tuple[str, bool]:
    """postprocess_answer of eval_gpt_review_3newclass.py: (the answer shown to the judge, whether every bracket
    could be read; a bracket the official code fails on is deleted here)."""
    ok = True
    matches = re.findall(r"\[.*?\]", answer)
    if category in ("refer_desc", "refer_reason"):
        for match in matches:
            answer = answer.replace(" " + match, "")
    elif category == "ground_conv":
        for match in matches:
            try:
                numbers = [float(piece.strip()) for piece in match.replace("[", "").replace("]", "").split(",")]
            except ValueError:
                numbers = []
            if len(numbers) != 4:
                answer = answer.replace(match, "")
                ok = ok and len(numbers) > 4  # under 4 (or unreadable): the official IndexError / ValueError
                continue
            x1, y1, x2, y2 = (v / grid for v in numbers)
            answer = answer.replace(match, f"[{x1:.3f}, {y1:.3f}, {x2:.3f}, {y2:.3f}]")
    return answer, ok


def ferret_messages(item: Item, prediction: str, grid: int = FERRET_GRID) -> tuple[list[dict[str, str]], bool]:
    """Ferret-Bench's review request for an item (meta: category, context, reference, release_question) and the
    model's answer (post-processed), and whether the post-processing read every bracket."""
    meta = item.meta
    answer, ok = ferret_postprocess(str(prediction), meta["category"], grid)
    return review_messages(FERRET_TEMPLATE, meta["context"], meta.get("release_question", item.question),
                           meta["reference"], answer, FERRET_RULES[meta["category"]]), ok


def _round(x: float, digits: int) -> float:
    return float(round(float(x), digits))


def review_summary(pairs: Sequence[Sequence[float]]) -> dict[str, float]:
    """summarize_gpt_review.py for one group of [reference, model] score pairs: the means round(., 3) and the relative
    score round(100 * model / reference, 1) (nan for no pairs or a zero reference mean, where the script fails)."""
    if not pairs:
        return {"reference": math.nan, "model": math.nan, "relative": math.nan, "count": 0}
    reference, model = (_round(v, 3) for v in np.asarray(pairs, np.float64).mean(0).tolist())
    relative = _round(model / reference * 100, 1) if reference else math.nan
    return {"reference": reference, "model": model, "relative": relative, "count": len(pairs)}


def review_table(categories: Sequence[str], pairs: Sequence[Sequence[float]], keep: Sequence[bool] | None = None
                 ) -> dict[str, dict[str, float]]:
    """{category: summary} for each category present and "all" (the script's keys, without "llava_bench_")."""
    groups: dict[str, list] = {}
    for i, (category, pair) in enumerate(zip(categories, pairs)):
        if keep is None or keep[i]:
            groups.setdefault(category, []).append(pair)
            groups.setdefault("all", []).append(pair)
    return {k: review_summary(v) for k, v in sorted(groups.items())}


def _not_scored(items: Sequence[Item]) -> tuple[dict, list[dict], dict]:
    return {}, [{} for _ in items], {"not_scored": NOT_SCORED}


def _check(items: Sequence[Item], predictions: Sequence[str], task: str) -> None:
    if len(items) != len(predictions):
        raise ValueError(f"eval task {task!r}: {len(items)} items but {len(predictions)} predictions.")


def _ask(judge: Judge, task: str, messages: list[dict], temperature: float, max_tokens: int):
    try:
        return judge.ask(messages, temperature=temperature, max_tokens=max_tokens)
    except JudgeError as e:
        raise JudgeError(f"eval task {task!r}: {e}") from None


def _reviews(task: str, judge: Judge, items: Sequence[Item], predictions: Sequence[str],
             build: Callable[[Item, str], tuple[list[dict], bool]], version: str, convention: str
             ) -> tuple[list[dict], dict[str, Any], list[list[float]], list[bool]]:
    rows, replies, unparsed, failed, served = [], [], [], [], set()
    pairs, parsed = [], []
    for item, prediction in zip(items, predictions):
        messages, ok = build(item, prediction)
        reply = _ask(judge, task, messages, REVIEW_TEMPERATURE, REVIEW_MAX_TOKENS)
        served.add(reply.model)
        pair, good = parse_score(reply.text)
        pairs.append(pair)
        parsed.append(good)
        replies.append({"id": item.id, "reply": reply.text, "tuple": pair})
        if not good:
            unparsed.append({"id": item.id, "reply": reply.text})
        if not ok:
            failed.append(item.id)
        rows.append({"reference_score": pair[0], "score": pair[1], "unparsed": not good})
    details = {"judge": judge.describe(), "served_models": sorted(served), "prompt_version": version,
               "convention": "official", "unparsed": unparsed, "replies": replies}
    if convention != "official":
        details["convention_note"] = f"{convention!r} has no rules of its own here: scored by the official rules"
    if failed:
        details["postprocess_failed"] = failed
    return rows, details, pairs, parsed


def llava_w_aggregate(items: Sequence[Item], predictions: Sequence[str], convention: str, judge: Judge | None, *,
                      task: str = "llava_w") -> tuple[dict[str, float], list[dict], dict[str, Any]]:
    """LLaVA-Bench (In-the-Wild): "gpt_score" = the overall relative score / 100 and "unparsed" (the fraction of
    reviews parse_score could not read, kept as [-1, -1] in the means as the official summary keeps them); the
    table per category and "all" in details["table"], and without the unparsed reviews in
    details["excluding_unparsed"]."""
    if judge is None:
        return _not_scored(items)
    _check(items, predictions, task)
    rows, details, pairs, parsed = _reviews(task, judge, items, predictions,
                                            lambda it, p: (llava_w_messages(it, p), True), LLAVA_PROMPT_VERSION,
                                            convention)
    categories = [it.meta["category"] for it in items]
    details["table"] = review_table(categories, pairs)
    details["excluding_unparsed"] = review_table(categories, pairs, parsed)
    overall = details["table"].get("all", {}).get("relative", math.nan)
    return ({"gpt_score": overall / 100, "unparsed": _fraction(parsed)}, rows, details)


def ferret_bench_aggregate(items: Sequence[Item], predictions: Sequence[str], convention: str, judge: Judge | None,
                           *, task: str = "ferret_bench", grid: int = FERRET_GRID
                           ) -> tuple[dict[str, float], list[dict], dict[str, Any]]:
    """Ferret-Bench: "gpt_score" = the mean of the relative scores of the categories present / 100 (the paper's
    Avg), "<category>" each category's / 100, "unparsed" as LLaVA-Bench's; the tables in details. `grid`: the model's
    box grid (Ferret's 1000)."""
    if judge is None:
        return _not_scored(items)
    _check(items, predictions, task)
    rows, details, pairs, parsed = _reviews(task, judge, items, predictions,
                                            lambda it, p: ferret_messages(it, p, grid), FERRET_PROMPT_VERSION,
                                            convention)
    tables, clean = {}, {}
    for category in FERRET_CATEGORIES:  # one review file per category: its own "all" is the category
        picked = [i for i, it in enumerate(items) if it.meta["category"] == category]
        if picked:
            tables[category] = review_summary([pairs[i] for i in picked])
            clean[category] = review_summary([pairs[i] for i in picked if parsed[i]])
    details["table"], details["excluding_unparsed"] = tables, clean
    scores = {"gpt_score": float(np.mean([t["relative"] for t in tables.values()])) / 100 if tables else math.nan}
    scores.update({c: t["relative"] / 100 for c, t in tables.items()})
    scores["unparsed"] = _fraction(parsed)
    return scores, rows, details


def _fraction(parsed: Sequence[bool]) -> float:
    return (len(parsed) - sum(parsed)) / len(parsed) if parsed else 0.0


# --------------------------------------------------------------------------------------------------------------------
# MM-Vet
# --------------------------------------------------------------------------------------------------------------------
def mmvet_question(question: str, answer: str, prediction: str, retry: bool = False) -> str:
    """The official grading prompt for one question (with the retry's suffix when `retry`)."""
    answer = answer.replace("<AND>", " <AND> ").replace("<OR>", " <OR> ")
    return f"{MMVET_PROMPT}\n{question} | {answer} | {prediction} | " + (MMVET_RETRY if retry else "")


def mmvet_parse(content: str | None) -> float | None:
    """content.split(" ")[0].strip() as a float within [0, 1] (NaN passes the official range check), else None."""
    try:
        score = float(content.split(" ")[0].strip())
    except (AttributeError, ValueError):
        return None
    return None if score > 1.0 or score < 0.0 else score


def mmvet_grade(judge: Judge, question: str, answer: str, prediction: str, *, task: str = "mmvet"
                ) -> tuple[float, list[str], bool, set[str]]:
    """One question graded as the official loop does: (score, every reply, whether a reply parsed, models that
    answered); after the 6th request the score is 0.0 (unparsed)."""
    temperature = 0.0
    messages = [{"role": "user", "content": mmvet_question(question, answer, prediction)}]
    reply = _ask(judge, task, messages, temperature, MMVET_MAX_TOKENS)
    replies, served, tries = [reply.text], {reply.model}, 1
    while True:
        score = mmvet_parse(reply.text)
        if score is not None:
            return score, replies, True, served
        messages = [{"role": "user", "content": mmvet_question(question, answer, prediction, retry=True)}]
        reply = _ask(judge, task, messages, temperature, MMVET_MAX_TOKENS)
        replies.append(reply.text)
        served.add(reply.model)
        tries += 1
        temperature += MMVET_TEMPERATURE_STEP
        if tries > MMVET_TRIES:
            return 0.0, replies, False, served


def mmvet_scores(scores: Sequence[float], capabilities: Sequence[Sequence[str]], digits: int = 1
                 ) -> dict[str, dict[str, float]]:
    """The official tables of one run: {"capabilities": {cap: percent, ..., "total"}, "integrations": {caps joined
    by "_" (sorted): percent, ..., "total"}}, columns ordered by their number of questions (most first)."""
    sets = [frozenset(c) for c in capabilities]
    counter = Counter(c for s in sets for c in s)
    integrations = Counter(sets)
    total = sum(scores, 0.0)  # in question order, as the official loop adds them
    n = len(scores)

    def percent(value: float, count: int) -> float:
        return _round(value / count * 100, digits) if count else math.nan

    caps = {c: percent(sum(s for s, cs in zip(scores, sets) if c in cs), k) for c, k in counter.most_common()}
    caps["total"] = percent(total, n)
    ints = {"_".join(sorted(cs)): percent(sum(s for s, other in zip(scores, sets) if other == cs), k)
            for cs, k in integrations.most_common()}
    ints["total"] = percent(total, n)
    return {"capabilities": caps, "integrations": ints}


def mmvet_aggregate(items: Sequence[Item], predictions: Sequence[str], convention: str, judge: Judge | None, *,
                    task: str = "mmvet") -> tuple[dict[str, float], list[dict], dict[str, Any]]:
    """MM-Vet: "gpt_score" = the official total (percent, 1 decimal) / 100, "unparsed" the fraction of questions
    scored 0.0 after 6 unreadable replies (as the official code scores them); the capability and capability
    integration tables (percent) in details."""
    if judge is None:
        return _not_scored(items)
    _check(items, predictions, task)
    rows, replies, unparsed, served, grades = [], [], [], set(), []
    for item, prediction in zip(items, predictions):
        score, texts, ok, models = mmvet_grade(judge, item.meta.get("release_question", item.question),
                                               item.meta["answer"], str(prediction), task=task)
        grades.append(score)
        served |= models
        replies.append({"id": item.id, "replies": texts, "score": score})
        if not ok:
            unparsed.append({"id": item.id, "replies": texts})
        rows.append({"score": score, "requests": len(texts), "unparsed": not ok})
    tables = mmvet_scores(grades, [it.meta["capability"] for it in items])
    details = {"judge": judge.describe(), "served_models": sorted(served), "prompt_version": MMVET_PROMPT_VERSION,
               "convention": "official", "runs": 1, "unparsed": unparsed, "replies": replies, **tables}
    if convention != "official":
        details["convention_note"] = f"{convention!r} has no rules of its own here: scored by the official rules"
    return {"gpt_score": tables["capabilities"]["total"] / 100, "unparsed": len(unparsed) / len(items) if items
            else 0.0}, rows, details


JUDGED_AGGREGATES = {"llava_w": llava_w_aggregate, "mmvet": mmvet_aggregate, "ferret_bench": ferret_bench_aggregate}
