"""``python -m actrec_batch.cli``: the same as ``actrec``."""

import sys

from actrec_batch.cli import main

sys.exit(main())
