"""Interactive front ends: a toolkit-free live training session, ipywidgets for JupyterLab."""
from .session import TrainingSession

__all__ = ["TrainingSession"]
