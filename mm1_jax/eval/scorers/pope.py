"""POPE's official scorer (object-hallucination yes/no questions), and the lmms-eval and VLMEvalKit conventions.

Official: RUCAIBox/POPE evaluate.py (commit 3df3ba1b of 2024-03-25; the file is unchanged since the initial commit
f3ec6043). It scores ONE answer file against ONE label file (coco_pope_random.json, ..._popular.json or
..._adversarial.json), pairing them by position (README: "the order of POPE questions and the answer should be the
same"). Its rules:
  * the answer: keep the text before its first "." (when it has one); delete every ","; split on single spaces (not on
    white space: "No\\n" is not the word "No"); the answer is "no" when one of the words is exactly "No", "not" or
    "no", otherwise "yes" (so "NO", "Nope", "" and "I cannot tell" are all "yes");
  * the label: "no" is negative, ANY other label positive;
  * TP / FP / TN / FN with "yes" the positive class; accuracy = (TP + TN) / n; precision = TP / (TP + FP);
    recall = TP / (TP + FN); F1 = 2 P R / (P + R); yes_ratio = the fraction of PREDICTED "yes".
    evaluate.py divides without a guard (ZeroDivisionError when no "yes" is predicted, or no label is "yes"); we
    return nan for those.
  evaluate.py has no notion of an overall score across the three files: `pope_scores` gives each split's metrics
  ("<split>/<metric>"), those of all items together ("overall/<metric>") and the unweighted mean over the splits
  present ("mean/<metric>", how the MLLM papers, LLaVA-1.5 onwards, summarise POPE as one F1). Neither of the last
  two comes from evaluate.py.

Conventions (`convention=`):
  "lmms_eval" (EvolvingLMMs-Lab/lmms-eval at 75571cfe, lmms_eval/tasks/pope/utils.py; tasks pope, pope_adv, pope_pop,
    pope_random): prediction = response.lower().strip(), used as is (no yes/no parsing: "yes, there is" is neither);
    label = lower().strip(), must be yes / no. accuracy = mean(prediction == label); TP = label yes & prediction
    "yes", FP = label no & prediction "yes", FN = label yes & prediction "no" exactly; precision, recall, F1 are 0
    where their denominator is 0; yes_ratio is the fraction of LABELS that are "yes" (pope_aggregate_yes_ratio
    counts the ground truth, not the predictions).
  "vlmevalkit" (open-compass/VLMEvalKit at e8e78f05, vlmeval/dataset/image_yorn.py evaluate with judge
    'exact_matching', vlmeval/dataset/utils/yorn.py YOrN_Extraction and POPE_rating, vlmeval/smp/misc.py
    process_punctuation): extracted = "Yes" when, after lower-casing and process_punctuation, the white-space words
    include "yes" and not "no"; "No" when "no" and not "yes"; else "Unknown". score = (answer == extracted), answer
    as POPE.tsv spells it, "Yes" / "No" (the JSON release's lower-case "yes" / "no" are read as those: the same
    labels, spelled differently). y_true = answer == "Yes", y_pred = extracted == "Yes"; precision, recall, F1 with
    0 for a zero denominator; acc = mean(score). POPE_rating reports x100 and no yes ratio (none here either). A
    POPE.tsv row whose category lists several splits ("random,popular") counts once in each, and once per listed
    split in the Overall row (POPE_rating explodes the category).
All metrics here are fractions in [0, 1].
"""
from __future__ import annotations

import math
import re
from collections.abc import Sequence

from mm1_jax.eval.scorers.vqa import process_punctuation

CONVENTIONS = ("official", "lmms_eval", "vlmevalkit")
POPE_SPLITS = ("random", "popular", "adversarial")

_PERIOD_VLMEVALKIT = re.compile(r"(?<!\d)\.(?!\d)")  # vlmeval/smp/misc.py process_punctuation's period rule


def _check(convention: str) -> None:
    if convention not in CONVENTIONS:
        raise ValueError(f"unknown POPE convention {convention!r}; known: {', '.join(CONVENTIONS)}")


def vlmevalkit_yes_no(prediction: str) -> str:
    """VLMEvalKit's YOrN_Extraction (vlmeval/dataset/utils/yorn.py): 'Yes', 'No' or 'Unknown' from the lower-cased,
    punctuation-processed words of a response (exactly one of "yes" / "no" among them)."""
    words = process_punctuation(str(prediction).lower(), period=_PERIOD_VLMEVALKIT).split()
    if "yes" in words and "no" not in words:
        return "Yes"
    if "no" in words and "yes" not in words:
        return "No"
    return "Unknown"


def pope_answer(prediction: str, convention: str = "official") -> str:
    """The answer a convention reads from a response: official 'yes' / 'no' (evaluate.py's first-sentence word rule);
    lmms_eval the lower-cased, stripped response itself; vlmevalkit 'Yes' / 'No' / 'Unknown'."""
    _check(convention)
    prediction = str(prediction)
    if convention == "lmms_eval":
        return prediction.lower().strip()
    if convention == "vlmevalkit":
        return vlmevalkit_yes_no(prediction)
    text = prediction.split(".")[0] if "." in prediction else prediction
    words = text.replace(",", "").split(" ")
    return "no" if ("No" in words or "not" in words or "no" in words) else "yes"


def _ratio(num: int, den: int, guarded: bool) -> float:
    if den == 0:
        return 0.0 if guarded else float("nan")
    return num / den


def _f1(precision: float, recall: float, guarded: bool) -> float:
    if math.isnan(precision) or math.isnan(recall) or precision + recall == 0:
        return 0.0 if guarded and precision + recall == 0 else float("nan")
    return 2 * precision * recall / (precision + recall)


def pope_metrics(predictions: Sequence[str], labels: Sequence[str], convention: str = "official"
                 ) -> dict[str, float]:
    """accuracy, precision, recall, f1 and (not for vlmevalkit) yes_ratio of one set of POPE answers, paired with
    their labels by position, as `convention` computes them (see the module docstring)."""
    _check(convention)
    if isinstance(predictions, str) or isinstance(labels, str):
        raise TypeError("pope_metrics: predictions and labels are sequences of strings, not one string")
    if len(predictions) != len(labels):
        raise ValueError(f"pope_metrics: {len(predictions)} predictions for {len(labels)} labels")
    if not labels:
        raise ValueError("pope_metrics: no questions to score")
    answers = [pope_answer(p, convention) for p in predictions]
    if convention == "official":
        truth = [str(label) != "no" for label in labels]
        said = [a != "no" for a in answers]
        hits = [t == s for t, s in zip(truth, said)]
    elif convention == "lmms_eval":
        gold = [str(label).lower().strip() for label in labels]
        bad = sorted({g for g in gold if g not in ("yes", "no")})
        if bad:
            raise ValueError(f"pope_metrics (lmms_eval): labels must be yes / no, found {bad[:3]}")
        truth = [g == "yes" for g in gold]
        said = [a == "yes" for a in answers]
        hits = [a == g for a, g in zip(answers, gold)]
    else:
        gold = [{"yes": "Yes", "no": "No"}.get(str(label), str(label)) for label in labels]
        truth = [g == "Yes" for g in gold]
        said = [a == "Yes" for a in answers]
        hits = [a == g for a, g in zip(answers, gold)]
    tp = sum(t and s for t, s in zip(truth, said))
    fp = sum(s and not t for t, s in zip(truth, said))
    if convention == "lmms_eval":  # a false negative needs the prediction "no" itself
        fn = sum(t and a == "no" for t, a in zip(truth, answers))
    else:
        fn = sum(t and not s for t, s in zip(truth, said))
    guarded = convention != "official"
    precision, recall = _ratio(tp, tp + fp, guarded), _ratio(tp, tp + fn, guarded)
    out = {"accuracy": sum(hits) / len(hits), "precision": precision, "recall": recall,
           "f1": _f1(precision, recall, guarded)}
    if convention == "official":
        out["yes_ratio"] = sum(said) / len(said)
    elif convention == "lmms_eval":
        out["yes_ratio"] = sum(truth) / len(truth)
    return out


def _split_names(value: str | Sequence[str]) -> list[str]:
    if isinstance(value, str):
        return [s.strip() for s in value.split(",") if s.strip()]
    return [str(s) for s in value]


def pope_scores(predictions: Sequence[str], labels: Sequence[str], splits: Sequence[str | Sequence[str]],
                convention: str = "official") -> dict[str, float]:
    """POPE metrics per split ("<split>/<metric>"), over every (item, split) pair ("overall/<metric>") and the mean
    over the splits present ("mean/<metric>"). `splits`: each item's split, a name, a comma-separated list (POPE.tsv's
    category) or a list of names; items keep their order within a split (evaluate.py pairs by position)."""
    _check(convention)
    if not len(predictions) == len(labels) == len(splits):
        raise ValueError(f"pope_scores: {len(predictions)} predictions, {len(labels)} labels, {len(splits)} splits")
    by_split: dict[str, tuple[list[str], list[str]]] = {}
    everything: tuple[list[str], list[str]] = ([], [])
    for prediction, label, names in zip(predictions, labels, splits):
        names = _split_names(names)
        if not names:
            raise ValueError(f"pope_scores: an item has no split ({splits!r:.80})")
        for name in names:
            preds, golds = by_split.setdefault(name, ([], []))
            preds.append(prediction)
            golds.append(label)
            everything[0].append(prediction)
            everything[1].append(label)
    out: dict[str, float] = {}
    per_split = {}
    for name in sorted(by_split, key=lambda s: (POPE_SPLITS.index(s) if s in POPE_SPLITS else 99, s)):
        per_split[name] = pope_metrics(*by_split[name], convention=convention)
        out.update({f"{name}/{k}": v for k, v in per_split[name].items()})
    out.update({f"overall/{k}": v for k, v in pope_metrics(*everything, convention=convention).items()})
    for key in per_split[next(iter(per_split))]:
        out[f"mean/{key}"] = sum(m[key] for m in per_split.values()) / len(per_split)
    return out
