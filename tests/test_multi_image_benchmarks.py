"""MM1.5's multi-image benchmarks (Q-Bench2 A1 pairs, Mantis-Eval, NLVR2, BLINK, MuirBench): the readers on small files
in the official layouts (records typed by hand in the shape the dataset cards and release code document, tiny PNGs
made here), and the scorers on hand-computed cases.

Rule sources, named per case:
  BLINK-TB  zeyofu/BLINK_Benchmark eval/test_benchmark.py (2d6a779b) analyze_answer, load_prompt; eval/evaluate.py
  MUIR-PP   muirbench/MuirBench eval/utils/postprocess.py / preprocess.py (840b85fe)
  MANTIS    TIGER-AI-Lab/Mantis mantis/benchmark/eval.py get_prediction and the prompt in main (f3a31920)
  NLVR2-M   lil-lab/nlvr nlvr2/eval/metrics.py (18924841): accuracy, consistency
  LMMS      EvolvingLMMs-Lab/lmms-eval lmms_eval/tasks/{blink,muirbench,mantis,qbench}/utils.py (75571cfe)
  VLMEK     open-compass/VLMEvalKit can_infer / ImageMCQDataset / MUIRDataset (e8e78f05)
"""
import base64
import io
import json
import random

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from mm1_jax.eval.readers.multi_image import (blink_subtask, read_blink, read_mantis, read_muirbench, read_nlvr2,
                                              read_qbench2)
from mm1_jax.eval.scorers import multi_image as mi


def png(colour):
    buffer = io.BytesIO()
    Image.new("RGB", (2, 2), colour).save(buffer, format="PNG")
    return buffer.getvalue()


RED, GREEN, BLUE, GREY = png((255, 0, 0)), png((0, 255, 0)), png((0, 0, 255)), png((128, 128, 128))
IMAGE = pa.struct([("bytes", pa.binary()), ("path", pa.string())])


def pic(data, name="x.png"):
    return {"bytes": data, "path": name}


def write_parquet(path, rows, fields):
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows, schema=pa.schema(fields)), path)


def reasons(skipped):
    return {s["id"]: s["reason"] for s in skipped}


def placed(prompt, item):
    """The prompt shows every image once: one "<image>" marker each, or none (the images go first)."""
    return prompt.count("<image>") in (0, len(item.images))


def tsv(path, header, rows):
    path.write_text("\n".join("\t".join(map(str, r)) for r in [header] + rows) + "\n", encoding="utf-8")


def b64list(*images):
    return str([base64.b64encode(x).decode() for x in images])


# ================================================================================================ Q-Bench2 reader

QB_FIELDS = [("id", pa.int64()), ("image1", IMAGE), ("image2", IMAGE), ("question", pa.string()),
             ("option0", pa.string()), ("option1", pa.string()), ("option2", pa.string()), ("option3", pa.string()),
             ("question_type", pa.int64()), ("question_concern", pa.int64()), ("correct_choice", pa.string())]


def qb_row(qid, question, options, answer, image2=GREEN, qtype=2, concern=0):
    row = {"id": qid, "image1": pic(RED), "image2": pic(image2) if image2 else None, "question": question,
           "question_type": qtype, "question_concern": concern, "correct_choice": answer}
    for k in range(4):
        row[f"option{k}"] = options[k] if k < len(options) else "N/A"
    return row


def test_qbench2_hub_parquet(tmp_path):
    # the README's dev[0], then an answer naming no option, then a row without its second image
    write_parquet(tmp_path / "data" / "dev-00000-of-00003.parquet", [
        qb_row(0, "Compared to the first image, how is the clarity of the second image?",
               ["More blurry", "Clearer", "About the same"], "B"),
        qb_row(1, "Is the second image brighter than the first image?", ["Yes", "No"], "C", qtype=0, concern=1),
        qb_row(2, "Which image is noisier?", ["The first", "The second"], "A", image2=None),
    ], QB_FIELDS)
    write_parquet(tmp_path / "data" / "test-00000-of-00003.parquet", [qb_row(9, "q", ["a", "b"], "A")], QB_FIELDS)
    items, skipped = read_qbench2("qbench2", annotations=str(tmp_path))
    assert [i.id for i in items] == ["0"]  # the test file is not read for split dev
    it = items[0]
    assert it.images == [RED, GREEN] and "<image>" not in it.question  # the images go before the question
    assert (it.options, it.answer_index, it.answers) == (["More blurry", "Clearer", "About the same"], 1, ["Clearer"])
    assert (it.meta["answer"], it.meta["question_type"], it.meta["question_concern"]) == ("B", 2, 0)
    assert placed(mi.QUESTIONS["qbench2"](it), it)
    why = reasons(skipped)
    assert "correct_choice 'C' is not one of the option letters AB" in why["1"]
    assert "field 'image2' holds no image bytes" in why["2"]
    assert why["1"].startswith(str(tmp_path / "data" / "dev-00000-of-00003.parquet") + ": row 1: ")


def test_qbench2_jsonl_release(tmp_path):
    folder = tmp_path / "all_single_images"
    folder.mkdir()
    for name in ("00079.jpg", "09769.jpg", "00001.jpg"):
        (folder / name).write_bytes(RED)
    records = [  # the record Mantis's data/qbench2/prepare.py quotes, then two odd ones
        {"type": 2, "concern": 0, "question": "Compared to the first image, how is the clarity of the second image?",
         "img_path": "llvisionqa_compare_dev\\00079.jpg_cat_09769.jpg.jpg",
         "candidates": ["More blurry", "Clearer", "About the same"], "correct_ans": "Clearer", "correct_choice": "B"},
        {"type": 0, "concern": 1, "question": "Is the first image darker?", "candidates": ["Yes", "No"],
         "img_path": "llvisionqa_compare_dev\\00079.jpg_cat_00001.jpg.jpg", "correct_ans": "Yes",
         "correct_choice": "B"},
        {"type": 1, "concern": 2, "question": "What distortion?", "candidates": ["Noise", "Blur"],
         "img_path": "llvisionqa_compare_dev\\00079.jpg_cat_00404.jpg.jpg", "correct_ans": "Noise",
         "correct_choice": "A"},
    ]
    path = tmp_path / "q-bench2-a1-dev.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in records) + "\n")
    items, skipped = read_qbench2("qbench2", annotations=str(path), images=str(folder))
    assert [i.id for i in items] == ["0"]
    assert items[0].images == [str(folder / "00079.jpg"), str(folder / "09769.jpg")]
    assert (items[0].answer_index, items[0].meta["question_type"]) == (1, 2)
    why = reasons(skipped)
    assert "correct_ans 'Yes' is not the option of correct_choice 'B' ('No')" in why["1"]
    assert why["2"].endswith(f"image file {str(folder / '00404.jpg')!r} does not exist")


def test_qbench2_unreadable_files(tmp_path):
    bad = tmp_path / "dev-00000-of-00001.parquet"
    bad.write_bytes(b"not a parquet file at all")
    with pytest.raises(ValueError, match=r"^eval task 'qbench2': .*dev-00000-of-00001\.parquet: not a readable "
                                         r"parquet file \("):
        read_qbench2("qbench2", annotations=str(bad))
    other = tmp_path / "other.parquet"
    write_parquet(other, [{"id": 0, "question": "q"}], [("id", pa.int64()), ("question", pa.string())])
    with pytest.raises(ValueError, match="expected Q-Bench2-HF's table with the columns .* it lacks 'image1'"):
        read_qbench2("qbench2", annotations=str(other))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match=r"empty' holds no dev-\*\.parquet file\.$"):
        read_qbench2("qbench2", annotations=str(tmp_path / "empty"))


# ================================================================================================ Mantis-Eval reader

MANTIS_FIELDS = [("id", pa.string()), ("question_type", pa.string()), ("question", pa.string()),
                 ("images", pa.list_(IMAGE)), ("options", pa.list_(pa.string())), ("answer", pa.string()),
                 ("data_source", pa.string()), ("category", pa.string())]

CW19_OPTIONS = ["(A) Image 1", "(B) Image 2", "(C) Both images contain the same level of technology"]


def mantis_row(qid, qtype, question, images, options, answer, category="comparison"):
    return {"id": qid, "question_type": qtype, "question": question, "images": [pic(x) for x in images],
            "options": options, "answer": answer, "data_source": "mantis", "category": category}


def test_mantis_hub_parquet(tmp_path):
    write_parquet(tmp_path / "mantis_eval" / "test-00000-of-00001.parquet", [
        mantis_row("cw_19", "multi-choice", "<image> <image> Which image contains more advanced technology?",
                   [RED, GREEN], CW19_OPTIONS, "B", "technological aspects in images"),
        mantis_row("sa_1", "short-answer", "How many cats are in <image>?", [RED, BLUE], [], "3"),
        mantis_row("bad_answer", "multi-choice", "<image> Which?", [RED], ["yes", "no", "maybe"], "D"),
        mantis_row("bad_markers", "multi-choice", "<image> <image> <image> Odd one?", [RED, GREEN], ["a", "b"], "A"),
        mantis_row("bad_type", "open", "<image> ?", [RED], [], "x"),
    ], MANTIS_FIELDS)
    write_parquet(tmp_path / "nlvr2" / "test-00000-of-00001.parquet",  # another configuration: not read
                  [mantis_row("n", "multi-choice", "q", [RED], ["True", "False"], "A")], MANTIS_FIELDS)
    items, skipped = read_mantis("mantis", annotations=str(tmp_path))
    by_id = {i.id: i for i in items}
    assert sorted(by_id) == ["cw_19", "sa_1"]
    cw = by_id["cw_19"]
    assert cw.images == [RED, GREEN] and cw.question.count("<image>") == 2
    assert cw.options == ["Image 1", "Image 2", "Both images contain the same level of technology"]
    assert (cw.answer_index, cw.answers, cw.meta["answer"], cw.meta["options"]) == (1, ["Image 2"], "B",
                                                                                     CW19_OPTIONS)
    sa = by_id["sa_1"]  # eval.py puts the missing marker first
    assert (sa.question, sa.answers, sa.options) == ("<image>How many cats are in <image>?", ["3"], [])
    assert placed(mi.QUESTIONS["mantis"](cw), cw) and placed(mi.QUESTIONS["mantis"](sa), sa)
    why = reasons(skipped)
    assert "answer 'D' is not one of the option letters ABC" in why["bad_answer"]
    assert "has 3 <image> markers but 2 images" in why["bad_markers"]
    assert "question_type 'open' is neither multi-choice nor short-answer" in why["bad_type"]


def test_mantis_json_list(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "215_0.jpeg").write_bytes(RED)
    (tmp_path / "images" / "215_1.jpeg").write_bytes(GREEN)
    records = [{"id": "cw_19", "question_type": "multi-choice",
                "question": "<image> <image> Which image contains more advanced technology?",
                "images": ["images/215_0.jpeg", "images/215_1.jpeg"], "options": CW19_OPTIONS, "answer": "B",
                "data_source": "..", "category": "technological aspects in images"},
               {"id": "gone", "question_type": "short-answer", "question": "<image> ?", "images": ["images/x.jpeg"],
                "options": [], "answer": "x"}]
    path = tmp_path / "mantis_eval.json"
    path.write_text(json.dumps(records))
    items, skipped = read_mantis("mantis", annotations=str(path))
    assert [i.id for i in items] == ["cw_19"]
    assert items[0].images == [str(tmp_path / "images" / "215_0.jpeg"), str(tmp_path / "images" / "215_1.jpeg")]
    assert reasons(skipped)["gone"].endswith("images/x.jpeg' does not exist")
    path.write_text("{\"questions\": []}")
    with pytest.raises(ValueError, match=r"^eval task 'mantis': .*mantis_eval\.json: expected Mantis-Eval as a JSON "
                                         r"list of questions, found a JSON object\.$"):
        read_mantis("mantis", annotations=str(path))


# ================================================================================================ NLVR2 reader


def nlvr2_record(identifier, sentence, label, **extra):
    return {"validation": {"61": label}, "sentence": sentence, "left_url": "https://example.org/l.jpg",
            "writer": "61", "label": label, "right_url": "https://example.org/r.jpg", "synset": "beer bottle",
            "query": "some beer bottles38", "identifier": identifier, "extra_validations": {"154": label}, **extra}


def test_nlvr2_release(tmp_path):
    dev = tmp_path / "dev"
    dev.mkdir()
    for name in ("dev-850-0-img0.png", "dev-850-0-img1.png", "dev-850-2-img0.png", "dev-850-2-img1.png",
                 "dev-851-1-img0.png"):
        (dev / name).write_bytes(GREY)
    sentence = "The right image shows a curving walkway of dark glass circles embedded in dirt and flanked by foliage."
    lines = [nlvr2_record("dev-850-0-0", sentence, "False"), nlvr2_record("dev-850-2-0", sentence, "True"),
             nlvr2_record("dev-851-1-0", "Two dogs.", "True"),  # its right image is missing
             nlvr2_record("dev-852-0-1", "A cat.", "maybe")]
    path = tmp_path / "dev.json"  # the release's .json files hold JSON lines
    path.write_text("\n".join(json.dumps(r) for r in lines) + "\n")
    items, skipped = read_nlvr2("nlvr2", annotations=str(path), images=str(dev))
    assert [i.id for i in items] == ["dev-850-0-0", "dev-850-2-0"]
    first = items[0]
    assert first.images == [str(dev / "dev-850-0-img0.png"), str(dev / "dev-850-0-img1.png")]
    assert first.question == "Here is a statement about the images. Is it true or false?\n" + sentence
    assert (first.options, first.answer_index, first.answers) == (["True", "False"], 1, ["False"])
    assert (first.meta["answer"], first.meta["label"], items[1].meta["answer"]) == ("B", "False", "A")
    assert placed(mi.QUESTIONS["nlvr2"](first), first)
    why = reasons(skipped)
    assert why["dev-851-1-0"].endswith(f"image file {str(dev / 'dev-851-1-img1.png')!r} does not exist")
    assert "label 'maybe' is not True / False" in why["dev-852-0-1"]
    path.write_text("")
    with pytest.raises(ValueError, match=r"dev\.json: has no JSON lines \(the file is empty\)\.$"):
        read_nlvr2("nlvr2", annotations=str(path), images=str(dev))


def test_nlvr2_mantis_parquet(tmp_path):
    write_parquet(tmp_path / "nlvr2" / "test-00000-of-00001.parquet", [
        mantis_row("test1-0-1-0", "multi-choice", "<image><image> Here is a statement about the images. Is it true "
                   "or false?\nThere are two dogs.", [RED, GREEN], ["(A) False", "(B) True"], "B"),
    ], MANTIS_FIELDS)
    items, skipped = read_nlvr2("nlvr2", annotations=str(tmp_path))
    assert skipped == [] and [i.id for i in items] == ["test1-0-1-0"]
    assert (items[0].options, items[0].answers, items[0].meta["options"]) == (["False", "True"], ["True"],
                                                                              ["(A) False", "(B) True"])


# ================================================================================================ BLINK reader

BLINK_FIELDS = [("idx", pa.string()), ("question", pa.string()), ("sub_task", pa.string()), ("image_1", IMAGE),
                ("image_2", IMAGE), ("image_3", IMAGE), ("image_4", IMAGE), ("choices", pa.list_(pa.string())),
                ("answer", pa.string()), ("prompt", pa.string()), ("explanation", pa.string())]
ART_PROMPT = ("Some most common art painting styles include Realism, Impressionism, Expressionism, Pop Art, and "
              "Cubism. Given the following images of art paintings, use the first image as the reference image, and "
              "determine which one of the second or the third image shares the same style as the reference image?\n"
              "Select from the following choices.\n(A) the second image\n(B) the third image")


def blink_row(idx, sub_task, images, choices, answer, prompt, question="Which image shares the same style?"):
    row = {"idx": idx, "question": question, "sub_task": sub_task, "choices": choices, "answer": answer,
           "prompt": prompt, "explanation": ""}
    for k in range(1, 5):
        row[f"image_{k}"] = pic(images[k - 1]) if k <= len(images) else None
    return row


def test_blink_hub_parquet(tmp_path):
    write_parquet(tmp_path / "Art_Style" / "val-00000-of-00001.parquet", [
        blink_row("val_Art_Style_1", "Art Style", [RED, GREEN, BLUE], ["the second image", "the third image"], "(A)",
                  ART_PROMPT),
        blink_row("val_Art_Style_2", "Art Style", [RED, GREEN, BLUE], ["the second image", "the third image"], "(C)",
                  ART_PROMPT),
    ], BLINK_FIELDS)
    write_parquet(tmp_path / "Counting" / "val-00000-of-00001.parquet", [
        blink_row("val_Counting_1", "Counting", [GREY], ["0", "3", "2", "1"], "(D)",
                  "How many blue floats are there?\nSelect from the following choices.\n(A) 0\n(B) 3\n(C) 2\n(D) 1",
                  question="How many blue floats are there?"),
        blink_row("val_Counting_2", "Counting", [], ["0", "1"], "(A)", "How many?"),
    ], BLINK_FIELDS)
    write_parquet(tmp_path / "Counting" / "test-00000-of-00001.parquet",
                  [blink_row("test_Counting_1", "Counting", [GREY], ["0", "1"], "hidden", "How many?")], BLINK_FIELDS)
    items, skipped = read_blink("blink", annotations=str(tmp_path))
    by_id = {i.id: i for i in items}
    assert sorted(by_id) == ["val_Art_Style_1", "val_Counting_1"]
    art = by_id["val_Art_Style_1"]
    assert art.images == [RED, GREEN, BLUE] and art.question == ART_PROMPT
    assert (art.options, art.answer_index, art.answers) == (["the second image", "the third image"], 0,
                                                            ["the second image"])
    assert (art.meta["answer"], art.meta["subtask"], art.meta["sub_task"]) == ("(A)", "Art_Style", "Art Style")
    assert placed(mi.QUESTIONS["blink"](art), art)
    why = reasons(skipped)
    assert "answer '(C)' is not one of the option letters AB" in why["val_Art_Style_2"]
    assert "has no image" in why["val_Counting_2"]
    items, skipped = read_blink("blink", annotations=str(tmp_path), split="test")
    assert items == [] and "answer is 'hidden'" in reasons(skipped)["test_Counting_1"]
    assert blink_subtask("val_Multi-view_Reasoning_12") == "Multi-view_Reasoning"


def test_blink_tsv(tmp_path):
    path = tmp_path / "BLINK.tsv"
    tsv(path, ["index", "question", "A", "B", "C", "answer", "category", "image"], [
        [0, "Which image shares the same style as the reference image?", "the second image", "the third image",
         "nan", "A", "Art_Style", b64list(RED, GREEN, BLUE)],
        [1, "How many blue floats are there?", "0", "1", "nan", "C", "Counting", b64list(GREY)],
    ])
    items, skipped = read_blink("blink", annotations=str(path))
    assert [i.id for i in items] == ["0"]
    assert items[0].images == [RED, GREEN, BLUE] and items[0].options == ["the second image", "the third image"]
    assert (items[0].meta["answer"], items[0].meta["subtask"]) == ("(A)", "Art_Style")
    assert "answer 'C' is not one of the option letters AB" in reasons(skipped)["1"]


# ================================================================================================ MuirBench reader

MUIR_FIELDS = [("idx", pa.string()), ("task", pa.string()), ("image_relation", pa.string()),
               ("image_type", pa.string()), ("question", pa.string()), ("options", pa.list_(pa.string())),
               ("answer", pa.string()), ("image_list", pa.list_(IMAGE)), ("counterpart_idx", pa.string())]


def muir_row(idx, task, question, options, answer, images, relation="Complementary"):
    return {"idx": idx, "task": task, "image_relation": relation, "image_type": "Photography",
            "question": question, "options": options, "answer": answer, "image_list": [pic(x) for x in images],
            "counterpart_idx": f"{idx}_u"}


def test_muirbench_hub_parquet(tmp_path):
    write_parquet(tmp_path / "data" / "test-00000-of-00001.parquet", [
        muir_row("1", "Visual Retrieval", "Which image shows the same building as <image>?",
                 ["<image>", "<image>", "None of the choices provided"], "B", [RED, GREEN, BLUE], "Multiview"),
        muir_row("2", "Counting", "How many other garments besides a complete mitten pair are shown in each image?",
                 ["Four", "Three", "One", "None of the choices provided", "Two"], "A", [GREY, GREY]),
        muir_row("3", "Counting", "<image> How many?", ["1", "2"], "A", [GREY, GREY]),  # one marker, two images
        muir_row("4", "Counting", "How many?", ["1", "2", "3", "4"], "E", [GREY]),
    ], MUIR_FIELDS)
    items, skipped = read_muirbench("muirbench", annotations=str(tmp_path))
    by_id = {i.id: i for i in items}
    assert sorted(by_id) == ["1", "2"]
    vr = by_id["1"]
    assert vr.images == [RED, GREEN, BLUE] and vr.options[:2] == ["<image>", "<image>"]
    assert (vr.answer_index, vr.meta["answer"], vr.meta["task"], vr.meta["image_relation"]) == (1, "B",
                                                                                                "Visual Retrieval",
                                                                                                "Multiview")
    assert all(placed(mi.QUESTIONS["muirbench"](i), i) for i in items)
    why = reasons(skipped)
    assert "has 1 <image> markers in its question and options but 2 images" in why["3"]
    assert "answer 'E' is not one of the option letters ABCD" in why["4"]


def test_muirbench_tsv(tmp_path):
    path = tmp_path / "MUIRBench.tsv"
    tsv(path, ["index", "question", "A", "B", "C", "D", "E", "answer", "category", "multi-image relation", "image"], [
        [0, "Which image shows the same building as <image>?", "<image>", "<image>", "None of the choices provided",
         "nan", "nan", "B", "Visual Retrieval", "Multiview", b64list(RED, GREEN, BLUE)],
        [1, "How many?", "1", "2", "nan", "nan", "nan", "A", "Counting", "Complementary", "short"],
    ])
    items, skipped = read_muirbench("muirbench", annotations=str(path))
    assert [i.id for i in items] == ["0"] and items[0].images == [RED, GREEN, BLUE]
    assert (items[0].meta["task"], items[0].meta["image_relation"]) == ("Visual Retrieval", "Multiview")
    assert "image refers to row index short" in reasons(skipped)["1"]
    (tmp_path / "bad.tsv").write_text("index\tquestion\n0\tq\n")
    with pytest.raises(ValueError, match=r"^eval task 'muirbench': .*bad\.tsv: expected VLMEvalKit's MUIRBench\.tsv "
                                         r"with the columns index, question, A, answer, image; it lacks"):
        read_muirbench("muirbench", annotations=str(tmp_path / "bad.tsv"))


# ================================================================================================ BLINK scorer


@pytest.mark.parametrize("response, n, expected", [
    ("(B)", 2, "(B)"),
    ("B", 2, "(B)"),
    ("E", 2, "(E)"),  # any of A-E becomes a choice, whatever the choices' count
    ("B.", 2, None),  # not a word "(B)": GPT-3.5 would decide
    ("The answer is B", 2, None),
    ("The answer is (B).", 2, None),  # "(B)." is not the word "(B)"
    ("The answer is (B) the third image", 2, "(B)"),
    ("(A) is the reference.\n\nSo (B)", 2, "(B)"),  # two in the response, one in its last paragraph
    ("(A) or (B)", 2, None),
    ("the third image", 2, None),  # option text: left to the model
    ("(C)", 2, "(C)"),  # exactly one of (A)-(E): kept
    ("Maybe (C) here", 2, None),  # (C) is no choice of a 2-choice question
    ("", 2, None),
])
def test_blink_official_choice(response, n, expected):  # BLINK-TB analyze_answer
    assert mi.blink_official_choice(response, n) == expected


@pytest.mark.parametrize("response, expected", [("(B)", "B"), ("b.", "B"), (" B) the third", "B"),
                                                ("The answer is B", "T"), ("", ""), ("42", "")])
def test_blink_lmms_eval_letter(response, expected):  # LMMS blink _extract_answer_letter
    assert mi.blink_lmms_eval_letter(response) == expected


def blink_item(idx, answer, options=("the second image", "the third image")):
    from mm1_jax.eval.prompts import Item  # pylint: disable=import-outside-toplevel
    return Item(id=idx, images=[RED], question="q", options=list(options), answer_index=ord(answer[1]) - 65,
                meta={"answer": answer, "subtask": blink_subtask(idx), "prompt": ART_PROMPT, "question": "Which?"})


def test_blink_aggregate_hand_computed():
    items = [blink_item("val_Art_Style_1", "(A)"), blink_item("val_Art_Style_2", "(B)"),
             blink_item("val_Counting_1", "(B)", ("0", "1"))]
    preds = ["(A)", "B.", "The answer is B"]
    # official: (A) right; "B." and "The answer is B" go to the judge: wrong here, counted
    scores, rows, details = mi.blink_aggregate(items, preds, "official")
    assert [r["correct"] for r in rows] == [True, False, False]
    assert details["subtasks"] == {"Art_Style": 0.5, "Counting": 0.0}
    assert scores == {"accuracy": 0.25, "needs_judge": 2 / 3}  # the mean of the subtasks (evaluate.py)
    assert details["micro"] == pytest.approx(1 / 3)
    # lmms-eval: "B." -> B right; "The answer is B" -> T wrong; the group: mean of the subtasks
    scores, rows, details = mi.blink_aggregate(items, preds, "lmms_eval")
    assert [r["answer"] for r in rows] == ["A", "B", "T"] and scores["accuracy"] == 0.5
    # VLMEvalKit: can_infer reads all three; Overall over questions
    scores, rows, details = mi.blink_aggregate(items, preds, "vlmevalkit")
    assert [r["correct"] for r in rows] == [True, True, True] and scores == {"accuracy": 1.0, "needs_judge": 0.0}
    scores, rows, details = mi.blink_aggregate(items, ["the third image", "", "nonsense"], "vlmevalkit")
    assert [r["answer"] for r in rows] == ["B", "Z", "Z"] and scores["needs_judge"] == 2 / 3
    assert mi.blink_aggregate(items, preds, "other")[2]["convention"] == "official"


def test_blink_questions():
    art = blink_item("val_Art_Style_1", "(A)")
    assert mi.QUESTIONS["blink"](art) == mi.BLINK_DISCLAIMER + ART_PROMPT  # Art_Style gets the disclaimer
    count = blink_item("val_Counting_1", "(B)", ("0", "1"))
    assert mi.QUESTIONS["blink"](count) == ART_PROMPT
    assert mi.PROMPTS["blink"](count, "lmms_eval") == ("Note: You only need to respond with A, B without providing "
                                                       "any additional information.\n" + ART_PROMPT)
    assert mi.PROMPTS["blink"](count, "vlmevalkit") == ("Question: Which?\nOptions:\nA. 0\nB. 1\nPlease select the "
                                                        "correct answer from the options above. \n")


# ================================================================================================ MuirBench scorer


def muir_item(answer, options=("<image>", "<image>", "None of the choices provided", "Four"),
              question="Which <image>?"):
    from mm1_jax.eval.prompts import Item  # pylint: disable=import-outside-toplevel
    return Item(id=answer, images=[RED, GREEN, BLUE], question=question, options=list(options),
                answer_index=ord(answer) - 65, meta={"answer": answer, "task": "Visual Retrieval",
                                                     "image_relation": "Multiview"})


def test_muirbench_aggregate_hand_computed():
    items = [muir_item("B")] * 6
    preds = ["(B)", "B.", "The answer is B.", "b", "I think the right choice is none of the choices provided", ""]
    rng = random.Random(42)  # MUIR-PP: random.seed(42) at import; a draw for each response with no letter
    draws = [rng.choice(["A", "B", "C", "D"]) for _ in range(2)]
    scores, rows, _ = mi.muirbench_aggregate(items, preds, "official")
    expected = ["B", "B", "B", draws[0], "C", draws[1]]  # "b": no letter (case matters) -> random; "": random
    assert [r["answer"] for r in rows] == expected  # the 5th: > 5 words holding option C's text
    assert scores["accuracy"] == pytest.approx(sum(a == "B" for a in expected) / 6)
    # lmms-eval: "X." -> X, else the response; lower / strip compare
    scores, rows, _ = mi.muirbench_aggregate(items, preds, "lmms_eval")
    assert [r["correct"] for r in rows] == [False, True, False, True, False, False]
    scores, rows, details = mi.muirbench_aggregate(items, preds, "vlmevalkit")
    assert [r["answer"] for r in rows][:3] == ["B", "B", "B"] and rows[5]["answer"] == "Z"
    assert details["tasks"] == {"Visual Retrieval": scores["accuracy"]} and details["convention"] == "vlmevalkit"


def test_muirbench_questions():
    item = muir_item("B", ("<image>", "<image>"))
    assert mi.QUESTIONS["muirbench"](item) == ("Question: Which <image>?\nChoices:\n(A) <image>\n(B) <image>\nHint: "
                                               "Please provide the correct option letter, such as A, B, C, D, "
                                               "directly.\nAnswer:")
    expected = "Which <image>?\nA. <image>\nB. <image>\nAnswer with the option's letter from the given choices " \
               "directly."
    assert mi.PROMPTS["muirbench"](item, "lmms_eval") == expected == mi.PROMPTS["muirbench"](item, "vlmevalkit")


# ================================================================================================ Mantis's rules


@pytest.mark.parametrize("response, parsed, correct", [
    ("B", "B", True),
    ("(B)", "B", True),
    ("B.", "B", True),
    ("The answer is B", "B", True),
    ("Final Answer: (B) Image 2", "B", True),
    ("Image 2", "Image 2", True),  # 'I' is no option letter: the response equals the gold option's text
    ("image 2", "image 2", False),  # ... exactly
    ("Both images contain the same level of technology", "B", True),  # its first letter B (sic)
    ("Clearly C", "C", False),
    ("", "", False),
])
def test_mantis_multi_choice(response, parsed, correct):  # MANTIS get_prediction
    assert mi.mantis_prediction("multi-choice", response, "B", CW19_OPTIONS) == (parsed, correct)


@pytest.mark.parametrize("response, gold, correct", [
    ("Final Answer: 3", "3", True), ("The answer is three", "3", False), ("The answer is 3.", "3", False),
    ("3", "(3)", True),  # the gold is stripped of "()"
])
def test_mantis_short_answer(response, gold, correct):
    assert mi.mantis_prediction("short-answer", response, gold, [])[1] is correct


def mantis_item(qid, qtype, answer, options, question="<image><image>Which?"):
    from mm1_jax.eval.prompts import Item  # pylint: disable=import-outside-toplevel
    return Item(id=qid, images=[RED, GREEN], question=question, meta={"question_type": qtype, "answer": answer,
                                                                       "options": options, "category": "c"})


def test_mantis_aggregate_and_questions():
    items = [mantis_item("1", "multi-choice", "B", CW19_OPTIONS), mantis_item("2", "short-answer", "3", [])]
    scores, _, details = mi.mantis_aggregate(items, ["(B)", "4"], "official")
    assert scores == {"accuracy": 0.5} and details["question_types"] == {"multi-choice": 1.0, "short-answer": 0.0}
    assert mi.mantis_aggregate(items, ["(B)", "4"], "vlmevalkit")[2]["convention"] == "official"
    cw = mantis_item("cw_19", "multi-choice", "B", CW19_OPTIONS,
                     "<image> <image> Which image contains more advanced technology?")
    assert mi.QUESTIONS["mantis"](cw) == ("<image> <image> Which image contains more advanced technology?\n (A) Image 1"
                                          "\n (B) Image 2\n (C) Both images contain the same level of technology\n"
                                          "Answer with the option's letter from the given choices directly.")
    plain = mantis_item("p", "multi-choice", "A", ["cat", "dog"], "Which animal?")  # unlettered; markers missing
    assert mi.QUESTIONS["mantis"](plain) == ("<image><image>Which animal?\n (A) cat\n (B) dog\nAnswer with the "
                                             "option's letter from the given choices directly.")
    assert mi.PROMPTS["mantis"](plain, "lmms_eval") == ("Which animal?\nAnswer with the option's letter from the "
                                                        "given choices directly.['cat', 'dog']")
    short = mantis_item("s", "short-answer", "3", [], "<image><image>How many?")
    assert mi.QUESTIONS["mantis"](short) == ("Given the images, answer the following short answer vqa question:\nQ: "
                                             "<image><image>How many?\nYou can first give your analysis, and then "
                                             "give your final answer as \"Final Answer:\"")


# ================================================================================================ NLVR2 scorer


@pytest.mark.parametrize("response, label, correct", [
    ("True", "True", True), ("false", "True", False), ("A", "True", True), ("(B) False", "False", True),
    ("The statement is false.", "False", True),  # 'T' is no letter of two options: the true / false reading
    ("It is true, not false", "True", False), ("Yes", "True", False), ("", "False", False),
])
def test_nlvr2_reading(response, label, correct):  # MANTIS get_prediction, dataset_name "nlvr2"
    letter = "A" if label == "True" else "B"
    assert mi.mantis_prediction("multi-choice", response, letter, ["True", "False"], "nlvr2")[1] is correct


def test_nlvr2_accuracy_and_consistency():  # NLVR2-M
    from mm1_jax.eval.prompts import Item  # pylint: disable=import-outside-toplevel

    def item(identifier, label):
        return Item(id=identifier, images=[RED, GREEN], question="Here is a statement ...", options=["True", "False"],
                    meta={"identifier": identifier, "answer": "A" if label == "True" else "B",
                          "options": ["True", "False"], "question_type": "multi-choice"})

    items = [item("dev-850-0-0", "False"), item("dev-850-2-0", "True"), item("dev-851-1-0", "True"),
             item("dev-851-3-0", "False")]
    scores, rows, details = mi.nlvr2_aggregate(items, ["False", "False", "A", "B"])
    assert [r["correct"] for r in rows] == [True, False, True, True]
    assert scores == {"accuracy": 0.75, "consistency": 0.5} and details["sentences"] == 2
    assert mi.nlvr2_consistency_key("dev-850-2-0") == "dev-850--0"
    assert mi.QUESTIONS["nlvr2"](items[0]) == ("<image><image>Here is a statement ...\n (A) True\n (B) False\n"
                                               "Answer with the option's letter from the given choices directly.")


# ================================================================================================ Q-Bench2 scorer


def qb_item(answer="B", options=("More blurry", "Clearer", "About the same"), qtype=2, concern=0):
    from mm1_jax.eval.prompts import Item  # pylint: disable=import-outside-toplevel
    return Item(id="0", images=[RED, GREEN], question="Compared to the first image, how is the clarity of the second "
                "image?", options=list(options), answer_index=ord(answer) - 65,
                meta={"answer": answer, "question_type": qtype, "question_concern": concern})


@pytest.mark.parametrize("response, parsed, correct", [
    ("B", "B", True), ("(B) Clearer", "B", True), ("The answer is B.", "B", True),
    ("Clearer", "C", False),  # its first letter C is an option letter (sic)
    ("More blurry", "More blurry", False),  # 'M' names no option: compared with "Clearer"
    ("", "", False),
])
def test_qbench2_official(response, parsed, correct):  # MANTIS over prepare.py's "(A) candidate" options
    _, rows, _ = mi.qbench2_aggregate([qb_item()], [response], "official")
    assert (rows[0]["answer"], rows[0]["correct"]) == (parsed, correct)


def test_qbench2_lmms_eval_and_breakdown():  # LMMS qbench parse_multi_choice_response
    rng = random.Random(0)
    options = ["More blurry", "Clearer", "About the same"]
    assert mi.qbench2_lmms_eval_letter("B.", options, rng) == "B"  # "." stripped: " B "
    assert mi.qbench2_lmms_eval_letter("(B) Clearer", options, rng) == "B"
    assert mi.qbench2_lmms_eval_letter("A blurry one", options, rng) == "A"  # "A " anywhere
    assert mi.qbench2_lmms_eval_letter("The second image is clearer than the first one", options, rng) == "B"
    assert mi.qbench2_lmms_eval_letter("(A) or (B)? (B)", options, rng) == "B"  # the rightmost of several
    expected = random.Random(0).choice(["A", "B", "C"])
    assert mi.qbench2_lmms_eval_letter("Clearer", options, random.Random(0)) == expected  # no match: random
    items = [qb_item(), qb_item("A", ("Yes", "No"), qtype=0, concern=1)]
    scores, rows, details = mi.qbench2_aggregate(items, ["B", "No"], "lmms_eval")
    assert rows[0]["correct"] is True
    scores, rows, details = mi.qbench2_aggregate(items, ["B", "No"], "official")
    assert scores == {"accuracy": 0.5} and details["question_types"] == {"0": 0.0, "2": 1.0}
    assert mi.qbench2_aggregate(items, ["B", "No"], "vlmevalkit")[2]["convention"] == "official"
    assert mi.QUESTIONS["qbench2"](items[0]) == (
        "<image><image>Compared to the first image, how is the clarity of the second image?\n (A) More blurry\n (B) "
        "Clearer\n (C) About the same\nAnswer with the option's letter from the given choices directly.")
    assert mi.PROMPTS["qbench2"](items[0], "lmms_eval") == (
        "Compared to the first image, how is the clarity of the second image?\nA. More blurry\nB. Clearer\nC. About "
        "the same\nAnswer with the option's letter from the given choices directly.\n")


def test_tables_cover_the_kinds():
    kinds = {"qbench2", "mantis", "nlvr2", "blink", "muirbench"}
    assert set(mi.QUESTIONS) == set(mi.AGGREGATES) == set(mi.PROMPTS) == set(mi.CONVENTIONS) == kinds
