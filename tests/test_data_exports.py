"""Check the exports of snnlab.data (its docstring examples run in test_docstring_examples.py)."""


def test_package_exports():
    import snnlab.data as d

    for n in d.__all__:
        assert hasattr(d, n), n
    assert "tonic" not in str(getattr(d, "__file__"))
