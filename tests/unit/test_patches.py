"""Every `workflow.patched` id is declared once in workflows/patches.py and used."""

import re
from pathlib import Path

from workflows import patches

WORKFLOWS = Path(__file__).resolve().parents[2] / "workflows"


def patched_calls() -> list[str]:
    """The argument of every workflow.patched(...) call in the workflow package."""
    calls = []
    for path in sorted(WORKFLOWS.glob("*.py")):
        if path.name == "patches.py":  # declares the ids; its docstring shows the call
            continue
        calls += re.findall(r"workflow\.patched\(\s*([^)]*?)\s*\)", path.read_text())
    return calls


def test_every_patch_call_names_a_declared_id() -> None:
    """No string literal ids scattered in the code: each call names a constant of `patches`."""
    calls = patched_calls()
    assert calls, "the workflow package calls workflow.patched"
    declared = {f"patches.{name}" for name in dir(patches) if name.isupper() and name != "ALL"}
    assert set() == set(calls) - declared


def test_every_declared_id_is_used_and_listed() -> None:
    """A declared id that no code checks any more is dead weight (or a forgotten branch)."""
    used = {getattr(patches, call.removeprefix("patches.")) for call in patched_calls()}
    assert set(patches.ALL) == used
    assert len(patches.ALL) == len(set(patches.ALL)), "two patches share an id"
