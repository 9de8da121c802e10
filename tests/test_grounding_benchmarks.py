"""MM1.5's Refer & Ground benchmarks: Flickr30k Entities (phrase grounding) and LVIS-Ref (referring classification).

Readers on small files typed by hand in each release's format (the Flickr30k Entities README's Sentences / Annotations
layout, MDETR's final_flickr_*GT_<split>.json fields, the record fields model_lvis.py reads). Scorers on hand-computed
cases, each naming its rule:
  FLICKR   apple/ml-ferret ferret/eval/eval_flickr_entities.py (3c9e5c93): decode_bbox_from_caption, resize_bbox,
           are_phrases_similar, box_iou, _merge_boxes, the recall@k of Flickr30kEntitiesRecallEvaluatorFromJsonl
  PROMPT   ferret/eval/model_flickr.py FlickrGrounding / model_lvis.py LVISData_V1 (the questions)
  LVIS     ferret/eval/eval_lvis.py (name / synonym processing, remove_not_phrases_v2, the substring match)
  MDETR    ashkamath/mdetr datasets/flickr_eval.py (ea09acc4): get_sentence_data, get_annotations, AnyBox protocol
"""
import json
import math

import pytest
from PIL import Image

from mm1_jax.eval.prompts import Item
from mm1_jax.eval.readers.grounding import parse_flickr_sentence, read_flickr30k_entities, read_lvis_ref
from mm1_jax.eval.scorers import grounding, refexp


def picture(path, size=(4, 3)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (120, 30, 200)).save(path)
    return str(path)


def reasons(skipped):
    return {s["id"]: s["reason"] for s in skipped}


# ====================================================================================================================
# Flickr30k Entities: a release folder typed by hand
# ====================================================================================================================
XML = """<annotation>
\t<filename>{image_id}.jpg</filename>
\t<size>
\t\t<width>333</width>
\t\t<height>500</height>
\t\t<depth>3</depth>
\t</size>
\t<object>
\t\t<name>1</name>
\t\t<bndbox><xmin>159</xmin><ymin>125</ymin><xmax>219</xmax><ymax>335</ymax></bndbox>
\t</object>
\t<object>
\t\t<name>4</name>
\t\t<bndbox><xmin>1</xmin><ymin>220</ymin><xmax>211</xmax><ymax>473</ymax></bndbox>
\t</object>
\t<object>
\t\t<name>4</name>
\t\t<bndbox><xmin>276</xmin><ymin>215</ymin><xmax>332</xmax><ymax>337</ymax></bndbox>
\t</object>
\t<object>
\t\t<name>1</name>
\t\t<name>6</name>
\t\t<bndbox><xmin>197</xmin><ymin>110</ymin><xmax>261</xmax><ymax>373</ymax></bndbox>
\t</object>
\t<object>
\t\t<name>10</name>
\t\t<scene>0</scene>
\t\t<nobndbox>1</nobndbox>
\t</object>
</annotation>
"""

SENTENCES = [
    "[/EN#1/people Two young guys] with [/EN#2/bodyparts shaggy hair] look at [/EN#4/scene many bushes] .",
    "[/EN#1/people Two young , White males] are outside .",
    "",  # an empty line is no sentence (get_sentence_data: `if not sentence: continue`)
    "[/EN#10/other time] spent together .",  # chain 10 has no box: no item
    "[/EN#6/people/other a man] waves to [/EN#1/people a man] .",  # the same text twice: both scored as chain 6
    "[ oops ] .",  # a marker get_sentence_data cannot read (parts[1])
]
A, B, C, D = "1000092795", "2000000001", "2000000002", "2000000003"
BOXES_1 = [[159, 125, 219, 335], [197, 110, 261, 373]]
BOXES_4 = [[1, 220, 211, 473], [276, 215, 332, 337]]
BOXES_6 = [[197, 110, 261, 373]]


def flickr_release(tmp_path, with_image_d=True):
    root = tmp_path / "flickr30k_entities"
    (root / "Sentences").mkdir(parents=True)
    (root / "Annotations").mkdir()
    (root / "test.txt").write_text(f"{A}\n{B}\n{C}\n{D}\n")
    (root / "val.txt").write_text(A + "\n")
    (root / "Sentences" / f"{A}.txt").write_text("\n".join(SENTENCES) + "\n")
    (root / "Annotations" / f"{A}.xml").write_text(XML.format(image_id=A))
    # B: no Annotations file; C: an XML that does not parse; D: good, but its image file is absent
    (root / "Sentences" / f"{B}.txt").write_text(SENTENCES[0] + "\n")
    (root / "Sentences" / f"{C}.txt").write_text(SENTENCES[0] + "\n")
    (root / "Annotations" / f"{C}.xml").write_text("<annotation><size>")
    (root / "Sentences" / f"{D}.txt").write_text(SENTENCES[0] + "\n")
    (root / "Annotations" / f"{D}.xml").write_text(XML.format(image_id=D))
    images = tmp_path / "flickr30k-images"
    picture(images / f"{A}.jpg", (333, 500))
    images.mkdir(exist_ok=True)
    return str(root), str(images)


def test_parse_flickr_sentence_as_get_sentence_data():
    # MDETR: the marker token is no word; the closing "]" is cut from the phrase's last word; types = parts[2:]
    sentence, phrases = parse_flickr_sentence(SENTENCES[0])
    assert sentence == "Two young guys with shaggy hair look at many bushes ."
    assert phrases == [
        {"first_word_index": 0, "phrase": "Two young guys", "phrase_id": "1", "phrase_type": ["people"]},
        {"first_word_index": 4, "phrase": "shaggy hair", "phrase_id": "2", "phrase_type": ["bodyparts"]},
        {"first_word_index": 8, "phrase": "many bushes", "phrase_id": "4", "phrase_type": ["scene"]}]
    assert parse_flickr_sentence(SENTENCES[4])[1][0]["phrase_type"] == ["people", "other"]


def test_flickr_release_folder(tmp_path):
    root, images = flickr_release(tmp_path)
    items, skipped = read_flickr30k_entities("flickr30k_entities", entities=root, images=images)
    assert [it.id for it in items] == [f"{A}_0", f"{A}_1", f"{A}_3"]  # the empty line takes no sentence id
    first = items[0]
    assert first.images == [f"{images}/{A}.jpg"] and first.question == SENTENCES[0].replace(
        "[/EN#1/people ", "").replace("[/EN#2/bodyparts ", "").replace("[/EN#4/scene ", "").replace("]", "")
    m = first.meta
    # shaggy hair (chain 2) has no box: not scored; chain 1's boxes are every object naming 1, in file order
    assert m["phrases"] == ["Two young guys", "many bushes"] and m["phrase_ids"] == ["1", "4"]
    assert m["phrase_types"] == [["people"], ["scene"]] and m["boxes"] == [BOXES_1, BOXES_4]
    assert (m["width"], m["height"], m["protocol"]) == (333, 500, "merged")
    assert grounding.QUESTIONS["flickr30k_entities"](first) == "What are the locations of two young guys, many bushes?"
    # PROMPT: lower-cased, ',' deleted, stripped (the double space stays)
    assert grounding.flickr30k_question(items[1]) == "What are the locations of two young  white males?"
    # FLICKR lookup: the second "a man" (chain 1) is scored with the first "a man"'s chain (6)
    assert items[2].meta["phrases"] == ["a man", "a man"] and items[2].meta["phrase_ids"] == ["6", "6"]
    assert items[2].meta["boxes"] == [BOXES_6, BOXES_6] and items[2].meta["phrase_types"] == [["people", "other"]] * 2
    why = reasons(skipped)
    assert set(why) == {f"{A}_4", B, C, f"{D}_0"}
    assert why[f"{A}_4"].endswith("line 6: phrase marker '[' is not of the form [/EN#<chain id>/<type>")
    assert why[B] == f"{root}/Annotations/{B}.xml: image {B}: does not exist"
    assert why[C].startswith(f"{root}/Annotations/{C}.xml: the annotation: not valid XML")
    assert why[f"{D}_0"].endswith(f"image file '{images}/{D}.jpg' does not exist")


def test_flickr_mdetr_json_same_items(tmp_path):
    root, images = flickr_release(tmp_path)
    caption = "Two young guys with shaggy hair look at many bushes ."
    assert caption[0:14] == "Two young guys" and caption[40:51] == "many bushes"
    base = {"file_name": f"{A}.jpg", "height": "500", "width": "333", "original_img_id": int(A), "caption": caption,
            "dataset_name": "flickr", "tokens_negative": [[0, len(caption)]]}
    data = {"images": [
        dict(base, id=0, sentence_id=0, tokens_positive_eval=[[[0, 14]], [[40, 51]]]),
        dict(base, id=1, sentence_id=3, caption="time spent together .", tokens_positive_eval=[]),  # nothing scored
        dict(base, id=2, sentence_id=0, tokens_positive_eval=[[[0, 9]]]),  # "Two young": no such phrase
        dict(base, id=3, sentence_id=0, original_img_id=12345, tokens_positive_eval=[[[0, 14]]]),
        dict(base, id=4, sentence_id=1, tokens_positive_eval=[[0, 14]]),  # a span, not a list of spans
        dict(base, id=5, sentence_id=9, tokens_positive_eval=[[[0, 14]]]),
        dict(base, id=6, sentence_id=1, width="wide", tokens_positive_eval=[[[0, 14]]]),
    ], "annotations": [], "categories": []}
    path = tmp_path / "final_flickr_mergedGT_test.json"
    path.write_text(json.dumps(data))
    items, skipped = read_flickr30k_entities("flickr30k_entities", entities=root, images=images,
                                             annotations=str(path), protocol="any_box")
    released, _ = read_flickr30k_entities("flickr30k_entities", entities=root, images=images)
    assert [it.id for it in items] == [f"{A}_0"]
    for key in ("phrases", "phrase_ids", "phrase_types", "boxes"):
        assert items[0].meta[key] == released[0].meta[key]
    assert (items[0].meta["width"], items[0].meta["height"], items[0].meta["protocol"]) == (333.0, 500.0, "any_box")
    assert items[0].question == caption and items[0].images == released[0].images
    assert len(skipped) == 5
    text = " | ".join(s["reason"] for s in skipped)
    assert "images[2]: phrase 0 'Two young' is not a phrase with boxes of sentence 0" in text
    assert f"images[3]: image 12345 is not listed in {root}/test.txt" in text
    assert "images[4]: tokens_positive_eval[0] is [0, 14], not [[start, end], ...]" in text
    assert "images[5]: sentence_id 9 is not a sentence of" in text and "(it has 5)" in text
    assert "images[6]: field 'width' is 'wide', not a number" in text


def test_flickr_files_one_sentence(tmp_path):
    root, images = flickr_release(tmp_path)
    task = "flickr30k_entities"
    with pytest.raises(ValueError, match=r"^eval task 'flickr30k_entities': Flickr30k Entities folder .* has no "
                                         r"train.txt \(split 'train'\); the splits present are test, val\.$"):
        read_flickr30k_entities(task, entities=root, images=images, split="train")
    with pytest.raises(ValueError, match=r"needs config.eval.flickr30k_entities.entities; it is unset"):
        read_flickr30k_entities(task, entities="", images=images)
    with pytest.raises(ValueError, match=r"has no Sentences folder"):
        read_flickr30k_entities(task, entities=images, images=images)
    with pytest.raises(ValueError, match=r"protocol is 'any'; known: merged, any_box\.$"):
        read_flickr30k_entities(task, entities=root, images=images, protocol="any")
    bad = tmp_path / "bad.json"
    bad.write_text('{"images": [')
    with pytest.raises(ValueError, match=r"^eval task 'flickr30k_entities': .*bad.json: not valid JSON \(.*\)\.$"):
        read_flickr30k_entities(task, entities=root, images=images, annotations=str(bad))
    bad.write_text("[]")
    with pytest.raises(ValueError, match=r"bad.json: expected a JSON object, found a list\.$"):
        read_flickr30k_entities(task, entities=root, images=images, annotations=str(bad))
    (tmp_path / "flickr30k_entities" / "val.txt").write_text("\n")
    with pytest.raises(ValueError, match=r"val.txt: lists no image ids\.$"):
        read_flickr30k_entities(task, entities=root, images=images, split="val")


# ====================================================================================================================
# Flickr30k Entities: the scorer
# ====================================================================================================================
DECODES = [
    # (answer, (entity, grid box) pairs, rule of decode_bbox_from_caption)
    ("A man [1, 2, 3, 4], a dog [5, 6, 7, 8].", [("A man", (1, 2, 3, 4)), ("a dog", (5, 6, 7, 8))],
     "the entity restarts after the delimiter following a box"),
    ("a man [1, 2, 3, 4] and a dog [5, 6, 7, 8]", [("a man", (1, 2, 3, 4)), ("", (5, 6, 7, 8))],
     "no delimiter: the search stops at the next box's first ',', so its entity is empty"),
    ("two men [1, 2, 3, 4][5, 6, 7, 8]; hats [9, 9, 9, 9]", [("two men", (1, 2, 3, 4)), ("", (5, 6, 7, 8)),
                                                              ("hats", (9, 9, 9, 9))], "a chain's two boxes"),
    ("a man [ 999 ,0, 999, 0, 5 ]", [("a man", (999, 0, 999, 0))], "int() pieces, numbers past the 4th ignored"),
    ("a man [1, 2, 3]", [], "3 numbers: resize_bbox's uncaught IndexError -> nothing"),
    ("a man [1, 2, 3, 4], a dog [0.5, 1, 2, 3]", [], "a float piece: the caught ValueError drops every pair"),
    ("a man [-10, 0, 1200, 999]", [("a man", (-10, 0, 1200, 999))], "signs and values past the grid are read"),
    ("no boxes here.", [], "no brackets"),
]


@pytest.mark.parametrize("answer,pairs,rule", DECODES)
def test_decode_ferret_phrases(answer, pairs, rule):
    assert grounding.decode_ferret_phrases(answer) == pairs, rule
    # the same boxes as the RefCOCO scorer's reading of the same decoder (eval_refexp.py)
    assert [tuple(float(v) for v in box) for _, box in pairs] == refexp.parse_ferret_boxes(answer), rule


@pytest.mark.parametrize("a,b,same", [
    ("Two young , White males", "two young white males", True),  # FLICKR are_phrases_similar: punctuation deleted
    ("a man 's hat", "A man's hat", True),  # "'" spaced then deleted on both sides
    ("the  red   car", "the red car.", True),
    ("a-man", "a man", False),  # '-' is deleted, joining the words
    ("a man", "a men", False),
])
def test_phrases_similar(a, b, same):
    assert grounding.phrases_similar(a, b) is same


def flickr_item(phrases, boxes, types=None, size=(1000, 1000), protocol="merged", iid="1_0"):
    types = types or [["people"]] * len(phrases)
    return Item(id=iid, images=["x.jpg"], question=" ".join(phrases),
                meta={"phrases": phrases, "phrase_types": types, "boxes": boxes, "width": size[0],
                      "height": size[1], "protocol": protocol})


def hits(answer, phrase, targets, size=(1000, 1000), protocol="merged"):
    return grounding.phrase_hits(answer, phrase, targets, size[0], size[1], protocol)


def test_iou_exactly_half_is_a_hit():
    # FLICKR: >= 0.5; a 1000-pixel side maps the grid 1:1 (int(v * 1.0))
    assert hits("a man [0, 0, 50, 100]", "a man", [[0, 0, 100, 100]])[1] is True  # 5000 / 10000
    assert hits("a man [0, 0, 49, 100]", "a man", [[0, 0, 100, 100]])[1] is False  # 4900 / 10000
    iou = grounding.box_iou_matrix([[0, 0, 50, 100]], [[0, 0, 100, 100], [25, 0, 75, 100]])
    assert iou.tolist() == [[0.5, 2500 / 7500]]


def test_several_boxes_per_phrase_both_protocols():
    targets = [[0, 0, 100, 100], [200, 0, 300, 100]]  # one chain, two boxes; merged: [0, 0, 300, 100]
    assert grounding.merge_boxes(targets) == [[0, 0, 300, 100]]
    one = "a man [0, 0, 100, 100]"
    assert hits(one, "a man", targets, protocol="any_box")[1] is True  # IoU 1 with the first box
    assert hits(one, "a man", targets, protocol="merged")[1] is False  # 10000 / 30000
    both = "a man [0, 0, 300, 100]"
    assert hits(both, "a man", targets, protocol="merged")[1] is True
    assert hits(both, "a man", targets, protocol="any_box")[1] is False  # 1/3 against either box
    with pytest.raises(ValueError, match="unknown Flickr30k Entities box protocol 'mdetr'"):
        hits(one, "a man", targets, protocol="mdetr")


def test_recall_at_k_takes_the_phrase_boxes_in_order():
    # FLICKR: every entity similar to the phrase gives a box; ious[:1] the first, Upper_bound all of them
    answer = "A man [500, 500, 600, 600], a dog [0, 0, 10, 10], a man [0, 0, 100, 100]."
    got = hits(answer, "a man", [[0, 0, 100, 100]])
    assert got == {1: False, 5: True, 10: True, -1: True}
    assert grounding.phrase_boxes(answer, "a man", 1000, 1000) == [[500, 500, 600, 600], [0, 0, 100, 100]]


def test_answer_without_box_and_out_of_range_coordinates():
    # no box for the phrase -> [0, 0, 0, 0]: IoU 0, a miss at every k
    assert hits("I cannot see a man.", "a man", [[0, 0, 100, 100]]) == {1: False, 5: False, 10: False, -1: False}
    assert hits("a woman [0, 0, 100, 100]", "a man", [[0, 0, 100, 100]])[-1] is False  # another entity's box
    assert hits("a man [0, 0, 100]", "a man", [[0, 0, 100, 100]])[1] is False  # 3 numbers: no pair at all
    # grid 1200 on a 500-pixel side: int(1200 * 0.5) = 600, never clipped. Target [400, 0, 500, 500]:
    # unclipped IoU = 100*499 / (300*499 + 100*500 - 100*499) = 49900 / 149800 < 0.5 (clipped to 500 it would hit)
    assert grounding.phrase_boxes("a man [800, 0, 1200, 999]", "a man", 500, 500) == [[400, 0, 600, 499]]
    assert hits("a man [800, 0, 1400, 999]", "a man", [[400, 0, 500, 500]], size=(500, 500))[1] is False
    assert grounding.phrase_boxes("a man [-10, 0, 5, 5]", "a man", 500, 500) == [[-5, 0, 2, 2]]  # int() truncates
    # numpy's max: a nan (0/0: a 0-area prediction on a 0-area target) in the slice is a miss, under any_box too
    assert hits("a man [5, 5, 5, 5]", "a man", [[5, 5, 5, 5], [0, 0, 10, 10]], protocol="any_box")[-1] is False


def test_flickr_aggregate_hand_computed():
    items = [
        flickr_item(["a man", "a dog"], [[[0, 0, 100, 100]], [[200, 200, 300, 300], [300, 300, 400, 400]]],
                    [["people"], ["animals"]]),
        flickr_item(["a man", "a man"], [[[0, 0, 100, 100]], [[0, 0, 100, 100]]], [["people", "other"]] * 2,
                    size=(500, 500), iid="2_0"),
        flickr_item(["hats"], [[[0, 0, 10, 10]]], [["clothing"]], iid="3_0"),
    ]
    predictions = [
        "A man [0, 0, 100, 100], a dog [200, 200, 400, 400].",  # man hit; dog: merged [200, 200, 400, 400] hit
        "a man [0, 0, 200, 200]",  # 500 px: [0, 0, 100, 100], both phrases take this first box: 2 hits
        "No hats.",  # no box: a miss
    ]
    scores, rows, details = grounding.AGGREGATES["flickr30k_entities"](items, predictions, "lmms_eval")
    assert scores == {"recall_at_1": 4 / 5}
    assert [r["recall"] for r in rows] == [1.0, 1.0, 0.0] and rows[2]["hits"] == [False]
    assert rows[1]["boxes"] == [[0, 0, 100, 100]] * 2 and rows[2]["boxes"] == [None]
    table = details["table"]["Recall@1"]
    assert table == {"all": 0.8, "animals": 1.0, "clothing": 0.0, "other": 1.0, "people": 1.0}
    assert list(table) == sorted(table) and set(details["table"]) == {"Recall@1", "Recall@5", "Recall@10",
                                                                      "Upper_bound"}
    assert details["metric"]["Recall@1_all"] == 0.8 and details["metric"]["Upper_bound_clothing"] == 0.0
    assert details["protocol"] == ["merged"] and details["phrases"] == 5 and details["phrases_without_box"] == 1
    assert details["convention"] == "official"
    # the same answers under AnyBox: the dog's [200, 200, 400, 400] is 1/4 of either box -> a miss
    for it in items:
        it.meta["protocol"] = "any_box"
    scores, _, details = grounding.flickr30k_aggregate(items, predictions, "official")
    assert scores == {"recall_at_1": 3 / 5} and details["protocol"] == ["any_box"]


# ====================================================================================================================
# LVIS-Ref: records with model_lvis.py's fields
# ====================================================================================================================
def lvis_record(rid, name="cat", neg="dog", synonyms=("cat",), **kw):
    record = {"id": rid, "image_path": f"coco/val2017/{rid:012d}.jpg", "width": 640, "height": 480, "name": name,
              "synonyms": list(synonyms), "neg_class": neg, "bbox": [64, 240, 639.36, 480],
              "bbox_norm": [0.1234, 0.5, 0.9999, 1.0], "sample_point": [100, 50],
              "free_shape_bbox_raw": [10, 20, 630, 470]}
    record.update(kw)
    return record


def lvis_files(tmp_path, lines):
    images = tmp_path / "val2017"
    for rid in (1, 2, 3, 4, 5, 6):
        picture(images / f"{rid:012d}.jpg")
    path = tmp_path / "lvis_eval.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return str(path), str(images)


def test_lvis_reader_regions_and_order(tmp_path):
    lines = [json.dumps(lvis_record(1)),
             json.dumps(lvis_record(2, name="baseball_bat", neg="bow_(weapon)", synonyms=["baseball_bat"])),
             json.dumps(lvis_record(3, synonyms=["bow_(weapon"])),  # eval_lvis.py's assert: skipped
             json.dumps({k: v for k, v in lvis_record(4).items() if k != "neg_class"}),
             "{not json",
             json.dumps(lvis_record(5, bbox_norm=[0.1, 0.2])),
             json.dumps(lvis_record(6, width=0))]
    path, images = lvis_files(tmp_path, lines)
    items, skipped = read_lvis_ref("lvis_ref", annotations=path, images=images)
    assert [it.id for it in items] == ["1", "2"]
    one, two = items
    # PROMPT: box = int(bbox_norm * 1000); name first on an even line, second on an odd one; names as in the file
    assert one.meta["region"] == [123, 500, 999, 1000] and one.meta["classes"] == ["cat", "dog"]
    assert one.question == "Is the object [123, 500, 999, 1000] of the image a cat or a dog?"
    assert grounding.QUESTIONS["lvis_ref"](two) == \
        "Is the object [123, 500, 999, 1000] of the image a bow_(weapon) or a baseball_bat?"
    assert one.images == [f"{images}/000000000001.jpg"] and one.answers == ["cat"]
    assert (one.meta["line_index"], two.meta["line_index"], one.meta["region_format"]) == (0, 1, "box")
    why = reasons(skipped)
    assert why["3"].endswith("line 3: synonym 'bow_(weapon' fails eval_lvis.py's asserts (one '(' and a ')')")
    assert why["4"].endswith("line 4: lacks the field 'neg_class'")
    assert why["line 5"].endswith("line 5: not valid JSON (Expecting property name enclosed in double quotes: "
                                  "column 2)")
    assert why["5"].endswith("line 6: field 'bbox_norm' is [0.1, 0.2], not a list of 4 numbers")
    assert why["6"].endswith("line 7: width 0 / height 480 are not positive")
    # point: int(x * (1000 / 640)) = int(156.25), int(50 * (1000 / 480)) = int(104.17)
    items, _ = read_lvis_ref("lvis_ref", annotations=path, images=images, region="point")
    assert items[0].meta["region"] == [156, 104]
    assert items[0].question == "Is the object [156, 104] of the image a cat or a dog?"
    # free_shape: the shape's pixel box times 1000 / side: 15.625, 41.67, 984.375, 979.17 truncated
    items, _ = read_lvis_ref("lvis_ref", annotations=path, images=images, region="free_shape")
    assert items[0].meta["region"] == [15, 41, 984, 979]


def test_lvis_files_one_sentence(tmp_path):
    path, images = lvis_files(tmp_path, [json.dumps(lvis_record(1))])
    with pytest.raises(ValueError, match=r"region is 'mask'; known: box, point, free_shape\.$"):
        read_lvis_ref("lvis_ref", annotations=path, images=images, region="mask")
    with pytest.raises(ValueError, match=r"^eval task 'lvis_ref': annotation file '.*nowhere.jsonl' does not exist"):
        read_lvis_ref("lvis_ref", annotations=str(tmp_path / "nowhere.jsonl"), images=images)
    (tmp_path / "empty.jsonl").write_text("")
    with pytest.raises(ValueError, match=r"empty.jsonl: has no JSON lines \(the file is empty\)\.$"):
        read_lvis_ref("lvis_ref", annotations=str(tmp_path / "empty.jsonl"), images=images)
    with pytest.raises(ValueError, match=r"image folder .* does not exist"):
        read_lvis_ref("lvis_ref", annotations=path, images=str(tmp_path / "no_images"))


# ====================================================================================================================
# LVIS-Ref: the scorer
# ====================================================================================================================
@pytest.mark.parametrize("answer,name,synonyms,right,rule", [
    ("The object is a cat.", "cat", ["cat"], True, "the name is in the answer"),
    ("It is a cat or a dog.", "cat", [], True, "the negative class is never checked"),
    ("It is not a cat, it is a dog.", "cat", ["cat"], False, r"'\s+not[^,.]*[,.]' deletes ' not a cat,'"),
    ("It is a notebook.", "notebook", ["notebook"], False, r"'\s+no[^,.]*[,.]' deletes ' notebook.' too"),
    ("It is a notebook", "notebook", [], True, "no ',' or '.' after it: nothing deleted"),
    ("It is a Cat.", "cat", ["cat"], False, "case-sensitive"),
    ("That is a baseball bat.", "baseball_bat", [], True, "'_' -> ' ' in the name"),
    ("A bow, used to shoot.", "bow_(weapon)", ["bow_(weapon)"], True, "'bow_(weapon)' gives 'bow' and 'weapon'"),
    ("A weapon.", "bow_(weapon)", ["bow_(weapon)"], True, "the parenthesised part is a synonym of its own"),
    ("A bird.", "x", ["(x)"], True, "'(x)' gives an empty synonym, a substring of anything"),
    ("", "cat", ["cat"], False, "empty answer"),
])
def test_lvis_correct(answer, name, synonyms, right, rule):
    assert grounding.lvis_correct(answer, name, synonyms) is right, rule


def test_lvis_class_names_and_aggregate():
    assert grounding.lvis_class_names("baseball_bat", ["baseball_bat", "bow_(weapon)", " ball "]) == \
        ("baseball bat", ["baseball bat", "bow", "weapon", "ball"])
    with pytest.raises(ValueError, match="fails eval_lvis.py's asserts"):
        grounding.lvis_class_names("bow", ["a_(b)_(c)"])
    items = [Item(id=str(i), images=["x.jpg"], meta={"name": n, "synonyms": [n], "region_format": "box"})
             for i, n in enumerate(["cat", "dog", "bird", "cow"])]
    predictions = ["A cat.", "It is no dog, it is a cat.", "bird", "It's a horse."]
    scores, rows, details = grounding.AGGREGATES["lvis_ref"](items, predictions, "vlmevalkit")
    assert scores == {"accuracy": 0.5} and [r["correct"] for r in rows] == [True, False, True, False]
    assert details == {"region_format": ["box"], "convention": "official"}
    assert math.isnan(grounding.lvis_ref_aggregate([], [], "official")[0]["accuracy"])
