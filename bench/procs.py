"""Processes under test: start, wait until ready, sample memory and CPU, stop.

Every process gets its own log file in the run's temporary directory; a
process that exits early fails the run with the tail of its log.
"""

import os
import signal
import socket
import subprocess
import time
import urllib.request

CLK_TCK = os.sysconf("SC_CLK_TCK")


def free_port():
    """A loopback port that was free a moment ago (the OS picks it)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Proc:
    def __init__(self, name, argv, env, workdir):
        self.name = name
        self.argv = argv
        self.log_path = os.path.join(workdir, f"{name}.log")
        self.out_path = os.path.join(workdir, f"{name}.stdout")
        full_env = dict(os.environ)
        full_env.update(env)
        self.popen = subprocess.Popen(
            argv,
            env=full_env,
            stdout=open(self.out_path, "wb"),
            stderr=open(self.log_path, "wb"),
            stdin=subprocess.DEVNULL,
        )
        self.pid = self.popen.pid

    def check_alive(self):
        if self.popen.poll() is not None:
            raise RuntimeError(
                f"{self.name} exited with {self.popen.returncode}; last log lines:\n"
                + self.log_tail()
            )

    def log_tail(self, lines=20):
        text = ""
        for path in (self.log_path, self.out_path):
            try:
                with open(path, "rb") as f:
                    text += f.read().decode("utf-8", "replace")
            except OSError:
                pass
        return "\n".join(text.splitlines()[-lines:])

    def stdout_text(self):
        with open(self.out_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def status(self):
        """VmRSS and VmHWM (peak RSS) in KiB, from /proc/<pid>/status."""
        out = {}
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key in ("VmRSS", "VmHWM"):
                    out[key] = int(value.split()[0])
        return out

    def cpu_seconds(self):
        """User + system CPU time consumed so far."""
        with open(f"/proc/{self.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        # Fields 14 and 15 of stat(5); [0] here is field 3 (state).
        return (int(fields[11]) + int(fields[12])) / CLK_TCK

    def stop(self, grace=15):
        if self.popen.poll() is not None:
            return
        self.popen.send_signal(signal.SIGTERM)
        try:
            self.popen.wait(grace)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait()


def wait_until(what, check, procs, timeout=60):
    """Polls `check` until it returns a truthy value; fails fast when one of
    `procs` dies, and after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    delay = 0.02
    while True:
        for p in procs:
            p.check_alive()
        try:
            value = check()
            if value:
                return value
        except (OSError, ValueError):
            pass
        if time.monotonic() > deadline:
            tails = "\n".join(f"--- {p.name}\n{p.log_tail()}" for p in procs)
            raise RuntimeError(f"timed out waiting for {what}\n{tails}")
        time.sleep(delay)
        delay = min(delay * 1.5, 0.5)


def http_ok(url):
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


def grpc_healthy(switchyard_bin, addr):
    """The all-in-one binary's own probe: gRPC health of a running service."""
    r = subprocess.run(
        [switchyard_bin, "health", "--grpc", f"http://{addr}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        timeout=10,
    )
    return r.returncode == 0
