"""MM1.5-UI's benchmarks: Ferret-UI's elementary UI tasks (referring: OCR, icon recognition, widget classification;
grounding: find text, find icon, find widget, widget listing) on iPhone and Android screens, their averages Ref-i,
Ref-A, Grd-i, Grd-A as Ferret-UI's and MM1.5's tables print them, and Taperception's F1 (a public benchmark Ferret-UI
reports); Screen2Words and WidgetCaptions, captioning, are CIDEr (`mm1_jax.eval.metrics.cider`, the kind's "cider").
Whether MM1.5 reports these three public benchmarks is not confirmed by our sources; they are here because their
metrics are simple.

Contract as `mm1_jax.eval.scorers.multi_image`: `AGGREGATES[kind](items, predictions, convention, judge=None) ->
(scores (fractions), rows (one dict an item), details (with "convention"))`; the items are `readers.ui`'s.

What is confirmed, and from where:
  * apple/ml-ferret at 3c9e5c93 (2024-10-08, "ferretui release"), ferretui/: the task families and their names
    (train.py's data loaders set record["dataset"] to screen2words, widgetcaptions, taperception, widget_listing,
    ocr, find_text, icon_recognition, find_icons, widget_classification, find_widget, and the advanced
    detailed_description, conversation_perception, conversation_interaction, function; a data file's family is the
    first of them its path contains, in that order); which take a box in the question (eval/model_UI.py
    get_task_from_file: widgetcaptions, taperception, ocr, icon_recognition, widget_classification) and which answer
    with boxes (its comment: widget_listing, find_text, find_icons, find_widget, conversation_interaction); the
    record format (playground/sample_data/*.json); the box written in the question, "[x1, y1, x2, y2]" with each
    coordinate int(v * 1000 / side) (model_UI.py, VOCAB_IMAGE_W = VOCAB_IMAGE_H = 1000); answers in training always
    boxes (train.py: "Always output box in model reponse"); the gold answer of an eval record, its "label" field or
    else its second turn (model_UI.py); the answers shown in the release's training example: widget classification
    "Button", icon recognition "launch", OCR "Reminders, Don't forget. User Reminders" (the element's text).
  * ferretui/README.md: the four columns Ref-i, Ref-A, Grd-i, Grd-A (Ferret-UI-Gemma2b 82.75 / 80.80 / 72.21 /
    73.20, Ferret-UI-Llama8b 87.04 / 85.18 / 78.63 / 76.58); MM1.5's UI section compares MM1.5-UI 1B with
    Ferret-UI-13B on the same columns (Ref-i 90.0 vs 80.5, Grd-i 86.5 vs 79.4; a secondary source).
  * Not released: the evaluation records (only two examples of three and two records) and any scoring script; the
    paper's text on metrics was not reachable from here. Every rule below past the prompt is therefore OUR READING:
  * referring (ocr, icon_recognition, widget_classification): correct when the answer equals the gold text after
    `normalise` (case folded, white space collapsed, a trailing '.' dropped); accuracy per family. The gold labels
    are single words or the element's text, so exact match is the rule that needs no judge (the task brief's note
    that the paper scores referring by accuracy, OCR by exact match, is unconfirmed here).
  * find_text, find_icons, find_widget: the FIRST box of the answer (`mm1_jax.data.coordinates.parse_boxes`: a
    well-formed "[x1, y1, x2, y2]" on the 0-999 grid, back to pixels as (g + 0.5) * side / 1000, the coordinates
    module's rule; Ferret's RefCOCO scorer truncates int(g * side / 1000) instead) is a hit when its IoU with a gold
    box is >= 0.5 (IoU as Ferret's evaluators compute it: `refexp.box_iou`, MDETR's box_iou in float32; 0/0 is a
    miss). An answer without a parseable box is a miss, counted in details["no_box"].
  * widget_listing: the answer's (label, box) pairs, a pair's label the text before its box back to the previous
    box or the previous ',', ';', '.', ':', '!', '?' or line break (the gold pairs read the same way from the
    record's answer turn, its <bbox_locationK> standing for its K-th box). A predicted pair matches one unmatched
    gold pair of the same normalised label (any label when the gold one is empty) with IoU >= 0.5, the best IoU
    first, pairs in answer order. Per family: micro F1 over every pair of the family (2PR / (P + R), 0 when
    nothing matches); precision and recall in the details.
  * Ref-X / Grd-X: the unweighted mean of the family scores of platform X (i = iPhone, A = Android) present, as
    the paper's columns average the tasks; "accuracy" (the number a registered task reports) is the mean over
    every (platform, family) cell of the elementary families present: a task reading only iPhone's referring
    files reports Ref-i.
  * taperception (a binary tappability label per box): the gold and the answer read by `tappable` (a "no" /
    "not" / "untappable" word first: not tappable; else "yes" / "tappable" / "clickable": tappable; else unread);
    F1 with "tappable" the positive class (the metric Spotlight and Ferret-UI report for it, from memory: not
    confirmed by a source read here); an unread answer is wrong
    either way (a false negative on a tappable box, a false positive otherwise), counted in details.
"""
from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

from mm1_jax.data.coordinates import parse_boxes
from mm1_jax.eval.prompts import Item
from mm1_jax.eval.scorers.refexp import box_iou

REFERRING = ("ocr", "icon_recognition", "widget_classification")
GROUNDING = ("find_text", "find_icons", "find_widget", "widget_listing")
CAPTIONS = ("screen2words", "widgetcaptions")  # CIDEr
ELEMENTARY = REFERRING + GROUNDING
# train.py LazySupervisedDataset's elif chain: a file's family is the first of these its path contains
FILE_ORDER = ("screen2words", "widgetcaptions", "taperception", "widget_listing", "ocr", "find_text",
              "icon_recognition", "find_icons", "widget_classification", "find_widget", "detailed_description",
              "conversation_perception", "conversation_interaction", "function")
FAMILIES = ELEMENTARY + CAPTIONS + ("taperception",)  # the families read and scored here
BOX_IN = ("widgetcaptions", "taperception", "ocr", "icon_recognition", "widget_classification")  # model_UI.py
PLATFORMS = ("iphone", "android")
COLUMN = {"iphone": "i", "android": "a"}  # Ref-i, Ref-A: the paper's columns, as score keys ref_i, ref_a
THRESHOLD = 0.5
PLACEHOLDER = re.compile(r"<bbox_location(\d+)>")
_BRACKET = re.compile(r"\[[^\[\]]*\]")
_BREAK = re.compile(r"[,;.:!?\n]")

Box = Sequence[float]


def normalise(text: str) -> str:
    """An answer as compared: case folded, white space collapsed, one trailing '.' dropped (our rule)."""
    text = " ".join(str(text).split()).casefold()
    return text[:-1].rstrip() if text.endswith(".") else text


def referring_correct(prediction: str, answers: Sequence[str]) -> bool:
    """A referring answer (OCR, icon recognition, widget classification) equals a gold answer, normalised."""
    pred = normalise(prediction)
    return any(pred == normalise(a) for a in answers)


def label_before(segment: str) -> str:
    """The label a box (or <bbox_locationK>) gets: the text before it back to the last break (, ; . : ! ? or a
    line break), stripped, a leading "and " dropped."""
    tail = _BREAK.split(segment)[-1].strip()
    return tail[4:].strip() if tail.casefold().startswith("and ") else tail


def placeholder_labels(text: str) -> dict[int, str]:
    """{K: the label of <bbox_locationK>} of a gold answer turn (text since the previous placeholder)."""
    labels, previous = {}, 0
    for m in PLACEHOLDER.finditer(text):
        labels.setdefault(int(m.group(1)), label_before(text[previous:m.start()]))
        previous = m.end()
    return labels


def answer_boxes(prediction: str, width: float, height: float) -> list[tuple[str, list[float]]]:
    """(label, pixel box) of each bracket of an answer that reads as a box, in order; a bracket that is no box
    stays part of the text."""
    pairs, previous = [], 0
    for m in _BRACKET.finditer(prediction):
        boxes = parse_boxes(m.group(0), width, height)
        if not boxes:
            continue
        pairs.append((label_before(prediction[previous:m.start()]), [float(v) for v in boxes[0]]))
        previous = m.end()
    return pairs


def first_box(prediction: str, width: float, height: float) -> list[float] | None:
    """The first box of an answer in pixels, or None when it has none."""
    boxes = parse_boxes(prediction, width, height)
    return [float(v) for v in boxes[0]] if boxes else None


def _hit(iou: float) -> bool:
    return not math.isnan(iou) and iou >= THRESHOLD


def grounding_hit(prediction: str, gold: Sequence[Box], width: float, height: float) -> tuple[bool, Any]:
    """(hit, the first predicted pixel box or None): IoU >= 0.5 with any gold box."""
    box = first_box(prediction, width, height)
    return (box is not None and any(_hit(box_iou(box, g)) for g in gold)), box


def listing_matches(predicted: Sequence[tuple[str, Box]], gold: Sequence[tuple[str, Box]]) -> int:
    """How many predicted (label, box) pairs match a distinct gold pair: the same normalised label (any, when the
    gold label is empty) and IoU >= 0.5, each predicted pair in order taking the unmatched gold pair of best IoU."""
    used: set[int] = set()
    matched = 0
    for label, box in predicted:
        best, best_iou = None, -1.0
        for j, (gold_label, gold_box) in enumerate(gold):
            if j in used or (gold_label and normalise(gold_label) != normalise(label)):
                continue
            iou = box_iou(box, gold_box)
            if _hit(iou) and iou > best_iou:
                best, best_iou = j, iou
        if best is not None:
            used.add(best)
            matched += 1
    return matched


def f1(matched: int, predicted: int, gold: int) -> tuple[float, float, float]:
    """(precision, recall, F1) of `matched` out of `predicted` predictions and `gold` references; 0 where a
    denominator is 0."""
    precision = matched / predicted if predicted else 0.0
    recall = matched / gold if gold else 0.0
    return precision, recall, (2 * precision * recall / (precision + recall) if precision + recall else 0.0)


_NO = {"no", "not", "untappable", "unclickable", "non-tappable", "non-clickable"}
_YES = {"yes", "tappable", "clickable"}


def tappable(text: str) -> bool | None:
    """A tappability answer read as True / False, None when it says neither (our rule: a negative word wins)."""
    words = re.findall(r"[a-z]+(?:-[a-z]+)?", str(text).casefold())
    if any(w in _NO for w in words):
        return False
    if any(w in _YES for w in words):
        return True
    return None


def tap_f1(pairs: Sequence[tuple[bool, bool | None]]) -> tuple[float, float, float]:
    """(precision, recall, F1) of (gold, answer) tappability pairs, tappable the positive class; an unread answer
    (None) is wrong either way: a false negative on a tappable box, a false positive on another."""
    tp = sum(gold and said is True for gold, said in pairs)
    fp = sum((not gold) and said is not False for gold, said in pairs)
    fn = sum(gold and said is not True for gold, said in pairs)
    return f1(tp, tp + fp, tp + fn)


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else float("nan")


def ferret_ui_aggregate(items: Sequence[Item], predictions: Sequence[str], convention: str = "official",
                        judge: Any = None) -> tuple[dict[str, float], list[dict], dict[str, Any]]:
    """Every family's score per platform ("<family>_<platform>"), Ref-i / Ref-A / Grd-i / Grd-A ("ref_i", "ref_a",
    "grd_i", "grd_a", those with items), "accuracy" (the mean over the elementary cells present) and, with
    Taperception items, "f1" (their F1, pooled over platforms). Captioning families are left to CIDEr (counted in
    details["not_scored_here"])."""
    if len(items) != len(predictions):
        raise ValueError(f"ferret_ui: {len(items)} items but {len(predictions)} predictions.")
    cells: dict[tuple[str, str], list] = {}
    rows: list[dict] = []
    no_box = unread = 0
    captions = 0
    for item, prediction in zip(items, predictions):
        m = item.meta
        family, platform = m["family"], m.get("platform") or "unknown"
        text = str(prediction)
        row: dict[str, Any] = {}
        if family in REFERRING:
            row["correct"] = referring_correct(text, item.answers)
            cells.setdefault((platform, family), []).append(float(row["correct"]))
        elif family == "widget_listing":
            pairs = answer_boxes(text, m["width"], m["height"])
            gold = list(zip(m["labels"], m["boxes"]))
            matched = listing_matches(pairs, gold)
            row.update(matched=matched, predicted=len(pairs), gold=len(gold),
                       correct=matched == len(pairs) == len(gold))
            no_box += not pairs
            cells.setdefault((platform, family), []).append((matched, len(pairs), len(gold)))
        elif family in GROUNDING:
            hit, box = grounding_hit(text, m["boxes"], m["width"], m["height"])
            row.update(correct=hit, box=box)
            no_box += box is None
            cells.setdefault((platform, family), []).append(float(hit))
        elif family == "taperception":
            said, gold = tappable(text), m["tappable"]
            unread += said is None
            row.update(tappable=said, correct=said == gold)
            cells.setdefault((platform, family), []).append((gold, said))
        else:
            captions += 1
        rows.append(row)
    scores: dict[str, float] = {}
    table: dict[str, dict[str, Any]] = {}
    for (platform, family), values in sorted(cells.items()):
        if family == "widget_listing":
            precision, recall, value = f1(*(sum(v[k] for v in values) for k in range(3)))
            table.setdefault(platform, {})[family] = {"f1": value, "precision": precision, "recall": recall,
                                                      "items": len(values)}
        elif family == "taperception":
            precision, recall, value = tap_f1(values)
            table.setdefault(platform, {})[family] = {"f1": value, "precision": precision, "recall": recall,
                                                      "items": len(values)}
        else:
            value = _mean(values)
            table.setdefault(platform, {})[family] = {"accuracy": value, "items": len(values)}
        scores[f"{family}_{platform}"] = value
    for platform, column in COLUMN.items():
        for key, group in (("ref", REFERRING), ("grd", GROUNDING)):
            present = [scores[f"{f}_{platform}"] for f in group if (platform, f) in cells]
            if present:
                scores[f"{key}_{column}"] = _mean(present)
    elementary = [scores[f"{f}_{p}"] for (p, f) in cells if f in ELEMENTARY]
    if elementary:
        scores["accuracy"] = _mean(elementary)
    taps = [v for (p, f), vs in cells.items() if f == "taperception" for v in vs]
    if taps:
        scores["f1"] = tap_f1(taps)[2]
    details: dict[str, Any] = {"table": table, "no_box": no_box, "unread_tappability": unread,
                               "convention": "official"}
    if captions:
        details["not_scored_here"] = f"{captions} captioning items (screen2words / widgetcaptions: CIDEr)"
    if convention != "official":
        details["convention_note"] = f"{convention!r} has no rules of its own here: scored by the official rules"
    return scores, rows, details


AGGREGATES: dict[str, Any] = {"ferret_ui": ferret_ui_aggregate, "ferret_ui_taperception": ferret_ui_aggregate}
