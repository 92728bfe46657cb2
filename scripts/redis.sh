#!/usr/bin/env bash
# Make sure a Redis server answers on 127.0.0.1:6379 for the Celery deployment's broker
# (scripts/airflow.sh with FB_EXECUTOR=celery): the running one, else Debian's redis-server,
# installed if missing and started here on loopback only, with its data under .cache/redis.
#   scripts/redis.sh     idempotent
# FB_REDIS_PORT (default 6379) exists to try this script beside a live server.
set -euo pipefail
HOST=127.0.0.1
PORT=${FB_REDIS_PORT:-6379}
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DIR=$REPO/.cache/redis-broker-$PORT

answers() { [ "$(redis-cli -h "$HOST" -p "$PORT" ping 2>/dev/null)" = PONG ]; }

if command -v redis-cli >/dev/null && answers; then
  echo "redis: using the server already running on $HOST:$PORT"
  exit 0
fi
if ! command -v redis-server >/dev/null; then
  [[ $(id -u) == 0 ]] || { echo "redis: none on $HOST:$PORT, and installing one needs root" >&2; exit 1; }
  echo "redis: installing Debian's redis-server for the Celery broker"
  apt-get update -q
  # Started below by this script, not by the package's init scripts (none in a container).
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends redis-server redis-tools >/dev/null
fi
answers && { echo "redis: using the server already running on $HOST:$PORT"; exit 0; }
mkdir -p "$DIR"
redis-server --bind "$HOST" --port "$PORT" --dir "$DIR" --daemonize yes --save "" --appendonly no \
  --pidfile "$DIR/redis.pid" --logfile "$DIR/redis.log"
for _ in $(seq 40); do
  answers && { echo "redis: started on $HOST:$PORT (pid $(cat "$DIR/redis.pid"), log $DIR/redis.log)"; exit 0; }
  sleep 0.25
done
echo "redis: did not answer on $HOST:$PORT within 10 s" >&2
tail -n 20 "$DIR/redis.log" >&2 || true
exit 1
