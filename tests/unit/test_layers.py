"""The entry points stay thin: import-linter checks the packages, this checks the two scripts."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PROJECT = {"app", "workflows", "activities", "ledger", "bench", "tests"}


def imported_roots(path: Path) -> set[str]:
    """The top-level names a module imports."""
    roots = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            roots.add(node.module.split(".")[0])
    return roots


@pytest.mark.parametrize("script", ["worker.py", "starter.py"])
def test_an_entry_point_imports_only_the_app_layer(script: str) -> None:
    """worker.py and starter.py reach the project only through `app` (imports point down)."""
    assert {"app"} == imported_roots(ROOT / script) & PROJECT


def test_the_layer_check_sees_a_script_that_skips_a_layer(tmp_path: Path) -> None:
    """The check is not blind: a script importing the workflows directly is seen."""
    script = tmp_path / "bad.py"
    script.write_text("from app.cli import starter_main\nfrom workflows.transfer import X\n")
    assert {"app", "workflows"} == imported_roots(script) & PROJECT
