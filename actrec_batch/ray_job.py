"""The Ray job's entrypoint, run from the installed package: ``python -m actrec_batch.ray_job``.

It is ``actrec infer`` under another name (every ``actrec infer`` flag works; ``--help`` lists
them), and what the Airflow infer task submits through the Ray Jobs API
(:func:`actrec_batch.pipeline.ray_jobs_api.infer_entrypoint`). The nodes run the package their
image installed (``pip install 'actrec-batch[worker]'``, ``scripts/install.sh worker``): no source
tree and no uploaded ``working_dir`` are needed.

    ray job submit --address http://head:8265 -- python -m actrec_batch.ray_job --date 2026-11-24 --json

``ray_jobs/nightly_inference.py`` in a checkout is the same entrypoint as a script.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    from actrec_batch.cli import main as actrec_main

    return actrec_main(["infer", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
