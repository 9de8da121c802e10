"""The embedded dataset: deterministic, closed vocabulary, captions that match the pixels; the inspect command."""

import filecmp
import io
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from mm1_jax.data import synthetic
from mm1_jax.data import tokenizer as tokenizer_lib


def test_same_seed_same_bytes_other_seed_differs(tmp_path):
    a = synthetic.generate(str(tmp_path / "a"), seed=3, scale=0.005)
    b = synthetic.generate(str(tmp_path / "b"), seed=3, scale=0.005)
    c = synthetic.generate(str(tmp_path / "c"), seed=4, scale=0.005)
    files = sorted(os.path.relpath(os.path.join(d, f), a) for d, _, fs in os.walk(a) for f in fs)
    assert len(files) > 20
    _, mismatch, errors = filecmp.cmpfiles(a, b, files, shallow=False)
    assert not mismatch and not errors
    assert not filecmp.cmp(os.path.join(a, "sft", "vqa.json"), os.path.join(c, "sft", "vqa.json"), shallow=False)


def test_tokenizer_ids_are_fixed_and_vocabulary_closed(tmp_path):
    root = synthetic.generate(str(tmp_path / "w"), seed=0, scale=0.005)
    tok = tokenizer_lib.load_tokenizer(os.path.join(root, "tokenizer.json"))
    assert (tok.pad_id, tok.bos_id, tok.eos_id, tok.image_id, tok.overview_id, tok.crop_id(1)) == (0, 1, 2, 4, 5, 6)
    # v5: + the videos' 8 words; v6: + the UI screens' 15 words and the numbers 100-999 of Ferret's grid
    assert tok.vocab_size == len(synthetic.vocabulary()) == 1194
    unk = tok.special["<unk>"]
    texts = [json.loads(l)["conversations"][1]["value"] for l in open(os.path.join(root, "sft", "grounding.jsonl"))]
    texts += [t["value"] for r in json.load(open(os.path.join(root, "sft", "vqa.json"))) for t in r["conversations"]]
    for t in texts:
        ids = tok.encode(t.replace("<image>", ""))
        assert unk not in ids, t
    assert tok.encode("<box> 3 , 40 </box>") == [22, tok.encode("3")[0], tok.encode(",")[0], tok.encode("40")[0], 23]


def test_shapes_are_where_and_what_the_text_says():
    rng = np.random.default_rng(0)
    for _ in range(20):
        data, objs = synthetic.shapes_image(rng, 2)
        pixels = np.asarray(Image.open(io.BytesIO(data)).convert("RGB")).astype(int)
        assert objs[0]["box"][0] < objs[1]["box"][0]  # listed left to right
        for o in objs:
            x1, y1, x2, y2 = o["box"]
            cx, cy = (x1 + x2) // 2, (y1 + 2 * y2) // 3  # inside circles, squares and triangles alike
            assert np.abs(pixels[cy, cx] - synthetic.COLOURS[o["colour"]]).max() < 40, o


def test_inspect_prints_shares_efficiency_and_rows(tmp_path):
    env = dict(os.environ, MM1_JAX_CACHE=str(tmp_path / "cache"))
    cmd = [
        sys.executable,
        "-m",
        "mm1_jax.data.inspect",
        "--config=tests/fixtures/data_tiny_config.py:0.01",
        "--batches=3",
        "--rows=1",
        f"--dump={tmp_path / 'dump'}",
        "--config.data.seq_len=128",
    ]
    out = subprocess.run(
        cmd, env=env, capture_output=True, text=True, check=True, cwd=os.path.dirname(os.path.dirname(__file__))
    ).stdout
    assert "packing efficiency" in out and "interleaved" in out and "row 0:" in out and "<image>" in out
    assert "seq_len 128" in out
    assert any(f.endswith(".png") for f in os.listdir(tmp_path / "dump"))
    # the shares table against the batches themselves: the same pipeline read here (4 rows x 3 batches), each packed
    # example found where its segment starts with <bos> (a document cut across rows goes on in the next row's first
    # segment, without one) and its source read from the row's per-token source ids
    from mm1_jax.data import config as config_lib
    from mm1_jax.data import pipeline as pipeline_lib
    from mm1_jax.models.inputs import input_spec
    from tests.fixtures import data_tiny_config

    os.environ["MM1_JAX_CACHE"], cache = str(tmp_path / "cache"), os.environ.get("MM1_JAX_CACHE")
    try:
        config = data_tiny_config.get_config("0.01")
    finally:
        os.environ.pop("MM1_JAX_CACHE") if cache is None else os.environ.update(MM1_JAX_CACHE=cache)
    config.data.seq_len = 128
    names = [src["name"] for src in config.data.sources]
    it = pipeline_lib.build_pipeline(config.data, global_batch_size=4, process_index=0, process_count=1,
                                     **input_spec(config.model, config.data).pipeline_fields())
    seen, bos = dict.fromkeys(names, 0), tokenizer_lib.load_tokenizer(config.data.tokenizer).bos_id
    for _ in range(3):
        b = next(it)
        for tokens, segments, sources in zip(b["tokens"], b["segment_ids"], b["meta_source_id"]):
            for segment in np.unique(segments[segments > 0]):
                if tokens[segments == segment][0] == bos:
                    seen[names[int(sources[segments == segment][0])]] += 1
    table = {w[0]: w[1:5] for w in map(str.split, out.splitlines()) if w[:1] and w[0] in names}
    weights = config_lib.source_weights(config.data)
    counted = {name: int(table[name][2]) for name in names}  # taken from each source: emitted, or carried (one)
    assert all(0 <= counted[n] - seen[n] <= 1 for n in names) and sum(counted.values()) - sum(seen.values()) <= 1, (
        counted, seen, out)
    for name in names:
        assert float(table[name][0]) == pytest.approx(weights[name], abs=5e-4), (name, out)
        assert float(table[name][1]) == pytest.approx(counted[name] / sum(counted.values()), abs=5e-4), (name, out)
    assert sum(seen.values()) >= 20 and sum(1 for n in names if seen[n]) >= 3, seen


def test_inspect_reports_command_line_weights_zero_included(tmp_path):
    env = dict(os.environ, MM1_JAX_CACHE=str(tmp_path / "cache"))
    cmd = [
        sys.executable,
        "-m",
        "mm1_jax.data.inspect",
        "--config=tests/fixtures/data_tiny_config.py:0.01",
        "--batches=3",
        "--rows=0",
        "--config.data.seq_len=128",
        "--config.data.weights=caption:1,interleaved:1,text:0",
    ]
    out = subprocess.run(
        cmd, env=env, capture_output=True, text=True, check=True, cwd=os.path.dirname(os.path.dirname(__file__))
    ).stdout
    rows = {w[0]: w[1:4] for w in map(str.split, out.splitlines()) if w[:1] in (["caption"], ["text"])}
    assert rows["text"] == ["0.000", "0.000", "0"], out  # weight, observed share, examples
    assert rows["caption"][0] == "0.500", out
