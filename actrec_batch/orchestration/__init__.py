"""Airflow-facing glue: ``tasks`` (what each DAG task calls; Airflow-free, JSON in and out),
``ray_operator`` (the infer task's operator: a local Ray, or a Ray job through the Jobs API, waited
for in the worker or, deferrable, in the triggerer), ``triggers`` (that trigger) and ``links`` (the
operator's extra links). Only ``ray_operator``, ``triggers``, ``links`` and ``dags/`` import Airflow."""
