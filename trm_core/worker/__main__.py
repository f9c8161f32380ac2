"""``python -m trm_core.worker --run-dir DIR [...]``: see ``trm_core.worker.process``."""

import sys

from trm_core.worker.process import main

sys.exit(main())
