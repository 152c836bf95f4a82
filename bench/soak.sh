#!/usr/bin/env bash
# Memory soak of the all-in-one: wrk at SOAK_CONNECTIONS (32) for
# SOAK_SECONDS (600) against the release `switchyard` on embedded storage,
# with provider-sim upstream; prints peak-free RSS every 30 s. Memory should
# stay flat after warm-up (see bench/README.md). Needs wrk and release
# binaries (`cargo build --release`).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${SOAK_SECONDS:-600}
connections=${SOAK_CONNECTIONS:-32}
bin=target/release
tmp=$(mktemp -d)
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
sim_port=$(free_port); http_port=$(free_port); grpc_port=$(free_port)
cat > "$tmp/seed.toml" <<SEED
[[providers]]
slug = "sim"
name = "Sim"
wire_format = "openai"
base_url = "http://127.0.0.1:$sim_port/v1"
credential_ref = ""

[[models]]
id = "bench/model"
name = "Bench: Model"
created = 1700000000
context_length = 8192
architecture = { modality = "text->text", input_modalities = ["text"], output_modalities = ["text"], tokenizer = "Other" }

[[endpoints]]
model = "bench/model"
provider = "sim"
upstream_model = "bench"
pricing = { prompt = "0.000001", completion = "0.000002" }
SEED
"$bin/provider-sim" --addr "127.0.0.1:$sim_port" > "$tmp/sim.log" 2>&1 &
sim=$!
SWITCHYARD_HTTP_ADDR="127.0.0.1:$http_port" SWITCHYARD_ROUTER_GRPC_ADDR="127.0.0.1:$grpc_port" \
SWITCHYARD_DATA_DIR="$tmp/data" SWITCHYARD_DEV_KEY=sk-soak-key-0123456789 \
SWITCHYARD_CATALOG_SEED="$tmp/seed.toml" SWITCHYARD_NO_SIMULATOR=1 \
  "$bin/switchyard" > "$tmp/switchyard.log" 2> "$tmp/switchyard.err" &
sy=$!
trap 'kill -TERM $sy $sim 2>/dev/null || true; rm -rf "$tmp"' EXIT
for _ in $(seq 1 100); do grep -q "development key" "$tmp/switchyard.log" && break; sleep 0.2; done
cat > "$tmp/post.lua" <<'LUA'
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer sk-soak-key-0123456789"
wrk.body = '{"model":"bench/model","messages":[{"role":"user","content":"soak"}]}'
LUA
wrk -t1 -c"$connections" -d"${seconds}s" -s "$tmp/post.lua" "http://127.0.0.1:$http_port/api/v1/chat/completions" > "$tmp/wrk.txt" 2>&1 &
load=$!
echo "elapsed_s rss_mb"
for t in $(seq 0 30 "$seconds"); do
  awk -v t="$t" '/VmRSS/ {printf "%s %.1f\n", t, $2/1024}' "/proc/$sy/status"
  sleep 30
done
wait $load
grep -E "requests in|Requests/sec|Non-2xx" "$tmp/wrk.txt"
du -sh "$tmp/data/metering.redb"
