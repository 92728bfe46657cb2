#!/usr/bin/env bash
# Make sure a PostgreSQL server answers on 127.0.0.1:5432 for the tests that need one (the real
# Airflow stack's metadata DB, the results-DB tests), with trust auth for the local TCP
# addresses only, as the tests connect: user postgres, no password.
#   scripts/postgres.sh    idempotent; uses a running server, else installs and starts Debian's.
# FB_PG_PORT and FB_PG_CLUSTER (default 5432, main) exist to try this script beside a live server.
set -euo pipefail
HOST=127.0.0.1
PORT=${FB_PG_PORT:-5432}
CLUSTER=${FB_PG_CLUSTER:-main}

answers() { (exec 3<>"/dev/tcp/$HOST/$PORT") 2>/dev/null; }

if answers; then
  echo "postgres: using the server already running on $HOST:$PORT"
  exit 0
fi
[[ $(id -u) == 0 ]] || { echo "postgres: none on $HOST:$PORT, and installing one needs root" >&2; exit 1; }
echo "postgres: none on $HOST:$PORT; installing and starting Debian's PostgreSQL for the tests"
if ! command -v pg_ctlcluster >/dev/null || ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
  apt-get update -q
  # policy-rc.d-less containers would try to start it through init; we start it ourselves below.
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql >/dev/null
fi
version=$(ls /usr/lib/postgresql | sort -V | tail -n1)
pg_lsclusters -h | awk '{print $1, $2}' | grep -qx "$version $CLUSTER" || pg_createcluster "$version" "$CLUSTER" >/dev/null
conf=/etc/postgresql/$version/$CLUSTER
# Our port, local addresses only, and trust for local TCP (first matching pg_hba line wins).
sed -i -E "s/^#?port *=.*/port = $PORT/; s/^#?listen_addresses *=.*/listen_addresses = 'localhost'/" "$conf/postgresql.conf"
if ! grep -q "factorybench tests" "$conf/pg_hba.conf"; then
  { echo "# factorybench tests: trust on loopback TCP only"
    echo "host all all 127.0.0.1/32 trust"
    echo "host all all ::1/128 trust"
    cat "$conf/pg_hba.conf"; } >"$conf/pg_hba.conf.new"
  mv "$conf/pg_hba.conf.new" "$conf/pg_hba.conf"
  chown postgres:postgres "$conf/pg_hba.conf"
fi
# Online but not answering here means another port: restart to take ours.
if pg_lsclusters -h | awk -v v="$version" -v c="$CLUSTER" '$1 == v && $2 == c {print $4}' | grep -q online; then
  pg_ctlcluster "$version" "$CLUSTER" restart
else
  pg_ctlcluster "$version" "$CLUSTER" start
fi
for _ in $(seq 60); do
  answers && { echo "postgres: PostgreSQL $version started on $HOST:$PORT"; exit 0; }
  sleep 0.5
done
echo "postgres: PostgreSQL $version did not answer on $HOST:$PORT within 30 s" >&2
tail -n 20 "/var/log/postgresql/postgresql-$version-$CLUSTER.log" >&2 || true
exit 1
