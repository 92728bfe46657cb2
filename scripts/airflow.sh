#!/usr/bin/env bash
# Start Airflow (scheduler, dag-processor, triggerer, API server + UI) on 127.0.0.1 with the
# project's DAGs and the dev cluster's connections.   scripts/airflow.sh [start|stop]
# Metadata DB: Postgres on 127.0.0.1:5432 when reachable (long-running triggerers on SQLite
# hit an id-reuse bug), else SQLite. Override with AIRFLOW__DATABASE__SQL_ALCHEMY_CONN.
set -euo pipefail
source "$(dirname "$0")/env.sh"
export AIRFLOW_HOME="${AIRFLOW_HOME:-$FB_REPO/.airflow/ui}"
PIDFILE="$AIRFLOW_HOME/standalone.pid"
PORT="${FB_AIRFLOW_PORT:-8080}"
mkdir -p "$AIRFLOW_HOME"

case "${1:-start}" in
  stop)
    if [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
      kill -INT "$(cat "$PIDFILE")"   # standalone stops its children cleanly on SIGINT
      for _ in $(seq 60); do kill -0 "$(cat "$PIDFILE")" 2>/dev/null || break; sleep 0.5; done
    fi
    rm -f "$PIDFILE"; exit 0 ;;
  start) ;;
  *) echo "usage: $0 [start|stop]" >&2; exit 2 ;;
esac

if [ -z "${AIRFLOW__DATABASE__SQL_ALCHEMY_CONN:-}" ] && python - <<'PY' 2>/dev/null
import psycopg2
c = psycopg2.connect(host="127.0.0.1", user="postgres", dbname="postgres"); c.autocommit = True
cur = c.cursor(); cur.execute("SELECT 1 FROM pg_database WHERE datname='factorybench_airflow'")
cur.fetchone() or cur.execute("CREATE DATABASE factorybench_airflow")
PY
then
  export AIRFLOW__DATABASE__SQL_ALCHEMY_CONN="postgresql+psycopg2://postgres@127.0.0.1:5432/factorybench_airflow"
  export AIRFLOW__CORE__EXECUTOR=LocalExecutor
fi
export AIRFLOW__API__PORT="$PORT" AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL=10
export AIRFLOW__CORE__EXECUTION_API_SERVER_URL="http://127.0.0.1:$PORT/execution/"
export FB_RESULTS_URL="${FB_RESULTS_URL:-sqlite:///$FB_REPO/results/factorybench.db}"
echo "Airflow on http://127.0.0.1:$PORT  (AIRFLOW_HOME=$AIRFLOW_HOME, transport $FB_TRANSPORT)"
echo "Login: admin / password in $AIRFLOW_HOME/simple_auth_manager_passwords.json.generated"
trap - INT                      # a background shell ignores SIGINT; standalone needs it to stop
echo $$ > "$PIDFILE"
exec airflow standalone
