"""Load generation: wrk for latency and throughput, and a small keep-alive
client that times the first streamed token (wrk only sees whole responses).
"""

import http.client
import json
import math
import os
import shlex
import subprocess
import time

HERE = os.path.dirname(os.path.abspath(__file__))
LUA = os.path.join(HERE, "post.lua")


def percentile(sorted_values, q):
    """Nearest-rank percentile of an already sorted list."""
    if not sorted_values:
        return float("nan")
    rank = max(1, min(len(sorted_values), math.ceil(q / 100 * len(sorted_values))))
    return sorted_values[rank - 1]


def wrk(url, body_file, auth, connections, seconds, threads):
    """Runs wrk once; returns (result dict, the exact command line)."""
    proc, command = wrk_start(url, body_file, auth, connections, seconds, threads)
    try:
        stdout, stderr = proc.communicate(timeout=seconds + 60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise RuntimeError(f"wrk did not finish within {seconds + 60} s") from None
    return wrk_result(proc.returncode, stdout, stderr), command


def wrk_start(url, body_file, auth, connections, seconds, threads):
    """Starts wrk in the background; returns (Popen, the command line as
    reports show it). `wrk_result` reads what it printed."""
    threads = max(1, min(threads, connections))
    argv = [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{seconds}s",
        "--timeout",
        "10s",
        "-s",
        LUA,
        url,
    ]
    env = dict(os.environ, BENCH_BODY_FILE=body_file, BENCH_AUTH=auth or "")
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    shown = f"BENCH_BODY_FILE={os.path.basename(body_file)}"
    if auth:
        shown += " BENCH_AUTH=$KEY"
    command = shown + " " + " ".join(shlex.quote(a) for a in argv).replace(LUA, "bench/post.lua")
    return proc, command


def wrk_result(returncode, stdout, stderr):
    """The result dict of one wrk run, from the JSON line post.lua prints."""
    line = next(
        (l for l in stdout.splitlines() if l.startswith("BENCH_JSON ")), None
    )
    if returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({returncode}):\n{stdout}\n{stderr}")
    result = json.loads(line[len("BENCH_JSON "):])
    result["rps"] = result["requests"] / (result["duration_us"] / 1e6)
    result["error_count"] = sum(result["errors"].values())
    return result


def ttft(host, port, path, body, auth, seconds, max_samples=20000):
    """Times POST -> first SSE event carrying content, on one keep-alive
    connection, for `seconds`. Keep-alive comments and role-only chunks do
    not count. Returns a sorted list of seconds."""
    headers = {"Content-Type": "application/json"}
    if auth:
        headers["Authorization"] = f"Bearer {auth}"
    conn = http.client.HTTPConnection(host, port, timeout=30)
    samples = []
    end = time.monotonic() + seconds
    try:
        while time.monotonic() < end and len(samples) < max_samples:
            start = time.perf_counter()
            conn.request("POST", path, body=body, headers=headers)
            resp = conn.getresponse()
            if resp.status != 200:
                raise RuntimeError(f"TTFT request got {resp.status}: {resp.read()[:300]!r}")
            first = None
            pending = b""
            while True:
                chunk = resp.read1(65536)
                if not chunk:
                    break
                if first is not None:
                    continue
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    if first is None and line.startswith(b"data: {") and has_content(line[6:]):
                        first = time.perf_counter() - start
            if first is None:
                raise RuntimeError("stream ended without a content chunk")
            samples.append(first)
    finally:
        conn.close()
    samples.sort()
    return samples


def has_content(data):
    choices = json.loads(data).get("choices") or []
    return bool(choices and (choices[0].get("delta") or {}).get("content"))


def check_once(host, port, path, body, auth, stream):
    """One request, validated, so that a benchmark never measures errors."""
    headers = {"Content-Type": "application/json"}
    if auth:
        headers["Authorization"] = f"Bearer {auth}"
    conn = http.client.HTTPConnection(host, port, timeout=30)
    try:
        conn.request("POST", path, body=body, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        if resp.status != 200:
            raise RuntimeError(f"{path} answered {resp.status}: {data[:500]!r}")
        if stream:
            if b"data: [DONE]" not in data:
                raise RuntimeError(f"stream did not end with [DONE]: {data[-300:]!r}")
        else:
            reply = json.loads(data)
            if not reply["choices"][0]["message"]["content"]:
                raise RuntimeError(f"empty completion: {data[:300]!r}")
        return dict(resp.getheaders())
    finally:
        conn.close()
