"""The grain pipeline: batch contract, mixture shares, state restore, host shards, bad-record limits."""

import json

from absl import flags
import jax
import ml_collections
from ml_collections import config_flags
import numpy as np
import pytest

from mm1_jax.data import config as config_lib
from mm1_jax.data import pipeline
from mm1_jax.data import synthetic
from mm1_jax.data import tokenizer as tokenizer_lib

K, SIZE = 8, 32


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return synthetic.generate(str(tmp_path_factory.mktemp("world") / "w"), seed=0, scale=0.02)


def text_sources(tmp_path, names_weights, n=50, bad_lines=()):
    out = []
    for name, weight in names_weights:
        lines = [json.dumps({"text": f"a red circle has {i % 10} corners ."}) for i in range(n)] + list(bad_lines)
        (tmp_path / f"{name}.jsonl").write_text("\n".join(lines) + "\n")
        out.append(config_lib.source(name, "text", "jsonl", str(tmp_path / f"{name}.jsonl"), weight))
    return out


def build(dc, batch=2, seq_len=128, **kw):
    kw = dict(process_index=0, process_count=1) | kw
    return pipeline.build_pipeline(
        dc, seq_len=seq_len, global_batch_size=batch, tokens_per_image=K, image_size=SIZE, image_norm="clip", **kw
    )


def test_batch_contract_on_embedded_data(world):
    dc = synthetic.embedded_data_config(directory=world, max_images=6)
    it = build(dc, batch=3)
    tok = tokenizer_lib.load_tokenizer(dc.tokenizer)
    b = next(it)
    assert b["tokens"].shape == (3, 128) and b["images"].shape == (3, 6, SIZE, SIZE, 3)
    assert b["tokens"].dtype == np.int32 and b["loss_weights"].dtype == np.float32 and b["image_valid"].dtype == bool
    is_img = b["tokens"] == tok.image_id
    assert np.all(b["loss_weights"][b["targets"] == tok.image_id] == 0)
    np.testing.assert_array_equal(is_img.sum(-1), b["image_valid"].sum(-1) * K)
    for r in range(3):
        np.testing.assert_array_equal(b["image_token_index"][r][is_img[r]], np.arange(is_img[r].sum()))
    assert np.all(b["segment_ids"][b["tokens"] == tok.bos_id] > 0)
    assert np.mean(b["segment_ids"] > 0) > 0.8


def test_batches_carry_uint8_pixels_a_quarter_of_float32(world):
    """The pipeline's images are uint8 (the model normalises them on the device): 1 byte a value, a quarter of the
    float32 batches it carried before; placed on the trainer's batch sharding they keep dtype, shape and layout."""
    from mm1_jax.train import sharding  # the sharding the trainer puts batches on

    dc = synthetic.embedded_data_config(directory=world, max_images=6)
    b = next(build(dc, batch=8))
    assert b["images"].dtype == np.uint8 and b["images"].nbytes == 8 * 6 * SIZE * SIZE * 3
    assert b["images"][b["image_valid"]].max() > 0 and np.all(b["images"][~b["image_valid"]] == 0)
    mesh = sharding.make_mesh({"data": 2, "fsdp": 4})
    placed = jax.make_array_from_process_local_data(sharding.batch_sharding(mesh, 5), b["images"])
    assert placed.dtype == np.uint8 and placed.sharding == sharding.batch_sharding(mesh, 5)
    assert {s.data.nbytes for s in placed.addressable_shards} == {b["images"].nbytes // 8}
    np.testing.assert_array_equal(np.asarray(placed), b["images"])


def test_mixture_shares_within_one_percent(tmp_path):
    """Weights 45/45/10 over three sources whose texts differ (a circle, a square, a triangle): the examples in the
    packed batches themselves, each found by its segment and read back, come in those shares to 1%; the pipeline's
    own count agrees with what the batches hold."""
    marks = {"cap": "circle", "int": "square", "txt": "triangle"}
    sources = []
    for name, weight in (("cap", 45), ("int", 45), ("txt", 10)):
        lines = [json.dumps({"text": f"a red {marks[name]} has {i % 10} corners ."}) for i in range(50)]
        (tmp_path / f"{name}.jsonl").write_text("\n".join(lines) + "\n")
        sources.append(config_lib.source(name, "text", "jsonl", str(tmp_path / f"{name}.jsonl"), weight))
    dc = config_lib.get_data_config(tokenizer=str(tmp_path / "tok.json"), sources=sources)
    synthetic.build_tokenizer(tmp_path / "tok.json")
    tok = tokenizer_lib.load_tokenizer(dc.tokenizer)
    it = build(dc, batch=8, seq_len=512)
    seen = {name: 0 for name in marks}
    while sum(seen.values()) < 10_000:
        b = next(it)
        for tokens, segments in zip(b["tokens"], b["segment_ids"]):
            for segment in np.unique(segments[segments > 0]):
                words = tok.decode(tokens[segments == segment].tolist()).split()
                (name,) = [n for n, mark in marks.items() if mark in words]
                seen[name] += 1
    total = sum(seen.values())
    for name, want in (("cap", 0.45), ("int", 0.45), ("txt", 0.10)):
        assert abs(seen[name] / total - want) < 0.01, (name, seen)
    counted = it.stats()["examples"]  # examples taken from each source: those emitted, plus at most one carried
    assert all(0 <= counted[n] - seen[n] <= 1 for n in marks) and sum(counted.values()) - total <= 1, (counted, seen)


def test_restore_and_continue_equals_uninterrupted(world):
    dc = synthetic.embedded_data_config(directory=world, max_images=4)
    it = build(dc)
    for _ in range(3):
        next(it)
    saved = it.state_json()
    want = [next(it) for _ in range(4)]
    it2 = build(dc)
    it2.set_state_json(saved)
    for a, b in zip(want, [next(it2) for _ in range(4)]):
        assert a.keys() == b.keys()
        for k in a:
            np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    assert it2.stats() == it.stats()


@pytest.mark.slow
def test_grain_worker_gives_the_same_batches(world):
    dc = synthetic.embedded_data_config(directory=world, max_images=4)
    plain = build(dc)
    want = [next(plain) for _ in range(2)]
    dc.worker_count = 1
    got = build(dc)
    for a, b in zip(want, [next(got) for _ in range(2)]):
        np.testing.assert_array_equal(a["tokens"], b["tokens"])
        assert b["images"].dtype == np.uint8  # what crosses from the worker process
        np.testing.assert_array_equal(a["images"], b["images"])


def test_two_hosts_read_disjoint_shards_covering_all(tmp_path):
    src = text_sources(tmp_path, [("t", 1)], n=101)[0]
    dc = config_lib.get_data_config(sources=[src])
    seen = []
    for p in range(2):
        ds = pipeline.source_dataset(
            src, 0, dc, seed=0, process_index=p, process_count=2, builder=lambda r: r["__key__"]
        )
        seen.append([ds[i] for i in range(len(range(p, 101, 2)))])
    a, b = set(seen[0]), set(seen[1])
    assert len(a) == 51 and len(b) == 50 and not a & b and len(a | b) == 101


def test_host_batch_is_its_share(world):
    dc = synthetic.embedded_data_config(directory=world)
    b0 = next(build(dc, batch=4, process_index=0, process_count=2))
    b1 = next(build(dc, batch=4, process_index=1, process_count=2))
    assert b0["tokens"].shape == (2, 128) and not np.array_equal(b0["tokens"], b1["tokens"])


def test_bad_records_are_counted(tmp_path):
    synthetic.build_tokenizer(tmp_path / "tok.json")
    bad = ['{"text": ""}', '{"label": 3}', "{oops"]
    dc = config_lib.get_data_config(
        tokenizer=str(tmp_path / "tok.json"),
        max_error_rate=0.5,
        sources=text_sources(tmp_path, [("t", 1)], n=27, bad_lines=bad),
    )
    it = build(dc, seq_len=64)
    for _ in range(20):
        next(it)
    skips, ex = it.skip_counts(), it.stats()["examples"]["t"]
    assert set(skips) == {"empty_text", "wrong_schema", "bad_json"}
    assert abs(sum(skips.values()) / (sum(skips.values()) + ex) - 0.1) < 0.03


def test_error_rate_limit_stops_with_one_clear_message(tmp_path):
    synthetic.build_tokenizer(tmp_path / "tok.json")
    bad = ['{"text": ""}'] * 10
    dc = config_lib.get_data_config(
        tokenizer=str(tmp_path / "tok.json"),
        max_error_rate=0.05,
        min_records_for_rate=20,
        sources=text_sources(tmp_path, [("web", 1)], n=20, bad_lines=bad),
    )
    it = build(dc, seq_len=64)
    with pytest.raises(pipeline.DataError, match=r"Data source 'web': \d+ of \d+ records were bad .*web.jsonl:byte"):
        for _ in range(50):
            next(it)


def test_all_bad_source_never_hangs(tmp_path):
    synthetic.build_tokenizer(tmp_path / "tok.json")
    dc = config_lib.get_data_config(
        tokenizer=str(tmp_path / "tok.json"),
        max_error_rate=1.0,
        sources=text_sources(tmp_path, [("junk", 1)], n=0, bad_lines=['{"x": 1}'] * 5),
    )
    it = build(dc, seq_len=64)
    it._it.error_check.max_consecutive = 100
    with pytest.raises(pipeline.DataError, match="'junk': 100 of 100 records were bad"):
        next(it)


# --- data.weights: the data-mix ablations by source name (MM1 arXiv 2403.09611, sec. 3.3), weight 0 included


@pytest.mark.parametrize(
    "spec, want",
    [
        ("caption:66,interleaved:33,text:0", {"caption": 2 / 3, "interleaved": 1 / 3, "text": 0.0}),
        ("caption:0,interleaved:1,text:1", {"caption": 0.0, "interleaved": 0.5, "text": 0.5}),
        ("text:0", {"caption": 0.5, "interleaved": 0.5, "text": 0.0}),  # unnamed sources keep their weight (45/45)
    ],
)
def test_weights_override_sets_observed_shares_and_zero_drops(world, spec, want):
    dc = synthetic.embedded_data_config(directory=world, max_images=4, weights=spec)
    assert config_lib.source_weights(dc) == pytest.approx(want)
    it = build(dc, batch=4)
    while sum(it.stats()["examples"].values()) < 300:
        next(it)
    ex = it.stats()["examples"]
    assert set(ex) == set(want)  # a dropped source is still reported, with 0 examples
    total = sum(ex.values())
    for name, share in want.items():
        if share == 0:
            assert ex[name] == 0 and it.stats()["skipped_by_source"][name] == 0, (name, ex)
        else:
            assert abs(ex[name] / total - share) < 0.02, (name, ex)


def test_zero_weight_source_is_never_opened_and_resume_is_exact(world, monkeypatch):
    dc = synthetic.embedded_data_config(directory=world, max_images=4, weights="interleaved:0")
    dc.sources = [dict(s, path="/nonexistent/*.parquet") if s["name"] == "interleaved" else s for s in dc.sources]
    opened = []
    real_open = pipeline.sources_lib.open_source
    monkeypatch.setattr(pipeline.sources_lib, "open_source", lambda src: opened.append(src["name"]) or real_open(src))
    it = build(dc)
    assert opened == ["caption", "text"]
    for _ in range(3):
        next(it)
    saved = it.state_json()
    want = [next(it) for _ in range(3)]
    it2 = build(dc)
    it2.set_state_json(saved)
    for a, b in zip(want, [next(it2) for _ in range(3)]):
        for k in a:
            np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    assert it2.stats() == it.stats() and it.stats()["examples"]["interleaved"] == 0
    # meta_source_id keeps each source's index in `sources` (text is 2), never the dropped one's (1)
    assert set(np.unique(np.concatenate([b["meta_source_id"].ravel() for b in want]))) <= {-1, 0, 2}


@pytest.mark.parametrize(
    "spec, match",
    [
        ("caption:1,images:2", r"data.weights='caption:1,images:2': 'images' is not a source; the sources are "
                               r"caption, interleaved, text\."),
        ("caption=1", r"data.weights='caption=1': item 'caption=1' is not name:number"),
        ("caption:lots", r"data.weights='caption:lots': item 'caption:lots' is not name:number"),
        (":3", r"data.weights=':3': item ':3' is not name:number"),
        ("text:-1", r"data.weights='text:-1': the weight of 'text' is -1; it must be >= 0\."),
        ("caption:0,interleaved:0,text:0", r"data.weights='caption:0,interleaved:0,text:0': every source has weight 0"),
        ("caption:0,caption:1", r"data.weights='caption:0,caption:1': 'caption' is given more than once\."),
    ],
)
def test_bad_weights_stop_before_any_file_is_opened(spec, match, monkeypatch, tmp_path):
    # paths that do not exist: the message must come from the weights check, before anything is opened or read
    sources = [config_lib.source(n, k, f, str(tmp_path / "absent" / n), 1)
               for n, k, f in (("caption", "caption", "wds"), ("interleaved", "interleaved", "parquet"),
                               ("text", "text", "jsonl"))]
    dc = config_lib.get_data_config(sources=sources, tokenizer=str(tmp_path / "absent.json"), weights=spec)
    monkeypatch.setattr(pipeline.sources_lib, "open_source", lambda src: pytest.fail("opened a source"))
    with pytest.raises(ValueError, match=match):
        config_lib.source_weights(dc)
    with pytest.raises(ValueError, match=match):
        build(dc)


def test_all_source_weights_zero_without_override(tmp_path):
    dc = config_lib.get_data_config(sources=[config_lib.source("a", "text", "jsonl", "x", 0)])
    with pytest.raises(ValueError, match="Data config: every source has weight 0"):
        config_lib.source_weights(dc)
    dc.sources = [config_lib.source("a", "text", "jsonl", "x", -2)]
    with pytest.raises(ValueError, match=r"Data source 'a': weight must be >= 0, got -2\.0\."):
        config_lib.source_weights(dc)


def test_weights_from_the_command_line():
    """`sources` is a list the command line cannot change; `--config.data.weights` is how a run changes the mix."""
    config = ml_collections.ConfigDict()
    config.data = config_lib.get_data_config(
        sources=[config_lib.source(n, "text", "jsonl", "x", 1) for n in ("caption", "interleaved", "text")]
    )
    argv = ["prog", "--config.data.weights=caption:66,interleaved:33,text:0"]
    fv = flags.FlagValues()
    config_flags.DEFINE_config_dict("config", config, flag_values=fv, sys_argv=argv)
    fv(argv)
    want = {"caption": 2 / 3, "interleaved": 1 / 3, "text": 0}
    assert config_lib.source_weights(fv.config.data) == pytest.approx(want)
