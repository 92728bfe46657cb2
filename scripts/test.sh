#!/usr/bin/env bash
# The whole suite against real clusters: native Slurm 22.05, and the Slurm 24.11 and 26.05
# chroots for the REST version matrix (built once into .cache). All are brought up here and
# down at the end. Exit code 5 (no tests collected) is a failure, as CI requires.
set -uo pipefail
# The tests need the real clusters: a cluster that cannot start fails the run, never skips tests.
"$(dirname "$0")/../devcluster/cluster.sh" up native || { echo "native dev cluster failed to start"; exit 1; }
source "$(dirname "$0")/env.sh"
cd "$FB_REPO"
bash scripts/ensure-browser.sh || { echo "chromium and chromedriver are missing: the report browser test needs them"; exit 1; }
bash scripts/monitoring/ensure.sh || { echo "Prometheus, Pushgateway or node-exporter missing: the monitoring tests need them"; exit 1; }
# The real Airflow stack and the results-DB tests need PostgreSQL on 127.0.0.1:5432: the running
# server, or Debian's, installed and started here (it says which).
bash scripts/postgres.sh || { echo "PostgreSQL is not available on 127.0.0.1:5432"; exit 1; }
chroots=(trixie forky)
# Everything this run started is stopped at the end, so a later run (another clone, CI) finds free ports.
trap 'for f in native "${chroots[@]}"; do devcluster/cluster.sh down "$f" >/dev/null 2>&1; done' EXIT
for f in "${chroots[@]}"; do
  devcluster/cluster.sh up "$f" || echo "ERROR: cluster $f did not come up; its REST tests will fail"
done
scripts/services/ensure.sh test || { echo "service installs failed (docs/SERVICES.md)"; exit 1; }
export FB_TEST_BRING_UP=1 FB_REQUIRE_CLUSTERS=1
python -m pytest "$@"
rc=$?
[ "$rc" -eq 5 ] && { echo "pytest collected no tests: failing"; exit 1; }
exit "$rc"
