#!/usr/bin/env bash
# The local services the tests use, installed (Debian packages) and started when missing; idempotent.
# Called by .ci/run and by `npm run test:stress` (scripts/test-stress.sh), so a fresh machine runs either.
set -euo pipefail
cd "$(dirname "$0")/.."

# apt-get as root, through sudo otherwise.
apt_install() {
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && apt-get install -y -qq "$@"
  else
    sudo apt-get update -qq && sudo apt-get install -y -qq "$@"
  fi
}

# True when something listens on 127.0.0.1:$1 (nc when the machine has it, else bash's /dev/tcp).
port_open() {
  if command -v nc >/dev/null 2>&1; then
    nc -z 127.0.0.1 "$1" 2>/dev/null
  else
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
  fi
}

# The cluster tests start nats-server nodes of their own: Debian's binary.
if ! command -v nats-server >/dev/null 2>&1 && [ ! -x /usr/sbin/nats-server ]; then
  apt_install nats-server
fi

# NATS with JetStream on 127.0.0.1:4222 (the bench's and some tests' default). Harmless when already running.
if ! port_open 4222; then
  mkdir -p /var/lib/nats-server
  start-stop-daemon --start --oknodo --background --exec /usr/sbin/nats-server -- \
    -a 127.0.0.1 -p 4222 -js -sd /var/lib/nats-server -l /var/log/nats-server.log
  for _ in $(seq 1 50); do
    port_open 4222 && break
    sleep 0.2
  done
  port_open 4222 || echo "warning: NATS did not come up on 127.0.0.1:4222" >&2
fi

# PostgreSQL 15 on 127.0.0.1:5432 (the postgres sink and CDC tests use the real server): started when
# down, and wal_level=logical (logical replication for postgres-cdc) set idempotently — ALTER SYSTEM and a
# restart only when it is not logical yet.
if ! command -v pg_ctlcluster >/dev/null 2>&1; then
  apt_install postgresql
fi
if ! port_open 5432; then
  pg_ctlcluster 15 main start || true
  for _ in $(seq 1 50); do port_open 5432 && break; sleep 0.2; done
fi
if port_open 5432; then
  if [ "$(psql -h 127.0.0.1 -U postgres -d postgres -Atc 'SHOW wal_level' 2>/dev/null)" != "logical" ]; then
    psql -h 127.0.0.1 -U postgres -d postgres -c 'ALTER SYSTEM SET wal_level = logical'
    pg_ctlcluster 15 main restart
    for _ in $(seq 1 50); do port_open 5432 && break; sleep 0.2; done
  fi
  psql -h 127.0.0.1 -U postgres -d postgres -Atc "SELECT 1 FROM pg_database WHERE datname = 'test'" | grep -q 1 ||
    psql -h 127.0.0.1 -U postgres -d postgres -c 'CREATE DATABASE test'
else
  echo "warning: PostgreSQL did not come up on 127.0.0.1:5432 (the postgres connector tests will fail, clearly)" >&2
fi

# Mosquitto on 127.0.0.1:1883 (the MQTT source tests; they also start private ones with the same binary).
if ! command -v mosquitto >/dev/null 2>&1 && [ ! -x /usr/sbin/mosquitto ]; then
  apt_install mosquitto mosquitto-clients
fi
if ! port_open 1883; then
  if [ -f /etc/mosquitto/mosquitto.conf ]; then
    /usr/sbin/mosquitto -d -c /etc/mosquitto/mosquitto.conf || true
  fi
  for _ in $(seq 1 25); do port_open 1883 && break; sleep 0.2; done
  if ! port_open 1883; then
    printf 'listener 1883 127.0.0.1\nallow_anonymous true\n' > /tmp/junction-mosquitto.conf
    /usr/sbin/mosquitto -d -c /tmp/junction-mosquitto.conf || true
  fi
  for _ in $(seq 1 50); do port_open 1883 && break; sleep 0.2; done
  port_open 1883 || echo "warning: Mosquitto did not come up on 127.0.0.1:1883 (the mqtt connector tests will fail, clearly)" >&2
fi

# Chromium for the dashboard's browser tests (ui/test, driven by playwright-core): Debian's package.
if ! command -v chromium >/dev/null 2>&1 && [ ! -x /usr/bin/chromium ]; then
  apt_install chromium
fi
