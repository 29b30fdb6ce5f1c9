"""The benchmark scripts' ``--help`` describes each script in whole sentences (the docstring's first paragraph)."""
import ast
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
SCRIPTS = sorted(p for p in BENCHMARKS.glob("*.py") if "ArgumentParser(" in p.read_text())


def _description(path: Path) -> str:
    """What the script's parser shows as its description, evaluated from the source (no import: no torch)."""
    tree = ast.parse(path.read_text())
    doc = ast.get_docstring(tree, clean=False)
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) == "ArgumentParser":
            for kw in node.keywords:
                if kw.arg == "description":
                    return eval(compile(ast.Expression(kw.value), str(path), "eval"), {"__doc__": doc})  # noqa: S307
    raise AssertionError(f"{path.name}: no description= in its ArgumentParser")


@pytest.mark.parametrize("path", SCRIPTS, ids=lambda p: p.name)
def test_the_help_description_is_not_cut_mid_sentence(path):
    text = _description(path).strip()
    first_paragraph = " ".join(ast.get_docstring(ast.parse(path.read_text())).split("\n\n")[0].split())
    assert " ".join(text.split()).startswith(first_paragraph), path.name
    assert first_paragraph.endswith((".", ")", ":")), first_paragraph
    assert len(SCRIPTS) >= 7
