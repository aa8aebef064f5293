import sys

from actrec_batch.cli import main

sys.exit(main())
