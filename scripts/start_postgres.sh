#!/usr/bin/env bash
# Start the machine's PostgreSQL cluster on 127.0.0.1 and create the test role and database.
# Idempotent: safe to run when the server is already up and the role/database exist.
# Prints the SQLAlchemy URL to use as the last line (also written to .actrec/test-services.env).
set -euo pipefail
PG_ROLE=${ACTREC_PG_ROLE:-actrec}
PG_PASS=${ACTREC_PG_PASSWORD:-actrec}   # local throwaway test cluster only; never a real credential
PG_DB=${ACTREC_PG_DB:-actrec_test}
PG_PORT=${ACTREC_PG_PORT:-5432}

if [[ -n "${ACTREC_TEST_PG_URL:-}" ]]; then
  echo "==> using ACTREC_TEST_PG_URL from the environment"; exit 0
fi
as_postgres() {
  if [[ $(id -u) -eq 0 ]]; then su postgres -s /bin/bash -c "$1"
  elif command -v sudo >/dev/null; then sudo -u postgres bash -c "$1"
  else echo "start_postgres: need root or sudo to manage the local cluster; or set ACTREC_TEST_PG_URL" >&2; exit 1
  fi
}
if ! command -v pg_lsclusters >/dev/null; then
  echo "start_postgres: PostgreSQL is not installed. Fix: apt-get install -y postgresql, or set ACTREC_TEST_PG_URL" >&2
  exit 1
fi
read -r PG_VER PG_CLUSTER _ <<<"$(pg_lsclusters -h | head -n1)"
if [[ -z "${PG_VER:-}" ]]; then
  echo "start_postgres: no PostgreSQL cluster found. Fix: pg_createcluster 15 main" >&2; exit 1
fi
if ! pg_lsclusters -h | awk -v v="$PG_VER" -v c="$PG_CLUSTER" '$1==v && $2==c {print $4}' | grep -q online; then
  echo "==> starting PostgreSQL $PG_VER/$PG_CLUSTER"
  if [[ $(id -u) -eq 0 ]]; then pg_ctlcluster --skip-systemctl-redirect "$PG_VER" "$PG_CLUSTER" start
  else sudo pg_ctlcluster --skip-systemctl-redirect "$PG_VER" "$PG_CLUSTER" start; fi
fi
for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p "$PG_PORT" && break; sleep 0.5; done
pg_isready -h 127.0.0.1 -p "$PG_PORT" >/dev/null || { echo "start_postgres: server not ready on 127.0.0.1:$PG_PORT" >&2; exit 1; }
as_postgres "psql -v ON_ERROR_STOP=1 -q -p $PG_PORT" <<SQL
DO \$\$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$PG_ROLE') THEN
    CREATE ROLE $PG_ROLE LOGIN PASSWORD '$PG_PASS' CREATEDB;
  ELSE
    ALTER ROLE $PG_ROLE LOGIN PASSWORD '$PG_PASS' CREATEDB;
  END IF;
END \$\$;
SELECT 'CREATE DATABASE $PG_DB OWNER $PG_ROLE' WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = '$PG_DB')
\gexec
SQL
url="postgresql+psycopg://$PG_ROLE:$PG_PASS@127.0.0.1:$PG_PORT/$PG_DB"
mkdir -p .actrec
echo "ACTREC_TEST_PG_URL=$url" > .actrec/test-services.env
echo "==> PostgreSQL $PG_VER ready on 127.0.0.1:$PG_PORT, database $PG_DB"
