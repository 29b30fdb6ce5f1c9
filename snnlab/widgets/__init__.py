"""Interactive front ends: a toolkit-free live training session, ipywidgets for JupyterLab.

============================  =====================================================================
:class:`TrainingSession`      background training run with plot-ready live state (no UI toolkit)
:func:`config_form`           :class:`ConfigForm`, widgets generated from ``ExperimentConfig.schema()``
:class:`TrainerWidget`        form + Start/Pause/Resume/Stop + progress + live curves and raster
:class:`RasterExplorer`       spikes and membranes of a model on a batch, per sample/layer/neuron
:class:`DelayViewer`          delay matrix, histogram, Gaussian kernels and evolution of delay layers
:class:`TradeoffExplorer`     runs of a ``RunStore`` on two metrics with the Pareto front
:class:`HoloViewsWidget`      a HoloViews object inside an ipywidgets layout
:func:`notebook_setup`        the Bokeh notebook extension, embedded when offline (plots render anyway)
============================  =====================================================================

The widget classes are imported lazily (on first access), so ``from snnlab.widgets import
TrainingSession`` does not import Panel. Plots are live Bokeh widgets when ``jupyter_bokeh`` is installed.
"""
from .session import TrainingSession

try:  # eager: the function ``config_form`` shares its name with its module
    from .config_form import ConfigForm, config_form
except ImportError:  # pragma: no cover - ipywidgets missing; TrainingSession still works
    pass

_LAZY = {
    "ConfigForm": "config_form", "config_form": "config_form",
    "TrainerWidget": "trainer_widget",
    "RasterExplorer": "raster_explorer",
    "DelayViewer": "delay_viewer",
    "TradeoffExplorer": "tradeoff_explorer",
    "HoloViewsWidget": "_hv", "LivePlot": "_hv",
    "notebook_setup": "notebook",
}

# the optional packages each module imports (default: ipywidgets and holoviews), named in the error when one is missing
_NEEDS = {"notebook": ("holoviews",), "config_form": ("ipywidgets",)}

__all__ = ["TrainingSession", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        from snnlab.extras import require

        for dependency in _NEEDS.get(_LAZY[name], ("ipywidgets", "holoviews")):
            require(dependency, extra="lab", feature=f"snnlab.widgets.{name}")
        module = importlib.import_module(f".{_LAZY[name]}", __name__)
        return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
