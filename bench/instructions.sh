#!/usr/bin/env bash
# Instructions per request of each Switchyard process, counted by valgrind's
# callgrind: a figure that stays put when the machine's speed or load does
# not, for comparing two builds. See bench/README.md.
#
#   bench/instructions.sh                      # all-in-one and separate services
#   bench/instructions.sh --only all-in-one    # one of them
#   bench/instructions.sh --requests 500       # more requests per kind (default 200)
set -euo pipefail
cd "$(dirname "$0")/.."

command -v valgrind >/dev/null || { echo "bench: needs valgrind (Debian: apt-get install valgrind)" >&2; exit 1; }
command -v psql >/dev/null || { echo "bench: needs psql to create the bench database" >&2; exit 1; }

bench/build.sh

python3 bench/instructions.py "$@"
