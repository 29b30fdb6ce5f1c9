"""The tutorial notebooks' text as built by notebooks/_build.py: no control characters (a LaTeX backslash written
once in _build.py's Python strings, e.g. \\beta or \\times, becomes a backspace or a tab in the notebook)."""
import json
import shutil
import subprocess
import sys
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


def _run_build(folder: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(folder / "_build.py"), *args], capture_output=True, text=True,
                          timeout=120)


def test_build_script_help_and_bad_arguments_write_nothing(tmp_path):
    """Before: ``_build.py --help`` (any option it did not know) rebuilt every tracked notebook, clearing their
    stored outputs, and a prefix naming no notebook did nothing and exited 0. Run on a copy of the script."""
    shutil.copy(Path(__file__).resolve().parent.parent / "notebooks" / "_build.py", tmp_path / "_build.py")
    help_run = _run_build(tmp_path, "--help")
    assert help_run.returncode == 0 and "--out-dir" in help_run.stdout
    for args, said in ((["--bogus"], "unrecognized arguments: --bogus"), (["1x"], "no notebook name starts with '1x'"),
                       (["--dry-run", "01"], "unrecognized arguments: --dry-run")):
        bad = _run_build(tmp_path, *args)
        assert bad.returncode == 2 and said in bad.stderr, (args, bad.stderr)
    assert not list(tmp_path.glob("*.ipynb"))  # nothing written by any of them
    out = tmp_path / "out"
    out.mkdir()
    built = _run_build(tmp_path, "01", "--out-dir", str(out))
    assert built.returncode == 0, built.stderr
    assert [p.name[:3] for p in out.iterdir()] == ["01_"]
    assert not list(tmp_path.glob("*.ipynb"))  # the script's own folder untouched
