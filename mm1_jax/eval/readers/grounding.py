"""Refer & Ground benchmarks from their releases: Flickr30k Entities (phrase grounding) and LVIS-Ref (Ferret's
referring object classification); their prompts and scorers are scorers/grounding.py's.

Flickr30k Entities (BryanPlummer/flickr30k_entities, README at 68b3d6f1): the release folder holds train.txt /
val.txt / test.txt (one image id a line), Sentences/<image id>.txt (the image's 5 captions, one a line, each phrase
written "[/EN#<chain id>/<type>.../<type> word ... word]") and Annotations/<image id>.xml (Pascal-VOC-like: <filename>,
<size><width><height><depth>, <object>s with one or more <name> (chain ids) and a <bndbox> xmin / ymin / xmax / ymax,
or <scene> / <nobndbox> flags). Parsed as MDETR's copy of the release utilities parses them (ashkamath/mdetr at
ea09acc4, datasets/flickr_eval.py get_sentence_data, get_annotations), which Ferret's evaluator uses: captions split
on "\\n" and empty lines dropped (a caption's sentence_id is its index among the others), phrases token by token,
every <name> of a boxed object given its box as written (no -1 shift, unlike the release's own utilities).
Ferret evaluates from MDETR's processed file (final_flickr_mergedGT_<split>.json of mdetr_annotations.tar.gz, built by
scripts/pre-training/flickr_combined.py): COCO-like {"images": [{"file_name", "caption", "width", "height",
"original_img_id", "sentence_id", "tokens_positive_eval": [[[start, end]], ...] (one span per phrase with boxes)},
...]}; its order and phrases are the items', but its boxes are not used (the ground truth is the release's XML).
Both sources give the same items on the real data.
"""
from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from typing import Any

from mm1_jax.eval.prompts import Item
from mm1_jax.eval.readers.common import (Collect, Skip, fail, image_folder, kind_of, load_json,
                                         load_jsonl, need, required, text_lines, top_list)
from mm1_jax.eval.scorers.grounding import GRID, PROTOCOLS, REGIONS, lvis_class_names, lvis_question

# ------------------------------------------------------------------------------------------------ Flickr30k Entities


def parse_flickr_sentence(line: str) -> tuple[str, list[dict]]:
    """(sentence, phrases) of one Sentences line as get_sentence_data reads it: phrases {"first_word_index",
    "phrase", "phrase_id", "phrase_type": [types]}; Skip for a marker get_sentence_data cannot read."""
    words: list[str] = []
    first_word, texts, ids, types, current = [], [], [], [], []
    inside = False
    for token in line.split():
        if inside:
            if token[-1] == "]":
                inside = False
                token = token[:-1]
                current.append(token)
                texts.append(" ".join(current))
                current = []
            else:
                current.append(token)
            words.append(token)
        elif token[0] == "[":
            parts = token.split("/")
            if len(parts) < 2:
                raise Skip(f"phrase marker {token!r} is not of the form [/EN#<chain id>/<type>")
            inside = True
            first_word.append(len(words))
            ids.append(parts[1][3:])
            types.append(parts[2:])
        else:
            words.append(token)
    phrases = [{"first_word_index": w, "phrase": t, "phrase_id": i, "phrase_type": list(p)}
               for w, t, i, p in zip(first_word, texts, ids, types)]
    return " ".join(words), phrases


def parse_flickr_annotation(path: str) -> dict[str, Any]:
    """{"filename", "width", "height", "boxes": {chain id: [[xmin, ymin, xmax, ymax], ...]}} of an Annotations XML
    as get_annotations reads it; Skip (naming the file) when it cannot be read or lacks what is used."""
    def bad(what: str) -> Skip:
        return Skip(what, file=path, where="the annotation")

    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as e:
        raise bad(f"not valid XML ({e})") from None
    except OSError as e:
        raise bad(f"cannot be read ({e.strerror or e})") from None
    size = root.find("size")
    if size is None:
        raise bad("has no <size>")
    dims = {}
    for name in ("width", "height"):
        try:
            dims[name] = int((size.findtext(name) or "").strip())
        except ValueError:
            raise bad(f"<size><{name}> is {size.findtext(name)!r}, not an integer") from None
    boxes: dict[str, list[list[int]]] = {}
    for k, obj in enumerate(root.findall("object")):
        bndbox = obj.find("bndbox")
        for name in obj.findall("name"):
            chain = (name.text or "").strip()
            if not chain:
                raise bad(f"object {k} has an empty <name>")
            if bndbox is None:
                continue  # a scene / no-box chain: no target box
            coords = []
            for field in ("xmin", "ymin", "xmax", "ymax"):
                try:
                    coords.append(int((bndbox.findtext(field) or "").strip()))
                except ValueError:
                    raise bad(f"object {k} <bndbox><{field}> is {bndbox.findtext(field)!r}, not an integer") from None
            boxes.setdefault(chain, []).append(coords)
    return {"filename": (root.findtext("filename") or "").strip(), **dims, "boxes": boxes}


class _FlickrRelease:
    """The release folder: the split's image ids, and per image its boxes and captions (read once, on demand)."""

    def __init__(self, task: str, root: str, split: str):
        root = required(task, "entities", root)
        if not os.path.isdir(root):
            raise ValueError(f"eval task {task!r}: Flickr30k Entities folder {root!r} (config.eval.{task}.entities) "
                             "does not exist.")
        for sub in ("Sentences", "Annotations"):
            if not os.path.isdir(os.path.join(root, sub)):
                raise ValueError(f"eval task {task!r}: Flickr30k Entities folder {root!r} has no {sub} folder (the "
                                 "release's annotations.zip unpacked there).")
        self.split_file = os.path.join(root, f"{split}.txt")
        if not os.path.isfile(self.split_file):
            present = sorted(f[:-4] for f in os.listdir(root) if f.endswith(".txt"))
            raise ValueError(f"eval task {task!r}: Flickr30k Entities folder {root!r} has no {split}.txt (split "
                             f"{split!r}); the splits present are {', '.join(present) or 'none'}.")
        self.lines = text_lines(task, "entities", self.split_file)
        if not self.lines:
            raise fail(task, self.split_file, "lists no image ids")
        self.ids = {image_id: n for n, image_id in self.lines}
        self.root = root
        self._cache: dict[str, Any] = {}

    def sentences_file(self, image_id: str) -> str:
        return os.path.join(self.root, "Sentences", f"{image_id}.txt")

    def image(self, image_id: str) -> dict[str, Any]:
        """The image's annotation (parse_flickr_annotation) with "sentences": [(line number, text)]; Skip naming the
        file when one is missing or unreadable."""
        if image_id not in self._cache:
            try:
                self._cache[image_id] = self._read(image_id)
            except Skip as e:
                self._cache[image_id] = e
        found = self._cache[image_id]
        if isinstance(found, Skip):
            raise found
        return found

    def _read(self, image_id: str) -> dict[str, Any]:
        xml = os.path.join(self.root, "Annotations", f"{image_id}.xml")
        text_file = self.sentences_file(image_id)
        for path in (xml, text_file):
            if not os.path.isfile(path):
                raise Skip("does not exist", file=path, where=f"image {image_id}")
        info = parse_flickr_annotation(xml)
        try:
            with open(text_file, encoding="utf-8") as f:
                raw = f.read()
        except (OSError, UnicodeDecodeError) as e:
            raise Skip(f"cannot be read as UTF-8 text ({e})", file=text_file, where=f"image {image_id}") from None
        numbered = list(enumerate(raw.split("\n"), 1))
        info["sentences"] = [(n, line) for n, line in numbered if line]  # get_sentence_data: `if not sentence`
        return info


def _boxed_phrases(phrases: list[dict], boxes: dict[str, list]) -> list[dict]:
    """The phrases the evaluator scores: those whose chain has boxes (Flickr30kEntitiesRecallEvaluator)."""
    return [p for p in phrases if p["phrase_id"] in boxes]


def _flickr_item(image_id: str, sentence_id: int, info: dict, images: str, file_name: str, caption: str,
                 texts: list[str], boxed: list[dict], width: Any, height: Any, protocol: str) -> Item:
    """An item: the phrases `texts`, each scored with the chain of the first boxed phrase of the sentence with
    exactly its text (eval_flickr_entities.py's lookup); Skip when a text is no boxed phrase."""
    ids, types, boxes = [], [], []
    for j, text in enumerate(texts):
        same = [p for p in boxed if p["phrase"] == text]
        if not same:
            raise Skip(f"phrase {j} {text!r} is not a phrase with boxes of sentence {sentence_id} of image {image_id} "
                       f"(the release has {[p['phrase'] for p in boxed]})")
        ids.append(same[0]["phrase_id"])
        types.append(list(same[0]["phrase_type"]))
        boxes.append([list(b) for b in info["boxes"][same[0]["phrase_id"]]])
    meta = {"image_id": image_id, "sentence_id": sentence_id, "caption": caption, "phrases": texts,
            "phrase_ids": ids, "phrase_types": types, "boxes": boxes, "width": width, "height": height,
            "protocol": protocol}
    return Item(id=f"{image_id}_{sentence_id}", images=[os.path.join(images, file_name)], question=caption,
                meta=meta)


def _release_items(image_id: str, sentence_id: int, line: str, info: dict, images: str,
                   protocol: str) -> list[Item]:
    caption, phrases = parse_flickr_sentence(line)
    boxed = _boxed_phrases(phrases, info["boxes"])
    if not boxed:
        return []  # a sentence no phrase of which has a box is not evaluated
    return [_flickr_item(image_id, sentence_id, info, images, info["filename"] or f"{image_id}.jpg", caption,
                         [p["phrase"] for p in boxed], boxed, info["width"], info["height"], protocol)]


def _number(record: dict, field: str) -> float:
    """A positive size field, a number or a numeric string (MDETR's file has xmltodict's strings)."""
    value = need(record, field, (int, float, str))
    try:
        number = float(value)
    except ValueError:
        raise Skip(f"field {field!r} is {value!r}, not a number") from None
    if not number > 0:
        raise Skip(f"field {field!r} is {value!r}, not a positive size")
    return number


def _mdetr_items(release: _FlickrRelease, images: str, protocol: str, rec: Any) -> list[Item]:
    image_id = str(need(rec, "original_img_id", (int, str)))
    sentence_id = need(rec, "sentence_id", int)
    caption = need(rec, "caption", str)
    file_name = need(rec, "file_name", str)
    spans = need(rec, "tokens_positive_eval", list)
    width, height = _number(rec, "width"), _number(rec, "height")
    if not spans:
        return []  # no phrase with a box: nothing of this sentence is scored
    texts = []
    for j, pos in enumerate(spans):
        first = pos[0] if isinstance(pos, list) and pos else None
        if not (isinstance(first, list) and len(first) == 2 and all(isinstance(v, int) and not isinstance(v, bool)
                                                                    for v in first)):
            raise Skip(f"tokens_positive_eval[{j}] is {pos!r}, not [[start, end], ...]")
        texts.append(caption[first[0]:first[1]])
    if image_id not in release.ids:
        raise Skip(f"image {image_id} is not listed in {release.split_file}")
    info = release.image(image_id)
    if not 0 <= sentence_id < len(info["sentences"]):
        raise Skip(f"sentence_id {sentence_id} is not a sentence of {release.sentences_file(image_id)} (it has "
                   f"{len(info['sentences'])})")
    line_no, line = info["sentences"][sentence_id]
    try:
        _, phrases = parse_flickr_sentence(line)
    except Skip as e:
        raise Skip(str(e), file=release.sentences_file(image_id), where=f"line {line_no}") from None
    return [_flickr_item(image_id, sentence_id, info, images, file_name, caption, texts,
                         _boxed_phrases(phrases, info["boxes"]), width, height, protocol)]


def read_flickr30k_entities(task: str, *, entities: str, images: str, split: str = "test", annotations: str = "",
                            protocol: str = "merged") -> tuple[list[Item], list[dict]]:
    """Flickr30k Entities phrase grounding, one item per caption with at least one phrase that has boxes:

      entities     the release folder: <split>.txt, Sentences/, Annotations/ (annotations.zip unpacked)
      images       the Flickr30k images folder (<image id>.jpg; Ferret's flickr30k_images_split/<split> will do)
      split        "test" (default) or "val" (or "train"): the <split>.txt of `entities`
      annotations  optional: MDETR's final_flickr_mergedGT_<split>.json (or separateGT), what Ferret evaluates from;
                   its records, in its order, are the items (unset: every caption of the split from the release)
      protocol     "merged" (default; Ferret's eval_flickr_entities.py) or "any_box" (MDETR's AnyBox protocol)
    Item: id "<image id>_<sentence id>", images [<images>/<file name>], question = the caption, no answers, meta
    {"image_id", "sentence_id", "caption", "phrases" (texts, in order, repeated as written), "phrase_ids",
    "phrase_types", "boxes" (per phrase, every pixel box [xmin, ymin, xmax, ymax] of its chain), "width", "height"
    (the original image's), "protocol"}.
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"eval task {task!r}: config.eval.{task}.protocol is {protocol!r}; known: "
                         f"{', '.join(PROTOCOLS)}.")
    release = _FlickrRelease(task, entities, split)
    images = image_folder(task, images)
    out = Collect()
    if annotations:
        data = load_json(task, "annotations", annotations)
        for i, rec in enumerate(top_list(task, annotations, data, "images")):
            rid = (f"{rec['original_img_id']}_{rec['sentence_id']}" if isinstance(rec, dict) and
                   rec.get("original_img_id") is not None and rec.get("sentence_id") is not None else i)
            out.add(annotations, f"images[{i}]", rid, _mdetr_items, release, images, protocol, rec)
        return out.result()
    for n, image_id in release.lines:
        try:
            info = release.image(image_id)
        except Skip as e:
            out.skip(image_id, e.file or release.split_file, e.where or f"line {n}", str(e))
            continue
        text_file = release.sentences_file(image_id)
        for sentence_id, (line_no, line) in enumerate(info["sentences"]):
            out.add(text_file, f"line {line_no}", f"{image_id}_{sentence_id}", _release_items, image_id, sentence_id,
                    line, info, images, protocol)
    return out.result()


# ------------------------------------------------------------------------------------------------ LVIS-Ref


def _numbers(rec: dict, field: str, count: int) -> list[float]:
    value = need(rec, field, list)
    if len(value) < count or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value[:count]):
        raise Skip(f"field {field!r} is {value!r}, not a list of {count} numbers")
    return [float(v) for v in value[:count]]


def lvis_region(rec: dict, region: str, width: float, height: float) -> list[int]:
    """The record's region in grid units as model_lvis.py writes it for --region_format `region`."""
    if region == "box":
        return [int(v * GRID) for v in _numbers(rec, "bbox_norm", 4)]
    ratio_w, ratio_h = GRID * 1.0 / width, GRID * 1.0 / height
    if region == "point":
        x, y = _numbers(rec, "sample_point", 2)
        return [int(x * ratio_w), int(y * ratio_h)]
    x1, y1, x2, y2 = _numbers(rec, "free_shape_bbox_raw", 4)
    return [int(x1 * ratio_w), int(y1 * ratio_h), int(x2 * ratio_w), int(y2 * ratio_h)]


def _lvis_item(index: int, folder: str, region: str, rec: Any) -> Item:
    if isinstance(rec, Skip):
        raise rec
    rid = need(rec, "id", (int, str))
    image_path = need(rec, "image_path", str)
    width, height = need(rec, "width", (int, float)), need(rec, "height", (int, float))
    if not (width > 0 and height > 0):
        raise Skip(f"width {width!r} / height {height!r} are not positive")
    name = need(rec, "name", str)
    negative = need(rec, "neg_class", str)
    synonyms = need(rec, "synonyms", list)
    if not all(isinstance(s, str) for s in synonyms):
        raise Skip(f"field 'synonyms' holds {', '.join(sorted({kind_of(s) for s in synonyms}))}, not only strings")
    try:
        lvis_class_names(name, synonyms)
    except ValueError as e:
        raise Skip(str(e)) from None
    coords = lvis_region(rec, region, width, height)
    classes = [name, negative] if index % 2 == 0 else [negative, name]
    meta = {"name": name, "synonyms": list(synonyms), "neg_class": negative, "classes": classes, "region": coords,
            "region_format": region, "width": width, "height": height, "line_index": index}
    item = Item(id=str(rid), images=[os.path.join(folder, image_path.split("/")[-1])], answers=[name], meta=meta)
    item.question = lvis_question(item)
    return item


def read_lvis_ref(task: str, *, annotations: str, images: str, region: str = "box") -> tuple[list[Item], list[dict]]:
    """LVIS-Ref, Ferret's referring object classification (model_lvis.py LVISData_V1):

      annotations  Ferret's LVIS evaluation records, JSON lines (lvis_eval.jsonl; not in ml-ferret's release):
                   {"id", "image_path", "width", "height", "name", "synonyms": [...], "neg_class", "bbox_norm":
                   [x1, y1, x2, y2] as fractions, "sample_point": [x, y] pixels, "free_shape_bbox_raw": [x1, y1,
                   x2, y2] pixels, ...}
      images       the COCO val2017 folder (the basename of image_path is looked up there)
      region       "box" (default), "point" or "free_shape": model_lvis.py's --region_format
    One item per record: id = its "id", question = Ferret's ("Is the object [x1, y1, x2, y2] of the image a <a> or a
    <b>?", the two classes ordered by the record's 0-based line index: name first when even), answers [name], meta
    {"name", "synonyms", "neg_class", "classes", "region" (grid integers), "region_format", "width", "height",
    "line_index"}. A record whose synonyms fail eval_lvis.py's asserts is skipped.
    """
    if region not in REGIONS:
        raise ValueError(f"eval task {task!r}: config.eval.{task}.region is {region!r}; known: {', '.join(REGIONS)}.")
    records = load_jsonl(task, "annotations", annotations)
    folder = image_folder(task, images)
    out = Collect()
    for index, (n, rec) in enumerate(records):
        rid = rec.get("id", n) if isinstance(rec, dict) else f"line {n}"
        out.add(annotations, f"line {n}", rid, _lvis_item, index, folder, region, rec)
    return out.result()
