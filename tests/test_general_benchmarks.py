"""MM1.5's General benchmarks: MME, POPE, SEED-Bench (image), RealWorldQA.

Readers on small files written with each release's field names (one record's shape per benchmark, typed by hand
from the release's documentation / code), and VLMEvalKit's TSVs. Scorers on hand-computed cases, each naming its
rule and where it was read:
  MME-CALC   MME release eval_tool/calculation.py (BradyFU/Awesome-Multimodal-Large-Language-Models, Evaluation
             branch, tools/eval_tool.zip, commit dd295090)
  MME-LMMS   EvolvingLMMs-Lab/lmms-eval lmms_eval/tasks/mme/utils.py (75571cfe)
  YORN       open-compass/VLMEvalKit vlmeval/dataset/utils/yorn.py YOrN_Extraction, MME_rating, POPE_rating;
             vlmeval/dataset/image_yorn.py (e8e78f05)
  POPE-EVAL  RUCAIBox/POPE evaluate.py (3df3ba1b)
  POPE-LMMS  lmms-eval lmms_eval/tasks/pope/utils.py
  SEED-EVAL  AILab-CVC/SEED-Bench eval.py (991e849b)
  SEED-LMMS  lmms-eval lmms_eval/tasks/seedbench/utils.py
  MCQ        VLMEvalKit vlmeval/dataset/utils/multiple_choice.py + vlmeval/utils/matching_util.py can_infer
  RWQA-LMMS  lmms-eval lmms_eval/tasks/realworldqa/utils.py + _task_utils/mcq_extract.py
"""
import base64
import csv
import json
import math
import re

import pytest

from mm1_jax.eval.prompts import Item
from mm1_jax.eval.readers.general import read_mme, read_pope, read_realworldqa, read_seed_bench
from mm1_jax.eval.scorers.general import (realworldqa_correct, realworldqa_scores, seed_choice_from_losses,
                                          seed_correct, seed_scores)
from mm1_jax.eval.scorers.mme import MME_COGNITION, MME_PERCEPTION, mme_answer, mme_correct, mme_scores
from mm1_jax.eval.scorers.pope import pope_answer, pope_metrics, pope_scores, vlmevalkit_yes_no

PIXELS = bytes(range(256))[:90]  # stands in for an image file (readers only check that image files exist)


def touch(path, data=PIXELS):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return str(path)


def tsv(path, header, rows):
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, delimiter="\t", lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)
    return str(path)


def b64(data):
    return base64.b64encode(data).decode()


def reasons(skipped):
    return {s["id"]: s["reason"] for s in skipped}


# ====================================================================================================================
# Readers
# ====================================================================================================================


def test_mme_release_folder(tmp_path):
    root = tmp_path / "MME_Benchmark_release_version" / "MME_Benchmark"
    # artwork: images/ + questions_answers_YN/ (release layout of artwork, celebrity, landmark, posters, scene)
    art = touch(root / "artwork" / "images" / "10002.jpg")
    (root / "artwork" / "questions_answers_YN").mkdir()
    (root / "artwork" / "questions_answers_YN" / "10002.txt").write_text(
        "Does this artwork exist in the form of painting? Please answer yes or no.\tYes\n"
        "Does this artwork exist in the form of glassware? Please answer yes or no.\tNo\n")
    # existence: image and .txt side by side (the other nine subtasks); a trailing blank line, CRLF endings
    train = touch(root / "existence" / "000000006040.jpg")
    (root / "existence" / "000000006040.txt").write_bytes(
        b"Is there a train in this image? Please answer yes or no.\tYes\r\n"
        b"Is there a bed in this image? Please answer yes or no.\tNo\r\n\n")
    touch(root / "existence" / "000000006471.jpg")
    (root / "existence" / "000000006471.txt").write_text("Is there a bat in this image?\tYes\n")  # one line
    (root / "existence" / "000000007108.txt").write_text("Is there a cat?\tYes\nIs there a dog?\tNo\n")  # no image
    touch(root / "count" / "000000000001.png")
    (root / "count" / "000000000001.txt").write_text("Are there two cats?\tMaybe\nAre there three cats?\tNo\n")
    items, skipped = read_mme("mme", annotations=str(tmp_path / "MME_Benchmark_release_version"))
    assert items == [
        Item("existence/000000006040.jpg/0", [train], "Is there a train in this image? Please answer yes or no.",
             ["Yes"], meta={"category": "existence", "image": "existence/000000006040.jpg"}),
        Item("existence/000000006040.jpg/1", [train], "Is there a bed in this image? Please answer yes or no.",
             ["No"], meta={"category": "existence", "image": "existence/000000006040.jpg"}),
        Item("artwork/10002.jpg/0", [art], "Does this artwork exist in the form of painting? Please answer yes or "
             "no.", ["Yes"], meta={"category": "artwork", "image": "artwork/10002.jpg"}),
        Item("artwork/10002.jpg/1", [art], "Does this artwork exist in the form of glassware? Please answer yes or "
             "no.", ["No"], meta={"category": "artwork", "image": "artwork/10002.jpg"}),
    ]
    why = reasons(skipped)
    assert why["existence/000000006471"] == (f"{root / 'existence' / '000000006471.txt'}: file: has 1 question "
                                             f"lines; an MME image has two")
    assert why["existence/000000007108"].endswith(f"no image 000000007108.jpg / .png in {root / 'existence'}")
    assert why["count/000000000001"].endswith("line 1: answer 'Maybe' is not Yes / No")
    assert why["OCR"] == f"{root}: OCR: the subtask folder 'OCR' is absent"
    assert len(skipped) == 3 + 11  # 11 of the 14 subtask folders are absent


def test_mme_bad_folders(tmp_path):
    with pytest.raises(ValueError, match=re.escape(f"eval task 'mme': {tmp_path}: expected the MME release's "
                                                   f"MME_Benchmark folder, with one folder per subtask")):
        read_mme("mme", annotations=str(tmp_path))
    with pytest.raises(ValueError, match="is neither MME.tsv nor an existing folder"):
        read_mme("mme", annotations=str(tmp_path / "nowhere"))


def test_mme_tsv(tmp_path):
    header = ["index", "image", "question", "answer", "category", "image_path"]
    path = tsv(tmp_path / "MME.tsv", header, [
        ["0", b64(PIXELS), "Is there a train in this image? Please answer yes or no.", "Yes", "existence",
         "existence/000000006040.jpg"],
        ["1", "0", "Is there a bed in this image? Please answer yes or no.", "No", "existence",
         "existence/000000006040.jpg"],  # the image given as the index of the row that has it
        ["2", "77", "Is it red?", "Yes", "color", "color/x.jpg"],
        ["3", b64(PIXELS), "Is it red?", "Perhaps", "color", "color/y.jpg"],
    ])
    items, skipped = read_mme("mme", annotations=path)
    assert items == [
        Item("0", [PIXELS], "Is there a train in this image? Please answer yes or no.", ["Yes"],
             meta={"category": "existence", "image": "existence/000000006040.jpg", "index": "0"}),
        Item("1", [PIXELS], "Is there a bed in this image? Please answer yes or no.", ["No"],
             meta={"category": "existence", "image": "existence/000000006040.jpg", "index": "1"}),
    ]
    assert reasons(skipped) == {"2": f"{path}: row 3: image refers to row index 77, which has no image",
                                "3": f"{path}: row 4: answer 'Perhaps' is not Yes / No"}
    bad = tsv(tmp_path / "bad.tsv", ["index", "image", "question", "answer"], [["0", b64(PIXELS), "q", "Yes"]])
    with pytest.raises(ValueError, match=re.escape(f"eval task 'mme': {bad}: expected VLMEvalKit's MME.tsv with the "
                                                   f"columns index, image, question, answer, category; it lacks "
                                                   f"'category'")):
        read_mme("mme", annotations=bad)


def _pope_file(path, records):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return str(path)


def test_pope_release(tmp_path):
    images = tmp_path / "val2014"
    photo = touch(images / "COCO_val2014_000000310196.jpg")
    folder = tmp_path / "coco"
    _pope_file(folder / "coco_pope_random.json", [
        {"question_id": 1, "image": "COCO_val2014_000000310196.jpg", "text": "Is there a snowboard in the image?",
         "label": "yes"},
        {"question_id": 2, "image": "COCO_val2014_000000310196.jpg", "text": "Is there a car in the image?",
         "label": "no"},
        {"question_id": 3, "image": "COCO_val2014_000000310196.jpg", "text": "Is there a cat in the image?",
         "label": "Yes"},
    ])
    adversarial = _pope_file(folder / "coco_pope_adversarial.json", [
        {"question_id": 1, "image": "COCO_val2014_000000310196.jpg", "text": "Is there a person in the image?",
         "label": "no"},
        {"question_id": 2, "image": "COCO_val2014_000000999999.jpg", "text": "Is there a dog in the image?",
         "label": "yes"},
    ])
    items, skipped = read_pope("pope", annotations=str(folder), images=str(images))
    assert items == [
        Item("random/1", [photo], "Is there a snowboard in the image?", ["yes"],
             meta={"split": "random", "splits": ["random"], "question_id": 1,
                   "image": "COCO_val2014_000000310196.jpg"}),
        Item("random/2", [photo], "Is there a car in the image?", ["no"],
             meta={"split": "random", "splits": ["random"], "question_id": 2,
                   "image": "COCO_val2014_000000310196.jpg"}),
        Item("adversarial/1", [photo], "Is there a person in the image?", ["no"],
             meta={"split": "adversarial", "splits": ["adversarial"], "question_id": 1,
                   "image": "COCO_val2014_000000310196.jpg"}),
    ]
    why = reasons(skipped)
    assert why["random/3"] == f"{folder / 'coco_pope_random.json'}: line 3: label 'Yes' is not yes / no"
    assert why["adversarial/2"].endswith("COCO_val2014_000000999999.jpg' does not exist")
    # one file: its split from its name
    items, _ = read_pope("pope", annotations=adversarial, images=str(images))
    assert [i.id for i in items] == ["adversarial/1"]
    with pytest.raises(ValueError, match=re.escape(f"eval task 'pope': {folder}: no POPE file of the splits popular")):
        read_pope("pope", annotations=str(folder), images=str(images), splits="popular")
    with pytest.raises(ValueError, match="the POPE splits are random, popular, adversarial"):
        read_pope("pope", annotations=str(folder), images=str(images), splits="easy")
    other = _pope_file(tmp_path / "questions.json", [])
    with pytest.raises(ValueError, match=re.escape(f"eval task 'pope': {other}: expected a POPE file named")):
        read_pope("pope", annotations=other, images=str(images))


def test_pope_tsv(tmp_path):
    path = tsv(tmp_path / "POPE.tsv", ["index", "image", "question", "answer", "category"], [
        ["0", b64(PIXELS), "Is there a snowboard in the image?", "Yes", "random,popular"],
        ["1", "0", "Is there a car in the image?", "No", "adversarial"],
        ["2", "0", "Is there a cat in the image?", "No", ""],
    ])
    items, skipped = read_pope("pope", annotations=path)
    assert items == [
        Item("0", [PIXELS], "Is there a snowboard in the image?", ["Yes"],
             meta={"split": "random,popular", "splits": ["random", "popular"], "index": "0"}),
        Item("1", [PIXELS], "Is there a car in the image?", ["No"],
             meta={"split": "adversarial", "splits": ["adversarial"], "index": "1"}),
    ]
    assert reasons(skipped) == {"2": f"{path}: row 3: has no category (the POPE split)"}


def test_seed_bench_release(tmp_path):
    images = tmp_path / "SEED-Bench-image"
    towels = touch(images / "1454426_2591111986")  # eval.py opens os.path.join(cc3m_dir, data_id)
    ann = tmp_path / "SEED-Bench.json"
    ann.write_text(json.dumps({"questions": [
        {"answer": "A", "choice_a": "One", "choice_b": "Two", "choice_c": "Three", "choice_d": "Four",
         "data_id": "1454426_2591111986", "data_type": "image", "question": "How many towels are in the image?",
         "question_id": "101669", "question_type_id": 5},
        {"answer": "B", "choice_a": "throwing something in the air and letting it fall",
         "choice_b": "throwing something in the air and catching it",
         "choice_c": "lifting up one end of something, then letting it drop down",
         "choice_d": "poking something so that it falls over", "data_id": "94328.webm", "data_type": "video",
         "question": "What is the action being carried out in the video?", "question_id": "v1738",
         "question_type_id": 10},
        {"answer": "E", "choice_a": "a", "choice_b": "b", "choice_c": "c", "choice_d": "d",
         "data_id": "1454426_2591111986", "data_type": "image", "question": "Which?", "question_id": "7",
         "question_type_id": 1},
    ], "question_type": {"Scene Understanding": 1, "Instances Counting": 5, "Action Recognition": 10}}))
    items, skipped = read_seed_bench("seed", annotations=str(ann), images=str(images))
    assert items == [Item("101669", [towels], "How many towels are in the image?", ["One"],
                          ["One", "Two", "Three", "Four"], 0,
                          {"question_id": "101669", "question_type_id": 5, "question_type": "Instances Counting",
                           "data_id": "1454426_2591111986"})]
    assert reasons(skipped) == {"7": f"{ann}: questions[2]: answer 'E' is not one of the option letters ABCD"}
    ann.write_text(json.dumps({"data": []}))
    with pytest.raises(ValueError, match=re.escape(f"eval task 'seed': {ann}: expected a JSON object with a "
                                                   f"'questions' list, found keys ['data']")):
        read_seed_bench("seed", annotations=str(ann), images=str(images))


def test_seed_bench_tsv(tmp_path):
    header = ["index", "question", "A", "B", "C", "D", "answer", "category", "image"]
    path = tsv(tmp_path / "SEEDBench_IMG.tsv", header, [
        ["1", "How many towels are in the image?", "One", "Two", "Three", "Four", "A", "Instances Counting",
         b64(PIXELS)],
        ["2", "Where is the cat?", "left", "right", "top", "bottom", "Z", "Instance Location", "1"],
    ])
    items, skipped = read_seed_bench("seed", annotations=path)
    assert items == [Item("1", [PIXELS], "How many towels are in the image?", ["One"], ["One", "Two", "Three", "Four"],
                          0, {"index": "1", "answer": "A", "question_type": "Instances Counting"})]
    assert reasons(skipped) == {"2": f"{path}: row 2: answer 'Z' is not one of the option letters ABCD"}


def test_realworldqa_release_parquet(tmp_path):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    data = tmp_path / "data"
    data.mkdir()
    lettered = ("In which direction is the front wheel of the car on the right side facing?\nA. Left\nB. Straight\n"
                "C. Right\nPlease answer directly with only the letter of the correct option and nothing else.")
    table = pa.table({
        "image": [{"bytes": PIXELS, "path": None}, {"bytes": PIXELS, "path": None}, {"bytes": None, "path": None}],
        "question": [lettered, "How many pedestrians are there? Please answer directly with a single word or number.",
                     "Is it raining?"],
        "answer": ["C", "0", "No"],
    })
    pq.write_table(table, data / "test-00000-of-00002.parquet")
    items, skipped = read_realworldqa("realworldqa", annotations=str(data))
    assert items == [
        Item("test-00000-of-00002.parquet:0", [PIXELS],
             "In which direction is the front wheel of the car on the right side facing?", ["Right"],
             ["Left", "Straight", "Right"], 2, {"answer": "C", "release_question": lettered}),
        Item("test-00000-of-00002.parquet:1", [PIXELS],
             "How many pedestrians are there? Please answer directly with a single word or number.", ["0"],
             meta={"answer": "0"}),
    ]
    assert reasons(skipped) == {"test-00000-of-00002.parquet:2": f"{data / 'test-00000-of-00002.parquet'}: row 2: "
                                                                 f"image has no bytes (found a JSON object)"}
    bad = tmp_path / "bad.parquet"
    pq.write_table(pa.table({"question": ["q"], "answer": ["A"]}), bad)
    with pytest.raises(ValueError, match=re.escape(f"eval task 'realworldqa': {bad}: expected the RealWorldQA "
                                                   f"columns image, question, answer; it lacks image")):
        read_realworldqa("realworldqa", annotations=str(bad))


def test_realworldqa_tsv(tmp_path):
    path = tsv(tmp_path / "RealWorldQA.tsv", ["index", "question", "A", "B", "C", "answer", "image"], [
        ["0", "Which way is the car facing?", "Left", "Straight", "nan", "B", b64(PIXELS)],
    ])
    items, skipped = read_realworldqa("realworldqa", annotations=path)
    assert items == [Item("0", [PIXELS], "Which way is the car facing?", ["Straight"], ["Left", "Straight"], 1,
                          {"index": "0", "answer": "B", "category": ""})] and not skipped


# ====================================================================================================================
# MME scorer
# ====================================================================================================================

MME_ANSWERS = [
    # response, convention, expected, rule
    ("yes", "official", "yes", "MME-CALC: exactly yes"),
    ("Yes, there is a train.", "official", "yes", "MME-CALC: lower-cased, 'yes' in the first 4 characters"),
    ("No, there is no bed.", "official", "no", "MME-CALC: 'no' in the first 4 characters"),
    ("not really", "official", "no", "MME-CALC: 'not' contains 'no'"),
    ("none", "official", "no", "MME-CALC: 'none' contains 'no'"),
    (" yes", "official", "yes", "MME-CALC: not stripped, 'yes' still within 4 characters"),
    ("  yes", "official", "other", "MME-CALC: not stripped, 'yes' past the first 4 characters"),
    ("There is a bed", "official", "other", "MME-CALC: only the first 4 characters count"),
    ("y", "official", "other", "MME-CALC: no one-letter rule"),
    ("yes\n", "official", "yes", "MME-CALC: the results line's trailing newline changes nothing"),
    ("  yes ", "lmms_eval", "yes", "MME-LMMS: stripped"),
    ("Yes.", "lmms_eval", "yes", "MME-LMMS: '.' deleted, then exact"),
    ("Y", "lmms_eval", "yes", "MME-LMMS: one letter y"),
    ("n", "lmms_eval", "no", "MME-LMMS: one letter n"),
    ("x", "lmms_eval", "other", "MME-LMMS: another letter"),
    ("Yes, it is.", "vlmevalkit", "Yes", "YORN: 'yes' among the words, no 'no'"),
    ("No, it is not.", "vlmevalkit", "No", "YORN: 'no' among the words, no 'yes'"),
    ("Yes and no", "vlmevalkit", "Unknown", "YORN: both"),
    ("not at all", "vlmevalkit", "Unknown", "YORN: 'not' is not the word 'no'"),
]


@pytest.mark.parametrize("response, convention, expected, rule", MME_ANSWERS, ids=[r[3] for r in MME_ANSWERS])
def test_mme_answer(response, convention, expected, rule):
    assert mme_answer(response, convention) == expected


def test_mme_correct():
    assert mme_correct("Yes", "Yes") and not mme_correct("other thing", "No")  # MME-CALC: gt lower-cased
    assert mme_correct("no.", "No.", "lmms_eval")  # MME-LMMS: the ground truth is processed like the response
    assert not mme_correct("yes", "yes", "vlmevalkit")  # YORN: answer == extracted, exactly ('Yes' != 'yes')
    with pytest.raises(ValueError, match="MME ground truth 'Maybe' is not yes / no"):  # MME-CALC: assert
        mme_correct("yes", "Maybe")
    with pytest.raises(ValueError, match="known: official, lmms_eval, vlmevalkit"):
        mme_correct("yes", "Yes", "otter")


def _mme_rows(subtasks, wrong=()):
    """Two questions per image, one image per subtask, answered right except the (subtask, k) in `wrong`."""
    preds, answers, cats, images = [], [], [], []
    for name in subtasks:
        for k, gold in enumerate(("Yes", "No")):
            answers.append(gold)
            preds.append(("No" if gold == "Yes" else "Yes") if (name, k) in wrong else gold)
            cats.append(name)
            images.append(f"{name}/1.jpg")
    return preds, answers, cats, images


def test_mme_scores_hand_computed():
    # existence: image a both right, image b one right -> MME-CALC acc = 3/4 = 75, acc+ = 1/2 = 50, score 125
    preds = ["Yes", "No", "Yes", "Yes"]
    answers = ["Yes", "No", "Yes", "No"]
    cats = ["existence"] * 4
    images = ["a.jpg", "a.jpg", "b.jpg", "b.jpg"]
    for convention in ("official", "lmms_eval", "vlmevalkit"):
        scores = mme_scores(preds, answers, cats, images, convention=convention)
        assert scores["existence"] == pytest.approx(125.0)
        assert scores["existence/acc"] == pytest.approx(75.0) and scores["existence/acc_plus"] == pytest.approx(50.0)
    # MME-CALC: perception / cognition sum their subtasks and need all of them
    assert "perception" not in mme_scores(preds, answers, cats, images)
    assert mme_scores(preds, answers, cats, images, convention="lmms_eval")["perception"] == pytest.approx(125.0)
    full = _mme_rows(MME_PERCEPTION + MME_COGNITION, wrong={("OCR", 1), ("code_reasoning", 0), ("code_reasoning", 1)})
    scores = mme_scores(*full)
    assert scores["perception"] == pytest.approx(9 * 200 + 50)  # OCR: acc 50, acc+ 0
    assert scores["cognition"] == pytest.approx(3 * 200 + 0)  # code_reasoning: both wrong
    assert scores["OCR"] == pytest.approx(50.0)


def test_mme_official_pairs_consecutive_lines():
    # MME-CALC: divide_chunks pairs consecutive lines; an odd count fails its assert
    with pytest.raises(ValueError, match="has 3 questions; the official scorer pairs two per image"):
        mme_scores(["yes"] * 3, ["Yes"] * 3, ["count"] * 3)
    with pytest.raises(ValueError, match="must be consecutive"):
        mme_scores(["yes"] * 4, ["Yes"] * 4, ["count"] * 4, ["a", "b", "a", "b"])
    # MME-LMMS groups by image whatever the order
    scores = mme_scores(["Yes", "Yes", "No", "Yes"], ["Yes", "Yes", "No", "No"], ["count"] * 4, ["a", "b", "a", "b"],
                        convention="lmms_eval")
    assert scores["count"] == pytest.approx(75 + 50)
    with pytest.raises(ValueError, match="lmms-eval asserts 2"):
        mme_scores(["Yes"] * 3, ["Yes"] * 3, ["count"] * 3, ["a", "a", "a"], convention="lmms_eval")
    # YORN: acc+ multiplies the first two of an image; a third question counts in acc only
    scores = mme_scores(["Yes", "Yes", "Yes"], ["Yes", "Yes", "No"], ["count"] * 3, ["a", "a", "a"],
                        convention="vlmevalkit")
    assert scores["count/acc"] == pytest.approx(200 / 3) and scores["count/acc_plus"] == pytest.approx(100.0)


# ====================================================================================================================
# POPE scorer
# ====================================================================================================================

POPE_ANSWERS = [
    ("Yes, there is a dog in the image.", "official", "yes", "POPE-EVAL: no negative word"),
    ("No, there is no dog.", "official", "no", "POPE-EVAL: the word No"),
    ("There is not a dog.", "official", "no", "POPE-EVAL: the word not"),
    ("Yes. But there is no cat", "official", "yes", "POPE-EVAL: only the first sentence counts"),
    ("no,there is", "official", "yes", "POPE-EVAL: commas deleted, not replaced ('nothere')"),
    ("NO", "official", "yes", "POPE-EVAL: case counts: NO is not a negative word"),
    ("Not sure", "official", "yes", "POPE-EVAL: 'Not' is not in the list"),
    ("No\nthere is", "official", "yes", "POPE-EVAL: split on spaces only"),
    ("", "official", "yes", "POPE-EVAL: anything else is yes"),
    (" Yes \n", "lmms_eval", "yes", "POPE-LMMS: lower-cased and stripped, nothing more"),
    ("No, there is not.", "lmms_eval", "no, there is not.", "POPE-LMMS: no parsing"),
    ("Yes, there is.", "vlmevalkit", "Yes", "YORN: yes without no"),
    ("There is not a dog", "vlmevalkit", "Unknown", "YORN: neither word"),
]


@pytest.mark.parametrize("response, convention, expected, rule", POPE_ANSWERS, ids=[r[3] for r in POPE_ANSWERS])
def test_pope_answer(response, convention, expected, rule):
    assert pope_answer(response, convention) == expected


PREDICTIONS = ["Yes, there is.", "No.", "There is not a dog", "yes"]
LABELS = ["yes", "yes", "no", "no"]


def test_pope_metrics_official():
    # POPE-EVAL answers: yes, no, no, yes -> TP 1 (item 0), FN 1 (item 1), TN 1 (item 2), FP 1 (item 3)
    assert pope_metrics(PREDICTIONS, LABELS) == {"accuracy": 0.5, "precision": 0.5, "recall": 0.5, "f1": 0.5,
                                                 "yes_ratio": 0.5}
    # POPE-EVAL: any label but 'no' is positive; yes_ratio counts PREDICTED yes
    scores = pope_metrics(["yes", "yes", "yes"], ["yes", "Yes", "no"])
    assert scores["precision"] == pytest.approx(2 / 3) and scores["recall"] == 1.0 and scores["yes_ratio"] == 1.0
    # POPE-EVAL divides unguarded (ZeroDivisionError): nan here
    scores = pope_metrics(["no", "no"], ["yes", "no"])
    assert math.isnan(scores["precision"]) and math.isnan(scores["f1"]) and scores["recall"] == 0.0


def test_pope_metrics_lmms_eval():
    # POPE-LMMS: predictions 'yes, there is.', 'no.', 'there is not a dog', 'yes' against yes, yes, no, no:
    # none equals its label; TP 0, FP 1 (item 3), FN 0 ('no.' is not 'no'): precision 0, recall 0/0 -> 0, f1 0;
    # yes_ratio counts the LABELS: 2 / 4
    assert pope_metrics(PREDICTIONS, LABELS, "lmms_eval") == {"accuracy": 0.0, "precision": 0.0, "recall": 0.0,
                                                              "f1": 0.0, "yes_ratio": 0.5}
    # POPE-LMMS: a false negative is a 'yes' label answered exactly 'no'; 'maybe' is neither TP nor FN: recall 1/1
    assert pope_metrics(["yes", "maybe"], ["yes", "yes"], "lmms_eval")["recall"] == 1.0
    assert pope_metrics(["no", "maybe"], ["yes", "yes"])["recall"] == 0.5  # POPE-EVAL: 'maybe' reads as yes
    with pytest.raises(ValueError, match="labels must be yes / no"):
        pope_metrics(["yes"], ["maybe"], "lmms_eval")


def test_pope_metrics_vlmevalkit():
    # YORN: extracted Yes, No, Unknown, Yes against Yes, Yes, No, No: score 1 of 4; y_pred 1, 0, 0, 1:
    # tp 1, fp 1, fn 1 -> precision 0.5, recall 0.5, f1 0.5; no yes ratio
    assert pope_metrics(PREDICTIONS, LABELS, "vlmevalkit") == {"accuracy": 0.25, "precision": 0.5, "recall": 0.5,
                                                               "f1": 0.5}
    assert vlmevalkit_yes_no("Yes, 3,000 dogs.") == "Yes"


def test_pope_scores_per_split():
    splits = ["random", "random", "adversarial", "random,adversarial"]
    scores = pope_scores(["yes", "no", "no", "yes"], ["yes", "no", "no", "no"], splits)
    # random: items 0, 1, 3 -> TP 1, TN 1, FP 1: accuracy 2/3, precision 1/2, recall 1, f1 2/3
    assert scores["random/accuracy"] == pytest.approx(2 / 3) and scores["random/f1"] == pytest.approx(2 / 3)
    # adversarial: items 2, 3 -> TN 1, FP 1, no positive label: precision 0, recall nan (POPE-EVAL would raise)
    assert scores["adversarial/accuracy"] == 0.5 and math.isnan(scores["adversarial/recall"])
    # overall: the (item, split) pairs, item 3 twice (YORN's POPE_rating explodes the category): 5 rows, 3 right
    assert scores["overall/accuracy"] == pytest.approx(3 / 5)
    assert scores["mean/accuracy"] == pytest.approx((2 / 3 + 1 / 2) / 2)


# ====================================================================================================================
# SEED-Bench and RealWorldQA scorers
# ====================================================================================================================


def test_seed_bench_rules():
    assert seed_choice_from_losses([2.0, 0.5, 0.5, 3.0]) == 1  # SEED-EVAL: argsort(losses)[0], the lowest loss
    assert seed_correct("B", "B") and not seed_correct("b", "B")  # SEED-EVAL: pred == gt, letters
    assert seed_correct("B) cat", "B", convention="lmms_eval")  # SEED-LMMS: the first character
    assert seed_correct(" b", "B", convention="lmms_eval")  # SEED-LMMS: stripped, lower-cased both
    assert not seed_correct("The answer is B", "B", convention="lmms_eval")  # SEED-LMMS: 'T'
    options = ["one", "two", "three", "four"]
    assert seed_correct("The answer is B", "B", options, "vlmevalkit")  # MCQ: can_infer, a lone letter near the end
    assert seed_correct("There are two towels", "B", options, "vlmevalkit")  # MCQ: can_infer_text, one option
    assert not seed_correct("I cannot tell", "B", options, "vlmevalkit")  # MCQ: no letter -> 'Z'
    with pytest.raises(ValueError, match="known: official, lmms_eval, vlmevalkit"):
        seed_correct("B", "B", convention="ppl")


def test_seed_scores_hand_computed():
    # SEED-EVAL: per question_type_id, and total right / total questions (micro)
    scores = seed_scores([True, False, True, True], [1, 1, 5, "Text Understanding"])
    assert scores == {"accuracy": 0.75, "Scene Understanding": 0.5, "Instances Counting": 1.0,
                      "Text Understanding": 1.0}


def test_realworldqa_rules():
    assert realworldqa_correct("C", "C")  # RWQA-LMMS: extract_mcq_answer over A-D
    assert realworldqa_correct("The answer is C.", "c")  # RWQA-LMMS: a phrase; the answer upper-cased
    assert not realworldqa_correct("B", "C")
    assert realworldqa_correct("0.", "0")  # RWQA-LMMS: open answer, lower-cased, stripped, trailing '.' removed
    assert realworldqa_correct(" Downhill ", "Downhill")
    assert not realworldqa_correct("Downhill slope", "Downhill")  # RWQA-LMMS: exact match, no containment
    assert realworldqa_correct("Straight", "B", ["Left", "Straight", "Right"], "vlmevalkit")  # MCQ: option text
    assert not realworldqa_correct("0", "0", [], "vlmevalkit")  # MCQ: with no options nothing is inferred ('Z')
    with pytest.raises(ValueError, match="no 'official' one"):
        realworldqa_correct("C", "C", convention="official")
    assert realworldqa_scores([True, False, True, True], ["a", "b", "a", "a"]) == {"accuracy": 0.75, "a": 1.0,
                                                                                   "b": 0.0}
