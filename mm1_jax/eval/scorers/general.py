"""SEED-Bench (image) and RealWorldQA: multiple-choice accuracy, per the official code where there is one.

SEED-Bench, official: AILab-CVC/SEED-Bench eval.py (commit 991e849b of 2025-01-14; the file last changed in
77617150, 2023-08-16) and EVALUATION.md. The model is never asked for a letter: for each of the 4 choices it gives
the loss of generating the choice's text after the question ("answer ranking strategy following GPT-3"); the
prediction is the choice of LOWEST loss (torch.argsort(losses)[0]; `seed_choice_from_losses` takes the first of
tied lowest losses, which torch.argsort, not being stable, does not promise). Right when that letter equals the
record's answer letter. Accuracy per question_type_id and in total = all right / all questions (a micro average,
not the mean of the dimensions); eval.py's --task image keeps question types 1-9 (SEED_IMAGE_TYPES, the names from
SEED-Bench.json's "question_type"). eval.py prints x100; the values here are fractions. (As released, eval.py's
accuracy loop reads keys its records do not have, item['gt'] and item['q_type_id'], and indexes correct_counts of a
type with no right answer: it cannot run as is; the rule implemented is the one it clearly means.)
SEED-Bench conventions for generated text (`convention=`, the default "official" takes the letter of the likelihood
ranking):
  "lmms_eval" (EvolvingLMMs-Lab/lmms-eval at 75571cfe, lmms_eval/tasks/seedbench/utils.py, task seedbench): the
    response stripped, cut to its first character when longer; right when that character, lower-cased and stripped,
    equals the answer letter lower-cased ("B) cat" -> "B"; "The answer is B" -> "T", wrong). Metric seed_image =
    right / image questions.
  "vlmevalkit" (open-compass/VLMEvalKit at e8e78f05, SEEDBench_IMG: vlmeval/dataset/image_mcq.py ImageMCQDataset,
    vanilla (not circular) evaluation, judge 'exact_matching'; vlmeval/dataset/utils/multiple_choice.py
    extract_answer_from_item, eval_vanilla; vlmeval/utils/matching_util.py can_infer): the letter can_infer reads
    (`mmbench.infer_letter`, convention "official": the rules of our MMBench scorer), 'Z' when none; right when it
    equals the answer. report_acc: Overall and per category, plain means. With a model judge (VLMEvalKit's default
    for MCQ datasets), the responses can_infer cannot read go to it: `seed_correct(..., judge=, question=)` for
    one response, `mmbench.mmbench_judge_choices` for a task's rows (the task runner's letter mode), both by
    `mmbench.vlmevalkit_letter` (extract_answer_from_item: VLMEvalKit's default prompt, 3 tries, a random fallback).

RealWorldQA: the release (xai-org/RealWorldQA on Hugging Face: a parquet table of image, question, answer) ships NO
scoring code and the announcement (x.ai, Grok-1.5V) names no matching rule, only "easily verifiable" answers; its
questions end with their own instruction ("Please answer directly with only the letter of the correct option and
nothing else." for the lettered ones, a single word or number for the others). So there is no "official"
convention; two harnesses':
  "lmms_eval" (the default; lmms-eval at 75571cfe, lmms_eval/tasks/realworldqa/utils.py realworldqa_process_results,
    lmms_eval/tasks/_task_utils/mcq_extract.py extract_mcq_answer): answer = the record's answer stripped; when it
    is one of A, B, C, D (case-insensitive) the letter extract_mcq_answer reads from the response with choices
    A-D (`mmbench._mcq_extract`, the lmms-eval rules of our MMBench scorer) must equal it upper-cased; otherwise
    the response lower-cased, stripped, with trailing "." removed must equal the answer lower-cased. Metric
    exact_match = mean.
  "vlmevalkit" (VLMEvalKit at e8e78f05: RealWorldQA is an ImageMCQDataset like SEEDBench_IMG, the same can_infer
    rule over the TSV's option columns, and the same judge step when a judge is given). Accuracy = mean (report_acc
    Overall, and per category when given).
"""
from __future__ import annotations

import random
from collections.abc import Sequence

from mm1_jax.eval.judge import Judge
from mm1_jax.eval.scorers import mmbench

SEED_CONVENTIONS = ("official", "lmms_eval", "vlmevalkit")
REALWORLDQA_CONVENTIONS = ("lmms_eval", "vlmevalkit")
SEED_IMAGE_TYPES = {1: "Scene Understanding", 2: "Instance Identity", 3: "Instance Attributes",
                    4: "Instance Location", 5: "Instances Counting", 6: "Spatial Relation", 7: "Instance Interaction",
                    8: "Visual Reasoning", 9: "Text Understanding"}
_ABCD = ("A", "B", "C", "D")


def seed_choice_from_losses(losses: Sequence[float]) -> int:
    """eval.py's prediction: the index of the lowest loss of the choices (the first of equal lowest)."""
    losses = [float(x) for x in losses]
    if not losses:
        raise ValueError("seed_choice_from_losses: no losses")
    return losses.index(min(losses))


def seed_correct(prediction: str, answer: str, options: Sequence[str] = (), convention: str = "official", *,
                 judge: Judge | None = None, question: str = "", rng: random.Random | None = None,
                 task: str = "seed") -> bool:
    """Whether a SEED-Bench prediction is right: official, `prediction` is the letter of the likelihood ranking
    (compared exactly); lmms_eval / vlmevalkit, it is a generated response (see the module docstring). vlmevalkit
    with `judge`: a response can_infer cannot read is matched by the judge (`question`: the TSV's question column;
    `rng`: the random fallback's, random.Random(0) when None); JudgeError propagates. The other conventions have no
    judge step and ignore it."""
    if convention not in SEED_CONVENTIONS:
        raise ValueError(f"unknown SEED-Bench convention {convention!r}; known: {', '.join(SEED_CONVENTIONS)}")
    prediction, answer = str(prediction), str(answer)
    if convention == "official":
        return prediction == answer
    if convention == "lmms_eval":
        text = prediction.strip()
        if len(text) > 1:
            text = text[0]
        return text.lower().strip() == answer.lower().strip()
    letter = mmbench.vlmevalkit_letter(prediction, list(options), question, judge, rng=rng, task=task).letter
    return (letter or "Z") == answer


def seed_scores(correct: Sequence[bool], question_types: Sequence[int | str]) -> dict[str, float]:
    """"accuracy" (right / all) and one accuracy per question type, named from SEED_IMAGE_TYPES for ids 1-9 (else the
    type as given: VLMEvalKit's TSV gives the names)."""
    if len(correct) != len(question_types):
        raise ValueError(f"seed_scores: {len(correct)} results for {len(question_types)} question types")
    if not correct:
        raise ValueError("seed_scores: no questions to score")
    groups: dict[str, list[bool]] = {}
    for right, kind in zip(correct, question_types):
        key = SEED_IMAGE_TYPES.get(int(kind), str(kind)) if str(kind).isdigit() else str(kind)
        groups.setdefault(key, []).append(bool(right))
    out = {"accuracy": sum(map(bool, correct)) / len(correct)}
    out.update({k: sum(v) / len(v) for k, v in groups.items()})
    return out


def realworldqa_correct(prediction: str, answer: str, options: Sequence[str] = (), convention: str = "lmms_eval",
                        *, judge: Judge | None = None, question: str = "", rng: random.Random | None = None,
                        task: str = "realworldqa") -> bool:
    """Whether a RealWorldQA response is right under a harness's rule (the release has none; see the docstring).
    vlmevalkit with `judge`: as `seed_correct`'s (lmms_eval has no judge step and ignores it)."""
    if convention not in REALWORLDQA_CONVENTIONS:
        raise ValueError(f"unknown RealWorldQA convention {convention!r}; known: {', '.join(REALWORLDQA_CONVENTIONS)}"
                         f" (the release ships no scorer, so there is no 'official' one)")
    prediction, answer = str(prediction), str(answer)
    if convention == "vlmevalkit":
        letter = mmbench.vlmevalkit_letter(prediction, list(options), question, judge, rng=rng, task=task).letter
        return (letter or "Z") == answer
    gold = answer.strip()
    if gold.upper() in _ABCD:
        return mmbench._mcq_extract(prediction, list(_ABCD)) == gold.upper()  # pylint: disable=protected-access
    return prediction.lower().strip().rstrip(".") == gold.lower()


def realworldqa_scores(correct: Sequence[bool], categories: Sequence[str] | None = None) -> dict[str, float]:
    """"accuracy" = right / all (lmms-eval's exact_match mean, VLMEvalKit's Overall), and per category when given."""
    if not correct:
        raise ValueError("realworldqa_scores: no questions to score")
    out = {"accuracy": sum(map(bool, correct)) / len(correct)}
    if categories is not None:
        if len(categories) != len(correct):
            raise ValueError(f"realworldqa_scores: {len(correct)} results for {len(categories)} categories")
        groups: dict[str, list[bool]] = {}
        for right, name in zip(correct, categories):
            groups.setdefault(str(name), []).append(bool(right))
        out.update({k: sum(v) / len(v) for k, v in sorted(groups.items())})
    return out
