"""Test set-up: make tests/reference.py importable and run Triton on the CPU interpreter by default
(``SNNLAB_TEST_DEVICE=cuda`` leaves Triton compiled for the GPU: see tests/triton_device.py)."""
import os
import signal
import sys
from pathlib import Path

import pytest

if os.environ.get("SNNLAB_TEST_DEVICE", "cpu").strip().lower() in ("", "cpu"):
    os.environ.setdefault("TRITON_INTERPRET", "1")
sys.path.insert(0, str(Path(__file__).parent))

# A test run launched in the background by a non-interactive shell (`cmd &`, as CI scripts do) inherits SIGINT
# as SIG_IGN, and Python then keeps it ignored: the Ctrl-C tests need Python's own handler from the start.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

SHARED_DATA = Path(os.environ.get("SNNLAB_SHARED_DATA", Path(__file__).resolve().parents[1].parent / "shared" / "data"))


@pytest.fixture(autouse=True)
def _python_sigint_handler(request):
    """Each test starts with Python's own SIGINT handler (the Ctrl-C tests rely on it). A test (or a library it
    drives) that leaves another handler behind is named in a warning, and the handler is put back so later tests
    are not affected."""
    import threading
    import warnings

    yield
    if threading.current_thread() is not threading.main_thread():
        return
    now = signal.getsignal(signal.SIGINT)
    if now is not signal.default_int_handler:
        warnings.warn(f"{request.node.nodeid} left SIGINT's handler as {now!r}; put back to Python's own",
                      RuntimeWarning)
        signal.signal(signal.SIGINT, signal.default_int_handler)
