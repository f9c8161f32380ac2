"""``python -m trm_tui.cli``: the same as the ``trm-tui`` script."""

import sys

from trm_tui.cli.main import main

if __name__ == "__main__":  # not when a tool walks the package's modules
    sys.exit(main())
