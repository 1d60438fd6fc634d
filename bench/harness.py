"""Processes the benchmark drives: gunicorn servers, wrk runs, worker memory."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request

BENCH = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH)
LUA = os.path.join(BENCH, "lua")
OUT = os.path.join(BENCH, "out")
FLASK = os.path.join(os.path.dirname(sys.executable), "flask")
WORKERS = 2
CONNECTIONS = 16


def require_wrk():
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed; install it with: apt-get install -y wrk")


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Gunicorn:
    """`gunicorn <target>` from the repo root (so both servers read the same
    gunicorn.conf.py, if there is one) with 2 workers on a free port."""

    def __init__(
        self, name, target, env, out_dir, probe="/", headers=None, pythonpath=None, extra=()
    ):
        self.name, self.port = name, free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        command = [sys.executable, "-m", "gunicorn", "--workers", str(WORKERS)]
        command += ["--bind", f"127.0.0.1:{self.port}", "--graceful-timeout", "5"]
        if pythonpath:
            command += ["--pythonpath", pythonpath]
        command += list(extra)  # e.g. --worker-class sync, for both servers alike
        self.log_path = os.path.join(out_dir, f"{name}.log")
        self.log = open(self.log_path, "ab")
        self.log_start = self.log.tell()
        self.process = subprocess.Popen(
            [*command, target],
            cwd=ROOT,
            env={**os.environ, **env},
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.wait_ready(probe, headers or {})
        self.worker_class = self.logged_worker_class()

    def wait_ready(self, probe, headers, seconds=30):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                sys.exit(f"{self.name} exited at start-up; see {self.log_path}")
            if len(self.workers()) == WORKERS:
                try:
                    request = urllib.request.Request(self.url + probe, headers=headers)
                    with urllib.request.urlopen(request, timeout=2) as response:
                        if response.status == 200:
                            return
                except OSError:
                    pass
            time.sleep(0.2)
        self.stop()
        sys.exit(f"{self.name} did not answer within {seconds}s; see {self.log_path}")

    def logged_worker_class(self):
        """The worker class gunicorn runs, as it logs it: `--worker-class sync`
        with `threads` > 1 (as in gunicorn.conf.py) silently runs gthread."""
        with open(self.log_path, "rb") as log:
            log.seek(self.log_start)
            for line in log:
                if b"Using worker: " in line:
                    return line.split(b"Using worker: ", 1)[1].strip().decode()
        return "unknown"

    def get(self, path, headers=None):
        request = urllib.request.Request(self.url + path, headers=headers or {})
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.read()

    def workers(self):
        """The worker processes' ids: the master's children."""
        children = []
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    with open(f"/proc/{entry}/stat") as stat:
                        fields = stat.read().rsplit(")", 1)[1].split()
                except OSError:
                    continue
                if int(fields[1]) == self.process.pid:
                    children.append(int(entry))
        return sorted(children)

    def cpu_seconds(self):
        """User and system CPU the workers have used so far."""
        ticks = 0
        for pid in self.workers():
            try:
                with open(f"/proc/{pid}/stat") as stat:
                    fields = stat.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            ticks += int(fields[11]) + int(fields[12])
        return ticks / os.sysconf("SC_CLK_TCK")

    def rss_mib(self):
        """Each worker's resident memory in MiB."""
        return [rss_mib(pid) for pid in self.workers()]

    def stop(self):
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.log.close()


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def wrk(server, script, seconds, env, connections=CONNECTIONS):
    """One wrk run against `server`, one thread per connection (so each
    connection owns its keys in the Lua script); returns the script's summary
    as a dict, with the server's CPU milliseconds per request."""
    return Wrk(server, script, seconds, env, connections).result()


class Wrk:
    """A wrk run in the background; `result()` waits for its summary."""

    def __init__(self, server, script, seconds, env, connections=CONNECTIONS):
        self.server, self.cpu = server, server.cpu_seconds()
        command = ["wrk", f"-t{connections}", f"-c{connections}", f"-d{seconds}s"]
        command += ["--timeout", "5s", "-s", os.path.join(LUA, script), server.url]
        self.process = subprocess.Popen(
            command,
            env={**os.environ, **env},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def running(self):
        return self.process.poll() is None

    def result(self):
        out, err = self.process.communicate()
        for line in out.splitlines():
            if line.startswith("BENCH "):
                summary = json.loads(line[len("BENCH ") :])
                summary["rps"] = summary["requests"] / (summary["duration_us"] / 1e6)
                summary["error_count"] = sum(summary["errors"].values())
                spent = self.server.cpu_seconds() - self.cpu
                summary["cpu_ms"] = 1000 * spent / max(summary["requests"], 1)
                return summary
        sys.exit(f"wrk gave no summary:\n{out}\n{err}")


def flask_command(env, *args, out_dir=OUT):
    """`flask --app datasources.app <args>`: (seconds, CPU seconds, peak RSS in
    MiB, stdout); CPU and RSS of the command and its worker processes, not of
    the PostgreSQL server."""
    with (
        open(os.path.join(out_dir, "flask.out"), "w+") as out,
        open(os.path.join(out_dir, "flask.err"), "w+") as err,
    ):
        started = time.monotonic()
        process = subprocess.Popen(
            [FLASK, "--app", "datasources.app", *args],
            cwd=out_dir,  # not the repository root: Flask would read it as a package
            env={**os.environ, **env},
            stdout=out,
            stderr=err,
        )
        _, status, usage = os.wait4(process.pid, 0)  # the rusage of this process alone
        seconds = time.monotonic() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0), err.seek(0)
        if process.returncode:
            sys.exit(f"flask {' '.join(args)} failed ({process.returncode}):\n{err.read()[-2000:]}")
        cpu = usage.ru_utime + usage.ru_stime
        return seconds, cpu, usage.ru_maxrss / 1024, out.read().strip()
