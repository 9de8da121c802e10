"""MM1.5-UI's data side: coordinates as text (mm1_jax.data.coordinates), Ferret-UI's release records (format
ferret_ui_json), Ferret-UI's split (data.split.mode='ferret_ui') and configs/mm15_ui.py.

The references are the documented math, recomputed here in plain Python / numpy: apple/ml-ferret at 3c9e5c93,
ferretui/ferretui/train/train.py (regulate_box clamps x to [0, W-1]; ratio_w = 1000 * 1.0 / image_w; the text is
f'[{int(x1)}, {int(y1)}, {int(x2)}, {int(y2)}]'; a point is the box's centre), ferretui/ferretui/mm_utils.py
(process_anyres_image: squash to the grid, cut r x r patches, the global view squashed), MM1.5's dynamic splitting
(canvas n_h*r x n_w*r, the image scaled by min(n_w*r/W, n_h*r/H) at the top left).
"""
from __future__ import annotations

import io
import json
import math

import numpy as np
import pytest
from PIL import Image

from mm1_jax.data import config as config_lib
from mm1_jax.data import coordinates, sources, synthetic
from mm1_jax.data import examples as examples_lib
from mm1_jax.data import images as images_lib

RED, GREY = (255, 0, 0), (90, 90, 90)


def grid_of(v: float, side: float) -> int:
    """train.py: regulate_box then int(v * ratio), ratio = 1000 * 1.0 / side."""
    return int(max(0, min(v, side - 1)) * (1000 * 1.0 / side))


def box_grid(box, w, h):
    return [grid_of(box[0], w), grid_of(box[1], h), grid_of(box[2], w), grid_of(box[3], h)]


def screen(w: int, h: int, box) -> Image.Image:
    """A grey screen with a red widget covering pixels [x1, x2) x [y1, y2)."""
    a = np.empty((h, w, 3), np.uint8)
    a[:] = GREY
    a[box[1]:box[3], box[0]:box[2]] = RED
    return Image.fromarray(a)


def widget_in_crops(crops: np.ndarray, n_h: int, n_w: int, r: int, sx: float, sy: float):
    """The red widget found in the crops (row-major), mapped back to whole-screen pixels: crop (i, j)'s pixel (u, v)
    is canvas pixel (j*r + u, i*r + v), the screen scaled by (sx, sy) into the canvas. [x1, y1, x2, y2), or None."""
    xs, ys = [], []
    for k, crop in enumerate(crops):
        i, j = divmod(k, n_w)
        v, u = np.nonzero(np.all(crop == RED, axis=-1))
        xs += list((j * r + u) / sx)
        ys += list((i * r + v) / sy)
    if not xs:
        return None
    return [min(xs), min(ys), max(xs) + 1 / sx, max(ys) + 1 / sy]


# --- image -> crops -> text -> parsed answer -> the whole screen's box on the grid

R = 16  # crop size = encoder size: crops are cut exactly, no resampling inside a crop
CASES = [
    # name, (W, H), widget box, split mode, expected grid (n_h, n_w), scale (sx, sy) from the documented rule
    ("portrait whole", (32, 64), (5, 27, 20, 41), "none", None, None),
    ("landscape whole", (64, 32), (27, 5, 41, 20), "none", None, None),
    ("portrait mm1.5", (32, 64), (5, 27, 20, 41), "mm1.5", (4, 2), (1.0, 1.0)),  # 4x2 canvas = the screen
    ("landscape mm1.5", (48, 32), (10, 9, 40, 25), "mm1.5", (2, 3), (1.0, 1.0)),  # 2x3 canvas = the screen
    ("portrait mm1.5 padded", (32, 56), (3, 40, 31, 55), "mm1.5", (4, 2), (1.0, 1.0)),  # 8 px of padding below
    ("portrait ferret_ui", (16, 32), (2, 10, 14, 22), "ferret_ui", (2, 1), (1.0, 1.0)),  # top / bottom halves
    ("landscape ferret_ui", (32, 16), (10, 2, 22, 14), "ferret_ui", (1, 2), (1.0, 1.0)),  # left | right halves
]


@pytest.mark.parametrize("name, size, box, mode, grid, scale", CASES, ids=[c[0] for c in CASES])
def test_a_widget_seen_in_crops_is_written_and_read_on_the_whole_screens_grid(name, size, box, mode, grid, scale):
    w, h = size
    split = dict(config_lib.get_data_config().split, mode=mode, r=R, n_min=4, n_max=9)
    entries = examples_lib.split_entries(screen(w, h, box), split, R, "siglip")
    if mode == "none":
        seen = list(box)  # the whole screen squashed into one entry: the region is the record's, in pixels
        assert entries.grid is None and len(entries.pixels) == 1
    else:
        assert entries.grid == grid and len(entries.pixels) == grid[0] * grid[1] + 1  # crops + the global view
        seen = widget_in_crops(entries.pixels[:-1], *grid, R, *scale)
        assert seen == list(box), f"{name}: the crops do not hold the widget where the split rule puts it"
    # the model's answer, in the whole screen's coordinates whatever the split
    answer = f"The widget is at {coordinates.box_to_text(seen, w, h)}."
    expected = box_grid(box, w, h)
    assert answer == "The widget is at [{}, {}, {}, {}].".format(*expected)
    assert coordinates.find_coordinates(answer) == [tuple(expected)]
    (parsed,) = coordinates.parse_boxes(answer, w, h)
    assert parsed == tuple((g + 0.5) * side / 1000 for g, side in zip(expected, (w, h, w, h)))
    assert box_grid(parsed, w, h) == expected  # exactly on the grid again: the same text when written back
    assert all(abs(p - b) <= 1 + side / 1000 for p, b, side in zip(parsed, box, (w, h, w, h)))


@pytest.mark.parametrize("size, box, text, rule", [
    ((1170, 2532), (445, 524, 692, 632), "[380, 206, 591, 249]", "playground's first box on its 1170 x 2532 screen"),
    ((2532, 1170), (524, 445, 632, 692), "[206, 380, 249, 591]", "the same screen turned landscape"),
    ((1170, 2532), (0, 0, 1170, 2532), "[0, 0, 999, 999]", "the whole screen: x2 = W clamps to W - 1"),
    ((640, 480), (0, 0, 640, 480), "[0, 0, 998, 997]", "int(639 * 1000 / 640) = 998: a small image's last cell"),
    ((412, 900), (103, 0, 206, 10), "[249, 0, 499, 11]", "float64 int(103 * (1000 / 412)) = 249, not 250"),
])
def test_box_text_follows_the_release_arithmetic(size, box, text, rule):
    w, h = size
    assert coordinates.box_to_text(box, w, h) == text == "[{}, {}, {}, {}]".format(*box_grid(box, w, h)), rule


def test_a_point_is_the_clamped_boxs_centre():
    """train.py 'center': ratio * (x1 + x2) / 2.0 of the regulated box, truncated."""
    w, h = 1170, 2532
    for box in [(445, 524, 692, 632), (1035, 540, 1170, 622), (0, 2500, 3, 2532)]:
        cx = (max(0, min(box[0], w - 1)) + max(0, min(box[2], w - 1))) / 2.0
        cy = (max(0, min(box[1], h - 1)) + max(0, min(box[3], h - 1))) / 2.0
        expected = f"[{int(1000 * 1.0 / w * cx)}, {int(1000 * 1.0 / h * cy)}]"
        assert coordinates.point_to_text(coordinates.box_center(box, w, h), w, h) == expected
        (point,) = coordinates.parse_points(f"tap {expected}", w, h)
        assert coordinates.point_to_text(point, w, h) == expected


# --- reading answers: every box found, a malformed one a miss


@pytest.mark.parametrize("answer, found", [
    ("[10, 20, 30, 40]", [(10, 20, 30, 40)]),
    ("A [10, 20, 30, 40] B [1, 2, 3] C [50, 60, 70, 80] D [5, 6]", [(10, 20, 30, 40), None, (50, 60, 70, 80), (5, 6)]),
    ("[0.1, 0.2, 0.3, 0.4]", [None]),  # fractions, not the grid
    ("[10, 20, 5, 30]", [None]),  # x2 < x1
    ("[0, 0, 1000, 10]", [None]),  # off the 0-999 grid
    ("[-1, 0, 5, 5]", [None]),
    ("[1, 2, 3, 4, 5]", [None]),
    ("the [OK] button", [None]),
    ("[[1, 2, 3, 4]]", [(1, 2, 3, 4)]),  # the innermost bracket
    ("[ 1,2 ,3, 4 ]", [(1, 2, 3, 4)]),
    ("]][[ [,] [] no boxes", [None, None]),
    ("", []),
])
def test_malformed_coordinates_are_misses(answer, found):
    assert coordinates.find_coordinates(answer) == found
    assert len(coordinates.parse_boxes(answer, 100, 200)) == sum(1 for f in found if f and len(f) == 4)
    assert len(coordinates.parse_points(answer, 100, 200)) == sum(1 for f in found if f and len(f) == 2)


# --- bad coordinates in a prompt (grid) or a box in pixels: one sentence naming it


@pytest.mark.parametrize("prompt, sentence", [
    ("What is at [0, 0, 1000, 10]?", ("the coordinates [0, 0, 1000, 10] in the prompt lie outside the 0-999 grid "
                                      "(1000); coordinates are relative to the whole image, 0-999 on each axis.")),
    ("What is at [30, 20, 10, 40]?", ("the box [30, 20, 10, 40] in the prompt has x2=10 < x1=30; a box is "
                                      "[x1, y1, x2, y2] with x1 <= x2 and y1 <= y2.")),
    ("What is at [1, 2, 3]?", ("the coordinates [1, 2, 3] in the prompt have 3 numbers; a box has 4 "
                               "[x1, y1, x2, y2] and a point 2 [x, y].")),
    ("Tap [0.5, 0.25].", ("the coordinates [0.5, 0.25] in the prompt are not integers; write a box as "
                          "[x1, y1, x2, y2] or a point as [x, y] on the 0-999 grid of the whole image.")),
])
def test_bad_prompt_coordinates_raise_one_sentence(prompt, sentence):
    with pytest.raises(ValueError) as raised:
        coordinates.check_prompt(prompt)
    assert str(raised.value) == sentence


def test_good_prompts_and_bad_pixel_boxes():
    coordinates.check_prompt("What does the [OK] button at [10, 20, 30, 40] do? Tap [5, 999].")
    with pytest.raises(ValueError, match=r"^box \[1, 2, 3\] is not 4 numbers \[x1, y1, x2, y2\] in pixels\.$"):
        coordinates.box_to_text([1, 2, 3], 100, 100)
    with pytest.raises(ValueError, match=r"^box \[30, 0, 10, 5\] \(pixels\) has x2=10 < x1=30; "):
        coordinates.box_to_text([30, 0, 10, 5], 100, 100)
    with pytest.raises(ValueError, match=r"^box \[0, 0, 120, 5\] \(pixels\) does not fit the 100 x 50 image: "
                                         r"x2=120 lies outside \[0, 100\]\.$"):
        coordinates.check_box([0, 0, 120, 5], 100, 50)
    coordinates.check_box([0, 0, 100, 50], 100, 50)  # touching the edges fits


# --- Ferret-UI's release records -> LLaVA records with the boxes as text


def _png(w: int, h: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (w, h), GREY).save(buf, format="PNG")
    return buf.getvalue()


W, H = 60, 130  # a portrait screen
RECORDS = [  # ferretui/playground/sample_data/train_data_example.json's fields, our values
    {"id": 0, "image": "shot.png", "image_h": H, "image_w": W,
     "conversations": [{"from": "human", "value": "<image>\nWhat's the UI type of the widget <bbox_location0>?"},
                       {"from": "gpt", "value": "Button"}],
     "box_x1y1x2y2": [[[12, 30, 40, 44]], []]},
    {"id": 1, "image": "shot.png", "image_h": H, "image_w": W,  # grounding: the answer holds the boxes
     "conversations": [{"from": "human", "value": "<image>\nList the widgets."},
                       {"from": "gpt", "value": "Text <bbox_location0>, Icon <bbox_location1>"}],
     "box_x1y1x2y2": [[], [[0, 0, 60, 10], [5, 100, 9, 130]]]},
    {"id": 2, "image": "shot.png", "image_h": H, "image_w": W,  # no box: passes through
     "conversations": [{"from": "human", "value": "<image>\nSummarize the screen."},
                       {"from": "gpt", "value": "A settings page."}]},
    {"id": 7, "image": "shot.png", "image_h": H, "image_w": W,  # a region asked about and answered
     "conversations": [{"from": "human", "value": "<image>\nWhat is near <bbox_location0>?"},
                       {"from": "gpt", "value": "The switch <bbox_location0>."}],
     "box_x1y1x2y2": [[[12, 30, 40, 44]], [[44, 30, 58, 44]]]},
    {"id": 3, "image": "shot.png", "image_h": H, "image_w": W,  # x2 = 61 > image_w: skipped, bad_box
     "conversations": [{"from": "human", "value": "<image>\nWhat is <bbox_location0>?"},
                       {"from": "gpt", "value": "Icon"}],
     "box_x1y1x2y2": [[[50, 0, 61, 5]], []]},
    {"id": 4, "image": "shot.png", "image_h": H, "image_w": W,  # the placeholder has no box: wrong_schema
     "conversations": [{"from": "human", "value": "<image>\nWhat is <bbox_location0>?"},
                       {"from": "gpt", "value": "Icon"}]},
    {"id": 5, "image": "shot.png", "image_h": H, "image_w": W,  # a box of 3 numbers: wrong_schema
     "conversations": [{"from": "human", "value": "<image>\nWhat is <bbox_location0>?"},
                       {"from": "gpt", "value": "Icon"}],
     "box_x1y1x2y2": [[[1, 2, 3]], []]},
    {"id": 6, "image": "shot.png", "image_h": H, "image_w": W,  # inverted: bad_box
     "conversations": [{"from": "human", "value": "<image>\nWhat is <bbox_location0>?"},
                       {"from": "gpt", "value": "Icon"}],
     "box_x1y1x2y2": [[[30, 0, 10, 5]], []]},
]


def test_ferret_ui_records_become_llava_records_with_whole_screen_coordinates(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "shot.png").write_bytes(_png(W, H))
    (tmp_path / "iphone_ocr_train.json").write_text(json.dumps(RECORDS))
    src = sources.open_source(config_lib.source("ui", "sft", "ferret_ui_json", str(tmp_path / "*_train.json"), 1.0,
                                                image_root=str(tmp_path / "images")))
    assert len(src) == len(RECORDS)
    recs = [src[i] for i in range(len(src))]

    key = "iphone_ocr_train.json#0"
    assert recs[0]["__key__"] == key and recs[0]["image"] == "shot.png"
    box = [12, 30, 40, 44]
    as_box = "[{}, {}, {}, {}]".format(*box_grid(box, W, H))  # [200, 230, 666, 338]
    as_point = f"[{int(1000 * 1.0 / W * (12 + 40) / 2.0)}, {int(1000 * 1.0 / H * (30 + 44) / 2.0)}]"
    asked = sources.ferret_ui_point_turn(key, 0)
    assert recs[0]["conversations"][0]["value"] == f"<image>\nWhat's the UI type of the widget " \
                                                   f"{as_point if asked else as_box}?"
    assert recs[0]["conversations"][1] == {"from": "gpt", "value": "Button"}
    # an answer's regions are always boxes; the whole-width box clamps x2 to W - 1 (regulate_box)
    assert recs[1]["conversations"][1]["value"] == "Text [{}, {}, {}, {}], Icon [{}, {}, {}, {}]".format(
        *box_grid([0, 0, 60, 10], W, H), *box_grid([5, 100, 9, 130], W, H))
    assert recs[1]["conversations"][1]["value"] == "Text [0, 0, 983, 76], Icon [83, 769, 150, 992]"
    assert recs[2]["conversations"] == RECORDS[2]["conversations"]
    # human turns: boxes or points, about half each (the release's random.choice, fixed per record and turn)
    picks = [sources.ferret_ui_point_turn(f"f.json#{i}", 0) for i in range(200)]
    assert 70 < sum(picks) < 130
    assert (asked, sources.ferret_ui_point_turn("iphone_ocr_train.json#7", 0)) == (False, True)  # one of each here
    assert [t["value"] for t in recs[3]["conversations"]] == [
        f"<image>\nWhat is near {as_point}?", "The switch [{}, {}, {}, {}].".format(*box_grid([44, 30, 58, 44], W, H))]
    assert recs[4]["__error__"] == "bad_box" and "x2=61 lies outside [0, 60]" in recs[4]["__detail__"]
    assert [r.get("__error__") for r in recs[5:]] == ["wrong_schema", "wrong_schema", "bad_box"]

    # through the example builder: good records make examples (the screen split as MM1.5 splits it), bad ones are
    # skipped and counted with the reader's reason and sentence
    tok = tmp_path / "tokenizer.json"
    synthetic.build_tokenizer(tok)
    dc = config_lib.get_data_config(tokenizer=str(tok))
    dc.split.update(mode="mm1.5", r=16, n_min=4, n_max=9)
    entry = config_lib.source("ui", "sft", "ferret_ui_json", "unused", 1.0, image_root=str(tmp_path / "images"))
    build = examples_lib.ExampleBuilder(entry, 0, dc, tokens_per_image=4, image_size=16, image_norm="siglip")
    made = [build(r) for r in recs]
    grid = images_lib.choose_grid(W, H, 16, 4, 9)
    assert [m["images"].shape[0] for m in made[:4]] == [grid[0] * grid[1] + 1] * 4
    assert [m.get("skip") for m in made[4:]] == ["bad_box", "wrong_schema", "wrong_schema", "bad_box"]
    assert "x2=61 lies outside [0, 60]" in made[4]["detail"]


# --- Ferret-UI's split against numpy


@pytest.mark.parametrize("w, h, r, size", [(24, 40, 16, 16), (40, 24, 16, 12), (30, 30, 10, 14), (17, 50, 8, 8)])
def test_ferret_ui_split_equals_the_rule_in_numpy(w, h, r, size):
    """mm_utils.py process_anyres_image (is_pad=False) on the paper's two grids: a landscape screen (w > h) is cut
    left | right, a portrait or square one top / bottom, after squashing it to the grid's canvas; each half resized to
    the encoder's size; the global view is the screen squashed to size x size."""
    rng = np.random.default_rng(w * 100 + h)
    img = Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
    n_h, n_w = (1, 2) if w > h else (2, 1)
    canvas = np.asarray(img.resize((n_w * r, n_h * r), Image.BICUBIC))
    halves = [canvas[:r, :r], canvas[:r, r:]] if n_w == 2 else [canvas[:r, :r], canvas[r:, :r]]
    halves = [h_ if r == size else np.asarray(Image.fromarray(h_).resize((size, size), Image.BICUBIC))
              for h_ in halves]
    overview = np.asarray(img.resize((size, size), Image.BICUBIC))
    split = dict(config_lib.get_data_config().split, mode="ferret_ui", r=0 if r == size else r, overview="before")
    entries = examples_lib.split_entries(img, split, size, "siglip")
    assert entries.grid == (n_h, n_w)
    np.testing.assert_array_equal(entries.pixels, np.stack(halves + [overview]))
    tok = _Tok()
    ordered, marks = examples_lib.arrange_entries(entries, split, tok)  # Ferret-UI: the global view first
    np.testing.assert_array_equal(ordered, np.stack([overview] + halves))
    assert marks == [[tok.overview_id], [tok.crop_id(1)], [tok.crop_id(2)]]


class _Tok:
    overview_id = 7

    @staticmethod
    def crop_id(i):
        return 100 + i


# --- configs/mm15_ui.py


def test_mm15_ui_config_validates_with_ferret_uis_hyperparameters():
    from configs import mm15_ui
    from mm1_jax.train.config import validate_config

    config = mm15_ui.get_config("decoder=1b")
    validate_config(config)
    t = config.train
    assert (t.global_batch_size, t.optimizer.lr, t.optimizer.name) == (128, 2e-5, "adamw")
    assert t.steps == math.ceil(3 * 801_000 / 128) == 18_774 and t.optimizer.warmup_steps == 564
    assert config.init.checkpoint.endswith("mm15_sft/checkpoints")
    names = [s["name"] for s in config.data.sources]
    assert {s["format"] for s in config.data.sources} == {"ferret_ui_json"}
    assert "iphone_find_widget" in names and "android_widget_listing" in names and "android_screen2words" in names
    assert "iphone_screen2words" not in names and "iphone_function" in names and len(names) == 25
    assert config.data.split.mode == "mm1.5"  # the SFT model's splitting
    config.data.split.update(mode="ferret_ui", overview="before")  # Ferret-UI's own, for comparison
    validate_config(config)
    config.data.split.mode = "ferret-ui"
    with pytest.raises(ValueError) as refused:
        validate_config(config)
    assert str(refused.value) == ("data.split.mode='ferret-ui' is not a splitting mode (did you mean \"ferret_ui\"?); "
                                  "the modes are none, mm1, mm1.5, ferret_ui.")


# --- the generate CLI: a region written into the prompt, the answer's boxes read back in pixels


def test_generate_writes_a_box_into_the_prompt_and_reads_the_answers_boxes_back(tmp_path, monkeypatch, capsys):
    """`python -m mm1_jax.generate --box=...` in this process (the generator stubbed: the model is not what is tested):
    the box is written at <box> as Ferret writes it (int(x * 1000 / W) of the whole screen), and the answer's box is
    printed back in pixels ((g + 0.5) * side / 1000)."""
    from PIL import Image

    from mm1_jax import generate
    from mm1_jax.runtime import generate as gen
    from tests.test_eval_benchmarks import byte_level_tokenizer

    screen = tmp_path / "screen.png"
    Image.new("RGB", (400, 800), (200, 200, 200)).save(screen)  # a portrait phone screen
    tokenizer = byte_level_tokenizer(tmp_path / "tokenizer.json")
    seen = {}

    def stream(model, params, request, sampling, **kw):
        seen["tokens"] = request.tokens
        for t in seen["tok"].encode("It is at [100, 200, 300, 400]."):
            yield t, 0.0

    from mm1_jax.data.tokenizer import load_tokenizer
    seen["tok"] = load_tokenizer(tokenizer)
    monkeypatch.setattr(gen, "stream", stream)
    argv = ["generate", "--config=configs/tiny.py", f"--config.data.tokenizer={tokenizer}",
            "--config.eval.box_format=ferret", f"--image={screen}", "--prompt=What is the widget <box>?",
            "--box=103,40,300,500"]
    generate.main(argv)
    out = capsys.readouterr().out.splitlines()
    prompt = seen["tok"].decode(seen["tokens"], mark_images=False)
    want = (f"[{int(103 * (1000 / 400))}, {int(40 * (1000 / 800))}, {int(300 * (1000 / 400))}, "
            f"{int(500 * (1000 / 800))}]")
    assert want == "[257, 50, 750, 625]" and f"What is the widget {want}?" in prompt
    assert out[0] == "It is at [100, 200, 300, 400]."
    assert out[1] == "box in pixels of the first image (400x800): [40.2, 160.4, 120.2, 320.4]"
    for extra, sentence in [
        (["--box=1,2,3"], "error: --box=1,2,3 is not four numbers x1,y1,x2,y2 (pixels of the first image)."),
        (["--box=10,10,500,20"], "error: --box=10,10,500,20 is not a box inside the first image (400x800 pixels, "
                                 "x1 < x2, y1 < y2)."),
        (["--prompt=What is at [5, 5, 1200, 9]?"], "error: the coordinates [5, 5, 1200, 9] in the prompt"),
    ]:
        with pytest.raises(SystemExit) as e:
            generate.main([a for a in argv if not a.startswith(("--box", "--prompt"))] + ["--prompt=What is it?"]
                          + extra)
        assert str(e.value).startswith(sentence), str(e.value)
