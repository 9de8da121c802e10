"""MM1.5's benchmarks scored from evaluation items and generated answers: each benchmark's question text (as its
official evaluation prompts it) and its task-level scores, both by the rules of the scorer modules beside this one.

`QUESTIONS[kind](item)` is the text a benchmark asks; `AGGREGATES[kind](items, predictions, convention)` returns
(scores, per-item values, details): the scores that `python -m mm1_jax.eval` prints (fractions, as every task's),
one dict per item for its prediction row, and the official score tables (subtasks, splits, types) for the report.
A benchmark whose scorer has no rule of a harness's convention is scored by its official rules, and `details`
says so ("convention").
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from mm1_jax.eval.prompts import Item
from mm1_jax.eval.scorers import general, mathvista, mme, mmmu, ocrbench, pope, wtq

Aggregate = Callable[[Sequence[Item], Sequence[str], str], tuple[dict[str, float], list[dict], dict[str, Any]]]

# The maximum MME score: 10 perception subtasks and 4 cognition subtasks of at most 200 each (acc + acc+).
MME_MAX = 2800.0


def _convention(convention: str, known: Sequence[str]) -> str:
    return convention if convention in known else "official"


# ---------------------------------------------------------------------------------------------------------- questions


def mmmu_question(item: Item) -> str:
    """MMMU's prompt as its evaluation builds it (mmmu/utils/data_utils.py `construct_prompt` with
    configs/llava1.5.yaml): multiple choice "{question}\\n(A) ..\\n(B) ..\\n\\nAnswer with the option's letter from
    the given choices directly.", open "{question}\\n\\nAnswer the question using a single word or phrase.". An
    image that only an option names is shown where that option names it first (as lmms-eval places it)."""
    meta = item.meta
    if meta["question_type"] != "multiple-choice":
        return f"{item.question}\n\nAnswer the question using a single word or phrase."
    shown = set(meta["image_numbers"][:item.question.count("<image>")])
    lines = []
    for letter, option in zip("ABCDEFGHIJKLMNOPQRSTUVWXYZ", meta["options"]):
        for k in meta["image_numbers"]:
            if k not in shown and f"<image {k}>" in option:
                option = option.replace(f"<image {k}>", "<image>", 1)
                shown.add(k)
        lines.append(f"({letter}) {option}")
    return f"{item.question}\n" + "\n".join(lines) + "\n\nAnswer with the option's letter from the given choices " \
        "directly."


def release_question(item: Item) -> str:
    """The question exactly as the release wrote it (RealWorldQA's lettered questions list their options and end
    in their own instruction; the reader keeps that text in meta["release_question"])."""
    return item.meta.get("release_question", item.question)


QUESTIONS: dict[str, Callable[[Item], str]] = {"mmmu": mmmu_question, "realworldqa": release_question}


# ---------------------------------------------------------------------------------------------------------- scores


def mme_aggregate(items, predictions, convention):
    """MME: "score" = perception + cognition (points out of 2800, as the leaderboard adds them), "perception",
    "cognition"; each subtask's acc / acc+ in the details. A total needs all its subtasks (the official script
    needs all 14 results files): with a subtask absent, it and "score" are left out."""
    table = mme.mme_scores(predictions, [it.answers[0] for it in items], [it.meta["category"] for it in items],
                           [it.meta["image"] for it in items], convention)
    scores = {k: table[k] for k in ("perception", "cognition") if k in table}
    if len(scores) == 2:
        scores["score"] = scores["perception"] + scores["cognition"]
    rows = [{"answer": mme.mme_answer(p, convention), "correct": mme.mme_correct(p, it.answers[0], convention)}
            for it, p in zip(items, predictions)]
    return scores, rows, {"subtasks": {k: v for k, v in table.items() if k not in scores}}


def pope_aggregate(items, predictions, convention):
    """POPE: accuracy / precision / recall / F1 as the mean over the splits present (how LLaVA-1.5 onwards report
    one POPE number); every split's own and the pooled ("overall") metrics in the details."""
    table = pope.pope_scores(predictions, [it.answers[0] for it in items], [it.meta["splits"] for it in items],
                             convention)
    scores = {k: table[f"mean/{k}"] for k in ("f1", "accuracy", "precision", "recall")}
    rows = [{"answer": pope.pope_answer(p, convention)} for p in predictions]
    return scores, rows, {"splits": table}


def seed_aggregate(items, correct, convention):
    """SEED-Bench (image): accuracy over all questions (a micro average), per question type in the details."""
    table = general.seed_scores(correct, [it.meta["question_type"] for it in items])
    return {"accuracy": table.pop("accuracy")}, [{} for _ in items], {"question_types": table}


def realworldqa_aggregate(items, predictions, convention):
    """RealWorldQA: accuracy by lmms-eval's rule (the release has no scorer; 'official' takes lmms-eval's) or by
    VLMEvalKit's."""
    used = convention if convention in general.REALWORLDQA_CONVENTIONS else "lmms_eval"
    right = [general.realworldqa_correct(p, it.meta["answer"], it.options, used) for it, p in zip(items, predictions)]
    return {"accuracy": sum(right) / len(right)}, [{"correct": r} for r in right], {"convention": used}


def ocrbench_aggregate(items, predictions, convention):
    """OCRBench: "accuracy" = correct / questions (x 1000 = the official Final Score on the full 1000); the
    official table (per type with 1000 records, per dataset otherwise) in the details."""
    used = _convention(convention, ocrbench.OCRBENCH_CONVENTIONS)
    records = [{"type": it.meta["type"], "dataset_name": it.meta["dataset_name"],
                "result": ocrbench.ocrbench_correct(p, it.answers, it.meta["dataset_name"], it.meta["type"], used)}
               for it, p in zip(items, predictions)]
    right = [r["result"] or 0 for r in records]
    return ({"accuracy": sum(right) / len(right)}, [{"correct": bool(r)} for r in right],
            {"table": ocrbench.ocrbench_scores(records, used), "convention": used})


def mathvista_aggregate(items, predictions, convention, judge=None, *, task="mathvista"):
    """MathVista: accuracy over all problems. A response whose answer the official code would have a model extract
    (no rule of extract_answer.py settles it):
      * without a judge, counts as wrong and is counted in "needs_judge" (a fraction of the problems), never hidden;
      * with `judge` (`mm1_jax.eval.judge.Judge`), is extracted by it with the official prompt
        (`mathvista.judge_extraction`) and scored by calculate_score.py's rules; "needs_judge" is then the fraction
        of problems whose extraction stayed empty (every reply empty). details: "judge" (its describe()),
        "served_models", "prompt_version", "replies" ({"id", "replies", "extraction"} per problem asked) and
        "unsettled" (their ids). A judge that gives no reply raises `JudgeError` (the task stops).
    The official score table in the details."""
    results, rows, waiting_count = {}, [], 0
    replies, unsettled, served = [], [], set()
    for it, p in zip(items, predictions):
        verdict = mathvista.mathvista_correct(p, it.meta)
        waiting = verdict is mathvista.NEEDS_JUDGE
        row = {}
        if waiting and judge is not None:
            query = it.meta.get("query") or it.question
            extraction, texts, models = mathvista.judge_extraction(judge, query, p, task=task)
            served |= models
            verdict = mathvista.mathvista_correct(p, it.meta, extraction=extraction)
            replies.append({"id": it.id, "replies": texts, "extraction": extraction})
            waiting = extraction == ""
            if waiting:
                unsettled.append(it.id)
            row = {"extraction": extraction}
        waiting_count += waiting
        results[it.id] = {"true_false": bool(verdict) and verdict is not mathvista.NEEDS_JUDGE,
                          **{k: it.meta[k] for k in mathvista.SCORE_KEYS if k in it.meta}}
        rows.append({"correct": results[it.id]["true_false"], "needs_judge": waiting, **row})
    table = mathvista.mathvista_scores(results)
    details = {"table": table, "convention": "official"}
    if judge is not None:
        details.update({"judge": judge.describe(), "served_models": sorted(served),
                        "prompt_version": mathvista.MATHVISTA_PROMPT_VERSION, "replies": replies,
                        "unsettled": unsettled})
    return {"accuracy": table["average"]["accuracy"], "needs_judge": waiting_count / len(items)}, rows, details


def mmmu_aggregate(items, predictions, convention):
    """MMMU: the official Overall accuracy (question-weighted over subjects), parsing the responses in order with one
    Random(42), as main_parse_and_eval.py does; subjects and domains in the details."""
    rng = mmmu.mmmu_rng()
    right = {}
    for it, p in zip(items, predictions):
        right[it.id] = mmmu.mmmu_correct(p, it.meta["question_type"], it.meta["options"], it.meta["answer"], rng)
    table = mmmu.mmmu_scores(right)
    return ({"accuracy": table["Overall"]["acc"]}, [{"correct": right[it.id]} for it in items],
            {"table": table, "convention": "official"})


def wtq_aggregate(items, predictions, convention):
    """WTQ: denotation accuracy, official rules (evaluator.py); VLMEvalKit's TableVQA-Bench reading for the
    vlmevalkit convention; DocOwl's reading for DocOwl's files."""
    right, used = [], set()
    for it, p in zip(items, predictions):
        rule = "docowl" if it.meta.get("source") == "docowl" else \
            "tablevqabench" if convention == "vlmevalkit" else "official"
        used.add(rule)
        try:
            right.append(wtq.wtq_correct(p, it.answers, convention=rule))
        except ValueError:  # TableVQA-Bench's port cannot compare a NaN / infinite number: scored wrong there
            right.append(False)
    return {"accuracy": sum(right) / len(right)}, [{"correct": r} for r in right], {"convention": sorted(used)}


def tabfact_aggregate(items, predictions, convention):
    """TabFact: verdict accuracy by TableVQA-Bench's evaluate_tabfact (an answer with both "true" and "false" is
    unparsed and wrong), or DocOwl's exact match for DocOwl's files."""
    results, used = [], set()
    for it, p in zip(items, predictions):
        rule = "docowl" if it.meta.get("source") == "docowl" else "official"
        used.add(rule)
        results.append(wtq.tabfact_correct(p, it.answers[0], rule))
    table = wtq.tabfact_scores(results)
    return ({"accuracy": table["accuracy"]}, [{"correct": r == 1} for r in results],
            {"unparsed": table["unparsed"], "convention": sorted(used)})


AGGREGATES: dict[str, Aggregate] = {
    "mme": mme_aggregate, "pope": pope_aggregate, "seed": seed_aggregate, "realworldqa": realworldqa_aggregate,
    "ocrbench": ocrbench_aggregate, "mathvista": mathvista_aggregate, "mmmu": mmmu_aggregate,
    "wtq": wtq_aggregate, "tabfact": tabfact_aggregate,
}
