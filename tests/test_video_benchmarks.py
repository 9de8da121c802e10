"""Video benchmarks: readers on hand-written official-format records, scorers on hand-computed cases."""
from __future__ import annotations

import json
import math
import os

import pytest

from mm1_jax.eval.judge import Judge, Reply
from mm1_jax.eval.prompts import Item
from mm1_jax.eval.readers import video as readers
from mm1_jax.eval.scorers import video as scorers


def _touch(path) -> str:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(b"\x00not a real video")
    return str(path)


def _write(path, data) -> str:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write(data if isinstance(data, str) else json.dumps(data))
    return str(path)


# ---------------------------------------------------------------------------------------------------------- NExT-QA

NEXTQA_CSV = (
    "video,frame_count,width,height,question,answer,qid,type,a0,a1,a2,a3,a4\n"
    "4010069381,369,640,480,how do the two man play the instrument,0,6,CH,roll the handle,tap their feet,"
    "strum the string,hit with sticks,pat with hand\n"
    "4010069381,369,640,480,why did the boy cry,7,7,CW,a,b,c,d,e\n"
    "9999999999,100,640,480,what is on the table,2,1,DO,a,b,cup,d,e\n"
    "4010069381,369,640,480,what happens before the dog jumps,3,3,TP,a,b,c,runs,e\n")


def test_nextqa_reader(tmp_path):
    _touch(tmp_path / "NExTVideo/1106/4010069381.mp4")
    csv_path = _write(tmp_path / "val.csv", NEXTQA_CSV)
    vmap = _write(tmp_path / "map_vid_vidorID.json", {"4010069381": "1106/4010069381", "9999999999": "0/9999999999"})
    items, skipped = readers.read_nextqa("nextqa", annotations=csv_path, video_map=vmap,
                                         videos=str(tmp_path / "NExTVideo"))
    assert [it.id for it in items] == ["4010069381_6", "4010069381_3"]
    it = items[0]
    assert it.images == [] and it.answer_index == 0 and it.answers == ["roll the handle"]
    assert it.meta["video"] == str(tmp_path / "NExTVideo/1106/4010069381.mp4") and it.meta["answer"] == "A"
    assert it.question == ("how do the two man play the instrument\nA. roll the handle\nB. tap their feet\n"
                           "C. strum the string\nD. hit with sticks\nE. pat with hand\n"
                           "Answer with the option's letter from the given choices directly.")
    reasons = {s["id"]: s["reason"] for s in skipped}
    assert "answer '7' is not an option index 0-4" in reasons["4010069381_7"]
    assert "does not exist" in reasons["9999999999_1"] and "video file" in reasons["9999999999_1"]


def test_nextqa_reader_file_problems(tmp_path):
    bad = _write(tmp_path / "val.csv", "video,question\n1,q\n")
    vmap = _write(tmp_path / "map.json", {})
    os.makedirs(tmp_path / "v")
    with pytest.raises(ValueError, match=r"val.csv.*lacks 'answer'"):
        readers.read_nextqa("nextqa", annotations=bad, video_map=vmap, videos=str(tmp_path / "v"))
    with pytest.raises(ValueError, match="does not exist"):
        readers.read_nextqa("nextqa", annotations=str(tmp_path / "nope.csv"), video_map=vmap,
                            videos=str(tmp_path / "v"))


def _items(kind, golds, options=("a", "b", "c", "d", "e"), **meta):
    out = []
    for i, g in enumerate(golds):
        m = {"answer": g, **{k: v[i] for k, v in meta.items()}}
        out.append(Item(id=str(i), images=[], question="q", answers=[options[ord(g) - 65]], options=list(options),
                        answer_index=ord(g) - 65, meta=m))
    return out


def test_nextqa_scorer():
    items = _items("nextqa", ["B", "B", "A", "C", "D"], type=["CW", "CH", "TP", "TC", "DO"],
                   options=("roll the handle", "tap their feet", "strum", "hit", "pat"))
    preds = ["(B)", "The answer is B", "A.", "tap their feet", ""]
    scores, rows, details = scorers.nextqa_aggregate(items, preds, "official")
    assert [r["correct"] for r in rows] == [True, True, True, False, False]
    assert rows[3]["answer"] == "B"  # the option text read as its letter
    assert scores["accuracy"] == pytest.approx(3 / 5)
    assert scores["causal"] == 1.0 and scores["temporal"] == 0.5 and scores["descriptive"] == 0.0
    assert scores["TN"] == 1.0 and "TP" not in scores and details["convention"] == "official"


# --------------------------------------------------------------------------------------------------------- IntentQA

INTENTQA_CSV = (  # rows as JoseponLee/IntentQA datasets/IntentQA/test.csv writes them
    "video_id,frame_count,width,height,question,answer,qid,type,a0,a1,a2,a3,a4,action,lemma,lemma_id\n"
    "6102982194,1266,640,360,why does the man playing the white guitar go near the man playing the keytar,2,2,CW,"
    "want to talk to him,make music,to energise him,want to hit him,to annoy him,playing,play,141\n"
    "8626931151,2160,640,360,what was the kid doing before he flipped the pages of the book,4,5,TP,flip the book,"
    "turn behind to look,look at camera,hold the book in his hands,puts his hand into the robe,flipped,flip,96\n"
    "5852331173,645,640,360,how did the ladies keep their sunglasses,3,1,CH,put inside bag,wear bib,hang on shirt,"
    "put on head,hold in hand,put,put,160\n"
    "1111111111,645,640,360,why is it raining,0,1,CW,a,b,c,d,e,rain,rain,1\n")


def test_intentqa_reader(tmp_path):
    _touch(tmp_path / "videos/6102982194.mp4")
    _touch(tmp_path / "videos/8626931151.webm")
    _touch(tmp_path / "videos/5852331173.mp4")
    csv_path = _write(tmp_path / "test.csv", INTENTQA_CSV)
    items, skipped = readers.read_intentqa("intentqa", annotations=csv_path, videos=str(tmp_path / "videos"))
    assert [it.id for it in items] == ["6102982194_2", "8626931151_5", "5852331173_1"]
    first, second = items[0], items[1]
    assert first.answer_index == 2 and first.answers == ["to energise him"] and first.meta["answer"] == "C"
    assert first.meta["kind"] == "intentqa" and first.meta["type"] == "CW"
    assert first.meta["video"] == str(tmp_path / "videos/6102982194.mp4")
    assert second.meta["video"] == str(tmp_path / "videos/8626931151.webm") and second.meta["type"] == "TP"
    assert first.question.startswith("why does the man playing the white guitar go near the man playing the keytar\n"
                                     "A. want to talk to him\nB. make music\n")
    assert [s["id"] for s in skipped] == ["1111111111_1"] and "does not exist" in skipped[0]["reason"]
    # with NExT-QA's map (IntentQA's videos are NExT-QA's): <folder>/<file>.mp4
    _touch(tmp_path / "NExTVideo/1106/6102982194.mp4")
    vmap = _write(tmp_path / "map.json", {"6102982194": "1106/6102982194"})
    items, skipped = readers.read_intentqa("intentqa", annotations=csv_path, videos=str(tmp_path / "NExTVideo"),
                                           video_map=vmap)
    assert [it.id for it in items] == ["6102982194_2"] and len(skipped) == 3
    assert items[0].meta["video"] == str(tmp_path / "NExTVideo/1106/6102982194.mp4")


def test_intentqa_scorer_is_eval_intentqa():
    # eval_intentqa.py: groups CW / CH / TN (TP counted as TN); Acc_C over CW + CH, Acc_T over TN; Acc over all
    items = _items("intentqa", ["A", "B", "C", "D", "E", "A"], type=["CW", "CW", "CH", "TN", "TP", "TP"])
    preds = ["A", "C", "(C)", "D", "B", "A"]
    scores, rows, _ = scorers.AGGREGATES["intentqa"](items, preds, "official")
    assert [r["correct"] for r in rows] == [True, False, True, True, False, True]
    assert scores["accuracy"] == pytest.approx(4 / 6)
    assert scores["CW"] == 0.5 and scores["CH"] == 1.0 and scores["TN"] == pytest.approx(2 / 3)
    assert scores["causal"] == pytest.approx(2 / 3) and scores["temporal"] == pytest.approx(2 / 3)
    assert "descriptive" not in scores and "TP" not in scores


# -------------------------------------------------------------------------------------------------------- Video-MME

VIDEOMME_JSON = [{
    "video_id": "001", "duration": "short", "domain": "Knowledge", "sub_category": "Humanity & History",
    "url": "https://www.youtube.com/watch?v=fFjv93ACGo8",
    "questions": [
        {"question_id": "001-1", "task_type": "Counting Problem",
         "question": "When demonstrating the Germany modern Christmas tree is initially decorated with apples, "
                     "candles and berries, which kind of the decoration has the largest number?",
         "options": ["A. Apples.", "B. Candles.", "C. Berries.", "D. The three kinds are of the same number."],
         "answer": "C"},
        {"question_id": "001-2", "task_type": "Information Synopsis", "question": "q2",
         "options": ["A. a", "B. b", "C. c", "D. d"], "answer": "E"}]},
    {"video_id": "002", "duration": "long", "videoID": "missing00", "questions": [
        {"question_id": "002-1", "task_type": "OCR Problems", "question": "q",
         "options": ["A. a", "B. b", "C. c", "D. d"], "answer": "A"}]}]


def test_videomme_reader(tmp_path):
    _touch(tmp_path / "data/fFjv93ACGo8.mp4")
    path = _write(tmp_path / "videomme.json", VIDEOMME_JSON)
    items, skipped = readers.read_videomme("videomme", annotations=path, videos=str(tmp_path / "data"))
    assert [it.id for it in items] == ["001-1"]
    it = items[0]
    assert it.options[0] == "Apples." and it.answer_index == 2 and it.meta["duration"] == "short"
    assert it.question.startswith("Select the best answer to the following multiple-choice question based on the "
                                  "video. Respond with only the letter (A, B, C, or D) of the correct option.\n"
                                  "When demonstrating")
    assert it.question.endswith("\nA. Apples.\nB. Candles.\nC. Berries.\nD. The three kinds are of the same "
                                "number.\nThe best answer is:")
    reasons = {s["id"]: s["reason"] for s in skipped}
    assert "answer 'E' is not one of the option letters ABCD" in reasons["001-2"]
    assert "does not exist" in reasons["002-1"]
    with pytest.raises(ValueError, match="expected a JSON list of videos"):
        readers.read_videomme("videomme", annotations=_write(tmp_path / "x.json", {"a": 1}),
                              videos=str(tmp_path / "data"))


def test_videomme_extract():
    ex = scorers.videomme_extract
    assert ex("(B)") == "B" and ex("B.") == "B" and ex("The answer is B") == "B" and ex("") == ""
    assert ex("The best answer is: C") == "C"
    assert ex("Apples.") == "A"  # the first capital A-D anywhere: "Apples" reads as A
    assert ex("candles") == ""
    assert ex("one two three four five six seven eight nine ten eleven") == ""
    # the official list misses two commas: "Best answer:" is no prefix of its own, so its B is read
    assert ex("Best answer: C") == "B"
    assert ex("Best answer:Best option: C") == "C"


def test_videomme_scorer():
    items = _items("videomme", ["B", "B", "C", "A"], options=("a", "b", "c", "d"),
                   duration=["short", "short", "long", "long"], task=["t", "t", "t", "u"], domain=["x"] * 4)
    for it in items:
        it.meta["options"] = ["A. a", "B. b", "C. c", "D. d"]
    scores, _rows, details = scorers.videomme_aggregate(items, ["(B)", "C", "", "A."], "official")
    # answered: 3 (the empty one is left out); correct 2
    assert scores["accuracy"] == pytest.approx(2 / 3) and scores["answered"] == 0.75
    assert scores["short"] == 0.5 and scores["long"] == 1.0 and details["unanswered"] == 1


# ---------------------------------------------------------------------------------------------------------- MVBench


def test_mvbench_reader(tmp_path):
    _touch(tmp_path / "video/star/Charades_v1_480/6H78U.mp4")
    os.makedirs(tmp_path / "video/tvqa/frames_fps3_hq/castle_s07e04_seg02_clip_14")
    _write(tmp_path / "json/action_sequence.json", [
        {"video": "6H78U.mp4", "question": "What happened after the person took the food?",
         "candidates": ["Ate the medicine.", "Tidied up the blanket.", "Put down the cup/glass/bottle.",
                        "Took the box."], "answer": "Ate the medicine.", "start": 11.6, "end": 19.3},
        {"video": "6H78U.mp4", "question": "q", "candidates": ["x", "y"], "answer": "z", "start": 1, "end": 2},
        {"video": "6H78U.mp4", "question": "q", "candidates": ["x", "y"], "answer": "x"}])
    _write(tmp_path / "json/episodic_reasoning.json", [
        {"video": "castle_s07e04_seg02_clip_14", "question": "Why?", "candidates": ["a", "b", "c", "d", "e"],
         "answer": "c", "start": 0.0, "end": 10.5}])
    items, skipped = readers.read_mvbench("mvbench", annotations=str(tmp_path / "json"),
                                          videos=str(tmp_path / "video"),
                                          tasks=("Action Sequence", "Episodic Reasoning"))
    assert [it.id for it in items] == ["Action Sequence-0", "Episodic Reasoning-0"]
    it = items[0]
    assert it.meta["start"] == 11.6 and it.meta["end"] == 19.3 and it.meta["answer"] == "A"
    assert it.question == ("Question: What happened after the person took the food?\nOptions:\n(A) Ate the medicine."
                           "\n(B) Tidied up the blanket.\n(C) Put down the cup/glass/bottle.\n(D) Took the box.\n"
                           "Only give the best option.")
    assert it.meta["answer_prefix"] == "Best option:(" and it.meta["system"].startswith("Carefully watch")
    assert os.path.isdir(items[1].meta["video"])
    reasons = {s["id"]: s["reason"] for s in skipped}
    assert "answer 'z' is not one of the candidates" in reasons["Action Sequence-1"]
    assert "start / end" in reasons["Action Sequence-2"]
    with pytest.raises(ValueError, match="action_antonym.json.*does not exist"):
        readers.read_mvbench("mvbench", annotations=str(tmp_path / "json"), videos=str(tmp_path / "video"),
                             tasks=("Action Antonym",))


def test_mvbench_check_ans():
    gt = "(B) Tidied up the blanket."
    ok = lambda reply: scorers.mvbench_check_ans(scorers.mvbench_pred(reply), gt)
    assert ok("B) Tidied up the blanket.") and ok("B.") and ok("(B)")  # "((b)" holds "(b)"
    assert not ok("A) Ate the medicine.") and not ok("The answer is B")
    assert ok("b tidied")  # "(b" is inside "(b)"
    assert ok("")  # "(" is inside every "(x)": the official quirk
    assert scorers.mvbench_pred(" B) x\nbecause") == "(B) x"  # "(" + the first line
    assert not ok(")")  # "()" is not inside "(b)" (without the "(" it would be)


def test_mvbench_scorer():
    items = []
    for i, (task, gold) in enumerate([("T1", "x"), ("T1", "y"), ("T2", "x")]):
        items.append(Item(id=str(i), images=[], question="q", answers=[gold], options=["x", "y"],
                          answer_index=["x", "y"].index(gold), meta={"task": task, "released_question": "q"}))
    scores, rows, _details = scorers.mvbench_aggregate(items, ["A) x", "A) x", "B"], "official")
    assert [r["correct"] for r in rows] == [True, False, False]
    assert scores["T1"] == 0.5 and scores["T2"] == 0.0 and scores["accuracy"] == pytest.approx(1 / 3)
    assert scores["task_mean"] == 0.25


# -------------------------------------------------------------------------------------------------------- EgoSchema


def test_egoschema(tmp_path):
    uid = "0074f737-11cb-497d-8d07-77c3a8127391"
    _touch(tmp_path / f"videos/{uid}.mp4")
    q = {"q_uid": uid, "google_drive_id": "1xyz",
         "question": "Taking into account all the actions performed by c, what can you deduce about the primary "
                     "objective and focus within the video content?",
         "option 0": "C is cooking.", "option 1": "C is doing laundry.", "option 2": "C is cleaning the kitchen.",
         "option 3": "C is cleaning dishes.", "option 4": "C is cleaning the bathroom."}
    other = dict(q, q_uid="no-video")
    unanswered = dict(q, q_uid="not-in-subset")
    questions = _write(tmp_path / "questions.json", [q, other, unanswered])
    answers = _write(tmp_path / "subset_answers.json", {uid: 3, "no-video": 1, "ghost": 0})
    items, skipped = readers.read_egoschema("egoschema", annotations=questions, answers=answers,
                                            videos=str(tmp_path / "videos"))
    assert [it.id for it in items] == [uid] and items[0].answers == ["C is cleaning dishes."]
    assert items[0].meta["answer"] == "D"
    reasons = {s["id"]: s["reason"] for s in skipped}
    assert "does not exist" in reasons["no-video"] and "no question" in reasons["ghost"]
    scores, _rows, _ = scorers.egoschema_aggregate(items * 1, ["D"])
    assert scores["accuracy"] == 1.0
    with pytest.raises(ValueError, match="not valid JSON"):
        readers.read_egoschema("egoschema", annotations=_write(tmp_path / "b.json", "{"), answers=answers,
                               videos=str(tmp_path / "videos"))


# --------------------------------------------------------------------------------------------------- ActivityNet-QA


class FakeJudge(Judge):
    backend = "fake"

    def __init__(self, replies):
        super().__init__("fake-judge")
        self.replies, self.seen = list(replies), []

    def _complete(self, messages, temperature, max_tokens):
        self.seen.append(messages)
        return Reply(self.replies.pop(0), "fake-judge")


def test_activitynet_qa(tmp_path):
    _touch(tmp_path / "videos/v_1QIUV7WYKXg.mp4")
    _touch(tmp_path / "videos/v_abc.mkv")
    q = _write(tmp_path / "test_q.json", [
        {"video_name": "1QIUV7WYKXg", "question": "what is the person doing", "question_id": "v_1QIUV7WYKXg_1"},
        {"video_name": "abc", "question": "is it sunny", "question_id": "v_abc_2"},
        {"video_name": "gone", "question": "q", "question_id": "v_gone_1"},
        {"video_name": "abc", "question": "q", "question_id": "v_abc_9"}])
    a = _write(tmp_path / "test_a.json", [
        {"answer": "play guitar", "type": 0, "question_id": "v_1QIUV7WYKXg_1"},
        {"answer": "yes", "type": 3, "question_id": "v_abc_2"},
        {"answer": "no", "type": 3, "question_id": "v_gone_1"}])
    items, skipped = readers.read_activitynet_qa("activitynet_qa", annotations=q, answers=a,
                                                 videos=str(tmp_path / "videos"))
    assert [it.id for it in items] == ["v_1QIUV7WYKXg_1", "v_abc_2"]
    assert items[1].meta["video"].endswith("v_abc.mkv") and items[0].meta["type"] == "motion"
    reasons = {s["id"]: s["reason"] for s in skipped}
    assert "does not exist" in reasons["v_gone_1"] and "no answer" in reasons["v_abc_9"]

    assert scorers.activitynet_qa_aggregate(items, ["x", "y"], "official", None)[2]["not_scored"]
    judge = FakeJudge(["{'pred': 'yes', 'score': 4.8}", "I think it is right"])
    scores, rows, details = scorers.activitynet_qa_aggregate(items, ["playing a guitar", "yes"], "official", judge)
    assert scores["accuracy"] == 1.0 and scores["unparsed"] == 0.5 and details["average_score"] == 4
    assert scores["score"] == pytest.approx(4 / 5) and rows[1]["unparsed"]
    user = judge.seen[0][1]["content"]
    assert "Question: what is the person doing\nCorrect Answer: play guitar\nPredicted Answer: playing a guitar" in user
    assert user.endswith("{'pred': 'yes', 'score': 4.8}.") and judge.seen[0][0]["role"] == "system"
    judge = FakeJudge(["{'pred': 'no', 'score': 1}", "{'pred': 'Yes', 'score': 5}"])
    scores, _, details = scorers.activitynet_qa_aggregate(items, ["a", "b"], "lmms_eval", judge)
    assert scores["accuracy"] == 0.5 and details["average_score"] == 3 and details["convention"] == "official"
    assert math.isnan(scorers.activitynet_qa_aggregate(items, ["a", "b"], "official", FakeJudge(["x", "y"]))[0][
        "accuracy"])
