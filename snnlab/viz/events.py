"""Event-camera frames (``[2, H, W]``: channel 0 = OFF, 1 = ON, as tonic's ``ToFrame``) and animations."""
from __future__ import annotations

from typing import Any

import holoviews as hv
import numpy as np

from . import theme
from ._util import ensure_bokeh, grid_image, to_numpy

__all__ = ["event_frame", "event_animation"]

_MODES = ("rgb", "signed", "counts")


def _image(z: np.ndarray, **params: Any) -> hv.Element:
    H, W = z.shape[:2]
    return grid_image(z, -0.5, W - 0.5, -0.5, H - 0.5, kdims=["x", "y"], **params)


def _frame_element(f: np.ndarray, mode: str, vmax: float, label: str) -> hv.Element:
    """One frame ``[2, H, W]`` or ``[H, W]`` as an element; ``vmax`` scales colours."""
    if f.ndim == 2:
        signed = mode == "signed" or (f < 0).any()
        img = _image(f, vdims=["events"], label=label)
        lim = (-vmax, vmax) if signed else (0, vmax)
        return img.opts(cmap=theme.CMAP_SIGNED if signed else theme.CMAP_COUNTS, clim=lim, colorbar=True,
                        invert_yaxis=True, tools=["hover"], backend="bokeh")
    off, on = f[0], f[1]
    if mode == "signed":
        return _image(on - off, vdims=["on_minus_off"], label=label).opts(
            cmap=theme.CMAP_SIGNED, clim=(-vmax, vmax), colorbar=True, invert_yaxis=True, tools=["hover"],
            backend="bokeh")
    if mode == "counts":
        return _image(on + off, vdims=["events"], label=label).opts(
            cmap=theme.CMAP_COUNTS, clim=(0, vmax), colorbar=True, invert_yaxis=True, tools=["hover"],
            backend="bokeh")
    a_on = np.clip(on / vmax, 0.0, 1.0)
    a_off = np.clip(off / vmax, 0.0, 1.0)
    rgb = [np.clip(a_on * theme.ON_RGB[c] + a_off * theme.OFF_RGB[c], 0.0, 1.0) for c in range(3)]
    return _image(np.dstack(rgb), vdims=["R", "G", "B"], label=label).opts(
        invert_yaxis=True, backend="bokeh")


def _check_mode(mode: str, name: str) -> None:
    if mode not in _MODES:
        raise ValueError(f"{name}: mode must be one of {_MODES}, got {mode!r}")


def _vmax(a: np.ndarray, vmax: float | None) -> float:
    if vmax is not None:
        return float(vmax)
    m = float(np.abs(a).max()) if a.size else 0.0
    return m if m > 0 else 1.0


def event_frame(frame: Any, mode: str = "rgb", vmax: float | None = None, label: str = "") -> hv.Element:
    """One event frame as an image, y axis pointing down like the sensor.

    ``frame``: ``[2, H, W]`` event counts per polarity (index 0 = OFF, 1 = ON) or ``[H, W]``.
    ``mode``: ``"rgb"`` -- an ``hv.RGB`` on black, ON in :data:`theme.ON_RGB`, OFF in
    :data:`theme.OFF_RGB`, brightness = count / ``vmax`` (default: the frame's maximum);
    ``"signed"`` -- an ``hv.Image`` of ``ON - OFF`` with a diverging map (vdim ``on_minus_off``);
    ``"counts"`` -- ``ON + OFF``. ``[H, W]`` frames are shown as counts (signed if negative).
    Pixel ``(x, y)`` = column ``x``, row ``y``: ``img[x, y]``.

    Example:
        >>> import torch
        >>> from snnlab.viz import event_frame
        >>> f = torch.zeros(2, 34, 34); f[1, 5, 7] = 3; f[0, 5, 7] = 1
        >>> float(event_frame(f, mode="signed")[7, 5])
        2.0
    """
    _check_mode(mode, "event_frame")
    ensure_bokeh()
    f = to_numpy(frame).astype(float)
    if not (f.ndim == 2 or (f.ndim == 3 and f.shape[0] == 2)):
        raise ValueError(f"event_frame: expected [2, H, W] or [H, W], got shape {f.shape}")
    scale = f[1] - f[0] if (mode == "signed" and f.ndim == 3) else (f.sum(0) if mode == "counts" and f.ndim == 3 else f)
    return _frame_element(f, mode, _vmax(scale, vmax), label).opts(width=theme.HEIGHT + 50, height=theme.HEIGHT,
                                                                    backend="bokeh")


def event_animation(frames: Any, sample: int | None = None, mode: str = "rgb", vmax: float | None = None,
                    dynamic: bool = False, dt: float | None = None) -> hv.HoloMap | hv.DynamicMap:
    """Event frames over time with a time slider.

    ``frames``: ``[T, 2, H, W]`` (or ``[T, H, W]``), or a time-major batch ``[T, B, 2, H, W]`` with
    ``sample`` picking one. Every frame uses the same colour scale (``vmax``: default the largest
    value over all frames) so brightness is comparable over time. ``dynamic=False``: an
    ``hv.HoloMap`` with one frame per step (all embedded -- fine for tens of frames);
    ``dynamic=True``: an ``hv.DynamicMap`` that draws a frame when the slider moves (needs a live
    Python kernel / Panel server). The key dimension is ``time`` (steps, or seconds with ``dt``).

    Example:
        >>> import torch
        >>> from snnlab.viz import event_animation
        >>> hm = event_animation(torch.rand(10, 2, 16, 16))
        >>> len(hm)
        10
    """
    _check_mode(mode, "event_animation")
    ensure_bokeh()
    a = to_numpy(frames).astype(float)
    if a.ndim == 5:
        if sample is None:
            raise ValueError(f"event_animation: got a batch of shape {a.shape}; pass sample=<index>")
        if not -a.shape[1] <= int(sample) < a.shape[1]:
            raise IndexError(f"event_animation: sample {sample} out of range for a batch of {a.shape[1]}")
        a = a[:, int(sample)]
    if a.ndim not in (3, 4) or (a.ndim == 4 and a.shape[1] != 2):
        raise ValueError(f"event_animation: expected [T, 2, H, W], [T, H, W] or [T, B, 2, H, W], got {a.shape}")
    if a.shape[0] == 0:
        raise ValueError("event_animation: the frames have no time steps (T = 0): nothing to animate")
    if mode == "signed" and a.ndim == 4:
        scale = _vmax(a[:, 1] - a[:, 0], vmax)
    elif mode == "counts" and a.ndim == 4:
        scale = _vmax(a.sum(1), vmax)
    else:
        scale = _vmax(a, vmax)
    T = a.shape[0]
    step = 1.0 if dt is None else float(dt)
    tdim = hv.Dimension("time", unit=None if dt is None else "s")
    size = dict(width=theme.HEIGHT + 50, height=theme.HEIGHT)
    if dynamic:
        times = [t * step for t in range(T)]

        def draw(time: float) -> hv.Element:
            k = int(round(time / step))
            return _frame_element(a[k], mode, scale, "").opts(backend="bokeh", **size)

        return hv.DynamicMap(draw, kdims=[tdim.clone(values=times)])
    return hv.HoloMap({t * step: _frame_element(a[t], mode, scale, "").opts(backend="bokeh", **size)
                       for t in range(T)}, kdims=[tdim])
