#!/usr/bin/env bash
# The release binaries every bench script runs (run.sh, instructions.sh,
# profile.sh): the services, the all-in-one and the simulator.
set -euo pipefail
cd "$(dirname "$0")/.."
echo "bench: building release binaries (the first build takes several minutes)"
cargo build --release --bins -p switchyard -p switchyard-router -p switchyard-catalog \
  -p switchyard-usage-metering -p switchyard-provider-adapter -p provider-sim
