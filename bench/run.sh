#!/usr/bin/env bash
# Switchyard's benchmark in one command: builds the release binaries, then
# measures the provider simulator directly, Switchyard as separate services
# and the all-in-one process side by side, and writes bench/RESULTS.md.
#
#   bench/run.sh            # load benchmark, ~5 minutes with the default 10 s cells
#   bench/run.sh --micro    # also the criterion micro-benchmarks (a few more minutes)
#
# Environment: BENCH_SECONDS (10), BENCH_CONNECTIONS (32,256),
# BENCH_WRK_THREADS (1), BENCH_POSTGRES_URL (postgres://postgres@127.0.0.1:5432),
# BENCH_REDIS_URL (redis://127.0.0.1:6379), BENCH_ONLY
# (direct,microservices,all-in-one), BENCH_KEEP_TMP=1 keeps the logs.
# Any other arguments go to bench/bench.py (see its --help).
set -euo pipefail
cd "$(dirname "$0")/.."

micro=0
args=()
for arg in "$@"; do
  case "$arg" in
    --micro) micro=1 ;;
    *) args+=("$arg") ;;
  esac
done

fail() { echo "bench: $*" >&2; exit 1; }

if ! command -v wrk >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "bench: installing the load generator wrk (apt-get install -y wrk)"
    apt-get install -y -q wrk >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q wrk >/dev/null; }
  fi
  command -v wrk >/dev/null || fail "needs the load generator wrk: 'apt-get install wrk' (Debian, Ubuntu), 'dnf install wrk' (Fedora) or 'brew install wrk' (macOS)"
fi
command -v python3 >/dev/null || fail "needs python3"
command -v psql >/dev/null || fail "needs psql (Debian: apt-get install postgresql-client) to create the bench database"
postgres="${BENCH_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432}"
psql "$postgres/postgres" -qAtc 'select 1' >/dev/null 2>&1 \
  || fail "cannot reach Postgres at $postgres (set BENCH_POSTGRES_URL); the separate services need it"
if command -v redis-cli >/dev/null; then
  redis-cli -u "${BENCH_REDIS_URL:-redis://127.0.0.1:6379}" ping >/dev/null 2>&1 \
    || fail "cannot reach Redis at ${BENCH_REDIS_URL:-redis://127.0.0.1:6379} (set BENCH_REDIS_URL)"
fi

bench/build.sh

command="bench/run.sh $*"
for var in BENCH_SECONDS BENCH_CONNECTIONS BENCH_WRK_THREADS BENCH_ONLY; do
  if [ -n "${!var:-}" ]; then command="$var=${!var} $command"; fi
done

if [ "$micro" = 1 ]; then
  micro_out="$(mktemp)"
  trap 'rm -f "$micro_out"' EXIT
  for bench in "switchyard-router --bench hot_path" "switchyard-provider-adapter --bench translate"; do
    echo "bench: criterion micro-benchmarks (cargo bench -p $bench)"
    # shellcheck disable=SC2086 # two words on purpose: the package and its bench
    cargo bench -p $bench -- --warm-up-time 1 --measurement-time 3 | tee -a "$micro_out"
  done
  args+=(--micro "$micro_out")
fi

python3 bench/bench.py --command "$command" ${args[@]+"${args[@]}"}
