"""Real processes for tests: this service under gunicorn, and a PostgreSQL of
the test's own that it may stop and start (never the shared server).

    free_port()                       a loopback TCP port nobody listens on
    Gunicorn(env, workers=2, honour_file_modes=False)
        .url, .pid, .workers(), .stop(sig), .log()
    Postgres()
        .url, .start(), .stop(), .sql(query, *params)
    read_response(sock)               one raw HTTP/1.1 answer: status, headers, body

Both are context managers that clean up every process they started. As root,
PostgreSQL runs as `postgres` (it refuses root), and gunicorn can be made to
honour file modes as another user would (root's override dropped by setpriv).
"""

import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import psycopg
import requests

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LOGS_READ = []  # (where, text) of each server log, searched for secrets at the end of the run
PG_BIN = "/usr/lib/postgresql/15/bin"


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def owned_tempdir(user=None):
    """A fresh directory that `user` (default: us) owns."""
    path = tempfile.mkdtemp(prefix="datasources-")
    if user is not None:
        entry = pwd.getpwnam(user)
        os.chown(path, entry.pw_uid, entry.pw_gid)
    return path


def run_as(user):
    """Popen keywords that run a child as `user` when we are root."""
    if user is None or os.geteuid() != 0:
        return {}
    entry = pwd.getpwnam(user)
    return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}


def wait_for(predicate, timeout=20.0, what="condition"):
    """Poll `predicate` until it returns something true; that value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise TimeoutError(f"timed out waiting for {what}")


def read_response(sock):
    """One HTTP/1.1 response read from `sock`, framed by its Content-Length:
    (status, headers by lower-case name, body). EOFError if the connection
    ends before the response does."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += receive(sock, data)
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers["content-length"])
    while len(body) < length:
        body += receive(sock, body)
    assert len(body) == length, "bytes past the response"  # nothing was sent after it
    return int(status_line.split()[1]), headers, body


def receive(sock, so_far):
    chunk = sock.recv(65536)
    if not chunk:
        raise EOFError(f"the connection ended after {len(so_far)} bytes: {so_far[:200]!r}")
    return chunk


class Gunicorn:
    """`gunicorn wsgi:app` on a free loopback port, with `env` added to a
    copy of ours from which every DATASOURCES_* setting is removed."""

    def __init__(self, env, workers=2, honour_file_modes=False, args=()):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.folder = owned_tempdir()
        self.log_path = os.path.join(self.folder, "gunicorn.log")
        base = {k: v for k, v in os.environ.items() if not k.startswith("DATASOURCES_")}
        command = [sys.executable, "-m", "gunicorn", "-w", str(workers)]
        if honour_file_modes and os.geteuid() == 0:
            drop = "--bounding-set=-dac_override,-dac_read_search,-fowner"
            command = ["setpriv", "--inh-caps=-all", drop, "--", *command]
        command += ["-b", f"127.0.0.1:{self.port}", "--timeout", "30", "--graceful-timeout", "20"]
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                [*command, *args, "wsgi:app"],
                cwd=REPO,
                env={**base, **env},
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.pid = self.process.pid
        try:
            wait_for(self._ready, what="gunicorn to answer /healthz")
            wait_for(lambda: len(self.workers()) == workers, what="every worker to boot")
        except BaseException:
            self.stop(signal.SIGKILL)
            raise

    def _ready(self):
        if self.process.poll() is not None:
            raise RuntimeError(f"gunicorn exited early:\n{self.log()}")
        try:
            return requests.get(f"{self.url}/healthz", timeout=5).status_code == 200
        except requests.RequestException:  # the master listens before a worker answers
            return False

    def workers(self):
        """The pids of the master's live worker processes, sorted."""
        found = []
        for name in os.listdir("/proc"):
            try:
                with open(f"/proc/{name}/stat") as stat:
                    fields = stat.read().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            if fields[0] != "Z" and int(fields[1]) == self.pid:
                found.append(int(name))
        return sorted(found)

    def stop(self, sig=signal.SIGTERM, timeout=30):
        """Signal the master and wait for it; its exit code."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.pid, signal.SIGKILL)
                self.process.wait()
        return self.process.returncode

    def log(self):
        with open(self.log_path, errors="replace") as log:
            return log.read()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
        try:
            os.killpg(self.pid, signal.SIGKILL)  # workers orphaned by a test's SIGKILL
        except ProcessLookupError:
            pass
        LOGS_READ.append((f"gunicorn on port {self.port}", self.log()))
        shutil.rmtree(self.folder, ignore_errors=True)


class Postgres:
    """A throwaway PostgreSQL 15 cluster in a temp folder, on a free port;
    started on entry, removed on exit. `url` names its `postgres` database."""

    def __init__(self):
        self.user = "postgres" if os.geteuid() == 0 else None
        self.folder = owned_tempdir(self.user)
        self.data = os.path.join(self.folder, "data")
        self.port = free_port()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        self._pg("initdb", "-D", self.data, "-U", "postgres", "-A", "trust", "--no-sync")

    def _pg(self, program, *args):
        subprocess.run(
            [os.path.join(PG_BIN, program), *args],
            check=True,
            capture_output=True,
            cwd=self.folder,
            **run_as(self.user),
        )

    def start(self):
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -c fsync=off"
        options += f" -c unix_socket_directories={self.folder}"
        log = os.path.join(self.folder, "server.log")
        self._pg("pg_ctl", "-D", self.data, "-o", options, "-l", log, "-w", "start")

    def stop(self, mode="fast"):
        self._pg("pg_ctl", "-D", self.data, "-m", mode, "-w", "stop")

    def running(self):
        return os.path.exists(os.path.join(self.data, "postmaster.pid"))

    def sql(self, query, *params):
        """Run one statement in its own connection; its rows, if any."""
        with psycopg.connect(self.url, autocommit=True, connect_timeout=5) as conn:
            cursor = conn.execute(query, params or None)
            return cursor.fetchall() if cursor.description else []

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        if self.running():
            self.stop("immediate")
        shutil.rmtree(self.folder, ignore_errors=True)
