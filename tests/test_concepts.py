"""docs/concepts.md stays true: every owner `file:symbol` imports and resolves, every config field exists in the config
the row names (or is a field its model section's owner accepts), every test `tests/file.py::test_name` is defined in
that file (read with ast, never run), every study file exists, every study has a row citing what its file cites, and
the concepts a researcher looks for are all there."""
from __future__ import annotations

import ast
import dataclasses
import functools
import importlib
import importlib.util
import pathlib
import re

import ml_collections
import pytest

REPO = pathlib.Path(__file__).resolve().parent.parent
INDEX = REPO / "docs" / "concepts.md"
COLUMNS = ("Concept", "Paper", "Owner", "Config fields", "Test", "Study")
DEFAULT_CONFIG = "configs/tiny.py"
REQUIRED = ("C-Abstractor", "Attention pooling", "Image tokens per image", "Static image splitting",
            "Dynamic image splitting", "Overview position and index markers", "MM1 learning-rate law",
            "Staged freezing", "MoE routing: dropless and capacity", "load-balance loss and router z-loss",
            "upcycling", "Hyper attention", "MI-RoPE", "Adaptive gate", "Packing with images", "data mixture",
            "CircularEval", "distractor protocol", "Continual pre-training")
CONFIG_SPEC = re.compile(r"^(configs|tests/fixtures)/[\w/]+\.py(:.*)?$")
FIELD = re.compile(r"^[a-z_]+(\.[a-z_0-9]+)+$")
CITATION = re.compile(r"arXiv \d{4}\.\d{5}")
SECTION = re.compile(r"(Sec\. \d|Tables? \d|Fig\. \d|sections)")


def rows(text: str) -> list[dict[str, str]]:
    """Every row of every table whose header is COLUMNS, as {column: cell text}."""
    out, header = [], None
    for line in text.splitlines():
        if not line.startswith("|"):
            header = None
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if header is None:
            header = cells
        elif not set("".join(cells)) <= set("-: "):
            assert header == list(COLUMNS), f"a table of {INDEX.name} has columns {header}"
            out.append(dict(zip(header, cells)))
    return out


def spans(cell: str) -> list[str]:
    return re.findall(r"`([^`]+)`", cell)


def module_name(path: str) -> str:
    return path.removesuffix(".py").replace("/", ".")


def symbol_problem(owner: str) -> str | None:
    """None when `path.py:dotted.name` imports and resolves, else what is wrong."""
    path, _, dotted = owner.partition(":")
    if not (REPO / path).is_file() or not dotted:
        return f"owner {owner!r}: no file {path!r} or no symbol"
    try:
        obj = importlib.import_module(module_name(path))
    except ImportError as e:
        return f"owner {owner!r}: {e}"
    for part in dotted.split("."):
        if not hasattr(obj, part):
            return f"owner {owner!r}: {part!r} is not defined"
        obj = getattr(obj, part)
    return None


@functools.cache
def load_config(spec: str) -> ml_collections.ConfigDict:
    path, _, arg = spec.partition(":")
    module_spec = importlib.util.spec_from_file_location(f"_concepts_{abs(hash(spec))}", REPO / path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module.get_config(arg) if arg else module.get_config()


def model_section_fields(section: str) -> set[str]:
    """The fields a model section's owner accepts though a config need not set them."""
    from mm1_jax.models import connectors
    from mm1_jax.models.decoder import Decoder
    from mm1_jax.models.vit import ViT

    owners = {"model.decoder": Decoder, "model.encoder": ViT}
    if section == "model.connector":
        return set(connectors.connector_fields())
    if section in owners:
        return {f.name for f in dataclasses.fields(owners[section])} - {"parent", "name"}
    return set()


def field_problem(field: str, spec: str) -> str | None:
    """None when the dotted field exists in the config `spec` names (or its model section's owner accepts it)."""
    if not FIELD.match(field):
        return f"field {field!r} is not a dotted config path"
    node, parts = load_config(spec), field.split(".")
    for i, part in enumerate(parts):
        if isinstance(node, (ml_collections.ConfigDict, dict)) and part in node:
            node = node[part]
            continue
        parent = ".".join(parts[:i])
        if i == len(parts) - 1 and part in model_section_fields(parent):
            return None
        return f"field {field!r} is not in {spec} (no {part!r} under {parent or 'the config'})"
    return None


@functools.cache
def defined_functions(path: str) -> frozenset[str]:
    tree = ast.parse((REPO / path).read_text())
    return frozenset(n.name for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)))


def node_problem(node: str) -> str | None:
    path, sep, name = node.partition("::")
    if not sep or not path.startswith("tests/") or not (REPO / path).is_file():
        return f"test {node!r}: no test file {path!r}"
    if not name.startswith("test_") or name not in defined_functions(path):
        return f"test {node!r}: {path} defines no {name!r}"
    return None


def row_problems(row: dict[str, str]) -> list[str]:
    """Everything in one row that does not resolve."""
    where = row["Concept"]
    found = []
    if not CITATION.search(row["Paper"]) or not SECTION.search(row["Paper"]):
        found.append(f"paper {row['Paper']!r}: no arXiv id with a section, table or figure")
    owners = spans(row["Owner"])
    found += [p for p in map(symbol_problem, owners) if p] or ([] if owners else ["no owner"])
    fields = spans(row["Config fields"])
    spec = fields.pop(0) if fields and CONFIG_SPEC.match(fields[0]) else DEFAULT_CONFIG
    found += [p for f in fields if (p := field_problem(f, spec))] or ([] if fields else ["no config field"])
    tests = spans(row["Test"])
    found += [p for p in map(node_problem, tests) if p] or ([] if tests else ["no test"])
    for study in spans(row["Study"]):
        if not study.startswith("configs/studies/") or not (REPO / study).is_file():
            found.append(f"study {study!r} does not exist")
    return [f"{where}: {p}" for p in found]


def study_problems(table: list[dict[str, str]]) -> list[str]:
    """Every study file has a row owning its ROWS, listing it, and citing its STUDY's paper id and source."""
    from mm1_jax.sweep import studies as S

    found = []
    for path in S.study_files():
        name = f"configs/studies/{path.name}"
        row = next((r for r in table if f"`{name}:ROWS`" in r["Owner"]), None)
        if row is None:
            found.append(f"{name} has no row")
            continue
        info = S.load_study(path).info
        paper_id = CITATION.search(info["paper"]).group(0)
        if name not in spans(row["Study"]) or paper_id not in row["Paper"] or info["source"] not in row["Paper"]:
            found.append(f"{name}: its row must list it and cite {paper_id} {info['source']!r}")
    return found


def test_the_index_resolves():
    table = rows(INDEX.read_text())
    assert len(table) >= len(REQUIRED) + 14
    problems = [p for row in table for p in row_problems(row)] + study_problems(table)
    assert problems == []


def test_every_concept_a_researcher_looks_for_has_a_row():
    concepts = " / ".join(row["Concept"].lower() for row in rows(INDEX.read_text()))
    assert [c for c in REQUIRED if c.lower() not in concepts] == []


def test_the_checker_catches_a_broken_row():
    """A renamed symbol, a missing field, a test that does not exist and an absent study are each reported."""
    good = next(r for r in rows(INDEX.read_text()) if r["Concept"] == "C-Abstractor")
    assert row_problems(good) == []
    bad = dict(good, Owner="`mm1_jax/models/c_abstractor.py:CAbstractr`",
               **{"Config fields": "`model.connector.num_tokenz`", "Test": "`tests/test_connectors.py::test_nope`",
                  "Study": "`configs/studies/mm1_conector.py`", "Paper": "HoneyBee"})
    assert row_problems(bad) == [
        "C-Abstractor: paper 'HoneyBee': no arXiv id with a section, table or figure",
        "C-Abstractor: owner 'mm1_jax/models/c_abstractor.py:CAbstractr': 'CAbstractr' is not defined",
        "C-Abstractor: field 'model.connector.num_tokenz' is not in configs/tiny.py (no 'num_tokenz' under "
        "model.connector)",
        "C-Abstractor: test 'tests/test_connectors.py::test_nope': tests/test_connectors.py defines no 'test_nope'",
        "C-Abstractor: study 'configs/studies/mm1_conector.py' does not exist"]


@pytest.mark.parametrize("field, spec, ok", [
    ("model.decoder.capacity_factor", "configs/tiny.py", True),  # the Decoder's field, unset in the config
    ("model.decoder.num_experts", "configs/mm1_pretrain.py:decoder=3b-moe", True),
    ("data.split.n_maxx", "configs/tiny.py", False),
    ("eval.mmbench_distractors.num_images", "configs/owl3_eval.py", True),
])
def test_fields_resolve_in_the_named_config(field, spec, ok):
    assert (field_problem(field, spec) is None) == ok
