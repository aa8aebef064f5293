"""Airflow-facing glue: ``tasks`` (what each DAG task calls; Airflow-free, JSON in and out) and
``ray_operator`` (the infer task's operator: a local Ray, or a Ray job through the Jobs API).
Only ``ray_operator`` and ``dags/`` import Airflow."""
