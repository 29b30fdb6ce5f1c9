"""Review s13 (training): a NumPy scalar that has no plain Python value is refused by the checkpoint's history with the
TypeError it documents (it recursed in json's hook), and a sweep grid's unknown field gets the "did you mean" hint
that the configuration's constructor gives."""
from __future__ import annotations

import numpy as np
import pytest

from snnlab.experiments.sweeps import expand_grid
from snnlab.training import ConfigError, ExperimentConfig, UnknownKeyError
from snnlab.training.checkpoint import decode_history, encode_history


@pytest.mark.parametrize("value", [np.longdouble(1.5), np.clongdouble(1 + 2j)])
def test_a_numpy_scalar_without_a_plain_value_is_refused_as_documented(value):
    # np.longdouble(...).item() is a np.longdouble again: json called the hook on it until RecursionError
    with pytest.raises(TypeError, match=rf"encode_history: a history record holds a {type(value).__name__} "):
        encode_history([{"kind": "step", "loss": value}])


def test_numpy_scalars_with_plain_values_still_encode():
    back = decode_history(encode_history([{"a": np.float16(0.5), "b": np.uint8(7), "c": np.bool_(False)}]))
    assert back == [{"a": 0.5, "b": 7, "c": False}] and type(back[0]["b"]) is int


def test_a_sweep_grid_with_an_unknown_field_names_the_closest_one():
    with pytest.raises(UnknownKeyError, match=r"sweep grid: unknown field\(s\): 'nerons' \(did you mean 'neuron'\?\); "
                                              r"valid fields are \["):
        expand_grid(ExperimentConfig(), {"nerons": ["ttfs"], "lr": [0.1]})
    with pytest.raises(ConfigError, match="unknown field"):  # (still a ConfigError, and a TypeError as the others)
        expand_grid(ExperimentConfig(), {"zzz_nothing_close": [1]})
