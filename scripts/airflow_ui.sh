#!/usr/bin/env bash
# `make airflow`: a local Airflow 3 (api-server, scheduler, dag-processor via `airflow standalone`)
# on 127.0.0.1 with this repo's DAGs, the demo's metadata DB (.actrec/airflow) and the embedded
# defaults (.actrec/store, .actrec/warehouse.duckdb). Ctrl-C stops it. The task logs it shows are
# the files under $AIRFLOW_HOME/logs that `make demo`'s scheduler wrote (actrec_batch/demo_airflow.py).
# Login: admin / admin (a local development login written below; never use it on a shared host).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
export AIRFLOW_HOME=${AIRFLOW_HOME:-$ROOT/.actrec/airflow}
PORT=${ACTREC_AIRFLOW_PORT:-8080}
mkdir -p "$AIRFLOW_HOME"
export AIRFLOW__CORE__DAGS_FOLDER=$ROOT/dags AIRFLOW__CORE__LOAD_EXAMPLES=False
export AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=${AIRFLOW__DATABASE__SQL_ALCHEMY_CONN:-sqlite:///$AIRFLOW_HOME/airflow.db}
export AIRFLOW__CORE__EXECUTOR=LocalExecutor
export AIRFLOW__API__HOST=127.0.0.1 AIRFLOW__API__PORT=$PORT AIRFLOW__API__BASE_URL=http://127.0.0.1:$PORT
export AIRFLOW__CORE__EXECUTION_API_SERVER_URL=http://127.0.0.1:$PORT/execution/
export AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS=admin:admin
export AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE=$AIRFLOW_HOME/passwords.json
echo '{"admin": "admin"}' > "$AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"
export RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 RAY_USAGE_STATS_ENABLED=0
export ACTREC_STORE=${ACTREC_STORE:-$ROOT/.actrec/store}
export ACTREC_WAREHOUSE_URL=${ACTREC_WAREHOUSE_URL:-duckdb:///$ROOT/.actrec/warehouse.duckdb}
export PATH=$ROOT/.venv/bin:$PATH
AIRFLOW=$ROOT/.venv/bin/airflow
"$AIRFLOW" db migrate >/dev/null
"$AIRFLOW" pools set actrec_inference 1 "actrec inference capacity" >/dev/null
echo "==> Airflow UI: http://127.0.0.1:$PORT  (login admin / admin); DAGs: actrec_nightly, actrec_rescore"
echo "==> make demo's runs and their task logs: http://127.0.0.1:$PORT/dags/actrec_nightly/runs"
echo "==> store $ACTREC_STORE, warehouse ${ACTREC_WAREHOUSE_URL}; Ctrl-C to stop"
exec "$AIRFLOW" standalone
