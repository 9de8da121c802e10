"""MM1.5-UI's benchmarks: Ferret-UI's elementary tasks (and Taperception) read from records in Ferret-UI's release
format and scored on hand-computed cases.

Records are written with the field names of apple/ml-ferret ferretui/playground/sample_data/*.json (3c9e5c93: id,
image, image_h, image_w, conversations, box_x1y1x2y2, and model_UI.py's optional "label"), with our own values. The
question's box is written as model_UI.py writes it: "[x1, y1, x2, y2]" of int(v * 1000 / side). Scoring rules past
the prompt are our reading (scorers/ui.py says which and why); every IoU below is computed by hand in the comments.
"""
import json
import math

import pytest

from mm1_jax.eval.prompts import Item
from mm1_jax.eval.readers.ui import file_family, read_ferret_ui
from mm1_jax.eval.scorers import ui


def screen(folder, name="screen.png"):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(b"")  # readers check existence only
    return str(folder)


def write(path, records):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(records))
    return str(path)


def record(rid, question, boxes=None, answer=None, w=1170, h=2532, **more):
    turns = [{"from": "human", "value": "<image>\n" + question}]
    if answer is not None:
        turns.append({"from": "gpt", "value": answer})
    rec = {"id": rid, "image": "some/dir/screen.png", "image_h": h, "image_w": w, "conversations": turns}
    if boxes is not None:
        rec["box_x1y1x2y2"] = boxes
    rec.update(more)
    return rec


def reasons(skipped):
    return {s["id"]: s["reason"] for s in skipped}


# ================================================================================================ reader


def test_referring_records_read_as_model_ui_reads_them(tmp_path):
    images = screen(tmp_path / "images")
    ann = tmp_path / "ann"
    write(ann / "iphone" / "ocr_test.json", [
        # the gold text from the answer turn; the release's OCR example box
        record(0, "What text is displayed in the element <bbox_location0>?", [[[447, 273, 1054, 425]]],
               answer="Reminders"),
        # model_UI.py: "label" wins over the answer turn
        record(1, "What text is displayed in the element <bbox_location0>?", [[[445, 524, 692, 632]]],
               answer="ignored", label="Get"),
        # model_UI.py asks only the line after "<image>" (q.split('\n')[1])
        record(2, "What text is displayed in the element <bbox_location0>?\nBe brief.", [[[445, 524, 692, 632]]],
               answer="Get"),
    ])
    items, skipped = read_ferret_ui("ferret_ui", annotations=str(ann), images=images)
    assert skipped == []
    assert [it.id for it in items] == ["iphone/ocr_test:0", "iphone/ocr_test:1", "iphone/ocr_test:2"]
    # 447*1000/1170 = 382.05, 273*1000/2532 = 107.82, 1054*1000/1170 = 900.85, 425*1000/2532 = 167.85
    assert items[0].question == "What text is displayed in the element [382, 107, 900, 167]?"
    # 445000/1170 = 380.34, 524000/2532 = 206.95, 692000/1170 = 591.45, 632000/2532 = 249.60
    assert items[1].question == "What text is displayed in the element [380, 206, 591, 249]?"
    assert items[2].question == items[1].question
    assert items[0].answers == ["Reminders"] and items[1].answers == ["Get"]
    assert items[0].images == [str(tmp_path / "images" / "screen.png")]  # the basename, as model_UI.py joins it
    m = items[0].meta
    assert (m["family"], m["platform"], m["width"], m["height"]) == ("ocr", "iphone", 1170, 2532)
    assert m["region"] == [[447, 273, 1054, 425]]


def test_grounding_records_keep_the_answer_turns_boxes_and_labels(tmp_path):
    images = screen(tmp_path / "images")
    find = write(tmp_path / "android_find_text.json", [
        record("a", "Where is the text 'Sign in' located?", [[], [[100, 200, 300, 260]]], answer="<bbox_location0>",
               w=1000, h=2000)])
    listing = write(tmp_path / "android_widget_listing.json", [
        record("b", "List all the widgets on the screen.", [[], [[0, 0, 500, 100], [0, 100, 1000, 400]]],
               answer="UI widgets present in this screen include: Button <bbox_location0>, Text <bbox_location1>.",
               w=1000, h=2000)])
    icons = write(tmp_path / "android_find_icons.json", [
        record("c", "Where is the icon below <bbox_location0>?", [[[10, 20, 30, 40]], [[100, 200, 300, 260]]],
               answer="It is at <bbox_location0>.", w=1000, h=2000)])
    items, skipped = read_ferret_ui("ferret_ui", annotations=f"{find},{listing},{icons}", images=images)
    assert skipped == []
    by = {it.meta["family"]: it for it in items}
    assert by["find_text"].meta["boxes"] == [[100, 200, 300, 260]]
    assert by["find_text"].answers == ["[100, 100, 300, 130]"]  # y: 200*1000/2000, 260*1000/2000
    assert by["find_text"].meta["platform"] == "android"
    assert by["widget_listing"].meta["labels"] == ["Button", "Text"]
    assert by["widget_listing"].meta["boxes"] == [[0, 0, 500, 100], [0, 100, 1000, 400]]
    # a question's box and the answer's are different turns' (box_x1y1x2y2[0] and [1])
    assert by["find_icons"].question == "Where is the icon below [10, 10, 30, 20]?"
    icons = by["find_icons"].meta
    assert icons["region"] == [[10, 20, 30, 40]] and icons["boxes"] == [[100, 200, 300, 260]]
    assert by["find_icons"].answers == ["It is at [100, 100, 300, 130]."]


def test_a_box_outside_its_screen_and_broken_records_are_skipped_with_one_reason_each(tmp_path):
    images = screen(tmp_path / "images")
    path = write(tmp_path / "iphone_widget_classification.json", [
        record(0, "What's the UI type of the widget <bbox_location0>?", [[[10, 10, 50, 50]]], answer="Button"),
        record(1, "What's the UI type of the widget <bbox_location0>?", [[[10, 10, 1171, 50]]], answer="Button"),
        record(2, "What's the UI type of the widget <bbox_location0>?", [[[60, 10, 50, 50]]], answer="Button"),
        record(3, "What's the UI type of the widget <bbox_location0>?", [[[10, 10, 50]]], answer="Button"),
        record(4, "Is the widget <bbox_location0> left of <bbox_location1>?", [[[10, 10, 50, 50]]], answer="Yes"),
        record(5, "What's the UI type of this widget?", [[[10, 10, 50, 50]]], answer="Button"),
        record(6, "What's the UI type of the widget <bbox_location0>?", [[[10, 10, 50, 50]]]),
        {"id": 7, "image": "screen.png", "conversations": []},
        "not a record",
    ])
    items, skipped = read_ferret_ui("ferret_ui", annotations=path, images=images)
    assert [it.id for it in items] == ["iphone_widget_classification:0"]
    why = reasons(skipped)
    assert len(skipped) == 8
    assert "does not fit the 1170 x 2532 image" in why["1"] and "x1 <= x2" in why["2"]
    assert "not a box of 4 numbers" in why["3"]
    assert "<bbox_location1> has no box" in why["4"]
    assert "without <bbox_location0>" in why["5"]
    assert "has no answer" in why["6"]
    assert "lacks the field 'image_w'" in why["7"]
    assert "not a JSON object" in why["8"]


def test_platform_and_family_come_from_the_files_names_or_the_config(tmp_path):
    images = screen(tmp_path / "images")
    ann = tmp_path / "ann"
    q = "Identify the icon type of the widget <bbox_location0>?"
    write(ann / "ios" / "icon_recognition.json", [record(0, q, [[[1, 1, 9, 9]]], answer="launch")])
    write(ann / "android" / "icon_recognition.json", [record(0, q, [[[1, 1, 9, 9]]], answer="back")])
    write(ann / "mixed.json", [record(0, q, [[[1, 1, 9, 9]]], answer="Button", dataset="widget_classification"),
                               record(1, "Where is the search icon?", [[], [[1, 1, 9, 9]]], answer="<bbox_location0>",
                                      dataset="find_icons")])
    items, _ = read_ferret_ui("ferret_ui", annotations=str(ann), images=images, platform="iphone")
    assert sorted((it.meta["platform"], it.meta["family"], it.answers[0]) for it in items) == [
        ("iphone", "find_icons", "[0, 0, 7, 3]"), ("iphone", "icon_recognition", "launch"),
        ("iphone", "widget_classification", "Button")]  # 1*1000/1170 = 0.85, 9*1000/1170 = 7.69, 9*1000/2532 = 3.55
    items, _ = read_ferret_ui("ferret_ui", annotations=str(ann), images=images, families="icon_recognition")
    assert sorted(it.meta["platform"] for it in items) == ["android", "iphone"]
    with pytest.raises(ValueError, match="families names 'icons'"):
        read_ferret_ui("ferret_ui", annotations=str(ann), images=images, families="icons")
    with pytest.raises(ValueError, match="platform is 'ipad'"):
        read_ferret_ui("ferret_ui", annotations=str(ann), images=images, platform="ipad")
    # train.py's elif chain: widget_listing is tried before ocr, the advanced "function" files are named so too
    assert file_family("iphone/widget_listing_ocr_split.json") == "widget_listing"
    assert file_family("android/function_inference.json") == "function" and file_family("x.json") is None
    nameless = write(tmp_path / "eval_data_example_0_box_in.json", [record(0, q, [[[1, 1, 9, 9]]], answer="x")])
    with pytest.raises(ValueError, match="names no Ferret-UI task"):
        read_ferret_ui("ferret_ui", annotations=nameless, images=images)


def test_taperception_labels_are_read_as_tappable_or_not(tmp_path):
    images = screen(tmp_path / "images")
    q = "Is the element <bbox_location0> tappable?"
    path = write(tmp_path / "taperception_android.json", [
        record(0, q, [[[1, 1, 9, 9]]], answer="Yes, it is tappable."),
        record(1, q, [[[1, 1, 9, 9]]], answer="This element is not tappable."),
        record(2, q, [[[1, 1, 9, 9]]], answer="Maybe"),
    ])
    items, skipped = read_ferret_ui("ferret_ui", annotations=path, images=images)
    assert [it.meta["tappable"] for it in items] == [True, False]
    assert "reads as neither tappable nor not" in reasons(skipped)["2"]


# ================================================================================================ scorers


def item(family, platform="iphone", answers=(), boxes=(), labels=None, w=1000, h=1000, **meta):
    meta = {"family": family, "platform": platform, "width": w, "height": h, "boxes": [list(b) for b in boxes],
            "labels": labels if labels is not None else [""] * len(boxes), **meta}
    return Item(id=f"{family}_{platform}_{id(meta)}", images=[], answers=list(answers), meta=meta)


def test_referring_answers_are_exact_matches_after_case_space_and_a_final_period():
    assert ui.referring_correct("  button. ", ["Button"])
    assert ui.referring_correct("Reminders,  Don't forget", ["reminders, don't forget"])
    assert not ui.referring_correct("Buttons", ["Button"])
    assert not ui.referring_correct("It is a Button", ["Button"])


def px(*grid):
    """Gold pixels equal to what grid values read back as on a 1000-pixel side: g + 0.5 (coordinates.grid_to_pixels,
    the centre of the pixels written as g), so the IoUs below are those of the grid numbers."""
    return [g + 0.5 for g in grid]


def test_grounding_hits_at_iou_half_on_the_first_box_and_malformed_answers_are_misses():
    gold = [px(100, 100, 300, 300)]  # 1000 x 1000 screen
    # [150,100,350,300]: intersection 150*200 = 30000, union 40000 + 40000 - 30000 = 50000, IoU 0.6
    assert ui.grounding_hit("[150, 100, 350, 300]", gold, 1000, 1000)[0]
    # [200,100,400,300]: intersection 100*200 = 20000, union 60000, IoU 1/3
    assert not ui.grounding_hit("It is at [200, 100, 400, 300].", gold, 1000, 1000)[0]
    # only the first box counts: a miss first, then the exact box
    assert not ui.grounding_hit("[200, 100, 400, 300] or [100, 100, 300, 300]", gold, 1000, 1000)[0]
    # IoU exactly 0.5 is a hit: [0,0,100,50] in [0,0,100,100] = 5000 / 10000
    assert ui.grounding_hit("[0, 0, 100, 50]", [px(0, 0, 100, 100)], 1000, 1000)[0]
    # and a hair under it is not: [0,0,100,49] = 4900 / 10000
    assert not ui.grounding_hit("[0, 0, 100, 49]", [px(0, 0, 100, 100)], 1000, 1000)[0]
    for bad in ("at the top left", "[12, 34]", "[a, b, c, d]", "", "[1, 2, 3", "[300, 100, 100, 300]",
                "[10.5, 20, 30, 40]", "[0, 0, 1000, 1000]"):
        hit, box = ui.grounding_hit(bad, gold, 1000, 1000)
        assert not hit and box is None, bad


def test_widget_listing_is_f1_over_label_and_box_matches():
    gold = [("Button", px(0, 0, 100, 100)), ("Text", px(200, 200, 400, 300))]
    text = "Widgets: Button [0, 0, 100, 100], Text [500, 500, 600, 600], Icon [200, 200, 400, 300]"
    pairs = ui.answer_boxes(text, 1000, 1000)
    assert [label for label, _ in pairs] == ["Button", "Text", "Icon"]
    # Button matches; Text's box has IoU 0 with the gold Text; Icon has the Text box but not its label
    assert ui.listing_matches(pairs, gold) == 1
    precision, recall, f1 = ui.f1(1, 3, 2)
    assert (precision, recall) == (1 / 3, 1 / 2) and f1 == pytest.approx(2 * (1 / 6) / (5 / 6))  # 0.4
    # one predicted pair matches one gold pair only
    assert ui.listing_matches([("Button", px(0, 0, 100, 100))] * 2, gold) == 1
    # an unlabelled gold pair matches any label
    assert ui.listing_matches([("Picture", px(0, 0, 100, 100))], [("", px(0, 0, 100, 100))]) == 1
    assert ui.f1(0, 0, 2) == (0.0, 0.0, 0.0)


def test_the_aggregate_forms_the_papers_averages():
    items, preds = [], []
    # iPhone referring: OCR 1 of 2 (0.5), icon 1 of 1 (1.0), widget 0 of 1 (0.0) -> Ref-i 0.5
    for family, answer, pred in [("ocr", "Sign in", "sign in"), ("ocr", "Sign in", "Sign up"),
                                 ("icon_recognition", "launch", "Launch."),
                                 ("widget_classification", "Button", "Text")]:
        items.append(item(family, answers=[answer]))
        preds.append(pred)
    items.append(item("ocr", "android", answers=["OK"]))  # Android referring: 1 of 1 -> Ref-A 1.0
    preds.append("OK")
    # iPhone grounding: find_text 1 of 2 (IoU 0.6 hit, no box miss); widget_listing F1 0.4 (the case above)
    items += [item("find_text", boxes=[px(100, 100, 300, 300)]), item("find_text", boxes=[px(100, 100, 300, 300)])]
    preds += ["[150, 100, 350, 300]", "I cannot see it"]
    items.append(item("widget_listing", boxes=[px(0, 0, 100, 100), px(200, 200, 400, 300)], labels=["Button", "Text"]))
    preds.append("Button [0, 0, 100, 100], Text [500, 500, 600, 600], Icon [200, 200, 400, 300]")
    scores, rows, details = ui.ferret_ui_aggregate(items, preds, "official")
    assert scores["ocr_iphone"] == 0.5 and scores["icon_recognition_iphone"] == 1.0
    assert scores["ref_i"] == pytest.approx(0.5) and scores["ref_a"] == 1.0
    assert scores["widget_listing_iphone"] == pytest.approx(0.4)
    assert scores["grd_i"] == pytest.approx((0.5 + 0.4) / 2) and "grd_a" not in scores
    assert scores["accuracy"] == pytest.approx((0.5 + 1.0 + 0.0 + 1.0 + 0.5 + 0.4) / 6)
    assert details["no_box"] == 1 and details["convention"] == "official"
    assert [r["correct"] for r in rows[:4]] == [True, False, True, False]
    assert rows[-1] == {"matched": 1, "predicted": 3, "gold": 2, "correct": False}
    with pytest.raises(ValueError, match="2 items but 1 predictions"):
        ui.ferret_ui_aggregate(items[:2], preds[:1], "official")


def test_taperception_f1_counts_an_unread_answer_wrong_either_way():
    golds = [True, True, False, False, True]
    preds = ["Yes", "It is not tappable", "No", "hmm", "clickable"]
    items = [item("taperception", "android", tappable=g) for g in golds]
    scores, rows, details = ui.ferret_ui_aggregate(items, preds, "official")
    # TP 2 (items 0, 4), FN 1 (item 1), FP 1 (item 3: unread on a not-tappable box), TN 1 (item 2)
    assert scores["f1"] == pytest.approx(2 * (2 / 3) * (2 / 3) / (4 / 3))
    assert scores["taperception_android"] == scores["f1"] and "accuracy" not in scores
    assert details["unread_tappability"] == 1
    assert [r["correct"] for r in rows] == [True, False, True, False, True]


def test_reader_then_scorer_end_to_end(tmp_path):
    images = screen(tmp_path / "images")
    path = write(tmp_path / "iphone_find_widget.json", [
        record(0, "Where is the Games Tab located?", [[], [[0, 0, 500, 1000]]], answer="<bbox_location0>",
               w=1000, h=1000)])
    items, _ = read_ferret_ui("ferret_ui", annotations=path, images=images)
    # the answer's grid g reads back as pixel g + 0.5 on this 1000-pixel screen (coordinates.grid_to_pixels):
    # [0,0,499,999] -> [0.5,0.5,499.5,999.5] in gold [0,0,500,1000]: 499 * 999 / 500000 = 0.997 -> hit;
    # [0,0,400,500] -> [0.5,0.5,400.5,500.5]: 400 * 500 / (500000 + 200000 - 200000) = 0.4 -> miss
    assert ui.ferret_ui_aggregate(items, ["[0, 0, 499, 999]"], "official")[0]["grd_i"] == 1.0
    assert ui.ferret_ui_aggregate(items, ["[0, 0, 400, 500]"], "official")[0]["grd_i"] == 0.0
    scores, _, details = ui.ferret_ui_aggregate(items, ["[0, 0, 499, 999]"], "lmms_eval")
    assert math.isclose(scores["accuracy"], 1.0) and "convention_note" in details
