"""The embedded world's study mechanisms: per-document caption conventions (in-context learning), caption quality
(alt text, dense captions), text-rich pages legible only at high resolution, scenes of small shapes, the SFT
categories; all deterministic, in the real formats, read by the project's own readers, with no <unk>."""
import filecmp
import glob
import io
import itertools
import json
import os
import re
import tarfile

import numpy as np
import pyarrow.parquet as pq
import pytest
from etils import epath
from PIL import Image

from mm1_jax.data import config as config_lib
from mm1_jax.data import examples as examples_lib
from mm1_jax.data import images as images_lib
from mm1_jax.data import sources as sources_lib
from mm1_jax.data import synthetic
from mm1_jax.data.synthetic.world import article
from mm1_jax.data.tokenizer import load_tokenizer
from mm1_jax.eval import metrics
from mm1_jax.eval.datasets import TASKS
from mm1_jax.eval.prompts import draw_demos
from mm1_jax.eval.tasks import load_task

NEW_SFT = ("doc_vqa", "count_vqa", "refer", "math", "knowledge", "multi_image", "distractors", "text_dialogue")
NEW_WDS = ("alt_text", "dense_captions", "ocr_pages")


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return synthetic.generate(str(tmp_path_factory.mktemp("world") / "w"), seed=0, scale=0.01)


def _json(path):
    with open(path) as f:
        return [json.loads(line) for line in f] if path.endswith(".jsonl") else json.load(f)


def _tar_texts(path):
    out = []
    with tarfile.open(path) as tar:
        for m in tar:
            data = tar.extractfile(m).read()
            if m.name.endswith(".txt"):
                out.append(data.decode())
            elif m.name.endswith(".json"):
                out.append(json.loads(data)["caption"])
    return out


def all_texts(root):
    """(source, text) for every text of a generated world, read from its files."""
    from array_record.python import array_record_module  # pylint: disable=g-import-not-at-top

    out = [(os.path.basename(os.path.dirname(p)), t) for p in sorted(glob.glob(os.path.join(root, "*", "*.tar")))
           for t in _tar_texts(p)]
    out += [("interleaved", t) for r in pq.read_table(os.path.join(root, "interleaved")).to_pylist()
            for t in r["texts"] if t]
    reader = array_record_module.ArrayRecordReader(glob.glob(os.path.join(root, "text", "*"))[0])
    out += [("text", json.loads(x)["text"]) for x in reader.read_all()]
    for path in sorted(glob.glob(os.path.join(root, "sft", "*.json*"))) + [os.path.join(root, "eval", "vqa.json")]:
        # Ferret-UI's records (sft/ui.json) as the ferret_ui_json source reads them: boxes written as text
        records = (sources_lib.FerretUIJsonSource([epath.Path(path)]) if path.endswith("ui.json") else _json(path))
        out += [(os.path.basename(path).split(".")[0], t["value"].replace("<video>", ""))  # a marker, not a word
                for r in records for t in r["conversations"]]
    videos = _json(os.path.join(root, "eval", "video.json"))  # held-out clips: their questions and options
    out += [("video_eval", t.replace("<video>", "")) for r in videos
            for t in [c["value"] for c in r["conversations"]] + r["options"]]
    return out


# --- determinism and vocabulary


def test_same_seed_same_bytes_other_seed_differs(world, tmp_path):
    again = synthetic.generate(str(tmp_path / "again"), seed=0, scale=0.01)
    other = synthetic.generate(str(tmp_path / "other"), seed=1, scale=0.01)
    files = sorted(os.path.relpath(os.path.join(d, f), world) for d, _, fs in os.walk(world) for f in fs)
    for name in NEW_WDS:
        assert f"{name}/shard-00000.tar" in files and f"{name}/shard-00001.tar" in files
    for name in NEW_SFT:
        assert f"sft/{name}.json" in files
    _, mismatch, errors = filecmp.cmpfiles(world, again, files, shallow=False)
    assert not mismatch and not errors
    with tarfile.open(os.path.join(world, "ocr_pages", "shard-00000.tar")) as a, \
            tarfile.open(os.path.join(again, "ocr_pages", "shard-00000.tar")) as b:
        assert [(m.name, a.extractfile(m).read()) for m in a] == [(m.name, b.extractfile(m).read()) for m in b]
    for rel in [f"{n}/shard-00000.tar" for n in NEW_WDS] + [f"sft/{n}.json" for n in NEW_SFT] + \
            ["interleaved/docs-00000.parquet", "sft/video.json", "sft/videos/video-00000.mp4", "eval/video.json"]:
        assert not filecmp.cmp(os.path.join(world, rel), os.path.join(other, rel), shallow=False), rel
    # an existing empty folder is fine (tempfile.mkdtemp()), a non-empty one is not
    os.makedirs(tmp_path / "empty")
    synthetic.generate(str(tmp_path / "empty"), scale=0.002)
    with pytest.raises(FileExistsError):
        synthetic.generate(str(tmp_path / "empty"), scale=0.002)


def test_no_unknown_word_in_any_source(world):
    tok = load_tokenizer(os.path.join(world, "tokenizer.json"))
    unk = tok.special["<unk>"]
    texts = all_texts(world)
    names = {s for s, _ in texts}
    assert names >= {"captions", "interleaved", "text", "vqa", "ocr", "grounding", "video", "video_eval", *NEW_WDS,
                     *NEW_SFT}, names
    for source, text in texts:
        assert unk not in tok.encode(text), (source, text)
    assert tok.vocab_size == len(synthetic.vocabulary())
    assert all(len(tok.encode(str(n))) == 1 for n in range(100))  # every number on a page is one token


# --- interleaved documents: one convention per document


def _signature(text):
    """A caption with its content abstracted: colours -> C, shapes -> S, counts -> N, digits -> D."""
    table = {**{c: "C" for c in synthetic.COLOURS}, **{s: "S" for s in synthetic.SHAPES},
             **{c: "N" for c in synthetic.COUNTS}, **{str(d): "D" for d in range(10)}}
    return " ".join(table.get(w, w) for w in text.split())


def _all_scenes():
    """Every content a `shapes_image` can have (1 shape left / centre / right, or 2 shapes)."""
    singles = [{"colour": c, "shape": s} for c in synthetic.COLOURS for s in synthetic.SHAPES]
    for o in singles:
        for x in (2, 25, 50):
            yield [dict(o, box=(x, 5, x + 12, 17))]
    for a, b in itertools.product(singles, singles):
        yield [dict(a, box=(2, 5, 20, 23)), dict(b, box=(40, 5, 58, 23))]


def _convention_of():
    """signature -> convention (asserting no signature belongs to two conventions)."""
    table = {}
    for objs in _all_scenes():
        for c in synthetic.CONVENTIONS:
            assert table.setdefault(_signature(synthetic.convention_caption(objs, c)), c) == c
    return table


def test_conventions_differ_from_each_other_and_from_plain_captions_after_normalisation():
    for objs in _all_scenes():
        plain = metrics.normalize_vqa_answer(synthetic.describe(objs) + " .")
        forms = [metrics.normalize_vqa_answer(synthetic.convention_caption(objs, c)) for c in synthetic.CONVENTIONS]
        assert len(set(forms)) == len(forms) and plain not in forms, (objs, forms)
    # three conventions start with the same words (the first shape's colour and name): the first words of a caption
    # do not tell its convention, only the document's earlier captions do
    objs = next(_all_scenes())
    starts = [synthetic.convention_caption(objs, c).split()[:2] for c in synthetic.CONVENTIONS]
    assert sum(s == [objs[0]["colour"], objs[0]["shape"]] for s in starts) >= 3


def test_interleaved_documents_keep_one_convention_each(world):
    of = _convention_of()
    docs = pq.read_table(os.path.join(world, "interleaved")).to_pylist()
    rng = np.random.default_rng(5)
    docs += [synthetic.interleaved_record(rng) for _ in range(150)]
    seen = []
    for doc in docs:
        texts, images = doc["texts"], doc["images"]
        captions = [texts[i + 1] for i, im in enumerate(images) if im is not None]
        conventions = {of[_signature(c)] for c in captions}
        assert len(captions) >= 2 and len(conventions) == 1, captions
        seen.append(conventions.pop())
        # what comes before the first picture is the same for every convention
        assert texts[0] == "this document has pictures of shapes ." and images[1] is not None
    assert len(set(seen[:12])) >= 3  # the world's own documents differ
    counts = np.bincount([synthetic.CONVENTIONS.index(c) for c in seen], minlength=len(synthetic.CONVENTIONS))
    assert counts.min() >= 10, counts  # every convention, drawn evenly


# --- the few-shot task


@pytest.fixture(scope="module")
def tiny_config():
    from configs import tiny  # pylint: disable=g-import-not-at-top

    config = tiny.get_config()
    synthetic.ensure_data(config.data)  # get_config writes nothing; the tests below read the tokenizer file
    return config


def test_fewshot_task_answer_format_is_the_group_and_demos_share_it(tiny_config):
    items, support, skipped = load_task(TASKS["embedded_fewshot"], tiny_config, 35)
    assert len(items) == 35 and len(support) == 200 and not skipped
    of = _convention_of()
    for item in items + support:
        assert of[_signature(item.answers[0])] == item.meta["group"]
        assert len(item.images) == 1 and isinstance(item.images[0], bytes)
    assert {i.meta["group"] for i in items} == set(synthetic.CONVENTIONS)
    # 0-shot: the same picture content gets a different answer in every group
    objs = [{"colour": "red", "shape": "circle", "box": (2, 5, 20, 23)},
            {"colour": "blue", "shape": "square", "box": (40, 5, 58, 23)}]
    assert len({synthetic.convention_caption(objs, c) for c in synthetic.CONVENTIONS}) == len(synthetic.CONVENTIONS)
    mixed = 0
    for i, item in enumerate(items):
        demos = draw_demos(support, 4, 0, i, exclude=item.id, group=item.meta["group"])
        assert len(demos) == 4 and all(d.meta["group"] == item.meta["group"] for d in demos)
        assert all(of[_signature(d.answers[0])] == item.meta["group"] for d in demos)
        mixed += len({d.meta["group"] for d in draw_demos(support, 4, 0, i, exclude=item.id)}) > 1
    assert mixed > len(items) // 2  # without the group the demonstrations would mix conventions


# --- text-rich pages


def _degrade(lum, side, res):
    """The page as an encoder at `res` px sees it (the project's bicubic resize), back at page size to read."""
    if res is None:
        return lum
    small = images_lib.resize(Image.fromarray(lum), res, res)
    return np.asarray(small.resize((side, side), Image.BILINEAR))


def read_page(data, page, res):
    """A template-matching OCR: each character cell (positions known) against the font's clean glyphs, by normalised
    cross-correlation of the ink. Returns the characters read, in order."""
    g = synthetic.glyphs(page["font_size"])
    lum = np.asarray(Image.open(io.BytesIO(data)).convert("L"))
    lum = _degrade(lum, page["side"], res).astype(np.float32)
    ink = np.clip(np.percentile(lum, 90) - lum, 0, None)
    templates = np.stack([g.masks[c].astype(np.float32).ravel() for c in synthetic.PAGE_ALPHABET])
    templates -= templates.mean(1, keepdims=True)
    templates /= np.linalg.norm(templates, axis=1, keepdims=True)
    out = []
    for _, x, y in page["chars"]:
        v = ink[y:y + g.height, x:x + g.pitch].ravel()
        v = v - v.mean()
        out.append(synthetic.PAGE_ALPHABET[int(np.argmax(templates @ (v / (np.linalg.norm(v) + 1e-6))))])
    return "".join(out)


def test_page_text_is_legible_at_split_resolution_not_at_64px():
    rng = np.random.default_rng(11)
    chars, words = {}, {}
    for layout, side in itertools.product(synthetic.PAGE_LAYOUTS, synthetic.PAGE_SIZES):
        data, page = synthetic.page_image(rng, layout, side)
        assert Image.open(io.BytesIO(data)).size == (side, side)
        truth = "".join(c for c, _, _ in page["chars"])
        assert truth == "".join(" ".join(page["lines"]).split())  # every character drawn, in reading order
        assert synthetic.page_text(page) == " , ".join(page["lines"]) + " ."  # the ocr_pages caption
        grid = images_lib.choose_grid(side, side, 64, 4, 9)  # configs/tiny.py's encoder, MM1.5 training grid
        split = grid[0] * 64
        assert grid == (3, 3) and split == 192
        for name, res in (("full", None), ("split", split), ("64px", 64)):
            got = read_page(data, page, res)
            chars.setdefault(name, []).extend(a == b for a, b in zip(got, truth))
            at = 0
            for w in " ".join(page["lines"]).split():
                words.setdefault(name, []).append(got[at:at + len(w)] == w)
                at += len(w)
    acc = {k: float(np.mean(v)) for k, v in chars.items()}
    word_acc = {k: float(np.mean(v)) for k, v in words.items()}
    chance = 1 / len(synthetic.PAGE_ALPHABET)
    # measured (seed 11: 15 pages, 373 characters, 132 words): characters 1.0 full / 0.976 split / 0.185 at 64 px
    # (chance 1/34; the commonest character 'a' is 7%), words 1.0 / 0.932 / 0.03
    assert acc["full"] >= 0.99 and word_acc["full"] >= 0.98, (acc, word_acc)
    assert acc["split"] >= 0.92 and word_acc["split"] >= 0.85, (acc, word_acc)
    assert acc["64px"] <= 0.3 and word_acc["64px"] <= 0.1 and chance < 0.05, (acc, word_acc)


def test_page_questions_are_answered_by_the_page():
    rng = np.random.default_rng(2)
    kinds = set()
    for _ in range(60):
        _, page = synthetic.page_image(rng)
        question, answer, kind = synthetic.page_question(rng, page)
        kinds.add((page["layout"], kind))
        words = answer[:-2].split()
        assert answer.endswith(" .") and all(w in " ".join(page["lines"]).split() for w in words), (question, page)
        if kind == "number_next_to":
            word = question.split()[-2]
            assert [word, words[0]] == next(r[:2] for r in page["rows"] if r[0] == word)
        if kind == "row":
            assert words == page["rows"][int(question.split()[-2]) - 1]
        if kind == "line":
            assert " ".join(words) == page["body"][int(question.split()[-2]) - 1]
    assert len(kinds) == 8, kinds  # table 3, document 3, sign 2


# --- caption quality: dense captions and alt text


def _parse_dense(caption):
    head, counts, body = re.fullmatch(r"(\w+) shapes? : (.*?) \. (.*) \.", caption).groups()
    per_shape = {}
    for part in re.split(r" , | and ", counts):
        n, shape = part.split()
        per_shape[shape.rstrip("s")] = synthetic.COUNTS.index(n)
    objects = []
    for part in body.split(" , "):
        _, colour, shape, *where = part.split()
        objects.append((colour, shape, " ".join(where)))
    return synthetic.COUNTS.index(head), per_shape, objects


def test_dense_captions_name_every_object_its_colour_position_and_count(world):
    rng = np.random.default_rng(3)
    for _ in range(40):
        data, objs = synthetic.scene_image(rng, int(rng.integers(2, 7)), 96)
        n, per_shape, described = _parse_dense(synthetic.dense_caption(objs))
        assert n == len(objs)
        assert per_shape == {s: k for s in synthetic.SHAPES if (k := sum(o["shape"] == s for o in objs))}
        assert described == [(o["colour"], o["shape"], o["position"]) for o in objs]
        pixels = np.asarray(Image.open(io.BytesIO(data)).convert("RGB")).astype(int)
        for o in objs:  # the named colour is drawn inside the named cell
            x1, y1, x2, y2 = o["box"]
            row, col = divmod(synthetic.POSITIONS.index(o["position"]), 3)
            assert col * 32 <= x1 and x2 < (col + 1) * 32 and row * 32 <= y1 and y2 < (row + 1) * 32
            cx, cy = (x1 + x2) // 2, (y1 + 2 * y2) // 3
            assert np.abs(pixels[cy, cx] - synthetic.COLOURS[o["colour"]]).max() < 60, o
    texts = _tar_texts(os.path.join(world, "dense_captions", "shard-00000.tar"))
    assert texts and all(_parse_dense(t)[0] >= 2 for t in texts)


def test_alt_text_is_short_and_noisy_at_the_stated_rates(world):
    rng = np.random.default_rng(4)
    kinds, complete, missing, wrong, lengths = [], 0, 0, 0, []
    n = 2000
    for _ in range(n):
        objs = [{"colour": str(rng.choice(list(synthetic.COLOURS))), "shape": str(rng.choice(synthetic.SHAPES))}
                for _ in range(int(rng.integers(1, 3)))]
        text, kind = synthetic.alt_text(rng, objs)
        kinds.append(kind)
        words = text.split()
        truth = [w for o in objs for w in (o["colour"], o["shape"])]
        named = [w for w in words if w in synthetic.COLOURS or w in synthetic.SHAPES]
        complete += named == truth
        missing += len(named) < len(truth)
        wrong += len(named) == len(truth) and named != truth
        lengths.append((len(words), len((synthetic.describe(objs) + " .").split())))
    rates = synthetic.ALT_NOISE
    assert complete / n == pytest.approx(rates["clean"], abs=0.04)
    assert missing / n == pytest.approx(rates["no_colour"] + rates["partial"] + rates["generic"], abs=0.04)
    assert wrong / n == pytest.approx(rates["wrong_colour"], abs=0.03)
    assert {k: kinds.count(k) / n for k in rates} == pytest.approx(rates, abs=0.03)
    alt, plain = np.mean(lengths, 0)
    assert alt < 0.6 * plain
    texts = _tar_texts(os.path.join(world, "alt_text", "shard-00000.tar"))
    captions = _tar_texts(os.path.join(world, "captions", "shard-00000.tar"))
    assert np.mean([len(t.split()) for t in texts]) < np.mean([len(t.split()) for t in captions])


# --- counting scenes, the SFT sources, the stages


def test_count_questions_match_the_scene():
    rng = np.random.default_rng(6)
    kinds = set()
    for _ in range(150):
        data, objs = synthetic.count_scene(rng)
        assert 3 <= len(objs) <= 8 and Image.open(io.BytesIO(data)).size[0] in (96, 128)
        question, answer, kind = synthetic.count_question(rng, objs)
        kinds.add(kind)
        if kind == "count":
            assert answer == f"{synthetic.COUNTS[len(objs)]} ."
        if kind == "count_shape":
            shape = question.split()[2].rstrip("s")
            assert answer == f"{synthetic.COUNTS[sum(o['shape'] == shape for o in objs)]} ."
        if kind == "position":
            at = [o for o in objs if f"what is {o['position']} ?" == question]
            assert answer == (f"{article(at[0]['colour'])} {at[0]['colour']} {at[0]['shape']} ." if at
                              else "nothing .")
    assert kinds == {"count", "count_shape", "count_colour", "position", "left_of", "above"}


def test_every_source_is_read_by_the_pipelines_readers(world):
    dc = synthetic.embedded_data_config("main", directory=world, max_images=8)
    assert [s["name"] for s in dc.sources] == list(synthetic.MIXTURES["main"])
    assert set(synthetic.MIXTURES["main"]) == set(synthetic.EMBEDDED_SOURCES)
    for src in dc.sources:
        reader = sources_lib.open_source(src)
        assert len(reader) >= 8, src["name"]
        build = examples_lib.ExampleBuilder(src, 0, dc, tokens_per_image=2, image_size=16, image_norm="siglip")
        for i in range(len(reader)):
            rec = reader[i]
            ex = build(rec)
            assert "skip" not in ex, (src["name"], ex)
            if src["kind"] == "sft":
                markers = sum(t["value"].count("<image>") for t in rec["conversations"])
                refs = rec.get("image", [])
                refs = refs if isinstance(refs, list) else [refs]
                clips = sum(t["value"].count("<video>") for t in rec["conversations"])
                assert clips == (1 if "video" in rec else 0), (src["name"], rec)
                assert len(ex["images"]) == markers + clips * dc.video.frames, (src["name"], rec)
                assert markers == len(refs), (src["name"], rec)
                assert ex["weights"].sum() > 0
    for name in ("doc_vqa", "count_vqa"):  # several questions about one picture, none asked twice
        for r in _json(os.path.join(world, "sft", f"{name}.json")):
            asked = [t["value"].replace("<image>\n", "") for t in r["conversations"][::2]]
            assert len(set(asked)) == len(asked) and r["conversations"][0]["value"].startswith("<image>\n"), r
    texts = _json(os.path.join(world, "sft", "text_dialogue.json"))
    assert all("image" not in r and len(r["conversations"]) >= 4 for r in texts)
    for r in _json(os.path.join(world, "sft", "distractors.json")):
        n = len(r["image"])
        assert re.fullmatch(" ".join(f"Image {j + 1}: <image>" for j in range(n)) + r"\. In Image \d, .* \?",
                            r["conversations"][0]["value"])


def test_stages_keep_main_and_add_cpt_and_the_sft_categories(world):
    main = config_lib.source_weights(synthetic.embedded_data_config("main", directory=world))
    assert {k: v for k, v in main.items() if v} == pytest.approx({"caption": .45, "interleaved": .37, "text": .08,
                                                                   "vqa": .10})
    pretrain = config_lib.source_weights(synthetic.embedded_data_config("pretrain", directory=world))
    assert pretrain == pytest.approx({"caption": .45, "interleaved": .45, "text": .10})
    study = config_lib.source_weights(synthetic.embedded_data_config(  # MM1's caption-quality ablation, in small
        "main", directory=world, weights="caption:0,alt_text:45,vqa:0"))
    assert {k: v for k, v in study.items() if v} == pytest.approx({"alt_text": .5, "interleaved": 37 / 90,
                                                                    "text": 8 / 90})
    cpt = config_lib.source_weights(synthetic.embedded_data_config("cpt", directory=world))
    assert cpt["ocr_pages"] == 1.0 and "dense_captions" in cpt
    sft = config_lib.source_weights(synthetic.embedded_data_config("sft", directory=world))
    assert set(sft) == {"vqa", "ocr", "grounding", *NEW_SFT} and min(sft.values()) > 0


def test_new_eval_tasks_load_with_the_tiny_config(tiny_config):
    tok = load_tokenizer(tiny_config.data.tokenizer)
    unk = tok.special["<unk>"]
    for name, fmt in (("embedded_fewshot", "caption"), ("embedded_docvqa", "vqa"), ("embedded_count", "vqa")):
        task = TASKS[name]
        assert task.kind == "embedded" and task.fmt == fmt
        items, support, _ = load_task(task, tiny_config, 12)
        assert len(items) == 12 and len(support) == 200
        assert len({i.id for i in items + support}) == 212
        for item in items:
            assert unk not in tok.encode(item.question + " " + item.answers[0]), item
            assert len(tok.encode(item.answers[0])) <= task.max_new_tokens
            images_lib.decode_image(item.images[0])
    docs, _, _ = load_task(TASKS["embedded_docvqa"], tiny_config, 30)
    assert {d.meta["layout"] for d in docs} == set(synthetic.PAGE_LAYOUTS)
    assert all(Image.open(io.BytesIO(d.images[0])).size[0] in synthetic.PAGE_SIZES for d in docs)
    assert TASKS["embedded_docvqa"].metrics == ("exact_match", "anls")
    assert TASKS["embedded_fewshot"].metrics == ("exact_match", "cider")
