"""Few-shot prompts (layout, reproducible demonstrations, truncation), readers and their errors, skipped items."""
import json

import numpy as np
import pytest

from mm1_jax.data import synthetic
from mm1_jax.data.tokenizer import load_tokenizer
from mm1_jax.eval import embedded, readers, tasks
from mm1_jax.eval.prompts import Item, build_prompt, draw_demos, item_parts

K = 4
SHAPE = (8, 8, 3)


@pytest.fixture(scope="module")
def tok():
    return load_tokenizer(synthetic.ensure_generated() + "/tokenizer.json")


def _pic(value):
    return np.full(SHAPE, value, np.float32)


def test_vqa_prompt_layout_and_left_truncation(tok):
    load = lambda ref: ref
    support = [Item(f"s{i}", [_pic(i)], "how many shapes are there ?", [f"{n} ."]) for i, n in
               enumerate(["one", "two", "one", "two"])]
    query = Item("q", [_pic(9)], "what colour is the circle ?", ["red ."])
    demos = [item_parts(d, "vqa", load, answer=d.answers[0]) for d in support]
    full = build_prompt(demos, item_parts(query, "vqa", load), tok, K, max_tokens=1000, max_images=8, image_shape=SHAPE)
    text = tok.decode(full.tokens)
    assert text.startswith("<bos> User : <image> how many shapes are there ? Assistant : one . <eos> User :")
    assert text.endswith("User : <image> what colour is the circle ? Assistant :")
    assert full.dropped_demos == 0 and len(full.images) == 5
    demo_len = len(tok.encode("User: how many shapes are there ? Assistant: one .")) + K + 1  # + <eos>
    # room for exactly two demonstrations: the two earliest go, the images stay aligned with their slots
    limit = len(full.tokens) - 2 * demo_len
    cut = build_prompt(demos, item_parts(query, "vqa", load), tok, K, max_tokens=limit, max_images=8,
                       image_shape=SHAPE)
    assert cut.dropped_demos == 2 and len(cut.tokens) == limit
    assert [float(p[0, 0, 0]) for p in cut.images] == [2.0, 3.0, 9.0]
    # the image budget also drops demonstrations
    few = build_prompt(demos, item_parts(query, "vqa", load), tok, K, max_tokens=1000, max_images=2,
                       image_shape=SHAPE)
    assert few.dropped_demos == 3 and [float(p[0, 0, 0]) for p in few.images] == [3.0, 9.0]
    with pytest.raises(ValueError, match="does not fit"):
        build_prompt(demos, item_parts(query, "vqa", load), tok, K, max_tokens=3, max_images=8, image_shape=SHAPE)


def test_caption_prompt_and_reproducible_demos(tok):
    support = embedded.captioning(20, "support")
    a = draw_demos(support, 4, seed=0, index=3)
    assert [d.id for d in a] == [d.id for d in draw_demos(support, 4, seed=0, index=3)]
    assert [d.id for d in a] != [d.id for d in draw_demos(support, 4, seed=0, index=4)]
    assert len({d.id for d in a}) == 4
    assert all(d.id != "s1" for d in draw_demos([Item(f"s{i}", []) for i in range(3)], 2, 0, 0, exclude="s1"))
    load = tasks.image_loader(16, "clip")
    parts = [item_parts(d, "caption", load, answer=d.answers[0]) for d in a]
    prompt = build_prompt(parts, item_parts(support[0], "caption", load), tok, K, max_tokens=500, max_images=8,
                          image_shape=(16, 16, 3))
    expected = "<bos> " + " ".join(f"<image> {d.answers[0]}" for d in a) + " <image>"
    assert tok.decode(prompt.tokens) == expected
    assert prompt.images.shape == (5, 16, 16, 3)
    # held-out captioning items differ from the support split
    assert embedded.captioning(3, "eval")[0].images[0] != support[0].images[0]


def test_missing_images_are_reported_and_skipped(tmp_path, tok):
    (tmp_path / "a.jpg").write_bytes(embedded.captioning(1, "eval")[0].images[0])
    ann = {"images": [{"id": 1, "file_name": "a.jpg"}, {"id": 2, "file_name": "gone.jpg"}],
           "annotations": [{"image_id": 1, "caption": "a red circle"}, {"image_id": 2, "caption": "x"}]}
    (tmp_path / "ann.json").write_text(json.dumps(ann))
    items, missing = readers.read_captions("coco_cap", annotations=str(tmp_path / "ann.json"), images=str(tmp_path))
    assert [i.id for i in items] == ["1"] and items[0].answers == ["a red circle"]
    assert missing[0]["id"] == "2" and "gone.jpg" in missing[0]["reason"]
    # an unreadable image found at prompt time: skipped with its reason, the run goes on
    (tmp_path / "bad.jpg").write_bytes(b"not a jpeg")
    ctx = tasks.Context(model=None, tok=tok, k=K, image_size=16, norm="clip", max_tokens=256, max_images=8)
    bad = Item("b", [str(tmp_path / "bad.jpg")], answers=["x"])
    report = tasks.evaluate(ctx, None, tasks.TASKS["embedded_cap"], [bad], [], shots=0)
    assert report["skipped"][0]["id"] == "b" and "decode" in report["skipped"][0]["reason"]
    assert report["predictions"] == []


def test_query_text_cut_before_its_image(tok):
    query = Item("q", [_pic(1)], "<image> what colour is the circle ?", ["red ."])
    long_prefix = Item("p", [_pic(1)], "here is a picture . look at this one . <image> what colour is it ?")
    load = lambda ref: ref
    full = build_prompt([], item_parts(long_prefix, "vqa", load), tok, K, max_tokens=100, max_images=8,
                        image_shape=SHAPE)
    cut = build_prompt([], item_parts(long_prefix, "vqa", load), tok, K, max_tokens=len(full.tokens) - 3,
                       max_images=8, image_shape=SHAPE)
    assert cut.cut_query_tokens == 3 and len(cut.tokens) == len(full.tokens) - 3
    assert tok.decode(cut.tokens).endswith("<image> what colour is it ? Assistant :")
    with pytest.raises(ValueError, match="does not fit"):
        build_prompt([], item_parts(query, "vqa", load), tok, K, max_tokens=8, max_images=8, image_shape=SHAPE)


def test_evaluate_scores_what_the_generator_says(tok):
    """The task plumbing (prompts -> generation -> decode -> metrics) with a stand-in generator that answers the
    first half of the questions right and the rest wrong."""
    items = embedded.vqa(synthetic.ensure_generated(), 8, "eval")
    support = embedded.vqa(synthetic.ensure_generated(), 20, "support")
    seen = []

    def fake_generator(params, requests, sampling):
        seen.extend(requests)
        out = []
        for n, _ in enumerate(requests):
            answer = items[n].answers[0] if n < 4 else "purple triangle ."
            out.append((tok.encode(answer.rstrip(" .")), [0.0]))
        return out

    ctx = tasks.Context(model=None, tok=tok, k=K, image_size=16, norm="clip", max_tokens=256, max_images=8)
    ctx.generator = lambda batch_size: fake_generator
    report = tasks.evaluate(ctx, None, tasks.TASKS["embedded_vqa"], items, support, shots=2)
    assert report["scores"]["vqa_accuracy"] == pytest.approx(0.5)
    assert report["scores"]["exact_match"] == pytest.approx(0.5)
    assert len(seen) == 8 and all(len(r.images) == 3 for r in seen)  # 2 demonstrations + the query
    assert report["truncated"] == 0 and not report["skipped"]
    assert report["predictions"][0]["prediction"] == items[0].answers[0].rstrip(" .")


def test_annotation_tasks_read_config_eval(tmp_path):
    """Each task finds its files through config.eval.<task> (what --config.eval.<task>.<field> sets); a missing file,
    an unknown field or task is named before training starts; a config file can add a dataset of a known kind."""
    from configs import tiny
    from mm1_jax.train.config import validate_train_config

    (tmp_path / "a.jpg").write_bytes(embedded.captioning(1, "eval")[0].images[0])
    ann = {"images": [{"id": 1, "file_name": "a.jpg"}], "annotations": [{"image_id": 1, "caption": "a red circle"}]}
    (tmp_path / "ann.json").write_text(json.dumps(ann))
    config = tiny.get_config()
    config.eval.nocaps.annotations, config.eval.nocaps.images = str(tmp_path / "ann.json"), str(tmp_path)
    items, support, missing = tasks.load_task(tasks.TASKS["nocaps"], config, 5)
    assert [i.answers for i in items] == [["a red circle"]] and not missing
    config.train.update(eval_every=10, eval_tasks=("nocaps",))
    validate_train_config(config)
    config.eval.nocaps.images = str(tmp_path / "nowhere")
    with pytest.raises(ValueError, match=r"config.eval.nocaps.images='.*nowhere' does not exist \(needed by eval "
                                         r"task 'nocaps'\)"):
        validate_train_config(config)
    config.eval.nocaps.images = ""
    with pytest.raises(ValueError, match=r"eval task 'nocaps' needs config.eval.nocaps.images; it is unset"):
        validate_train_config(config)
    config.eval.nocaps.images = str(tmp_path)
    config.eval.nocaps.anotations = "typo"
    with pytest.raises(ValueError, match="eval.nocaps.anotations is not a field of a captions task"):
        validate_train_config(config)
    del config.eval.nocaps["anotations"]
    config.train.eval_tasks = ("nocap",)
    with pytest.raises(ValueError, match="train.eval_tasks: eval task 'nocap' does not exist"):
        validate_train_config(config)
    # a dataset the config adds, of a known kind: several caption sets in one run
    config.eval.flickr = dict(kind="captions", annotations=str(tmp_path / "ann.json"), images=str(tmp_path))
    config.train.eval_tasks = ("nocaps", "flickr")
    validate_train_config(config)
    flickr = tasks.datasets.task_for("flickr", config.eval)
    assert (flickr.kind, flickr.fmt, flickr.metrics) == ("captions", "caption", ("cider",))
    assert [i.id for i in tasks.load_task(flickr, config, 5)[0]] == ["1"]
    config.eval.bad = dict(kind="poems", annotations="x")
    with pytest.raises(ValueError, match="config.eval.bad.kind='poems' is not one of captions, vqa"):
        validate_train_config(config)


def test_evaluation_splits_images_as_training_did(tok):
    """A model trained on split images is scored with them: the eval prompt lays an image out exactly as a training
    example does (same entries, same markers), with its own grid bounds (eval.split_n_min / n_max) and a way out
    (eval.split_mode='none')."""
    from mm1_jax.data import config as data_config
    from mm1_jax.data import examples

    config = data_config.get_data_config(tokenizer=synthetic.ensure_generated() + "/tokenizer.json")
    config.split.update(mode="mm1.5", r=32, n_min=4, n_max=4, kinds=("caption",))
    split = tasks.eval_split(_Config(data=config, eval={}))
    item = embedded.captioning(1, "eval")[0]  # a 64 px picture: 2x2 crops of 32 px + the overview
    load = tasks.image_loader(16, "clip", split)
    prompt = build_prompt([], item_parts(item, "caption", load), tok, K, max_tokens=1000, max_images=8,
                          image_shape=(16, 16, 3), split=split)
    markers = [tok.crop_id(i) for i in (1, 2, 3, 4)] + [tok.overview_id]
    assert [t for t in prompt.tokens if t in markers] == markers and prompt.images.shape == (5, 16, 16, 3)
    builder = examples.ExampleBuilder(data_config.source("c", "caption", "wds", "x", 1), 0, config,
                                      tokens_per_image=K, image_size=16, image_norm="clip")
    trained = builder({"jpg": item.images[0], "txt": "a caption"})
    n = len(prompt.tokens)
    np.testing.assert_array_equal(trained["tokens"][:n], prompt.tokens)  # <bos>, markers and slots alike
    np.testing.assert_array_equal(trained["images"], prompt.images)
    wider = tasks.eval_split(_Config(data=config, eval={"split_n_min": 1, "split_n_max": 1}))
    assert (wider["n_min"], wider["n_max"], wider["mode"]) == (1, 1, "mm1.5")
    one = build_prompt([], item_parts(item, "caption", tasks.image_loader(16, "clip", wider)), tok, K,
                       max_tokens=1000, max_images=8, image_shape=(16, 16, 3), split=wider)
    assert one.images.shape[0] == 1 and not any(t in markers for t in one.tokens)  # a 1x1 grid: no crops
    assert tasks.eval_split(_Config(data=config, eval={"split_mode": "none"})) is None


class _Config(dict):
    """The two sections eval_split reads, as attributes and with .get (like a ConfigDict)."""

    def __getattr__(self, name):
        return self[name]
