"""Check the exports of snnlab.viz and that it imports no UI (its docstring examples run in
test_docstring_examples.py)."""


def test_package_exports_and_no_ui_imports():
    from pathlib import Path

    import snnlab.viz as v

    for n in v.__all__:
        assert hasattr(v, n), n
    for f in Path(v.__file__).parent.glob("*.py"):  # the viz layer never depends on widgets / dashboards / panel
        src = f.read_text()
        for banned in ("snnlab.widgets", "snnlab.dashboard", "import panel", "from panel", "hv.extension("):
            assert banned not in src.replace('``hv.extension("bokeh")``', ""), (f.name, banned)
