#!/usr/bin/env python3
"""Switchyard load benchmark: the provider simulator called directly (the
floor), Switchyard as separate services, and the all-in-one process, side by
side. Run through bench/run.sh, which builds the binaries first.
"""

import argparse
import datetime
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid

import load
import procs
import report

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
BIN = os.path.join(ROOT, "target", "release")

MODEL = "bench/model"
SLOW_MODEL = "bench/model-ttft60"
SLOW_TTFT_MS = 60
PROMPT = "Explain in two sentences why a router adds latency to every request."


def script_main(main, what):
    """Runs a bench script's `main`: a setup failure (a service that did not
    start or died, wrk failing) ends it with one line and status 1, not a
    traceback."""
    try:
        main()
    except RuntimeError as e:
        print(f"{what} failed: {e}", file=sys.stderr)
        sys.exit(1)


def run_alone(run_class, target, postgres, redis, prefix):
    """Runs `run_class` (a `Run` whose `measure` does the work) on one
    target's setup with no load cells of its own: what instructions.py and
    profile.py build on."""
    args = argparse.Namespace(
        seconds=1, connections=[], wrk_threads=1, postgres=postgres, redis=redis,
        only=target, micro=None, out=os.devnull, command="",
    )
    run = run_class(args, tempfile.mkdtemp(prefix=prefix))
    try:
        run.all()
    finally:
        run.cleanup()


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seconds", type=int, default=int(os.environ.get("BENCH_SECONDS", "10")))
    ap.add_argument(
        "--connections",
        default=os.environ.get("BENCH_CONNECTIONS", "32,256"),
        help="comma list of connection counts for the throughput cells",
    )
    ap.add_argument("--wrk-threads", type=int, default=int(os.environ.get("BENCH_WRK_THREADS", "1")))
    ap.add_argument("--postgres", default=os.environ.get("BENCH_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432"))
    ap.add_argument("--redis", default=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379"))
    ap.add_argument("--only", default=os.environ.get("BENCH_ONLY", "direct,microservices,all-in-one"))
    ap.add_argument("--micro", default=None, help="criterion output file to include")
    ap.add_argument("--out", default=os.path.join(HERE, "RESULTS.md"))
    ap.add_argument("--command", default="bench/run.sh", help="the command line to show in the report")
    args = ap.parse_args()
    args.connections = [int(c) for c in args.connections.split(",") if c.strip()]

    workdir = tempfile.mkdtemp(prefix="switchyard-bench-")
    run = Run(args, workdir)
    try:
        run.all()
    finally:
        run.cleanup()
    micro = None
    if args.micro:
        with open(args.micro, encoding="utf-8") as f:
            micro = report.micro_section(f.read())
    report.write(args.out, run.results, args, run.commands, micro)
    print(f"\nwrote {os.path.relpath(args.out, ROOT)}")


class Run:
    def __init__(self, args, workdir):
        self.args = args
        self.workdir = workdir
        self.procs = []
        self.results = {
            "started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "targets": {},
            "machine": report.machine(),
        }
        self.commands = []
        self.database = None
        self.redis_prefix = None
        self.bodies = {}
        self.redact = {}

    # ------------------------------------------------------------ plumbing

    def start(self, name, argv, env=None):
        p = procs.Proc(name, argv, env or {}, self.workdir)
        self.procs.append(p)
        self.commands.append(self.shown(" ".join([*(f"{k}={v}" for k, v in (env or {}).items()), *argv])))
        return p

    def shown(self, text):
        """A command line as the report shows it: no secrets, no local paths."""
        for literal, placeholder in self.redact.items():
            text = text.replace(literal, placeholder)
        return text.replace(self.workdir, "$TMP").replace(BIN + "/", "target/release/")

    def body_file(self, model, stream):
        key = (model, stream)
        if key not in self.bodies:
            body = {
                "model": model,
                "messages": [{"role": "user", "content": PROMPT}],
                "max_tokens": 256,
                "temperature": 0.7,
                "stream": stream,
            }
            path = os.path.join(self.workdir, f"body-{model.replace('/', '_')}-{'stream' if stream else 'json'}.json")
            with open(path, "w") as f:
                json.dump(body, f)
            self.bodies[key] = path
        return self.bodies[key]

    def cleanup(self):
        for p in reversed(self.procs):
            p.stop()
        if self.database:
            subprocess.run(
                ["psql", f"{self.args.postgres}/postgres", "-qc", f"DROP DATABASE IF EXISTS {self.database} WITH (FORCE)"],
                capture_output=True,
            )
        if self.redis_prefix and shutil.which("redis-cli"):
            keys = subprocess.run(
                ["redis-cli", "-u", self.args.redis, "--scan", "--pattern", f"{self.redis_prefix}*"],
                capture_output=True, text=True,
            ).stdout.split()
            for i in range(0, len(keys), 500):
                subprocess.run(["redis-cli", "-u", self.args.redis, "del", *keys[i:i + 500]], capture_output=True)
        if os.environ.get("BENCH_KEEP_TMP"):
            print(f"logs kept in {self.workdir}")
        else:
            shutil.rmtree(self.workdir, ignore_errors=True)

    # ------------------------------------------------------------ the run

    def all(self):
        wanted = self.args.only.split(",")
        sims = self.start_sims()
        self.direct_url = f"http://{sims['fast']['addr']}/v1/chat/completions"
        seed = self.write_seed(sims)
        sim_procs = [s["proc"] for s in sims.values()]
        if "direct" in wanted:
            fast, slow = sims["fast"], sims["slow"]
            self.measure(
                "direct",
                host_port=fast["addr"],
                path="/v1/chat/completions",
                auth=None,
                models=(MODEL, MODEL),
                slow_host_port=slow["addr"],
                watched=sim_procs,
            )
            self.busy_neighbour()
        if "microservices" in wanted:
            self.microservices(seed, sim_procs)
        if "all-in-one" in wanted:
            self.all_in_one(seed, sim_procs)

    def start_sims(self):
        sims = {}
        for name, ttft in (("fast", 0), ("slow", SLOW_TTFT_MS)):
            behaviour = os.path.join(self.workdir, f"sim-{name}.json")
            with open(behaviour, "w") as f:
                json.dump({"*": {"ttft_ms": ttft, "tokens_per_second": 0}}, f)
            addr = f"127.0.0.1:{procs.free_port()}"
            proc = self.start(
                f"provider-sim-{name}",
                [os.path.join(BIN, "provider-sim"), "--addr", addr, "--behaviour-file", behaviour],
            )
            procs.wait_until(f"provider-sim {name}", lambda: procs.http_ok(f"http://{addr}/v1/models"), [proc])
            sims[name] = {"addr": addr, "proc": proc, "ttft_ms": ttft}
        return sims

    def write_seed(self, sims):
        path = os.path.join(self.workdir, "bench-catalog.toml")
        blocks = []
        for name, model in (("fast", MODEL), ("slow", SLOW_MODEL)):
            slug = "bench-sim" if name == "fast" else "bench-sim-ttft60"
            blocks.append(f"""
[[providers]]
slug = "{slug}"
name = "Bench Sim ({name})"
wire_format = "openai"
base_url = "http://{sims[name]['addr']}/v1"
credential_ref = ""

[[models]]
id = "{model}"
name = "Bench: {name} model"
created = 1732233600
description = "provider-sim with ttft {sims[name]['ttft_ms']} ms, tokens as fast as possible"
context_length = 128000
architecture = {{ modality = "text->text", input_modalities = ["text"], output_modalities = ["text"], tokenizer = "Other" }}
supported_parameters = ["max_tokens", "temperature", "top_p", "stop", "seed"]

[[endpoints]]
model = "{model}"
provider = "{slug}"
upstream_model = "sim-small"
pricing = {{ prompt = "0.000001", completion = "0.000002" }}
max_completion_tokens = 4096
""")
        with open(path, "w") as f:
            f.write("# Written by bench/bench.py for one run.\n" + "".join(blocks))
        return path

    def busy_neighbour(self):
        """The direct one-connection cell again, with one busy loop at idle
        priority (SCHED_IDLE) beside it: how long this machine leaves a woken
        task waiting behind work on the other core. Any deployment that runs
        its database on the same cores has such work."""
        a = self.args
        spin = "import os\nos.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))\nwhile True: pass\n"
        spinner = subprocess.Popen([sys.executable, "-c", spin])
        try:
            time.sleep(0.5)
            if spinner.poll() is not None:
                # Without its busy loop the cell would pass for one measured beside it.
                raise RuntimeError(f"the idle-priority busy loop exited ({spinner.returncode}); "
                                   "this needs Linux's SCHED_IDLE")
            result, command = load.wrk(self.direct_url, self.body_file(MODEL, False), None, 1, a.seconds, a.wrk_threads)
        finally:
            spinner.kill()
            spinner.wait()
        result.update(command=command)
        self.results["busy_neighbour"] = result
        p = result["latency_us"]["p"]
        print(f"  json   c=1    direct, one idle-priority busy loop beside it: p50 {p['50']/1000:7.3f} ms  "
              f"p90 {p['90']/1000:7.3f} ms  p99 {p['99']/1000:7.3f} ms", flush=True)

    def microservices(self, seed, sim_procs):
        a = self.args
        tag = uuid.uuid4().hex[:10]
        self.database = f"switchyard_bench_{tag}"
        subprocess.run(["psql", f"{a.postgres}/postgres", "-qc", f"CREATE DATABASE {self.database}"], check=True)
        db_url = f"{a.postgres}/{self.database}"
        self.redis_prefix = f"switchyard-bench-{tag}"
        pepper = uuid.uuid4().hex
        self.redact = {db_url: "$DB", pepper: "$PEPPER"}
        self.commands.append(f"psql {a.postgres}/postgres -c 'CREATE DATABASE {self.database}'  # $DB")

        ports = {n: procs.free_port() for n in ("catalog", "metering", "adapter", "http", "grpc")}
        metrics0 = "127.0.0.1:0"
        # A prepaid account with ample credit: every request goes through
        # credit admission (the per-key lease), as a customer's would.
        printed = subprocess.run(
            [os.path.join(BIN, "switchyard-usage-metering"), "--database-url", db_url, "--key-pepper", pepper,
             "--data-dir", os.path.join(self.workdir, "metering"), "bootstrap", "--name", "bench",
             "--credits", "1000000"],
            check=True, capture_output=True, text=True,
        ).stdout
        key = re.search(r"inference key:\s+(\S+)", printed).group(1)
        self.commands.append("target/release/switchyard-usage-metering --database-url $DB --key-pepper $PEPPER --data-dir $TMP/metering bootstrap --name bench --credits 1000000  # prints $KEY")
        catalog = self.start("catalog", [
            os.path.join(BIN, "switchyard-catalog"), "--grpc-addr", f"127.0.0.1:{ports['catalog']}",
            "--metrics-addr", metrics0, "--database-url", db_url, "--seed", seed,
            "--data-dir", os.path.join(self.workdir, "catalog"),
        ])
        metering = self.start("usage-metering", [
            os.path.join(BIN, "switchyard-usage-metering"), "--grpc-addr", f"127.0.0.1:{ports['metering']}",
            "--metrics-addr", metrics0, "--database-url", db_url, "--key-pepper", pepper,
            "--data-dir", os.path.join(self.workdir, "metering"),
        ])
        adapter = self.start("provider-adapter", [
            os.path.join(BIN, "switchyard-provider-adapter"), "--grpc-addr", f"127.0.0.1:{ports['adapter']}",
            "--metrics-addr", metrics0,
        ])
        sy = os.path.join(BIN, "switchyard")
        for proc, port in ((catalog, ports["catalog"]), (metering, ports["metering"]), (adapter, ports["adapter"])):
            procs.wait_until(f"{proc.name} gRPC health", lambda: procs.grpc_healthy(sy, f"127.0.0.1:{port}"), [proc])
        router = self.start("router", [
            os.path.join(BIN, "switchyard-router"), "--http-addr", f"127.0.0.1:{ports['http']}",
            "--grpc-addr", f"127.0.0.1:{ports['grpc']}",
            "--catalog-url", f"http://127.0.0.1:{ports['catalog']}",
            "--adapter-url", f"http://127.0.0.1:{ports['adapter']}",
            "--metering-url", f"http://127.0.0.1:{ports['metering']}",
            "--redis-url", a.redis, "--redis-prefix", self.redis_prefix,
            "--data-dir", os.path.join(self.workdir, "router"),
        ])
        services = [catalog, metering, adapter, router]
        http = f"127.0.0.1:{ports['http']}"
        procs.wait_until("router /readyz", lambda: procs.http_ok(f"http://{http}/readyz"), services)
        self.measure(
            "microservices",
            host_port=http,
            path="/api/v1/chat/completions",
            auth=key,
            models=(MODEL, SLOW_MODEL),
            watched=services + sim_procs,
            switchyard=services,
        )
        for p in services:
            p.stop()

    def all_in_one(self, seed, sim_procs):
        http = f"127.0.0.1:{procs.free_port()}"
        env = {
            "SWITCHYARD_HTTP_ADDR": http,
            "SWITCHYARD_ROUTER_GRPC_ADDR": f"127.0.0.1:{procs.free_port()}",
            "SWITCHYARD_DATA_DIR": os.path.join(self.workdir, "all-in-one"),
            "SWITCHYARD_CATALOG_SEED": seed,
            "SWITCHYARD_NO_SIMULATOR": "true",
        }
        proc = self.start("switchyard", [os.path.join(BIN, "switchyard")], env)
        key = procs.wait_until(
            "the all-in-one's development key",
            lambda: (re.search(r"development key: (\S+)", proc.stdout_text()) or [None, None])[1],
            [proc],
        )
        procs.wait_until("all-in-one /readyz", lambda: procs.http_ok(f"http://{http}/readyz"), [proc])
        self.measure(
            "all-in-one",
            host_port=http,
            path="/api/v1/chat/completions",
            auth=key,
            models=(MODEL, SLOW_MODEL),
            watched=[proc] + sim_procs,
            switchyard=[proc],
        )
        proc.stop()

    # ------------------------------------------------------------ one target

    def measure(self, target, host_port, path, auth, models, watched, switchyard=None, slow_host_port=None):
        """Every cell for one target. `models` is (zero-delay model, 60 ms
        model); the direct target reaches the slow model on its own sim."""
        a = self.args
        switchyard = switchyard or []
        host, port = host_port.split(":")
        slow_host, slow_port = (slow_host_port or host_port).split(":")
        url = f"http://{host_port}{path}"
        slow_url = f"http://{slow_host}:{slow_port}{path}"
        out = {"cells": [], "ttft": {}, "rss": {}}
        self.results["targets"][target] = out
        print(f"\n== {target} ({url})", flush=True)

        for stream in (False, True):
            headers = load.check_once(host, int(port), path, open(self.body_file(models[0], stream), "rb").read(), auth, stream)
            if target != "direct":
                out["provider_header"] = headers.get("X-Switchyard-Provider") or headers.get("x-switchyard-provider")
        # Warm-up: connection pools, key cache, allocator, stats buckets.
        for stream in (False, True):
            load.wrk(url, self.body_file(models[0], stream), auth, 32, 2, a.wrk_threads)

        def cell(mode, conns, model, cell_url, label=None):
            for p in watched:
                p.check_alive()
            body = self.body_file(model, mode == "stream")
            cpu0 = {p.name: p.cpu_seconds() for p in watched}
            result, command = load.wrk(cell_url, body, auth, conns, a.seconds, a.wrk_threads)
            cpu = {p.name: p.cpu_seconds() - cpu0[p.name] for p in watched}
            sy_cpu = sum(cpu[p.name] for p in switchyard)
            result.update(
                target=target, mode=mode, connections=conns, model=model, label=label or "",
                command=command, cpu_s=cpu,
                switchyard_cpu_us_per_req=(sy_cpu / result["requests"] * 1e6) if switchyard and result["requests"] else None,
            )
            out["cells"].append(result)
            p = result["latency_us"]["p"]
            print(
                f"  {mode:6} c={conns:<4} {label or '':8} {result['rps']:9.0f} req/s  "
                f"p50 {p['50']/1000:7.3f} ms  p99 {p['99']/1000:7.3f} ms  errors {result['error_count']}",
                flush=True,
            )
            return result

        if target != "direct":
            # The direct baseline again, right before this target's
            # one-connection cells (report.baseline takes the lowest).
            out["baseline"] = []
            for mode in ("json", "stream"):
                body = self.body_file(models[0], mode == "stream")
                result, _ = load.wrk(self.direct_url, body, None, 1, a.seconds, a.wrk_threads)
                result.update(mode=mode, connections=1, label="")
                out["baseline"].append(result)
                p = result["latency_us"]["p"]
                print(f"  {mode:6} c=1    direct   p50 {p['50']/1000:7.3f} ms  p99 {p['99']/1000:7.3f} ms  (baseline repeat)", flush=True)
        for mode in ("json", "stream"):
            cell(mode, 1, models[0], url)
        cell("json", 1, models[1], slow_url, label="ttft60")
        for name, model, (h, pt) in (("ttft0", models[0], (host, port)), ("ttft60", models[1], (slow_host, slow_port))):
            body = open(self.body_file(model, True), "rb").read()
            samples = load.ttft(h, int(pt), path, body, auth, a.seconds)
            out["ttft"][name] = {
                "n": len(samples),
                "p50_us": load.percentile(samples, 50) * 1e6,
                "p90_us": load.percentile(samples, 90) * 1e6,
                "p99_us": load.percentile(samples, 99) * 1e6,
            }
            t = out["ttft"][name]
            print(f"  ttft   c=1    {name:8} n={t['n']:<6} p50 {t['p50_us']/1000:7.3f} ms  p99 {t['p99_us']/1000:7.3f} ms", flush=True)
        for i, conns in enumerate(a.connections):
            for mode in ("json", "stream"):
                cell(mode, conns, models[0], url)
            out["rss"][f"after c={conns}"] = {p.name: p.status() for p in watched}
        for p in watched:
            p.check_alive()


if __name__ == "__main__":
    script_main(main, "bench")
