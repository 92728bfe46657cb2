#!/usr/bin/env bash
# Create .venv and install the project with every package pinned (no online constraints needed).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! python3 -c 'import ensurepip, venv' 2>/dev/null; then
  # Debian's python3 ships venv/ensurepip in a separate package.
  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-venv
fi
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/pip install -q --upgrade pip
.venv/bin/pip install -q -r requirements.txt -c constraints.txt
.venv/bin/pip install -q --no-deps -e .
.venv/bin/python -c 'import factorybench, airflow; print("installed factorybench with Airflow", airflow.__version__)'
