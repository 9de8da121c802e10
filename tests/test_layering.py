"""Imports only go down. Every part of the package has a layer; a part imports only parts of lower layers (train and
eval share one and do not import each other), so models imports nothing from data and data nothing from runtime, train
or eval. Read from the source (ast), imports inside functions included."""
import ast
import pathlib

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parent.parent / "mm1_jax"

# part (a subpackage or a top-level module) -> its layer, bottom first
LAYERS = {
    "config_keys": 0, "command_line": 0,  # below everything: no import from the package
    "models": 1,
    "data": 2,  # the pipeline takes the model's input spec; pixel statistics belong to the encoder style (models)
    "runtime": 3,
    "convert": 4,
    "pretrained": 5,
    "train": 6, "eval": 6,
    "generate": 7, "sweep": 7,
}
# part -> the parts it must never import: every part of its own layer or above
FORBIDDEN = {part: tuple(sorted(p for p, layer in LAYERS.items() if layer >= LAYERS[part] and p != part))
             for part in LAYERS}


def imported_modules(path: pathlib.Path, root: pathlib.Path) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import in the file, relative imports resolved."""
    package = ".".join(path.relative_to(root.parent).with_suffix("").parts[:-1])
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parent + ([base] if base else []))
            out.append((node.lineno, base))
            out += [(node.lineno, f"{base}.{alias.name}") for alias in node.names]  # from mm1_jax import eval
    return out


def _files(part: str, root: pathlib.Path) -> list[pathlib.Path]:
    """The source files of a subpackage, or the one file of a top-level module."""
    return sorted((root / part).rglob("*.py")) if (root / part).is_dir() else [root / f"{part}.py"]


def violations(layer: str, root: pathlib.Path = PACKAGE) -> list[str]:
    """'path:line imports module' for each import of a part `layer` must not import."""
    found = []
    for path in _files(layer, root):
        for line, module in imported_modules(path, root):
            for upper in FORBIDDEN[layer]:
                if module == f"mm1_jax.{upper}" or module.startswith(f"mm1_jax.{upper}."):
                    found.append(f"{path.relative_to(root.parent)}:{line} imports {module}")
    return sorted(set(found))


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_imports_only_go_down(layer):
    assert violations(layer) == []


def test_the_checker_sees_imports_inside_functions(tmp_path):
    """Function-level and relative imports of an upper layer in a models file are caught (the checker can fail)."""
    fake = tmp_path / "mm1_jax"
    (fake / "models").mkdir(parents=True)
    (fake / "models" / "bad.py").write_text("def f():\n    from mm1_jax.eval import tasks\n    from ..train import x\n")
    assert violations("models", fake) == ["mm1_jax/models/bad.py:2 imports mm1_jax.eval",
                                          "mm1_jax/models/bad.py:2 imports mm1_jax.eval.tasks",
                                          "mm1_jax/models/bad.py:3 imports mm1_jax.train",
                                          "mm1_jax/models/bad.py:3 imports mm1_jax.train.x"]


def test_every_part_has_a_layer():
    """A new subpackage or module must be placed in LAYERS, else nothing checks what it imports."""
    parts = {p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__"}
    parts |= {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert parts == set(LAYERS)
    for part in ("models", "data", "train", "eval", "sweep", "convert", "runtime", "pretrained"):
        assert FORBIDDEN[part], part


def test_models_import_nothing_from_data():
    """The model's pixel statistics live with the encoder styles (models.vit.NORMS): models never reach up into data,
    which takes them from models."""
    assert "data" in FORBIDDEN["models"] and "models" not in FORBIDDEN["data"]
    assert violations("models") == []


def test_config_keys_sits_below_every_layer():
    """mm1_jax/config_keys.py (the unknown-key sentence every config section uses) imports nothing from the package,
    so models, data, train and eval may all import it."""
    assert [m for _, m in imported_modules(PACKAGE / "config_keys.py", PACKAGE) if m.startswith("mm1_jax")] == []
