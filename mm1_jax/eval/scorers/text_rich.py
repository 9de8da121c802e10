"""The official per-question scorers of the text-rich benchmarks: ANLS (DocVQA, InfographicVQA) and ChartQA's relaxed
accuracy, read from the benchmarks' own evaluation code; `convention` names a harness that scores differently.

ANLS (DocVQA, InfographicVQA). Official: the Robust Reading Competition's script, downloadable from docvqa.org and
rrc.cvc.uab.es/?ch=17 (the DocVQA challenge), read in the copy whose header names that download: QwenLM/Qwen-VL
eval_mm/infographicsvqa_eval.py (commit aa00ed04), `evaluate_method`:
  - both strings are folded: strip, lower-case, runs of white space to one space;
  - NL = levenshtein(folded answer, folded prediction) / max(len(answer.upper()), len(prediction.upper())), the
    lengths of the RAW strings (not the folded ones; str.upper can lengthen, 'ß' -> 'SS'); NL = 0 when that max is 0;
  - the question's score is s = 1 - min over the answers of NL, set to 0 when s < threshold (0.5). The threshold is
    on the similarity: NL exactly 0.5 scores 0.5, where the ST-VQA paper's rule (NL < 0.5, arXiv 1905.13648) gives 0;
  - an empty prediction is not special-cased; no answers at all is an error (min of nothing).
  The script for DocVQA Task 1 itself was not found in public code; it is the same challenge (ch=17), and Qwen-VL
  scores its docvqa_val with this script.
  Conventions: "vlmevalkit" (open-compass/VLMEvalKit vlmeval/dataset/utils/vqa_eval.py `anls_compute` +
  `hit_calculate`, commit e8e78f05): the same rule, the same numbers. "lmms_eval" (EvolvingLMMs-Lab/lmms-eval
  lmms_eval/api/metrics.py `anls`, commit 75571cfe): the same rule on a prediction stripped first by
  lmms_eval/api/task.py `process_results`, so a padded prediction's length shrinks. "pix2struct"
  (google-research/pix2struct pix2struct/metrics.py `anls_metric` under `aggregate_metrics` with v.lower(), commit
  945f27e9): lower-case only (no strip, no white-space folding), NL over the lengths of those strings, per answer
  1 - NL if NL < threshold else 0, max over the answers; divides by zero when both strings are empty.
  "anls_package" (PyPI anls 0.0.2 = shunk031/ANLS anls/metrics/score.py, commit 6472e1d7): folded as the RRC, NL
  over the FOLDED lengths, per answer 1 - NL if NL < threshold else 0, max over the answers.

ChartQA relaxed accuracy. The ChartQA release (vis-nlp/ChartQA) ships no relaxed-accuracy scorer: its
Models/T5/README.md says the repository's metric is exact accuracy and the paper's relaxed accuracy must be computed
separately. The code that ChartQA numbers are computed with is Pix2Struct's, taken as official here:
google-research/pix2struct pix2struct/metrics.py `relaxed_correctness` under `aggregate_metrics` (identity
normalisation), commit 945f27e9:
  - a string is a number if float() takes it (Python's float: surrounding white space, '1e3', '1_000', 'nan' are
    numbers; '1,000' is not); one ending in '%' is float(text.rstrip('%')) / 100, so '12%' is 0.12 and '12%%' too;
  - when the prediction is a number and the target a non-zero number: correct iff |p - t| / |t| <= 0.05;
  - otherwise (either not a number, or a zero target): prediction.lower() == target.lower(), nothing stripped;
  - the question's score is the max over its targets (ChartQA has one).
  Conventions: "lmms_eval" (lmms_eval/tasks/chartqa/utils.py `relaxed_correctness`, with the prediction stripped by
  lmms_eval/api/task.py) and "vlmevalkit" (vqa_eval.py `process_line(method='relaxed_accuracy')`, which strips the
  prediction, then `relaxed_correctness`, max over the answers in `hit_calculate`): Pix2Struct's rule on
  prediction.strip().
"""

from __future__ import annotations

from collections.abc import Sequence

ANLS_CONVENTIONS = ("official", "lmms_eval", "vlmevalkit", "pix2struct", "anls_package")
RELAXED_CONVENTIONS = ("official", "lmms_eval", "vlmevalkit")


def _check(convention: str, known: Sequence[str], scorer: str) -> None:
    if convention not in known:
        raise ValueError(f"{scorer}: unknown convention {convention!r}; known: {', '.join(known)}")


def _check_answers(answers: Sequence[str], scorer: str) -> None:
    if isinstance(answers, str):
        raise TypeError(f"{scorer}: answers must be a sequence of strings, not one string ({answers!r})")
    if len(answers) == 0:
        raise ValueError(f"{scorer}: a question has no answers (the official scorer fails on it too)")


def levenshtein(a: str, b: str) -> int:
    """Edit distance with unit costs (insert, delete, substitute one character), as every ANLS script computes it."""
    if len(a) < len(b):
        a, b = b, a
    row = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        diagonal, row[0] = row[0], i
        for j, cb in enumerate(b, 1):
            diagonal, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, diagonal + (ca != cb))
    return row[-1]


def fold(text: str) -> str:
    """The RRC ANLS script's normalisation: strip, lower-case, white-space runs to one space (Qwen-VL
    eval_mm/infographicsvqa_eval.py)."""
    return " ".join(text.strip().lower().split())


def rrc_normalized_distance(answer: str, prediction: str) -> float:
    """The RRC script's NL: distance of the folded strings over the longer RAW string's len(s.upper()), 0 if both
    are empty (Qwen-VL eval_mm/infographicsvqa_eval.py, `evaluate_method`)."""
    length = max(len(answer.upper()), len(prediction.upper()))
    return 0.0 if length == 0 else float(levenshtein(fold(answer), fold(prediction))) / float(length)


def anls(prediction: str, answers: Sequence[str], threshold: float = 0.5, convention: str = "official") -> float:
    """One question's ANLS (DocVQA, InfographicVQA): 1 - min NL over the answers, 0 below `threshold`, as the RRC's
    script (QwenLM/Qwen-VL eval_mm/infographicsvqa_eval.py) computes it; other conventions in the module docstring."""
    _check(convention, ANLS_CONVENTIONS, "anls")
    _check_answers(answers, "anls")
    if convention in ("official", "vlmevalkit", "lmms_eval"):
        if convention == "lmms_eval":
            prediction = prediction.strip()  # lmms_eval/api/task.py strips every generated answer
        score = 1 - min(rrc_normalized_distance(answer, prediction) for answer in answers)
        return 0.0 if score < threshold else score
    best = 0.0
    for answer in answers:
        if convention == "pix2struct":  # aggregate_metrics(normalize_fn=lambda v: v.lower()) then anls_metric
            target, pred = answer.lower(), prediction.lower()
            longest = max(len(target), len(pred))
            if longest == 0:
                raise ValueError("anls(convention='pix2struct'): pix2struct's anls_metric divides by zero when the "
                                 "prediction and an answer are both empty")
            distance = levenshtein(target, pred) / longest
        else:  # anls_package: anls.anls_score -> similatiry_function -> normalized_levenshtein_distance
            target, pred = fold(answer), fold(prediction)
            longest = max(len(pred.upper()), len(target.upper()))
            distance = 0.0 if longest == 0 else levenshtein(pred, target) / longest
        best = max(best, 1 - distance if distance < threshold else 0.0)
    return best


def chartqa_number(text: str) -> float | None:
    """Pix2Struct's `_to_float`: float(text), or float(text.rstrip('%')) / 100 when it ends in '%'; None if float()
    refuses (google-research/pix2struct pix2struct/metrics.py)."""
    try:
        return float(text.rstrip("%")) / 100.0 if text.endswith("%") else float(text)
    except ValueError:
        return None


def relaxed_correct(target: str, prediction: str, tolerance: float = 0.05) -> bool:
    """Pix2Struct's `relaxed_correctness` for one target: within `tolerance` relative error of a non-zero numeric
    target, else case-insensitive string equality (google-research/pix2struct pix2struct/metrics.py)."""
    pred, truth = chartqa_number(prediction), chartqa_number(target)
    if pred is not None and truth:  # a zero (or absent) target number falls to the string comparison
        return abs(pred - truth) / abs(truth) <= tolerance
    return prediction.lower() == target.lower()


def relaxed_accuracy(prediction: str, answers: Sequence[str], tolerance: float = 0.05,
                     convention: str = "official") -> float:
    """One question's ChartQA relaxed accuracy: 1.0 if any answer is relaxed-correct, as Pix2Struct's
    `relaxed_correctness` + `aggregate_metrics` (google-research/pix2struct pix2struct/metrics.py) score it."""
    _check(convention, RELAXED_CONVENTIONS, "relaxed_accuracy")
    _check_answers(answers, "relaxed_accuracy")
    if convention != "official":
        prediction = prediction.strip()  # lmms-eval's task.py and VLMEvalKit's process_line both strip it
    return float(any(relaxed_correct(answer, prediction, tolerance) for answer in answers))
