"""The configuration's docs and errors say what the code does: learn_threshold's doc (and CLI help), the unknown-key
ConfigError of the keyword constructor, and the README's data-folder lookup order."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from snnlab.cli import main
from snnlab.training import ConfigError, ExperimentConfig, build_model
from snnlab.training import config as config_module

README = Path(__file__).resolve().parents[1] / "README.md"


def _threshold_shapes(**kw) -> list[tuple[int, ...]]:
    net = build_model(ExperimentConfig(hidden=[5, 4], learn_threshold=True, **kw), 8, 3)
    return [tuple(p.shape) for m in net for n, p in m.named_parameters(recurse=False) if n == "threshold"]


def test_learn_threshold_doc_says_per_layer_or_per_neuron_as_build_model_does():
    """Was: "Learn one threshold per hidden layer", while recurrent / tau_mem_cv layers learn one per neuron."""
    doc = ExperimentConfig.param.learn_threshold.doc
    assert "one per hidden layer" in doc and "one per hidden neuron with recurrent or tau_mem_cv > 0" in doc
    assert "spiking readout" in doc and "output layer too" in doc
    # what the doc says, checked against the model built
    assert _threshold_shapes() == [(), ()]
    assert _threshold_shapes(recurrent=True) == [(5,), (4,)]
    assert _threshold_shapes(tau_mem_cv=0.3) == [(5,), (4,)]
    assert _threshold_shapes(adaptation=0.5, recurrent=True) == [(5,), (4,)]
    assert _threshold_shapes(readout="spike_count", tau_mem_cv=0.3) == [(5,), (4,), ()]


@pytest.mark.parametrize("command", ["train", "sweep"])
def test_learn_threshold_help_of_train_and_sweep(command, capsys):
    assert main([command, "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "one per hidden neuron with recurrent or tau_mem_cv > 0" in text
    assert "Learn one threshold per hidden layer" not in text


def test_keyword_constructor_unknown_key_is_the_config_error_of_from_dict():
    """Was: ExperimentConfig(hiden=[16]) raised param's plain TypeError, without the "did you mean" hint."""
    with pytest.raises(ConfigError, match=r"unknown configuration key\(s\): 'hiden' \(did you mean 'hidden'\?\)") as kw:
        ExperimentConfig(hiden=[16])
    with pytest.raises(ConfigError) as d:
        ExperimentConfig.from_dict({"hiden": [16]})
    assert type(kw.value) is type(d.value) is config_module.UnknownKeyError
    assert str(kw.value) == str(d.value)
    assert "valid keys are" in str(kw.value) and "'name'" not in str(kw.value)


def test_unknown_key_error_is_still_a_type_error_and_lists_every_key():
    with pytest.raises(TypeError, match=r"'epoks' \(did you mean 'epochs'\?\), 'zzz_qq'(?! \(did)"):
        ExperimentConfig(epochs=2, epoks=3, zzz_qq=1)
    with pytest.raises(ValueError):  # (a ConfigError is a ValueError)
        ExperimentConfig(hiden=[16])


def test_known_keywords_still_build():
    cfg = ExperimentConfig(hidden=[16], epochs=2, name="mine")  # (param's own name is a keyword it takes)
    assert cfg.hidden == [16] and cfg.epochs == 2 and cfg.name == "mine"


def test_readme_states_the_data_folder_lookup_order():
    """Was: "$SNNLAB_SHARED_DATA (default $XDG_DATA_HOME/snnlab ...)", leaving out <checkout>/../shared/data."""
    text = " ".join(README.read_text(encoding="utf-8").split())
    m = re.search(r"Real datasets are read from [^;]*; nothing is downloaded\.", text)
    assert m, "README: no data-folder sentence"
    sentence = m.group(0)
    steps = ["`--data-root` / `data_root=`", "`$SNNLAB_SHARED_DATA`", "`<checkout>/../shared/data`",
             "`$XDG_DATA_HOME/snnlab`", "`~/.local/share/snnlab`"]
    where = [sentence.find(s) for s in steps]
    assert -1 not in where and where == sorted(where), (steps, sentence)
    doc = ExperimentConfig.param.data_root.doc
    assert doc.index("$SNNLAB_SHARED_DATA") < doc.index("<checkout>/../shared/data") < doc.index("$XDG_DATA_HOME")
