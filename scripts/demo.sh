#!/usr/bin/env bash
# Run the smoke recipe's DAG end to end on the dev cluster and print where the results went.
set -euo pipefail
source "$(dirname "$0")/env.sh"
export AIRFLOW_HOME="$FB_REPO/.airflow/demo"
mkdir -p "$AIRFLOW_HOME"
echo "== transport: $FB_TRANSPORT (ssh = real SLURM via the dev cluster's login node; local = no SLURM here)"
airflow db migrate >"$AIRFLOW_HOME/db-migrate.log" 2>&1 || { tail -20 "$AIRFLOW_HOME/db-migrate.log"; exit 1; }
factorybench validate
run_id="demo__$(date -u +%Y%m%dT%H%M%S)"
log="$AIRFLOW_HOME/$run_id.log"
echo "== running DAG factorybench_smoke (run $run_id); full log: $log"
status=0
airflow dags test factorybench_smoke --conf "{\"transport\": \"$FB_TRANSPORT\"}" >"$log" 2>&1 || status=$?
grep -oE "Marking run <DagRun factorybench_smoke .*> (successful|failed)" "$log" | sed -E 's/.*> /DAG run: /' | tail -1 || true
echo "== result"
factorybench results --limit 1
python - <<'PY'
from factorybench import settings
from factorybench.results.query import Results
run = Results().runs(limit=1)[0]
print(f"\nstatus: {run.status} {run.message}\nresults database: {settings.results_url()}\narchive: {run.archive_url}")
PY
if [ "$status" -ne 0 ]; then echo "DAG run failed; see $log"; exit "$status"; fi
