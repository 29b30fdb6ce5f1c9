"""The tutorial notebooks' text as built by notebooks/_build.py: no control characters (a LaTeX backslash written
once in _build.py's Python strings, e.g. \\beta or \\times, becomes a backspace or a tab in the notebook)."""
import json
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("*.ipynb"))


def test_every_notebook_is_found():
    assert len(NOTEBOOKS) >= 8


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_markdown_has_no_control_characters(path):
    cells = json.loads(path.read_text())["cells"]
    for cell in cells:
        text = "".join(cell["source"])
        bad = sorted({repr(c) for c in text if ord(c) < 32 and c != "\n"})
        assert not bad, f"{path.name}: {bad} in {text[:80]!r}"


def test_build_script_escapes_every_latex_backslash():
    """A single backslash before a letter in _build.py's strings is a Python escape (\\n, \\t, \\b...) or an error in
    the making: LaTeX there must be written with two (the only single ones are the helpers' .strip("\\n"))."""
    import re

    source = (Path(__file__).resolve().parent.parent / "notebooks" / "_build.py").read_text()
    single = [line.strip() for line in source.splitlines() if re.search(r"(?<!\\)\\[a-zA-Z]", line)]
    assert all('.strip("\\n")' in line for line in single), single
