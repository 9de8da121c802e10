"""The evaluation suites end to end: one run over three captioning and three VQA datasets (small files in their
official formats, scikit-image's photographs) writes per-task scores and the MM1 average; bad input gets one sentence
before the model loads; too many unreadable items stop a task, not the run."""
import ast
import base64
import csv
import io
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import skimage.data
from PIL import Image

from mm1_jax.eval import datasets, metrics, rescore, suites, tasks
from mm1_jax.eval.scorers import mmbench, vqa
from mm1_jax.eval.results import run_and_write, write_harness_files
from tests.support import require_java_ptb

PHOTOS = os.path.dirname(skimage.data.__file__)
RGB = ("astronaut.png", "coffee.png", "chelsea.png", "rocket.jpg", "motorcycle_left.png", "retina.jpg")
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def photo(path, source):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with Image.open(os.path.join(PHOTOS, source)) as img:
        img.convert("RGB").resize((64, 64)).save(path)
    return str(path)


def dump(path, data):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return str(path)


def write_six_datasets(root):
    """COCO and NoCaps (COCO format), TextCaps (its release JSON), VQAv2 (questions + annotations), VizWiz (its
    list), TextVQA (its "data" file); each with 2 items on real photographs. Returns config.eval overrides."""
    images = root / "images"
    for i, name in enumerate(RGB[:4]):
        photo(images / f"COCO_val2014_{i + 1:012d}.jpg", name)
        photo(images / f"{i + 1:04x}.jpg", name)           # NoCaps / TextCaps / TextVQA file names
        photo(images / f"VizWiz_val_{i:08d}.jpg", name)
    coco = dump(root / "captions_karpathy_test.json", {
        "info": {}, "licenses": [], "type": "captions",
        "images": [{"id": 1, "file_name": "COCO_val2014_000000000001.jpg", "height": 64, "width": 64},
                   {"id": 2, "file_name": "COCO_val2014_000000000002.jpg", "height": 64, "width": 64}],
        "annotations": [{"id": 10, "image_id": 1, "caption": "An astronaut in a white suit poses with a flag."},
                        {"id": 11, "image_id": 1, "caption": "A woman astronaut smiling in front of a flag."},
                        {"id": 12, "image_id": 2, "caption": "A cup of coffee on a saucer."},
                        {"id": 13, "image_id": 2, "caption": "Coffee in a white cup with a spoon."}]})
    nocaps = dump(root / "nocaps_val_4500_captions.json", {
        "licenses": [], "info": {},
        "images": [{"id": 0, "file_name": "0003.jpg", "open_images_id": "0003", "domain": "near-domain"},
                   {"id": 1, "file_name": "0004.jpg", "open_images_id": "0004", "domain": "out-domain"}],
        "annotations": [{"image_id": 0, "id": 0, "caption": "A tabby cat looks up at the camera."},
                        {"image_id": 0, "id": 1, "caption": "A cat with green eyes."},
                        {"image_id": 1, "id": 2, "caption": "A rocket lifts off from the launch pad."},
                        {"image_id": 1, "id": 3, "caption": "Smoke billows as a rocket launches."}]})
    textcaps = dump(root / "TextCaps_0.1_val.json", {"dataset_type": "val", "dataset_name": "textcaps", "data": [
        {"image_id": "0001", "image_name": "0001", "caption_id": 1, "caption_str": "A NASA patch on a suit.",
         "reference_strs": ["A NASA patch on a suit.", "The suit says NASA on the patch."]},
        {"image_id": "0001", "image_name": "0001", "caption_id": 2, "caption_str": "The suit says NASA on the patch.",
         "reference_strs": ["A NASA patch on a suit.", "The suit says NASA on the patch."]},
        {"image_id": "0002", "image_name": "0002", "caption_id": 3, "caption_str": "A cup reading CAFE.",
         "reference_strs": ["A cup reading CAFE.", "The word cafe on a coffee cup."]}]})
    vq = dump(root / "v2_OpenEnded_mscoco_val2014_questions.json", {"questions": [
        {"image_id": 1, "question": "Is this person an astronaut?", "question_id": 10},
        {"image_id": 2, "question": "How many cups are there?", "question_id": 20}]})
    va = dump(root / "v2_mscoco_val2014_annotations.json", {"annotations": [
        {"question_id": 10, "image_id": 1, "answer_type": "yes/no", "multiple_choice_answer": "yes",
         "answers": [{"answer": "yes", "answer_confidence": "yes", "answer_id": j + 1} for j in range(10)]},
        {"question_id": 20, "image_id": 2, "answer_type": "number", "multiple_choice_answer": "3",
         "answers": [{"answer": a, "answer_confidence": "yes", "answer_id": j + 1}
                     for j, a in enumerate(["2"] * 2 + ["3"] * 8)]}]})
    vizwiz = dump(root / "val.json", [
        {"image": "VizWiz_val_00000000.jpg", "question": "What is this?", "answerable": 0, "answer_type": "unanswerable",
         "answers": [{"answer": "unanswerable", "answer_confidence": "yes"}] * 10},
        {"image": "VizWiz_val_00000001.jpg", "question": "What colour is the cup?", "answerable": 1,
         "answer_type": "other", "answers": [{"answer": a, "answer_confidence": "maybe"}
                                             for a in ["red"] * 3 + ["white"] * 7]}])
    textvqa = dump(root / "TextVQA_0.5.1_val.json", {"dataset_type": "val", "dataset_name": "textvqa",
                                                     "dataset_version": "0.5.1", "data": [
        {"question": "what does the patch say?", "image_id": "0001", "image_classes": ["Person"],
         "flickr_original_url": "", "flickr_300k_url": "", "image_width": 64, "image_height": 64,
         "answers": ["nasa"] * 10, "question_tokens": ["what"], "question_id": 1, "set_name": "val"},
        {"question": "what animal is it?", "image_id": "0003", "image_classes": ["Cat"], "flickr_original_url": "",
         "flickr_300k_url": "", "image_width": 64, "image_height": 64, "answers": ["cat"] + ["kitten"] * 9,
         "question_tokens": ["what"], "question_id": 2, "set_name": "val"}]})
    d = str(images)
    return {"coco_cap": dict(annotations=coco, images=d), "nocaps": dict(annotations=nocaps, images=d),
            "textcaps": dict(annotations=textcaps, images=d),
            "vqav2": dict(questions=vq, annotations=va, images=d), "vizwiz": dict(annotations=vizwiz, images=d),
            "textvqa": dict(annotations=textvqa, images=d)}


def byte_level_tokenizer(path, special=("<pad>", "<bos>", "<eos>")):
    """A byte-level BPE tokenizer.json (trained here with the tokenizers library): any text round-trips exactly,
    which the embedded world's small vocabulary does not do for real captions."""
    import tokenizers
    from tokenizers import decoders, models, pre_tokenizers, trainers

    tok = tokenizers.Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(["a photo of a cup"], trainers.BpeTrainer(
        vocab_size=300, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), special_tokens=list(special)))
    tok.save(str(path))
    return str(path)


def tiny_config(eval_overrides, tokenizer=None):
    from configs import tiny

    config = tiny.get_config()
    for task, fields in eval_overrides.items():
        config.eval[task].update(fields)
    if tokenizer:
        config.data.tokenizer = tokenizer
    return config


class Scripted:
    """A stand-in generator answering with given texts in order (the model is not what is tested here)."""

    def __init__(self, tok, answers):
        self.tok, self.answers, self.seen = tok, list(answers), []

    def __call__(self, params, requests, sampling):
        self.seen += requests
        return [(self.tok.encode(self.answers.pop(0)), [0.0]) for _ in requests]


CAPTIONS = {"coco_cap": ["An astronaut in a white suit.", "A cup of coffee."],
            "nocaps": ["A cat looks at the camera.", "A rocket launches."],
            "textcaps": ["A NASA patch.", "A coffee cup reading cafe."]}
# (prediction, hand-computed official accuracy: min(#matching humans / 3, 1) over the 10 leave-one-out sets, after
# each script's normalisation). vqaEval.py (GT-Vision-Lab/VQA) normalises nothing when the ten humans agree, so "Yes"
# against ten "yes" scores 0; the VizWiz API normalises the prediction only; mmf's TextVQA evaluator both sides.
VQA = {"vqav2": [("Yes", 0.0), ("two", (2 * 1 / 3 + 8 * 2 / 3) / 10)],        # "two" -> "2": 2 of 10 humans
       "vizwiz": [("unanswerable", 1.0), ("Red.", (3 * 2 / 3 + 7 * 1.0) / 10)],  # 3 of 10 humans
       "textvqa": [("NASA", 1.0), ("the cat", (1 * 0.0 + 9 * 1 / 3) / 10)]}     # 1 of 10, article dropped


def test_one_run_over_three_caption_and_three_vqa_datasets(tmp_path):
    """Per-task scores equal independent references (pycocoevalcap's Cider on the PTB tokens; the official VQA
    accuracy computed by hand), and the MM1 average is their mean in percent, saying which two are missing."""
    require_java_ptb(metrics.ptb_available())
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    config = tiny_config(write_six_datasets(tmp_path), byte_level_tokenizer(tmp_path / "tokenizer.json"))
    ctx = tasks.Context.from_config(None, config)
    answers = [a for t in CAPTIONS.values() for a in t] + [p for t in VQA.values() for p, _ in t]
    script = Scripted(ctx.tok, answers)
    ctx.generator = lambda batch: script
    names = list(CAPTIONS) + list(VQA)
    out = run_and_write(ctx, None, config, names, [0], limit=10, seed=0, workdir=str(tmp_path / "out"))
    written = json.loads((tmp_path / "out" / "eval_results.json").read_text())
    assert written["scores"] == pytest.approx(out["scores"]) and set(written["scores"]) == {
        f"{t}/0shot/{'cider' if t in CAPTIONS else 'vqa_accuracy'}" for t in names}
    assert all(n == 0 for n in written["skipped"].values()) and not written["stopped"]
    expected = {}
    for name, preds in CAPTIONS.items():
        items, _, _ = tasks.load_task(datasets.TASKS[name], config, 10)
        texts = {f"{i.id}": [{"caption": c} for c in i.answers] for i in items}
        texts.update({f"{i.id}#pred": [{"caption": p}] for i, p in zip(items, preds)})
        tok = PTBTokenizer().tokenize(texts)
        score, _ = Cider().compute_score({i.id: tok[i.id] for i in items}, {i.id: tok[f"{i.id}#pred"] for i in items})
        expected[f"{name}/0shot/cider"] = score
    for name, rows in VQA.items():
        expected[f"{name}/0shot/vqa_accuracy"] = np.mean([acc for _, acc in rows])
    assert written["scores"] == pytest.approx(expected, rel=1e-9)
    assert written["scores"]["vqav2/0shot/vqa_accuracy"] == pytest.approx(0.3)  # (0 + 0.6) / 2
    mm1 = written["averages"]["MM1 few-shot/0shot"]
    assert mm1["missing"] == ["GQA", "OK-VQA"] and not mm1["complete"]
    assert mm1["mean"] == pytest.approx(100 * np.mean(list(expected.values())))
    results = json.loads((tmp_path / "out" / "textcaps_results_0shot.json").read_text())
    assert results == [{"image_id": "0001", "caption": "A NASA patch."},
                       {"image_id": "0002", "caption": "A coffee cup reading cafe."}]
    assert len(script.seen) == 12 and not script.answers
    assert written["convention"] == "official" and written["reports"]["vizwiz/0shot"]["convention"] == "official"
    scorer = {"vqav2": vqa.vqa_accuracy, "vizwiz": vqa.vizwiz_accuracy, "textvqa": vqa.textvqa_accuracy}
    for name, rows in VQA.items():
        # VLMEvalKit's table, read as vlmeval/smp/file.py `load` reads a .tsv (tab-separated, a header row) and each
        # line's answers taken as vqa_eval.py `process_line` takes them (a list literal, or one string): the
        # predictions and references it holds score the task's number again
        with open(tmp_path / "out" / "vlmevalkit" / f"{name}_0shot.tsv", newline="") as f:
            table = list(csv.DictReader(f, delimiter="\t"))
        assert [line["prediction"] for line in table] == [p for p, _ in rows]
        answers = [ast.literal_eval(line["answer"]) if line["answer"].startswith("[") else [line["answer"]]
                   for line in table]
        again = [scorer[name](line["prediction"], a) for line, a in zip(table, answers)]
        assert again == pytest.approx([acc for _, acc in rows])
        # lmms-eval's per-sample log: one line per question, its prediction and its score
        lines = [json.loads(t) for t in (tmp_path / "out" / "lmms_eval" / f"samples_{name}_0shot.jsonl").open()]
        assert [(s["doc_id"], s["filtered_resps"], s["vqa_accuracy"]) for s in lines] == [
            (n, p, pytest.approx(acc)) for n, (p, acc) in enumerate(rows)]
        for path in (f"vlmevalkit/{name}_0shot.tsv", f"lmms_eval/samples_{name}_0shot.jsonl"):  # the rescore command
            rescored = rescore.score_file(str(tmp_path / "out" / path), name)
            assert rescored == {"vqa_accuracy": pytest.approx(written["scores"][f"{name}/0shot/vqa_accuracy"])}
    assert rescore.score_file(str(tmp_path / "out" / "vlmevalkit" / "vqav2_0shot.tsv"), "vqav2", "lmms_eval") == {
        "vqa_accuracy": pytest.approx((1.0 + 0.6) / 2)}  # lmms-eval normalises "Yes" when the humans agree too


def test_convention_names_the_harness_whose_rules_score(tmp_path):
    """eval.convention=lmms_eval prompts and scores VQAv2 as lmms-eval's vqav2 task does (its post_prompt after the
    question; lmms_eval/tasks/vqav2/utils.py normalises both sides always), so "Yes" against ten "yes" is right where
    vqaEval.py says wrong; the report says which convention it used; an unknown name lists the known ones."""
    config = tiny_config(write_six_datasets(tmp_path), byte_level_tokenizer(tmp_path / "tokenizer.json"))
    got = {}
    for convention in ("official", "lmms_eval"):
        config.eval.convention = convention
        ctx = tasks.Context.from_config(None, config)
        script = Scripted(ctx.tok, [p for p, _ in VQA["vqav2"]])
        ctx.generator = lambda batch, script=script: script
        reports = {}
        got[convention] = tasks.run_tasks(None, None, config, ["vqav2"], [0], reports=reports, context=ctx)
        assert reports["vqav2/0shot"]["convention"] == convention
        prompt = ctx.tok.decode(script.seen[0].tokens, mark_images=False)  # lmms_eval/tasks/vqav2/vqav2_val.yaml
        asked = "Is this person an astronaut?\nAnswer the question using a single word or phrase."
        assert (asked in prompt) == (convention == "lmms_eval") and "Is this person an astronaut?" in prompt
    assert got == {"official": {"vqav2/0shot/vqa_accuracy": pytest.approx((0.0 + 0.6) / 2)},
                   "lmms_eval": {"vqav2/0shot/vqa_accuracy": pytest.approx((1.0 + 0.6) / 2)}}
    config.eval.convention = "harness"
    with pytest.raises(ValueError, match=r"^eval.convention='harness' is not one of official, lmms_eval, vlmevalkit.$"):
        datasets.check_eval_config(config.eval, ["vqav2"])


def test_a_predictions_file_a_scorer_cannot_read_is_one_sentence(tmp_path):
    """The file, the record and the field, for each way a predictions file can be wrong."""
    def table(name, header, *lines):
        path = tmp_path / name
        path.write_text("\n".join("\t".join(row) for row in (header, *lines)) + "\n")
        return str(path)

    cases = [
        (table("a.tsv", ["index", "answer"], ["0", "yes"]), "vqav2",
         "a.tsv: line 2: lacks the field 'prediction' (VLMEvalKit's columns: index, answer, prediction, and A, B, "
         "... for multiple choice)"),
        (table("b.tsv", ["index", "answer", "prediction"], ["x", "yes", "yes"]), "vqav2",
         "b.tsv: line 2: field 'index' 'x' is not a number"),
        (table("c.tsv", ["index", "answer", "prediction"], ["0", "['yes', 'no'", "yes"]), "vqav2",
         "c.tsv: line 2: field 'answer' \"['yes', 'no'\" is not a list literal"),
        (table("d.tsv", ["index", "answer", "prediction"], ["0", "B", "B"]), "mmbench",
         "d.tsv: task 'mmbench' is multiple choice; its predictions need the option columns A, B, ... of "
         "VLMEvalKit's table."),
        (table("e.txt", ["index"]), "vqav2", "e.txt: expected VLMEvalKit's table (.tsv) or lmms-eval's samples log "
                                              "(.jsonl)."),
    ]
    bad = tmp_path / "f.jsonl"
    bad.write_text('{"doc_id": 0, "target": "yes", "filtered_resps": ["yes"]}\n{"doc_id": 1, "target": "no"\n')
    cases.append((str(bad), "vqav2", "f.jsonl: line 2: is not JSON (Expecting ',' delimiter)"))
    bad = tmp_path / "g.jsonl"
    bad.write_text('{"doc_id": 0, "resps": ["yes"], "target": "yes"}\n')
    cases.append((str(bad), "vqav2", "g.jsonl: line 1: lacks the field 'filtered_resps' (lmms-eval's samples: "
                                     "doc_id, target, filtered_resps)"))
    for path, task, sentence in cases:
        with pytest.raises(ValueError) as e:
            rescore.score_file(path, task)
        assert str(e.value) == f"predictions file {tmp_path}/{sentence}"
    with pytest.raises(ValueError, match=r"^--convention='vlm' is not one of official, lmms_eval, vlmevalkit.$"):
        rescore.score_file(path, "vqav2", "vlm")


def test_suite_averages_and_groups():
    scores = {"coco_cap/0shot/cider": 1.0, "vqav2/0shot/vqa_accuracy": 0.5, "coco_cap/4shot/cider": 1.2,
              "textcore/0shot/accuracy": 0.4, "chartqa/0shot/relaxed_accuracy": 0.3, "docvqa/0shot/anls": 0.5,
              "ai2d/0shot/accuracy": 0.6, "scienceqa/0shot/accuracy": 0.8, "mme/0shot/score": 1500.0}
    avg = suites.averages(scores)
    assert avg["MM1 few-shot/0shot"]["mean"] == pytest.approx(75.0) and avg["MM1 few-shot/4shot"]["mean"] == 120.0
    assert avg["TextCore/0shot"]["mean"] == pytest.approx(40.0)
    assert avg["Text-rich/0shot"]["mean"] == pytest.approx(40.0) and avg["Knowledge/0shot"]["mean"] == 70.0
    # MME's 1500 points of 2800 enter General as 53.57; MMBase is the mean of the three categories' means
    assert avg["General/0shot"]["mean"] == pytest.approx(100 * 1500 / 2800)
    assert avg["General/0shot"]["missing"] == ["LLaVA-W", "MM-Vet", "POPE", "RealWorldQA", "SEED-IMG"]
    assert avg["MMBase/0shot"]["mean"] == pytest.approx((100 * 1500 / 2800 + 40.0 + 70.0) / 3)
    assert not avg["MMBase/0shot"]["complete"]
    assert "MM1 few-shot   0-shot    75.00  (2 of 8; missing GQA, NoCaps" in suites.table(avg)
    assert datasets.expand(["coco_cap", "textcore", "piqa"]) == ["coco_cap", "arc_easy", "arc_challenge", "piqa",
                                                                 "lambada"]


@pytest.mark.slow
def test_bad_input_is_one_sentence_before_the_model_loads(tmp_path, monkeypatch):
    """Unknown tasks and unset, absent or unreadable files stop the command with one sentence and exit status 1
    before any model is built: the command's main runs in this process with its model loader replaced by one that
    fails the test, and one case goes through `python -m mm1_jax.eval` for the entry point's exit status and stderr."""
    import copy

    from absl import flags
    from ml_collections import config_flags

    from mm1_jax.eval import __main__ as cli

    monkeypatch.setattr(cli, "load", lambda *a, **k: pytest.fail(f"a model was loaded for {cli.FLAGS.tasks}"))
    monkeypatch.setattr(cli.console, "quiet_libraries", lambda: None)  # leaves this process's logging alone
    base = [f"--config={REPO}/configs/tiny.py", f"--workdir={tmp_path}"]

    def refusal(*args) -> str:
        """What the command prints to stderr (sys.exit's message, the whole of it) and exits 1 with. The command's
        flags are parsed into a fresh FlagValues (a config flag defines its --config.* overrides from its argv)."""
        argv = ["mm1_jax.eval", *base, *args]
        fv = flags.FlagValues()
        config_flags.DEFINE_config_file("config", None, "", flag_values=fv, sys_argv=argv)
        for flag in flags.FLAGS.get_flags_for_module(cli.__name__):  # the command's other flags, as it defines them
            if flag.name != "config":
                fv[flag.name] = copy.deepcopy(flag)
        fv(argv)
        monkeypatch.setattr(cli, "FLAGS", fv)
        with pytest.raises(SystemExit) as e:
            cli.main([])
        assert isinstance(e.value.code, str) and "\n" not in e.value.code, e.value.code  # str: exit status 1
        return e.value.code

    assert refusal("--tasks=nocap").startswith("error: eval task 'nocap' does not exist; the tasks are: ")
    assert refusal("--tasks=textcaps", "--config.eval.textcaps.images=/tmp") == (
        "error: eval task 'textcaps' needs config.eval.textcaps.annotations; it is unset.")
    assert refusal("--tasks=textcaps", "--config.eval.textcaps.images=/tmp",
                   f"--config.eval.textcaps.annotations={tmp_path}/TextCaps_0.1_val.json") == (
        f"error: config.eval.textcaps.annotations='{tmp_path}/TextCaps_0.1_val.json' does not exist (needed by "
        "eval task 'textcaps').")
    (tmp_path / "val.json").write_text('{"data": []}')
    assert refusal("--tasks=vizwiz", "--config.eval.vizwiz.images=/tmp",
                   f"--config.eval.vizwiz.annotations={tmp_path}/val.json").startswith(
        f"error: eval task 'vizwiz': {tmp_path}/val.json:")
    assert not (tmp_path / "eval_results.json").exists()
    out = subprocess.run([sys.executable, "-m", "mm1_jax.eval", *base, "--tasks=nocap"], cwd=REPO, capture_output=True,
                         text=True, timeout=300)
    (line,) = out.stderr.strip().splitlines()
    assert out.returncode == 1 and line.startswith("error: eval task 'nocap' does not exist; the tasks are: "), out


def test_unreadable_items_are_counted_and_too_many_stop_the_task(tmp_path):
    """Undecodable images are skipped and counted; above eval.max_skipped the task stops before the model runs,
    the other tasks still run and everything is written."""
    overrides = write_six_datasets(tmp_path)
    bad = tmp_path / "images" / "VizWiz_val_00000001.jpg"
    bad.write_bytes(b"not a jpeg")
    config = tiny_config({k: overrides[k] for k in ("vizwiz", "vqav2")}, byte_level_tokenizer(tmp_path / "tok.json"))
    config.eval.max_skipped = 0.5  # 1 of 2 is not above half: scored, and counted
    ctx = tasks.Context.from_config(None, config)
    script = Scripted(ctx.tok, ["unanswerable", "yes", "2"])
    ctx.generator = lambda batch: script
    out = run_and_write(ctx, None, config, ["vizwiz", "vqav2"], [0], limit=10, seed=0, workdir=str(tmp_path / "a"))
    assert out["skipped"] == {"vizwiz/0shot": 1, "vqav2/0shot": 0} and out["scores"]["vizwiz/0shot/vqa_accuracy"] == 1
    reason = out["reports"]["vizwiz/0shot"]["skipped"][0]
    assert reason["id"] == "VizWiz_val_00000001" and "VizWiz_val_00000001.jpg" in reason["reason"]
    config.eval.max_skipped = 0.25
    ctx.max_skipped = 0.25
    script = Scripted(ctx.tok, ["yes", "2"])
    ctx.generator = lambda batch: script
    out = run_and_write(ctx, None, config, ["vizwiz", "vqav2"], [0], limit=10, seed=0, workdir=str(tmp_path / "b"))
    assert out["stopped"]["vizwiz/0shot"].startswith("eval task 'vizwiz' stopped: 1 of 2 items skipped (more than "
                                                     "eval.max_skipped=0.25); the first: VizWiz_val_00000001:")
    assert "vizwiz/0shot/vqa_accuracy" not in out["scores"] and out["scores"]["vqav2/0shot/vqa_accuracy"] == 0.8
    assert len(script.seen) == 2  # only vqav2's prompts reached the generator


def write_other_kinds(root):
    """One small file per remaining kind, in its release's format; returns config.eval overrides."""
    img = root / "img"
    for name, src in (("a.jpg", "astronaut.png"), ("b.png", "coffee.png"), ("c.jpg", "chelsea.png")):
        photo(img / name, src)
    photo(img / "scienceqa" / "test" / "7" / "image.png", "rocket.jpg")
    d = str(img)
    gqa = dump(root / "testdev_balanced_questions.json", {
        "201": {"imageId": "a", "question": "Is the person wearing a suit?", "answer": "yes", "fullAnswer": "Yes.",
                "types": {}, "semantic": [], "isBalanced": True},
        "202": {"imageId": "a", "question": "What is on the wall?", "answer": "flag", "fullAnswer": "A flag.",
                "types": {}, "semantic": [], "isBalanced": True},
        "203": {"imageId": "a", "question": "Is it red?", "answer": "no", "fullAnswer": "No.",  # not scored
                "types": {}, "semantic": [], "isBalanced": False}})
    docvqa = dump(root / "val_v1.0.json", {"dataset_name": "docvqa", "dataset_split": "val", "data": [
        {"questionId": 1, "question": "Which company is named?", "question_types": ["form"], "image": "b.png",
         "docId": 5, "ucsf_document_id": "x", "ucsf_document_page_no": "1", "answers": ["ACME Corp."]}]})
    chartqa = dump(root / "test_human.json", [{"imgname": "b.png", "query": "What is the peak?", "label": "12"},
                                              {"imgname": "b.png", "query": "Is it rising?", "label": "No"}])
    with open(root / "refs(unc).p", "wb") as f:
        import pickle
        pickle.dump([{"ref_id": 0, "ann_id": 9, "image_id": 3, "split": "val", "category_id": 1,
                      "sentences": [{"sent": "the woman", "raw": "The woman", "tokens": [], "sent_id": 0},
                                    {"sent": "person on the left", "raw": "", "tokens": [], "sent_id": 1}]}], f, 2)
    instances = dump(root / "instances.json", {"images": [{"id": 3, "file_name": "c.jpg", "width": 200, "height": 100}],
                                               "annotations": [{"id": 9, "image_id": 3, "bbox": [20, 10, 100, 50],
                                                                "category_id": 1, "area": 5000, "iscrowd": 0}],
                                               "categories": []})
    buf = io.BytesIO()
    with Image.open(os.path.join(PHOTOS, "coffee.png")) as im:
        im.convert("RGB").resize((32, 32)).save(buf, format="JPEG")
    b64 = base64.b64encode(buf.getvalue()).decode()
    with open(root / "MMBench_DEV_EN.tsv", "w", newline="") as f:
        w = csv.writer(f, delimiter="\t")
        w.writerow(["index", "question", "hint", "A", "B", "C", "D", "answer", "category", "image", "l2-category",
                    "split"])
        w.writerow([0, "What is in the cup?", "", "tea", "coffee", "milk", "water", "B", "scene", b64, "x", "dev"])
        w.writerow([1, "Is it hot?", "", "yes", "no", "", "", "A", "attr", b64, "x", "dev"])
    scienceqa = dump(root / "problems.json", {
        "7": {"question": "What is shown?", "choices": ["a rocket", "a fish"], "answer": 0, "hint": "",
              "image": "image.png", "task": "closed choice", "grade": "grade3", "subject": "natural science",
              "split": "test", "lecture": "", "solution": ""},
        "8": {"question": "Text only?", "choices": ["x", "y"], "answer": 1, "hint": "", "image": None,
              "split": "test"}})
    (root / "ai2d" / "questions").mkdir(parents=True)
    dump(root / "ai2d" / "questions" / "b.png.json", {"imageName": "b.png", "questions": {
        "What is in the diagram?": {"answerTexts": ["a cup", "a tree", "a sun", "a dog"], "correctAnswer": 0,
                                    "questionId": "b.png-0", "abcLabel": False}}})
    arc = root / "ARC-Easy-Test.jsonl"
    arc.write_text(json.dumps({"id": "Q1", "question": {"stem": "Which is a planet?", "choices": [
        {"text": "the Moon", "label": "A"}, {"text": "Mars", "label": "B"}]}, "answerKey": "B"}) + "\n")
    arc_c = root / "ARC-Challenge-Test.jsonl"
    arc_c.write_text(json.dumps({"id": "Q2", "question": {"stem": "What melts ice?", "choices": [
        {"text": "heat", "label": "1"}, {"text": "cold", "label": "2"}]}, "answerKey": "1"}) + "\n")
    piqa = root / "valid.jsonl"
    piqa.write_text(json.dumps({"goal": "Open a jar", "sol1": "twist the lid", "sol2": "paint the lid"}) + "\n" +
                    json.dumps({"goal": "Dry hair", "sol1": "use a towel", "sol2": "use a spoon"}) + "\n")
    labels = root / "valid-labels.lst"
    labels.write_text("0\n0\n")
    lambada = root / "lambada_test.jsonl"
    lambada.write_text(json.dumps({"text": "She threw the ball and the eager dog caught it in the park"}) + "\n" +
                       json.dumps({"text": "The cat waited by the hole for the mouse"}) + "\n")
    return {"gqa": dict(questions=gqa, images=d), "docvqa": dict(annotations=docvqa, images=d),
            "chartqa": dict(annotations=chartqa, images=d),
            "refcoco": dict(refs=str(root / "refs(unc).p"), instances=instances, images=d),
            "mmbench": dict(annotations=str(root / "MMBench_DEV_EN.tsv"), answer_mode="letter"),
            "scienceqa": dict(annotations=scienceqa, images=d + "/scienceqa"),
            "ai2d": dict(annotations=str(root / "ai2d" / "questions"), images=d),
            "arc_easy": dict(annotations=str(arc)), "arc_challenge": dict(annotations=str(arc_c)),
            "piqa": dict(annotations=str(piqa), labels=str(labels)), "lambada": dict(annotations=str(lambada))}


# generated answers in task order, and the score each earns (hand-computed from the metrics' definitions)
GENERATED = {
    "gqa": ["yes", "a flag"],                         # eval.py: the answer string exactly: 1, 0
    "docvqa": ["Acme Corp"],                          # ANLS: 1 - lev("acme corp", "acme corp.") / 10 = 0.9
    "chartqa": ["12.4", "Yes"],                       # 12.4 within 5% of 12: 1; "Yes" != "No": 0
    "refcoco": ["[100, 100, 600, 600]", "[0, 0, 100, 100]"],  # IoU 1 and 0 with the 200 x 100 px image's box
    "mmbench": ["B", "A", "(D) water", "The answer is C", "A", "A"],  # rotations of item 0 all right; item 1's 2nd
    "lambada": ["park.", "cat"],                      # last words "park" and "mouse": 1, 0
}
PREFERRED = {" Mars", " heat", " twist the lid", " use a spoon", "a rocket", "a tree"}  # what the scorer prefers


def test_every_kind_scores_through_its_task(tmp_path, monkeypatch):
    """GQA, DocVQA, ChartQA, RefCOCO (Ferret's boxes), MMBench (letters, circular), ScienceQA-IMG, AI2D and
    TextCore (ARC, PIQA, LAMBADA) from their release files through run_tasks: scripted answers and likelihoods in,
    the scores their definitions give out."""
    config = tiny_config(write_other_kinds(tmp_path), byte_level_tokenizer(tmp_path / "tokenizer.json"))
    config.eval.box_format = "ferret"
    ctx = tasks.Context.from_config(None, config)
    script = Scripted(ctx.tok, [a for answers in GENERATED.values() for a in answers])
    ctx.generator = lambda batch: script
    scored = []

    def likelihoods(model, params, requests, continuations, **kw):
        texts = [ctx.tok.decode(c, mark_images=False) for c in continuations]
        scored.extend(texts)
        return [1.0 if t in PREFERRED else 0.0 for t in texts]

    monkeypatch.setattr(tasks.gen, "score_continuations", likelihoods)
    reports = {}
    names = ["gqa", "docvqa", "chartqa", "refcoco", "mmbench", "scienceqa", "ai2d", "textcore"]
    scores = tasks.run_tasks(None, None, config, names, [0], reports=reports, context=ctx)
    assert not script.answers and all(not r["skipped"] for r in reports.values())
    assert scores == pytest.approx({
        "gqa/0shot/accuracy": 0.5, "docvqa/0shot/anls": 0.9, "chartqa/0shot/relaxed_accuracy": 0.5,
        "refcoco/0shot/box_iou50": 0.5, "mmbench/0shot/accuracy": 1.0, "mmbench/0shot/circular_accuracy": 0.5,
        "scienceqa/0shot/accuracy": 1.0, "ai2d/0shot/accuracy": 0.0,
        "arc_easy/0shot/accuracy": 1.0, "arc_challenge/0shot/accuracy": 1.0, "piqa/0shot/accuracy": 0.5,
        "lambada/0shot/last_word_accuracy": 0.5, "textcore/0shot/accuracy": 0.75})
    ref = reports["refcoco/0shot"]["predictions"]
    assert [r["id"] for r in ref] == ["0_0", "0_1"]
    items, _, _ = tasks.load_task(datasets.TASKS["refcoco"], config, 10)
    assert items[0].question == "What is the location of the woman in the image?"  # ml-ferret model_refcoco.py
    assert items[0].answers == ["[100, 100, 600, 600]"]  # (20, 10, 120, 60) px on a 200 x 100 image, 0-999 grid
    assert [i.id for i in tasks.load_task(datasets.TASKS["scienceqa"], config, 10)[0]] == ["7"]  # ScienceQA-IMG
    assert " the Moon" in scored and " Mars" in scored  # ARC options scored as continuations of "Question: ..."
    # MMBench's predictions as VLMEvalKit's table: a row per circular pass at index i + pass * 1e6, the options in the
    # order shown; grouped by index % 1e6 and a letter read from each prediction (vlmeval/dataset/utils/
    # multiple_choice.py), the table gives the circular accuracy run_tasks reported
    paths = write_harness_files(str(tmp_path / "harness"), "mmbench/0shot", reports["mmbench/0shot"])
    with open(paths["vlmevalkit"], newline="") as f:
        table = list(csv.DictReader(f, delimiter="\t"))
    assert [int(r["index"]) for r in table] == [0, 1_000_000, 2_000_000, 3_000_000, 1, 1_000_001]
    assert [(r["A"], r["B"], r["answer"]) for r in table] == [
        ("tea", "coffee", "B"), ("coffee", "milk", "A"), ("milk", "water", "D"), ("water", "tea", "C"),
        ("yes", "no", "A"), ("no", "yes", "B")]
    assert [r["prediction"] for r in table] == GENERATED["mmbench"]
    hits: dict[int, list[bool]] = {}
    for r in table:
        options = [r[c] for c in "ABCD" if r.get(c)]
        choice = mmbench.extract_choice(r["prediction"], options)
        hits.setdefault(int(r["index"]) % 1_000_000, []).append(choice is not None and "ABCD"[choice] == r["answer"])
    assert mmbench.circular_accuracy(hits) == scores["mmbench/0shot/circular_accuracy"] == 0.5
    assert rescore.score_file(paths["vlmevalkit"], "mmbench") == {"accuracy": 1.0, "circular_accuracy": 0.5}
    samples = [json.loads(line) for line in open(paths["lmms_eval"])]
    assert [(x["target"], x["accuracy"]) for x in samples] == [("B", 1.0), ("A", 1.0), ("D", 1.0), ("C", 1.0),
                                                               ("A", 1.0), ("B", 0.0)]
