"""Check the exports of snnlab.data (its docstring examples run in test_docstring_examples.py)."""


def test_package_exports():
    import snnlab.data as d

    for n in d.__all__:
        assert hasattr(d, n), n
    assert "tonic" not in str(getattr(d, "__file__"))


def test_fixed_length_padding_is_exported():
    import snnlab.data as d
    from snnlab.data.collate import PadCollate
    from snnlab.data.neuromorphic.frames import max_sample_steps

    assert d.PadCollate is PadCollate and d.max_sample_steps is max_sample_steps
    assert {"PadCollate", "max_sample_steps", "time_major_collate"} <= set(d.__all__)
