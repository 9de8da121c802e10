"""MME's official scorer (14 yes/no subtasks, two questions per image), and the lmms-eval and VLMEvalKit conventions.

Official: the MME release's eval_tool/calculation.py, distributed as tools/eval_tool.zip on the Evaluation branch of
BradyFU/Awesome-Multimodal-Large-Language-Models (commit dd295090 of 2024-11-26), with its readme.txt. A results
file per subtask holds one line per question, "image \\t question \\t ground truth \\t response", the two questions of
an image on consecutive lines. Its rules:
  * the response: lower-cased (NOT stripped); "yes" or "no" exactly is that answer; otherwise its first 4 characters
    decide: "yes" among them -> yes, else "no" among them -> no, else "other" (always wrong). So "No, ..." and
    "not ..." and "none" are no, " yes" is yes but "  yes" (two spaces) is other, "Yes" is yes, "Y" is other.
    (The response is the line's last field, so it still ends in "\\n"; the 4-character rule answers the same.)
  * the ground truth is lower-cased and must be yes / no (an assert).
  * per subtask: acc = correct questions / questions (sklearn accuracy_score, "other" never equals a label);
    acc+ = images with both questions right / images, the images being consecutive PAIRS of lines (an odd count
    fails its assert); score = 100 * acc + 100 * acc+, so at most 200.
  * perception = the sum of the scores of existence, count, position, color, posters, celebrity, scene, landmark,
    artwork, OCR (at most 2000); cognition = the sum over commonsense_reasoning, numerical_calculation,
    text_translation, code_reasoning (at most 800). The script needs all 14 results files; a category total here
    is left out unless all its subtasks are present. (It also computes TP / FN / precision / recall over the
    non-"other" answers, which enter no score; they are not computed here.)
Conventions (`convention=`):
  "lmms_eval" (EvolvingLMMs-Lab/lmms-eval at 75571cfe, lmms_eval/tasks/mme/utils.py, "Brought from Otter Eval"): the
    response is lower-cased, stripped and its "." deleted; "yes" / "no" exactly; a one-letter response "y" / "n" is
    yes / no (other letters: other); else the 4-character rule. The ground truth is treated the same way. Questions
    are grouped by question_id (the image; exactly 2 each, asserted) within a category; a category's score is the
    mean over its images of (100 * share right + 100 * both right); perception sums the perception categories
    present, cognition every other category present.
  "vlmevalkit" (open-compass/VLMEvalKit at e8e78f05, vlmeval/dataset/image_yorn.py with judge 'exact_matching',
    vlmeval/dataset/utils/yorn.py YOrN_Extraction and MME_rating): extracted = 'Yes' / 'No' / 'Unknown' (exactly one
    of the words yes / no after lower-casing and process_punctuation; see `pope.vlmevalkit_yes_no`); right when the
    TSV's answer ('Yes' / 'No', compared exactly) equals it. Grouped by image_path within a category: acc = mean over
    the questions, acc+ = mean over images of right(first) * right(second) (questions past the second of an image
    are in acc only; an image with one question fails there); score = 100 * acc + 100 * acc+; perception (the same 10
    subtasks) and cognition (VLMEvalKit's "reasoning", the same 4) need all their subtasks.
"""
from __future__ import annotations

from collections.abc import Sequence

from mm1_jax.eval.scorers.pope import vlmevalkit_yes_no

CONVENTIONS = ("official", "lmms_eval", "vlmevalkit")
MME_PERCEPTION = ("existence", "count", "position", "color", "posters", "celebrity", "scene", "landmark", "artwork",
                  "OCR")
MME_COGNITION = ("commonsense_reasoning", "numerical_calculation", "text_translation", "code_reasoning")
MME_SUBTASKS = MME_PERCEPTION + MME_COGNITION


def _check(convention: str) -> None:
    if convention not in CONVENTIONS:
        raise ValueError(f"unknown MME convention {convention!r}; known: {', '.join(CONVENTIONS)}")


def _four_characters(text: str) -> str:
    head = text[:4]
    return "yes" if "yes" in head else "no" if "no" in head else "other"


def mme_answer(prediction: str, convention: str = "official") -> str:
    """The answer a convention reads from a response: 'yes' / 'no' / 'other' (official, lmms_eval), or VLMEvalKit's
    'Yes' / 'No' / 'Unknown'."""
    _check(convention)
    prediction = str(prediction)
    if convention == "vlmevalkit":
        return vlmevalkit_yes_no(prediction)
    if convention == "official":
        text = prediction.lower()
        return text if text in ("yes", "no") else _four_characters(text)
    text = prediction.lower().strip().replace(".", "")
    if text in ("yes", "no"):
        return text
    if len(text) == 1:
        return {"y": "yes", "n": "no"}.get(text, "other")
    return _four_characters(text)


def mme_correct(prediction: str, answer: str, convention: str = "official") -> bool:
    """Whether a response answers an MME question right under `convention`; `answer` is the release's Yes / No."""
    _check(convention)
    answer = str(answer)
    if convention == "vlmevalkit":
        return mme_answer(prediction, convention) == answer
    gold = answer.lower() if convention == "official" else answer.lower().strip().replace(".", "")
    if gold not in ("yes", "no"):
        raise ValueError(f"MME ground truth {answer!r} is not yes / no")
    return mme_answer(prediction, convention) == gold


def _official_subtask(right: list[bool], images: list[str] | None, name: str) -> tuple[float, float]:
    if len(right) % 2:
        raise ValueError(f"MME subtask {name!r} has {len(right)} questions; the official scorer pairs two per image")
    pairs = [right[i:i + 2] for i in range(0, len(right), 2)]
    if images is not None:
        for i in range(0, len(images), 2):
            if images[i] != images[i + 1]:
                raise ValueError(f"MME subtask {name!r}: questions {i} and {i + 1} are of different images "
                                 f"({images[i]!r}, {images[i + 1]!r}); the two questions of an image must be "
                                 f"consecutive")
    return 100 * sum(right) / len(right), 100 * sum(all(p) for p in pairs) / len(pairs)


def _grouped(right: list[bool], images: list[str] | None, name: str) -> dict[str, list[bool]]:
    if images is None:
        raise ValueError(f"MME subtask {name!r}: this convention groups questions by image; pass images=")
    groups: dict[str, list[bool]] = {}
    for r, image in zip(right, images):
        groups.setdefault(image, []).append(r)
    return groups


def mme_scores(predictions: Sequence[str], answers: Sequence[str], categories: Sequence[str],
               images: Sequence[str] | None = None, convention: str = "official") -> dict[str, float]:
    """MME scores: "<subtask>" (acc + acc+, in points), "<subtask>/acc", "<subtask>/acc_plus" (percent), and
    "perception" / "cognition" (sums of subtask scores) as `convention` computes them. Questions are given in order
    with their subtask (`categories`) and, for lmms_eval and vlmevalkit (and as a check for official), their image:
    the official scorer pairs CONSECUTIVE questions of a subtask."""
    _check(convention)
    n = len(predictions)
    if len(answers) != n or len(categories) != n or (images is not None and len(images) != n):
        raise ValueError("mme_scores: predictions, answers, categories (and images) must have the same length")
    if n == 0:
        raise ValueError("mme_scores: no questions to score")
    rows: dict[str, tuple[list[bool], list[str]]] = {}
    for j in range(n):
        right, where = rows.setdefault(str(categories[j]), ([], []))
        right.append(mme_correct(predictions[j], answers[j], convention))
        where.append(str(images[j]) if images is not None else "")
    out: dict[str, float] = {}
    for name, (right, where) in rows.items():
        pictures = where if images is not None else None
        if convention == "official":
            acc, acc_plus = _official_subtask(right, pictures, name)
            score = acc + acc_plus
        elif convention == "lmms_eval":
            groups = _grouped(right, pictures, name)
            bad = [k for k, v in groups.items() if len(v) != 2]
            if bad:
                raise ValueError(f"MME subtask {name!r}: image {bad[0]!r} has {len(groups[bad[0]])} questions; "
                                 f"lmms-eval asserts 2 ('MME only supports pairwise evaluation')")
            acc = sum(100 * sum(v) / 2 for v in groups.values()) / len(groups)
            acc_plus = sum(100.0 * all(v) for v in groups.values()) / len(groups)
            score = acc + acc_plus
        else:
            groups = _grouped(right, pictures, name)
            short = [k for k, v in groups.items() if len(v) < 2]
            if short:
                raise ValueError(f"MME subtask {name!r}: image {short[0]!r} has one question; VLMEvalKit's acc+ "
                                 f"multiplies the first two")
            acc = 100 * sum(right) / len(right)
            acc_plus = 100 * sum(v[0] and v[1] for v in groups.values()) / len(groups)
            score = acc + acc_plus
        out.update({name: score, f"{name}/acc": acc, f"{name}/acc_plus": acc_plus})
    for total, members in (("perception", MME_PERCEPTION), ("cognition", MME_COGNITION)):
        if convention == "lmms_eval":
            present = [c for c in rows if (c in MME_PERCEPTION) == (total == "perception")]
            if present:
                out[total] = sum(out[c] for c in present)
        elif all(c in rows for c in members):
            out[total] = sum(out[c] for c in members)
    return out
