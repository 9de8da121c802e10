"""The embedded world's UI screens: each widget's box is where its pixels are (worked out here from the rendered
image), the training records read through the real `ferret_ui_json` source with their boxes written as
`coordinates.box_to_text` writes them, the held-out files read through Ferret-UI's evaluation reader and score 1.0
answered right and 0.0 with a wrong box, every word is in the world's closed vocabulary, and all of it is
deterministic from the seed."""
import io
import json
import pathlib

import numpy as np
import pytest
from etils import epath
from PIL import Image

from mm1_jax.data import coordinates, sources, synthetic
from mm1_jax.data.synthetic import screens
from mm1_jax.data.tokenizer import load_tokenizer
from mm1_jax.eval import datasets, embedded
from mm1_jax.eval.readers.ui import read_ferret_ui
from mm1_jax.eval.scorers.ui import ferret_ui_aggregate


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    root = tmp_path_factory.mktemp("ui")
    train = synthetic.write_ui(root, np.random.default_rng([0, 1]), 40)
    held_out = synthetic.write_ui_eval(root, np.random.default_rng([0, 2]), 4)
    synthetic.build_tokenizer(root / "tokenizer.json")
    return root, train, held_out


def test_each_widget_box_is_where_its_pixels_are():
    rng = np.random.default_rng(3)
    for i in range(20):
        scr = screens.screen(rng, ("portrait", "landscape")[i % 2])
        pixels = screens.render_screen(scr)
        assert pixels.shape == (scr["height"], scr["width"], 3) == (*screens.SCREENS[scr["orientation"]][::-1], 3)
        ink = (pixels != screens.BACKGROUND).any(axis=-1)
        covered = np.zeros_like(ink)
        for w in scr["widgets"]:
            x1, y1, x2, y2 = w["box"]
            # the widget's pixels: the ink within one pixel around its box (neighbours keep a 2 px gap)
            window = ink[max(y1 - 1, 0):y2 + 1, max(x1 - 1, 0):x2 + 1]
            ys, xs = np.nonzero(window)
            found = (xs.min() + max(x1 - 1, 0), ys.min() + max(y1 - 1, 0),
                     xs.max() + 1 + max(x1 - 1, 0), ys.max() + 1 + max(y1 - 1, 0))  # x2, y2 exclusive
            assert found == (x1, y1, x2, y2), (w, found)
            coordinates.check_box(list(w["box"]), scr["width"], scr["height"])
            covered[y1:y2, x1:x2] = True
        assert not (ink & ~covered).any()  # no ink outside every widget's box
        words = [w["text"] for w in scr["widgets"] if w["text"]]
        icons = [w["icon"] for w in scr["widgets"] if w["icon"]]
        assert len(set(words)) == len(words) and len(set(icons)) == len(icons)


def test_every_screen_asks_something():
    assert not screens._draw_screen(np.random.default_rng(210), "landscape")["widgets"]  # no tab bar, rows empty
    scr = screens.screen(np.random.default_rng(210), "landscape")  # such a draw is drawn again
    assert scr["widgets"] and "widget_classification" in screens.question_families(scr)
    rng = np.random.default_rng(11)
    for i in range(200):
        assert screens.question_families(screens.screen(rng, ("portrait", "landscape")[i % 2]))


def test_records_read_through_the_ferret_ui_json_source(written):
    root, train, _ = written
    source = sources.FerretUIJsonSource([epath.Path(root / "sft" / "ui.json")])
    assert len(source) == len(train) == 40
    tok = load_tokenizer(str(root / "tokenizer.json"))
    unk = synthetic.vocabulary().index("<unk>")
    points = boxes = 0
    for raw, rec in zip(train, (source[i] for i in range(len(source)))):
        assert "__error__" not in rec, rec
        w, h = raw["image_w"], raw["image_h"]
        with Image.open(root / "sft" / raw["image"]) as img:
            assert img.size == (w, h)
        for k, (turn, out) in enumerate(zip(raw["conversations"], rec["conversations"])):
            regions = raw["box_x1y1x2y2"][k] if k < len(raw["box_x1y1x2y2"]) else []
            assert ("<bbox_location0>" in turn["value"]) == bool(regions)
            text = turn["value"]
            for box in regions:
                as_box = text.replace("<bbox_location0>", coordinates.box_to_text(box, w, h))
                as_point = text.replace("<bbox_location0>", coordinates.point_to_text(
                    coordinates.box_center(box, w, h), w, h))
                if k % 2:  # an answer turn: always the box
                    assert out["value"] == as_box
                else:  # a question: the box or its centre, as the release draws it
                    assert out["value"] in (as_box, as_point)
                points, boxes = points + (out["value"] == as_point), boxes + (out["value"] == as_box)
            ids = tok.encode(out["value"].replace("<image>", ""))
            assert unk not in ids, out["value"]  # the closed vocabulary holds every word and number
    assert points and boxes


def test_held_out_files_read_and_score_through_ferret_ui_reader(written):
    root, _, held_out = written
    assert sorted(held_out) == sorted(f"{p}/{f}_test.json" for p in ("iphone", "android")
                                      for f in screens.UI_QUESTIONS)
    folder = root / "eval" / "ui"
    for families, group in ((",".join(screens.REFERRING), "ref"), (",".join(screens.GROUNDING), "grd")):
        items, skipped = read_ferret_ui("t", annotations=str(folder), images=str(folder / "images"), families=families)
        assert not skipped and len(items) == 2 * 3 * 4
        for item in items:  # iphone: portrait screens, android: landscape
            assert (item.meta["width"] < item.meta["height"]) == (item.meta["platform"] == "iphone")
            assert "<bbox_location" not in item.question + item.answers[0]
        right, _, _ = ferret_ui_aggregate(items, [i.answers[0] for i in items])
        assert right["accuracy"] == right[f"{group}_i"] == right[f"{group}_a"] == 1.0
        if group == "ref":
            wrong = ["nothing ." for _ in items]
        else:  # each answer's box moved to a box of no overlap (the other half of the screen)
            wrong = []
            for item in items:
                x1, y1, x2, y2 = item.meta["boxes"][0]
                w, h = item.meta["width"], item.meta["height"]
                shift = (0, h / 2) if h > w else (w / 2, 0)
                moved = [(x1 + shift[0]) % w, (y1 + shift[1]) % h]
                box = [moved[0], moved[1], min(moved[0] + x2 - x1, w), min(moved[1] + y2 - y1, h)]
                wrong.append(coordinates.box_to_text(box, w, h) + " .")
        scores, rows, _ = ferret_ui_aggregate(items, wrong)
        assert scores["accuracy"] == 0.0 and not any(r["correct"] for r in rows)


def test_generation_is_deterministic(tmp_path):
    for name in ("a", "b", "c"):
        seed = 1 if name == "c" else 0
        synthetic.write_ui(tmp_path / name, np.random.default_rng([seed, 20]), 6)
        synthetic.write_ui_eval(tmp_path / name, np.random.default_rng([seed, 21]), 1)
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file())
    assert len(files) == 6 + 1 + 12 + 12  # screens, ui.json, 12 held-out files and their screens
    for f in files:
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes(), f
    assert (tmp_path / "a" / "sft" / "ui.json").read_bytes() != (tmp_path / "c" / "sft" / "ui.json").read_bytes()


def test_world_streams_and_registered_tasks():
    assert synthetic.STREAMS[-2:] == ("ui", "ui_eval")  # new sources at the end: the others' streams stay
    assert {"[", "]", "999", "button", "play"} <= set(synthetic.vocabulary())
    assert synthetic.vocab_size() == 1194
    for name, families in (("embedded_ui_ref", screens.REFERRING), ("embedded_ui_grd", screens.GROUNDING)):
        task = datasets.TASKS[name]
        items, skipped = task.reader(name)
        assert not skipped and len(items) == 2 * 3 * embedded.UI_ITEMS
        assert {i.meta["family"] for i in items} == set(families)
        scores, _, _ = datasets.KINDS[task.kind].aggregate(items, [i.answers[0] for i in items])
        assert scores["accuracy"] == 1.0


def test_png_bytes_hold_the_rendered_pixels():
    rng = np.random.default_rng(9)
    data, rec = screens.ui_record(rng, "x.png")
    again = screens.ui_record(np.random.default_rng(9), "x.png")
    assert again == (data, rec)
    pixels = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
    assert pixels.shape == (rec["image_h"], rec["image_w"], 3)
    assert json.loads(json.dumps(rec)) == rec and pathlib.PurePath(rec["image"]).suffix == ".png"
