#!/usr/bin/env python3
"""Instructions per request: each Switchyard process under valgrind's
callgrind, counting only while a fixed number of requests runs. Unlike
req/s or CPU time, the count does not move with the machine's load or
speed, so two builds compare on a noisy or shared machine. Run through
bench/instructions.sh, which builds the binaries first.
"""

import argparse
import glob
import http.client
import os
import re
import shutil
import subprocess
import sys
import time

import bench

TARGETS = {
    "all-in-one": ["switchyard"],
    "microservices": ["router", "provider-adapter", "usage-metering"],
}


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--requests", type=int, default=200, help="requests counted per kind")
    ap.add_argument("--only", default="all-in-one,microservices")
    ap.add_argument("--postgres", default=os.environ.get("BENCH_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432"))
    ap.add_argument("--redis", default=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379"))
    args = ap.parse_args()
    for tool in ("valgrind", "callgrind_control"):
        if not shutil.which(tool):
            sys.exit(f"instructions: needs {tool} (Debian: apt-get install valgrind)")

    rows = []
    for target in args.only.split(","):
        rows += measure_target(target.strip(), args)
    print()
    print("| target | process | non-streaming | streaming (24 chunks) |")
    print("|---|---|---:|---:|")
    for target, process, counts in rows:
        print(f"| {target} | {process} | {counts['json']:,.0f} | {counts['stream']:,.0f} |")
    print(f"\ninstructions per request, mean of {args.requests} requests on one keep-alive connection")


def measure_target(target, args):
    counted = set(TARGETS[target])
    counts = {}

    class Run(bench.Run):
        def start(self, name, argv, env=None):
            if name in counted:
                # Counting starts switched off; the requests below switch it on.
                argv = [
                    "valgrind", "--tool=callgrind", "--instr-atstart=no",
                    f"--callgrind-out-file={self.workdir}/callgrind.{name}.%p", *argv,
                ]
            return super().start(name, argv, env)

        def measure(self, target_name, host_port, path, auth, models, watched, switchyard=None, slow_host_port=None):
            if target_name != target:
                return
            procs = [p for p in watched if p.name in counted]
            host, port = host_port.split(":")
            for stream in (False, True):
                send(host, int(port), path, auth, self.body_file(models[0], stream), 50)
            for kind, stream in (("json", False), ("stream", True)):
                time.sleep(0.5)
                for p in procs:
                    control("--instr=on", p.pid)
                    control("--zero", p.pid)
                send(host, int(port), path, auth, self.body_file(models[0], stream), args.requests)
                for p in procs:
                    control("--instr=off", p.pid)
                    control(f"--dump={kind}", p.pid)
                for p in procs:
                    total = dumped_total(self.workdir, p, kind)
                    counts.setdefault(p.name, {})[kind] = total / args.requests
                    print(f"  {target:13} {p.name:17} {kind:6} {total / args.requests:12,.0f} instructions/request", flush=True)

    print(f"\n== {target} (under callgrind: starting takes a while)", flush=True)
    bench.run_alone(Run, target, args.postgres, args.redis, "switchyard-instructions-")
    return [(target, name, counts[name]) for name in TARGETS[target] if name in counts]


def send(host, port, path, auth, body_file, n):
    """`n` requests, one after another, on one keep-alive connection."""
    body = open(body_file, "rb").read()
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {auth}"}
    conn = http.client.HTTPConnection(host, port, timeout=120)
    for _ in range(n):
        conn.request("POST", path, body=body, headers=headers)
        response = conn.getresponse()
        text = response.read()
        if response.status != 200:
            raise RuntimeError(f"request failed with {response.status}: {text[:300]!r}")
    conn.close()


def control(option, pid):
    subprocess.run(["callgrind_control", option, str(pid)], check=True, capture_output=True)


def dumped_total(workdir, proc, kind, timeout=30):
    """The instruction total of the dump named `kind` (callgrind writes the
    dump asynchronously, so wait for it)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for path in glob.glob(os.path.join(workdir, f"callgrind.{proc.name}.{proc.pid}.*")):
            with open(path, encoding="utf-8", errors="replace") as f:
                text = f.read()
            if re.search(rf"^desc: Trigger: dump {kind}$", text, re.M):
                total = re.search(r"^totals: (\d+)", text, re.M)
                if total:
                    return int(total.group(1))
        time.sleep(0.2)
    raise RuntimeError(f"no callgrind dump '{kind}' from {proc.name}")


if __name__ == "__main__":
    bench.script_main(main, "instructions")
