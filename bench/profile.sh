#!/usr/bin/env bash
# CPU flame graphs of each Switchyard process under load, sampled with
# perf: the benchmark's setup, wrk at 32 connections, one SVG and one
# folded-stacks file per process and request kind in target/profiles/.
# See bench/README.md.
#
#   bench/profile.sh                                  # all-in-one and separate services
#   bench/profile.sh --only microservices --kinds stream
#   bench/profile.sh --connections 1 --seconds 20     # the one-connection path
set -euo pipefail
cd "$(dirname "$0")/.."

command -v perf >/dev/null || { echo "bench: needs perf (Debian: apt-get install linux-perf)" >&2; exit 1; }
command -v wrk >/dev/null || { echo "bench: needs wrk (Debian: apt-get install wrk)" >&2; exit 1; }
command -v psql >/dev/null || { echo "bench: needs psql to create the bench database" >&2; exit 1; }

bench/build.sh

python3 bench/profile.py "$@"
