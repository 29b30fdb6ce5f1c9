"""Progress bars that never stop the work they report on.

A script that reads only the first lines of ``snnlab train ... 2>&1`` (``| grep -m1``, ``| head``, a pager quit
early) closes the pipe the bar writes to; a terminal that hangs up (an ssh session dropped) fails writes with
``EIO``. The bar's next write would raise inside the training loop and fail the run. :func:`progress_bar` writes
through :class:`QuietStream`, which drops such writes: the bar goes quiet for the rest of the run and the work goes
on. Only the bar's stream is affected (no file descriptor is redirected).
"""
from __future__ import annotations

import errno
import sys
from typing import Any, TextIO

#: write errors that mean the reader of the stream has gone (a closed pipe, a hung-up terminal)
GONE_ERRNOS = frozenset({errno.EPIPE, errno.EIO})


class QuietStream:
    """A text stream's stand-in whose ``write``/``flush`` drop their text, quietly, from the first one that fails
    because the reader has gone (``BrokenPipeError``, ``EPIPE``, ``EIO``); other errors are raised. Every other
    attribute (``fileno``, ``isatty``, ``encoding``...) is the stream's. ``gone`` says whether it went quiet.

    Example:
        >>> import io
        >>> class Closed(io.StringIO):
        ...     def write(self, text):
        ...         raise BrokenPipeError(32, "Broken pipe")
        >>> out = QuietStream(Closed())
        >>> out.write("epoch 1/3"), out.gone, out.write("more"), out.flush()
        (9, True, 4, None)
    """

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.gone = False

    def _quiet(self, exc: OSError) -> None:
        if not isinstance(exc, BrokenPipeError) and exc.errno not in GONE_ERRNOS:
            raise exc
        self.gone = True

    def write(self, text: str) -> int:
        if not self.gone:
            try:
                return self.stream.write(text)
            except OSError as exc:
                self._quiet(exc)
        return len(text)

    def flush(self) -> None:
        if not self.gone:
            try:
                self.stream.flush()
            except OSError as exc:
                self._quiet(exc)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stream, name)


def progress_bar(*args: Any, **kwargs: Any):
    """``tqdm.auto.tqdm(*args, **kwargs)`` writing to stderr through a :class:`QuietStream` (unless ``file`` is given;
    a notebook's bar, a widget, is left as tqdm makes it); disabled where there is no stderr (``sys.stderr`` None).

    Example:
        >>> bar = progress_bar(total=3, disable=True)
        >>> bar.update(1); bar.close()
    """
    from tqdm.auto import tqdm

    if "file" not in kwargs and not any(c.__module__ == "tqdm.notebook" for c in tqdm.__mro__):
        if sys.stderr is None:  # (no stderr at all: started with 2>&-, or by pythonw) no bar, the work goes on
            kwargs["disable"] = True
        else:
            kwargs["file"] = QuietStream(sys.stderr)
    return tqdm(*args, **kwargs)
