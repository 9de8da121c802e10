"""Video benchmarks (MM1.5-Video, mPLUG-Owl3): NExT-QA and IntentQA (multiple choice), Video-MME, MVBench, EgoSchema
(its public subset) and ActivityNet-QA, from the files their authors release.

Each item has no images: meta["video"] is the absolute path of its video file or frame folder (checked to exist, a
record whose video is absent is skipped with "video file ... does not exist"; decoding is `mm1_jax.data.video`'s, at
run time), meta["start"] / meta["end"] (seconds) where the benchmark clips. `question` is the benchmark's prompt text
(`mm1_jax.eval.scorers.video` builds it), options the option texts, answers [gold text], answer_index its index,
meta["answer"] the gold letter (ActivityNet-QA: the answer), and the breakdown fields ("type", "duration", "task").
"""
from __future__ import annotations

import csv
import io
import os
from typing import Any

from mm1_jax.eval.prompts import Item
from mm1_jax.eval.readers.common import (
    Collect,
    Skip,
    annotation_file,
    fail,
    image_folder,
    kind_of,
    load_json,
    need,
    read_text,
    record_id,
    required,
)

LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
VIDEO_EXTS = (".mp4", ".webm", ".mkv", ".avi", ".mov")  # Video-ChatGPT's run_inference_activitynet_qa.py formats

# OpenGVLab/Ask-Anything video_chat2/mvbench.ipynb data_list: task -> (json, video folder, "video"/"frame", bound)
MVBENCH_TASKS: dict[str, tuple[str, str, str, bool]] = {
    "Action Sequence": ("action_sequence.json", "star/Charades_v1_480", "video", True),
    "Action Prediction": ("action_prediction.json", "star/Charades_v1_480", "video", True),
    "Action Antonym": ("action_antonym.json", "ssv2_video", "video", False),
    "Fine-grained Action": ("fine_grained_action.json", "Moments_in_Time_Raw/videos", "video", False),
    "Unexpected Action": ("unexpected_action.json", "FunQA_test/test", "video", False),
    "Object Existence": ("object_existence.json", "clevrer/video_validation", "video", False),
    "Object Interaction": ("object_interaction.json", "star/Charades_v1_480", "video", True),
    "Object Shuffle": ("object_shuffle.json", "perception/videos", "video", False),
    "Moving Direction": ("moving_direction.json", "clevrer/video_validation", "video", False),
    "Action Localization": ("action_localization.json", "sta/sta_video", "video", True),
    "Scene Transition": ("scene_transition.json", "scene_qa/video", "video", False),
    "Action Count": ("action_count.json", "perception/videos", "video", False),
    "Moving Count": ("moving_count.json", "clevrer/video_validation", "video", False),
    "Moving Attribute": ("moving_attribute.json", "clevrer/video_validation", "video", False),
    "State Change": ("state_change.json", "perception/videos", "video", False),
    "Fine-grained Pose": ("fine_grained_pose.json", "nturgbd", "video", False),
    "Character Order": ("character_order.json", "perception/videos", "video", False),
    "Egocentric Navigation": ("egocentric_navigation.json", "vlnqa", "video", False),
    "Episodic Reasoning": ("episodic_reasoning.json", "tvqa/frames_fps3_hq", "frame", True),
    "Counterfactual Inference": ("counterfactual_inference.json", "clevrer/video_validation", "video", False),
}
MVBENCH_FRAME_FPS = 3.0  # mvbench.ipynb read_frame(video_path, bound, fps=3)
NEXTQA_TYPES = ("CW", "CH", "TN", "TP", "TC", "DL", "DC", "DO")
VIDEOMME_DURATIONS = ("short", "medium", "long")


def _video(path: str) -> str:
    """`path` absolute, or Skip when no such file or folder exists."""
    path = os.path.abspath(path)
    if not os.path.exists(path):
        raise Skip(f"video file {path!r} does not exist")
    return path


def _video_any_ext(folder: str, stems: list[str]) -> str:
    """The first <folder>/<stem><ext> that exists (ext in VIDEO_EXTS, or none), else Skip naming the first try."""
    for stem in stems:
        for ext in ("",) + VIDEO_EXTS:
            candidate = os.path.join(folder, stem + ext)
            if os.path.isfile(candidate):
                return os.path.abspath(candidate)
    raise Skip(f"video file {os.path.abspath(os.path.join(folder, stems[0] + VIDEO_EXTS[0]))!r} does not exist "
               f"(nor with {', '.join(VIDEO_EXTS[1:])})")


def _item(qid: str, question: str, options: list[str], index: int, meta: dict) -> Item:
    from mm1_jax.eval.scorers import video as scorers  # pylint: disable=import-outside-toplevel
    item = Item(id=qid, images=[], question=question, answers=[options[index]] if options else [],
                options=options, answer_index=index, meta=dict(meta))
    kind = meta.get("kind")
    if kind in scorers.QUESTIONS:
        item.question = scorers.QUESTIONS[kind](item)
    return item


def _csv_rows(task: str, keyword: str, path: str, columns: tuple[str, ...]) -> list[tuple[int, dict]]:
    path = annotation_file(task, keyword, path)
    text = read_text(task, path)
    try:
        reader = csv.DictReader(io.StringIO(text, newline=""))
        header = [c.strip() for c in (reader.fieldnames or [])]
        rows = [(n, {k.strip() if isinstance(k, str) else k: v for k, v in row.items()})
                for n, row in enumerate(reader, 1)]
    except csv.Error as e:
        raise fail(task, path, f"not a valid CSV file ({e})") from None
    lacking = [c for c in columns if c not in header]
    if not header or lacking:
        raise fail(task, path, f"expected a CSV file with the columns {', '.join(columns)}; it lacks "
                               f"{', '.join(repr(c) for c in lacking)}")
    return rows


def _video_csv(task: str, annotations: str, columns: tuple[str, ...], video_column: str, make, *args
               ) -> tuple[list[Item], list[dict]]:
    """The items of a NExT-QA-style CSV (one question a row, id "<video>_<qid>", eval_mc.py's qns_id): make(row,
    *args) per row, a row it cannot use skipped with its reason."""
    path = required(task, "annotations", annotations)
    out = Collect()
    for n, row in _csv_rows(task, "annotations", path, columns):
        out.add(path, f"row {n}", f"{row.get(video_column)}_{row.get('qid')}", make, row, *args)
    return out.result()


# --- NExT-QA (multiple choice) -------------------------------------------------------------------------------------

_NEXTQA_COLUMNS = ("video", "question", "answer", "qid", "type", "a0", "a1", "a2", "a3", "a4")


def read_nextqa(task: str, *, annotations: str, video_map: str, videos: str) -> tuple[list[Item], list[dict]]:
    """NExT-QA multiple choice (doc-doc/NExT-QA): `annotations` its val.csv / test.csv (video, frame_count, width,
    height, question, answer (0-4), qid, type, a0..a4), `video_map` map_vid_vidorID.json (video id -> "1025/
    5159741010", the VidOR folder/file), `videos` the NExTVideo folder (<folder>/<file>.mp4). id = "<video>_<qid>"
    (eval_mc.py's qns_id); meta type (TP counted as TN by the scorer, as eval_mc.py does)."""
    return _video_csv(task, annotations, _NEXTQA_COLUMNS, "video", _nextqa_item,
                      load_json(task, "video_map", video_map), image_folder(task, videos, "videos"))


def _nextqa_item(row: dict, mapping: dict, folder: str, path: str | None = None) -> Item:
    vid = str(row.get("video") or "").strip()
    qid = str(row.get("qid") or "").strip()
    if not vid or not qid:
        raise Skip("lacks the video or qid")
    qtype = str(row.get("type") or "").strip()
    if qtype not in NEXTQA_TYPES:
        raise Skip(f"type {qtype!r} is not one of {', '.join(NEXTQA_TYPES)}")
    options = [str(row.get(f"a{k}") or "").strip() for k in range(5)]
    if not all(options):
        raise Skip("has an empty option (a0..a4)")
    answer = str(row.get("answer") or "").strip()
    if answer not in ("0", "1", "2", "3", "4"):
        raise Skip(f"answer {answer!r} is not an option index 0-4")
    if vid not in mapping:
        raise Skip(f"video {vid!r} is not in map_vid_vidorID.json")
    path = path or _video(os.path.join(folder, str(mapping[vid]) + ".mp4"))
    index = int(answer)
    return _item(f"{vid}_{qid}", str(row.get("question") or "").strip(), options, index,
                 {"kind": "nextqa", "video": path, "answer": LETTERS[index], "type": qtype, "qid": qid,
                  "video_id": vid})


# --- IntentQA (multiple choice) -----------------------------------------------------------------------------------

_INTENTQA_COLUMNS = ("video_id", "question", "answer", "qid", "type", "a0", "a1", "a2", "a3", "a4")


def read_intentqa(task: str, *, annotations: str, videos: str, video_map: str = "") -> tuple[list[Item], list[dict]]:
    """IntentQA (JoseponLee/IntentQA, ICCV 2023): `annotations` its datasets/IntentQA/test.csv or val.csv (video_id,
    frame_count, width, height, question, answer (0-4), qid, type CW / CH / TN / TP, a0..a4, action, lemma,
    lemma_id), `videos` the folder of its released videos, <video_id>.mp4 (or another of VIDEO_EXTS); with
    `video_map` (NExT-QA's map_vid_vidorID.json: IntentQA's videos are NExT-QA's) <folder>/<file>.mp4 as NExT-QA.
    id = "<video_id>_<qid>" (eval_intentqa.py's qns_id); a type its scorer does not group is skipped (it counts in
    none of its accuracies)."""
    mapping = load_json(task, "video_map", video_map) if video_map else None
    return _video_csv(task, annotations, _INTENTQA_COLUMNS, "video_id", _intentqa_item, mapping,
                      image_folder(task, videos, "videos"))


def _intentqa_item(row: dict, mapping: dict | None, folder: str) -> Item:
    row = dict(row, video=row.get("video_id"))
    if mapping is not None:
        item = _nextqa_item(row, mapping, folder)
    else:
        vid = str(row.get("video") or "").strip()
        if not vid:
            raise Skip("lacks the video_id")
        item = _nextqa_item(row, {vid: vid}, folder, path=_video_any_ext(folder, [vid]))
    item.meta["kind"] = "intentqa"
    return item


# --- Video-MME -----------------------------------------------------------------------------------------------------

_VIDEOMME_COLUMNS = ("videoID", "duration", "question_id", "task_type", "question", "options", "answer")


def read_videomme(task: str, *, annotations: str, videos: str) -> tuple[list[Item], list[dict]]:
    """Video-MME (lmms-lab/Video-MME): `annotations` its parquet (videomme/test-00000-of-00001.parquet: video_id,
    duration short/medium/long, domain, sub_category, url, videoID, question_id, task_type, question, options
    ["A. ...", ...], answer (a letter)) or the JSON list eval_your_results.py reads ([{"video_id", "duration" (or
    "duration_category"), "domain" / "video_category", "sub_category" / "video_subcategory", "videoID" or "url",
    "questions": [{"question_id", "task_type", "question", "options", "answer"}]}]); `videos` the folder of
    <videoID>.mp4. options = the texts without their "A. "; meta["options"] as released (the prompt lists them)."""
    path = required(task, "annotations", annotations)
    folder = image_folder(task, videos, "videos")
    out = Collect()
    if path.lower().endswith(".json"):
        data = load_json(task, "annotations", path, list, "a JSON list of videos")
        for i, video in enumerate(data):
            try:
                questions = need(video, "questions", list)
            except Skip as e:
                out.skip(record_id(video, "video_id", i), path, f"[{i}]", str(e))
                continue
            for j, q in enumerate(questions):
                rec = dict(q) if isinstance(q, dict) else q
                if isinstance(rec, dict):
                    for key, alias in (("duration", "duration_category"), ("domain", "video_category"),
                                       ("sub_category", "video_subcategory")):
                        rec.setdefault(key, video.get(key, video.get(alias)))
                    rec.setdefault("videoID", video.get("videoID") or _youtube_id(video.get("url")))
                out.add(path, f"[{i}].questions[{j}]", record_id(rec, "question_id", f"{i}.{j}"), _videomme_item,
                        rec, folder)
        return out.result()
    from mm1_jax.eval.readers.multi_image import _parquet_files, _parquet_rows  # pylint: disable=import-outside-toplevel
    for file in _parquet_files(task, path, "test"):
        for i, rec in enumerate(_parquet_rows(task, file, _VIDEOMME_COLUMNS, "Video-MME's table")):
            out.add(file, f"row {i}", record_id(rec, "question_id", i), _videomme_item, rec, folder)
    return out.result()


def _youtube_id(url: Any) -> str | None:
    if isinstance(url, str) and "v=" in url:
        return url.split("v=", 1)[1].split("&")[0]
    return None


def _videomme_item(rec: dict, folder: str) -> Item:
    qid = str(need(rec, "question_id", str))
    released = need(rec, "options", (list, tuple))
    if not released or not all(isinstance(o, str) for o in released):
        raise Skip("field 'options' is not a list of strings")
    options = []
    for k, o in enumerate(released):
        prefix = f"{LETTERS[k]}. "
        options.append(o.removeprefix(prefix))
    answer = str(need(rec, "answer", str)).strip()
    if answer not in LETTERS[:len(options)]:
        raise Skip(f"answer {answer!r} is not one of the option letters {LETTERS[:len(options)]}")
    duration = str(need(rec, "duration", str))
    if duration not in VIDEOMME_DURATIONS:
        raise Skip(f"duration {duration!r} is not one of {', '.join(VIDEOMME_DURATIONS)}")
    path = _video_any_ext(folder, [str(need(rec, "videoID", str))])
    return _item(qid, need(rec, "question", str), options, LETTERS.index(answer),
                 {"kind": "videomme", "video": path, "answer": answer, "options": list(released),
                  "duration": duration, "task": str(rec.get("task_type") or ""), "domain": rec.get("domain"),
                  "sub_category": rec.get("sub_category"), "video_id": rec.get("video_id")})


# --- MVBench -------------------------------------------------------------------------------------------------------


def read_mvbench(task: str, *, annotations: str, videos: str, tasks: tuple[str, ...] | str = ()
                 ) -> tuple[list[Item], list[dict]]:
    """MVBench (OpenGVLab/MVBench): `annotations` its json/ folder (one <task>.json list a task: {"video",
    "question", "candidates", "answer" (the right candidate's text), "start", "end" (seconds; the bound tasks)}),
    `videos` its video/ folder (each task's sub-folder as mvbench.ipynb's data_list names it; Episodic Reasoning a
    frame folder). `tasks`: the task names to read (all 20 when empty); a task whose json is absent -> ValueError.
    id = "<task>-<index>"; meta task, start / end for the bound tasks (the frames are then sampled within that clip,
    `mm1_jax.data.video.Clip`; a frame folder's fps is 3, as mvbench.ipynb reads it). The notebook samples 16 frames
    with its own rule: `--config.eval.video_frames=16 --config.eval.video_sampling=mvbench` reproduces its input."""
    folder = image_folder(task, required(task, "annotations", annotations), "annotations")
    root = image_folder(task, videos, "videos")
    if isinstance(tasks, str):  # the config field: a comma-separated list ('' = all)
        tasks = tuple(t.strip() for t in tasks.split(",") if t.strip())
    names = list(tasks) or list(MVBENCH_TASKS)
    unknown = [t for t in names if t not in MVBENCH_TASKS]
    if unknown:
        raise ValueError(f"eval task {task!r}: config.eval.{task}.tasks names {unknown!r}, not MVBench tasks.")
    out = Collect()
    for name in names:
        js, prefix, kind, bound = MVBENCH_TASKS[name]
        path = os.path.join(folder, js)
        records = load_json(task, "annotations", path, list, "a JSON list of questions")
        for i, rec in enumerate(records):
            out.add(path, f"[{i}]", f"{name}-{i}", _mvbench_item, name, i, rec, os.path.join(root, prefix), bound,
                    kind == "frame")
    return out.result()


def _mvbench_item(name: str, i: int, rec: Any, prefix: str, bound: bool, frames: bool) -> Item:
    video = need(rec, "video", str)
    candidates = need(rec, "candidates", list)
    if not candidates or not all(isinstance(c, str) and c for c in candidates):
        raise Skip("field 'candidates' is not a list of non-empty strings")
    answer = need(rec, "answer", str)
    if answer not in candidates:
        raise Skip(f"answer {answer!r} is not one of the candidates")  # qa_template's answer_idx would stay -1
    meta: dict[str, Any] = {"kind": "mvbench", "video": _video(os.path.join(prefix, video)), "task": name,
                            "answer": LETTERS[candidates.index(answer)]}
    if bound:
        start, end = rec.get("start"), rec.get("end")
        if not isinstance(start, (int, float)) or not isinstance(end, (int, float)) or isinstance(start, bool):
            raise Skip(f"task {name!r} clips its videos but start / end are {kind_of(start)} / {kind_of(end)}")
        meta["start"], meta["end"] = float(start), float(end)
        if frames:  # mvbench.ipynb read_frame: the TVQA frame folders hold 3 frames per second, numbered from 1
            meta["fpsx"] = MVBENCH_FRAME_FPS
    return _item(f"{name}-{i}", need(rec, "question", str), list(candidates), candidates.index(answer), meta)


# --- EgoSchema (the public subset) ---------------------------------------------------------------------------------


def read_egoschema(task: str, *, annotations: str, answers: str, videos: str) -> tuple[list[Item], list[dict]]:
    """EgoSchema's subset (egoschema/EgoSchema): `annotations` questions.json ([{"q_uid", "google_drive_id",
    "question", "option 0".."option 4"}]), `answers` subset_answers.json ({q_uid: 0-4}), `videos` the folder of
    <q_uid>.mp4. Only the questions with an answer are read (the 500 of the subset); an answer whose question is
    absent is skipped with that reason."""
    records = load_json(task, "annotations", annotations, list, "a JSON list of questions")
    gold = load_json(task, "answers", answers)
    folder = image_folder(task, videos, "videos")
    out = Collect()
    seen = set()
    for i, rec in enumerate(records):
        uid = rec.get("q_uid") if isinstance(rec, dict) else None
        if uid not in gold:
            continue
        seen.add(uid)
        out.add(annotations, f"[{i}]", uid, _egoschema_item, rec, gold[uid], folder)
    for uid in gold:
        if uid not in seen:
            out.skip(uid, answers, uid, "has an answer but no question in the questions file")
    return out.result()


def _egoschema_item(rec: dict, answer: Any, folder: str) -> Item:
    uid = need(rec, "q_uid", str)
    options = [str(need(rec, f"option {k}", str)) for k in range(5)]
    if isinstance(answer, bool) or not isinstance(answer, int) or not 0 <= answer < 5:
        raise Skip(f"answer {answer!r} is not an option index 0-4")
    return _item(uid, need(rec, "question", str), options, answer,
                 {"kind": "egoschema", "video": _video(os.path.join(folder, uid + ".mp4")),
                  "answer": LETTERS[answer]})


# --- ActivityNet-QA ------------------------------------------------------------------------------------------------

ACTIVITYNET_QA_TYPES = {0: "motion", 1: "spatial", 2: "temporal", 3: "yes_no", 4: "color", 5: "object",
                        6: "location", 7: "number", 8: "other"}


def read_activitynet_qa(task: str, *, annotations: str, answers: str, videos: str) -> tuple[list[Item], list[dict]]:
    """ActivityNet-QA (MILVLG/activitynet-qa): `annotations` test_q.json ([{"video_name", "question",
    "question_id"}]), `answers` test_a.json ([{"answer", "type" (0-8), "question_id"}]), `videos` the folder of
    the videos, found as Video-ChatGPT's run_inference_activitynet_qa.py finds them (v_<video_name><ext>; here also
    <video_name><ext>). Open-ended: answers [the answer], meta "answer", "type" (its name)."""
    questions = load_json(task, "annotations", annotations, list, "a JSON list of questions")
    gold_list = load_json(task, "answers", answers, list, "a JSON list of answers")
    folder = image_folder(task, videos, "videos")
    gold = {str(g["question_id"]): g for g in gold_list if isinstance(g, dict) and "question_id" in g}
    out = Collect()
    for i, rec in enumerate(questions):
        out.add(annotations, f"[{i}]", record_id(rec, "question_id", i), _activitynet_item, rec, gold, folder)
    return out.result()


def _activitynet_item(rec: Any, gold: dict, folder: str) -> Item:
    qid = str(need(rec, "question_id", str))
    if qid not in gold:
        raise Skip("has no answer in the answers file")
    answer = str(need(gold[qid], "answer", (str, int, float)))
    qtype = gold[qid].get("type")
    name = need(rec, "video_name", str)
    path = _video_any_ext(folder, [f"v_{name}", name])
    return Item(id=qid, images=[], question=need(rec, "question", str), answers=[answer],
                meta={"kind": "activitynet_qa", "video": path, "answer": answer,
                      "type": ACTIVITYNET_QA_TYPES.get(qtype, str(qtype))})
