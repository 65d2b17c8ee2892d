#!/usr/bin/env bash
# npm run test:stress [-- vitest args]: the suite (or the files/args given) three times in a row while
# `stress-ng --cpu 2` keeps both cores busy beside it; stops at the first failing run.
# Installs Debian's stress-ng and the suite's services when missing (idempotent). RUNS=n changes the number of runs.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v stress-ng >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && apt-get install -y -qq stress-ng
  else
    sudo apt-get update -qq && sudo apt-get install -y -qq stress-ng
  fi
fi

# The services the suite uses (NATS, PostgreSQL, Mosquitto, Chromium), as .ci/run sets them up.
bash scripts/test-services.sh

npx tsc -b

stress-ng --cpu 2 --quiet &
hog=$!
# Ends only the hog this script started.
trap 'kill "$hog" 2>/dev/null || true; wait "$hog" 2>/dev/null || true' EXIT
trap 'exit 130' INT TERM

runs="${RUNS:-3}"
for i in $(seq 1 "$runs"); do
  echo "== test:stress run $i of $runs (stress-ng --cpu 2 beside it, pid $hog)"
  start=$(date +%s)
  if ! npx vitest run "$@"; then
    echo "== test:stress: run $i FAILED after $(($(date +%s) - start)) s" >&2
    exit 1
  fi
  echo "== test:stress run $i passed in $(($(date +%s) - start)) s"
done
echo "== test:stress: $runs runs passed"
