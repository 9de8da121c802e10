"""Every evaluation task: which reader parses its official files, how it is prompted and scored, and its config.

A task is a dataset of one *kind*. The kind names the reader (`mm1_jax.eval.readers`), the prompt format and the
metrics; the dataset adds its release's defaults (an image file pattern) and the file names it ships, for the docs.
Each task's files are config fields, `config.eval.<task>.<field>` (the reader's keywords), e.g.

    --config.eval.textcaps.annotations=TextCaps_0.1_val.json --config.eval.textcaps.images=train_images

A config file can add datasets of a known kind under a new name (several datasets of one kind in one run):

    config.eval.flickr30k = dict(kind="captions", annotations=".../flickr30k_test_coco.json", images=".../flickr")

Formats: caption (images -> caption), vqa (question -> short answer), grounding (expression -> box, written in the
model's coordinate convention `eval.box_format`), choice (options scored by likelihood or answered by letter,
`answer_mode`), continue (text-only: generate the next word, LAMBADA).
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import ml_collections

from mm1_jax.config_keys import did_you_mean
from mm1_jax.data import video
from mm1_jax.eval import embedded, judge, readers
from mm1_jax.eval.scorers import gqa, grounding, items, judged, multi_image, text_rich, vqa
from mm1_jax.eval.scorers import ui as ui_scorers
from mm1_jax.eval.scorers import video as video_scorers

# How a score is computed: by the benchmark's official scorer (the default), or as a common harness computes it
# (lmms-eval, VLMEvalKit), where that differs; each scorer in `mm1_jax.eval.scorers` names its sources.
CONVENTIONS = ("official", "lmms_eval", "vlmevalkit")

# The text a harness appends to a question of a task kind (the official benchmarks prescribe none): lmms-eval's
# `lmms_eval_specific_kwargs.default.post_prompt` of lmms_eval/tasks/{vqav2,ok_vqa,vizwiz_vqa,textvqa,gqa,docvqa,
# chartqa}/*.yaml (0.7.3), VLMEvalKit's ImageVQADataset.build_prompt (vlmeval/dataset/image_vqa.py: TextVQA, DocVQA,
# InfoVQA, ChartQA, GQA). Multiple-choice prompts keep the task's own listing (`answer_mode`).
_SHORT = "\nAnswer the question using a single word or phrase."
_UNANSWERABLE = "\nWhen the provided information is insufficient, respond with 'Unanswerable'." + _SHORT
POST_PROMPTS: dict[str, dict[str, str]] = {
    "official": {},
    "lmms_eval": {"vqa": _SHORT, "okvqa": _UNANSWERABLE, "vizwiz": _UNANSWERABLE, "textvqa": _SHORT, "gqa": _SHORT,
                  "docvqa": _SHORT, "chartqa": "\nAnswer the question with a single word."},
    "vlmevalkit": {"textvqa": _SHORT, "gqa": _SHORT, "docvqa": _SHORT, "chartqa": _SHORT},
}

Scorer = Callable[[str, Any, str], float]  # (prediction, item, convention) -> the item's score


def _asked(fn: Callable[[Any], str]) -> Callable[[Any, str], str]:
    """A benchmark's question text that is the same under every convention."""
    return lambda item, convention: fn(item)


def _on_answers(fn: Callable[..., float]) -> Scorer:
    """A scorer of (prediction, reference answers, convention=) as a scorer of an item."""
    return lambda prediction, item, convention: fn(prediction, item.answers, convention=convention)


@dataclasses.dataclass(frozen=True)
class Kind:
    """A file format with its prompt format and metrics."""

    reader: Callable[..., tuple[list, list[dict]]] | None  # reader(task, **files) -> (items, skipped); None: embedded
    fmt: str  # caption | vqa | grounding | choice | continue
    metrics: tuple[str, ...]
    files: dict[str, Any]  # the reader's keywords (config fields) with their defaults
    max_new_tokens: int = 16
    circular: bool = False  # choice: every rotation of the options must be right (MMBench's CircularEval)
    distractors: bool = False  # choice: the question's image among num_images - 1 others (mPLUG-Owl3 Sec. 4.5)
    options: dict[str, Any] = dataclasses.field(default_factory=dict)  # other config fields and their defaults
    scorers: dict[str, Scorer] = dataclasses.field(default_factory=dict)  # per-item metric -> its official scorer
    # the benchmark's own question text and task-level scores (`mm1_jax.eval.scorers.items`), where it has them
    question: Callable[[Any, str], str] | None = None  # (item, convention) -> the text asked
    aggregate: items.Aggregate | None = None
    mean_likelihood: bool = False  # choice by likelihood: the option's mean log-probability per token, not the sum
    judged: bool = False  # the aggregate takes the model judge (config.eval.judge) as a fourth argument


_CHOICE = dict(answer_mode="likelihood")  # likelihood: the option text scored as a continuation; letter: generated
KINDS: dict[str, Kind] = {
    "captions": Kind(readers.read_captions, "caption", ("cider",), dict(annotations="", images=""), 30),
    "vqa": Kind(readers.read_vqa, "vqa", ("vqa_accuracy",),
                dict(questions="", annotations="", images="", image_pattern="COCO_val2014_{image_id:012d}.jpg"), 10,
                scorers={"vqa_accuracy": _on_answers(vqa.vqa_accuracy)}),
    "okvqa": Kind(readers.read_vqa, "vqa", ("vqa_accuracy",),
                  dict(questions="", annotations="", images="", image_pattern="COCO_val2014_{image_id:012d}.jpg"),
                  10, scorers={"vqa_accuracy": _on_answers(vqa.okvqa_accuracy)}),
    "vizwiz": Kind(readers.read_vizwiz, "vqa", ("vqa_accuracy",), dict(annotations="", images=""), 10,
                   scorers={"vqa_accuracy": _on_answers(vqa.vizwiz_accuracy)}),
    "textvqa": Kind(readers.read_textvqa, "vqa", ("vqa_accuracy",),
                    dict(annotations="", images="", image_pattern="{image_id}.jpg"), 10,
                    scorers={"vqa_accuracy": _on_answers(vqa.textvqa_accuracy)}),
    "gqa": Kind(readers.read_gqa, "vqa", ("accuracy",), dict(questions="", images=""), 10,
                scorers={"accuracy": _on_answers(gqa.gqa_accuracy)}),
    "docvqa": Kind(readers.read_docvqa, "vqa", ("anls",), dict(annotations="", images=""), 24,
                   scorers={"anls": _on_answers(text_rich.anls)}),
    "chartqa": Kind(readers.read_chartqa, "vqa", ("relaxed_accuracy",), dict(annotations="", images=""), 12,
                    scorers={"relaxed_accuracy": _on_answers(text_rich.relaxed_accuracy)}),
    "refcoco": Kind(readers.read_refcoco, "grounding", ("box_iou50",),
                    dict(refs="", instances="", images="", split="val"), 32),
    "mmbench": Kind(readers.read_mmbench, "choice", ("accuracy", "circular_accuracy"), dict(annotations=""),
                    circular=True, options=dict(_CHOICE)),
    "distractors": Kind(readers.read_mmbench, "choice", ("circular_accuracy", "accuracy"), dict(annotations=""),
                        circular=True, distractors=True, options=dict(_CHOICE, num_images=1)),
    "embedded_distractors": Kind(embedded.read_colour_questions, "choice", ("circular_accuracy", "accuracy"), {},
                                 circular=True, distractors=True, options=dict(_CHOICE, num_images=1)),
    # the embedded world's held-out clips (reader-backed, so their frames come from the .mp4 as any video's do)
    "embedded_video": Kind(embedded.read_video_choice, "choice", ("accuracy",), {}, options=dict(_CHOICE)),
    "embedded_video_open": Kind(embedded.read_video_open, "vqa", ("exact_match",), {}, 8),
    # the embedded world's held-out UI screens as Ferret-UI's evaluation files, read and scored as Ferret-UI's are
    "embedded_ui_ref": Kind(embedded.read_ui_ref, "vqa", ("accuracy",), {}, 8,
                            aggregate=ui_scorers.AGGREGATES["ferret_ui"]),
    "embedded_ui_grd": Kind(embedded.read_ui_grd, "vqa", ("accuracy",), {}, 16,
                            aggregate=ui_scorers.AGGREGATES["ferret_ui"]),
    "scienceqa": Kind(readers.read_scienceqa, "choice", ("accuracy",),
                      dict(annotations="", images="", split="test", image_only=True), options=dict(_CHOICE)),
    "ai2d": Kind(readers.read_ai2d, "choice", ("accuracy",), dict(annotations="", images="", ids=""),
                 options=dict(_CHOICE)),
    "mc": Kind(readers.read_multiple_choice, "choice", ("accuracy", "circular_accuracy"),
               dict(annotations="", images=""), circular=True, options=dict(_CHOICE)),
    # MM1.5's benchmarks (arXiv 2409.20566 Sec. 5): generation scored by each release's rules (scorers.items)
    "mme": Kind(readers.read_mme, "vqa", ("score", "perception", "cognition"), dict(annotations=""), 8,
                aggregate=items.mme_aggregate),
    "pope": Kind(readers.read_pope, "vqa", ("f1", "accuracy", "precision", "recall"),
                 dict(annotations="", images="", splits="random,popular,adversarial"), 8,
                 aggregate=items.pope_aggregate),
    # SEED-Bench's eval.py ranks the 4 choices by the model's loss on each (a token mean): likelihood, mean
    "seed": Kind(readers.read_seed_bench, "choice", ("accuracy",), dict(annotations="", images=""),
                 options=dict(_CHOICE), aggregate=items.seed_aggregate, mean_likelihood=True),
    "realworldqa": Kind(readers.read_realworldqa, "vqa", ("accuracy",), dict(annotations=""), 16,
                        question=_asked(items.release_question), aggregate=items.realworldqa_aggregate),
    "ocrbench": Kind(readers.read_ocrbench, "vqa", ("accuracy",), dict(annotations="", images=""), 64,
                     aggregate=items.ocrbench_aggregate),
    "wtq": Kind(readers.read_wtq, "vqa", ("accuracy",), dict(annotations="", images="", split="vwtq"), 32,
                aggregate=items.wtq_aggregate),
    "tabfact": Kind(readers.read_tabfact, "vqa", ("accuracy",), dict(annotations="", images="", split="vtabfact"),
                    16, aggregate=items.tabfact_aggregate),
    "mathvista": Kind(readers.read_mathvista, "vqa", ("accuracy", "needs_judge"),
                      dict(annotations="", images="", queries=""), 64, aggregate=items.mathvista_aggregate,
                      judged=True),
    "mmmu": Kind(readers.read_mmmu, "vqa", ("accuracy",), dict(annotations="", split="validation"), 32,
                 question=_asked(items.mmmu_question), aggregate=items.mmmu_aggregate),
    # MM1.5's multi-image benchmarks (scorers.multi_image: each release's prompt and rules, or a harness's)
    "qbench2": Kind(readers.read_qbench2, "vqa", ("accuracy",), dict(annotations="", images="", split="dev"), 32,
                    question=multi_image.PROMPTS["qbench2"], aggregate=multi_image.AGGREGATES["qbench2"]),
    "mantis": Kind(readers.read_mantis, "vqa", ("accuracy",), dict(annotations="", split="test"), 64,
                   question=multi_image.PROMPTS["mantis"], aggregate=multi_image.AGGREGATES["mantis"]),
    "nlvr2": Kind(readers.read_nlvr2, "vqa", ("accuracy", "consistency"), dict(annotations="", images="",
                                                                              split="test"), 16,
                  question=multi_image.PROMPTS["nlvr2"], aggregate=multi_image.AGGREGATES["nlvr2"]),
    "blink": Kind(readers.read_blink, "vqa", ("accuracy", "needs_judge"), dict(annotations="", split="val"), 128,
                  question=multi_image.PROMPTS["blink"], aggregate=multi_image.AGGREGATES["blink"], judged=True),
    "muirbench": Kind(readers.read_muirbench, "vqa", ("accuracy", "needs_judge"), dict(annotations="", split="test"),
                      16, question=multi_image.PROMPTS["muirbench"], aggregate=multi_image.AGGREGATES["muirbench"],
                      judged=True),
    # video benchmarks (MM1.5-Video, mPLUG-Owl3): each question's video sampled to eval.video_frames frames
    # (mm1_jax.data.video), put before its text; the readers write the benchmarks' own prompts
    "nextqa": Kind(readers.read_nextqa, "vqa", ("accuracy",), dict(annotations="", video_map="", videos=""), 16,
                   aggregate=video_scorers.AGGREGATES["nextqa"]),
    "intentqa": Kind(readers.read_intentqa, "vqa", ("accuracy",), dict(annotations="", videos="", video_map=""), 16,
                     aggregate=video_scorers.AGGREGATES["intentqa"]),
    "videomme": Kind(readers.read_videomme, "vqa", ("accuracy", "answered"), dict(annotations="", videos=""), 16,
                     aggregate=video_scorers.AGGREGATES["videomme"]),
    "mvbench": Kind(readers.read_mvbench, "vqa", ("accuracy", "task_mean"), dict(annotations="", videos="", tasks=""),
                    16, aggregate=video_scorers.AGGREGATES["mvbench"]),
    "egoschema": Kind(readers.read_egoschema, "vqa", ("accuracy",), dict(annotations="", answers="", videos=""), 16,
                      aggregate=video_scorers.AGGREGATES["egoschema"]),
    "activitynet_qa": Kind(readers.read_activitynet_qa, "vqa", ("accuracy", "score"),
                           dict(annotations="", answers="", videos=""), 32,
                           aggregate=video_scorers.AGGREGATES["activitynet_qa"], judged=True),
    # MM1.5-UI (arXiv 2409.20566): Ferret-UI's evaluation records (scorers.ui; the rules past the prompt are our
    # reading: Ferret-UI released no scorer)
    "ferret_ui_ref": Kind(readers.read_ferret_ui, "vqa", ("accuracy",),
                          dict(annotations="", images="", platform="",
                               families="ocr,icon_recognition,widget_classification"), 64,
                          aggregate=ui_scorers.AGGREGATES["ferret_ui"]),
    "ferret_ui_grd": Kind(readers.read_ferret_ui, "vqa", ("accuracy",),
                          dict(annotations="", images="", platform="",
                               families="find_text,find_icons,find_widget,widget_listing"), 512,
                          aggregate=ui_scorers.AGGREGATES["ferret_ui"]),
    "ferret_ui_tap": Kind(readers.read_ferret_ui, "vqa", ("f1",),
                          dict(annotations="", images="", platform="", families="taperception"), 16,
                          aggregate=ui_scorers.AGGREGATES["ferret_ui_taperception"]),
    "ferret_ui_caption": Kind(readers.read_ferret_ui, "vqa", ("cider",),
                              dict(annotations="", images="", platform="", families="screen2words"), 64),
    # judged by a model (config.eval.judge); without one they are reported "not scored: no judge"
    "llava_w": Kind(readers.read_llava_w, "vqa", ("gpt_score", "unparsed"), dict(annotations="", images=""), 512,
                    aggregate=judged.llava_w_aggregate, judged=True),
    "mmvet": Kind(readers.read_mmvet, "vqa", ("gpt_score", "unparsed"), dict(annotations="", images=""), 256,
                  aggregate=judged.mmvet_aggregate, judged=True),
    "ferret_bench": Kind(readers.read_ferret_bench, "vqa", ("gpt_score", "unparsed"),
                         dict(annotations="", images="", categories="refer_desc,refer_reason,ground_conv"), 512,
                         aggregate=judged.ferret_bench_aggregate, judged=True),
    "flickr30k_entities": Kind(readers.read_flickr30k_entities, "vqa", ("recall_at_1",),
                               dict(entities="", images="", split="test", annotations="", protocol="merged"), 160,
                               question=_asked(grounding.flickr30k_question), aggregate=grounding.flickr30k_aggregate),
    "lvis_ref": Kind(readers.read_lvis_ref, "vqa", ("accuracy",), dict(annotations="", images="", region="box"), 16,
                     question=_asked(grounding.lvis_question), aggregate=grounding.lvis_ref_aggregate),
    "arc": Kind(readers.read_arc, "choice", ("accuracy",), dict(annotations="")),
    "piqa": Kind(readers.read_piqa, "choice", ("accuracy",), dict(annotations="", labels="")),
    "lambada": Kind(readers.read_lambada, "continue", ("last_word_accuracy",), dict(annotations=""), 6),
}
# files that may stay empty for these kinds (images: a VLMEvalKit TSV holds them; the reader names what it lacks)
OPTIONAL_FILES = {"annotations": ("vqa", "flickr30k_entities"), "ids": ("ai2d",), "queries": ("mathvista",),
                  "images": ("mc", "pope", "seed", "ocrbench", "wtq", "tabfact", "mathvista", "llava_w", "mmvet",
                             "qbench2", "nlvr2")}
NOT_FILES = ("image_pattern", "split", "splits", "protocol", "region", "categories", "tasks", "platform",
             "families")  # reader keywords that are settings, not paths

# name -> (kind, defaults that differ from the kind's, the release's files (documentation and placeholders), where
# the format / metric is defined)
DATASETS: dict[str, tuple[str, dict, dict, str]] = {
    "coco_cap": ("captions", {}, dict(annotations="captions_karpathy_test.json (COCO format)", images="val2014"),
                 "COCO Captions (arXiv 1504.00325); CIDEr-D as coco-caption computes it"),
    "nocaps": ("captions", {}, dict(annotations="nocaps_val_4500_captions.json", images="nocaps/val"),
               "nocaps (arXiv 1812.08658), its COCO-format validation annotations"),
    "textcaps": ("captions", {}, dict(annotations="TextCaps_0.1_val.json", images="train_images"),
                 "TextCaps (arXiv 2003.12462), its release JSON or COCO format"),
    "vqav2": ("vqa", {}, dict(questions="v2_OpenEnded_mscoco_val2014_questions.json",
                              annotations="v2_mscoco_val2014_annotations.json", images="val2014"),
              "VQAv2 (arXiv 1612.00837); VQA accuracy as GT-Vision-Lab/VQA's vqaEval.py computes it"),
    "okvqa": ("okvqa", {}, dict(questions="OpenEnded_mscoco_val2014_questions.json",
                              annotations="mscoco_val2014_annotations.json", images="val2014"),
              "OK-VQA (arXiv 1906.00067), VQAv2's format and scorer"),
    "vizwiz": ("vizwiz", {}, dict(annotations="val.json", images="val"),
               "VizWiz-VQA (arXiv 1802.08218); the VizWiz API's vqaEval.py ('unanswerable' is an answer)"),
    "textvqa": ("textvqa", {}, dict(annotations="TextVQA_0.5.1_val.json", images="train_images"),
                "TextVQA (arXiv 1904.08920); mmf's TextVQAAccuracyEvaluator (m4c_evaluators.py)"),
    "gqa": ("gqa", {}, dict(questions="testdev_balanced_questions.json", images="images"),
            "GQA (arXiv 1902.09506) test-dev balanced; the release's eval.py accuracy (exact string match)"),
    "docvqa": ("docvqa", {}, dict(annotations="val_v1.0.json", images="docvqa/val"),
               "DocVQA (arXiv 2007.00398); ANLS as the Robust Reading Competition's script computes it"),
    "infovqa": ("docvqa", {}, dict(annotations="infographicsVQA_val_v1.0.json", images="infographicsvqa_images"),
                "InfographicVQA (arXiv 2104.12756); ANLS (the RRC script)"),
    "chartqa": ("chartqa", {}, dict(annotations="test_human.json", images="ChartQA Dataset/test/png"),
                "ChartQA (arXiv 2203.10244); relaxed accuracy as Pix2Struct's metrics.py computes it"),
    "refcoco": ("refcoco", {"split": "val"}, dict(refs="refcoco/refs(unc).p", instances="refcoco/instances.json",
                                                  images="train2014"),
                "RefCOCO (arXiv 1608.00272, the refer release); accuracy at IoU >= 0.5 (Ferret's eval_refexp.py "
                "with eval.box_format='ferret')"),
    "refcoco_plus": ("refcoco", {"split": "val"}, dict(refs="refcoco+/refs(unc).p",
                                                       instances="refcoco+/instances.json", images="train2014"),
                     "RefCOCO+ (arXiv 1608.00272)"),
    "refcocog": ("refcoco", {"split": "val"}, dict(refs="refcocog/refs(umd).p", instances="refcocog/instances.json",
                                                   images="train2014"),
                 "RefCOCOg, the umd split (arXiv 1608.00272)"),
    "mmbench": ("mmbench", {}, dict(annotations="MMBench_DEV_EN.tsv"),
                "MMBench (arXiv 2307.06281); CircularEval as VLMEvalKit (its authors' toolkit) scores it"),
    "mmbench_distractors": ("distractors", {}, dict(annotations="MMBench_DEV_EN.tsv"),
                            "mPLUG-Owl3 (arXiv 2408.04840v2) Sec. 4.5: MMBench-dev with N - 1 distractor images"),
    "embedded_distractors": ("embedded_distractors", {}, {},
                             "mPLUG-Owl3 Sec. 4.5's protocol on the embedded world's colour questions (no files; "
                             "a section config.eval.NAME = dict(kind='embedded_distractors', num_images=N) adds an N)"),
    "embedded_video": ("embedded_video", {}, {},
                       "the embedded world's held-out clips (mm1_jax.eval.embedded: order, direction, count, colour "
                       "change; .mp4 files written once into the cache), 4 options by likelihood; no files"),
    "embedded_video_open": ("embedded_video_open", {}, {},
                            "embedded_video's questions answered in words, exact match; no files"),
    "embedded_ui_ref": ("embedded_ui_ref", {}, {},
                        "the embedded world's held-out UI screens (mm1_jax.data.synthetic.screens), Ferret-UI's "
                        "referring questions (widget type, icon, text of a box), read and scored by the Ferret-UI "
                        "reader and scorer: exact match; iphone = portrait, android = landscape screens; no files"),
    "embedded_ui_grd": ("embedded_ui_grd", {}, {},
                        "the same screens' grounding questions (find a text, an icon, a widget -> a box on Ferret's "
                        "0-999 grid), hit at IoU >= 0.5; no files"),
    "scienceqa": ("scienceqa", {}, dict(annotations="ScienceQA/data/scienceqa/problems.json",
                                        images="ScienceQA/images"),
                  "ScienceQA-IMG (arXiv 2209.09513): test questions with an image"),
    "ai2d": ("ai2d", {}, dict(annotations="ai2d/questions", images="ai2d/images", ids="ai2d_test_ids.csv"),
             "AI2D (arXiv 1603.07396)"),
    "mme": ("mme", {}, dict(annotations="MME_Benchmark_release_version/MME_Benchmark (the folder) or MME.tsv"),
            "MME (arXiv 2306.13394); the release's eval_tool/calculation.py: acc + acc+ per subtask, perception + "
            "cognition"),
    "pope": ("pope", {}, dict(annotations="POPE/output/coco (coco_pope_<split>.json) or POPE.tsv", images="val2014"),
             "POPE (arXiv 2305.10355); the release's evaluate.py per split, the mean over the three splits"),
    "seed_img": ("seed", {}, dict(annotations="SEED-Bench.json or SEEDBench_IMG.tsv", images="SEED-Bench-image"),
                 "SEED-Bench (arXiv 2307.16125) image questions (types 1-9); eval.py ranks the choices by loss"),
    "realworldqa": ("realworldqa", {}, dict(annotations="RealWorldQA/data (parquet files) or RealWorldQA.tsv"),
                    "RealWorldQA (xAI, with Grok-1.5V); the release has no scorer: lmms-eval's rule"),
    "wtq": ("wtq", {}, dict(annotations="tablevqa-bench.tsv (TableVQA-Bench, arXiv 2404.19205) or DocOwl's "
                                        "WikiTableQuestions_test.jsonl", images="DocDownstream (DocOwl's)"),
            "WikiTableQuestions (arXiv 1508.00305) on table images; evaluator.py's denotation accuracy"),
    "tabfact": ("tabfact", {}, dict(annotations="tablevqa-bench.tsv (TableVQA-Bench) or DocOwl's TabFact_test.jsonl",
                                    images="DocDownstream (DocOwl's)"),
                "TabFact (arXiv 1909.02164) on table images; TableVQA-Bench's evaluate_tabfact"),
    "ocrbench": ("ocrbench", {}, dict(annotations="OCRBench/OCRBench.json or OCRBench.tsv", images="OCRBench_Images"),
                 "OCRBench (arXiv 2305.07895); example.py's containment rules (accuracy x 1000 = its Final Score)"),
    "mathvista": ("mathvista", {}, dict(annotations="MathVista/data/testmini.json or MathVista_MINI.tsv",
                                        images="MathVista/data", queries="MathVista/data/query.json"),
                  "MathVista testmini (arXiv 2310.02255); extract_answer.py's rules (answers they leave to a model "
                  "counted as needs_judge) and calculate_score.py"),
    "mmmu": ("mmmu", {}, dict(annotations="MMMU (a folder per subject, validation-*.parquet) or MMMU_DEV_VAL.tsv"),
             "MMMU validation (arXiv 2311.16502); eval_utils.py's response parsing"),
    "ferret_ui_ref_i": ("ferret_ui_ref", {"platform": "iphone"}, dict(annotations="ferret_ui/eval (Ferret-UI's records, a folder of <task>*.json, e.g. "
                                 "iphone/ocr_test.json; not released)", images="ferret_ui/screens"),
                        "Ferret-UI (arXiv 2404.05719) referring on iPhone (OCR, icon recognition, widget "
                        "classification): Ref-i, the mean of the three accuracies (exact match, our reading)"),
    "ferret_ui_ref_a": ("ferret_ui_ref", {"platform": "android"}, dict(annotations="ferret_ui/eval (Ferret-UI's records, a folder of <task>*.json, e.g. "
                                 "iphone/ocr_test.json; not released)", images="ferret_ui/screens"),
                        "Ferret-UI referring on Android: Ref-A (as Ref-i)"),
    "ferret_ui_grd_i": ("ferret_ui_grd", {"platform": "iphone"}, dict(annotations="ferret_ui/eval (Ferret-UI's records, a folder of <task>*.json, e.g. "
                                 "iphone/ocr_test.json; not released)", images="ferret_ui/screens"),
                        "Ferret-UI grounding on iPhone (find text / icon / widget: IoU >= 0.5 of the first box; "
                        "widget listing: F1 of label + box matches; our reading): Grd-i, the mean of the four"),
    "ferret_ui_grd_a": ("ferret_ui_grd", {"platform": "android"}, dict(annotations="ferret_ui/eval (Ferret-UI's records, a folder of <task>*.json, e.g. "
                                 "iphone/ocr_test.json; not released)", images="ferret_ui/screens"),
                        "Ferret-UI grounding on Android: Grd-A (as Grd-i)"),
    "ferret_ui_screen2words": ("ferret_ui_caption", {"families": "screen2words"}, dict(annotations="ferret_ui/eval (Ferret-UI's records, a folder of <task>*.json, e.g. "
                                 "iphone/ocr_test.json; not released)", images="ferret_ui/screens"),
                               "Screen2Words (UIST 2021) in Ferret-UI's record format; CIDEr"),
    "ferret_ui_widgetcaptions": ("ferret_ui_caption", {"families": "widgetcaptions"}, dict(annotations="ferret_ui/eval (Ferret-UI's records, a folder of <task>*.json, e.g. "
                                 "iphone/ocr_test.json; not released)", images="ferret_ui/screens"),
                                 "Widget Captioning (EMNLP 2020) in Ferret-UI's record format; CIDEr"),
    "ferret_ui_taperception": ("ferret_ui_tap", {}, dict(annotations="ferret_ui/eval (Ferret-UI's records, a folder of <task>*.json, e.g. "
                                 "iphone/ocr_test.json; not released)", images="ferret_ui/screens"),
                               "Taperception (CHI 2019) in Ferret-UI's record format; F1 (tappable positive, our "
                               "reading)"),
    "nextqa": ("nextqa", {}, dict(annotations="NExT-QA/val.csv", video_map="map_vid_vidorID.json",
                                  videos="NExTVideo"),
               "NExT-QA (arXiv 2105.08276) multiple choice; eval_mc.py's accuracy by question type"),
    "intentqa": ("intentqa", {}, dict(annotations="IntentQA/test.csv", videos="IntentQA videos"),
                 "IntentQA (ICCV 2023) multiple choice; eval_intentqa.py's accuracy by question type"),
    "videomme": ("videomme", {}, dict(annotations="Video-MME (test-*.parquet or its JSON)", videos="videos"),
                 "Video-MME (arXiv 2405.21075) without subtitles; eval_your_results.py's answer extraction"),
    "mvbench": ("mvbench", {}, dict(annotations="MVBench/json", videos="MVBench/video"),
                "MVBench (arXiv 2311.17005); its notebook's prompt and check_ans, accuracy per task"),
    "egoschema": ("egoschema", {}, dict(annotations="EgoSchema questions.json", answers="subset_answers.json",
                                        videos="good_clips_git"),
                  "EgoSchema (arXiv 2308.09126) public subset; accuracy"),
    "activitynet_qa": ("activitynet_qa", {}, dict(annotations="test_q.json", answers="test_a.json",
                                                  videos="ActivityNet videos"),
                       "ActivityNet-QA (arXiv 1906.02467); judged as Video-ChatGPT's evaluate_activitynet_qa.py"),
    "qbench2": ("qbench2", {}, dict(annotations="Q-Bench2-HF (dev-*.parquet) or q-bench2-a1-dev.jsonl",
                                    images="all_single_images (for the jsonl)"),
                "Q-Bench2 (arXiv 2402.07116) A1 pairs; Mantis' eval.py (the authors score only submissions)"),
    "mantis": ("mantis", {}, dict(annotations="Mantis-Eval (test-*.parquet)"),
               "Mantis-Eval (arXiv 2405.01483); Mantis' mantis/benchmark/eval.py"),
    "nlvr2": ("nlvr2", {}, dict(annotations="nlvr2/data/test1.json (or Mantis' NLVR2 parquet)",
                                images="nlvr2 test1 images"),
              "NLVR2 (arXiv 1811.00491) as a two-image true/false question; accuracy and consistency"),
    "blink": ("blink", {}, dict(annotations="BLINK (<Subtask>/val-*.parquet) or BLINK.tsv"),
              "BLINK (arXiv 2404.12390) validation; its eval's answer matching, the mean of the 14 subtasks"),
    "muirbench": ("muirbench", {}, dict(annotations="MUIRBench/data (test-*.parquet) or MUIRBench.tsv"),
                  "MuirBench (arXiv 2406.09411); its eval (MMMU's response parsing)"),
    "llava_w": ("llava_w", {}, dict(annotations="llava-bench-in-the-wild (questions.jsonl, context.jsonl, "
                                            "answers_gpt4.jsonl)", images="llava-bench-in-the-wild/images"),
                "LLaVA-Bench (In-the-Wild) (arXiv 2304.08485); LLaVA's eval_gpt_review_bench.py + "
                "summarize_gpt_review.py: the relative score to GPT-4's reference answers, judged"),
    "mmvet": ("mmvet", {}, dict(annotations="mm-vet/mm-vet.json", images="mm-vet/images"),
              "MM-Vet (arXiv 2308.02490); its mm-vet_evaluator.py few-shot grading, judged"),
    "ferret_bench": ("ferret_bench", {}, dict(annotations="ml-ferret/ferret_gpt4_data", images="val2017"),
                     "Ferret-Bench (arXiv 2310.07704); ml-ferret's eval_gpt_review_3newclass.py, judged"),
    "flickr30k_entities": ("flickr30k_entities", {}, dict(entities="flickr30k_entities (test.txt, Sentences/, "
                                                                   "Annotations/)", images="flickr30k-images",
                                                          annotations="final_flickr_mergedGT_test.json (optional)"),
                           "Flickr30k Entities (arXiv 1505.04870) phrase grounding; ml-ferret eval_flickr_entities.py: "
                           "recall@1 at IoU 0.5, merged boxes (protocol='any_box': MDETR's other protocol)"),
    "lvis_ref": ("lvis_ref", {}, dict(annotations="Ferret's LVIS referring records (jsonl; not released)",
                                      images="val2017"),
                 "LVIS-Ref, Ferret's (arXiv 2310.07704) referring classification; ml-ferret eval_lvis.py accuracy"),
    "mc": ("mc", {}, dict(annotations="questions.jsonl (ours: id, question, options, answer, image)"),
           "any multiple-choice set in our jsonl"),
    "arc_easy": ("arc", {}, dict(annotations="ARC-Easy/ARC-Easy-Test.jsonl"), "ARC (arXiv 1803.05457)"),
    "arc_challenge": ("arc", {}, dict(annotations="ARC-Challenge/ARC-Challenge-Test.jsonl"),
                      "ARC (arXiv 1803.05457)"),
    "piqa": ("piqa", {}, dict(annotations="valid.jsonl", labels="valid-labels.lst"), "PIQA (arXiv 1911.11641)"),
    "lambada": ("lambada", {}, dict(annotations="lambada_test.jsonl"),
                "LAMBADA (arXiv 1606.06031), OpenAI's jsonl; last-word accuracy"),
}

# The embedded benchmark (`mm1_jax.eval.embedded`): items generated from the synthetic world, no files.
EMBEDDED = {
    "embedded_cap": ("caption", ("cider", "exact_match"), 16, False),
    "embedded_vqa": ("vqa", ("vqa_accuracy", "exact_match"), 6, False),
    "embedded_ocr": ("vqa", ("exact_match",), 6, False),
    "embedded_grounding": ("vqa", ("box_iou50",), 12, False),
    "embedded_multi": ("vqa", ("exact_match",), 6, False),
    "embedded_mc": ("choice", ("accuracy", "circular_accuracy"), 16, True),
    "embedded_text": ("choice", ("accuracy",), 16, False),
    "embedded_fewshot": ("caption", ("exact_match", "cider"), 16, False),  # a convention shown only by the demos
    "embedded_docvqa": ("vqa", ("exact_match", "anls"), 10, False),  # text-rich pages, legible only at high res
    "embedded_count": ("vqa", ("exact_match",), 6, False),  # 3-8 small shapes: counts and positions
}

# Group names a task list may use: each expands to its members, and its score is the members' mean.
GROUPS = {"textcore": ("arc_easy", "arc_challenge", "piqa", "lambada")}  # MM1 Fig. 5 "TextCore" (its list: unverified)

SETTINGS = ("judge",)  # config.eval sections that are settings, not tasks
BOX_FORMATS = ("mm1_jax", "ferret")
ANSWER_MODES = ("likelihood", "letter")


@dataclasses.dataclass(frozen=True)
class Task:
    """One dataset to evaluate: its name, kind and the kind's reader / format / metrics."""

    name: str
    kind: str
    fmt: str
    metrics: tuple[str, ...]
    max_new_tokens: int = 16
    circular: bool = False
    distractors: bool = False

    @property
    def reader(self):
        return KINDS[self.kind].reader if self.kind in KINDS else None

    @property
    def files(self) -> tuple[str, ...]:
        return tuple(KINDS[self.kind].files) if self.kind in KINDS else ()


def _task(name: str, kind: str) -> Task:
    k = KINDS[kind]
    return Task(name, kind, k.fmt, k.metrics, k.max_new_tokens, k.circular, k.distractors)


TASKS: dict[str, Task] = {
    **{name: Task(name, "embedded", fmt, metrics, new, circ) for name, (fmt, metrics, new, circ) in EMBEDDED.items()},
    **{name: _task(name, kind) for name, (kind, _, _, _) in DATASETS.items()},
}


RUNNABLE = frozenset(TASKS) | frozenset(GROUPS)  # what a task list may name (the sweep's "available")

# The metric a paper quotes where it is not the task's first: MMBench's CircularEval (arXiv 2307.06281); the embedded
# DocVQA's ANLS, DocVQA's own metric (arXiv 2007.00398).
REPORTED_METRIC = {"mmbench": "circular_accuracy", "embedded_docvqa": "anls", "mme": "score"}
# The factor to the paper's unit where a task's reported metric is not a fraction: MME's points (perception +
# cognition, at most 2800) enter MM1.5's category averages as a percent of that maximum (MM1.5 prints the sum; how
# it averages it was not found: this normalisation is ours).
REPORTED_SCALE = {"mme": 100 / items.MME_MAX}

# Benchmarks the papers report that no task scores yet (no reader): name -> (the metric the paper quotes, its factor
# to the paper's unit (None: not found), a note). Studies name them; `python -m mm1_jax.sweep plan` lists them pending.
PENDING: dict[str, tuple[str, float | None, str]] = {
    "seed": ("accuracy", 100, ""),
}


def reported_score(name: str, note: str = "") -> dict[str, Any]:
    """The score a paper quotes for task, group or pending benchmark `name`: dict(task, metric (the key the task
    writes, "task/Nshot/metric"), scale (factor to the paper's unit: every task's metrics are fractions, so 100;
    None where not found), note); `note` replaces the registry's."""
    if name in TASKS:
        return dict(task=name, metric=REPORTED_METRIC.get(name, TASKS[name].metrics[0]),
                    scale=REPORTED_SCALE.get(name, 100), note=note)
    if name in GROUPS:  # a group writes the mean of its members as "group/Nshot/accuracy"
        return dict(task=name, metric="accuracy", scale=100, note=note)
    if name in PENDING:
        metric, scale, own = PENDING[name]
        return dict(task=name, metric=metric, scale=scale, note=note or own)
    hint = did_you_mean(name, [*TASKS, *GROUPS, *PENDING])
    raise ValueError(f"benchmark {name!r} is neither an eval task, a group nor a pending benchmark "
                     f"(mm1_jax.eval.datasets.TASKS, GROUPS, PENDING){hint}.")


def eval_defaults() -> ml_collections.ConfigDict:
    """config.eval: settings shared by every task, then one section per dataset with its files (all unset)."""
    e = ml_collections.ConfigDict()
    e.caption_tokenizer = "auto"  # CIDEr's: ptb (coco-caption's, needs Java), regex, or auto (ptb when it can run)
    e.split_mode = ""         # images split as data.split says ('' = data.split.mode; 'none' = whole images)
    e.split_n_min = 0         # dynamic splitting's grid bounds at evaluation (0 = data.split's; MM1.5 infers (4, 16))
    e.split_n_max = 0
    e.embedded_root = ""      # the embedded dataset the embedded_* tasks read ('' = the package's generated default)
    e.template = ""           # the chat layout of vqa / choice prompts: mm1 (User: ... Assistant:) or chatml (Qwen2's,
    #                           as mPLUG-Owl3 is prompted); '' = the model's own (mm1 for MM1, chatml for mPLUG-Owl3)
    e.box_format = "mm1_jax"  # how boxes are written: mm1_jax '<box> x1 , y1 , x2 , y2 </box>' on a 0-99 grid of
    #                           each side (the embedded data's), ferret '[x1, y1, x2, y2]' on 0-999 (Ferret's)
    e.convention = "official"  # how scores are computed: official (each benchmark's own scorer), lmms_eval or
    #                           vlmevalkit (as those harnesses compute them, where they differ; mm1_jax.eval.scorers)
    e.max_skipped = 0.05      # the fraction of a task's items that may be skipped (unreadable) before it stops
    e.judge = ml_collections.ConfigDict(judge.JUDGE_DEFAULTS.to_dict())  # the model judge (mm1_jax.eval.judge)
    e.image_processor = ""    # a converted LLaVA: the release's preprocessor_config.json ('' = its style's defaults)
    e.owl3_cut = True         # a converted mPLUG-Owl3: a prompt's only still image cut as the release cuts (False: no)
    e.video_frames = 0        # a video question's frames (0 = data.video.frames: MM1.5-Video's 24; mPLUG-Owl3's 8)
    e.video_sampling = ""     # their sampling rule (mm1_jax.data.video: uniform, owl3, linspace; '' = data.video's)
    e.textcore = ",".join(GROUPS["textcore"])  # the tasks averaged as TextCore
    for name, (kind, defaults, _, _) in DATASETS.items():
        k = KINDS[kind]
        e[name] = ml_collections.ConfigDict({**k.files, **k.options, **defaults})
    return e


def task_for(name: str, eval_cfg: Any) -> Task:
    """The task `name`: a built-in one, or a dataset the config adds (`config.eval.<name>.kind`)."""
    if name in TASKS:
        return TASKS[name]
    section = (eval_cfg or {}).get(name) if hasattr(eval_cfg or {}, "get") else None
    kind = section.get("kind") if hasattr(section, "get") else None
    if kind is None:
        raise ValueError(f"eval task {name!r} does not exist; the tasks are: {', '.join(sorted(TASKS))}, the groups "
                         f"{', '.join(GROUPS)}, or a section config.eval.{name} with a 'kind' "
                         f"(one of {', '.join(KINDS)}).")
    if kind not in KINDS:
        raise ValueError(f"config.eval.{name}.kind={kind!r} is not one of {', '.join(KINDS)}.")
    return _task(name, kind)


def expand(names: Any, eval_cfg: Any = None) -> list[str]:
    """Task names with groups (textcore) replaced by their members, in order, without repeats."""
    out: list[str] = []
    for name in names:
        members = group_members(name, eval_cfg) if name in GROUPS else [name]
        out += [m for m in members if m not in out]
    return out


def group_members(name: str, eval_cfg: Any = None) -> list[str]:
    """The members of group `name` as the config sets them (eval.textcore), else its default list."""
    value = (eval_cfg or {}).get(name) if eval_cfg is not None else None
    return [m.strip() for m in str(value).split(",") if m.strip()] if value else list(GROUPS[name])


def files_given(name: str, eval_cfg: Any) -> bool:
    """Whether every file task `name` needs is set in config.eval (optional files aside; not checked to exist)."""
    task = task_for(name, eval_cfg)
    values = task_config(task, eval_cfg)
    return all(values.get(f) or task.kind in OPTIONAL_FILES.get(f, ()) for f in task.files if f not in NOT_FILES)


def task_config(task: Task, eval_cfg: Any) -> dict[str, Any]:
    """The task's config section as a dict (kind defaults, then config.eval.<task>)."""
    if task.kind == "embedded":
        return {}
    k = KINDS[task.kind]
    section = (eval_cfg or {}).get(task.name) if eval_cfg is not None else None
    values = {**k.files, **k.options, **(section.to_dict() if hasattr(section, "to_dict") else dict(section or {}))}
    values.pop("kind", None)
    return values


def check_eval_config(eval_cfg: Any, tasks: Any = ()) -> None:
    """One sentence naming the first bad field of config.eval, or a file a named task needs that is unset or absent.

    Checks every section's fields against its kind, the shared fields, and for `tasks` their files."""
    from etils import epath  # pylint: disable=import-outside-toplevel

    if eval_cfg is None:
        eval_cfg = eval_defaults()
    known = eval_defaults()
    for key in eval_cfg:
        value = eval_cfg[key]
        if key in known and not isinstance(known[key], ml_collections.ConfigDict):
            continue
        if key in SETTINGS:
            extra = sorted(set(value) - set(known[key]))
            if extra:
                raise ValueError(f"eval.{key}.{extra[0]} is not a field of eval.{key}"
                                 f"{did_you_mean(extra[0], known[key])}; its fields are: {', '.join(known[key])}.")
            continue
        if key not in known and not (hasattr(value, "get") and value.get("kind")):
            raise ValueError(f"eval.{key} is not a known field or task{did_you_mean(key, known)}; the tasks are: "
                             f"{', '.join(sorted(DATASETS))} (a new dataset needs a section with a 'kind').")
        task = task_for(key, eval_cfg)
        allowed = set(KINDS[task.kind].files) | set(KINDS[task.kind].options) | {"kind"}
        for field in value:
            if field not in allowed:
                raise ValueError(f"eval.{key}.{field} is not a field of a {task.kind} task"
                                 f"{did_you_mean(field, allowed)}; its fields are: "
                                 f"{', '.join(sorted(allowed - {'kind'}))}.")
    for name in ("template", "box_format", "convention"):
        choices = {"template": ("", "mm1", "chatml"), "box_format": BOX_FORMATS, "convention": CONVENTIONS}[name]
        if eval_cfg.get(name, known[name]) not in choices:
            raise ValueError(f"eval.{name}={eval_cfg.get(name)!r} is not one of {', '.join(choices)}.")
    frames, rule = eval_cfg.get("video_frames", 0), eval_cfg.get("video_sampling", "")
    if isinstance(frames, bool) or not isinstance(frames, int) or frames < 0:
        raise ValueError(f"eval.video_frames={frames!r} must be a non-negative integer (0: data.video.frames).")
    if rule and rule not in video.SAMPLING_RULES:
        raise ValueError(f"eval.video_sampling={rule!r} is not one of {', '.join(video.SAMPLING_RULES)} (or '').")
    limit = eval_cfg.get("max_skipped", known.max_skipped)
    if isinstance(limit, bool) or not isinstance(limit, (int, float)) or not 0 <= limit <= 1:
        raise ValueError(f"eval.max_skipped={limit!r} must be a fraction between 0 and 1.")
    names = expand(tasks, eval_cfg)
    kinds = [task_for(n, eval_cfg).kind for n in names]
    if any(KINDS[k].judged or KINDS[k].options.get("answer_mode") is not None for k in kinds if k in KINDS):
        judge.check_judge(eval_cfg.get("judge"))  # a task a judge may score: the judge's fields before anything runs
    for name in names:
        task = task_for(name, eval_cfg)
        values = task_config(task, eval_cfg)
        if values.get("answer_mode", "likelihood") not in ANSWER_MODES:
            raise ValueError(f"eval.{name}.answer_mode={values['answer_mode']!r} is not one of "
                             f"{', '.join(ANSWER_MODES)}.")
        if task.distractors and (not isinstance(values["num_images"], int) or values["num_images"] < 1):
            raise ValueError(f"eval.{name}.num_images={values['num_images']!r} must be a positive integer "
                             "(the question's image and num_images - 1 distractors).")
        for field in task.files:
            value = values.get(field)
            if not isinstance(value, str) or field in NOT_FILES:
                continue
            if not value:
                if task.kind in OPTIONAL_FILES.get(field, ()):
                    continue
                raise ValueError(f"eval task {name!r} needs config.eval.{name}.{field}; it is unset.")
            if not epath.Path(value).exists():
                raise ValueError(f"config.eval.{name}.{field}={value!r} does not exist (needed by eval task "
                                 f"{name!r}).")
