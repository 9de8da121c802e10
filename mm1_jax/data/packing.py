"""Packing: examples -> rows of seq_len tokens with segment ids, per-document positions and <= max_images images.

Next-fit with document cutting: examples fill the open row in stream order; a pre-training document that does not
fit is cut (never inside an image's slots, never past the row's image budget) and its rest starts the next row as
a new segment, so rows come out nearly full. SFT examples are never cut: they start a new row, and one longer than
seq_len is truncated (counted). Because only the example being cut is ever carried from one row to the next, the
iterator state is the parent's state before that example plus the offset into it.
"""

from typing import Any

import grain
import numpy as np


class RowBuilder:
    """One packed row under construction."""

    def __init__(self, seq_len: int, max_images: int, image_shape: tuple[int, ...], image_id: int):
        self.seq_len, self.max_images, self.image_id = seq_len, max_images, image_id
        self.tokens = np.zeros(seq_len, np.int32)
        self.targets = np.zeros(seq_len, np.int32)
        self.loss_weights = np.zeros(seq_len, np.float32)
        self.segment_ids = np.zeros(seq_len, np.int32)
        self.positions = np.zeros(seq_len, np.int32)
        self.source_id = np.full(seq_len, -1, np.int32)
        self.images = np.zeros((max_images,) + tuple(image_shape), np.uint8)  # the model normalises on the device
        self.length = self.n_images = self.n_segments = 0

    @property
    def space(self) -> int:
        return self.seq_len - self.length

    @property
    def image_space(self) -> int:
        return self.max_images - self.n_images

    def add(self, tokens: np.ndarray, weights: np.ndarray, images: np.ndarray, source: int):
        """Append one document (or piece of one) as a new segment."""
        n, a = len(tokens), self.length
        assert 0 < n <= self.space and len(images) <= self.image_space, (n, self.space, len(images))
        if len(images) and images.dtype != np.uint8:
            raise TypeError(f"example images must be uint8 pixels (the model normalises them), got {images.dtype}.")
        self.n_segments += 1
        self.tokens[a : a + n] = tokens
        self.targets[a : a + n - 1] = tokens[1:]
        self.loss_weights[a : a + n - 1] = weights[: n - 1]  # the last token of a segment predicts nothing.
        self.segment_ids[a : a + n] = self.n_segments
        self.positions[a : a + n] = np.arange(n)
        self.source_id[a : a + n] = source
        self.images[self.n_images : self.n_images + len(images)] = images
        self.length += n
        self.n_images += len(images)

    def finish(self) -> dict[str, np.ndarray]:
        """The row in the model's batch layout."""
        is_image = self.tokens == self.image_id
        is_image[self.length :] = False
        index = np.where(is_image, np.cumsum(is_image) - 1, -1).astype(np.int32)
        valid = np.arange(self.max_images) < self.n_images
        return {
            "tokens": self.tokens,
            "targets": self.targets,
            "loss_weights": self.loss_weights,
            "segment_ids": self.segment_ids,
            "positions": self.positions,
            "images": self.images,
            "image_valid": valid,
            "image_token_index": index,
            "meta_source_id": self.source_id,
        }


def image_starts(tokens: np.ndarray, image_id: int, k: int) -> np.ndarray:
    """Index of the first slot of each image entry (entries are runs of exactly k slots)."""
    slots = np.flatnonzero(tokens == image_id)
    return slots[::k]


def cut_point(starts: np.ndarray, k: int, offset: int, length: int, space: int, image_space: int) -> int:
    """Largest end c <= offset + space of a piece [offset, c) that holds whole images, at most image_space of them."""
    c = min(length, offset + space)
    inside = starts[(starts < c) & (starts + k > c)]
    if len(inside):
        c = int(inside[0])
    in_piece = starts[(starts >= offset) & (starts < c)]
    if len(in_piece) > image_space:
        c = int(in_piece[image_space])
    return c


class PackedBatches(grain.IterDataset):
    """Batches of packed rows from a stream of examples (and skip markers, which are counted here)."""

    def __init__(
        self,
        parent: grain.IterDataset,
        *,
        batch_size: int,
        seq_len: int,
        max_images: int,
        k: int,
        image_shape: tuple[int, ...],
        image_id: int,
        split_documents: bool = True,
        min_piece: int = 32,
        error_check=None,
    ):
        super().__init__(parent)
        self.opts = dict(
            batch_size=batch_size,
            seq_len=seq_len,
            max_images=max_images,
            k=k,
            image_shape=tuple(image_shape),
            image_id=image_id,
            split_documents=split_documents,
            min_piece=min_piece,
            error_check=error_check,
        )

    def __iter__(self) -> "PackedBatchIterator":
        return PackedBatchIterator(self._parent.__iter__(), **self.opts)


class PackedBatchIterator(grain.DatasetIterator):
    """State: parent state before the carried example, the offset into it, and the counters."""

    def __init__(
        self,
        parent,
        *,
        batch_size,
        seq_len,
        max_images,
        k,
        image_shape,
        image_id,
        split_documents,
        min_piece,
        error_check,
    ):
        super().__init__(parent)
        self.batch_size, self.seq_len, self.max_images, self.k = batch_size, seq_len, max_images, k
        self.image_shape, self.image_id = image_shape, image_id
        self.split_documents, self.min_piece, self.error_check = split_documents, min_piece, error_check
        self._carry, self._carry_state = None, None  # [example, offset], parent state before it
        self.counts = {
            "examples": {},
            "skipped": {},
            "skipped_by_source": {},
            "truncated": 0,
            "rows": 0,
            "tokens": 0,
            "images": 0,
            "samples": {},
        }

    def __next__(self) -> dict[str, np.ndarray]:
        rows = [self._next_row() for _ in range(self.batch_size)]
        return {key: np.stack([r[key] for r in rows]) for key in rows[0]}

    def _next_example(self):
        """The next good example from the parent, counting skip markers (which may stop the run)."""
        consecutive = 0
        while True:
            state = self._parent.get_state()
            ex = next(self._parent)
            src = str(ex["source"])
            if "skip" in ex:
                _bump(self.counts["skipped"], ex["skip"])
                _bump(self.counts["skipped_by_source"], src)
                self.counts["samples"].setdefault(src, f"{ex['key']} ({ex['skip']}: {ex.get('detail', '')})")
                consecutive += 1
            else:
                _bump(self.counts["examples"], src)
                consecutive = 0
            if self.error_check is not None:
                self.error_check(self.counts, int(src), consecutive)
            if "skip" not in ex:
                return ex, state

    def _next_row(self) -> dict[str, np.ndarray]:
        row = RowBuilder(self.seq_len, self.max_images, self.image_shape, self.image_id)
        while row.space > 0:
            if self._carry is None:
                try:
                    ex, self._carry_state = self._next_example()
                except StopIteration:  # a finite stream ends: its last partial row still comes out
                    if row.length == 0:
                        raise
                    break
                self._carry = [ex, 0]
            ex, offset = self._carry
            tokens, length = ex["tokens"], len(ex["tokens"])
            starts = image_starts(tokens, self.image_id, self.k)
            first_image = int(np.sum(starts < offset))
            c = cut_point(starts, self.k, offset, length, row.space, row.image_space)
            if c == length:  # the (rest of the) example fits whole
                self._add(row, ex, offset, c, first_image)
                self._carry = None
                continue
            can_cut = ex["splittable"] and self.split_documents
            if row.length == 0 and c > offset:  # nothing else could ever fit this row: cut or truncate here
                self._add(row, ex, offset, c, first_image)
                if can_cut:
                    self._carry[1] = c
                else:
                    self.counts["truncated"] += 1
                    self._carry = None
                break
            if can_cut and c - offset >= self.min_piece:
                self._add(row, ex, offset, c, first_image)
                self._carry[1] = c
            break
        self.counts["rows"] += 1
        self.counts["tokens"] += row.length
        self.counts["images"] += row.n_images
        return row.finish()

    def _add(self, row, ex, start, end, first_image):
        starts = image_starts(ex["tokens"], self.image_id, self.k)
        n_images = int(np.sum((starts >= start) & (starts < end)))
        row.add(
            ex["tokens"][start:end],
            ex["weights"][start:end],
            ex["images"][first_image : first_image + n_images],
            int(ex["source"]),
        )

    def get_state(self) -> dict[str, Any]:
        if self._carry is None:
            return {"parent": self._parent.get_state(), "offset": -1, "counts": _copy(self.counts)}
        return {"parent": self._carry_state, "offset": int(self._carry[1]), "counts": _copy(self.counts)}

    def set_state(self, state: dict[str, Any]):
        self._parent.set_state(state["parent"])
        self._carry, self._carry_state = None, None
        if state["offset"] >= 0:
            ex = next(self._parent)
            self._carry, self._carry_state = [ex, int(state["offset"])], state["parent"]
        self.counts = _copy(state["counts"])


def _bump(d: dict, key: str):
    d[key] = d.get(key, 0) + 1


def _copy(counts: dict) -> dict:
    return {k: dict(v) if isinstance(v, dict) else int(v) for k, v in counts.items()}
