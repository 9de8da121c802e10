"""RefCOCO (Ferret boxes) scorer against hand-computed cases, each naming the rule of the official file it exercises.

official: apple/ml-ferret ferret/eval/eval_refexp.py (decode_bbox_from_caption, resize_bbox, summarize) with
MDETR's util/box_ops.py box_iou (float32; recomputed here with torch as the independent reference).
lmms_eval: lmms_eval/tasks/refcoco/utils_rec.py. vlmevalkit: vlmeval/dataset/refcoco.py RefCOCODataset."""
import math

import pytest

from mm1_jax.eval.scorers import refexp

BOXES = [
    # (generated text, first box in grid units or None, rule in eval_refexp.py decode_bbox_from_caption)
    ("[100, 200, 300, 400]", (100, 200, 300, 400), "a bracketed box"),
    ("The man on the left [12, 30, 400, 500].", (12, 30, 400, 500), "a box inside a sentence"),
    ("[1, 2, 3, 4] and [5, 6, 7, 8]", (1, 2, 3, 4), "two boxes: Precision@1 takes the first"),
    ("[1, 2, 3, 4, 5]", (1, 2, 3, 4), "numbers past the 4th are ignored"),
    ("[ 999 ,0, 999, 0 ]", (999, 0, 999, 0), "pieces read by int(), spaces allowed; 999 and 0"),
    ("[1, 2, 3]", None, "3 numbers: resize_bbox's IndexError (uncaught officially) -> no box"),
    ("[1, 2, 3] [5, 6, 7, 8]", None, "a 3-number box stops the decode (IndexError): no later box either"),
    ("[0.1, 0.2, 0.3, 0.4]", None, "int('0.1') fails: ValueError -> no box"),
    ("10, 20, 30, 40", None, "no brackets: no box"),
    ("[[1, 2, 3, 4]]", None, "second ']' reads an empty piece: ValueError drops every box"),
    ("[1, 2, 3, 4] [0.5]", None, "a later unreadable box drops the earlier good one"),
    ("the [red] car [1, 2, 3, 4]", None, "int('red') fails: no box"),
    ("[1, 2, 3, 4]. Then 5, 6, 7, 8]", None, "a ']' with no '[' reads from after the last delimiter: 'Then 5'"),
    ("", None, "empty"),
]


@pytest.mark.parametrize("text,expected,rule", BOXES)
def test_parse_ferret_box(text, expected, rule):
    assert refexp.parse_ferret_box(text) == expected, rule


def test_all_boxes_and_the_bracketless_second_box():
    """decode_bbox_from_caption: after ']' the next box text starts past the next delimiter, so '], 5, 6, 7, 8]'
    closes a second box with no '['."""
    assert refexp.parse_ferret_boxes("[1, 2, 3, 4] and [5, 6, 7, 8]") == [(1, 2, 3, 4), (5, 6, 7, 8)]
    assert refexp.parse_ferret_boxes("[1, 2, 3, 4], 5, 6, 7, 8]") == [(1, 2, 3, 4), (5, 6, 7, 8)]


@pytest.mark.parametrize("box,size,expected,rule", [
    ((999, 999, 0, 0), (640, 480), (639, 479, 0, 0), "int(999 * 0.64) = int(639.36): truncation, grid / 1000"),
    ((500, 500, 1000, 1000), (333, 427), (166, 213, 333, 427), "int(166.5) = 166, int(213.5) = 213"),
    ((999, 999, 999, 999), (427, 375), (426, 374, 426, 374), "int(426.573), int(374.625): never rounded up"),
])
def test_ferret_box_to_pixels(box, size, expected, rule):
    assert refexp.ferret_box_to_pixels(box, *size) == expected, rule


def _torch_iou(a, b):
    """MDETR util/box_ops.py box_iou, written with torch in float32 (as summarize feeds it), the reference."""
    torch = pytest.importorskip("torch")
    p, q = torch.tensor([a], dtype=torch.float32), torch.tensor([b], dtype=torch.float32)
    area = lambda t: (t[:, 2] - t[:, 0]) * (t[:, 3] - t[:, 1])  # noqa: E731
    wh = (torch.min(p[:, None, 2:], q[:, 2:]) - torch.max(p[:, None, :2], q[:, :2])).clamp(min=0)
    inter = wh[:, :, 0] * wh[:, :, 1]
    return float((inter / (area(p)[:, None] + area(q) - inter))[0, 0])


@pytest.mark.parametrize("a,b,expected,rule", [
    ((0, 0, 100, 10), (0, 0, 50, 10), 0.5, "IoU exactly 0.5, continuous (no +1 pixel)"),
    ((0, 0, 10, 10), (5, 5, 15, 15), 0.1428571492433548, "partial overlap: 25 / 175 rounded to float32"),
    ((0, 0, 0, 0), (10, 10, 20, 20), 0.0, "the no-box [0, 0, 0, 0] scores 0"),
    ((300, 300, 100, 100), (100, 100, 300, 300), 0.0, "inverted box: no intersection (area +40000, not clamped)"),
    ((0, 0, 50, 20), (7.1, 0.0, 32.1, 20.0), 0.4999999701976776, "float32: 0.5 in float64, below in float32"),
])
def test_box_iou_matches_mdetr_float32(a, b, expected, rule):
    assert refexp.box_iou(a, b) == expected, rule
    assert refexp.box_iou(a, b) == _torch_iou(a, b), rule


def test_zero_union_is_nan_and_a_miss():
    """MDETR box_iou: 0 / 0 -> nan, and nan >= 0.5 is False in summarize."""
    assert math.isnan(refexp.box_iou((0, 0, 0, 0), (5, 5, 5, 5)))
    assert not refexp.refexp_correct("[0, 0, 0, 0]", (5, 5, 5, 5), 1000, 1000)


GT = (64.0, 48.0, 320.0, 240.0)  # in a 640 x 480 image: grid (100, 100, 500, 500), fractions (0.1, 0.1, 0.5, 0.5)


@pytest.mark.parametrize("text,gt,size,pick,expected,rule", [
    ("[100, 100, 500, 500]", GT, (640, 480), "first", True, "exact box: IoU 1"),
    ("It is at [100, 100, 500, 500].", GT, (640, 480), "first", True, "box inside a sentence"),
    ("no box here", GT, (640, 480), "first", False, "no box: [0, 0, 0, 0]"),
    ("no box here", (0.0, 0.0, 1000.0, 1000.0), (1000, 1000), "first", False, "no box is [0, 0, 0, 0], not the image"),
    ("[0, 0, 10, 10] [100, 100, 500, 500]", GT, (640, 480), "first", False, "Precision@1 scores the first box"),
    ("[0, 0, 10, 10] [100, 100, 500, 500]", GT, (640, 480), "upper_bound", True, "'upper bound': the best box"),
    ("[0, 0, 10, 10] [100, 100, 500, 500]", GT, (640, 480), "mean", False,
     "'mean': pixel boxes (0, 0, 6, 4), (64, 48, 320, 240) -> mean (32, 24, 163, 122): IoU 0.13"),
    ("[0.1, 0.1, 0.5, 0.5]", GT, (640, 480), "first", False, "fractions are not Ferret boxes"),
    ("[0, 0, 100, 10]", (0.0, 0.0, 50.0, 10.0), (1000, 1000), "first", True, "IoU exactly 0.5: >= hits"),
    ("[0, 0, 50, 20]", (7.1, 0.0, 32.1, 20.0), (1000, 1000), "first", False, "float32 IoU 0.49999997 misses"),
])
def test_refexp_correct_official(text, gt, size, pick, expected, rule):
    assert refexp.refexp_correct(text, gt, *size, pick=pick) is expected, rule


@pytest.mark.parametrize("text,lmms,vlm,rule", [
    ("[0.1, 0.1, 0.5, 0.5]", True, True, "fractions: both read [0, 1] boxes"),
    ("[0.1,0.1,0.5,0.5]", True, True, "no spaces: lmms-eval's ',\\s*' allows none"),
    ("[0.1 ,0.1, 0.5, 0.5]", False, True, "space before a comma: lmms-eval's regex misses, VLMEvalKit's takes it"),
    ("[100, 100, 500, 500]", False, True, "grid numbers: lmms-eval reads them as fractions; VLMEvalKit as 0-1000"),
    ("[64, 48, 320, 240]", False, False, "pixels <= 1000: VLMEvalKit takes them as a 0-1000 grid"),
    ("100 100 500 500", False, True, "no brackets: VLMEvalKit falls back to the first 4 numbers"),
    ("[-0.5, 0.1, 0.5, 0.5]", False, True, "VLMEvalKit clips to the image (x1 -> 0): IoU 0.8; lmms-eval: 0.4"),
    ("[0.5, 0.5, 0.1, 0.1]", False, True, "VLMEvalKit swaps inverted corners; lmms-eval: no intersection"),
])
def test_refexp_correct_other_conventions(text, lmms, vlm, rule):
    assert refexp.refexp_correct(text, GT, 640, 480, "lmms_eval") is lmms, rule
    assert refexp.refexp_correct(text, GT, 640, 480, "vlmevalkit") is vlm, rule


def test_unknown_convention_lists_the_known_ones():
    with pytest.raises(ValueError, match="official, lmms_eval, vlmevalkit"):
        refexp.refexp_correct("[1, 2, 3, 4]", GT, 640, 480, "ferret_v2")


def test_ferret_question():
    """ferret/eval/model_refcoco.py: question_prompt with the expression's commas removed (remove_punctuation)."""
    assert refexp.ferret_question("man, on the left ") == "What is the location of man on the left in the image?"
