"""``python -m snnlab``: the ``snnlab`` command line (see :mod:`snnlab.cli`)."""
import sys

from snnlab.cli import main

if __name__ == "__main__":
    sys.exit(main())
