"""RefCOCO / RefCOCO+ / RefCOCOg with Ferret-style boxes: the official referring-expression scorer.

Read from apple/ml-ferret at 3c9e5c93 (2024-10-08): ferret/eval/eval_refexp.py (decode_bbox_from_caption, resize_bbox,
RefExpEvaluatorFromJsonl.summarize) and ferret/eval/model_refcoco.py (the prompt, the image size written out); its
IoU is misc.refcoco.box_ops.box_iou, a file missing from the repository: by its import and its (iou, union) return
it is MDETR's util/box_ops.py box_iou (ashkamath/mdetr), which we follow.
Rules (official):
  * Boxes: scan the text; '[' starts a box, ']' ends it; the text between is split on ',' and every piece read with
    int(); any piece that is not an integer (a float, a word, an empty piece) drops every box of the prediction
    (the ValueError is caught around the whole decode); fewer than 4 numbers raise an uncaught IndexError (the
    official script stops: we count that prediction as having no box); numbers past the 4th are ignored.
  * Grid -> pixels: int(v * (W * 1.0 / 1000)) (truncation), W, H the ORIGINAL image's size from the annotations.
  * No box: [0, 0, 0, 0]. Precision@1 (the number reported) scores the FIRST box; 'mean' the mean box; 'upper
    bound' the best box. Hit: IoU >= 0.5, IoU computed in float32: areas (x2-x1)*(y2-y1) unclamped, intersection
    clamped at 0, no +1 pixel; 0/0 is nan (a miss). Ground truth: COCO [x, y, w, h] -> [x, y, x + w, y + h].
Conventions: 'official' (above); 'lmms_eval' (EvolvingLMMs-Lab/lmms-eval at 75571cfe, lmms_eval/tasks/refcoco/
utils_rec.py, the refcoco_bbox_rec tasks: the first "[a, b, c, d]" of floats in [0, 1], else [0, 0, 0, 0]; float64
IoU, >= 0.5); 'vlmevalkit' (open-compass/VLMEvalKit at e8e78f05, vlmeval/dataset/refcoco.py: the first bracketed 4
numbers, else the first 4 numbers anywhere; scale guessed from the largest |value|: <= 1.5 fractions, <= 1000 a
0-1000 grid, else pixels; clipped to the image, inverted corners swapped; >= 0.5).
"""
from __future__ import annotations

import math
import re
from collections.abc import Sequence

import numpy as np

from mm1_jax.data import coordinates

CONVENTIONS = ("official", "lmms_eval", "vlmevalkit")
PICKS = ("first", "mean", "upper_bound")  # eval_refexp.py k = (1, 'mean', 'upper bound')
GRID = coordinates.GRID  # eval_refexp.py / model_refcoco.py VOCAB_IMAGE_W = VOCAB_IMAGE_H = 1000
THRESHOLD = 0.5

# ferret/eval/model_refcoco.py RefExpGrounding.question_prompt, "<obj>" = the expression with its commas removed;
# the conversation template is conv_templates['ferret_v1'] (ferret/conversation.py), whose system prompt is this:
FERRET_QUESTION = "What is the location of {} in the image?"
FERRET_SYSTEM = ("A chat between a human and an AI that understands visuals. In images, [x, y] denotes points: "
                 "top-left [0, 0], bottom-right [width-1, height-1]. Increasing x moves right; y moves down. "
                 "Bounding box: [x1, y1, x2, y2]. Image size: 1000x1000. Follow instructions. ")

Box = tuple[float, float, float, float]


def _check(convention: str) -> None:
    if convention not in CONVENTIONS:
        raise ValueError(f"unknown RefCOCO convention {convention!r}; known: {', '.join(CONVENTIONS)}")


def ferret_question(expression: str) -> str:
    """Ferret's RefCOCO grounding question for one expression (ferret/eval/model_refcoco.py: remove_punctuation
    drops ',' and strips, then fills question_prompt)."""
    return FERRET_QUESTION.format(expression.replace(",", "").strip())


def decode_ferret(text: str) -> list[tuple[str, tuple[int, ...]]]:
    """(entity text, the box's first four integers) of each bracket of a generated text, as ml-ferret's
    decode_bbox_from_caption scans it (eval_refexp.py, eval_flickr_entities.py: the same scan): after a box the entity
    text restarts only past a delimiter (. , ; ! ?); [] when the official decoder fails (a non-integer piece:
    ValueError; under 4 numbers: its uncaught IndexError). Each bracket's numbers are read as
    `coordinates.read_integers` reads them (int() per comma-separated piece), the syntax's one owner."""
    pairs: list[tuple[str, tuple[int, ...]]] = []
    start, entity = 0, ""
    for i, char in enumerate(text):
        if char == "[":
            entity = text[start:i].strip()  # empty when a box's delimiter search ran past this '['
            start = i + 1
        elif char == "]":
            piece = text[start:i].strip()
            start = i + 1
            try:
                numbers = coordinates.read_integers(piece)
            except ValueError:
                return []
            if len(numbers) < 4:
                return []
            pairs.append((entity, tuple(numbers[:4])))
            while start < len(text) and text[start] not in ".,;!?":
                start += 1
            start += 1
    return pairs


def parse_ferret_boxes(text: str) -> list[Box]:
    """Every box of a generated text in grid coordinates, as eval_refexp.py decode_bbox_from_caption reads them;
    [] when the official decoder fails (`decode_ferret`)."""
    return [tuple(float(v) for v in box) for _, box in decode_ferret(text)]


def parse_ferret_box(text: str) -> Box | None:
    """The first box of a generated text in 0-999 grid coordinates (the one Precision@1 scores), or None
    (ferret/eval/eval_refexp.py decode_bbox_from_caption)."""
    boxes = parse_ferret_boxes(text)
    return boxes[0] if boxes else None


def ferret_box_to_pixels(box: Sequence[float], width: float, height: float) -> tuple[int, int, int, int]:
    """A grid box in pixels of the original image: int(v * (side / 1000)), truncated (eval_refexp.py resize_bbox)."""
    ratio_w, ratio_h = width * 1.0 / GRID, height * 1.0 / GRID
    return int(box[0] * ratio_w), int(box[1] * ratio_h), int(box[2] * ratio_w), int(box[3] * ratio_h)


def box_iou(a: Sequence[float], b: Sequence[float]) -> float:
    """IoU of two (x1, y1, x2, y2) boxes as MDETR's util/box_ops.py box_iou computes it for Ferret: float32,
    continuous (no +1), areas not clamped, the intersection clamped at 0; nan when the union is 0."""
    p, q = np.asarray(a, dtype=np.float32), np.asarray(b, dtype=np.float32)
    area_p = (p[2] - p[0]) * (p[3] - p[1])
    area_q = (q[2] - q[0]) * (q[3] - q[1])
    w = np.maximum(np.minimum(p[2], q[2]) - np.maximum(p[0], q[0]), np.float32(0))
    h = np.maximum(np.minimum(p[3], q[3]) - np.maximum(p[1], q[1]), np.float32(0))
    inter = w * h
    union = area_p + area_q - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(inter / union)


def _float_iou(a: Sequence[float], b: Sequence[float]) -> float:
    """lmms_eval/tasks/refcoco/utils_rec.py compute_iou (float64; its 0 union raises, here nan)."""
    inter = max(0, min(a[2], b[2]) - max(a[0], b[0])) * max(0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union else float("nan")


_LMMS_BOX = re.compile(r"\[\s*(-?\d+(?:\.\d+)?),\s*(-?\d+(?:\.\d+)?),\s*(-?\d+(?:\.\d+)?),\s*(-?\d+(?:\.\d+)?)\s*\]")
_VLM_NUMBER = r"[-+]?\d*\.?\d+(?:[eE][-+]?\d+)?"
_VLM_SEP = r"(?:\s*,\s*|\s+)"
_VLM_BOX = re.compile(rf"\[\s*({_VLM_NUMBER}){_VLM_SEP}({_VLM_NUMBER}){_VLM_SEP}({_VLM_NUMBER}){_VLM_SEP}"
                      rf"({_VLM_NUMBER})\s*\]")


def _vlmevalkit_box(text: str, width: float, height: float) -> list[float] | None:
    """vlmeval/dataset/refcoco.py RefCOCODataset._parse_prediction then _to_absolute."""
    coords = None
    for match in _VLM_BOX.finditer(text):
        values = [float(match.group(i)) for i in range(1, 5)]
        if not any(math.isnan(v) for v in values):
            coords = values
            break
    if coords is None:
        numbers = re.findall(_VLM_NUMBER, text)
        if len(numbers) < 4:
            return None
        coords = [float(v) for v in numbers[:4]]
    if any(math.isnan(v) for v in coords) or width <= 0 or height <= 0:
        return None
    biggest = max(abs(v) for v in coords)
    if biggest <= 1.5:
        coords = [coords[0] * width, coords[1] * height, coords[2] * width, coords[3] * height]
    elif biggest <= 1000:
        coords = [coords[0] / 1000.0 * width, coords[1] / 1000.0 * height, coords[2] / 1000.0 * width,
                  coords[3] / 1000.0 * height]
    x1, x2 = (min(max(v, 0.0), width) for v in (coords[0], coords[2]))
    y1, y2 = (min(max(v, 0.0), height) for v in (coords[1], coords[3]))
    return [min(x1, x2), min(y1, y2), max(x1, x2), max(y1, y2)]


def _vlmevalkit_iou(a: Sequence[float], b: Sequence[float]) -> float:
    """vlmeval/dataset/refcoco.py RefCOCODataset._compute_iou."""
    left, top, right, bottom = max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3])
    if right <= left or bottom <= top:
        return 0.0
    inter = (right - left) * (bottom - top)
    union = max(a[2] - a[0], 0) * max(a[3] - a[1], 0) + max(b[2] - b[0], 0) * max(b[3] - b[1], 0) - inter
    return inter / union if union > 0 else 0.0


def refexp_iou(prediction: str, gt_box_pixels: Sequence[float], width: float, height: float,
               convention: str = "official", pick: str = "first") -> float:
    """The IoU a convention scores a prediction with against the pixel box (x1, y1, x2, y2) of an image of the
    given original size. `pick` (official only): which of Ferret's predicted boxes ('first' = Precision@1)."""
    _check(convention)
    if pick not in PICKS:
        raise ValueError(f"pick={pick!r}: known {', '.join(PICKS)}")
    if convention == "lmms_eval":
        found = _LMMS_BOX.search(prediction)
        pred = [float(found.group(i)) for i in range(1, 5)] if found else [0.0, 0.0, 0.0, 0.0]
        gt = [gt_box_pixels[0] / width, gt_box_pixels[1] / height, gt_box_pixels[2] / width,
              gt_box_pixels[3] / height]
        return _float_iou(gt, pred)
    if convention == "vlmevalkit":
        pred = _vlmevalkit_box(prediction, width, height)
        return 0.0 if pred is None else _vlmevalkit_iou(pred, gt_box_pixels)
    boxes = [ferret_box_to_pixels(b, width, height) for b in parse_ferret_boxes(prediction)] or [(0, 0, 0, 0)]
    if pick == "mean":
        return box_iou(np.asarray(boxes, dtype=np.float32).mean(axis=0, dtype=np.float32), gt_box_pixels)
    ious = [box_iou(b, gt_box_pixels) for b in boxes]
    return ious[0] if pick == "first" else max(ious)  # Python's max, as summarize's: a leading nan stays


def refexp_correct(prediction: str, gt_box_pixels: Sequence[float], width: float, height: float,
                   convention: str = "official", pick: str = "first") -> bool:
    """Whether a generated grounding answer hits the pixel box (x1, y1, x2, y2): IoU >= 0.5 under `convention`
    (official: ferret/eval/eval_refexp.py Precision@1; nan, from a 0 union, is a miss)."""
    return refexp_iou(prediction, gt_box_pixels, width, height, convention, pick) >= THRESHOLD
