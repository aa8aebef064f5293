"""Ray entrypoint of the nightly inference stage: ``actrec infer`` under another name.

Locally (starts a Ray on 127.0.0.1 unless ACTREC_RAY_ADDRESS / RAY_ADDRESS name a cluster):

    python ray_jobs/nightly_inference.py --date 2026-11-24

On a cluster (RAY_ADDRESS=http://head:8265 for the Jobs API):

    ray job submit --working-dir . -- python ray_jobs/nightly_inference.py --date 2026-11-24

Every ``actrec infer`` flag works here (``--help`` lists them).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    from actrec_batch.cli import main as actrec_main

    return actrec_main(["infer", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
