"""Video benchmarks' prompts and scorers: NExT-QA and IntentQA (multiple choice), Video-MME, MVBench, EgoSchema (subset),
ActivityNet-QA (judged). Contract as `mm1_jax.eval.scorers.multi_image`: `QUESTIONS[kind](item)`, `PROMPTS[kind](item,
convention)`, `AGGREGATES[kind](items, predictions, convention, judge=None) -> (scores (fractions), rows (one dict
with "correct" an item), details (with "convention"))`. Only the "official" rules are written; another convention
is scored by them (details["convention"] says "official").

Sources:
  Video-MME  BradyFU/Video-MME at 4e7566d3: evaluation/eval_your_results.py (extract_characters_regex, the
             accuracies: correct / answered, a response with no letter counted in neither), README (the prompt:
             "Select the best answer ... Respond with only the letter (A, B, C, or D) of the correct option.\\n
             {question}\\n{options}\\nThe best answer is:", no subtitles).
  MVBench    OpenGVLab/Ask-Anything at 71ac7a28 (the notebook's last change), video_chat2/mvbench.ipynb: qa_template,
             the system text put before the question (system_llm=True), question_prompt "\\nOnly give the best
             option.", answer_prompt "Best option:(", return_prompt "(" put before the reply's first line,
             check_ans, the per-task accuracy and "Avg" = all correct / all questions; frames per get_index, within
             start / end for its bound tasks (`mm1_jax.data.video`, rule "mvbench").
  NExT-QA    doc-doc/NExT-QA at bc2af357 eval_mc.py (group CW CH TN TC DC DL DO, TP counted as TN; Acc_C / Acc_T /
             Acc_D by the type's first letter; Acc over all; right when prediction == answer); its models pick an
             option index, so a generated reply is read as a letter by VLMEvalKit's can_infer
             (`mmbench.infer_letter`). Prompt: lmms-eval's nextqa_mc ("{question}\\nA. ..\\n...\\nAnswer with the
             option's letter from the given choices directly.").
  IntentQA   JoseponLee/IntentQA at cee9eaae eval_intentqa.py: eval_mc.py's groups and names (Why, How, Bef&Aft
             with TP counted as TN; Acc_C / Acc_T by the first letter; Acc over the grouped questions; a
             prediction right when it equals the answer index); its models pick an index, so a reply is read as a
             letter as for NExT-QA. Prompt: NExT-QA's (the lmms-eval snapshot read here has no IntentQA task).
  EgoSchema  egoschema/EgoSchema: subset_answers.json scored as accuracy; no official prompt or parser (the full
             set is scored on Kaggle from option indices): the prompt is lmms-eval's egoschema one, the letter
             `mmbench.infer_letter`.
  ActivityNet-QA  mbzuai-oryx/Video-ChatGPT at 69ea1db3 quantitative_evaluation/evaluate_activitynet_qa.py (the
             judge's system and user messages, model gpt-3.5-turbo with no temperature / max_tokens set, ast.literal_eval of the reply;
             "yes" in pred.lower() -> yes, elif "no" -> no; accuracy = yes / (yes + no); average score = sum of
             int(score) / count). The official loop re-asks until a reply parses; here an unparsed reply is counted
             (scores["unparsed"]) and left out of both means.
"""
from __future__ import annotations

import ast
import math
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from mm1_jax.eval.judge import NOT_SCORED, Judge, JudgeError, prompt_version
from mm1_jax.eval.prompts import Item
from mm1_jax.eval.scorers import mmbench
from mm1_jax.eval.scorers.multi_image import accuracy_by, mean_or_nan, reply_text

LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
KINDS = ("nextqa", "intentqa", "videomme", "mvbench", "egoschema", "activitynet_qa")


def _check(items: Sequence[Item], predictions: Sequence[Any], kind: str) -> None:
    if len(items) != len(predictions):
        raise ValueError(f"{kind}: {len(items)} items but {len(predictions)} predictions.")


def _details(convention: str, **more: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"convention": "official"}
    if convention != "official":
        out["convention_note"] = f"{convention!r} has no rules of its own here: scored by the official rules"
    out.update(more)
    return out


# ========================================================================================================= Video-MME

VIDEOMME_PROMPT = ("Select the best answer to the following multiple-choice question based on the video. Respond "
                   "with only the letter (A, B, C, or D) of the correct option.\n{question}\n{options}\n"
                   "The best answer is:")
# eval_your_results.py's list, its missing commas kept: two pairs are joined into one prefix each
VIDEOMME_PREFIXES = ("The best answer is", "The correct answer is", "The answer is", "The answer",
                     ("The best option is" "The correct option is"), ("Best answer:" "Best option:"))


def videomme_extract(s: str) -> str:
    """eval_your_results.py extract_characters_regex: the first of A-D after the prefixes are removed; "" when a
    reply of more than 10 words holds none, or none at all."""
    s = reply_text(s).strip()
    for prefix in VIDEOMME_PREFIXES:
        s = s.replace(prefix, "")
    if len(s.split()) > 10 and not re.search("[ABCD]", s):
        return ""
    matches = re.search(r"[ABCD]", s)
    return "" if matches is None else matches[0]


def videomme_question(item: Item, convention: str = "official") -> str:
    item.meta.setdefault("released_question", item.question)
    return VIDEOMME_PROMPT.format(question=item.meta["released_question"], options="\n".join(item.meta["options"]))


def videomme_aggregate(items: Sequence[Item], predictions: Sequence[str], convention: str = "official",
                       judge: Judge | None = None):
    """Video-MME: "accuracy" = correct / answered over all durations (answered: a letter was extracted), and
    "<duration>" each duration's; "answered" the fraction with a letter; per task type / domain in details."""
    _check(items, predictions, "videomme")
    rows = []
    for it, p in zip(items, predictions):
        got = videomme_extract(p)
        rows.append({"answer": got, "correct": got != "" and got == it.meta["answer"], "answered": got != ""})
    kept = [(it, r) for it, r in zip(items, rows) if r["answered"]]
    right = [r["correct"] for _, r in kept]
    scores = {"accuracy": mean_or_nan(right), "answered": mean_or_nan([r["answered"] for r in rows])}
    for d in ("short", "medium", "long"):
        sub = [r["correct"] for it, r in kept if it.meta.get("duration") == d]
        if any(it.meta.get("duration") == d for it in items):
            scores[d] = mean_or_nan(sub)
    keys = [it for it, _ in kept]
    return scores, rows, _details(convention, task_types=accuracy_by(right, [it.meta.get("task") for it in keys]),
                                  domains=accuracy_by(right, [it.meta.get("domain") for it in keys]),
                                  unanswered=len(rows) - len(kept))


# =========================================================================================================== MVBench

MVBENCH_SYSTEM = ("Carefully watch the video and pay attention to the cause and sequence of events, the detail and "
                  "movement of objects, and the action and pose of persons. Based on your observations, select the "
                  "best option that accurately addresses the question.\n")
MVBENCH_QUESTION_PROMPT = "\nOnly give the best option."
MVBENCH_ANSWER_PROMPT = "Best option:("
MVBENCH_RETURN_PROMPT = "("


def mvbench_qa_template(question: str, candidates: Sequence[str], answer: str) -> tuple[str, str]:
    """mvbench.ipynb qa_template: ("Question: ..\\nOptions:\\n(A) ..\\n(B) ..", "(X) answer")."""
    text = f"Question: {question}\nOptions:\n"
    answer_idx = -1
    for idx, c in enumerate(candidates):
        text += f"({chr(ord('A') + idx)}) {c}\n"
        if c == answer:
            answer_idx = idx
    return text.rstrip(), f"({chr(ord('A') + answer_idx)}) {answer}"


def mvbench_question(item: Item, convention: str = "official") -> str:
    """The user text: qa_template's question + "\\nOnly give the best option." (the system prompt and the answer
    prompt "Best option:(" are meta["system"] / meta["answer_prefix"], set by the reader's QUESTIONS call)."""
    item.meta.setdefault("system", MVBENCH_SYSTEM)
    item.meta.setdefault("answer_prefix", MVBENCH_ANSWER_PROMPT)
    item.meta.setdefault("released_question", item.question)
    question, _ = mvbench_qa_template(item.meta["released_question"], item.options, item.answers[0])
    return question + MVBENCH_QUESTION_PROMPT


def mvbench_pred(reply: str) -> str:
    """infer_mvbench's return: "(" + the reply's first line (the reply continues "Best option:(")."""
    return MVBENCH_RETURN_PROMPT + reply_text(reply).strip().split("\n")[0]


def mvbench_check_ans(pred: str, gt: str) -> bool:
    """mvbench.ipynb check_ans: the first word of pred (dots removed) inside the gt's "(x)", or the gt's "(x)"
    inside it (lower-cased)."""
    pred_list = pred.lower().split(" ")
    pred_option = pred_list[0]
    gt_option = gt.lower().split(" ")[0]
    if pred_option.replace(".", "") in gt_option:
        return True
    return gt_option in pred_option


def mvbench_aggregate(items: Sequence[Item], predictions: Sequence[str], convention: str = "official",
                      judge: Judge | None = None):
    """MVBench: "<task>" each task's accuracy, "accuracy" = all correct / all questions (the notebook's Avg; with 200
    questions a task, the mean of the tasks'), "task_mean" the unweighted mean of the tasks'. A prediction is the
    reply after "Best option:(" (mvbench_pred); an empty reply is "(" and check_ans counts it right (it is in every
    "(x)"): the official quirk, kept and counted in details["empty_replies"]."""
    _check(items, predictions, "mvbench")
    rows = []
    for it, p in zip(items, predictions):
        question = it.meta.get("released_question", it.question)
        _, gt = mvbench_qa_template(question, it.options, it.answers[0])
        pred = mvbench_pred(p)
        rows.append({"answer": pred, "gt": gt, "correct": mvbench_check_ans(pred, gt)})
    right = [r["correct"] for r in rows]
    tasks = accuracy_by(right, [it.meta["task"] for it in items])
    scores = {"accuracy": mean_or_nan(right), "task_mean": mean_or_nan(list(tasks.values())), **tasks}
    empty = sum(1 for p in predictions if not reply_text(p).strip())
    return scores, rows, _details(convention, tasks=tasks, empty_replies=empty)


# ============================================================================================ NExT-QA and EgoSchema

LMMS_POST_PROMPT = "Answer with the option's letter from the given choices directly."
NEXTQA_GROUPS = ("CW", "CH", "TN", "TC", "DC", "DL", "DO")
NEXTQA_NAMES = {"CW": "Why", "CH": "How", "TN": "Bef&Aft", "TC": "When", "DC": "Cnt", "DL": "Loc", "DO": "Other",
                "C": "Acc_C", "T": "Acc_T", "D": "Acc_D"}


def lettered_question(item: Item, convention: str = "official") -> str:
    """lmms-eval's nextqa_mc / egoschema layout: the question, "A. option" lines, then the post prompt."""
    item.meta.setdefault("released_question", item.question)
    lines = [item.meta["released_question"].strip()] + [f"{LETTERS[i]}. {o.strip()}" for i, o in
                                                        enumerate(item.options)]
    return "\n".join(lines) + "\n" + LMMS_POST_PROMPT


def choice_letter(prediction: Any, options: Sequence[str]) -> str | None:
    """The letter of a reply (VLMEvalKit can_infer: a letter, or an option's text), None when none."""
    letter = mmbench.infer_letter(reply_text(prediction), options, "official")
    return letter if letter and letter in LETTERS[:len(options)] else None


def _choice_rows(items: Sequence[Item], predictions: Sequence[str]) -> list[dict]:
    rows = []
    for it, p in zip(items, predictions):
        got = choice_letter(p, it.options)
        rows.append({"answer": got or "", "correct": got == it.meta["answer"]})
    return rows


def nextqa_group(qtype: str) -> str:
    """eval_mc.py: TP is counted as TN."""
    return "TN" if qtype == "TP" else qtype


def nextqa_aggregate(items: Sequence[Item], predictions: Sequence[str], convention: str = "official",
                     judge: Judge | None = None, kind: str = "nextqa"):
    """NExT-QA (eval_mc.py) and IntentQA (eval_intentqa.py, the same rules): "accuracy" over all, "causal" /
    "temporal" / "descriptive" (Acc_C / Acc_T / Acc_D by the type's first letter), and each of CW CH TN TC DC DL DO
    present."""
    _check(items, predictions, kind)
    rows = _choice_rows(items, predictions)
    right = [r["correct"] for r in rows]
    groups = [nextqa_group(it.meta["type"]) for it in items]
    scores: dict[str, float] = {"accuracy": mean_or_nan(right)}
    for letter, name in (("C", "causal"), ("T", "temporal"), ("D", "descriptive")):
        sub = [r for r, g in zip(right, groups) if g[0] == letter]
        if sub:
            scores[name] = mean_or_nan(sub)
    per = accuracy_by(right, groups)
    scores.update({g: per[g] for g in NEXTQA_GROUPS if g in per})
    return scores, rows, _details(convention, names=NEXTQA_NAMES)


def intentqa_aggregate(items: Sequence[Item], predictions: Sequence[str], convention: str = "official",
                       judge: Judge | None = None):
    """IntentQA (eval_intentqa.py): NExT-QA's accuracies; its table reports Why (CW), How (CH), Bef&Aft (TN) and
    Total ("accuracy")."""
    return nextqa_aggregate(items, predictions, convention, judge, kind="intentqa")


def egoschema_aggregate(items: Sequence[Item], predictions: Sequence[str], convention: str = "official",
                        judge: Judge | None = None):
    """EgoSchema subset: "accuracy" over the questions of subset_answers.json."""
    _check(items, predictions, "egoschema")
    rows = _choice_rows(items, predictions)
    return {"accuracy": mean_or_nan([r["correct"] for r in rows])}, rows, _details(convention)


# ==================================================================================================== ActivityNet-QA

ANETQA_SYSTEM = (
    "You are an intelligent chatbot designed for evaluating the correctness of generative outputs for question-answer "
    "pairs. Your task is to compare the predicted answer with the correct answer and determine if they match "
    "meaningfully. Here's how you can accomplish the task:"
    "------"
    "##INSTRUCTIONS: "
    "- Focus on the meaningful match between the predicted answer and the correct answer.\n"
    "- Consider synonyms or paraphrases as valid matches.\n"
    "- Evaluate the correctness of the prediction compared to the answer.")
ANETQA_USER = (
    "Please evaluate the following video-based question-answer pair:\n\n"
    "Question: {question}\n"
    "Correct Answer: {answer}\n"
    "Predicted Answer: {pred}\n\n"
    "Provide your evaluation only as a yes/no and score where the score is an integer value between 0 and 5, with 5 "
    "indicating the highest meaningful match. "
    "Please generate the response in the form of a Python dictionary string with keys 'pred' and 'score', where value "
    "of 'pred' is  a string of 'yes' or 'no' and value of 'score' is in INTEGER, not STRING."
    "DO NOT PROVIDE ANY OTHER OUTPUT TEXT OR EXPLANATION. Only provide the Python dictionary string. "
    "For example, your response should look like this: {{'pred': 'yes', 'score': 4.8}}.")
ANETQA_TEMPERATURE = 1.0  # not set in the official request: the API's default
ANETQA_MAX_TOKENS = 64  # not set in the official request
ANETQA_PROMPT_VERSION = prompt_version("activitynet_qa", [ANETQA_SYSTEM, ANETQA_USER])


def activitynet_qa_question(item: Item, convention: str = "official") -> str:
    return item.question


def activitynet_qa_messages(question: str, answer: str, pred: str) -> list[dict[str, str]]:
    return [{"role": "system", "content": ANETQA_SYSTEM},
            {"role": "user", "content": ANETQA_USER.format(question=question, answer=answer, pred=pred)}]


def activitynet_qa_parse(reply: str) -> tuple[str, int] | None:
    """ast.literal_eval of the reply: ("yes" / "no" / "", int(score)), or None when it is not such a dict. The
    verdict as the official summary reads it: "yes" in pred.lower() -> yes, elif "no" in it -> no."""
    try:
        value = ast.literal_eval(reply_text(reply).strip())
        pred, score = value["pred"], int(value["score"])
    except Exception:  # noqa: BLE001  literal_eval raises many kinds for free text
        return None
    verdict = "yes" if "yes" in str(pred).lower() else "no" if "no" in str(pred).lower() else ""
    return verdict, score


def activitynet_qa_aggregate(items: Sequence[Item], predictions: Sequence[str], convention: str = "official",
                             judge: Judge | None = None, *, task: str = "activitynet_qa"):
    """ActivityNet-QA judged: "accuracy" = yes / (yes + no), "score" = mean int score / 5 (a fraction; the official
    number is details["average_score"], 0-5), "unparsed" the fraction of replies that do not parse (left out of
    both). judge None -> not scored."""
    if judge is None:
        return {}, [{} for _ in items], {"not_scored": NOT_SCORED}
    _check(items, predictions, task)
    rows, yes, no, scores_, unparsed, served = [], 0, 0, [], [], set()
    for it, p in zip(items, predictions):
        messages = activitynet_qa_messages(it.question, it.answers[0], reply_text(p))
        try:
            reply = judge.ask(messages, temperature=ANETQA_TEMPERATURE, max_tokens=ANETQA_MAX_TOKENS)
        except JudgeError as e:
            raise JudgeError(f"eval task {task!r}: {e}") from None
        served.add(reply.model)
        parsed = activitynet_qa_parse(reply.text)
        if parsed is None:
            unparsed.append({"id": it.id, "reply": reply.text})
            rows.append({"reply": reply.text, "correct": False, "unparsed": True})
            continue
        verdict, score = parsed
        yes += verdict == "yes"
        no += verdict == "no"
        scores_.append(score)
        rows.append({"reply": reply.text, "verdict": verdict, "score": score, "correct": verdict == "yes",
                     "unparsed": False})
    average = mean_or_nan(scores_)
    out = {"accuracy": yes / (yes + no) if yes + no else math.nan,
           "score": average / 5 if scores_ else math.nan, "unparsed": len(unparsed) / len(items) if items else 0.0}
    return out, rows, _details(convention, judge=judge.describe(), served_models=sorted(served),
                               prompt_version=ANETQA_PROMPT_VERSION, average_score=average, yes=yes, no=no,
                               unparsed=unparsed)


# ========================================================================================================= the tables

Prompt = Callable[[Item, str], str]
PROMPTS: dict[str, Prompt] = {"nextqa": lettered_question, "intentqa": lettered_question,
                              "egoschema": lettered_question,
                              "videomme": videomme_question, "mvbench": mvbench_question,
                              "activitynet_qa": activitynet_qa_question}
QUESTIONS: dict[str, Callable[[Item], str]] = {kind: (lambda item, fn=fn: fn(item, "official"))
                                               for kind, fn in PROMPTS.items()}
AGGREGATES: Mapping[str, Callable[..., tuple[dict[str, float], list[dict], dict[str, Any]]]] = {
    "nextqa": nextqa_aggregate, "intentqa": intentqa_aggregate, "videomme": videomme_aggregate, "mvbench": mvbench_aggregate,
    "egoschema": egoschema_aggregate, "activitynet_qa": activitynet_qa_aggregate,
}
