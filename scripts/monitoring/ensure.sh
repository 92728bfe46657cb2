#!/usr/bin/env bash
# Debian 12's Prometheus 2.42, Pushgateway 1.5.1 and node-exporter 1.5.0 for the monitoring tests
# (docs/MONITORING.md). Idempotent: installs only what is missing, waits for another apt/dpkg to
# finish instead of failing on its lock. Nothing is started: tests start what they need on
# 127.0.0.1 ports with scripts/monitoring/stack.sh.
set -euo pipefail
declare -A want=([prometheus]=prometheus [prometheus-pushgateway]=prometheus-pushgateway
                 [prometheus-node-exporter]=prometheus-node-exporter [promtool]=prometheus)
missing=()
for bin in "${!want[@]}"; do
  command -v "$bin" >/dev/null 2>&1 || missing+=("${want[$bin]}")
done
if [ ${#missing[@]} -gt 0 ]; then
  mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
  if [ "$(id -u)" -ne 0 ]; then
    echo "monitoring: ${missing[*]} missing and not root: apt-get install ${missing[*]}" >&2
    exit 1
  fi
  echo "monitoring: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get -o DPkg::Lock::Timeout=600 update -q
  apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends "${missing[@]}"
fi
echo "monitoring: $(prometheus --version 2>&1 | head -1)"
echo "monitoring: $(prometheus-pushgateway --version 2>&1 | head -1)"
echo "monitoring: $(prometheus-node-exporter --version 2>&1 | head -1)"
