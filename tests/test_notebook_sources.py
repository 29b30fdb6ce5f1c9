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
