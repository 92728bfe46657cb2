#!/usr/bin/env bash
# A real Prometheus, Pushgateway and node-exporter on free 127.0.0.1 ports, for tests and local use.
#   stack.sh up DIR [FILE_SD_DIR]   start all three, wait until each answers, print their URLs
#   stack.sh down DIR               stop what `up DIR` started (by the PIDs it recorded)
# Prometheus runs deploy/prometheus/prometheus.yml with the addresses, the file_sd directory and the
# intervals replaced (FB_SCRAPE_INTERVAL, default 1s), so the tests exercise the shipped config.
# `up` writes DIR/stack.env (PROMETHEUS_URL, PUSHGATEWAY_URL, NODE_EXPORTER_URL, FILE_SD_DIR).
# Binaries come from scripts/monitoring/ensure.sh.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/../.." && pwd)
cmd=${1:-}
dir=${2:-}
[[ -n $cmd && -n $dir ]] || { echo "usage: $0 up DIR [FILE_SD_DIR] | down DIR" >&2; exit 2; }

free_ports() {
  python3 - "$1" <<'PY'
import socket, sys
socks = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))
PY
}

# wait_up NAME URL PID: poll (never sleep blindly) until URL answers 200, at most 15 s.
wait_up() {
  local i
  for i in $(seq 150); do
    curl -sf -o /dev/null "$2" && return 0
    kill -0 "$3" 2>/dev/null || { echo "stack: $1 exited; see $dir/$1.log" >&2; tail -5 "$dir/$1.log" >&2; return 1; }
    sleep 0.1
  done
  echo "stack: $1 did not answer $2 within 15 s" >&2
  return 1
}

start() {  # start NAME ARGV...: background, log and PID in DIR
  local name=$1
  shift
  "$@" >"$dir/$name.log" 2>&1 &
  echo $! >"$dir/$name.pid"
}

case $cmd in
  up)
    sd=${3:-$dir/file_sd}
    mkdir -p "$dir" "$sd"
    read -r prom pgw node <<<"$(free_ports 3)"
    interval=${FB_SCRAPE_INTERVAL:-1s}
    sed -e "s#pushgateway:9091#127.0.0.1:$pgw#" -e "s#localhost:9090#127.0.0.1:$prom#" \
        -e "s#/etc/prometheus/file_sd#$sd#" -e "s#refresh_interval: 30s#refresh_interval: 1s#" \
        -e "s#scrape_interval: 15s#scrape_interval: $interval#" \
        -e "s#evaluation_interval: 15s#evaluation_interval: $interval#" \
        "$REPO/deploy/prometheus/prometheus.yml" >"$dir/prometheus.yml"
    start node-exporter prometheus-node-exporter --web.listen-address="127.0.0.1:$node"
    start pushgateway prometheus-pushgateway --web.listen-address="127.0.0.1:$pgw" \
      --persistence.file="$dir/pushgateway.state" --persistence.interval=1s
    start prometheus prometheus --config.file="$dir/prometheus.yml" --storage.tsdb.path="$dir/tsdb" \
      --web.listen-address="127.0.0.1:$prom" --web.enable-lifecycle --web.enable-admin-api
    wait_up node-exporter "http://127.0.0.1:$node/metrics" "$(<"$dir/node-exporter.pid")"
    wait_up pushgateway "http://127.0.0.1:$pgw/-/ready" "$(<"$dir/pushgateway.pid")"
    wait_up prometheus "http://127.0.0.1:$prom/-/ready" "$(<"$dir/prometheus.pid")"
    cat >"$dir/stack.env" <<EOF
PROMETHEUS_URL=http://127.0.0.1:$prom
PUSHGATEWAY_URL=http://127.0.0.1:$pgw
NODE_EXPORTER_URL=http://127.0.0.1:$node
NODE_EXPORTER_ADDRESS=127.0.0.1:$node
FILE_SD_DIR=$sd
EOF
    cat "$dir/stack.env"
    ;;
  down)
    for name in prometheus pushgateway node-exporter; do
      pidfile=$dir/$name.pid
      [[ -f $pidfile ]] || continue
      pid=$(<"$pidfile")
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -9 "$pid" 2>/dev/null || true
      rm -f "$pidfile"
    done
    ;;
  *)
    echo "usage: $0 up DIR [FILE_SD_DIR] | down DIR" >&2
    exit 2
    ;;
esac
