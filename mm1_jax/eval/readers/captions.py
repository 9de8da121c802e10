"""Captioning references (COCO caption format, TextCaps' own release) and the COCO results writer."""
from __future__ import annotations

import json
import os
from typing import Any

from mm1_jax.eval.prompts import Item
from mm1_jax.eval.readers.common import Collect, Skip, fail, image_folder, load_json, need, record_id, strings, top_list


def read_captions(task: str, *, annotations: str, images: str) -> tuple[list[Item], list[dict]]:
    """Captioning references, one item per image with all its reference captions as `answers`.

    COCO caption format (COCO Karpathy / captions_val2014.json, NoCaps nocaps_val_4500_captions.json):
      {"images": [{"id", "file_name", ...}], "annotations": [{"image_id", "caption", ...}]}; a file without
      "annotations" (an image-info file) gives items without references. meta = {"image_id"}.
    TextCaps release (TextCaps_0.1_val.json): {"data": [{"image_id", "image_name", "image_path", "caption_str",
      "reference_strs": [...], ...}]}, one record per caption; grouped by image_id, references = the first
      record's reference_strs (else every record's caption_str); image = <images>/<image_name>.jpg (or the
      basename of image_path). The format is told by the top-level key: "images" or "data".
    """
    data = load_json(task, "annotations", annotations)
    images = image_folder(task, images)
    if "data" in data and "images" not in data:
        return _textcaps(task, annotations, data, images)
    if "images" not in data:
        raise fail(task, annotations, f"expected COCO captions ({{\"images\", \"annotations\"}}) or TextCaps "
                                       f"({{\"data\": [...]}}), found keys {sorted(data)[:8]}")
    records = top_list(task, annotations, data, "images")
    out = Collect()
    refs: dict[Any, list[str]] | None = None
    if "annotations" in data:
        refs = {}
        for i, ann in enumerate(top_list(task, annotations, data, "annotations")):
            try:
                image_id, caption = need(ann, "image_id", (int, str)), str(need(ann, "caption"))
            except Skip as e:
                out.skip(record_id(ann, "id", i), annotations, f"annotations[{i}]", str(e))
                continue
            refs.setdefault(image_id, []).append(caption)

    def make(img: Any) -> Item:
        image_id = need(img, "id", (int, str))
        name = need(img, "file_name", str)
        if refs is not None and image_id not in refs:
            raise Skip(f"no caption in 'annotations' has image_id {image_id!r}")
        return Item(id=str(image_id), images=[os.path.join(images, name)],
                    answers=list(refs[image_id]) if refs is not None else [], meta={"image_id": image_id})

    for i, img in enumerate(records):
        out.add(annotations, f"images[{i}]", record_id(img, "id", i), make, img)
    return out.result()


def _textcaps(task: str, path: str, data: dict, images: str) -> tuple[list[Item], list[dict]]:
    out = Collect()
    groups: dict[Any, list[tuple[int, dict]]] = {}
    for i, rec in enumerate(top_list(task, path, data, "data")):
        try:
            groups.setdefault(need(rec, "image_id", (int, str)), []).append((i, rec))
        except Skip as e:
            out.skip(i, path, f"data[{i}]", str(e))

    def make(image_id: Any, recs: list[tuple[int, dict]]) -> Item:
        first = recs[0][1]
        if first.get("image_name"):
            name = str(first["image_name"]) + ".jpg"
        elif first.get("image_path"):
            name = os.path.basename(str(first["image_path"]))
        else:
            raise Skip("lacks the field 'image_name' (and 'image_path')")
        if first.get("reference_strs") is not None:
            answers = strings(first["reference_strs"], "reference_strs")
        else:
            answers = [str(r["caption_str"]) for _, r in recs if r.get("caption_str") is not None]
        return Item(id=str(image_id), images=[os.path.join(images, name)], answers=answers,
                    meta={"image_id": image_id})

    for image_id, recs in groups.items():
        out.add(path, f"data[{recs[0][0]}]", image_id, make, image_id, recs)
    return out.result()


def write_coco_results(path: str, predictions: list[dict]) -> None:
    """COCO results JSON: [{"image_id", "caption"}] (what the COCO caption evaluation server reads)."""
    with open(path, "w") as f:
        json.dump([{"image_id": p["image_id"], "caption": p["caption"]} for p in predictions], f)
