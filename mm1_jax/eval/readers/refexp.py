"""Referring expressions (RefCOCO, RefCOCO+, RefCOCOg) from the refer release: the referred box of each sentence."""
from __future__ import annotations

import os
import pickle
from typing import Any

from mm1_jax.eval.prompts import Item
from mm1_jax.eval.readers.common import (Collect, Skip, annotation_file, fail, image_folder, load_json, need,
                                         record_id, top_list)


def _load_pickle(task: str, keyword: str, path: str) -> Any:
    """The unpickled file `path` (config field `keyword`); ValueError naming the task and the file otherwise."""
    path = annotation_file(task, keyword, path)
    try:
        with open(path, "rb") as f:
            # Python 2 byte strings (the release was pickled by Python 2) are decoded as UTF-8
            return pickle.load(f, encoding="utf-8", errors="replace")
    except OSError as e:
        raise fail(task, path, f"cannot be read ({e.strerror or e})") from None
    except Exception as e:  # noqa: BLE001  unpickling arbitrary bytes can raise nearly anything
        raise fail(task, path, f"not a readable pickle ({type(e).__name__}: {e})") from None


def read_refcoco(task: str, *, refs: str, instances: str, images: str, split: str = "val"
                 ) -> tuple[list[Item], list[dict]]:
    """Referring expressions from the refer release (lichengunc/refer; RefCOCO, RefCOCO+, RefCOCOg):

      refs       refs(unc).p / refs(google).p / refs(umd).p: a Python pickle of a list of {"ref_id", "ann_id",
                 "image_id", "split", "sentences": [{"sent", "raw", "tokens", "sent_id"}], "category_id", ...}.
                 Unpickling runs code named in the file: only load a trusted copy of the release.
      instances  instances.json, COCO instances: {"images": [{"id", "file_name", "width", "height"}],
                 "annotations": [{"id", "image_id", "bbox": [x, y, w, h]}], ...}
    One item per (ref of `split`, sentence): question = the sentence, images = [<images>/<file_name>], no answers,
    meta = {"ref_id", "box": [x1, y1, x2, y2] in pixels, "width", "height"}; id = "<ref_id>_<sentence index>".
    """
    loaded = _load_pickle(task, "refs", refs)
    if not isinstance(loaded, list):
        raise fail(task, refs, f"expected a pickled list of refs, found a {type(loaded).__name__}")
    data = load_json(task, "instances", instances)
    pictures = top_list(task, instances, data, "images")
    boxes = top_list(task, instances, data, "annotations")
    images = image_folder(task, images)
    splits = sorted({str(r["split"]) for r in loaded if isinstance(r, dict) and r.get("split") is not None})
    if split not in splits:
        raise fail(task, refs, f"has no refs of split {split!r}; the splits present are {', '.join(splits)}")
    image_of = {p["id"]: p for p in pictures if isinstance(p, dict) and "id" in p}
    box_of = {b["id"]: b for b in boxes if isinstance(b, dict) and "id" in b}
    out = Collect()

    def make(ref: Any) -> list[Item]:
        ref_id = need(ref, "ref_id", (int, str))
        need(ref, "split")
        ann_id = need(ref, "ann_id", (int, str))
        sentences = need(ref, "sentences", list)
        if ann_id not in box_of:
            raise Skip(f"ann_id {ann_id!r} is not an annotation of {instances}")
        ann = box_of[ann_id]
        bbox = need(ann, "bbox", list)
        if len(bbox) != 4:
            raise Skip(f"annotation {ann_id!r} of {instances} has a bbox of {len(bbox)} numbers, not 4")
        image_id = need(ann, "image_id", (int, str))
        if image_id not in image_of:
            raise Skip(f"image_id {image_id!r} of annotation {ann_id!r} is not an image of {instances}")
        picture = image_of[image_id]
        name = need(picture, "file_name", str)
        x, y, w, h = (float(v) for v in bbox)
        meta = {"ref_id": ref_id, "box": [x, y, x + w, y + h], "width": picture.get("width"),
                "height": picture.get("height")}
        texts = [str(need(s, "sent", name=f"sentences[{j}].sent")) for j, s in enumerate(sentences)]
        return [Item(id=f"{ref_id}_{j}", images=[os.path.join(images, name)], question=text, meta=dict(meta))
                for j, text in enumerate(texts)]

    for i, ref in enumerate(loaded):
        if isinstance(ref, dict) and ref.get("split") is not None and str(ref["split"]) != split:
            continue
        out.add(refs, f"refs[{i}]", record_id(ref, "ref_id", i), make, ref)
    return out.result()
