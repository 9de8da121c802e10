"""Readers on fixtures written with each format's own writer, and records -> examples (incl. bad records)."""

import io
import json
import tarfile

from array_record.python import array_record_module
import numpy as np
from PIL import Image
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mm1_jax.data import config as config_lib
from mm1_jax.data import examples as examples_lib
from mm1_jax.data import sources
from mm1_jax.data import synthetic
from mm1_jax.data import tokenizer as tokenizer_lib

K, SIZE = 4, 16


def png(colour=(255, 0, 0)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (20, 10), colour).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def tok_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("tok") / "tokenizer.json"
    synthetic.build_tokenizer(path)
    return str(path)


def builder(tok_path, kind, **cfg):
    dc = config_lib.get_data_config(tokenizer=tok_path, **cfg)
    src = config_lib.source("s", kind, "jsonl", "unused", 1.0)
    return examples_lib.ExampleBuilder(src, 0, dc, tokens_per_image=K, image_size=SIZE, image_norm="siglip")


def words(tok_path, ex):
    return tokenizer_lib.load_tokenizer(tok_path).decode(ex["tokens"])


def test_webdataset_tar(tmp_path, tok_path):
    with tarfile.open(tmp_path / "a.tar", "w") as tar:
        for key, caption in (("x/000", "a red circle ."), ("x/001", "a blue square .")):
            for name, data in ((f"{key}.jpg", png()), (f"{key}.json", json.dumps({"caption": caption}).encode())):
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    src = sources.WebDatasetSource(sources.expand_paths(str(tmp_path / "*.tar"), "caps"))
    assert len(src) == 2
    rec = src[1]
    assert rec["__key__"] == "a.tar:x/001" and rec["json"]["caption"] == "a blue square ." and rec["jpg"] == png()
    ex = builder(tok_path, "caption")(rec)
    assert words(tok_path, ex) == "<bos> <image> a blue square . <eos>"
    assert ex["images"].shape == (1, SIZE, SIZE, 3)
    assert ex["images"].dtype == np.uint8  # the model normalises
    np.testing.assert_array_equal(ex["images"][0, 0, 0], [255, 0, 0])  # red
    # targets: no loss on predicting image slots, loss on every caption token and <eos>, none after the last token
    np.testing.assert_array_equal(ex["weights"], [0, 0, 0, 0, 1, 1, 1, 1, 1, 0])


def test_jsonl_text_and_mmc4_layout(tmp_path, tok_path):
    (tmp_path / "img.png").write_bytes(png((0, 0, 255)))
    lines = [
        {"text": "a square has 4 corners ."},
        {
            "text_list": ["here is a picture .", "it shows a blue square ."],
            "image_info": [{"image_name": "img.png", "matched_text_index": 1}],
        },
    ]
    (tmp_path / "d.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + "\n\n")
    src = sources.JsonlSource(sources.expand_paths(str(tmp_path / "d.jsonl"), "d"))
    assert len(src) == 2
    assert words(tok_path, builder(tok_path, "text")(src[0])) == "<bos> a square has 4 corners . <eos>"
    ex = builder(tok_path, "interleaved")(src[1])
    assert words(tok_path, ex) == "<bos> here is a picture . <image> it shows a blue square . <eos>"
    np.testing.assert_array_equal(ex["images"][0, 0, 0], [0, 0, 255])


def test_parquet_obelics_layout(tmp_path, tok_path):
    table = pa.table(
        {
            "texts": [["look at this one .", None, "here is a picture .", None]],
            "images": [[None, png(), None, png((0, 255, 0))]],
        }
    )
    pq.write_table(table, tmp_path / "o.parquet")
    src = sources.ParquetSource(sources.expand_paths(str(tmp_path / "o.parquet"), "o"))
    ex = builder(tok_path, "interleaved")(src[0])
    assert words(tok_path, ex) == "<bos> look at this one . <image> here is a picture . <image> <eos>"
    assert ex["images"].shape == (2, SIZE, SIZE, 3)
    # keep_first: with a budget of one image, the second image is dropped and all text kept
    ex1 = builder(tok_path, "interleaved", max_images=1)(src[0])
    assert words(tok_path, ex1) == "<bos> look at this one . <image> here is a picture . <eos>"
    assert ex1["images"].shape == (1, SIZE, SIZE, 3)


def test_arrayrecord_json_records(tmp_path, tok_path):
    writer = array_record_module.ArrayRecordWriter(str(tmp_path / "t.array_record"), "group_size:1")
    for text in ("a red circle .", "a green triangle ."):
        writer.write(json.dumps({"text": text}).encode())
    writer.close()
    src = sources.ArrayRecordSource(sources.expand_paths(str(tmp_path / "t.array_record"), "t"))
    assert len(src) == 2 and src[1]["text"] == "a green triangle ."


def test_llava_sft_loss_only_on_answers(tmp_path, tok_path):
    (tmp_path / "i.png").write_bytes(png())
    convs = [
        {
            "id": "q1",
            "image": "i.png",
            "conversations": [
                {"from": "human", "value": "<image>\nwhat colour is the circle ?"},
                {"from": "gpt", "value": "red ."},
            ],
        }
    ]
    (tmp_path / "s.json").write_text(json.dumps(convs))
    src = sources.LlavaJsonSource(sources.expand_paths(str(tmp_path / "s.json"), "s"))
    ex = builder(tok_path, "sft")(src[0])
    tok = tokenizer_lib.load_tokenizer(tok_path)
    assert words(tok_path, ex) == "<bos> User : <image> what colour is the circle ? Assistant : red . <eos>"
    learned = [tok.decode([t]) for t, w in zip(ex["tokens"][1:], ex["weights"][:-1]) if w > 0]
    assert learned == ["red", ".", "<eos>"]
    assert ex["splittable"] is False


def test_sft_dynamic_split_adds_markers(tmp_path, tok_path):
    (tmp_path / "w.png").write_bytes(png())  # 20x10 with r=10: 4-crop canvases hold it unscaled; grid 1x4
    rec = {
        "image": "w.png",
        "__folder__": str(tmp_path),
        "conversations": [{"from": "human", "value": "<image>"}, {"from": "gpt", "value": "red ."}],
    }
    ex = builder(tok_path, "sft", split=dict(config_lib.get_data_config().split, mode="mm1.5", r=10))(rec)
    text = words(tok_path, ex)
    assert text.startswith(
        "<bos> User : <crop_1> <image> <crop_2> <image> <crop_3> <image> <crop_4> <image> <overview> <image> Assistant"
    )
    assert ex["images"].shape == (5, SIZE, SIZE, 3)
    assert np.sum(ex["tokens"] == tokenizer_lib.load_tokenizer(tok_path).image_id) == 5 * K


@pytest.mark.parametrize("overview,markers,expected", [
    ("after", "index", "<crop_1> <image> <crop_2> <image> <crop_3> <image> <crop_4> <image> <overview> <image>"),
    ("before", "index", "<overview> <image> <crop_1> <image> <crop_2> <image> <crop_3> <image> <crop_4> <image>"),
    ("after", "none", "<image>"),  # five entries of K slots, back to back (`words` shows a run of slots once)
    ("after", "separators", "<image> , <image> . <image> , <image> : <image>"),
    ("before", "separators", "<image> : <image> , <image> . <image> , <image>"),
])
def test_split_overview_position_and_markers(tmp_path, tok_path, overview, markers, expected):
    """MM1.5 (arXiv 2409.20566) Table 3's options on a 2x2 grid: the overview after or before the crops; crops marked
    by index, by nothing, or by separators (overview ':', column ',', row -- '.' here); the pixels follow the order."""
    buf = io.BytesIO()
    pixels = np.zeros((20, 20, 3), np.uint8)
    pixels[:10, :10] = (255, 0, 0)  # the top-left crop is red, the rest black
    Image.fromarray(pixels).save(buf, format="PNG")
    (tmp_path / "q.png").write_bytes(buf.getvalue())
    rec = {"image": "q.png", "__folder__": str(tmp_path),
           "conversations": [{"from": "human", "value": "<image>"}, {"from": "gpt", "value": "red ."}]}
    split = dict(config_lib.get_data_config().split, mode="mm1.5", r=10, overview=overview, markers=markers,
                 separators=(":", ",", "."))
    ex = builder(tok_path, "sft", split=split)(rec)
    assert words(tok_path, ex).startswith(f"<bos> User : {expected} Assistant")
    assert np.sum(ex["tokens"] == tokenizer_lib.load_tokenizer(tok_path).image_id) == 5 * K
    red = ex["images"][..., 0].mean(axis=(1, 2)) > ex["images"][..., 1].mean(axis=(1, 2))  # reddish entries
    # the first crop is all red and the overview a quarter red; the other crops hold no red
    assert red.tolist() == ([True, True, False, False, False] if overview == "before" else
                            [True, False, False, False, True])


def test_split_options_are_checked(tok_path):
    base = config_lib.get_data_config().split
    with pytest.raises(ValueError, match="data.split.overview='middle' is not one of after, before"):
        builder(tok_path, "sft", split=dict(base, overview="middle"))
    with pytest.raises(ValueError, match="data.split.markers='tuple' is not one of index, none, separators"):
        builder(tok_path, "sft", split=dict(base, markers="tuple"))
    with pytest.raises(ValueError, match=r"data.split.separators=\(':', ',', ' '\) must be three texts .* no tokens "
                                         r"for \[' '\]"):
        builder(tok_path, "sft", split=dict(base, markers="separators", separators=(":", ",", " ")))
    with pytest.raises(ValueError, match=r"no tokens for \['/'\]"):  # '/' is not in the embedded vocabulary
        builder(tok_path, "sft", split=dict(base, markers="separators", separators=(":", ",", "/")))


@pytest.mark.parametrize(
    "rec,reason",
    [
        ({"jpg": b"\xff\xd8garbage", "txt": "a red circle ."}, "bad_image"),
        ({"image": "nowhere.png", "caption": "a red circle .", "__folder__": "/nonexistent"}, "missing_image"),
        ({"jpg": png(), "txt": "   "}, "empty_text"),
        ({"jpg": png(), "label": 3}, "wrong_schema"),
        ({"__error__": "bad_json", "__key__": "f.jsonl:byte0"}, "bad_json"),
    ],
)
def test_bad_caption_records_are_skipped_with_reason(tok_path, rec, reason):
    out = builder(tok_path, "caption")(rec)
    assert out["skip"] == reason and out["source"] == 0


def test_bad_json_line_and_missing_files(tmp_path):
    (tmp_path / "b.jsonl").write_text('{"text": "ok"}\n{not json\n[1, 2]\n')
    src = sources.JsonlSource(sources.expand_paths(str(tmp_path / "b.jsonl"), "b"))
    assert [src[i].get("__error__") for i in range(3)] == [None, "bad_json", "wrong_schema"]
    with pytest.raises(FileNotFoundError, match="Data source 'caps': no files match path '/nope/\\*.tar'"):
        sources.expand_paths("/nope/*.tar", "caps")


def test_config_rejects_unknown_kind():
    with pytest.raises(ValueError, match="kind must be one of .* got 'video'"):
        config_lib.source("v", "video", "jsonl", "x", 1)


def test_a_rewritten_shard_is_indexed_again(tmp_path):
    """A tar shard's member index is read once per process and reused by every source that opens it, until the file
    changes: written again with other members, the next source sees the new ones."""
    from etils import epath

    from mm1_jax.data import sources as sources_lib

    def write(keys):
        with tarfile.open(tmp_path / "shard.tar", "w") as tar:
            for key in keys:
                data = f"text of {key}".encode()
                info = tarfile.TarInfo(f"{key}.txt")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))

    write(["a", "b"])
    first = sources_lib.WebDatasetSource([epath.Path(tmp_path / "shard.tar")])
    hits = sources_lib._tar_members.cache_info().hits
    again = sources_lib.WebDatasetSource([epath.Path(tmp_path / "shard.tar")])
    assert sources_lib._tar_members.cache_info().hits == hits + 1 and len(again) == len(first) == 2
    write(["c", "d", "e"])
    rewritten = sources_lib.WebDatasetSource([epath.Path(tmp_path / "shard.tar")])
    assert [rewritten[i]["txt"] for i in range(len(rewritten))] == ["text of c", "text of d", "text of e"]
