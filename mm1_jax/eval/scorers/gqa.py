"""GQA's official scorer, read from the GQA release's eval.py (gqadataset.org, "evaluation code"), in the copy that
LLaVA's layout ships: SHI-Labs/VCoder playground/data/eval/gqa/data/eval/eval.py (commit 2f95684d).

What eval.py computes, over the questions whose "isBalanced" is true (the *_balanced_questions.json files are the
balanced subset; that every record there says so was not checked here, no data file being at hand):
  - accuracy: 1 if predicted == question["answer"], else 0: plain Python string equality, no normalisation at all
    (no lower-casing, no strip, no punctuation: 'Yes', 'yes.' and ' yes' are all wrong for 'yes'); averaged, x100;
  - binary / open: the same accuracy split by question["types"]["structural"]: "query" is open, anything else binary;
  - distribution: a chi-square between the gold and the predicted answer counts per question["groups"]["global"]
    group (groups that are None skipped), weighted by the group's size, divided by 100 (lower is better);
  - validity / plausibility: need the {tier}_choices.json file, which we do not read (eval.py itself says it is
    missing for testdev and then counts every answer as neither valid nor plausible);
  - consistency (--consistency): needs predictions for every entailed question of {tier}_all_questions.json;
  - grounding (--grounding): needs the model's attention maps and the scene graphs.
  accuracy, binary, open and distribution are implemented here (`gqa_scores`); the others are not.
Conventions for the per-question accuracy: "lmms_eval" (EvolvingLMMs-Lab/lmms-eval lmms_eval/tasks/gqa/gqa.yaml,
commit 75571cfe: metric exact_match with ignore_case and ignore_punctuation, i.e. lmms_eval/api/metrics.py
`exact_match_hf_evaluate`, on a prediction stripped by lmms_eval/api/task.py): lower-case, delete every
string.punctuation character, compare. "vlmevalkit" (open-compass/VLMEvalKit vlmeval/dataset/image_vqa.py sends GQA
to vlmeval/dataset/utils/vqa_eval.py `process_line(method='accuracy')`, commit e8e78f05): strip and lower-case both,
compare; the question's score is the mean over its answers (`hit_calculate`'s default branch).
"""

from __future__ import annotations

import string
from collections.abc import Mapping, Sequence
from typing import Any

GQA_CONVENTIONS = ("official", "lmms_eval", "vlmevalkit")
_DROP_PUNCTUATION = str.maketrans("", "", string.punctuation)


def _hf_exact_match_form(text: str) -> str:
    # exact_match_hf_evaluate works on numpy unicode arrays, which drop trailing NUL characters: at np.asarray, and
    # again after np.char.lower and np.char.translate (deleting punctuation can leave a NUL last)
    return text.rstrip("\x00").lower().rstrip("\x00").translate(_DROP_PUNCTUATION).rstrip("\x00")


def gqa_accuracy(prediction: str, answers: Sequence[str], convention: str = "official") -> float:
    """One GQA question's accuracy: 1.0 if the prediction equals the answer exactly (no normalisation), as the GQA
    release's eval.py scores it (`correct = (predicted == gold)`). GQA has one answer per question."""
    if convention not in GQA_CONVENTIONS:
        raise ValueError(f"gqa_accuracy: unknown convention {convention!r}; known: {', '.join(GQA_CONVENTIONS)}")
    if isinstance(answers, str):
        raise TypeError(f"gqa_accuracy: answers must be a sequence of strings, not one string ({answers!r})")
    if len(answers) == 0:
        raise ValueError("gqa_accuracy: a question has no answer")
    if convention == "official":
        return float(any(prediction == answer for answer in answers))
    if convention == "lmms_eval":
        pred = _hf_exact_match_form(prediction.strip())  # task.py strips the generation; the reference is not
        return float(any(pred == _hf_exact_match_form(answer) for answer in answers))
    pred = prediction.strip().lower()  # vlmevalkit
    return sum(answer.strip().lower() == pred for answer in answers) / len(answers)


def gqa_answer_type(question: Mapping[str, Any]) -> str:
    """'open' when the question's structural type is 'query', else 'binary' (eval.py's binary/open split)."""
    return "open" if question["types"]["structural"] == "query" else "binary"


def gqa_scores(predictions: Mapping[str, str], questions: Mapping[str, Mapping[str, Any]]) -> dict[str, float]:
    """eval.py's accuracy, binary, open (fractions in [0, 1]; eval.py prints them x100) and distribution over the
    balanced questions of a GQA questions file ({question_id: record}), with exact string matching. "distribution"
    is left out where eval.py would crash on it: a record without "groups", or no global group at all."""
    missing = [qid for qid, q in questions.items() if q["isBalanced"] and qid not in predictions]
    if missing:  # eval.py: "no prediction for question ..." then raise Exception("missing predictions")
        raise KeyError(f"gqa_scores: no prediction for {len(missing)} balanced question(s), e.g. {missing[0]!r}")
    scores: dict[str, list[float]] = {"accuracy": [], "binary": [], "open": []}
    gold: dict[Any, dict[str, int]] = {}
    predicted: dict[Any, dict[str, int]] = {}
    grouped = True
    for qid, question in questions.items():
        if not question["isBalanced"]:
            continue
        answer, prediction = question["answer"], predictions[qid]
        score = gqa_accuracy(prediction, [answer])
        scores["accuracy"].append(score)
        scores[gqa_answer_type(question)].append(score)
        group = question["groups"]["global"] if "groups" in question else None
        grouped = grouped and "groups" in question
        if group is not None:
            gold.setdefault(group, {}).setdefault(answer, 0)
            gold[group][answer] += 1
            predicted.setdefault(group, {}).setdefault(prediction, 0)
            predicted[group][prediction] += 1
    out = {k: (sum(v) / len(v) if v else 0.0) for k, v in scores.items()}  # eval.py's avg() of nothing is 0
    if grouped and gold:  # else eval.py raises (KeyError 'groups', or ZeroDivisionError in chiSquare)
        out["distribution"] = _chi_square(gold, predicted) / 100
    return out


def _chi_square(gold: Mapping[Any, Mapping[str, int]], predicted: Mapping[Any, Mapping[str, int]]) -> float:
    # eval.py's chiSquare: per group, sum over the GOLD answers of (o - e)^2 / e (answers only predicted are not
    # counted), weighted by the group's number of questions
    weighted, total = 0.0, 0
    for group, counts in gold.items():
        chi = sum(float(predicted.get(group, {}).get(a, 0) - e) ** 2 / e for a, e in counts.items())
        size = sum(counts.values())
        weighted += chi * size
        total += size
    return weighted / total
