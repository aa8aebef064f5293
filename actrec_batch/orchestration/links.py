"""The infer task's extra links (buttons on the task instance in the Airflow UI):

* **Ray job**: the Ray dashboard's page of the job the try submitted
  (``http://head:8265/#/jobs/<submission id>``); none when the task ran on a local Ray.
* **Data Docs**: the run's events Data Docs (``reports/date=D/run=<run_id>/data_docs/index.html``
  in the store), written by the ``validate_events`` task that follows.
* **Cost report** and **Quality report**: the run's ``cost.html`` and ``quality.html`` beside them,
  written by the ``cost`` and ``quality`` tasks at the end of the DAG.

The operator pushes the URLs as XComs (:data:`RAY_JOB_URL`, :data:`DATA_DOCS_URI`, ...); each link
reads its XCom back. In Airflow 3 the worker calls ``get_link`` when the try ends and stores the
link as an XCom of its own, which the UI reads: no plugin is needed to register them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from airflow.sdk import BaseOperatorLink

if TYPE_CHECKING:
    from airflow.sdk import BaseOperator
    from airflow.sdk.types import TaskInstanceKey

RAY_JOB_URL = "ray_job_url"
DATA_DOCS_URI = "data_docs_uri"
COST_REPORT_URI = "cost_report_uri"
QUALITY_REPORT_URI = "quality_report_uri"


def ray_job_url(address: str, submission_id: str) -> str:
    """The dashboard's page of a job: ``<Jobs API address>/#/jobs/<submission id>``."""
    return f"{address.rstrip('/')}/#/jobs/{submission_id}"


class _XComLink(BaseOperatorLink):
    key: ClassVar[str]

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        from airflow.sdk.execution_time.xcom import XCom  # when the try ends, not at parse time

        return XCom.get_value(ti_key=ti_key, key=self.key) or ""


class RayJobLink(_XComLink):
    name = "Ray job"
    key = RAY_JOB_URL


class DataDocsLink(_XComLink):
    name = "Data Docs"
    key = DATA_DOCS_URI


class CostReportLink(_XComLink):
    name = "Cost report"
    key = COST_REPORT_URI


class QualityReportLink(_XComLink):
    name = "Quality report"
    key = QUALITY_REPORT_URI
