"""Three leftovers: the label's parts kept in groups (the custom-data label leaves the data's out by group, not by a
regex over the text), validate() checking the encoder options' values, and the datasets' labels refused when they
are not whole numbers (one shared check) instead of truncated."""
import hashlib
import html
import itertools
import re

import numpy as np
import pytest
import torch

import snnlab as sl
from snnlab.data import collate, synthetic
from snnlab.data.neuromorphic import AUDIO_DTYPE, EventFrameDataset
from snnlab.data.synthetic import SpikeTimesDataset
from snnlab.training import ExperimentConfig
from snnlab.training.config import ConfigError
from snnlab.training.trainer import _custom_data_label


# ---- 1. label() unchanged; the custom-data label by groups ---------------------------------------------------
def label_grid(each):
    """``each(cfg)`` over a grid: every dataset x data_kwargs time / pad setting (event datasets; the others ignore
    them) x neuron x surrogate / alpha x max_spikes, each with one of the 32 combinations of delays x mask_p x tau_syn
    x recurrent x adaptation in turn, then all 32 of those for each neuron on a static and an event dataset."""
    datasets = ("digits", "mnist5k", "randman", "delay_task", "nmnist", "shd", "ssc", "dvs_gesture", "fsdd")
    data_kwargs = ({}, {"time_window": 10_000}, {"time_window": 10_000, "pad_to": 150},
                   {"time_window": 2_500, "pad_to": "longest"}, {"pad_to": "longest"}, {"pad_to": 40},
                   {"n_time_bins": 30, "pad_to": 30}, {"time_window": 10_000, "duration": 500_000},
                   {"time_window": "bad"}, {"pad_to": 0})  # (the last two: validate() refuses them, label() never fails)
    neurons = ("multi_spike", "ttfs", "noisy")
    surrogates = (("atan", None), ("sigmoid", 4.0), ("triangle", 0.25))
    max_spikes = (None, 3)
    options = list(itertools.product((False, True), (0.0, 0.25), (None, 5.0), (False, True), (0.0, 1.5)))
    out = []
    cfg = ExperimentConfig()

    def one(i, **fields):
        delays, mask_p, tau_syn, recurrent, adaptation = options[i % len(options)]
        fields.update(hidden=[[128], [16, 8]][i % 2], num_steps=(20, 7)[i % 2], delays=delays, mask_p=mask_p,
                      tau_syn=tau_syn, recurrent=recurrent, adaptation=adaptation)
        for key, value in fields.items():  # (one config, changed field by field: building thousands takes seconds)
            if getattr(cfg, key) != value:
                setattr(cfg, key, value)
        out.append(each(cfg))

    i = 0
    for ds, neuron, (surrogate, alpha), k in itertools.product(datasets, neurons, surrogates, max_spikes):
        for kw in data_kwargs if ds in ("nmnist", "shd", "ssc", "dvs_gesture") else data_kwargs[:2]:
            one(i * 7, dataset=ds, data_kwargs=dict(kw), neuron=neuron, surrogate=surrogate, surrogate_alpha=alpha,
                max_spikes=k)
            i += 1
    for ds, kw in (("digits", {}), ("shd", {"time_window": 10_000, "pad_to": "longest"})):
        for neuron in neurons:
            for i in range(len(options)):
                one(i, dataset=ds, data_kwargs=dict(kw), neuron=neuron, max_spikes=3)
    return out


#: the labels of :func:`label_grid` before the parts were grouped (the code of commit HEAD at the change): their count
#: and the SHA-256 of them joined by newlines
OLD_GRID_LABELS = (1092, "8455ddaab78f0f15b134a104597940f3c9ede6555cde40543c9e64e8f6c03768")

#: (config, its label before the change), one of each kind of part
OLD_LABELS = [
    ({}, 'digits 64-128-10 multi_spike atan T20'),
    ({'dataset': 'shd', 'data_kwargs': {'time_window': 10000, 'pad_to': 150}},
     'shd 700-128-20 multi_spike atan dt10ms pad150'),
    ({'dataset': 'shd', 'data_kwargs': {'time_window': 10000, 'pad_to': 'longest'}, 'neuron': 'noisy',
      'noise': 'logistic', 'noise_scale': 0.5},
     'shd 700-128-20 noisy logistic0.5 dt10ms padlongest'),
    ({'dataset': 'ssc', 'data_kwargs': {'n_time_bins': 30, 'pad_to': 'longest'}, 'max_spikes': 3,
      'surrogate': 'sigmoid', 'surrogate_alpha': 4.0},
     'ssc 700-128-35 multi_spike sigmoid4 k3 T30'),
    ({'dataset': 'nmnist', 'data_kwargs': {'time_window': 1000, 'duration': 300000}, 'neuron': 'ttfs',
      'max_spikes': 1},
     'nmnist 2312-128-10 ttfs atan T300'),
    ({'dataset': 'dvs_gesture', 'data_kwargs': {'pad_to': 40}, 'hidden': [32, 16], 'delays': True, 'max_delay': 8},
     'dvs_gesture 32768-32-16-11 multi_spike atan T20 pad40 delays8'),
    ({'dataset': 'shd', 'data_kwargs': {'time_window': 'bad'}},
     'shd 700-128-20 multi_spike atan T20'),
    ({'dataset': 'randman', 'data_kwargs': {'n_units': 50, 'n_classes': 4}, 'mask_p': 0.25, 'tau_syn': 5.0,
      'recurrent': True, 'adaptation': 1.5, 'tau_adapt': 50.0},
     'randman 50-128-4 multi_spike atan T20 mask0.25 syn5 rec adapt1.5/50'),
    ({'dataset': 'delay_task', 'tau_mem_cv': 0.2, 'batch_norm': True, 'dropout': 0.1, 'spike_reg': 0.01,
      'readout': 'spike_count'},
     'delay_task 2-128-2 multi_spike atan T20 taucv0.2 bn drop0.1 reg0.01 spike_count'),
    ({'dataset': 'fsdd', 'data_kwargs': {'n_channels': 32}, 'num_steps': 50, 'max_spikes': 2},
     'fsdd 32-128-10 multi_spike atan k2 T50'),
]


@pytest.mark.parametrize("fields,label", OLD_LABELS)
def test_label_is_unchanged(fields, label):
    cfg = ExperimentConfig(**fields)
    assert cfg.label() == label
    parts = cfg._label_parts()
    assert list(parts) == ["dataset", "arch", "model", "time", "pad", "options"]
    assert " ".join(p for group in parts.values() for p in group) == label


def test_label_is_byte_identical_over_a_grid_of_configs():
    labels = label_grid(ExperimentConfig.label)
    assert (len(labels), hashlib.sha256("\n".join(labels).encode()).hexdigest()) == OLD_GRID_LABELS


def _old_custom_data_label(cfg, n_in, n_cls):
    """The custom-data label as it was made before: the label's tokens filtered by a regex."""
    arch = "-".join(str(int(v)) for v in [n_in, *cfg.hidden, n_cls])
    rest = [t for t in cfg.label().split(" ")[2:] if not re.fullmatch(r"T\d+|dt\S*ms|pad(\d+|longest)", t)]
    return " ".join([arch, *rest]) + " (custom data)"


def test_custom_data_label_is_unchanged_for_the_built_in_parts():
    pairs = label_grid(lambda cfg: (_custom_data_label(cfg, 12, 3), _old_custom_data_label(cfg, 12, 3)))
    assert all(new == old for new, old in pairs), next((p for p in pairs if p[0] != p[1]))
    assert _custom_data_label(ExperimentConfig(hidden=[16]), 12, 3) == "12-16-3 multi_spike atan (custom data)"
    cfg = ExperimentConfig(dataset="shd", hidden=[16], data_kwargs={"time_window": 10_000, "pad_to": 150},
                           delays=True, max_delay=5, readout="first_spike")
    assert _custom_data_label(cfg, 40, 4) == "40-16-4 multi_spike atan delays5 first_spike (custom data)"


@pytest.mark.parametrize("name,alpha,part", [("T", 5.0, "T5"), ("pad", 3.0, "pad3"), ("dt", 2.0, "dt2"),
                                             ("padlongest", None, "padlongest")])
def test_custom_data_label_keeps_a_part_that_reads_like_a_data_part(name, alpha, part):
    # a surrogate of one's own whose label part reads like a time or padding part: the old regex dropped it
    sl.surrogates.register(name, lambda u, a: torch.sigmoid(u) * a, 1.0)
    try:
        cfg = ExperimentConfig(hidden=[16], surrogate=name, surrogate_alpha=alpha)
        assert cfg.label() == f"digits 64-16-10 multi_spike {part} T20"
        assert _custom_data_label(cfg, 12, 3) == f"12-16-3 multi_spike {part} (custom data)"
    finally:
        sl.surrogates.unregister(name)


# ---- 2. validate() checks the encoder options' values ---------------------------------------------------------
#: (encoding, data_kwargs, the option named): values the encoder refuses when the data is built
BAD_ENCODER_OPTIONS = [
    ("latency", {"tau": -1.0, "linear": False}, "tau"),
    ("latency", {"tau": 0, "linear": False}, "tau"),
    ("latency", {"tau": float("nan"), "linear": False}, "tau"),
    ("latency", {"tau": "3", "linear": False}, "tau"),
    ("latency", {"threshold": -0.1}, "threshold"),
    ("latency", {"threshold": 1.0}, "threshold"),
    ("latency", {"threshold": float("nan")}, "threshold"),
    ("latency", {"threshold": None}, "threshold"),
    ("latency", {"threshold": [0.1]}, "threshold"),
    ("latency", {"linear": "no"}, "linear"),
    ("latency", {"linear": 2}, "linear"),
    ("latency", {"linear": None}, "linear"),
    ("rate", {"gain": -1}, "gain"),
    ("rate", {"gain": float("nan")}, "gain"),
    ("rate", {"gain": float("inf")}, "gain"),
    ("rate", {"gain": "0.5"}, "gain"),
    ("rate", {"gain": None}, "gain"),
    ("rate", {"gain": 10**400}, "gain"),  # (float() overflows: the option is still named)
]


@pytest.mark.parametrize("dataset", ["digits", "mnist5k"])
@pytest.mark.parametrize("encoding,kwargs,option", BAD_ENCODER_OPTIONS)
def test_validate_refuses_bad_encoder_option_values(dataset, encoding, kwargs, option):
    cfg = ExperimentConfig(dataset=dataset, encoding=encoding, data_kwargs=kwargs)
    with pytest.raises(ConfigError, match=rf"data_kwargs '{option}' of encoding='{encoding}': "):
        cfg.validate()
    with pytest.raises(ConfigError, match=rf"data_kwargs '{option}'"):  # the command line's and JSON's path
        ExperimentConfig.from_dict(cfg.to_dict())


def test_validate_says_the_encoders_own_message_and_names_every_bad_option():
    with pytest.raises(ConfigError) as info:
        ExperimentConfig(encoding="rate", data_kwargs={"gain": -1}).validate()
    assert "data_kwargs 'gain' of encoding='rate': RateEncoder: gain must be a finite number >= 0, got -1" \
        in str(info.value)
    with pytest.raises(ConfigError) as info:
        ExperimentConfig(data_kwargs={"tau": -1.0, "linear": False, "threshold": 2}).validate()
    assert "data_kwargs 'tau'" in str(info.value) and "data_kwargs 'threshold'" in str(info.value)
    assert "data_kwargs 'linear'" not in str(info.value)


@pytest.mark.parametrize("encoding,kwargs", [
    ("latency", {}), ("latency", {"tau": 3.0, "linear": False, "threshold": 0.05}), ("latency", {"threshold": 0}),
    ("latency", {"linear": 1}), ("latency", {"linear": True, "tau": -1.0}),  # (the linear code ignores tau)
    ("latency", {"shuffle": False, "num_workers": 0, "test_fraction": 0.3}),
    ("rate", {"gain": 0}), ("rate", {"gain": 2.5}), ("rate", {}), ("direct", {}),
])
def test_validate_passes_good_encoder_options(encoding, kwargs):
    for dataset in ("digits", "mnist5k"):
        assert ExperimentConfig(dataset=dataset, encoding=encoding, data_kwargs=kwargs).validate()


def test_the_ipywidgets_form_shows_the_bad_encoder_option():
    pytest.importorskip("ipywidgets")
    from snnlab.widgets import config_form

    form = config_form(cfg=ExperimentConfig(hidden=[16], encoding="rate", num_steps=8))
    form.widgets["data_kwargs"].value = '{"gain": -1}'
    assert form.config() is None
    assert "data_kwargs 'gain' of encoding='rate': RateEncoder: gain must be" in form.error
    assert form.error.replace("\n", "<br>") in html.unescape(form.message.value)  # (shown, HTML-escaped)
    form.widgets["data_kwargs"].value = '{"gain": 0.5}'
    assert form.config() is not None and form.message.value == ""


def test_the_dashboard_form_refuses_the_bad_encoder_option():
    pytest.importorskip("panel")
    from snnlab.dashboard.forms import ConfigForm

    form = ConfigForm(dict(dataset="digits", hidden=[16], num_steps=8, encoding="latency"))
    form.extra.value = '{"data_kwargs": {"threshold": 1.5}}'
    with pytest.raises(ConfigError, match=r"data_kwargs 'threshold' of encoding='latency': LatencyEncoder: "
                                          r"threshold must be in \[0, 1\)"):
        form.config()
    form.extra.value = '{"data_kwargs": {"threshold": 0.5}}'
    assert form.config().data_kwargs == {"threshold": 0.5}


# ---- 3. labels: whole numbers, one shared check ---------------------------------------------------------------
_EV = np.array([(0, 1, 0), (500, 2, 0)], dtype=AUDIO_DTYPE)


def _frames(labels, n=2):
    return EventFrameDataset("toy", list(range(n)), labels, lambda i: _EV, (4, 1, 1), n_time_bins=2)


@pytest.mark.parametrize("labels,index,value", [
    ([0, 1.7], 1, "1.7"), (np.array([2.5, 1.0]), 0, "2.5"), (torch.tensor([0.0, float("nan")]), 1, "nan"),
    (np.array([0.0, np.inf]), 1, "inf"), ([1, -0.5], 1, "-0.5"),
])
def test_event_frame_dataset_refuses_fractional_labels(labels, index, value):
    with pytest.raises(ValueError, match=rf"EventFrameDataset 'toy': label {index} is {value}, not a whole number"):
        _frames(labels)


@pytest.mark.parametrize("labels,match", [
    ([0, True], "EventFrameDataset 'toy': label 1 is True, not a class index"),
    (["0", "1"], "EventFrameDataset 'toy': label 0 is '0', not a class index"),
    ([0, None], "EventFrameDataset 'toy': label 1 is None, not a class index"),
    (np.array([True, False]), "EventFrameDataset 'toy': labels must be integer class indices, got dtype torch.bool"),
    (np.array([1 + 2j, 0]), "EventFrameDataset 'toy': labels must be integer class indices"),
])
def test_event_frame_dataset_refuses_labels_that_are_not_numbers(labels, match):
    with pytest.raises(TypeError, match=re.escape(match)):
        _frames(labels)


def test_event_frame_dataset_refuses_labels_beyond_int64():
    with pytest.raises(ValueError, match="EventFrameDataset 'toy': label 1 is 1e\\+30, beyond int64"):
        _frames([0.0, 1e30])


@pytest.mark.parametrize("labels", [[3, 1], (3, 1), np.array([3, 1]), np.array([3, 1], dtype=np.uint8),
                                    torch.tensor([3, 1]), torch.tensor([3, 1], dtype=torch.int32),
                                    [3.0, 1.0], np.array([3.0, 1.0]), torch.tensor([3.0, 1.0])])
def test_event_frame_dataset_keeps_integer_and_whole_float_labels(labels):
    ds = _frames(labels)
    assert ds.labels.dtype == torch.long and ds.labels.tolist() == [3, 1] and int(ds[0][1]) == 3


def test_datasets_share_one_label_check():
    assert synthetic._as_labels is collate._as_labels  # (SpikeTimesDataset's, now also EventFrameDataset's)
    with pytest.raises(ValueError, match="SpikeTimesDataset: label 1 is 0.5, not a whole number"):
        SpikeTimesDataset(torch.tensor([[0], [1]]), [1, 0.5], 3)
    with pytest.raises(TypeError, match="SpikeTimesDataset: label 0 is True, not a class index"):
        SpikeTimesDataset(torch.tensor([[0], [1]]), [True, 0], 3)
    with pytest.raises(ValueError, match="one label per item"):  # (the shape message both tests expect)
        _frames([[0], [1]])


# ---- attack review: labels past int64 as unsigned or Python ints, near-whole floats -------------------------------
@pytest.mark.parametrize("labels,index,value", [
    (np.array([1, 2**63], dtype=np.uint64), 1, 2**63), (np.array([2**64 - 1, 0], dtype=np.uint64), 0, 2**64 - 1),
    (torch.tensor([0, 2**63], dtype=torch.uint64), 1, 2**63), ([0, 2**63], 1, 2**63), ([0, 1, -2**70], 2, -2**70),
])
def test_labels_past_int64_are_refused_not_wrapped_to_another_class(labels, index, value):
    """A uint64 label past int64 used to become a negative one (2**63 -> -2**63) silently, and a Python int past it was
    a TypeError saying labels must be integer class indices."""
    shown = rf"({value}|{float(value):.7g})".replace("+", r"\+")  # ([0, 2**63]: NumPy makes it a float64 array)
    with pytest.raises(ValueError, match=rf"EventFrameDataset 'toy': label {index} is {shown}, beyond int64"):
        _frames(labels, n=len(labels))


@pytest.mark.parametrize("labels", [np.array([3, 1], dtype=np.uint64), torch.tensor([3, 1], dtype=torch.uint64),
                                    [np.uint64(3), 1]])
def test_uint64_labels_within_int64_are_kept(labels):
    assert _frames(labels).labels.tolist() == [3, 1]


def test_a_near_whole_label_is_not_shown_as_a_whole_number():
    with pytest.raises(ValueError, match=r"label 1 is 1\.0000001, not a whole number"):
        _frames([0, 1.0000001])



def test_encoder_options_good_alone_but_refused_together_are_named_without_text_guessing_for_single_checks():
    """Each option is checked alone first (no option is blamed for another's value); options good alone but refused
    together name the one the encoder's message names, else all of them."""
    from snnlab.training.config import _encoder_option_problems

    huge = _encoder_option_problems(ExperimentConfig(data_kwargs={"tau": 10**400, "linear": False}))
    assert len(huge) == 1 and huge[0].startswith("data_kwargs ['linear', 'tau'] together, of encoding='latency'")
    both = _encoder_option_problems(ExperimentConfig(data_kwargs={"tau": -1, "linear": "no"}))
    assert len(both) == 1 and both[0].startswith("data_kwargs 'linear' of encoding='latency'")
