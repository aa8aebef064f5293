"""What the submitting side (an Airflow worker) passes into a Ray job's ``runtime_env.env_vars``:
an allow-list, declared here once (:data:`JOB_ENV`). Nothing else goes.

Ray keeps ``runtime_env`` in its job table and shows it in the dashboard and the Jobs API, so only
settings that are safe to show go, and only those the inference job reads:

* the object store (``ACTREC_STORE``), the Ray and decoding settings that shape the run, the log
  level, and the test suite's fault injection (``ACTREC_FAULT_*``);
* where S3 is, never who is asking: ``AWS_REGION``, ``AWS_DEFAULT_REGION`` and ``AWS_ENDPOINT_URL``
  (an S3-compatible endpoint).

Never sent:

* AWS credentials (``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN``,
  ``AWS_PROFILE`` and the rest). The Ray nodes use their own: an instance profile, or the node's
  environment (``ray start`` runs with them). Static keys in a job would override the node's role,
  and a container or pod role's credentials (MWAA, ECS, EKS) do not exist on a node at all.
* ``ACTREC_WAREHOUSE_URL`` (it holds a password). The job never opens the warehouse: it writes the
  run's events and records to the store, and the Airflow-side publish task writes the warehouse.
* ``ACTREC_RAY_ADDRESS``: inside a job, Ray's own ``RAY_ADDRESS`` names the cluster.
* ``ACTREC_CONFIG``: a file on the submitting machine (it may hold the warehouse URL too).
* anything not listed here, a setting added later included, until it is added on purpose.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

JOB_ENV: tuple[str, ...] = (
    # the object store
    "ACTREC_STORE",
    # Ray: how the inference runs
    "ACTREC_RUNNER",
    "ACTREC_DECODE_CPUS",
    "ACTREC_TASK_RETRIES",
    "ACTREC_INFERENCE_ACTORS",
    "ACTREC_ACTOR_GPUS",
    "ACTREC_ACTOR_CPUS",
    "ACTREC_MAX_INFLIGHT_UNITS",
    "ACTREC_BATCH_FRAMES",
    # decoding and work units
    "ACTREC_PROBE_WORKERS",
    "ACTREC_PROBE_TIMEOUT_S",
    "ACTREC_CONTENT_ID",
    "ACTREC_MAX_VIDEO_BYTES",
    "ACTREC_SEGMENT_S",
    "ACTREC_UNIT_TIMEOUT_S",
    "ACTREC_FILE_TIME_PATTERN",
    "ACTREC_CHAIN_TOLERANCE_S",
    # logging
    "ACTREC_LOG_LEVEL",
    "ACTREC_DEBUG",
    # fault injection of the test suite (actrec_batch.pipeline.work.FAULT_ENV)
    "ACTREC_FAULT_CRASH",
    "ACTREC_FAULT_HANG",
    "ACTREC_FAULT_SLOW",
    # where S3 is (an S3-compatible endpoint, the region), never the credentials
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
)


def job_env(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The :data:`JOB_ENV` variables set in ``env`` (default: ``os.environ``), for a job's
    ``runtime_env.env_vars``."""
    source = os.environ if env is None else env
    return {k: source[k] for k in JOB_ENV if source.get(k) is not None}


def withheld(env: Mapping[str, str] | None = None) -> list[str]:
    """The names (never the values) of the ``ACTREC_*`` and ``AWS_*`` variables in ``env`` that
    stay behind, for the submission's log line."""
    source = os.environ if env is None else env
    return sorted(k for k in source if k.startswith(("ACTREC_", "AWS_")) and k not in JOB_ENV)
