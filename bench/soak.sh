#!/usr/bin/env bash
# Memory soak: wrk at 32 connections for 10 minutes against the all-in-one
# (default) or the separate services, on the benchmark's own setup, with
# every Switchyard process's RSS printed every 30 s and summarised at the
# end. See bench/README.md ("Memory soak").
#
#   bench/soak.sh                                # all-in-one, embedded storage
#   bench/soak.sh --target microservices         # router, adapter, metering, catalog
#   SOAK_SECONDS=120 bench/soak.sh --interval 10
set -euo pipefail
cd "$(dirname "$0")/.."

command -v wrk >/dev/null || { echo "bench: needs wrk (Debian: apt-get install wrk)" >&2; exit 1; }
command -v psql >/dev/null || { echo "bench: needs psql to create the bench database" >&2; exit 1; }

bench/build.sh

python3 bench/soak.py "$@"
