"""Ray entrypoint of the nightly inference stage, as a script in a checkout: the same as
``python -m actrec_batch.ray_job`` (which is what the infer task submits; it needs no checkout).

Locally (starts a Ray on 127.0.0.1 unless ACTREC_RAY_ADDRESS / RAY_ADDRESS name a cluster):

    python ray_jobs/nightly_inference.py --date 2026-11-24

On a cluster whose nodes run this checkout's code (development; RAY_ADDRESS=http://head:8265):

    ray job submit --working-dir . -- python ray_jobs/nightly_inference.py --date 2026-11-24

Every ``actrec infer`` flag works here (``--help`` lists them).
"""

from __future__ import annotations

import sys

from actrec_batch.ray_job import main

if __name__ == "__main__":
    sys.exit(main())
