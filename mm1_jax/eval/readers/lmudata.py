"""VLMEvalKit's LMUData TSV files (MME.tsv, POPE.tsv, MMMU_DEV_VAL.tsv, OCRBench.tsv, tablevqa-bench.tsv, ...): a
header row, one question a row, images as base64 in the "image" column.

How VLMEvalKit reads the image column (open-compass/VLMEvalKit vlmeval/dataset/image_base.py `ImageBaseDataset.
__init__` / `dump_image` and vlmeval/smp/misc.py `toliststr`, commit e8e78f05): a cell of at most 64 characters is
another row's index whose image(s) it shares; a cell "[...]" is a Python list literal of base64 strings (several
images, in order: MMMU's <image 1>, <image 2>, ...); any other cell is one base64 image.
"""
from __future__ import annotations

import ast
import base64
import binascii

from collections.abc import Callable

from mm1_jax.eval.prompts import Item
from mm1_jax.eval.readers.common import Collect, Skip, fail, read_tsv

_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


class LmuTable:
    """The rows of an LMUData TSV with the columns it must have; `cell` and `images` read one row."""

    def __init__(self, task: str, keyword: str, path: str, required: tuple[str, ...], what: str):
        self.task, self.path = task, path
        self.header, self.rows = read_tsv(task, keyword, path)
        self.col = {name: j for j, name in enumerate(self.header)}
        missing = [name for name in required if name not in self.col]
        if missing:
            raise fail(task, path, f"expected {what} with the columns {', '.join(required)}; it lacks "
                                   f"{', '.join(repr(m) for m in missing)} (found {', '.join(self.header[:16])})")
        self._encoded: dict[str, str] = {}
        if "image" in self.col:
            for _, row in self.rows:
                image = self.cell(row, "image")
                if image and len(image) > 64:
                    self._encoded[self.cell(row, "index")] = image
        self._decoded: dict[str, bytes] = {}

    def has(self, name: str) -> bool:
        return name in self.col

    def cell(self, row: list[str], name: str) -> str:
        """The row's stripped cell of column `name` ("" when the column or the cell is absent)."""
        return row[self.col[name]].strip() if name in self.col and self.col[name] < len(row) else ""

    def check_width(self, row: list[str]) -> None:
        if len(row) != len(self.header):
            raise Skip(f"has {len(row)} cells, the header {len(self.header)}")

    def image_key(self, row: list[str]) -> str:
        """The index of the row that holds this row's image (the row's own index when it holds it)."""
        cell = self.cell(row, "image")
        if not cell:
            raise Skip("has no image")
        if len(cell) <= 64:
            if cell not in self._encoded:
                raise Skip(f"image refers to row index {cell}, which has no image")
            return cell
        return self.cell(row, "index")

    def image(self, row: list[str]) -> bytes:
        """The row's one image; Skip when the cell lists several."""
        images = self.images(row)
        if len(images) != 1:
            raise Skip(f"has {len(images)} images; this benchmark's questions have one")
        return images[0]

    def options(self, row: list[str]) -> list[str]:
        """The option columns A, B, ... up to the first missing / empty / "nan" cell (VLMEvalKit build_choices)."""
        out = []
        for letter in _LETTERS:
            value = self.cell(row, letter)
            if not value or value.lower() == "nan":
                break
            out.append(value)
        return out

    def collect(self, make: Callable[[int, list[str]], Item | list[Item]]) -> tuple[list[Item], list[dict]]:
        """Items from make(row number, cells) for every row; a Skip skips the row (named by its index)."""
        out = Collect()
        for n, row in self.rows:
            out.add(self.path, f"row {n}", self.cell(row, "index") or n, make, n, row)
        return out.result()

    def images(self, row: list[str]) -> list[bytes]:
        """The row's images, decoded from base64 (shared from another row when the cell is that row's index)."""
        cell = self._encoded[self.image_key(row)]
        if cell.startswith("[") and cell.endswith("]"):
            try:
                encoded = ast.literal_eval(cell)
            except (ValueError, SyntaxError):
                raise Skip("image cell starts with '[' but is not a list literal of base64 strings") from None
            if not isinstance(encoded, list) or not all(isinstance(x, str) for x in encoded):
                raise Skip("image cell is not a list of base64 strings")
        else:
            encoded = [cell]
        out = []
        for text in encoded:
            if text not in self._decoded:
                try:
                    self._decoded[text] = base64.b64decode("".join(text.split()), validate=True)
                except (binascii.Error, ValueError) as e:
                    raise Skip(f"image is not base64 ({e})") from None
            out.append(self._decoded[text])
        return out
