"""Load the Bokeh/HoloViews notebook extension so that plots render with or without internet access.

``hv.extension("bokeh")`` makes JupyterLab fetch Bokeh's and Panel's JavaScript from their CDNs;
on a machine without internet the notebook computes everything but every plot stays blank.
``inline=True`` embeds that JavaScript in the notebook instead (about 6 MB in the first cell's
output), which works offline, widgets included (checked in JupyterLab with every external request
blocked: tests/browser/test_notebook_offline.py).
"""
from __future__ import annotations

import os
import socket

from snnlab.training.threads import start_thread

BOKEH_CDN = ("cdn.bokeh.org", 443)


def cdn_reachable(address: tuple[str, int] = BOKEH_CDN, timeout: float = 1.5) -> bool:
    """Whether a TCP connection to Bokeh's CDN opens within ``timeout`` seconds, name lookup included.

    The lookup runs in a daemon thread (``getaddrinfo`` has no timeout of its own and can wait tens of
    seconds for an unreachable name server); this machine's view, which is usually the browser's.

    Example:
        >>> cdn_reachable(("localhost", 9), timeout=0.5)   # nothing listens on the discard port
        False
    """
    result: list[bool] = []

    def probe() -> None:
        try:
            with socket.create_connection(address, timeout=timeout):
                result.append(True)
        except OSError:
            result.append(False)

    worker = start_thread(probe, name="snnlab-cdn-probe")  # (in a copy of the caller's context)
    worker.join(timeout)
    return bool(result and result[0])


def notebook_setup(inline: bool | None = None) -> bool:
    """Load HoloViews' Bokeh extension in a notebook; returns whether its JavaScript was embedded.

    Args:
        inline: ``True`` embeds the JavaScript (works offline), ``False`` loads it from the CDN (a
            light notebook); ``None`` (default) embeds it when the environment variable
            ``SNNLAB_OFFLINE`` is set to a true value or Bokeh's CDN cannot be reached from here.

    Example:
        >>> from snnlab.widgets.notebook import notebook_setup
        >>> notebook_setup(inline=True)    # doctest: +SKIP
        True
    """
    if inline is None:
        forced = os.environ.get("SNNLAB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")
        inline = forced or not cdn_reachable()
    import holoviews as hv

    hv.extension("bokeh", inline=bool(inline))
    return bool(inline)
