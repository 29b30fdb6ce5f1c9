"""Bad input to the widgets gives a clear message: DelayViewer's synapses text, RasterExplorer's data and labels."""
import warnings

import pytest
import torch

pytest.importorskip("ipywidgets")

import snnlab as sl  # noqa: E402
from snnlab.widgets import DelayViewer, RasterExplorer  # noqa: E402


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def test_delay_viewer_separators_only_is_a_message_not_an_exception():
    v = DelayViewer(sl.DelayedLinear(6, 3, max_delay=5, seed=0))
    for text in [",", " , ", ";", ",;,"]:
        v.synapses.value = "a-b"
        assert "a-b" in v.message.value
        v.synapses.value = text  # raised ValueError("gaussian_kernels: synapses is empty") out of the observer
        assert "names no synapse" in v.message.value and "a-b" not in v.message.value, text
        assert "no kernels" in str(v.kernel_plot.object.data)  # not the last synapses' kernels
        with pytest.raises(ValueError, match="names no synapse"):
            v.parse_synapses()
        v.synapses.value = "0-3"  # a good value clears the message
        assert v.message.value == "" and v.parse_synapses() == [(0, 3)]
    v.close()


def _net():
    return sl.Sequential(torch.nn.Linear(4, 8), sl.LIF())


@pytest.mark.parametrize("empty", [[], (), torch.utils.data.DataLoader(torch.utils.data.TensorDataset(
    torch.zeros(0, 10, 4)), batch_size=2)])
def test_raster_explorer_empty_loader_says_it_has_no_batch(empty):
    with pytest.raises(ValueError, match="RasterExplorer: the data .* has no batch"):
        RasterExplorer(_net(), empty)


def test_raster_explorer_data_that_is_not_iterable_is_a_type_error():
    with pytest.raises(TypeError, match="RasterExplorer: expected a tensor"):
        RasterExplorer(_net(), 5)


@pytest.mark.parametrize("labels", [torch.zeros(3, 2), torch.zeros(3, 1), torch.zeros(3, 2, 2)])
def test_raster_explorer_refuses_labels_that_are_not_one_per_sample(labels):
    x = torch.rand(10, 3, 4) * 3
    with pytest.raises(ValueError, match=r"labels must hold one scalar per sample \(shape \[B\]\), got shape \(3, "):
        RasterExplorer(_net(), (x, labels))


def test_raster_explorer_keeps_accepting_one_label_per_sample():
    ex = RasterExplorer(_net(), (torch.rand(10, 3, 4) * 3, torch.tensor([0, 1, 2])))
    assert ex.labels.tolist() == [0, 1, 2]
    ex.close()
    one = RasterExplorer(_net(), (torch.rand(10, 1, 4) * 3, torch.tensor(4)))  # a scalar for a one-sample batch
    assert one.labels.tolist() == [4]
    one.close()
