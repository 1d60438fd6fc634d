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
