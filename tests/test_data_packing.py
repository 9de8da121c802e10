"""Packing: rows never mix documents, never exceed the image budget, and map image slots to the right images."""

import grain
import numpy as np
import pytest

from mm1_jax.data import packing

IMAGE_ID, K, T, M = 4, 3, 64, 4


def make_example(doc: int, n_text: int, n_images: int, splittable: bool = True, source: int = 0):
    """Tokens 1000*doc + position for text; an image j is K slots and its uint8 pixels say (doc, j, 0)."""
    tokens, pics = [], []
    per_gap = n_text // (n_images + 1)
    for j in range(n_images):
        tokens += [1000 * (doc + 1) + len(tokens) for _ in range(per_gap)]
        tokens += [IMAGE_ID] * K
        pics.append(np.broadcast_to(np.array([doc, j, 0], np.uint8), (2, 2, 3)))
    while len(tokens) < n_text + n_images * K:
        tokens.append(1000 * (doc + 1) + len(tokens))
    tokens = np.array(tokens, np.int32)
    weights = np.append((tokens[1:] != IMAGE_ID).astype(np.float32), 0.0)
    images = np.stack(pics) if pics else np.zeros((0, 2, 2, 3), np.uint8)
    return {"tokens": tokens, "weights": weights, "images": images, "source": source, "splittable": splittable}


def pack(examples, batch_size=1, batches=None, split=True):
    ds = grain.MapDataset.source(examples).to_iter_dataset()
    it = iter(
        packing.PackedBatches(
            ds,
            batch_size=batch_size,
            seq_len=T,
            max_images=M,
            k=K,
            image_shape=(2, 2, 3),
            image_id=IMAGE_ID,
            split_documents=split,
            min_piece=4,
        )
    )
    out = []
    try:
        while batches is None or len(out) < batches:
            out.append(next(it))
    except StopIteration:
        pass
    return out, it


def check_row(row):
    """Contract invariants of one row; returns the row's documents (doc ids) per segment."""
    tok, seg, pos, tgt, w = (row[k] for k in ("tokens", "segment_ids", "positions", "targets", "loss_weights"))
    docs = []
    for s in range(1, seg.max() + 1):
        idx = np.flatnonzero(seg == s)
        assert np.all(np.diff(idx) == 1)  # a segment is contiguous
        np.testing.assert_array_equal(pos[idx], np.arange(len(idx)))  # positions restart
        np.testing.assert_array_equal(tgt[idx[:-1]], tok[idx[1:]])  # targets stay inside the document
        assert tgt[idx[-1]] == 0 and w[idx[-1]] == 0
        text = tok[idx][tok[idx] != IMAGE_ID]
        assert len(set(text // 1000)) == 1  # one document per segment
        docs.append(int(text[0] // 1000 - 1))
    assert np.all(w[tgt == IMAGE_ID] == 0) and np.all(w[seg == 0] == 0) and np.all(tok[seg == 0] == 0)
    n_slots = int(np.sum(tok == IMAGE_ID))
    assert n_slots % K == 0 and n_slots // K == row["image_valid"].sum() <= M
    np.testing.assert_array_equal(row["image_token_index"][tok == IMAGE_ID], np.arange(n_slots))
    assert np.all(row["image_token_index"][tok != IMAGE_ID] == -1)
    assert np.all(row["images"][~row["image_valid"]] == 0)
    return docs


def test_rows_keep_documents_apart_and_images_in_order():
    rng = np.random.default_rng(0)
    exs = [make_example(d, int(rng.integers(4, 40)), int(rng.integers(0, 4))) for d in range(60)]
    batches, _ = pack(exs, batch_size=2, batches=12)
    for b in batches:
        for r in range(2):
            row = {k: v[r] for k, v in b.items()}
            check_row(row)
            # each image slot m*K+k sits right after text of the document whose image it shows
            for m in np.flatnonzero(row["image_valid"]):
                first_slot = np.flatnonzero(row["image_token_index"] == m * K)[0]
                doc = row["segment_ids"][first_slot]
                text = row["tokens"][(row["segment_ids"] == doc) & (row["tokens"] != IMAGE_ID)]
                assert int(row["images"][m][0, 0, 0]) == text[0] // 1000 - 1


def test_image_budget_limits_rows_and_cuts_before_images():
    exs = [make_example(d, 8, 3) for d in range(20)]  # 3 images each, budget 4 per row
    batches, _ = pack(exs, batches=10)
    for b in batches:
        row = {k: v[0] for k, v in b.items()}
        check_row(row)
        assert row["image_valid"].sum() <= M


def test_all_tokens_arrive_once_in_order():
    rng = np.random.default_rng(1)
    exs = [make_example(d, int(rng.integers(4, 100)), int(rng.integers(0, 3))) for d in range(40)]
    batches, _ = pack(exs)
    got = np.concatenate([b["tokens"][0][b["segment_ids"][0] > 0] for b in batches])
    want = np.concatenate([e["tokens"] for e in exs])
    np.testing.assert_array_equal(got, want)


def test_long_text_stream_packs_above_95_percent():
    rng = np.random.default_rng(2)
    exs = [make_example(d, int(rng.integers(5, 200)), 0) for d in range(200)]
    batches, _ = pack(exs, batches=50)
    seg = np.concatenate([b["segment_ids"] for b in batches])
    assert np.mean(seg > 0) >= 0.95


def test_sft_examples_are_never_cut():
    exs = [make_example(d, 30, 1, splittable=False) for d in range(20)]  # 33 tokens: one per row of 64
    batches, it = pack(exs, batches=10)
    for b in batches:
        row = {k: v[0] for k, v in b.items()}
        assert check_row(row) and row["segment_ids"].max() == 1 and np.sum(row["segment_ids"] > 0) == 33
    assert it.counts["truncated"] == 0


def test_overlong_sft_example_is_truncated_and_counted():
    exs = [make_example(0, 100, 0, splittable=False), make_example(1, 10, 0, splittable=False)]
    batches, it = pack(exs, batches=2)
    assert np.sum(batches[0]["segment_ids"][0] == 1) == T
    assert it.counts["truncated"] == 1
    assert batches[1]["tokens"][0][0] == 2000  # next row starts with document 1


def test_state_restores_mid_document():
    rng = np.random.default_rng(3)
    exs = [make_example(d, int(rng.integers(20, 150)), int(rng.integers(0, 3))) for d in range(80)]
    ds = grain.MapDataset.source(exs).to_iter_dataset()
    make = lambda: iter(
        packing.PackedBatches(
            ds,
            batch_size=2,
            seq_len=T,
            max_images=M,
            k=K,  # noqa: E731
            image_shape=(2, 2, 3),
            image_id=IMAGE_ID,
            min_piece=4,
        )
    )
    it = make()
    next(it)
    while it.get_state()["offset"] <= 0:  # stop where a document is half in the last row
        next(it)
    state = it.get_state()
    want = [next(it) for _ in range(4)]
    it2 = make()
    it2.set_state(state)
    for a, b in zip(want, [next(it2) for _ in range(4)]):
        for k in a:
            np.testing.assert_array_equal(a[k], b[k])


def test_cut_point_never_splits_an_image():
    starts = np.array([5, 20])
    assert packing.cut_point(starts, 3, 0, 30, space=6, image_space=4) == 5  # 6 would fall inside image 5..7
    assert packing.cut_point(starts, 3, 0, 30, space=8, image_space=4) == 8  # image 5..7 ends at 8: whole
    assert packing.cut_point(starts, 3, 0, 30, space=25, image_space=1) == 20  # budget: stop before image 2
    assert packing.cut_point(starts, 3, 0, 30, space=100, image_space=2) == 30


def test_float_images_are_refused():
    """Rows carry uint8 pixels (the model normalises them); a float example image is a contract error, not a cast."""
    ex = make_example(0, 8, 1)
    ex["images"] = ex["images"].astype(np.float32)
    with pytest.raises(TypeError, match="example images must be uint8 pixels .* got float32"):
        pack([ex], batches=1)
