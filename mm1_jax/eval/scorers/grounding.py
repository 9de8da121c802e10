"""MM1.5's Refer & Ground benchmarks scored as Ferret scores them: Flickr30k Entities phrase grounding (recall@1 at
IoU 0.5) and LVIS-Ref, Ferret's referring object classification (accuracy).

Read from apple/ml-ferret at 3c9e5c93 (2024-10-08; the four files are unchanged since the first code commit 5fc7ff83):
ferret/eval/model_flickr.py + eval_flickr_entities.py (Flickr30k Entities), ferret/eval/model_lvis.py + eval_lvis.py
(LVIS), EVAL.md (each benchmark: run model_X.py, then eval_X.py). The Flickr evaluator is MDETR's
(ashkamath/mdetr at ea09acc4, datasets/flickr_eval.py: get_sentence_data, get_annotations, box_iou, _merge_boxes,
RecallTracker, Flickr30kEntitiesRecallEvaluator) with a JSON-lines front end of Ferret's.

Flickr30k Entities, official rules (eval_flickr_entities.py Flickr30kEntitiesRecallEvaluatorFromJsonl):
  * Prompt (model_flickr.py FlickrGrounding): "What are the locations of <objs>?", <objs> = the sentence's phrases
    that have boxes (MDETR's tokens_positive_eval, in sentence order, a repeated phrase repeated), each lower-cased,
    its ',' deleted and stripped, joined with ", ". The conversation is conv_templates['ferret_v1'] (the system prompt
    `refexp.FERRET_SYSTEM`: "... Image size: 1000x1000 ...").
  * Answer -> (entity, box) pairs (decode_bbox_from_caption): scan the text; '[' ends an entity (the text since the
    last restart, stripped) and starts a box; ']' ends the box, split on ',' and read with int(); after a box the
    entity text restarts after the next '.', ',', ';', '!' or '?' (so "a man [1, 2, 3, 4], a dog [5, 6, 7, 8]" gives
    "a man" and "a dog", while without a delimiter the next box's entity is empty). A piece that is not an integer
    drops every pair of the answer (its ValueError is caught around the decode); a box of under 4 numbers raises an
    uncaught IndexError in resize_bbox (the script stops: here, no pair); numbers past the 4th are ignored.
  * Grid -> pixels: int(v * (W * 1.0 / 1000)) per coordinate (truncation, `refexp.ferret_box_to_pixels`), W, H the
    original image's size; never clipped (a coordinate past 999 or below 0 stays out of the image).
  * A phrase's predicted boxes: those of every decoded entity that are_phrases_similar to the phrase (lower-cased,
    spaces around ' " , . ; ! ? | : normalised, every non-word non-space character deleted, whitespace collapsed,
    then equal), in answer order; none -> one box [0, 0, 0, 0].
  * Ground truth: the release's Annotations XML (MDETR's get_annotations: every <name> of an <object> with a <bndbox>
    gets its box [xmin, ymin, xmax, ymax] as written, no -1 shift); the phrase's chain id is that of the FIRST phrase
    of the sentence with exactly its text (Ferret's lookup, the readers keep it).
  * Protocol: the script hard-codes merge_boxes=True ("merged": a chain's boxes replaced by their enclosing box,
    _merge_boxes; MDETR's MergedBox protocol, Flickr30k Entities' original one). MDETR's evaluator defaults to
    merge_boxes=False ("any_box": every box of the chain is a target; MDETR's AnyBox protocol). The default here is
    "merged", what Ferret's numbers (and so MM1.5's comparisons) use; "any_box" is the reader's `protocol` option.
  * IoU (box_iou, torchvision's in numpy): areas (x2-x1)*(y2-y1) unclamped, intersection clamped at 0, no +1 pixel;
    a [predicted, target] matrix; 0/0 is nan. Recall@k of a phrase: max(ious[:k]) >= 0.5 over the first k predicted
    boxes and every target (k = 1, 5, 10; "Upper_bound" every predicted box); numpy's max: a nan in the slice is a
    miss. Counted per phrase, for "all" and each of the phrase's types (people, clothing, bodyparts, animals,
    vehicles, instruments, scene, other); the number reported is Recall@1 of "all" (micro over phrases).
  * Sentences without a phrase with a box are no item (the evaluator's all_ids leave them out).

LVIS-Ref, official rules (model_lvis.py LVISData_V1, eval_lvis.py):
  * Prompt: "Is the object <location> of the image a <obj1> or a <obj2>?"; the record at 0-based line idx of the file
    has <obj1> = name, <obj2> = neg_class when idx is even, swapped when odd (names as in the file, '_' kept).
    <location> by --region_format: "box" [int(bbox_norm[0] * 1000), int(bbox_norm[1] * 1000), ...]; "point"
    [int(sample_point[0] * (1000 / width)), int(sample_point[1] * (1000 / height))]; "free_shape" the
    free_shape_bbox_raw corners times 1000 / width (height) truncated. MM1.5 has no region-feature encoder, so
    --add_region_feature's "<region_fea>" token and free-shape masks do not apply; "box" is the reader's default
    (the script's default is "point").
  * Correct: name and synonyms processed ('_' -> ' ', stripped; a synonym "a_(b)" gives "a" and "b", one with '('
    but no ')' or two '(' fails an assert: the reader skips such a record); the answer loses every match of
    r"\\s+not[^,.]*[,.]" then of r"\\s+no[^,.]*[,.]" (a word starting with "no", "notebook" or "north" too); correct
    when the name or any synonym is a substring of what remains (case-sensitive; an empty synonym always matches).
    The negative class is never checked. Accuracy = correct / records.
  * Missing from the release: the evaluation records (lvis_eval.jsonl in model_lvis.py's usage; the argparse default
    names dataset/lvis/lvis_v1_minival_inserted_image_name.json) and how they were built (which LVIS minival objects,
    how neg_class and sample_point were drawn). Their fields are known only from what the two scripts read: id,
    image_path, width, height, name, synonyms, neg_class, bbox_norm, sample_point, free_shape_bbox_raw (bbox,
    free_shape_segment_mask unused here).
No harness (lmms-eval, VLMEvalKit) scores these two benchmarks: every convention is scored by the official rules.
"""
from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from mm1_jax.eval.prompts import Item
from mm1_jax.eval.scorers.refexp import THRESHOLD, decode_ferret, ferret_box_to_pixels

PROTOCOLS = ("merged", "any_box")
TOPK = (1, 5, 10, -1)  # eval_flickr_entities.py __main__ topk; -1 = every predicted box ("Upper_bound")
REGIONS = ("box", "point", "free_shape")  # model_lvis.py --region_format
GRID = 1000  # VOCAB_IMAGE_W = VOCAB_IMAGE_H = 1000

FLICKR_QUESTION = "What are the locations of {}?"  # model_flickr.py FlickrGrounding.question_prompt, <objs> filled
LVIS_QUESTION = "Is the object {} of the image a {} or a {}?"  # model_lvis.py LVISData_V1 question_prompt

Box = tuple[int, int, int, int]


def _check_protocol(protocol: str) -> None:
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown Flickr30k Entities box protocol {protocol!r}; known: {', '.join(PROTOCOLS)}")


# ------------------------------------------------------------------------------------------------ Flickr30k Entities


def flickr_question(phrases: Sequence[str]) -> str:
    """Ferret's Flickr30k question for a sentence's phrases (model_flickr.py: each lower-cased, remove_punctuation
    drops ',' and strips; joined with ", ")."""
    return FLICKR_QUESTION.format(", ".join(p.lower().replace(",", "").strip() for p in phrases))


def flickr30k_question(item: Item) -> str:
    """The question of a Flickr30k Entities item (its meta["phrases"])."""
    return flickr_question(item.meta["phrases"])


def decode_ferret_phrases(text: str) -> list[tuple[str, Box]]:
    """(entity, box in grid units) pairs of a generated answer as eval_flickr_entities.py decode_bbox_from_caption
    reads them; [] where the official decode fails (a non-integer piece: its caught ValueError; a box of under 4
    numbers: its uncaught IndexError)."""
    return [(entity, (box[0], box[1], box[2], box[3])) for entity, box in decode_ferret(text)]


def _normalised_phrase(phrase: str) -> str:
    phrase = re.sub(r"\s*(['\",.;!?|:])\s*", r"\1 ", phrase.lower()).strip()
    return " ".join(re.sub(r"[^\w\s]", "", phrase).split())


def phrases_similar(a: str, b: str) -> bool:
    """eval_flickr_entities.py are_phrases_similar: equal after lower-casing, spacing punctuation, deleting it and
    collapsing whitespace."""
    return _normalised_phrase(a) == _normalised_phrase(b)


def merge_boxes(boxes: Sequence[Sequence[float]]) -> list[list[float]]:
    """MDETR's _merge_boxes: one box enclosing them all (a single box is kept as is)."""
    if len(boxes) == 1:
        return [list(boxes[0])]
    b = np.asarray(boxes)
    return [[b[:, 0].min().item(), b[:, 1].min().item(), b[:, 2].max().item(), b[:, 3].max().item()]]


def box_iou_matrix(boxes1: Sequence[Sequence[float]], boxes2: Sequence[Sequence[float]]) -> np.ndarray:
    """eval_flickr_entities.py box_iou: the [N, M] IoU matrix, float64, areas unclamped, no +1, nan for 0/0."""
    a, b = np.asarray(boxes1, dtype=np.float64), np.asarray(boxes2, dtype=np.float64)
    area1 = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area2 = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    lt = np.maximum(a[:, None, :2], b[:, :2])
    rb = np.minimum(a[:, None, 2:], b[:, 2:])
    wh = (rb - lt).clip(min=0)
    inter = wh[:, :, 0] * wh[:, :, 1]
    union = area1[:, None] + area2 - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        return inter / union


def phrase_boxes(prediction: str, phrase: str, width: float, height: float) -> list[list[int]]:
    """The pixel boxes an answer gives a phrase: every decoded entity similar to it, in order, each box resized from
    the grid; [[0, 0, 0, 0]] when there is none (the official 0-area box)."""
    found = [list(ferret_box_to_pixels(box, width, height)) for entity, box in decode_ferret_phrases(prediction)
             if phrases_similar(entity, phrase)]
    return found or [[0, 0, 0, 0]]


def phrase_hits(prediction: str, phrase: str, targets: Sequence[Sequence[float]], width: float, height: float,
                protocol: str = "merged", topk: Sequence[int] = TOPK) -> dict[int, bool]:
    """{k: hit at recall@k} for one phrase of ground-truth pixel boxes `targets` (all of its chain's boxes; merged
    here under "merged"): max(ious[:k]) >= 0.5, k = -1 every predicted box; a nan in the slice is a miss."""
    _check_protocol(protocol)
    ious = box_iou_matrix(phrase_boxes(prediction, phrase, width, height),
                          merge_boxes(targets) if protocol == "merged" else targets)
    return {k: bool((ious.max() if k == -1 else ious[:k].max()) >= THRESHOLD) for k in topk}


def _header(k: int) -> str:
    return "Upper_bound" if k == -1 else f"Recall@{k}"


def flickr_scores(items: Sequence[Item], predictions: Sequence[str], protocol: str | None = None,
                  topk: Sequence[int] = TOPK) -> tuple[dict[str, dict[str, float]], list[dict]]:
    """The official recall table {"Recall@1": {"all": ..., "people": ..., ...}, ..., "Upper_bound": {...}} (per
    phrase, categories sorted as summarize() prints them) and one row per item: "recall" (its phrases' recall@1),
    "hits" (per phrase), "boxes" (the first predicted pixel box per phrase, None where the answer has none).
    `protocol` None: each item's meta["protocol"] (the reader's option), else "merged"."""
    total: dict[int, dict[str, int]] = {k: {} for k in topk}
    positive: dict[int, dict[str, int]] = {k: {} for k in topk}
    rows = []
    for item, prediction in zip(items, predictions):
        m = item.meta
        used = protocol or m.get("protocol") or "merged"
        hits = []
        firsts = []
        for phrase, types, targets in zip(m["phrases"], m["phrase_types"], m["boxes"]):
            hit = phrase_hits(prediction, phrase, targets, m["width"], m["height"], used, topk)
            for k in topk:
                for cat in ["all", *types]:
                    total[k][cat] = total[k].get(cat, 0) + 1
                    positive[k][cat] = positive[k].get(cat, 0) + hit[k]
            hits.append(hit[topk[0]])
            found = [b for e, b in decode_ferret_phrases(prediction) if phrases_similar(e, phrase)]
            firsts.append(list(ferret_box_to_pixels(found[0], m["width"], m["height"])) if found else None)
        rows.append({"recall": sum(hits) / len(hits) if hits else float("nan"), "hits": hits, "boxes": firsts})
    table = {_header(k): {cat: positive[k][cat] / total[k][cat] for cat in sorted(total[k])} for k in topk}
    return table, rows


def flickr30k_aggregate(items, predictions, convention):
    """Flickr30k Entities: "recall_at_1" over all phrases (the number Ferret and MM1.5 report); Recall@5 / @10 /
    Upper_bound per phrase type in the details ("table"; "metric" as the script's metric.json), with the box
    protocol."""
    table, rows = flickr_scores(items, predictions)
    metric = {f"{header}_{cat}": value for header, by_cat in table.items() for cat, value in by_cat.items()}
    protocols = sorted({str(it.meta.get("protocol") or "merged") for it in items})
    phrases = sum(len(it.meta["phrases"]) for it in items)
    unmatched = sum(box is None for r in rows for box in r["boxes"])
    return ({"recall_at_1": table.get("Recall@1", {}).get("all", float("nan"))}, rows,
            {"table": table, "metric": metric, "protocol": protocols, "phrases": phrases,
             "phrases_without_box": unmatched, "convention": "official"})


# ------------------------------------------------------------------------------------------------ LVIS-Ref


def lvis_region_text(coords: Sequence[int]) -> str:
    """A region as model_lvis.py writes it: "[x, y]" or "[x1, y1, x2, y2]" (grid integers)."""
    return "[" + ", ".join(str(int(v)) for v in coords) + "]"


def lvis_question(item: Item) -> str:
    """Ferret's LVIS question of an item: its region (meta["region"], grid units) and its two classes in the order
    the record's line parity gives (meta["classes"])."""
    first, second = item.meta["classes"]
    return LVIS_QUESTION.format(lvis_region_text(item.meta["region"]), first, second)


def lvis_class_names(name: str, synonyms: Sequence[str]) -> tuple[str, list[str]]:
    """eval_lvis.py's name and synonyms: '_' -> ' ' and stripped; "a_(b)" -> "a", "b". ValueError where the script's
    asserts fail (a '(' without ')', or more than one '(')."""
    names: list[str] = []
    for synonym in synonyms:
        if "(" in synonym:
            parts = synonym.split("(")
            if ")" not in synonym or len(parts) != 2:
                raise ValueError(f"synonym {synonym!r} fails eval_lvis.py's asserts (one '(' and a ')')")
            names.append(parts[0].replace("_", " ").strip())
            names.append(parts[1].replace("_", " ").replace(")", "").strip())
        else:
            names.append(synonym.replace("_", " ").strip())
    return name.replace("_", " ").strip(), names


def remove_not_phrases(text: str) -> str:
    """eval_lvis.py remove_not_phrases_v2: delete r"\\s+not[^,.]*[,.]" then r"\\s+no[^,.]*[,.]"."""
    return re.sub(r"\s+no[^,.]*[,.]", "", re.sub(r"\s+not[^,.]*[,.]", "", text))


def lvis_correct(prediction: str, name: str, synonyms: Sequence[str]) -> bool:
    """Whether an answer names the class: its name or a synonym (processed) is a substring of the answer without its
    negated phrases (case-sensitive)."""
    name, names = lvis_class_names(name, synonyms)
    kept = remove_not_phrases(prediction)
    return name in kept or any(s in kept for s in names)


def lvis_ref_aggregate(items, predictions, convention):
    """LVIS-Ref: accuracy (correct / records) by eval_lvis.py's rule; the region format in the details."""
    right = [lvis_correct(p, it.meta["name"], it.meta["synonyms"]) for it, p in zip(items, predictions)]
    regions = sorted({str(it.meta.get("region_format")) for it in items})
    return ({"accuracy": sum(right) / len(right) if right else float("nan")}, [{"correct": r} for r in right],
            {"region_format": regions, "convention": "official"})


QUESTIONS = {"flickr30k_entities": flickr30k_question, "lvis_ref": lvis_question}
AGGREGATES: dict[str, Any] = {"flickr30k_entities": flickr30k_aggregate, "lvis_ref": lvis_ref_aggregate}
