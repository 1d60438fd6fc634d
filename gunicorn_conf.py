"""gunicorn settings for the data sources API, one set for every way it is
served: `gunicorn wsgi:app` from the repository root (gunicorn.conf.py reads
this module) and `gunicorn -c python:datasources.gunicorn_conf
datasources.wsgi:app` installed.

The environment overrides it the usual way: WEB_CONCURRENCY sets the worker
count, PORT binds 0.0.0.0:$PORT (a platform routing to us; else loopback, so a
developer's server is not on the network), and GUNICORN_CMD_ARGS then command-line
flags win over everything here (`-w 4 -b 127.0.0.1:9000` work as usual).
Measured on this 2-core machine (wrk -t2 -c16, list endpoint, 100 sources,
3 alternating rounds, machine shared with other test runs): sync 2 workers
250 req/s median at 2.43 ms CPU/request, sync 4 workers 259 req/s at 2.72 ms,
gthread 2x2 429 req/s at 2.05 ms, gthread 2x4 331 req/s at 2.01 ms (p99 258 ms
vs 163 ms). gthread keeps connections alive (sync closes each one), which saves
~15% CPU per request; more workers than cores only add memory; 4 threads gave
no steady gain over 2 and a longer tail.
"""

import os
import shlex
import shutil
import sys
import tempfile
import time

from gunicorn.http.errors import ParseException

from datasources.settings import flag

bind = [f"0.0.0.0:{os.environ['PORT']}"] if os.environ.get("PORT") else ["127.0.0.1:8000"]
workers = int(os.environ.get("WEB_CONCURRENCY") or len(os.sched_getaffinity(0)))
worker_class = "gthread"
threads = 2  # a worker keeps serving while one thread waits on SQLite's lock or PostgreSQL

timeout = 30  # a worker whose main loop is silent this long is killed and replaced
graceful_timeout = 25  # SIGTERM: in-flight requests get this long; under Kubernetes' 30 s
keepalive = 5  # seconds; behind a gateway, raise it above the gateway's idle timeout

# The app is built once in the master (its migrations run once, a broken
# configuration fails at start, not in a loop of dying workers); `pre_fork`
# makes sure no database connection crosses the fork.
preload_app = True

# Our request log (one JSON object per line, DATASOURCES_LOG_FORMAT=text for
# people) is the access log, on stdout; gunicorn's own would repeat each line
# in another shape, so it stays off (`--access-logfile -` turns it on).
accesslog = None
errorlog = "-"

# The control socket's default path is one per user, which several servers on
# one machine (sidecars, tests) would fight over.
control_socket_disable = True

# Metrics from every worker: prometheus_client's multiprocess mode needs a
# folder set before it is imported, fresh for each run, removed at exit.
METRICS = flag("DATASOURCES_METRICS", os.environ.get("DATASOURCES_METRICS", "true"))
# The folder this file made, remembered across reloads (which re-read this
# file); not named DATASOURCES_*, which the app reads as its settings.
OWNED = "_DATASOURCES_METRICS_DIR"
ARGS = sys.argv[1:] + shlex.split(os.environ.get("GUNICORN_CMD_ARGS", ""))
SERVING = not {"--check-config", "--print-config"} & set(ARGS)  # those leave no on_exit
if METRICS and SERVING and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    folder = tempfile.mkdtemp(prefix="datasources-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = os.environ[OWNED] = folder


# Early refusals (413, 415, 401, 403, 404, 405) are answered before the body
# is read, and most clients read nothing until they have sent it all: they
# see the answer only once the server has read the body. gunicorn discards at
# most 64 KiB of it, half-closes, lingers for 64 KiB more, then closes with
# the rest unread: the kernel's reset breaks the client's send, can destroy
# the answer, and ends a connection the answer called kept alive. A linger
# that stops reading helps no such client, so, as nginx's lingering close
# does, the rest of the body is read and discarded, after the answer (a
# client that listens while it sends sees it at once), at most DRAIN_BYTES
# within DRAIN_SECONDS; the connection then stays usable. A body declared
# larger is not drained: its answer says `Connection: close`, and gunicorn
# half-closes and lingers. A chunked body past the bounds is cut off alike.
DRAIN_BYTES = 64 * 1024 * 1024  # 64 times the default DATASOURCES_MAX_BODY_BYTES
DRAIN_SECONDS = 10.0  # a drain holds one of the worker's threads


def pre_request(worker, req):
    """A body too large to drain: the answer says the connection closes."""
    worker.log.debug("%s %s", req.method, req.path)  # gunicorn's own pre_request
    for name, value in req.headers:
        if name == "CONTENT-LENGTH" and int(value) > DRAIN_BYTES:
            req.force_close()


def post_request(worker, req, environ, resp):
    """Read and discard the rest of a body the application did not read."""
    length = int(environ.get("CONTENT_LENGTH") or 0)
    if "HTTP_TRANSFER_ENCODING" not in environ and not 0 < length <= DRAIN_BYTES:
        return  # no body (every GET of the keep-alive fast path), or too large
    if resp is None or not resp.headers_sent:
        return  # the request failed: gunicorn answers 500 and closes
    sock, deadline, drained = environ["gunicorn.socket"], time.monotonic() + DRAIN_SECONDS, 0
    blocking = sock.gettimeout()
    try:
        while drained <= DRAIN_BYTES and (left := deadline - time.monotonic()) > 0:
            sock.settimeout(left)
            data = req.body.read(256 * 1024)
            if not data:
                return
            drained += len(data)
    except (OSError, ParseException):  # gone, stalled past the deadline, or a broken chunk
        pass  # gunicorn closes the connection: the body's end is unknown
    finally:
        sock.settimeout(blocking)


def pre_fork(server, worker):
    """A connection that the master opened (start-up migrations) must never
    be shared: close it before the worker is forked."""
    app = getattr(server.app, "callable", None)  # the preloaded WSGI app
    state = getattr(app, "extensions", {}).get("datasources")
    if state is not None and not state.database.is_closed():
        state.database.close()


def child_exit(server, worker):
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)


def on_exit(server):
    folder = os.environ.get(OWNED)
    if folder and folder == os.environ.get("PROMETHEUS_MULTIPROC_DIR") and not server.reexec_pid:
        shutil.rmtree(folder, ignore_errors=True)
