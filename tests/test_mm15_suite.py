"""MM1.5's suite end to end: `--tasks=mm15` runs every MM1.5 benchmark given its files (small files in their release
formats on real photographs), each scored by its official rules, and the category averages and MMBase equal the
means of the per-benchmark scores computed here by hand."""
import base64
import io
import json
import os

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from mm1_jax.eval import datasets, suites, tasks
from mm1_jax.eval.results import run_and_write
from mm1_jax.eval.scorers.mme import MME_COGNITION, MME_PERCEPTION
from tests.test_eval_benchmarks import PHOTOS, RGB, Scripted, byte_level_tokenizer, photo, tiny_config

# MME: per subtask (first answer, second answer) to its (Yes, No) pair. The official calculation.py: lower-cased,
# "yes"/"no" exactly, else the first 4 characters decide; score = 100 acc + 100 acc+.
MME_ANSWERS = {s: ("Yes", "No") for s in MME_PERCEPTION + MME_COGNITION}  # 200 each
MME_ANSWERS.update({"count": ("Yes", "Yes"),                  # acc 50, acc+ 0: 50
                    "position": ("No", "Yes"),                # 0
                    "color": ("Y", "no"),                     # "Y" is neither: 50
                    "OCR": ("yes, it is", "no."),             # "yes," and "no." by their first 4 characters: 200
                    "code_reasoning": ("Yeah", "No")})        # "yeah" holds no "yes": 50
PERCEPTION = 200 * 6 + 50 + 0 + 50 + 200                     # existence .. artwork, count, position, color, OCR
COGNITION = 200 * 3 + 50
# POPE (evaluate.py, per split): random all right (F1 1); popular "Yes" to a "no" (P 1/2, R 1, F1 2/3); adversarial
# by the first sentence's words ("Yes. There is no other." -> yes; "There is not one." -> no): F1 1
POPE_ANSWERS = {"random": ("Yes", "No"), "popular": ("Yes", "Yes"),
                "adversarial": ("Yes. There is no other.", "There is not one.")}
POPE_F1 = (1 + 2 / 3 + 1) / 3
# RealWorldQA (lmms-eval's rule): the letter "B" of a lettered question is right; "Three" is not "3"
REALWORLDQA = ["B", "Three"]
# WTQ (evaluator.py): "1981.0" is the number 1981; one item for two targets is wrong
WTQ = ["1981.0", "Paris"]
# TabFact (evaluate_tabfact): "True" for an entailed statement is right; "true or false" is unparsed, wrong
TABFACT = ["True", "true or false"]
# OCRBench (example.py): "cafe" contained in the lower-cased answer; HME100k "x^{3}" does not contain "x^{2}"
OCRBENCH = ["The text is CAFE", "x^{3}"]
# MathVista: "4" is a choice (right); "The answer is 12 apples." no rule extracts: needs the judge, counted wrong
MATHVISTA = ["4", "The answer is 12 apples."]
# MMMU: "(B) Baroque" parses to B (right); the open "The answer is 6" parses to 6, not 5
MMMU = ["(B) Baroque", "The answer is 6"]
# Flickr30k Entities (Ferret's eval_flickr_entities.py, a 1000 x 1000 image): the man's box exactly (IoU 1), the
# dog's [0, 0, 100, 100] against (600, 600, 900, 900) misses: recall@1 1/2
FLICKR = ["A man [0, 0, 500, 500], a dog [0, 0, 100, 100]."]
# LVIS-Ref (eval_lvis.py): "cat" names the class; "It is a dog." does not
LVIS = ["cat", "It is a dog."]
# NLVR2 (Mantis' reading of a true / false question): "False" right; "False" to a true statement wrong
NLVR2 = ["False", "False"]
# MuirBench (MMMU's parser): "B" right; "(B)" to an "A" question wrong
MUIRBENCH = ["B", "(B)"]


def png_bytes(source):
    with Image.open(os.path.join(PHOTOS, source)) as img:
        buf = io.BytesIO()
        img.convert("RGB").resize((48, 48)).save(buf, format="PNG")
    return buf.getvalue()


def write_mm15_files(root):
    """Each MM1.5 benchmark that has a task, two items (MME: one image pair per subtask) in its release's format;
    returns the config.eval overrides."""
    out = {}
    # MME: the release's MME_Benchmark folder; five subtasks keep images/ and questions_answers_YN/
    mme = root / "MME_Benchmark_release_version" / "MME_Benchmark"
    for n, subtask in enumerate(MME_PERCEPTION + MME_COGNITION):
        split = subtask in ("artwork", "celebrity", "landmark", "posters", "scene")
        pictures = mme / subtask / "images" if split else mme / subtask
        texts = mme / subtask / "questions_answers_YN" if split else mme / subtask
        photo(pictures / f"{n:04d}.jpg", RGB[n % len(RGB)])
        texts.mkdir(parents=True, exist_ok=True)
        (texts / f"{n:04d}.txt").write_text(f"Is this about {subtask}? Please answer yes or no.\tYes\n"
                                            f"Is this a drawing of {n} cats? Please answer yes or no.\tNo\n")
    out["mme"] = dict(annotations=str(mme.parent))
    # POPE: output/coco/coco_pope_<split>.json, one JSON object a line, and COCO val2014 images
    pope = root / "POPE" / "output" / "coco"
    pope.mkdir(parents=True)
    for split in POPE_ANSWERS:
        lines = [dict(question_id=1, image="COCO_val2014_000000000001.jpg", text="Is there a cat in the image?",
                      label="yes"),
                 dict(question_id=2, image="COCO_val2014_000000000002.jpg", text="Is there a bus in the image?",
                      label="no")]
        (pope / f"coco_pope_{split}.json").write_text("".join(json.dumps(x) + "\n" for x in lines))
    for k in (1, 2):
        photo(root / "val2014" / f"COCO_val2014_{k:012d}.jpg", RGB[k])
    out["pope"] = dict(annotations=str(pope), images=str(root / "val2014"))
    # SEED-Bench: SEED-Bench.json, images at <folder>/<data_id>
    seed = {"questions": [
        dict(answer="B", choice_a="a dog", choice_b="a cat", choice_c="a car", choice_d="a tree", data_id="1.jpg",
             data_type="image", question="What animal is shown?", question_id="101", question_type_id=2),
        dict(answer="A", choice_a="two", choice_b="one", choice_c="five", choice_d="nine", data_id="2.jpg",
             data_type="image", question="How many people?", question_id="102", question_type_id=5)],
        "question_type": {"Instance Identity": 2, "Instances Counting": 5}}
    (root / "seed.json").write_text(json.dumps(seed))
    photo(root / "seed_images" / "1.jpg", RGB[2])
    photo(root / "seed_images" / "2.jpg", RGB[0])
    out["seed_img"] = dict(annotations=str(root / "seed.json"), images=str(root / "seed_images"))
    # RealWorldQA: the hub's data/test-*.parquet with image {"bytes", "path"}, question, answer
    (root / "realworldqa").mkdir()
    pq.write_table(pa.table({
        "image": [{"bytes": png_bytes(RGB[3]), "path": "1.png"}, {"bytes": png_bytes(RGB[4]), "path": "2.png"}],
        "question": ["Which way does the road turn?\nA. Left\nB. Right\nPlease answer directly with only the letter "
                     "of the correct option and nothing else.",
                     "How many cars are there?\nPlease answer directly with a single word or number."],
        "answer": ["B", "3"]}), root / "realworldqa" / "test-00000-of-00001.parquet")
    out["realworldqa"] = dict(annotations=str(root / "realworldqa"))
    # WTQ and TabFact: TableVQA-Bench's TSV (base64 table images), its vwtq and vtabfact splits
    header = ["index", "image", "question", "answer", "split"]
    rows = [["1", base64.b64encode(png_bytes(RGB[0])).decode(), "In which year was it founded?", "1981", "vwtq"],
            ["2", "1", "Which cities host it?", "Paris|London", "vwtq"],
            ["3", base64.b64encode(png_bytes(RGB[1])).decode(), "The team won in 1990.", "1", "vtabfact"],
            ["4", "3", "The team lost twice.", "0", "vtabfact"]]
    (root / "tablevqa-bench.tsv").write_text("\n".join("\t".join(r) for r in [header] + rows) + "\n")
    out["wtq"] = dict(annotations=str(root / "tablevqa-bench.tsv"))
    out["tabfact"] = dict(annotations=str(root / "tablevqa-bench.tsv"))
    # OCRBench: OCRBench.json and OCRBench_Images
    ocr = [dict(dataset_name="IIIT5K", id=0, image_path="IIIT5K/1.jpg", question="what is written in the image?",
                answers=["CAFE"], type="Regular Text Recognition"),
           dict(dataset_name="HME100k", id=1, image_path="HME100k/2.jpg", question="Please write out the expression "
                "of the formula in the image using LaTeX format.", answers=["x ^ { 2 }"],
                type="Handwritten Mathematical Expression Recognition")]
    (root / "OCRBench.json").write_text(json.dumps(ocr))
    photo(root / "OCRBench_Images" / "IIIT5K" / "1.jpg", RGB[1])
    photo(root / "OCRBench_Images" / "HME100k" / "2.jpg", RGB[5])
    out["ocrbench"] = dict(annotations=str(root / "OCRBench.json"), images=str(root / "OCRBench_Images"))
    # MathVista: testmini.json ({pid: problem}) with images/ beside it
    problems = {
        "1": dict(pid="1", question="How many sides?", image="images/1.jpg", choices=["3", "4", "5"], unit=None,
                  precision=None, answer="4", question_type="multi_choice", answer_type="text",
                  query="Hint: Please answer the question and provide the correct option letter.\nQuestion: How "
                        "many sides?\nChoices:\n(A) 3\n(B) 4\n(C) 5",
                  metadata=dict(split="testmini", language="english", source="Geometry3K", category="math-targeted-vqa",
                                task="geometry problem solving", context="geometry diagram", grade="high school",
                                skills=["geometry reasoning"])),
        "2": dict(pid="2", question="How many apples?", image="images/2.jpg", choices=None, unit=None,
                  precision=None, answer="12", question_type="free_form", answer_type="integer",
                  metadata=dict(split="testmini", language="english", source="CLEVR-Math", category="math-targeted-vqa",
                                task="math word problem", context="synthetic scene", grade="elementary school",
                                skills=["arithmetic reasoning"]))}
    (root / "MathVista").mkdir()
    (root / "MathVista" / "testmini.json").write_text(json.dumps(problems))
    photo(root / "MathVista" / "images" / "1.jpg", RGB[4])
    photo(root / "MathVista" / "images" / "2.jpg", RGB[2])
    out["mathvista"] = dict(annotations=str(root / "MathVista" / "testmini.json"), images=str(root / "MathVista"))
    # MMMU: the hub's <Subject>/validation-*.parquet, options a Python list literal, image_1..image_7
    for subject, row in (("Art", dict(id="validation_Art_1", question="<image 1> Which style is this painting?",
                                      options="['Cubism', 'Baroque']", answer="B", question_type="multiple-choice")),
                         ("Math", dict(id="validation_Math_2", question="What is 2 + 3? <image 1>", options="[]",
                                       answer="5", question_type="open"))):
        images = {f"image_{k}": [None] for k in range(2, 8)}
        (root / "MMMU" / subject).mkdir(parents=True)
        pq.write_table(pa.table({**{k: [v] for k, v in row.items()},
                                 "image_1": [{"bytes": png_bytes(RGB[0]), "path": "1.png"}], **images}),
                       root / "MMMU" / subject / "validation-00000-of-00001.parquet")
    out["mmmu"] = dict(annotations=str(root / "MMMU"))
    # Flickr30k Entities: the release's test.txt, Sentences/<id>.txt and Annotations/<id>.xml (Pascal VOC boxes)
    flickr = root / "flickr30k_entities"
    (flickr / "Sentences").mkdir(parents=True)
    (flickr / "Annotations").mkdir()
    (flickr / "test.txt").write_text("1000092795\n")
    (flickr / "Sentences" / "1000092795.txt").write_text("[/EN#1/people A man] walks with [/EN#4/animals a dog] .\n")
    boxes = "".join(f"<object><name>{n}</name><bndbox><xmin>{x1}</xmin><ymin>{y1}</ymin><xmax>{x2}</xmax>"
                    f"<ymax>{y2}</ymax></bndbox></object>" for n, x1, y1, x2, y2 in ((1, 0, 0, 500, 500),
                                                                                    (4, 600, 600, 900, 900)))
    (flickr / "Annotations" / "1000092795.xml").write_text(
        f"<annotation><filename>1000092795.jpg</filename><size><width>1000</width><height>1000</height>"
        f"<depth>3</depth></size>{boxes}</annotation>")
    photo(root / "flickr30k-images" / "1000092795.jpg", RGB[0])
    out["flickr30k_entities"] = dict(entities=str(flickr), images=str(root / "flickr30k-images"))
    # LVIS-Ref: Ferret's records (model_lvis.py's fields), COCO val2017 images
    lines = []
    for rid in (1, 2):
        photo(root / "val2017" / f"{rid:012d}.jpg", RGB[rid])
        lines.append(json.dumps({"id": rid, "image_path": f"coco/val2017/{rid:012d}.jpg", "width": 640,
                                 "height": 480, "name": "cat", "synonyms": ["cat"], "neg_class": "dog",
                                 "bbox": [64, 240, 639.36, 480], "bbox_norm": [0.1, 0.5, 0.999, 1.0],
                                 "sample_point": [100, 50], "free_shape_bbox_raw": [10, 20, 630, 470]}))
    (root / "lvis_eval.jsonl").write_text("\n".join(lines) + "\n")
    out["lvis_ref"] = dict(annotations=str(root / "lvis_eval.jsonl"), images=str(root / "val2017"))
    # NLVR2: the release's test1.json (JSON lines) and the split's images <identifier minus the last part>-img0/1
    nlvr2 = root / "nlvr2"
    for name in ("test1-850-0-img0.png", "test1-850-0-img1.png", "test1-851-2-img0.png", "test1-851-2-img1.png"):
        photo(nlvr2 / "test1" / name, RGB[len(name) % 5])
    (nlvr2 / "test1.json").write_text("".join(json.dumps(
        {"validation": {"61": label}, "sentence": sentence, "left_url": "https://example.org/l.jpg", "writer": "61",
         "label": label, "right_url": "https://example.org/r.jpg", "synset": "dog", "query": "dogs 12",
         "identifier": identifier, "extra_validations": {"154": label}}) + "\n" for identifier, sentence, label in (
        ("test1-850-0-0", "There are three dogs in total.", "False"),
        ("test1-851-2-1", "The left image shows a cat.", "True"))))
    out["nlvr2"] = dict(annotations=str(nlvr2 / "test1.json"), images=str(nlvr2 / "test1"))
    # MuirBench: the hub's data/test-*.parquet (image_list, options with <image> markers, answer letters)
    image = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    (root / "muirbench" / "data").mkdir(parents=True)
    rows = [dict(idx="1", task="Visual Retrieval", image_relation="Multiview", image_type="Photography",
                 question="Which image shows the same building as <image>?",
                 options=["<image>", "<image>", "None of the choices provided"], answer="B",
                 image_list=[{"bytes": png_bytes(RGB[k]), "path": f"{k}.png"} for k in (0, 1, 2)],
                 counterpart_idx="1_u"),
            dict(idx="2", task="Counting", image_relation="Complementary", image_type="Photography",
                 question="How many cups are shown in the two images?", options=["Four", "Three"], answer="A",
                 image_list=[{"bytes": png_bytes(RGB[k]), "path": f"{k}.png"} for k in (1, 3)],
                 counterpart_idx="2_u")]
    schema = pa.schema([(k, pa.list_(image) if k == "image_list" else pa.list_(pa.string()) if k == "options"
                         else pa.string()) for k in rows[0]])
    pq.write_table(pa.Table.from_pylist(rows, schema), root / "muirbench" / "data" / "test-00000-of-00001.parquet")
    out["muirbench"] = dict(annotations=str(root / "muirbench"))
    return out


def test_mm15_scores_every_benchmark_it_has_files_for_and_mmbase(tmp_path, monkeypatch):
    config = tiny_config(write_mm15_files(tmp_path), byte_level_tokenizer(tmp_path / "tokenizer.json"))
    ctx = tasks.Context.from_config(None, config)
    answers = [a for s in MME_PERCEPTION + MME_COGNITION for a in MME_ANSWERS[s]]
    answers += [a for s in POPE_ANSWERS.values() for a in s] + REALWORLDQA + WTQ + TABFACT + OCRBENCH + MATHVISTA
    answers += MMMU + FLICKR + LVIS + NLVR2 + MUIRBENCH
    script = Scripted(ctx.tok, answers)
    ctx.generator = lambda batch: script
    scored = []

    def likelihoods(model, params, requests, continuations, **kw):  # SEED: "a cat" preferred, "two" the worst
        texts = [ctx.tok.decode(c, mark_images=False) for c in continuations]
        scored.extend(texts)
        return [{"a cat": -1.0, "two": -9.0}.get(t, -2.0) * len(c) for t, c in zip(texts, continuations)]

    monkeypatch.setattr(tasks.gen, "score_continuations", likelihoods)
    out = run_and_write(ctx, None, config, ["mm15"], [0], limit=100, seed=0, workdir=str(tmp_path / "out"))
    assert not script.answers and not out["stopped"] and not any(out["skipped"].values())
    expected = {
        "mme/0shot/score": PERCEPTION + COGNITION, "mme/0shot/perception": PERCEPTION,
        "mme/0shot/cognition": COGNITION,
        "pope/0shot/f1": POPE_F1, "pope/0shot/accuracy": (1 + 0.5 + 1) / 3, "pope/0shot/precision": (1 + 0.5 + 1) / 3,
        "pope/0shot/recall": 1.0,
        "seed_img/0shot/accuracy": 0.5, "realworldqa/0shot/accuracy": 0.5,
        "wtq/0shot/accuracy": 0.5, "tabfact/0shot/accuracy": 0.5, "ocrbench/0shot/accuracy": 0.5,
        "mathvista/0shot/accuracy": 0.5, "mathvista/0shot/needs_judge": 0.5, "mmmu/0shot/accuracy": 0.5,
        "flickr30k_entities/0shot/recall_at_1": 0.5, "lvis_ref/0shot/accuracy": 0.5,
        "nlvr2/0shot/accuracy": 0.5, "nlvr2/0shot/consistency": 0.5, "muirbench/0shot/accuracy": 0.5,
        "muirbench/0shot/needs_judge": 0.0}
    assert out["scores"] == pytest.approx(expected)
    general = [100 * (PERCEPTION + COGNITION) / 2800, 100 * POPE_F1, 50.0, 50.0]  # MME, POPE, SEED, RealWorldQA
    text_rich, knowledge = [50.0, 50.0, 50.0], [50.0, 50.0]                      # WTQ, TabFact, OCRBench; MathVista, MMMU
    avg = out["averages"]
    assert avg["General/0shot"]["mean"] == pytest.approx(sum(general) / 4)
    assert avg["General/0shot"]["missing"] == ["LLaVA-W", "MM-Vet"]
    assert avg["Text-rich/0shot"]["mean"] == pytest.approx(50.0)
    assert avg["Text-rich/0shot"]["used"] == ["OCRBench", "TabFact", "WTQ"]
    assert avg["Knowledge/0shot"]["mean"] == pytest.approx(50.0) and avg["Knowledge/0shot"]["used"] == ["MMMU",
                                                                                                          "MathVista"]
    assert avg["MMBase/0shot"]["mean"] == pytest.approx((sum(general) / 4 + sum(text_rich) / 3 + sum(knowledge) / 2) / 3)
    assert avg["Refer&Ground/0shot"]["mean"] == pytest.approx(50.0)
    assert avg["Refer&Ground/0shot"]["missing"] == ["Ferret-Bench", "RefCOCO"]
    assert avg["Multi-image/0shot"]["mean"] == pytest.approx(50.0)
    assert avg["Multi-image/0shot"]["used"] == ["MuirBench", "NLVR2"]
    written = json.loads((tmp_path / "out" / "eval_results.json").read_text())
    assert written["reports"]["mme/0shot"]["details"]["subtasks"]["count/acc_plus"] == 0.0
    assert written["reports"]["pope/0shot"]["details"]["splits"]["popular/f1"] == pytest.approx(2 / 3)
    assert [r["needs_judge"] for r in written["reports"]["mathvista/0shot"]["predictions"]] == [False, True]
    # the prompts: MMMU's official layout, RealWorldQA's question as released, the SEED options as continuations
    prompts = [ctx.tok.decode(r.tokens, mark_images=False) for r in script.seen]
    assert any("Which style is this painting?\n(A) Cubism\n(B) Baroque\n\nAnswer with the option's letter from the "
               "given choices directly." in p for p in prompts)
    assert any("B. Right\nPlease answer directly with only the letter" in p for p in prompts)
    assert any("What are the locations of a man, a dog?" in p for p in prompts)  # ml-ferret model_flickr.py
    assert {"a cat", "two"} <= set(scored)


def test_a_suite_with_no_files_given_is_one_sentence(tmp_path):
    config = tiny_config({})
    with pytest.raises(ValueError, match=r"--tasks=mm15_knowledge: no benchmark of it has its files set; give one "
                                         r"with config.eval.<task>.annotations \(its tasks: ai2d, mathvista, mmmu, "
                                         r"scienceqa\)"):
        tasks.read_tasks(config, ["mm15_knowledge"], 10)
    assert suites.select(["coco_cap", "mm15_text_rich"], tiny_config({"wtq": dict(annotations="x.tsv")}).eval) == [
        "coco_cap", "wtq"]
    assert datasets.files_given("pope", tiny_config({"pope": dict(annotations="POPE.tsv")}).eval)  # images in the TSV


def write_judged_files(root):
    """LLaVA-Bench (In-the-Wild)'s folder (questions, context, GPT-4's answers, images) and MM-Vet's mm-vet.json with
    its images, two questions each."""
    llava = root / "llava-bench-in-the-wild"
    photo(llava / "images" / "001.jpg", RGB[3])
    lines = {"questions.jsonl": [{"image": "001.jpg", "text": "What is this?", "category": "conv", "question_id": 0},
                                 {"image": "001.jpg", "text": "Describe the photo in detail.", "category": "detail",
                                  "question_id": 1}],
             "context.jsonl": [{"id": "001", "image": "001.jpg", "caption": "A rocket on its launch pad."}],
             "answers_gpt4.jsonl": [{"question_id": q, "text": f"GPT-4 answer {q}", "answer_id": str(q),
                                     "model_id": "gpt-4-0314", "metadata": {}} for q in (0, 1)]}
    for name, records in lines.items():
        (llava / name).write_text("".join(json.dumps(r) + "\n" for r in records))
    mmvet = root / "mm-vet"
    for k in (0, 1):
        photo(mmvet / "images" / f"v1_{k}.png", RGB[k])
    (mmvet / "mm-vet.json").write_text(json.dumps({
        "v1_0": {"imagename": "v1_0.png", "capability": ["ocr", "math"], "question": "What is x?",
                 "answer": "-1<AND>-5"},
        "v1_1": {"imagename": "v1_1.png", "capability": ["rec"], "question": "Who is this?", "answer": "a cat"}}))
    return {"llava_w": dict(annotations=str(llava)), "mmvet": dict(annotations=str(mmvet / "mm-vet.json"))}


def test_judged_benchmarks_are_judged_or_said_not_scored_and_a_judge_down_stops_only_its_task(tmp_path):
    from mm1_jax.eval.judge import OpenAIJudge
    from tests.test_judge import Scripted as ScriptedJudge

    files = {**write_judged_files(tmp_path), "pope": write_mm15_files(tmp_path)["pope"]}
    config = tiny_config(files, byte_level_tokenizer(tmp_path / "tokenizer.json"))
    llava, mmvet, pope = ["A rocket.", "A rocket stands on a pad."], ["x = -1 and -5", "a dog"], ["Yes", "No"] * 3

    def context(judge, answers):
        ctx = tasks.Context.from_config(None, config)
        ctx.generator = lambda batch, script=Scripted(ctx.tok, answers): script
        if judge is not None:
            ctx._judge = [judge]
        return ctx

    # no judge configured (eval.judge.backend=''): "not scored", and General lacks them
    out = run_and_write(context(None, llava + mmvet), None, config, ["llava_w", "mmvet"], [0], limit=10, seed=0,
                        workdir=str(tmp_path / "none"))
    assert out["scores"] == {} and "General/0shot" not in out["averages"]
    assert out["reports"]["llava_w/0shot"]["not_scored"] == "no judge" == out["reports"]["mmvet/0shot"]["not_scored"]
    # a judge (a scripted local backend): LLaVA's reviews "8 6" and "10 10" -> 100 * 8 / 9; MM-Vet's grades 1.0, 0.0
    reviews = {"A rocket.": "8 6\nThe second is short.", "A rocket stands on a pad.": "10 10"}

    def reply(messages):
        text = messages[-1]["content"]
        if "[Assistant 2]" in text:
            return next(v for k, v in reviews.items() if f"[Assistant 2]\n{k}\n" in text)
        return "1.0" if "| x = -1 and -5 |" in text else "0.0"

    judge = ScriptedJudge(reply)
    out = run_and_write(context(judge, pope + llava + mmvet), None, config, ["mm15_general"], [0], limit=10, seed=0,
                        workdir=str(tmp_path / "judged"))
    assert out["scores"]["llava_w/0shot/gpt_score"] == pytest.approx(0.889)  # summarize_gpt_review.py rounds to 1 place
    assert out["scores"]["mmvet/0shot/gpt_score"] == pytest.approx(0.5)
    assert out["scores"]["llava_w/0shot/unparsed"] == 0.0 == out["scores"]["mmvet/0shot/unparsed"]
    written = json.loads((tmp_path / "judged" / "eval_results.json").read_text())
    details = written["reports"]["llava_w/0shot"]["details"]
    assert details["judge"] == {"backend": "local", "model": "scripted-judge"}
    assert [r["reply"] for r in details["replies"]] == ["8 6\nThe second is short.", "10 10"]
    general = written["averages"]["General/0shot"]
    assert general["used"] == ["LLaVA-W", "MM-Vet", "POPE"]
    pope_f1 = written["scores"]["pope/0shot/f1"]
    assert general["mean"] == pytest.approx((88.9 + 50.0 + 100 * pope_f1) / 3)
    # a judge that stays down: its tasks stop with one sentence naming the task and the endpoint; POPE still runs
    down = OpenAIJudge("http://127.0.0.1:9/v1", "gpt-4-0613", "", attempts=2, backoff_s=0.0, timeout_s=1.0)
    out = run_and_write(context(down, llava + pope), None, config, ["llava_w", "pope"], [0], limit=10, seed=0,
                        workdir=str(tmp_path / "down"))
    assert set(out["stopped"]) == {"llava_w/0shot"} and "pope/0shot/f1" in out["scores"]
    assert out["stopped"]["llava_w/0shot"].startswith("eval task 'llava_w': ")
    assert "http://127.0.0.1:9/v1" in out["stopped"]["llava_w/0shot"]


def test_a_bad_judge_field_is_one_sentence_before_anything_runs(tmp_path, monkeypatch):
    config = tiny_config(write_judged_files(tmp_path))
    config.eval.judge.backend = "gpt"
    with pytest.raises(ValueError, match=r"^eval.judge.backend='gpt' is not one of '', 'openai', 'local'.$"):
        tasks.read_tasks(config, ["llava_w"], 10)
    assert datasets.check_eval_config(config.eval, ["coco_cap"][:0]) is None  # the judge is checked for judged tasks
    config.eval.judge.update(backend="openai", url="http://127.0.0.1:9/v1", model="gpt-4-0613",
                             api_key_env="MM1_TEST_UNSET_KEY")
    monkeypatch.delenv("MM1_TEST_UNSET_KEY", raising=False)
    with pytest.raises(ValueError, match=r"eval.judge.api_key_env='MM1_TEST_UNSET_KEY' names an environment variable "
                                         r"that is not set"):
        tasks.read_tasks(config, ["mm15_general"], 10)
    config.eval.judge.nonsense = 1
    with pytest.raises(ValueError, match=r"eval.judge.nonsense is not a field of eval.judge"):
        tasks.read_tasks(config, ["mmvet"], 10)


def test_mmbench_letters_the_rules_cannot_read_go_to_the_judge(tmp_path):
    """MMBench in letter mode under VLMEvalKit's rules: "Hmm, hard to say." names no option, so without a judge the
    question fails CircularEval; with eval.judge, VLMEvalKit's matching prompt asks the judge, whose letter counts."""
    import re

    from tests.test_eval_benchmarks import write_other_kinds
    from tests.test_judge import Scripted as ScriptedJudge

    files = write_other_kinds(tmp_path)
    config = tiny_config({"mmbench": files["mmbench"]}, byte_level_tokenizer(tmp_path / "tokenizer.json"))
    answers = ["Hmm, hard to say.", "A", "D", "C", "A", "B"]  # question 0's passes, then question 1's

    def run(judge):
        ctx = tasks.Context.from_config(None, config)
        ctx.generator = lambda batch, script=Scripted(ctx.tok, list(answers)): script
        ctx._judge = [judge]
        reports = {}
        return tasks.run_tasks(None, None, config, ["mmbench"], [0], reports=reports, context=ctx), reports

    scores, _ = run(None)
    assert scores == {"mmbench/0shot/accuracy": 0.5, "mmbench/0shot/circular_accuracy": 0.5}
    asked = []

    def reply(messages):  # the letter of "coffee" among the options the prompt lists
        asked.append(messages[-1]["content"])
        return re.search(r"([A-D])\. coffee", messages[-1]["content"]).group(1)

    scores, reports = run(ScriptedJudge(reply))
    assert scores == {"mmbench/0shot/accuracy": 1.0, "mmbench/0shot/circular_accuracy": 1.0,
                      "mmbench/0shot/needs_judge": 0.0}
    assert len(asked) >= 1 and "Hmm, hard to say." in asked[0] and "What is in the cup?" in asked[0]
    assert reports["mmbench/0shot"]["details"]["judge"] == {"backend": "local", "model": "scripted-judge"}
