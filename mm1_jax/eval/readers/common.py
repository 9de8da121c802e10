"""What every reader shares: the two kinds of problem, loading a release file, checking a record, collecting items.

A problem with a file raises `fail(...)`, a ValueError naming the task and the file; a problem with one record raises
`Skip`, which `Collect` turns into that record's entry in `skipped` (the contract is the package docstring's).
`Collect` also sets aside items whose image files do not exist.
"""
from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Callable
from typing import Any

from mm1_jax.eval.prompts import Item


# --- errors: file-level (ValueError) and record-level (Skip)


def fail(task: str, path: str, what: str) -> ValueError:
    """The ValueError for a problem with a whole file (`path`) of `task`."""
    return ValueError(f"eval task {task!r}: {path}: {what}.")


class Skip(Exception):
    """A record-level problem: the record is skipped with this reason (file / record when not the current ones)."""

    def __init__(self, what: str, file: str | None = None, where: str | None = None):
        super().__init__(what)
        self.file, self.where = file, where


# --- checking a record


def kind_of(value: Any) -> str:
    """How a JSON value is named in a reason: "a JSON object", "a list", "a number", "null", ..."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    return {dict: "a JSON object", list: "a list", str: "a string"}.get(type(value), type(value).__name__)


def need(record: Any, field: str, kind: type | tuple[type, ...] | None = None, name: str | None = None) -> Any:
    """record[field], or Skip when the record is not an object, lacks the field or the value is of another kind."""
    if not isinstance(record, dict):
        raise Skip(f"is {kind_of(record)}, not a JSON object")
    if field not in record or record[field] is None:
        raise Skip(f"lacks the field {name or field!r}")
    value = record[field]
    allowed = kind if isinstance(kind, tuple) else (kind,) if kind is not None else None
    if allowed and (not isinstance(value, allowed) or (isinstance(value, bool) and bool not in allowed)):
        raise Skip(f"field {name or field!r} is {kind_of(value)}")  # (a JSON true / false is no number)
    return value


def strings(values: Any, name: str) -> list[str]:
    """`values`, the record's list field `name`, as strings; Skip when it is not a list."""
    if not isinstance(values, list):
        raise Skip(f"field {name!r} is {kind_of(values)}, not a list")
    return [str(v) for v in values]


def record_id(record: Any, key: str, fallback: Any) -> str:
    """A record's id for the skipped list: record[key] when present, else its index."""
    value = record.get(key) if isinstance(record, dict) else None
    return str(fallback if value is None else value)


# --- the files a task's config names


def required(task: str, keyword: str, value: str) -> str:
    """`value`, the config field config.eval.<task>.<keyword>; ValueError when it is unset."""
    if not value:
        raise ValueError(f"eval task {task!r} needs config.eval.{task}.{keyword}; it is unset.")
    return str(value)


def annotation_file(task: str, keyword: str, path: str) -> str:
    """`path` (config field `keyword`), checked to be an existing file; ValueError otherwise."""
    path = required(task, keyword, path)
    if not os.path.exists(path):
        raise ValueError(f"eval task {task!r}: annotation file {path!r} does not exist.")
    if os.path.isdir(path):
        raise ValueError(f"eval task {task!r}: annotation file {path!r} is a folder, not a file.")
    return path


def image_folder(task: str, path: str, keyword: str = "images") -> str:
    """`path` (config field `keyword`), checked to be an existing folder; ValueError otherwise."""
    path = required(task, keyword, path)
    if not os.path.isdir(path):
        raise ValueError(f"eval task {task!r}: image folder {path!r} (config.eval.{task}.{keyword}) does not exist.")
    return path


# --- release files


def read_text(task: str, path: str) -> str:
    """The UTF-8 text of `path`; ValueError naming the task and the file when it cannot be read or decoded."""
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except UnicodeDecodeError as e:
        raise fail(task, path, f"not UTF-8 text ({e.reason} at byte {e.start})") from None
    except OSError as e:
        raise fail(task, path, f"cannot be read ({e.strerror or e})") from None


def load_json(task: str, keyword: str, path: str, kind: type = dict, shape: str = "a JSON object") -> Any:
    """The parsed JSON file `path` (config field `keyword`), which must be of `kind`; ValueError naming the task
    and the file otherwise."""
    path = annotation_file(task, keyword, path)
    try:
        data = json.loads(read_text(task, path))
    except json.JSONDecodeError as e:
        raise fail(task, path, f"not valid JSON ({e.msg}: line {e.lineno} column {e.colno})") from None
    if not isinstance(data, kind):
        raise fail(task, path, f"expected {shape}, found {kind_of(data)}")
    return data


def top_list(task: str, path: str, data: Any, key: str) -> list:
    """data[key], which must be a list: the records of a {"<key>": [...]} file."""
    if not isinstance(data, dict) or not isinstance(data.get(key), list):
        found = f"keys {sorted(data)[:8]}" if isinstance(data, dict) else kind_of(data)
        raise fail(task, path, f"expected a JSON object with a {key!r} list, found {found}")
    return data[key]


def load_jsonl(task: str, keyword: str, path: str) -> list[tuple[int, Any]]:
    """(line number, parsed record) for each non-blank line; a line that does not parse is kept as a Skip (that
    record is skipped), but a file where no line parses as a JSON object is not JSON lines: ValueError."""
    path = annotation_file(task, keyword, path)
    records: list[tuple[int, Any]] = []
    first_error = ""
    for n, line in enumerate(read_text(task, path).splitlines(), 1):
        if not line.strip():
            continue
        try:
            records.append((n, json.loads(line)))
        except json.JSONDecodeError as e:
            first_error = first_error or f"line {n}: {e.msg}: column {e.colno}"
            records.append((n, Skip(f"not valid JSON ({e.msg}: column {e.colno})")))
    if not records:
        raise fail(task, path, "has no JSON lines (the file is empty)")
    if not any(isinstance(r, dict) for _, r in records):
        raise fail(task, path, f"not JSON lines, one JSON object a line ({first_error or 'no line is an object'})")
    return records


def text_lines(task: str, keyword: str, path: str) -> list[tuple[int, str]]:
    """(line number, stripped text) of the non-blank lines of a plain text file."""
    path = annotation_file(task, keyword, path)
    return [(n, line.strip()) for n, line in enumerate(read_text(task, path).splitlines(), 1) if line.strip()]


def read_tsv(task: str, keyword: str, path: str) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """The header and (row number, cells) of a tab-separated file; row 1 is the first row after the header."""
    text = read_text(task, annotation_file(task, keyword, path))
    csv.field_size_limit(2**31 - 1)  # images are base64 cells of megabytes
    try:
        rows = list(csv.reader(io.StringIO(text, newline=""), delimiter="\t"))
    except csv.Error as e:
        raise fail(task, path, f"not a valid TSV file ({e})") from None
    if not rows or not any(cell.strip() for cell in rows[0]):
        raise fail(task, path, "is empty; expected a TSV file with a header row")
    return [c.strip() for c in rows[0]], [(n, row) for n, row in enumerate(rows[1:], 1) if any(row)]


# --- collecting items record by record


class Collect:
    """Items made record by record. A record-level problem (Skip) or a repeated id skips the record with a reason
    naming the file and the record; `result` then sets aside items whose image files do not exist."""

    def __init__(self) -> None:
        self.built: list[tuple[Item, str]] = []  # (item, "<file>: <record>")
        self.skipped: list[dict] = []
        self._ids: set[str] = set()

    def skip(self, rid: Any, file: str, where: str, what: str) -> None:
        """Record `rid` skipped, the reason "<file>: <where>: <what>"."""
        self.skipped.append({"id": str(rid), "reason": f"{file}: {where}: {what}"})

    def add(self, file: str, where: str, rid: Any, make: Callable[..., Item | list[Item]], *args: Any) -> None:
        """Items from make(*args), or the record skipped (`rid`: its id, or its index when it has none)."""
        try:
            made = make(*args)
        except Skip as e:
            self.skip(rid, e.file or file, e.where or where, str(e))
            return
        for item in made if isinstance(made, list) else [made]:
            if item.id in self._ids:
                self.skip(item.id, file, where, f"repeats the id {item.id!r} of an earlier record")
                continue
            self._ids.add(item.id)
            self.built.append((item, f"{file}: {where}"))

    def result(self) -> tuple[list[Item], list[dict]]:
        """(items, skipped): the items made, less those whose image files do not exist."""
        return _split_missing(self.built, self.skipped)


def _split_missing(built: list[tuple[Item, str]], skipped: list[dict]) -> tuple[list[Item], list[dict]]:
    """Items whose image files all exist (checked, not decoded); the others go to `skipped` with the missing file."""
    exists: dict[str, bool] = {}
    kept = []
    for item, source in built:
        absent = None
        for ref in item.images:
            if isinstance(ref, str):
                if ref not in exists:
                    exists[ref] = os.path.isfile(ref)
                if not exists[ref]:
                    absent = ref
                    break
        if absent is None:
            kept.append(item)
        else:
            skipped.append({"id": item.id, "reason": f"{source}: image file {absent!r} does not exist"})
    return kept, skipped
