#!/usr/bin/env bash
# Start Airflow (scheduler, dag-processor, triggerer, API server + UI) on 127.0.0.1 with the
# project's DAGs and the dev cluster's connections.   scripts/airflow.sh [start|stop|plan]
# Two layouts (FB_EXECUTOR):
#   standalone (default)  `airflow standalone`, LocalExecutor. Metadata DB: Postgres on
#       127.0.0.1:5432 when reachable (long-running triggerers on SQLite hit an id-reuse bug),
#       else SQLite. Override with AIRFLOW__DATABASE__SQL_ALCHEMY_CONN.
#   celery  the production layout (docker-compose.yaml, deploy/helm/values.yaml): CeleryExecutor
#       with a Redis broker (scripts/redis.sh), Postgres for the metadata DB and the results DB
#       (scripts/postgres.sh), and the api-server, scheduler, dag-processor, triggerer and
#       FB_CELERY_WORKERS (default 2) Celery workers as separate processes. `plan` prints that
#       layout as JSON (components, init steps, environment) without starting anything; the
#       deployment files are checked against it (tests/unit/test_deploy_files.py).
set -euo pipefail
source "$(dirname "$0")/env.sh"
export AIRFLOW_HOME="${AIRFLOW_HOME:-$FB_REPO/.airflow/ui}"
PIDFILE="$AIRFLOW_HOME/standalone.pid"
PORT="${FB_AIRFLOW_PORT:-8080}"
mkdir -p "$AIRFLOW_HOME"

# True while any process of process group $1 is alive (a zombie is dead: it only waits for its
# parent to reap it).
group_alive() { ps -e -o pgid=,stat= | awk -v g="$1" '$1 == g && $2 !~ /^Z/ {n++} END {exit !n}'; }

# What still runs in group $1, as "name xCOUNT" words.
survivors() {
  ps -e -o pgid=,stat=,comm= | awk -v g="$1" '$1 == g && $2 !~ /^Z/ {print $3}' | sort | uniq -c \
    | awk '{printf "%s%s x%s", s, $2, $1; s=", "}'
}

# Stop what `start` started: SIGINT to the leader (standalone, or the celery group's), which
# stops its components (about 10 s), then SIGTERM and SIGKILL to its whole process group, each
# followed by a wait (FB_STOP_GRACE_S, default 30 s, for SIGINT; half that for SIGTERM). The pid file is removed
# only once no process of the group is left.
stop() {
  [ -f "$PIDFILE" ] || { echo "Airflow: no $PIDFILE, nothing to stop"; return 0; }
  local pgid grace=${FB_STOP_GRACE_S:-30}
  pgid=$(cat "$PIDFILE")
  [[ $pgid =~ ^[0-9]+$ ]] || { echo "Airflow: $PIDFILE holds no pid; removed"; rm -f "$PIDFILE"; return 0; }
  # signal, target, half-second waits
  local steps=("INT $pgid $((grace * 2))" "TERM -$pgid $((grace > 1 ? grace : 2))" "KILL -$pgid 20")
  local step sig target waits
  for step in "${steps[@]}"; do
    read -r sig target waits <<<"$step"
    group_alive "$pgid" || break
    [ "$sig" = INT ] || echo "Airflow: still running: $(survivors "$pgid")"
    echo "Airflow: SIG$sig to $([ "$sig" = INT ] && echo "its leader ($pgid)" || echo "process group $pgid")"
    kill -"$sig" -- "$target" 2>/dev/null || true
    for _ in $(seq "$waits"); do group_alive "$pgid" || break; sleep 0.5; done
  done
  if group_alive "$pgid"; then
    echo "Airflow: process group $pgid survived SIGKILL ($(survivors "$pgid")); keeping $PIDFILE" >&2
    return 1
  fi
  rm -f "$PIDFILE"
  echo "Airflow: stopped"
}

MODE=${FB_EXECUTOR:-standalone}
case "$MODE" in standalone|celery) ;; *) echo "FB_EXECUTOR must be standalone or celery, not '$MODE'" >&2; exit 2 ;; esac
ACTION=${1:-start}
case "$ACTION" in
  stop) stop; exit $? ;;
  start|plan|_group) ;;
  *) echo "usage: $0 [start|stop|plan]" >&2; exit 2 ;;
esac

# A database on the local Postgres (trust auth on loopback), created if missing; fails if none answers.
ensure_pg_db() {
  python - "$1" <<'PY'
import sys
import psycopg2
c = psycopg2.connect(host="127.0.0.1", user="postgres", dbname="postgres"); c.autocommit = True
cur = c.cursor(); cur.execute("SELECT 1 FROM pg_database WHERE datname=%s", (sys.argv[1],))
cur.fetchone() or cur.execute(f'CREATE DATABASE "{sys.argv[1]}"')
PY
}

PG=postgresql+psycopg2://postgres@127.0.0.1:5432
WORKERS=${FB_CELERY_WORKERS:-2}
# The log servers of one host's workers and triggerer need ports of their own: worker 1 gets
# FB_LOG_PORT (8793, Airflow's default), the triggerer FB_LOG_PORT+1 (8794, its default), worker i
# FB_LOG_PORT+i.
LOG_PORT=${FB_LOG_PORT:-8793}
# What the celery layout runs, in order: one-off init steps, then the long-running components.
INIT=("db migrate" "pools")
COMPONENTS=("api-server" "scheduler" "dag-processor" "triggerer")
for i in $(seq "$WORKERS"); do COMPONENTS+=("celery worker"); done

# The celery layout's environment, set by this script for every component (deployment files
# set the same names: docker-compose.yaml, deploy/helm/values.yaml).
celery_env() {
  export AIRFLOW__CORE__EXECUTOR=CeleryExecutor
  export AIRFLOW__DATABASE__SQL_ALCHEMY_CONN="${AIRFLOW__DATABASE__SQL_ALCHEMY_CONN:-$PG/factorybench_airflow}"
  export AIRFLOW__CELERY__BROKER_URL="${AIRFLOW__CELERY__BROKER_URL:-redis://127.0.0.1:6379/0}"
  export AIRFLOW__CELERY__RESULT_BACKEND="${AIRFLOW__CELERY__RESULT_BACKEND:-db+postgresql+psycopg2://${AIRFLOW__DATABASE__SQL_ALCHEMY_CONN#*://}}"
  export AIRFLOW__CELERY__WORKER_CONCURRENCY="${AIRFLOW__CELERY__WORKER_CONCURRENCY:-8}"
  # Every component must sign and check the same tokens; generated once per AIRFLOW_HOME.
  if [ "$ACTION" = plan ]; then
    AIRFLOW__API_AUTH__JWT_SECRET=${AIRFLOW__API_AUTH__JWT_SECRET:+"(set)"}
    AIRFLOW__API_AUTH__JWT_SECRET=${AIRFLOW__API_AUTH__JWT_SECRET:-"(generated in \$AIRFLOW_HOME/jwt_secret)"}
  elif [ -z "${AIRFLOW__API_AUTH__JWT_SECRET:-}" ]; then
    [ -s "$AIRFLOW_HOME/jwt_secret" ] || (umask 077; python -c 'import secrets; print(secrets.token_hex(32))' >"$AIRFLOW_HOME/jwt_secret")
    AIRFLOW__API_AUTH__JWT_SECRET=$(cat "$AIRFLOW_HOME/jwt_secret")
  fi
  export AIRFLOW__API_AUTH__JWT_SECRET
  # Every worker archives: the results DB is shared, so it is Postgres, never SQLite.
  export FB_RESULTS_URL="${FB_RESULTS_URL:-$PG/factorybench_results}"
  export FB_ARCHIVE_URL="${FB_ARCHIVE_URL:-$FB_REPO/results/archive}"
  export FB_RECIPES_DIR="${FB_RECIPES_DIR:-$FB_REPO/recipes}" FB_CLUSTERS_FILE="${FB_CLUSTERS_FILE:-$FB_REPO/config/clusters.yaml}"
}

export AIRFLOW__API__PORT="$PORT" AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL=10
export AIRFLOW__CORE__EXECUTION_API_SERVER_URL="http://127.0.0.1:$PORT/execution/"

if [ "$MODE" = celery ]; then
  celery_env
  if [ "$ACTION" = plan ]; then
    python - "$WORKERS" "${INIT[@]}" -- "${COMPONENTS[@]}" <<'PY'
import json, os, sys
workers, rest = int(sys.argv[1]), sys.argv[2:]
cut = rest.index("--")
names = ("AIRFLOW__CORE__", "AIRFLOW__DATABASE__", "AIRFLOW__CELERY__", "AIRFLOW__API_AUTH__",
         "AIRFLOW__DAG_PROCESSOR__", "FB_RESULTS_URL", "FB_ARCHIVE_URL", "FB_RECIPES_DIR", "FB_CLUSTERS_FILE", "FB_HOME")
env = {k: v for k, v in os.environ.items() if k.startswith(names)}
print(json.dumps({"init": rest[:cut], "components": rest[cut + 1:], "workers": workers, "env": env}, indent=2))
PY
    exit 0
  fi
  if [ "$ACTION" = _group ]; then
    # The group leader: init, then every component in the background (same process group), each
    # logging to $AIRFLOW_HOME/<name>.log. SIGINT/SIGTERM (stop) end them all with SIGTERM (Celery
    # workers finish their running tasks first); a component that dies ends the stack, loudly.
    airflow db migrate >"$AIRFLOW_HOME/db-migrate.log" 2>&1 || { tail -n 30 "$AIRFLOW_HOME/db-migrate.log" >&2; exit 1; }
    bash "$FB_REPO/scripts/pools.sh"
    pids=() names=()
    down() {
      trap '' INT TERM
      echo "Airflow: SIGTERM to ${names[*]}"
      kill -TERM "${pids[@]}" 2>/dev/null || true
      wait || true
      exit "$1"
    }
    trap 'down 0' INT TERM
    n=0
    for c in "${COMPONENTS[@]}"; do
      name=${c// /-}
      if [ "$c" = "celery worker" ]; then
        n=$((n + 1)); name=worker-$n
        port=$([ "$n" = 1 ] && echo "$LOG_PORT" || echo $((LOG_PORT + n)))
        # shellcheck disable=SC2086
        AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT=$port airflow $c --celery-hostname "fb-$name-$PORT@%h" \
          >"$AIRFLOW_HOME/$name.log" 2>&1 &
      else
        # shellcheck disable=SC2086
        AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT=$((LOG_PORT + 1)) airflow $c >"$AIRFLOW_HOME/$name.log" 2>&1 &
      fi
      pids+=($!) names+=("$name")
    done
    echo "Airflow: started ${names[*]} (logs in $AIRFLOW_HOME/<name>.log)"
    wait -n || true
    echo "Airflow: a component exited on its own; stopping the stack" >&2
    down 1
  fi
  bash "$FB_REPO/scripts/postgres.sh"
  bash "$FB_REPO/scripts/redis.sh"
  for url in "$AIRFLOW__DATABASE__SQL_ALCHEMY_CONN" "$FB_RESULTS_URL"; do
    if [[ $url == "$PG"/* ]]; then ensure_pg_db "${url##*/}"; fi
  done
  LEADER=(bash "$0" _group)
else
  [ "$ACTION" = start ] || { echo "$0 $ACTION: only with FB_EXECUTOR=celery" >&2; exit 2; }
  if [ -z "${AIRFLOW__DATABASE__SQL_ALCHEMY_CONN:-}" ] && ensure_pg_db factorybench_airflow 2>/dev/null; then
    export AIRFLOW__DATABASE__SQL_ALCHEMY_CONN="$PG/factorybench_airflow"
    export AIRFLOW__CORE__EXECUTOR=LocalExecutor
  fi
  export FB_RESULTS_URL="${FB_RESULTS_URL:-sqlite:///$FB_REPO/results/factorybench.db}"
  LEADER=(airflow standalone)
fi
echo "Airflow ($MODE) on http://127.0.0.1:$PORT  (AIRFLOW_HOME=$AIRFLOW_HOME, transport $FB_TRANSPORT)"
echo "Login: admin / password in $AIRFLOW_HOME/simple_auth_manager_passwords.json.generated"
# The leader (standalone, or this script's celery group) leads a process group (and session) of
# its own, so `stop` reaches every component it starts and nothing else; the pid file holds that
# group's id. This shell stays in front and runs the same stop on Ctrl-C or SIGTERM. A background
# subshell ignores SIGINT, and the leader needs it to stop cleanly; a bash leader cannot even trap a
# signal ignored when it started: hence env --default-signal=INT before setsid.
( exec env --default-signal=INT setsid "${LEADER[@]}" ) &
echo $! > "$PIDFILE"
trap 'stop; exit 130' INT
trap 'stop; exit 143' TERM
wait $! || true
