#!/usr/bin/env python3
"""CPU flame graphs of Switchyard's processes under load: the benchmark's
own setup (bench.py), wrk at a fixed number of connections, and `perf
record` sampling every Switchyard process meanwhile. Writes, per target,
process and request kind, the folded stacks (`*.folded`, the format
inferno and flamegraph.pl read) and a self-contained SVG flame graph.
Run through bench/profile.sh, which builds the binaries first.
"""

import argparse
import collections
import hashlib
import html
import os
import re
import shutil
import subprocess
import sys
import time

import bench
import load

TARGETS = ("all-in-one", "microservices")


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--only", default=",".join(TARGETS), help="targets, comma-separated")
    ap.add_argument("--kinds", default="json,stream", help="request kinds: json, stream")
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--seconds", type=int, default=10, help="length of each profiled load")
    ap.add_argument("--frequency", type=int, default=999, help="samples per second per CPU")
    ap.add_argument("--out", default=os.path.join(bench.ROOT, "target", "profiles"))
    ap.add_argument("--postgres", default=os.environ.get("BENCH_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432"))
    ap.add_argument("--redis", default=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379"))
    args = ap.parse_args()
    if not shutil.which("perf"):
        sys.exit("profile: needs perf (Debian: apt-get install linux-perf)")
    kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
    if not kinds or any(k not in ("json", "stream") for k in kinds):
        sys.exit("profile: --kinds takes json and/or stream")
    os.makedirs(args.out, exist_ok=True)
    written = []
    for target in args.only.split(","):
        target = target.strip()
        if target not in TARGETS:
            sys.exit(f"profile: unknown target {target!r} (one of {', '.join(TARGETS)})")
        written += profile_target(target, kinds, args)
    print()
    for path in written:
        print(f"  {os.path.relpath(path)}")


def profile_target(target, kinds, args):
    written = []

    class Run(bench.Run):
        def measure(self, target_name, host_port, path, auth, models, watched, switchyard=None, slow_host_port=None):
            if target_name != target:
                return
            names = {p.pid: p.name for p in switchyard or []}
            url = f"http://{host_port}{path}"
            for kind in kinds:
                body = self.body_file(models[0], kind == "stream")
                load.wrk(url, body, auth, args.connections, 2, 1)  # warm-up
                data = os.path.join(self.workdir, f"perf-{kind}.data")
                recorder = subprocess.Popen(
                    ["perf", "record", "-e", "cpu-clock", "-F", str(args.frequency),
                     "--call-graph", "dwarf,16384", "-o", data,
                     "-p", ",".join(str(pid) for pid in names), "--", "sleep", str(args.seconds + 1)],
                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                )
                time.sleep(0.5)
                result, _ = load.wrk(url, body, auth, args.connections, args.seconds, 1)
                _, err = recorder.communicate(timeout=args.seconds + 120)
                if recorder.returncode != 0:
                    raise RuntimeError(f"perf record failed: {err.strip()}")
                print(f"  {target} {kind}: {result['rps']:,.0f} req/s while sampling", flush=True)
                script = subprocess.run(["perf", "script", "-F", "comm,pid,tid,time,event,ip,sym,dso", "-i", data], capture_output=True, text=True,
                                        errors="replace", check=True).stdout
                stacks = fold(script, names)
                for name in names.values():
                    own = {s: n for s, n in stacks.items() if s.split(";", 1)[0] == name}
                    if not own:
                        continue
                    stem = os.path.join(args.out, f"{target}-{name}-{kind}")
                    with open(stem + ".folded", "w") as f:
                        f.writelines(f"{s} {n}\n" for s, n in sorted(own.items()))
                    title = f"{name}, {target}, {kind}, {args.connections} connections, {result['rps']:,.0f} req/s"
                    with open(stem + ".svg", "w") as f:
                        f.write(flamegraph(own, title))
                    written.extend([stem + ".svg", stem + ".folded"])

    print(f"\n== {target}", flush=True)
    bench.run_alone(Run, target, args.postgres, args.redis, "switchyard-profile-")
    return written


HEADER = re.compile(r"^\S.*?\s+(\d+)(?:/\d+)?\s+\[?\d*\]?\s*[\d.]+:")
FRAME = re.compile(r"^\s+[0-9a-f]+\s+(.*?)\s+\((.*)\)$")


def fold(script, names):
    """`perf script` output → {"process;outermost;...;innermost": samples},
    rooted at our name for each sampled process id."""
    stacks = collections.Counter()
    pid, frames = None, []

    def flush():
        if pid in names and frames:
            stacks[";".join([names[pid], *reversed(frames)])] += 1

    for line in script.splitlines():
        if not line.strip():
            flush()
            pid, frames = None, []
            continue
        if not line[0].isspace():
            head = HEADER.match(line)
            pid = int(head.group(1)) if head else None
            frames = []
            continue
        frame = FRAME.match(line)
        # perf ends a stack it could not unwind to the thread's start with
        # an "[unknown]" frame: dropped, so a cut stack starts at its
        # outermost known function instead of piling under one "[unknown]".
        if frame and (frame.group(1), frame.group(2)) != ("[unknown]", "[unknown]"):
            frames.append(symbol(frame.group(1), frame.group(2)))
    flush()
    return stacks


def symbol(sym, dso):
    """A frame's function without its offset, or the library it is in."""
    sym = re.sub(r"\+0x[0-9a-f]+$", "", sym)
    if sym in ("[unknown]", ""):
        return f"[{os.path.basename(dso)}]" if dso not in ("[unknown]", "") else "[unknown]"
    # ';' separates frames in the folded format.
    return sym.replace(";", ":")


def flamegraph(stacks, title, width=1200, row=16):
    """A static SVG flame graph: one box per function per call path, its
    width the share of samples, the outermost frame at the bottom; the
    full name and share show on hover."""
    total = sum(stacks.values())
    root = {"n": 0, "kids": {}}
    for stack, count in stacks.items():
        node = root
        node["n"] += count
        for name in stack.split(";"):
            node = node["kids"].setdefault(name, {"n": 0, "kids": {}})
            node["n"] += count
    boxes = []
    depth_max = [0]

    def walk(node, name, x, depth):
        w = node["n"] / total * (width - 20)
        if w < 0.2:
            return
        depth_max[0] = max(depth_max[0], depth)
        boxes.append((name, x, depth, w, node["n"]))
        for kid_name, kid in sorted(node["kids"].items()):
            walk(kid, kid_name, x, depth + 1)
            x += kid["n"] / total * (width - 20)

    for name, kid in sorted(root["kids"].items()):
        walk(kid, name, 10, 0)
    height = (depth_max[0] + 1) * row + 50
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'font-family="monospace" font-size="11">',
        f'<rect width="100%" height="100%" fill="#fdfdf6"/>',
        f'<text x="10" y="20" font-size="14">{html.escape(title)} ({total} samples)</text>',
    ]
    for name, x, depth, w, n in boxes:
        y = height - 10 - (depth + 1) * row
        label = html.escape(name)
        share = f"{n / total * 100:.2f}%"
        out.append(f'<g><title>{label} ({n} samples, {share})</title>'
                   f'<rect x="{x:.1f}" y="{y}" width="{w:.1f}" height="{row - 1}" fill="{colour(name)}" rx="1"/>')
        chars = int(w / 7)
        if chars >= 3:
            text = name if len(name) <= chars else name[: chars - 2] + ".."
            out.append(f'<text x="{x + 3:.1f}" y="{y + row - 4}">{html.escape(text)}</text>')
        out.append("</g>")
    out.append("</svg>\n")
    return "\n".join(out)


def colour(name):
    """A warm colour that stays the same for a function across graphs."""
    h = hashlib.blake2b(name.encode(), digest_size=2).digest()
    return f"rgb({205 + h[0] % 50},{80 + h[1] % 120},{40 + h[0] % 40})"


if __name__ == "__main__":
    bench.script_main(main, "profile")
