#!/usr/bin/env bash
# Run the whole suite against real services: PostgreSQL (started by scripts/start_postgres.sh)
# and moto's S3 server on 127.0.0.1 (started here, stopped on exit). Extra args go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
export RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 RAY_USAGE_STATS_ENABLED=0 PYTHONUNBUFFERED=1
export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_DEFAULT_REGION=us-east-1
export NO_PROXY=127.0.0.1,localhost no_proxy=127.0.0.1,localhost
# No telemetry from anything under test: CI's network may drop (not refuse) outside connections.
export DO_NOT_TRACK=1 SCARF_ANALYTICS=false GX_ANALYTICS_ENABLED=false CHECKPOINT_DISABLE=1
set -a; [[ -f .actrec/test-services.env ]] && source .actrec/test-services.env; set +a

mkdir -p .actrec
rm -f .actrec/wedged-test.txt
endpoint_file=.actrec/s3-endpoint
rm -f "$endpoint_file"
.venv/bin/python tests/s3_server.py 0 > "$endpoint_file" &
s3_pid=$!
trap 'kill $s3_pid 2>/dev/null || true; wait $s3_pid 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do [[ -s $endpoint_file ]] && break; sleep 0.1; done
[[ -s $endpoint_file ]] || { echo "run_tests: moto S3 server did not start" >&2; exit 1; }
export ACTREC_TEST_S3_ENDPOINT=$(cat "$endpoint_file")
echo "==> S3 (moto) on $ACTREC_TEST_S3_ENDPOINT; PostgreSQL at ${ACTREC_TEST_PG_URL%%:*}://...@127.0.0.1"
if [[ -n "${CI:-}" ]]; then export ACTREC_REQUIRE_SERVICES=1; fi
# Under it nothing may skip: a skipped test (a missing service, a broken import) fails (tests/conftest.py).
if [[ "${ACTREC_REQUIRE_SERVICES:-}" == 1 ]]; then echo "==> ACTREC_REQUIRE_SERVICES=1: a skipped test fails"; fi
# CI kills the run at 90 minutes and shows only its tail: stop starting tests well before that, so
# the summary (failures, seconds per module, leftover processes) is still printed.
if [[ -n "${CI:-}" ]]; then set -- --session-timeout="${ACTREC_SESSION_TIMEOUT_S:-4200}" --durations=25 "$@"; fi
start=$(date +%s)
set +e
.venv/bin/python -m pytest "$@"
rc=$?
set -e
if [[ -s .actrec/wedged-test.txt ]]; then
  echo "==> a test wedged and pytest exited (tests/conftest.py):"; cat .actrec/wedged-test.txt
  echo "==> processes left:"; ps -eo pid,ppid,etime,pcpu,args --forest | grep -v "ps -eo" | tail -40
fi
echo "==> test suite took $(( $(date +%s) - start )) s (exit $rc)"
exit $rc
