"""One component's share of a night, run in a process signed with that component's credentials:

    python tests/iam_night.py airflow-start DATE RUN_ID    # discover + validate_manifest (Airflow tasks)
    python tests/iam_night.py ray DATE RUN_ID              # the Ray job: python -m actrec_batch.ray_job
    python tests/iam_night.py airflow-end DATE RUN_ID      # validate_events, publish, cost, quality

Each step calls what production calls (the DAG's task functions, the Ray job's entrypoint), with
the store, warehouse and credentials from the environment (``ACTREC_*``, ``AWS_*``). The last line
printed is a JSON summary. tests/test_iam_emulator.py runs them under the Terraform roles' policies.
"""

from __future__ import annotations

import json
import sys


def main(step: str, date: str, run_id: str) -> int:
    from actrec_batch.orchestration import tasks

    if step == "airflow-start":
        out = {
            "discover": tasks.discover(date, run_id),
            "validate_manifest": tasks.validate_manifest(date, run_id),
        }
    elif step == "ray":
        from actrec_batch.ray_job import main as ray_job

        rc = ray_job(["--date", date, "--run-id", run_id, "--runner", "ray", "--local-ray-cpus", "2"])
        if rc:
            return rc
        out = {"infer": tasks.infer_result(date, run_id)}
    elif step == "airflow-end":
        out = {"validate_events": tasks.validate_events(date, run_id)}
        out["publish"] = tasks.publish(date, run_id, [])
        out["cost"] = tasks.cost(date, run_id)
        out["quality"] = tasks.quality(date, run_id)
    else:
        raise SystemExit(f"unknown step {step!r}: airflow-start, ray or airflow-end")
    print(json.dumps(out, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:4]))
