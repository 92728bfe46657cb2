# Sourced by the demo, Airflow and test scripts: one place for the environment every
# Airflow component needs (connections from the dev cluster, paths, quiet defaults).
FB_REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export FB_HOME="$FB_REPO" FB_VENV="$FB_REPO/.venv"
export PATH="$FB_VENV/bin:$PATH"
if "$FB_REPO/devcluster/cluster.sh" status native >/dev/null 2>&1; then
  eval "$("$FB_REPO/devcluster/cluster.sh" env native)"
  export FB_TRANSPORT=ssh
else
  export FB_TRANSPORT=local
fi
# The forky cluster (Slurm 26.05, where the llama.cpp recipe runs) when it is up: its REST
# connection and token command under names of their own (config/clusters.yaml, profile forky).
if "$FB_REPO/devcluster/cluster.sh" status forky >/dev/null 2>&1; then
  eval "$(bash -c 'eval "$("$1" env forky)"; printf "export AIRFLOW_CONN_SLURM_REST_FORKY=%q FB_FORKY_TOKEN_CMD=%q FB_FORKY_WORKDIR=%q\n" \
    "$AIRFLOW_CONN_SLURM_REST_FORKY" "$FB_SLURM_TOKEN_CMD" "$FB_SLURM_WORKDIR"' _ "$FB_REPO/devcluster/cluster.sh")"
fi
export AIRFLOW__CORE__DAGS_FOLDER="$FB_REPO/dags"
export AIRFLOW__CORE__PLUGINS_FOLDER="$FB_REPO/plugins"
export AIRFLOW__CORE__LOAD_EXAMPLES=False
export AIRFLOW__CORE__PARALLELISM=8
export AIRFLOW__API__HOST=127.0.0.1
export AIRFLOW__LOGGING__LOGGING_LEVEL=${AIRFLOW__LOGGING__LOGGING_LEVEL:-INFO}
