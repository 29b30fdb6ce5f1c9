"""The Python examples of the README and docs run as written (every fenced ```python block, in order)."""
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "notebooks" / "README.md"]
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def _blocks():
    return [(doc, i, code) for doc in DOCS if doc.exists() for i, code in enumerate(BLOCK.findall(doc.read_text()))]


def test_the_readme_has_a_python_example():
    assert any(doc.name == "README.md" and doc.parent == ROOT for doc, _, _ in _blocks())


@pytest.mark.parametrize("doc,index,code", _blocks(), ids=lambda v: v.name if isinstance(v, Path) else None)
def test_doc_example_runs(doc, index, code):
    namespace: dict = {}
    exec(compile(code, f"{doc.name}[python block {index}]", "exec"), namespace)
