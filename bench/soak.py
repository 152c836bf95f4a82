#!/usr/bin/env python3
"""Memory soak: the benchmark's own setup for one target (bench.py), wrk at
a fixed number of connections for a long run, and the resident memory of
every Switchyard process sampled meanwhile. Memory should stay flat after
warm-up; the summary says how far it moved. Run through bench/soak.sh,
which builds the binaries first.
"""

import argparse
import os
import subprocess
import sys
import time

import bench
import load

TARGETS = ("all-in-one", "microservices")


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--target", default="all-in-one", choices=TARGETS)
    ap.add_argument("--seconds", type=int, default=int(os.environ.get("SOAK_SECONDS", "600")))
    ap.add_argument("--connections", type=int, default=int(os.environ.get("SOAK_CONNECTIONS", "32")))
    ap.add_argument("--interval", type=int, default=30, help="seconds between RSS samples")
    ap.add_argument("--warm-up", type=int, default=30, help="seconds before the flatness window starts")
    ap.add_argument("--postgres", default=os.environ.get("BENCH_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432"))
    ap.add_argument("--redis", default=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379"))
    args = ap.parse_args()
    if args.seconds < 2 * args.interval:
        sys.exit("soak: --seconds must cover at least two samples (--interval)")

    class Run(bench.Run):
        def measure(self, target, host_port, path, auth, models, watched, switchyard=None, slow_host_port=None):
            if target == args.target:
                soak(self, f"http://{host_port}{path}", auth, self.body_file(models[0], False), switchyard, args)

    bench.run_alone(Run, args.target, args.postgres, args.redis, "switchyard-soak-")


def soak(run, url, auth, body, services, args):
    names = [p.name for p in services]
    print(f"soak: {args.target}, {args.connections} connections, {args.seconds} s, "
          f"RSS every {args.interval} s (MB)", flush=True)
    print("elapsed_s " + " ".join(f"{n:>16}" for n in names), flush=True)
    wrk, command = load.wrk_start(url, body, auth, args.connections, args.seconds, 1)
    try:
        samples = sample(services, wrk, args.interval)
    except BaseException:
        wrk.kill()
        wrk.wait()
        raise
    stdout, stderr = wrk.communicate()
    result = load.wrk_result(wrk.returncode, stdout, stderr)
    peaks = [p.status()["VmHWM"] for p in services]
    print(f"\n{command}")
    print(f"{result['requests']:,} requests at {result['rps']:,.0f} req/s, "
          f"{result['error_count']} errors ({result['errors']})")
    window = [(t, row) for t, row in samples if t >= args.warm_up] or samples
    print(f"RSS after the first {args.warm_up} s (MB): first, lowest, highest, last; peak over the whole run")
    for i, name in enumerate(names):
        values = [row[i] / 1024 for _, row in window]
        print(f"  {name:16} {values[0]:7.1f} {min(values):7.1f} {max(values):7.1f} {values[-1]:7.1f}"
              f"   peak {peaks[i] / 1024:.1f}")
    print(f"stored: {stored(run, args)}")
    if result["error_count"]:
        sys.exit("soak: wrk counted errors")


def sample(services, wrk, interval):
    """Prints and returns each service's RSS every `interval` seconds until
    wrk exits: [(elapsed seconds, [RSS KiB per service])]."""
    started = time.monotonic()
    samples = []
    next_at = 0.0
    while True:
        done = wrk.poll() is not None
        elapsed = time.monotonic() - started
        if elapsed >= next_at or done:
            for p in services:
                p.check_alive()
            row = [p.status()["VmRSS"] for p in services]
            samples.append((elapsed, row))
            print(f"{elapsed:9.0f} " + " ".join(f"{kib / 1024:16.1f}" for kib in row), flush=True)
            next_at += interval
        if done:
            return samples
        time.sleep(min(1.0, max(0.0, next_at - (time.monotonic() - started))))


def stored(run, args):
    """What the run left in storage: the embedded store's files, or the
    bench database's size in Postgres."""
    if args.target == "all-in-one":
        total = 0
        for root, _, files in os.walk(os.path.join(run.workdir, "all-in-one")):
            total += sum(os.path.getsize(os.path.join(root, f)) for f in files)
        return f"embedded store {total / 1e9:.2f} GB"
    size = subprocess.run(
        ["psql", f"{args.postgres}/postgres", "-qAtc", f"SELECT pg_database_size('{run.database}')"],
        capture_output=True, text=True,
    ).stdout.strip()
    return f"Postgres database {int(size or 0) / 1e9:.2f} GB"


if __name__ == "__main__":
    bench.script_main(main, "soak")
