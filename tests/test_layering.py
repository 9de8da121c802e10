"""Imports only go down: models and data import nothing from runtime, train or eval; runtime imports neither train nor
eval; train and eval do not import each other. Read from the source (ast), imports inside functions included."""
import ast
import pathlib

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parent.parent / "mm1_jax"

# layer -> the subpackages it must never import
FORBIDDEN = {
    "models": ("runtime", "train", "eval"),
    "data": ("runtime", "train", "eval"),
    "runtime": ("train", "eval"),
    "train": ("eval",),
    "eval": ("train",),
}


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


def violations(layer: str, root: pathlib.Path = PACKAGE) -> list[str]:
    found = []
    for path in sorted((root / layer).rglob("*.py")):
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


def test_config_keys_sits_below_every_layer():
    """mm1_jax/config_keys.py (the unknown-key sentence every config section uses) imports nothing from the package,
    so models, data, train and eval may all import it."""
    assert [m for _, m in imported_modules(PACKAGE / "config_keys.py", PACKAGE) if m.startswith("mm1_jax")] == []
