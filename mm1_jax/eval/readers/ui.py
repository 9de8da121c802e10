"""Ferret-UI's evaluation records (MM1.5-UI's benchmarks): the elementary UI tasks on iPhone and Android screens and
the public ones Ferret-UI converts to its format (Screen2Words, WidgetCaptions, Taperception); scorers/ui.py scores
them and names what is confirmed and what is our reading.

The format, as apple/ml-ferret at 3c9e5c93 releases it (ferretui/playground/sample_data/eval_data_example_*.json,
read by ferretui/ferretui/eval/model_UI.py UIData): a JSON list of records
    {"id", "image" (a file name; its basename is looked up in the images folder), "image_h", "image_w" (the
     screen's pixel size), "conversations": [{"from": "human", "value": "<image>\\nWhat's the UI type of the widget
     <bbox_location0>?"}, optionally {"from": "gpt", "value": <answer>}], "box_x1y1x2y2": [[boxes of turn 0],
     [boxes of turn 1], ...] (pixel [x1, y1, x2, y2] per <bbox_locationK> of that turn), optionally "label"}
and, in the training files of the same format, "dataset" (the task family; train.py's loaders set it).
Read as model_UI.py reads it:
  * question: the human turn; when it holds "<image>", its second line (q.split('\\n')[1]); every <bbox_locationK>
    replaced by the turn's K-th box as text (model_UI.py replaces only <bbox_location0>, written "[x1, y1, x2, y2]",
    int(v * 1000 / side): `mm1_jax.data.coordinates.box_to_text`, the whole screen's grid); Ferret-UI adds its
    "<region_fea>" token after the box for its region features, which MM1.5 has not.
  * gold answer: the record's "label", else its second turn (model_UI.py); for the tasks that answer with boxes
    (find_text, find_icons, find_widget, widget_listing) the gold boxes are the answer turn's, box_x1y1x2y2[1]
    (our reading: the release's eval examples carry no answer; its training example does, this way), with its
    <bbox_locationK> replaced by the box as text in `answers`.
  * the task family: the record's "dataset" field, else the first of train.py's family names the file's path holds
    (`scorers.ui.FILE_ORDER`, the order of train.py's elif chain: "widget_listing" before "ocr"); the platform:
    "iphone" / "ios" or "android" as a word of the file's path below `annotations`, else config `platform`.
A record is skipped (with one reason) when a field is missing or of the wrong kind, a box is not 4 numbers or does
not fit its screen (`coordinates.check_box`) or has no area, a placeholder has no box, a box-in task's question
has no <bbox_location0>, an answer is missing, or a Taperception label reads as neither tappable nor not.
"""
from __future__ import annotations

import os
import re
from typing import Any

from mm1_jax.data.coordinates import box_to_text, check_box
from mm1_jax.eval.prompts import Item
from mm1_jax.eval.readers.common import Collect, Skip, fail, image_folder, load_json, need, required
from mm1_jax.eval.scorers.ui import (BOX_IN, FAMILIES, FILE_ORDER, GROUNDING, PLACEHOLDER, PLATFORMS,
                                     placeholder_labels, tappable)

_PLATFORM_WORDS = {"iphone": "iphone", "ios": "iphone", "android": "android"}


def file_family(name: str) -> str | None:
    """The task family a data file's path names (train.py: the first of FILE_ORDER it contains), or None."""
    lowered = name.lower()
    return next((family for family in FILE_ORDER if family in lowered), None)


def file_platform(name: str) -> str | None:
    """The platform a data file's path names as a word ("iphone" / "ios", "android"), or None; ValueError when it
    names both."""
    found = {_PLATFORM_WORDS[w] for w in re.split(r"[^a-z0-9]+", name.lower()) if w in _PLATFORM_WORDS}
    if len(found) > 1:
        raise ValueError("names both platforms")
    return found.pop() if found else None


def _files(task: str, annotations: str) -> list[tuple[str, str]]:
    """(path, name below `annotations`) of each data file: a file, a comma-separated list, or every *.json of a
    folder (sorted, sub-folders included)."""
    annotations = required(task, "annotations", annotations)
    out: list[tuple[str, str]] = []
    for path in (p.strip() for p in annotations.split(",") if p.strip()):
        if os.path.isdir(path):
            found = [os.path.join(root, f) for root, _, names in os.walk(path) for f in names if f.endswith(".json")]
            if not found:
                raise ValueError(f"eval task {task!r}: annotation folder {path!r} holds no .json file.")
            out += [(f, os.path.relpath(f, path)) for f in sorted(found)]
        elif os.path.isfile(path):
            out.append((path, os.path.basename(path)))
        else:
            raise ValueError(f"eval task {task!r}: annotation file {path!r} does not exist.")
    return out


def _number(rec: dict, field: str) -> int | float:
    value = need(rec, field, (int, float))
    if not value > 0:
        raise Skip(f"field {field!r} is {value!r}, not a positive size")
    return value


def _turn_boxes(rec: dict, turn: int) -> list:
    """The boxes of conversation turn `turn` (box_x1y1x2y2[turn]; [] when the record has none for it)."""
    lists = rec.get("box_x1y1x2y2")
    if lists is None:
        return []
    if not isinstance(lists, list) or not all(isinstance(t, list) for t in lists):
        raise Skip(f"field 'box_x1y1x2y2' is {lists!r}, not a list of box lists (one per turn)")
    return lists[turn] if turn < len(lists) else []


def pixel_box(value: Any, where: str, width: float, height: float) -> list[float]:
    """A record's box as 4 floats; Skip when it is not 4 numbers, does not fit the width x height screen
    (`coordinates.check_box`: 0 <= x1 <= x2 <= width, 0 <= y1 <= y2 <= height) or has no area."""
    if not (isinstance(value, list) and len(value) == 4
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)):
        raise Skip(f"{where} is {value!r}, not a box of 4 numbers [x1, y1, x2, y2]")
    try:
        check_box(value, width, height)
    except ValueError as e:
        raise Skip(f"{where}: {str(e).rstrip('.')}") from None
    x1, y1, x2, y2 = (float(v) for v in value)
    if x1 == x2 or y1 == y2:
        raise Skip(f"{where} {value!r} has no area (x1 = x2 or y1 = y2)")
    return [x1, y1, x2, y2]


def _fill(text: str, boxes: list, where: str, width: float, height: float) -> tuple[str, list[list[float]]]:
    """`text` with each <bbox_locationK> replaced by box K of `boxes` written on the grid; the pixel boxes."""
    pixels = [pixel_box(b, f"{where}[{k}]", width, height) for k, b in enumerate(boxes)]
    for m in PLACEHOLDER.finditer(text):
        if int(m.group(1)) >= len(pixels):
            raise Skip(f"{m.group(0)} has no box ({where} holds {len(pixels)})")
    return PLACEHOLDER.sub(lambda m: box_to_text(pixels[int(m.group(1))], width, height), text), pixels


def _question(turn: Any) -> str:
    value = need(turn, "value", str, "conversations[0].value")
    if "<image>" not in value:
        return value
    lines = value.split("\n")
    if len(lines) < 2:
        raise Skip("conversations[0] holds '<image>' but no second line (model_UI.py asks the line after it)")
    return lines[1]


def _label(rec: dict, turns: list) -> Any:
    """model_UI.py's gold answer: "label", else the second turn's value, else None."""
    if "label" in rec:
        return rec["label"]
    if len(turns) > 1:
        return need(turns[1], "value", str, "conversations[1].value")
    return None


def _ui_item(folder: str, name: str, family_here: str | None, platform: str, wanted: tuple[str, ...],
             rec: Any) -> list[Item]:
    family = need(rec, "dataset", str) if isinstance(rec, dict) and "dataset" in rec else family_here
    if family is None:
        raise Skip("has no 'dataset' field and the file's name names no Ferret-UI task")
    if family not in wanted:
        return []  # another task's record (or an advanced, judged one): not read here
    rid = need(rec, "id", (int, str))
    image = need(rec, "image", str)
    width, height = _number(rec, "image_w"), _number(rec, "image_h")
    turns = need(rec, "conversations", list)
    if not turns:
        raise Skip("field 'conversations' is empty")
    question = _question(turns[0])
    if family in BOX_IN and "<bbox_location0>" not in question:
        raise Skip(f"a {family} question without <bbox_location0> (the box it asks about)")
    question, region = _fill(question, _turn_boxes(rec, 0), "box_x1y1x2y2[0]", width, height)
    label = _label(rec, turns)
    meta: dict[str, Any] = {"family": family, "platform": platform, "width": width, "height": height,
                            "file": name, "record_id": rid, "region": region}
    if family in GROUNDING:
        raw = _turn_boxes(rec, 1)
        if not raw:
            raise Skip(f"a {family} record without answer boxes (box_x1y1x2y2[1])")
        text = label if isinstance(label, str) else ""
        answer, boxes = _fill(text, raw, "box_x1y1x2y2[1]", width, height)
        labels = placeholder_labels(text)
        meta.update(boxes=boxes, labels=[labels.get(k, "") for k in range(len(boxes))])
        answers = [answer] if answer else []
    else:
        if label is None:
            raise Skip("has no answer (no 'label' field and no second turn)")
        answers = [label] if isinstance(label, str) else label
        if not (isinstance(answers, list) and answers and all(isinstance(a, str) for a in answers)):
            raise Skip(f"answer {label!r} is neither text nor a list of texts")
        if family == "taperception":
            meta["tappable"] = tappable(answers[0])
            if meta["tappable"] is None:
                raise Skip(f"Taperception label {answers[0]!r} reads as neither tappable nor not")
    stem = name.removesuffix(".json")
    return [Item(id=f"{stem}:{rid}", images=[os.path.join(folder, image.split("/")[-1])], question=question,
                 answers=[str(a) for a in answers], meta=meta)]


def read_ferret_ui(task: str, *, annotations: str, images: str, platform: str = "", families: str = ""
                   ) -> tuple[list[Item], list[dict]]:
    """Ferret-UI's evaluation records (the module docstring's format):

      annotations  a Ferret-UI JSON file, a comma-separated list of them, or a folder of them (*.json, sub-folders
                   too); each file one task's records, named after the task as Ferret-UI names its files (e.g.
                   iphone/ocr_test.json) unless its records carry "dataset"
      images       the screens' folder (each record's image basename is looked up there)
      platform     "iphone" or "android": files named after the other platform are left out, and files naming none
                   are taken to be of this one; "" (default): each file's own ("unknown" when it names none)
      families     comma-separated task families to read (default: all of scorers.ui.FAMILIES); records of other
                   families are left out, not skipped
    Item: id "<file name without .json>:<record id>", images [<images>/<basename>], question (its boxes as text),
    answers (the gold text; for grounding tasks the answer turn with its boxes as text, possibly empty), meta
    {"family", "platform", "width", "height", "file", "record_id", "region" (the question's pixel boxes), and
    "boxes" + "labels" (grounding: the gold pixel boxes and the text before each) or "tappable" (Taperception)}.
    """
    if platform not in ("", *PLATFORMS):
        raise ValueError(f"eval task {task!r}: config.eval.{task}.platform is {platform!r}; known: "
                         f"{', '.join(PLATFORMS)} (or '' for each file's own).")
    wanted = tuple(f.strip() for f in families.split(",") if f.strip()) or FAMILIES
    unknown = [f for f in wanted if f not in FAMILIES]
    if unknown:
        raise ValueError(f"eval task {task!r}: config.eval.{task}.families names {', '.join(map(repr, unknown))}; "
                         f"known: {', '.join(FAMILIES)}.")
    folder = image_folder(task, images)
    out = Collect()
    for path, name in _files(task, annotations):
        try:
            named = file_platform(name)
        except ValueError as e:
            raise fail(task, path, f"its name {e}") from None
        if platform and named and named != platform:
            continue
        family = file_family(name)
        records = load_json(task, "annotations", path, list, "a JSON list of Ferret-UI records")
        if family is None and not any(isinstance(r, dict) and "dataset" in r for r in records):
            raise fail(task, path, f"names no Ferret-UI task ({', '.join(FILE_ORDER)}) and its records have no "
                                   "'dataset' field; name the file after its task as Ferret-UI does (e.g. "
                                   "ocr_iphone.json)")
        for i, rec in enumerate(records):
            rid = rec.get("id", i) if isinstance(rec, dict) else i
            out.add(path, f"record {i}", rid, _ui_item, folder, name, family, named or platform or "unknown",
                    wanted, rec)
    return out.result()
