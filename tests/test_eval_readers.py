"""Benchmark readers on small files in each official release format, with real photographs (scikit-image's data):
the exact items, file-level errors (ValueError naming the task and the file) and record-level skips (the reason
names the file and the record; the other items are kept)."""
import base64
import csv
import io
import json
import os
import pickle
import re

import pytest
import skimage.data
from PIL import Image

from mm1_jax.eval import readers
from mm1_jax.eval.prompts import Item

PHOTOS = os.path.dirname(skimage.data.__file__)


def photo(path, source="astronaut.png"):
    """A real photograph saved at `path` in the format its extension names (small, to stay fast)."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with Image.open(os.path.join(PHOTOS, source)) as img:
        img = img.convert("RGB")
        img.thumbnail((48, 48))
        img.save(path)
    return str(path)


def photo_bytes(source="coffee.png"):
    buf = io.BytesIO()
    with Image.open(os.path.join(PHOTOS, source)) as img:
        img = img.convert("RGB")
        img.thumbnail((48, 48))
        img.save(buf, format="JPEG")
    return buf.getvalue()


def dump(path, data):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return str(path)


def jsonl(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return str(path)


def ids(items):
    return [i.id for i in items]


def reasons(skipped):
    return {s["id"]: s["reason"] for s in skipped}


# --- captions


def test_captions_coco_format_nocaps(tmp_path):
    images = tmp_path / "validation"
    photo(images / "0013ea2087020901.jpg", "astronaut.png")
    photo(images / "00223ce6e7d2bf8c.jpg", "chelsea.png")
    info = {"description": "nocaps validation", "version": "0.1", "year": 2019}
    ann = dump(tmp_path / "nocaps_val_4500_captions.json", {
        "licenses": [], "info": info,
        "images": [
            {"id": 0, "open_images_id": "0013ea2087020901", "height": 1024, "width": 732, "coco_url": "https://x/0.jpg",
             "file_name": "0013ea2087020901.jpg", "license": 2, "date_captured": "2018-11-06 11:04:33"},
            {"id": 1, "open_images_id": "00223ce6e7d2bf8c", "height": 683, "width": 1024, "coco_url": "https://x/1.jpg",
             "file_name": "00223ce6e7d2bf8c.jpg", "license": 2, "date_captured": "2018-11-06 11:04:33"},
            {"id": 2, "file_name": "0026e8bf5c1a2bb6.jpg", "height": 10, "width": 10},  # not on disk
            {"id": 3, "file_name": "003ad48ab5a23e5f.jpg"},  # no caption
            {"file_name": "no_id.jpg"},  # lacks id
        ],
        "annotations": [
            {"image_id": 0, "id": 0, "caption": "An astronaut in a white suit holds a helmet."},
            {"image_id": 1, "id": 10, "caption": "A cat lying on a rug."},
            {"image_id": 0, "id": 1, "caption": "A woman poses next to a flag."},
            {"image_id": 2, "id": 20, "caption": "A tree."},
            {"image_id": 1, "id": 11},  # lacks caption
        ]})
    items, skipped = readers.read_captions("nocaps", annotations=ann, images=str(images))
    assert items == [
        Item(id="0", images=[str(images / "0013ea2087020901.jpg")], meta={"image_id": 0},
             answers=["An astronaut in a white suit holds a helmet.", "A woman poses next to a flag."]),
        Item(id="1", images=[str(images / "00223ce6e7d2bf8c.jpg")], answers=["A cat lying on a rug."],
             meta={"image_id": 1}),
    ]
    assert reasons(skipped) == {
        "11": f"{ann}: annotations[4]: lacks the field 'caption'",
        "3": f"{ann}: images[3]: no caption in 'annotations' has image_id 3",
        "4": f"{ann}: images[4]: lacks the field 'id'",
        "2": f"{ann}: images[2]: image file '{images / '0026e8bf5c1a2bb6.jpg'}' does not exist",
    }


def test_captions_image_info_file_has_no_references(tmp_path):
    photo(tmp_path / "COCO_test2014_000000000001.jpg")
    ann = dump(tmp_path / "image_info_test2014.json", {"info": {}, "images": [
        {"id": 1, "file_name": "COCO_test2014_000000000001.jpg", "width": 640, "height": 480}]})
    items, skipped = readers.read_captions("coco_cap", annotations=ann, images=str(tmp_path))
    assert items == [Item("1", [str(tmp_path / "COCO_test2014_000000000001.jpg")], meta={"image_id": 1})]
    assert skipped == []


def _textcaps_record(image_id, caption, refs=None, **extra):
    rec = {"image_id": image_id, "image_classes": ["Poster"], "flickr_original_url": "https://x",
           "flickr_300k_url": "https://y", "image_width": 1024, "image_height": 768, "set_name": "val",
           "image_name": image_id, "image_path": f"train/{image_id}.jpg", "caption_id": 1, "caption_str": caption,
           "caption_tokens": ["<s>"] + caption.split() + ["</s>"]}
    if refs is not None:
        rec.update(reference_strs=refs, reference_tokens=[r.split() for r in refs])
    rec.update(extra)
    return rec


def test_captions_textcaps_release(tmp_path):
    images = tmp_path / "train_images"
    photo(images / "011e7e629fb9ae7b.jpg", "coffee.png")
    photo(images / "0a0bc91825468c45.jpg", "rocket.jpg")
    refs = ["A cup of coffee on a saucer.", "Coffee in a white cup.", "A latte on a table."]
    no_name = _textcaps_record("0a0bc91825468c45", "A rocket on its pad.")
    del no_name["image_name"]
    ann = dump(tmp_path / "TextCaps_0.1_val.json", {
        "dataset_type": "val", "dataset_name": "textcaps", "dataset_version": "0.1", "data": [
            _textcaps_record("011e7e629fb9ae7b", refs[0], refs),
            _textcaps_record("011e7e629fb9ae7b", refs[1], refs),
            dict(no_name),  # no reference_strs, no image_name: captions collected, image from image_path
            dict(no_name, caption_str="A launch tower beside a rocket."),
            {"caption_str": "lacks image_id"},
            _textcaps_record("ffffffffffffffff", "gone", ["gone"]),
        ]})
    items, skipped = readers.read_captions("textcaps", annotations=ann, images=str(images))
    assert items == [
        Item("011e7e629fb9ae7b", [str(images / "011e7e629fb9ae7b.jpg")], answers=refs,
             meta={"image_id": "011e7e629fb9ae7b"}),
        Item("0a0bc91825468c45", [str(images / "0a0bc91825468c45.jpg")],
             answers=["A rocket on its pad.", "A launch tower beside a rocket."],
             meta={"image_id": "0a0bc91825468c45"}),
    ]
    assert reasons(skipped) == {
        "4": f"{ann}: data[4]: lacks the field 'image_id'",
        "ffffffffffffffff": f"{ann}: data[5]: image file '{images / 'ffffffffffffffff.jpg'}' does not exist"}


# --- VQA family


def test_vqa_v2_and_okvqa(tmp_path):
    images = tmp_path / "val2014"
    photo(images / "COCO_val2014_000000000042.jpg", "astronaut.png")
    photo(images / "COCO_val2014_000000000073.jpg", "chelsea.png")
    questions = dump(tmp_path / "OpenEnded_mscoco_val2014_questions.json", {
        "info": {}, "task_type": "Open-Ended", "data_type": "mscoco", "data_subtype": "val2014", "license": {},
        "questions": [
            {"image_id": 42, "question": "What is she holding?", "question_id": 420},
            {"image_id": 73, "question": "What animal is this?", "question_id": 730},
            {"image_id": 73, "question": "Is it asleep?", "question_id": 731},  # no annotation
            {"image_id": 99, "question": "Where?", "question_id": 990},  # image not on disk
            {"image_id": 42, "question_id": 421},  # lacks question
            {"image_id": 73, "question": "Bad answers?", "question_id": 732},
        ]})
    human = ["helmet"] * 7 + ["space helmet", "hat", "helmet"]
    anns = dump(tmp_path / "mscoco_val2014_annotations.json", {
        "info": {}, "license": {}, "data_subtype": "val2014", "data_type": "mscoco", "annotations": [
            {"image_id": 42, "answer_type": "other", "question_type": "what is", "question_id": 420,
             "multiple_choice_answer": "helmet", "confidence": 3,
             "answers": [{"answer_id": j + 1, "raw_answer": a, "answer_confidence": "yes", "answer": a}
                         for j, a in enumerate(human)]},
            {"image_id": 73, "question_id": 730, "answers": [{"answer": "cat", "answer_confidence": "yes"}] * 10},
            {"image_id": 99, "question_id": 990, "answers": [{"answer": "space"}] * 10},
            {"image_id": 73, "question_id": 732, "answers": [{"answer_confidence": "yes"}]},
        ]})
    items, skipped = readers.read_vqa("okvqa", questions=questions, annotations=anns, images=str(images))
    assert items == [
        Item("420", [str(images / "COCO_val2014_000000000042.jpg")], "What is she holding?", human,
             meta={"question_id": 420, "image_id": 42}),
        Item("730", [str(images / "COCO_val2014_000000000073.jpg")], "What animal is this?", ["cat"] * 10,
             meta={"question_id": 730, "image_id": 73}),
    ]
    assert reasons(skipped) == {
        "731": f"{questions}: questions[2]: no record in {anns} has question_id 731",
        "421": f"{questions}: questions[4]: lacks the field 'question'",
        "732": f"{anns}: annotations[3]: lacks the field 'answers[0].answer'",
        "990": f"{questions}: questions[3]: image file '{images / 'COCO_val2014_000000000099.jpg'}' does not exist",
    }
    # without annotations: predictions only, every question kept
    items, skipped = readers.read_vqa("vqa", questions=questions, annotations="", images=str(images))
    assert ids(items) == ["420", "730", "731", "732"] and all(i.answers == [] for i in items)
    assert set(reasons(skipped)) == {"421", "990"}
    # an image_pattern naming another field is a config error
    with pytest.raises(ValueError, match=r"eval task 'vqa': config\.eval\.vqa\.image_pattern '\{id\}\.jpg'"):
        readers.read_vqa("vqa", questions=questions, annotations="", images=str(images), image_pattern="{id}.jpg")
    # a questions file without "questions"
    wrong = dump(tmp_path / "v2_mscoco_val2014_annotations.json", {"annotations": []})
    with pytest.raises(ValueError, match=re.escape(f"eval task 'vqa': {wrong}: expected a JSON object with a "
                                                   "'questions' list, found keys ['annotations'].")):
        readers.read_vqa("vqa", questions=wrong, annotations=anns, images=str(images))


def test_vizwiz(tmp_path):
    images = tmp_path / "val"
    photo(images / "VizWiz_val_00000000.jpg", "coffee.png")
    photo(images / "VizWiz_val_00000001.jpg", "text.png")
    answers = ["coffee"] * 6 + ["unanswerable"] * 2 + ["latte", "coffee cup"]
    ann = dump(tmp_path / "val.json", [
        {"image": "VizWiz_val_00000000.jpg", "question": "What is in this cup?", "answer_type": "other",
         "answerable": 1, "answers": [{"answer": a, "answer_confidence": "yes"} for a in answers]},
        {"image": "VizWiz_val_00000001.jpg", "question": "What does this say?", "answer_type": "unanswerable",
         "answerable": 0, "answers": [{"answer": "unanswerable", "answer_confidence": "maybe"}] * 10},
        {"image": "VizWiz_val_00000002.jpg", "question": "Gone?", "answers": []},
        {"question": "no image", "answers": []},
    ])
    items, skipped = readers.read_vizwiz("vizwiz", annotations=ann, images=str(images))
    assert items == [
        Item("VizWiz_val_00000000", [str(images / "VizWiz_val_00000000.jpg")], "What is in this cup?", answers,
             meta={"image": "VizWiz_val_00000000.jpg"}),
        Item("VizWiz_val_00000001", [str(images / "VizWiz_val_00000001.jpg")], "What does this say?",
             ["unanswerable"] * 10, meta={"image": "VizWiz_val_00000001.jpg"}),
    ]
    assert reasons(skipped) == {
        "3": f"{ann}: [3]: lacks the field 'image'",
        "VizWiz_val_00000002": f"{ann}: [2]: image file '{images / 'VizWiz_val_00000002.jpg'}' does not exist"}
    with pytest.raises(ValueError, match=re.escape(f"eval task 'vizwiz': {ann}: expected a JSON list of questions, "
                                                   "found a JSON object.")):
        readers.read_vizwiz("vizwiz", annotations=dump(tmp_path / "val.json", {"data": []}), images=str(images))
    with pytest.raises(ValueError, match=re.escape("eval task 'vizwiz' needs config.eval.vizwiz.annotations; "
                                                   "it is unset.")):
        readers.read_vizwiz("vizwiz", annotations="", images=str(images))


def test_textvqa(tmp_path):
    images = tmp_path / "train_images"
    photo(images / "003a8ae2ef43b901.jpg", "text.png")
    answers = ["stop", "stop", "stop sign", "stop", "stop", "stop", "stop", "stop", "stop", "stop"]
    ann = dump(tmp_path / "TextVQA_0.5.1_val.json", {"dataset_type": "val", "dataset_name": "textvqa",
                                                     "dataset_version": "0.5.1", "data": [
        {"question": "what does the sign say?", "image_id": "003a8ae2ef43b901", "image_classes": ["Sign"],
         "flickr_original_url": "https://x", "flickr_300k_url": "https://y", "image_width": 1024,
         "image_height": 664, "answers": answers, "question_tokens": ["what", "does"], "question_id": 34602,
         "set_name": "val"},
        {"question": "lacks id", "image_id": "003a8ae2ef43b901", "answers": answers},
        {"question": "answers not a list", "image_id": "003a8ae2ef43b901", "question_id": 34603, "answers": "stop"},
        {"question": "image gone", "image_id": "ffffffffffffffff", "question_id": 34604, "answers": answers},
    ]})
    items, skipped = readers.read_textvqa("textvqa", annotations=ann, images=str(images))
    assert items == [Item("34602", [str(images / "003a8ae2ef43b901.jpg")], "what does the sign say?", answers,
                          meta={"question_id": 34602, "image_id": "003a8ae2ef43b901"})]
    assert reasons(skipped) == {"1": f"{ann}: data[1]: lacks the field 'question_id'",
                                "34603": f"{ann}: data[2]: field 'answers' is a string, not a list",
                                "34604": f"{ann}: data[3]: image file '{images / 'ffffffffffffffff.jpg'}' does not "
                                         "exist"}


def test_gqa(tmp_path):
    images = tmp_path / "images"
    photo(images / "n161313.jpg", "chelsea.png")
    questions = dump(tmp_path / "testdev_balanced_questions.json", {
        "20968379": {"semantic": [{"operation": "select", "dependencies": [], "argument": "cat (1)"}],
                     "entailed": [], "equivalent": ["20968379"], "question": "Is the cat asleep?",
                     "imageId": "n161313", "isBalanced": True, "groups": {"global": None, "local": "13-cat"},
                     "answer": "no", "semanticStr": "select: cat", "annotations": {"answer": {}, "question": {}},
                     "types": {"detailed": "verifyAttr", "semantic": "attr", "structural": "verify"},
                     "fullAnswer": "No, the cat is awake."},
        "20968380": {"question": "What color?", "answer": "orange"},  # lacks imageId
        "20968381": {"imageId": "n999999", "question": "Where?", "answer": "rug"},
        "20968382": {"imageId": "n161313", "question": "Is it a dog?", "answer": "no", "isBalanced": False},
    })
    items, skipped = readers.read_gqa("gqa", questions=questions, images=str(images))
    assert items == [Item("20968379", [str(images / "n161313.jpg")], "Is the cat asleep?", ["no"],
                          meta={"question_id": "20968379", "answer_type": "binary"})]  # structural "verify"
    assert reasons(skipped) == {
        "20968380": f'{questions}: ["20968380"]: lacks the field \'imageId\'',
        "20968381": f'{questions}: ["20968381"]: image file \'{images / "n999999.jpg"}\' does not exist'}
    wrong = dump(tmp_path / "q.json", [{"question": "x"}])
    with pytest.raises(ValueError, match=re.escape(f"eval task 'gqa': {wrong}: expected a JSON object of "
                                                   "question_id -> question, found a list.")):
        readers.read_gqa("gqa", questions=wrong, images=str(images))


def test_docvqa_and_infovqa(tmp_path):
    images = tmp_path / "val"
    photo(images / "documents" / "pybv0228_81.png", "page.png")
    doc = dump(tmp_path / "val_v1.0.json", {"dataset_name": "docvqa", "dataset_version": "1.0",
                                            "dataset_split": "val", "data": [
        {"questionId": 49153, "question": "What is the ‘actual’ value per 1000, during the year 1975?",
         "question_types": ["figure/diagram"], "image": "documents/pybv0228_81.png", "docId": 14465,
         "ucsf_document_id": "pybv0228", "ucsf_document_page_no": "81", "answers": ["0.28"], "data_split": "val"},
        {"questionId": 49154, "question": "no image field", "answers": ["x"]},
    ]})
    items, skipped = readers.read_docvqa("docvqa", annotations=doc, images=str(images))
    assert items == [Item("49153", [str(images / "documents" / "pybv0228_81.png")],
                          "What is the ‘actual’ value per 1000, during the year 1975?", ["0.28"],
                          meta={"questionId": 49153})]
    assert reasons(skipped) == {"49154": f"{doc}: data[1]: lacks the field 'image' (or 'image_local_name')"}

    info_images = tmp_path / "infographicsvqa_images"
    photo(info_images / "37313.jpeg", "logo.png")
    info = dump(tmp_path / "infographicsVQA_val_v1.0.json", {"dataset_name": "infographicVQA",
                                                              "dataset_split": "val", "data": [
        {"questionId": 65718, "question": "What percentage of workers are not working from home?",
         "image_local_name": "37313.jpeg", "image_url": "https://x", "ocr_output_file": "37313.json",
         "answers": ["77%", "77"], "data_split": "val", "answer_type": ["single span"], "evidence": ["figure"],
         "operation/reasoning": []},
        {"questionId": 65719, "question": "Test record, no answers", "image_local_name": "37313.jpeg"},
        {"questionId": 65720, "question": "gone", "image_local_name": "40000.jpeg", "answers": ["1"]},
    ]})
    items, skipped = readers.read_docvqa("infovqa", annotations=info, images=str(info_images))
    path = str(info_images / "37313.jpeg")
    assert items == [
        Item("65718", [path], "What percentage of workers are not working from home?", ["77%", "77"],
             meta={"questionId": 65718}),
        Item("65719", [path], "Test record, no answers", [], meta={"questionId": 65719}),
    ]
    assert reasons(skipped) == {
        "65720": f"{info}: data[2]: image file '{info_images / '40000.jpeg'}' does not exist"}


def test_chartqa(tmp_path):
    images = tmp_path / "test" / "png"
    photo(images / "41699051005347.png", "coffee.png")
    photo(images / "multi_col_1174.png", "rocket.jpg")
    ann = dump(tmp_path / "test_human.json", [
        {"imgname": "41699051005347.png", "query": "How many food item is shown in the bar graph?", "label": "14"},
        {"imgname": "multi_col_1174.png", "query": "What is the difference?", "label": 0.57},
        {"imgname": "multi_col_1174.png", "label": "1"},
        {"imgname": "two_col_9999.png", "query": "gone", "label": "1"},
    ])
    items, skipped = readers.read_chartqa("chartqa", annotations=ann, images=str(images))
    assert items == [
        Item("0", [str(images / "41699051005347.png")], "How many food item is shown in the bar graph?", ["14"],
             meta={"imgname": "41699051005347.png"}),
        Item("1", [str(images / "multi_col_1174.png")], "What is the difference?", ["0.57"],
             meta={"imgname": "multi_col_1174.png"}),
    ]
    assert reasons(skipped) == {
        "2": f"{ann}: [2]: lacks the field 'query'",
        "3": f"{ann}: [3]: image file '{images / 'two_col_9999.png'}' does not exist"}


# --- grounding


def test_refcoco(tmp_path):
    images = tmp_path / "train2014"
    photo(images / "COCO_train2014_000000581857.jpg", "astronaut.png")
    photo(images / "COCO_train2014_000000000009.jpg", "chelsea.png")

    def ref(ref_id, ann_id, image_id, split, *sents):
        return {"sent_ids": list(range(len(sents))), "file_name": f"COCO_train2014_{image_id:012d}_{ann_id}.jpg",
                "ann_id": ann_id, "ref_id": ref_id, "image_id": image_id, "split": split, "category_id": 1,
                "sentences": [{"tokens": s.split(), "raw": s.upper(), "sent_id": 100 + j, "sent": s}
                              for j, s in enumerate(sents)]}

    refs = [ref(0, 1719310, 581857, "train", "the lady with the blue shirt"),
            ref(1, 1719310, 581857, "val", "woman in white", "astronaut on the left"),
            ref(2, 42, 9, "val", "cat"),
            ref(3, 777, 9, "val", "no such annotation"),
            {"ref_id": 4, "ann_id": 42, "split": "val"},  # lacks sentences
            ref(5, 43, 9, "testA", "cat again"),
            ref(6, 44, 10, "val", "a missing picture")]
    refs_path = tmp_path / "refs(unc).p"
    refs_path.write_bytes(pickle.dumps(refs, protocol=2))
    instances = dump(tmp_path / "instances.json", {
        "info": {}, "licenses": [], "categories": [{"id": 1, "name": "person", "supercategory": "person"}],
        "images": [{"license": 1, "file_name": "COCO_train2014_000000581857.jpg", "coco_url": "https://x",
                    "height": 640, "width": 427, "date_captured": "2013", "flickr_url": "https://y", "id": 581857},
                   {"file_name": "COCO_train2014_000000000009.jpg", "height": 480, "width": 640, "id": 9},
                   {"file_name": "COCO_train2014_000000000010.jpg", "height": 480, "width": 640, "id": 10}],
        "annotations": [{"segmentation": [[1, 2, 3, 4]], "area": 100.0, "iscrowd": 0, "image_id": 581857,
                         "bbox": [103.93, 299.99, 134.22, 177.42], "category_id": 1, "id": 1719310},
                        {"image_id": 9, "bbox": [10, 20, 30, 40], "category_id": 17, "id": 42},
                        {"image_id": 9, "bbox": [0, 0, 5, 5], "category_id": 17, "id": 43},
                        {"image_id": 10, "bbox": [1, 1, 2, 2], "category_id": 17, "id": 44}]})
    items, skipped = readers.read_refcoco("refcoco", refs=str(refs_path), instances=instances, images=str(images))
    person = str(images / "COCO_train2014_000000581857.jpg")
    box = [103.93, 299.99, 103.93 + 134.22, 299.99 + 177.42]
    meta = {"ref_id": 1, "box": box, "width": 427, "height": 640}
    assert items == [
        Item("1_0", [person], "woman in white", meta=meta),
        Item("1_1", [person], "astronaut on the left", meta=meta),
        Item("2_0", [str(images / "COCO_train2014_000000000009.jpg")], "cat",
             meta={"ref_id": 2, "box": [10.0, 20.0, 40.0, 60.0], "width": 640, "height": 480}),
    ]
    assert reasons(skipped) == {
        "3": f"{refs_path}: refs[3]: ann_id 777 is not an annotation of {instances}",
        "4": f"{refs_path}: refs[4]: lacks the field 'sentences'",
        "6_0": f"{refs_path}: refs[6]: image file '{images / 'COCO_train2014_000000000010.jpg'}' does not exist"}
    items, _ = readers.read_refcoco("refcoco", refs=str(refs_path), instances=instances, images=str(images),
                                    split="testA")
    assert ids(items) == ["5_0"] and items[0].meta["box"] == [0.0, 0.0, 5.0, 5.0]
    with pytest.raises(ValueError, match=re.escape(f"eval task 'refcoco': {refs_path}: has no refs of split 'testB'; "
                                                   "the splits present are testA, train, val.")):
        readers.read_refcoco("refcoco", refs=str(refs_path), instances=instances, images=str(images), split="testB")


# --- multiple choice


def _mmbench_tsv(path, header, rows):
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, delimiter="\t", lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)
    return str(path)


def test_mmbench(tmp_path):
    scene, cat = photo_bytes("coffee.png"), photo_bytes("chelsea.png")
    header = ["index", "question", "hint", "A", "B", "C", "D", "answer", "category", "image", "source",
              "l2-category", "comment", "split"]

    def b64(data):
        return base64.b64encode(data).decode()

    tsv = _mmbench_tsv(tmp_path / "MMBench_DEV_EN.tsv", header, [
        ["0", "Which drink is shown?", "The photo was taken in a café.\nLook closely.", "tea", "coffee", "juice",
         "water", "B", "image_scene", b64(scene), "MMBench", "coarse_perception", "nan", "dev"],
        ["7", "What animal is this?", "nan", "cat", "dog", "nan", "", "A", "object_localization", b64(cat),
         "COCO", "finegrained_perception (instance-level)", "", "dev"],
        ["8", "Is the drink hot?", "", "yes", "no", "", "", "a", "attribute_recognition", "0", "MMBench",
         "finegrained_perception (cross-instance)", "", "dev"],  # image = row 0's, lower-case answer
        ["9", "Out of range", "", "yes", "no", "", "", "D", "image_scene", b64(cat), "x", "y", "", "dev"],
        ["10", "Dangling image ref", "", "yes", "no", "", "", "A", "image_scene", "123", "x", "y", "", "dev"],
        ["2000000", "Which drink is shown?", "", "juice", "water", "tea", "coffee", "D", "image_scene", "0",
         "MMBench", "coarse_perception", "", "dev"],  # circular copies (pass 2, then pass 1): question 0's passes
        ["1000000", "Which drink is shown?", "", "coffee", "juice", "water", "tea", "A", "image_scene", "0",
         "MMBench", "coarse_perception", "", "dev"],
    ])
    items, skipped = readers.read_mmbench("mmbench", annotations=tsv)
    assert items == [
        Item("0", [scene], "The photo was taken in a café.\nLook closely.\nWhich drink is shown?", ["coffee"],
             ["tea", "coffee", "juice", "water"], 1, {"index": 0, "category": "image_scene", "tsv_question": "Which drink is shown?", "passes": [
                 (["tea", "coffee", "juice", "water"], 1), (["coffee", "juice", "water", "tea"], 0),
                 (["juice", "water", "tea", "coffee"], 3)]}),
        Item("7", [cat], "What animal is this?", ["cat"], ["cat", "dog"], 0,
             {"index": 7, "category": "object_localization", "tsv_question": "What animal is this?"}),
        Item("8", [scene], "Is the drink hot?", ["yes"], ["yes", "no"], 0,
             {"index": 8, "category": "attribute_recognition", "tsv_question": "Is the drink hot?"}),
    ]
    assert reasons(skipped) == {
        "9": f"{tsv}: row 4: answer 'D' is not one of the option letters AB",
        "10": f"{tsv}: row 5: image refers to row index 123, which has no image"}
    # a test TSV has no answer column: items without answers
    test = _mmbench_tsv(tmp_path / "MMBench_TEST_EN.tsv", ["index", "question", "hint", "A", "B", "category", "image"],
                        [["3", "Which?", "", "x", "y", "c", b64(cat)]])
    items, skipped = readers.read_mmbench("mmbench_test", annotations=test)
    assert items == [Item("3", [cat], "Which?", [], ["x", "y"], -1, {"index": 3, "category": "c", "tsv_question": "Which?"})] and not skipped
    no_image = _mmbench_tsv(tmp_path / "bad.tsv", ["index", "question", "A", "B"], [["1", "q", "a", "b"]])
    with pytest.raises(ValueError, match=re.escape(f"eval task 'mmbench': {no_image}: expected a TSV header with "
                                                   "index, question, image and option columns A, B, ...; it lacks "
                                                   "'image'")):
        readers.read_mmbench("mmbench", annotations=no_image)


def test_scienceqa(tmp_path):
    images = tmp_path / "images"
    photo(images / "test" / "5" / "image.png", "rocket.jpg")

    def problem(question, choices, answer, hint, image, split, **extra):
        return {"question": question, "choices": choices, "answer": answer, "hint": hint, "image": image,
                "task": "closed choice", "grade": "grade8", "subject": "natural science", "topic": "physics",
                "category": "Velocity", "skill": "Compare", "lecture": "A lecture.", "solution": "A solution.",
                "split": split, **extra}

    ann = dump(tmp_path / "problems.json", {
        "1": problem("Which is a compound?", ["oxygen", "water"], 1, "", None, "test"),  # no image
        "5": problem("What is shown?", ["a rocket", "a bird", "a car"], 0, "Look at the picture.", "image.png",
                     "test"),
        "6": problem("Out of range?", ["x", "y"], 2, "", "image.png", "test"),
        "7": problem("Missing picture?", ["x", "y"], 0, "", "image.png", "test"),
        "8": problem("Train problem", ["x", "y"], 0, "", "image.png", "train"),
        "9": {"question": "no split"},
    })
    items, skipped = readers.read_scienceqa("scienceqa", annotations=ann, images=str(images))
    assert items == [Item("5", [str(images / "test" / "5" / "image.png")], "Look at the picture.\nWhat is shown?",
                          ["a rocket"], ["a rocket", "a bird", "a car"], 0, {"pid": "5"})]
    assert reasons(skipped) == {
        "6": f'{ann}: ["6"]: answer 2 is out of range for its 2 options',
        "9": f'{ann}: ["9"]: lacks the field \'split\'',
        "7": f'{ann}: ["7"]: image file \'{images / "test" / "7" / "image.png"}\' does not exist'}
    items, _ = readers.read_scienceqa("scienceqa", annotations=ann, images=str(images), image_only=False)
    assert ids(items) == ["1", "5"] and items[0] == Item("1", [], "Which is a compound?", ["water"],
                                                         ["oxygen", "water"], 1, {"pid": "1"})
    with pytest.raises(ValueError, match=re.escape(f"eval task 'scienceqa': {ann}: has no problems of split 'val'; "
                                                   "the splits present are test, train.")):
        readers.read_scienceqa("scienceqa", annotations=ann, images=str(images), split="val")


def test_ai2d(tmp_path):
    images = tmp_path / "images"
    photo(images / "2.png", "astronaut.png")
    photo(images / "10.png", "coffee.png")
    folder = tmp_path / "questions"
    dump(folder / "2.png.json", {"imageName": "2.png", "questions": {
        "Which stage comes after the egg?": {"abcLabel": False, "answerTexts": ["adult", "larva", "pupa", "egg"],
                                             "correctAnswer": 1, "questionId": "2.png-0"},
        "What does label B show?": {"abcLabel": True, "answerTexts": ["B", "C", "D", "A"], "correctAnswer": 0,
                                    "questionId": "2.png-1"},
        "Broken?": {"abcLabel": False, "answerTexts": ["x"], "correctAnswer": 3, "questionId": "2.png-2"}}})
    dump(folder / "10.png.json", {"imageName": "10.png", "questions": {
        "What is in the cup?": {"abcLabel": False, "answerTexts": ["tea", "coffee"], "correctAnswer": 1,
                                "questionId": "10.png-0"}}})
    dump(folder / "11.png.json", {"imageName": "11.png", "questions": {
        "Not on disk?": {"abcLabel": False, "answerTexts": ["a", "b"], "correctAnswer": 0, "questionId": "11.png-0"}}})
    items, skipped = readers.read_ai2d("ai2d", annotations=str(folder), images=str(images))
    first = [
        Item("2.png-0", [str(images / "2.png")], "Which stage comes after the egg?", ["larva"],
             ["adult", "larva", "pupa", "egg"], 1, {"questionId": "2.png-0", "abcLabel": False}),
        Item("2.png-1", [str(images / "2.png")], "What does label B show?", ["B"], ["B", "C", "D", "A"], 0,
             {"questionId": "2.png-1", "abcLabel": True}),
    ]
    cup = Item("10.png-0", [str(images / "10.png")], "What is in the cup?", ["coffee"], ["tea", "coffee"], 1,
               {"questionId": "10.png-0", "abcLabel": False})
    assert items == first + [cup]
    assert reasons(skipped) == {
        "2.png-2": f'{folder / "2.png.json"}: questions["Broken?"]: correctAnswer 3 is out of range for its 1 options',
        "11.png-0": f'{folder / "11.png.json"}: questions["Not on disk?"]: image file \'{images / "11.png"}\' does '
                    "not exist"}
    test_ids = tmp_path / "ai2d_test_ids.csv"
    test_ids.write_text("10\n404\n")
    items, skipped = readers.read_ai2d("ai2d", annotations=str(folder), images=str(images), ids=str(test_ids))
    assert items == [cup]
    assert reasons(skipped) == {"404": f"{test_ids}: line 2: no questions file for image '404' in {folder}"}
    (folder / "12.png.json").write_text("{oops")
    with pytest.raises(ValueError, match=re.escape(f"eval task 'ai2d': {folder / '12.png.json'}: not valid JSON")):
        readers.read_ai2d("ai2d", annotations=str(folder), images=str(images))
    with pytest.raises(ValueError, match=re.escape(f"eval task 'ai2d': annotation folder '{tmp_path / 'nope'}'")):
        readers.read_ai2d("ai2d", annotations=str(tmp_path / "nope"), images=str(images))


def test_multiple_choice_jsonl(tmp_path):
    photo(tmp_path / "pics" / "a.jpg", "chelsea.png")
    path = tmp_path / "mc.jsonl"
    path.write_text("\n".join([
        json.dumps({"id": "q1", "question": "What animal?", "options": ["cat", "dog"], "answer": "cat",
                    "image": "a.jpg"}),
        json.dumps({"question": "Text only", "options": ["x", "y", "z"], "answer": 2}),
        "",
        json.dumps({"id": "q4", "options": ["x", "y"], "answer": "w"}),
        "{not json",
        json.dumps({"id": "q6", "options": ["x"], "answer": 0, "image": ["a.jpg", "b.jpg"]}),
    ]) + "\n")
    items, skipped = readers.read_multiple_choice("mc", annotations=str(path), images=str(tmp_path / "pics"))
    assert items == [Item("q1", [str(tmp_path / "pics" / "a.jpg")], "What animal?", ["cat"], ["cat", "dog"], 0),
                     Item("2", [], "Text only", ["z"], ["x", "y", "z"], 2)]
    assert reasons(skipped) == {
        "q4": f"{path}: line 4: answer 'w' is not one of its 2 options",
        "5": f"{path}: line 5: not valid JSON (Expecting property name enclosed in double quotes: column 2)",
        "q6": f"{path}: line 6: image file '{tmp_path / 'pics' / 'b.jpg'}' does not exist"}


# --- TextCore


def test_arc(tmp_path):
    path = jsonl(tmp_path / "ARC-Challenge-Test.jsonl", [
        {"id": "Mercury_7175875", "question": {"stem": "An astronomer observes that a planet rotates faster. Which?",
                                               "choices": [{"text": "Planetary density will decrease.", "label": "A"},
                                                           {"text": "Planetary years will become longer.",
                                                            "label": "B"},
                                                           {"text": "Planetary days will become shorter.",
                                                            "label": "C"}]},
         "answerKey": "C"},
        {"id": "NYSEDREGENTS_2015_4_8", "question": {"stem": "Which is a liquid?", "choices": [
            {"text": "ice", "label": "1"}, {"text": "water", "label": "2"}]}, "answerKey": "2"},
        {"id": "bad_key", "question": {"stem": "?", "choices": [{"text": "a", "label": "A"}]}, "answerKey": "E"},
        {"id": "no_stem", "question": {"choices": []}, "answerKey": "A"},
    ])
    items, skipped = readers.read_arc("arc_challenge", annotations=path)
    assert items == [
        Item("Mercury_7175875", [], "", [" Planetary days will become shorter."],
             [" Planetary density will decrease.", " Planetary years will become longer.",
              " Planetary days will become shorter."], 2,
             {"context": "Question: An astronomer observes that a planet rotates faster. Which?\nAnswer:"}),
        Item("NYSEDREGENTS_2015_4_8", [], "", [" water"], [" ice", " water"], 1,
             {"context": "Question: Which is a liquid?\nAnswer:"}),
    ]
    assert reasons(skipped) == {"bad_key": f"{path}: line 3: answerKey 'E' is not one of the choice labels ['A']",
                                "no_stem": f"{path}: line 4: lacks the field 'question.stem'"}


def test_piqa(tmp_path):
    path = jsonl(tmp_path / "valid.jsonl", [
        {"goal": "How do I ready a guinea pig cage for it's new occupants?",
         "sol1": "Provide the guinea pig with a cage full of a few inches of bedding made of ripped paper strips.",
         "sol2": "Provide the guinea pig with a cage full of a few inches of bedding made of ripped jeans material."},
        {"goal": "dresser", "sol1": "can hold clothes", "sol2": "can hold a dresser"},
        {"goal": "no second solution", "sol1": "x"},
        {"goal": "bad label", "sol1": "x", "sol2": "y"},
    ])
    labels = tmp_path / "valid-labels.lst"
    labels.write_text("0\n0\n1\n2\n")
    items, skipped = readers.read_piqa("piqa", annotations=path, labels=str(labels))
    paper = " Provide the guinea pig with a cage full of a few inches of bedding made of ripped paper strips."
    jeans = " Provide the guinea pig with a cage full of a few inches of bedding made of ripped jeans material."
    assert items == [
        Item("0", [], "", [paper], [paper, jeans], 0,
             {"context": "Question: How do I ready a guinea pig cage for it's new occupants?\nAnswer:"}),
        Item("1", [], "", [" can hold clothes"], [" can hold clothes", " can hold a dresser"], 0,
             {"context": "Question: dresser\nAnswer:"}),
    ]
    assert reasons(skipped) == {"2": f"{path}: line 3: lacks the field 'sol2'",
                                "3": f"{labels}: line 4: label '2' is not 0 or 1"}
    labels.write_text("0\n1\n")
    with pytest.raises(ValueError, match=re.escape(f"eval task 'piqa': {labels} has 2 labels but {path} has 4 "
                                                   "records")):
        readers.read_piqa("piqa", annotations=path, labels=str(labels))


def test_lambada(tmp_path):
    text = ("In my palm is a clear stone, and inside it is a small ivory statuette. A guardian angel. \"Figured "
            "if you're going to be out at night getting hit by cars, you might as well have some backup.\" I look at "
            "him, feeling stunned. Like this is some sort of sign. But as I stare at Harlin")
    path = jsonl(tmp_path / "lambada_test.jsonl", [{"text": text}, {"text": "Single"}, {"txt": "typo"}])
    items, skipped = readers.read_lambada("lambada", annotations=path)
    assert items == [Item("0", [], "", ["Harlin"], meta={"context": text[:-len(" Harlin")]})]
    assert reasons(skipped) == {"1": f"{path}: line 2: text has a single word: no context before its last word",
                                "2": f"{path}: line 3: lacks the field 'text'"}


# --- file-level errors, for every reader


def _call(reader, tmp_path):
    """reader(task, annotation file) with the other arguments valid-looking."""
    d = str(tmp_path)
    return {
        "captions": lambda t, a: readers.read_captions(t, annotations=a, images=d),
        "vqa": lambda t, a: readers.read_vqa(t, questions=a, annotations="", images=d),
        "vizwiz": lambda t, a: readers.read_vizwiz(t, annotations=a, images=d),
        "textvqa": lambda t, a: readers.read_textvqa(t, annotations=a, images=d),
        "gqa": lambda t, a: readers.read_gqa(t, questions=a, images=d),
        "docvqa": lambda t, a: readers.read_docvqa(t, annotations=a, images=d),
        "chartqa": lambda t, a: readers.read_chartqa(t, annotations=a, images=d),
        "refcoco": lambda t, a: readers.read_refcoco(t, refs=a, instances=a, images=d),
        "mmbench": lambda t, a: readers.read_mmbench(t, annotations=a),
        "scienceqa": lambda t, a: readers.read_scienceqa(t, annotations=a, images=d),
        "mc": lambda t, a: readers.read_multiple_choice(t, annotations=a),
        "arc": lambda t, a: readers.read_arc(t, annotations=a),
        "piqa": lambda t, a: readers.read_piqa(t, annotations=a, labels=a),
        "lambada": lambda t, a: readers.read_lambada(t, annotations=a),
    }[reader]


JSONL = "not JSON lines, one JSON object a line"
# reader, release file name, message for unparsable content, wrong top-level content + message
FILE_ERRORS = [
    ("captions", "captions_val2014.json", "not valid JSON", ["x"], "expected a JSON object, found a list"),
    ("captions", "TextCaps_0.1_val.json", "not valid JSON", {"dataset": []},
     "expected COCO captions ({\"images\", \"annotations\"}) or TextCaps ({\"data\": [...]}), found keys ['dataset']"),
    ("vqa", "v2_OpenEnded_mscoco_val2014_questions.json", "not valid JSON", {"questions": {}},
     "expected a JSON object with a 'questions' list, found keys ['questions']"),
    ("vizwiz", "val.json", "not valid JSON", {"x": 1}, "expected a JSON list of questions, found a JSON object"),
    ("textvqa", "TextVQA_0.5.1_val.json", "not valid JSON", [], "expected a JSON object, found a list"),
    ("gqa", "testdev_balanced_questions.json", "not valid JSON", [],
     "expected a JSON object of question_id -> question, found a list"),
    ("docvqa", "val_v1.0.json", "not valid JSON", {"questions": []},
     "expected a JSON object with a 'data' list, found keys ['questions']"),
    ("chartqa", "test_human.json", "not valid JSON", {"data": []},
     "expected a JSON list of questions, found a JSON object"),
    ("refcoco", "refs(unc).p", "not a readable pickle", b"\x80\x02}q\x00.",
     "expected a pickled list of refs, found a dict"),
    ("mmbench", "MMBench_DEV_EN.tsv", "not UTF-8 text", "question\tanswer\n",
     "expected a TSV header with index, question, image"),
    ("scienceqa", "problems.json", "not valid JSON", [], "expected a JSON object of pid -> problem, found a list"),
    ("mc", "mc.jsonl", JSONL, "[1, 2]\n", JSONL + " (no line is an object)"),
    ("arc", "ARC-Easy-Test.jsonl", JSONL, "", "has no JSON lines (the file is empty)"),
    ("piqa", "valid.jsonl", JSONL, "3\n", "not JSON lines"),
    ("lambada", "lambada_test.jsonl", JSONL, "\"text\"\n", "not JSON lines"),
]


@pytest.mark.parametrize("reader,name,unparsable,wrong,wrong_message", FILE_ERRORS,
                         ids=[f"{r[0]}-{r[1]}" for r in FILE_ERRORS])
def test_file_errors_name_task_and_file(tmp_path, reader, name, unparsable, wrong, wrong_message):
    call = _call(reader, tmp_path)
    task = f"my_{reader}"
    path = tmp_path / name
    with pytest.raises(ValueError, match=re.escape(f"eval task '{task}': annotation file '{path}' does not exist.")):
        call(task, str(path))
    with pytest.raises(ValueError, match=re.escape(f"eval task '{task}' needs config.eval.{task}.")):
        call(task, "")
    path.write_bytes(b"{oops: 1}\n<html>\n" if unparsable != "not UTF-8 text" else b"index\tquestion\n\xff\xfe\n")
    with pytest.raises(ValueError, match=re.escape(f"eval task '{task}': {path}: {unparsable} (")):
        call(task, str(path))
    if isinstance(wrong, bytes):
        path.write_bytes(wrong)
    else:
        path.write_text(wrong if isinstance(wrong, str) else json.dumps(wrong))
    with pytest.raises(ValueError, match=re.escape(f"eval task '{task}': {path}: {wrong_message}")):
        call(task, str(path))


def test_missing_image_folder_is_a_config_error(tmp_path):
    ann = dump(tmp_path / "val.json", [])
    with pytest.raises(ValueError, match=re.escape(f"eval task 'vizwiz': image folder '{tmp_path / 'val'}' "
                                                   "(config.eval.vizwiz.images) does not exist.")):
        readers.read_vizwiz("vizwiz", annotations=ann, images=str(tmp_path / "val"))
    with pytest.raises(ValueError, match=re.escape("eval task 'vizwiz' needs config.eval.vizwiz.images; it is unset.")):
        readers.read_vizwiz("vizwiz", annotations=ann, images="")


def test_write_coco_results(tmp_path):
    path = tmp_path / "results.json"
    readers.write_coco_results(str(path), [{"image_id": 3, "caption": "a cat", "extra": 1}])
    assert json.loads(path.read_text()) == [{"image_id": 3, "caption": "a cat"}]
