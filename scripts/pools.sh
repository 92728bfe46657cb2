#!/usr/bin/env bash
# Create or update the Airflow pools of the cluster profiles that set max_concurrent_jobs
# (config/clusters.yaml, or FB_CLUSTERS_FILE): one pool per cluster, named factorybench_<profile>,
# counting deferred tasks (docs/SCALE.md). Idempotent; needs a migrated metadata DB.
#   scripts/pools.sh      (scripts/airflow.sh runs it; docker-compose's airflow-init too)
set -euo pipefail
file=$(mktemp --suffix=.json)
trap 'rm -f "$file"' EXIT
python - "$file" <<'PY'
import json
import sys

from factorybench import settings
from factorybench.recipe import load_clusters
from factorybench.recipe.cluster import pools

found = pools(load_clusters(settings.clusters_file()))
json.dump(found, open(sys.argv[1], "w"))
print("pools:", ", ".join(f"{k} ({v['slots']} slots)" for k, v in found.items()) or "none", file=sys.stderr)
PY
if [ "$(cat "$file")" != "{}" ]; then airflow pools import "$file" >/dev/null; fi
