"""Request logs, request ids and Prometheus metrics for the API's blueprint;
the log lines of what goes wrong: a refusal's problem title, an unhandled
exception's traceback (its messages left out), a database failure's cause.

The hooks go on our blueprint only, so a host's requests are never logged,
counted or timed by us. Log records go to the `datasources` logger; the
standalone service (`use_standalone`) gives it a handler on stdout, while an
embedding host routes it with its own logging setup (its root logger is never
touched). Metrics live in prometheus_client's default registry, so a host that
already serves it shows ours too; in multiprocess mode (PROMETHEUS_MULTIPROC_DIR,
set by gunicorn.conf.py) every worker's counts are summed at scrape time.
"""

import logging
import os
import re
import secrets
import sys
import time
import traceback

from flask import current_app, g, has_request_context, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)

from datasources.schemas import to_json

log = logging.getLogger("datasources")
access_log = logging.getLogger("datasources.access")

EXTENSION = "datasources_observability"
REQUEST_ID = re.compile(r"[A-Za-z0-9._:/+=@-]{1,128}")  # a trace id, UUID, ULID, ...
METHODS = frozenset(["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"])

REQUESTS = Counter(
    "datasources_requests_total",
    "Requests answered by the data sources API.",
    ["route", "method", "status"],
)
LATENCY = Histogram(
    "datasources_request_duration_seconds",
    "Time from the API's first hook to its response, in seconds.",
    ["route", "method"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
DATABASE_ERRORS = Counter(
    "datasources_database_errors_total",
    "Requests that failed on the database (answered 503), by cause.",
    ["error"],
)

SECRET_REVEALS = Counter(
    "datasources_secret_reveals_total",
    "Sources answered with their secrets in clear (includeSecrets), by the caller's role.",
    ["role"],
)

# What went wrong, read from the driver's text (psycopg's and sqlite3's own
# words; connection failures carry no SQLSTATE). The first that matches names
# the cause; each is a label of DATABASE_ERRORS, exported at 0 from the start.
DATABASE_CAUSES = {
    "connection_refused": r"connection refused",
    "connect_timeout": r"timeout expired|timed out",
    "statement_timeout": r"statement timeout",
    "lock_timeout": r"lock timeout",
    "authentication_failed": r"authentication|pg_hba\.conf|no password supplied|role .* does",
    "unknown_database": r"database .* does not exist",
    "unknown_host": r"resolve host|translate host name|name or service not known",
    "too_many_connections": r"too many (connections|clients)|connection slots",
    "server_not_ready": r"database system is (starting|shutting|in recovery)",
    "connection_lost": r"closed|terminat|lost|reset|broken pipe|consuming input|ssl syscall",
    "locked": r"database (table )?is locked",
    "read_only": r"readonly|read-only",
    "cannot_open": r"unable to open database",
    "disk_full": r"disk is full|no space left",
    "disk_error": r"disk i/o error",
    "missing_table": r"no such (table|column)|(relation|column) .* does not exist|has no column",
    "other": r"",  # matches anything: the last resort
}
CAUSES = [(name, re.compile(words)) for name, words in DATABASE_CAUSES.items()]
SECRETS_IN_TEXT = re.compile(r"(://[^:/@\s]*:)[^@\s]*@|(password\s*=\s*)\S+", re.IGNORECASE)


def init_app(app, blueprint):
    """Per-app settings, and our hooks on `blueprint` (once, before its
    first registration: Flask refuses new hooks after it)."""
    metrics = app.extensions[EXTENSION] = app.extensions["datasources"].settings.metrics
    if start_request not in blueprint.before_request_funcs.get(None, ()):
        blueprint.before_request(start_request)
        blueprint.after_request(finish_request)
    if metrics:  # every cause at 0, so an alert on its rate has a series to read
        try:
            for cause in DATABASE_CAUSES:
                DATABASE_ERRORS.labels(cause)
        except OSError:
            log.warning("metrics not recorded: the metrics folder is unavailable")


def start_request():
    given = request.headers.get("X-Request-ID", "")
    g.datasources_request_id = given if REQUEST_ID.fullmatch(given) else secrets.token_hex(16)
    g.datasources_started = time.perf_counter()


def finish_request(response):
    """Send the request id back, log one line and count the request."""
    req, ctx = request._get_current_object(), g._get_current_object()  # proxies cost
    request_id = getattr(ctx, "datasources_request_id", None) or secrets.token_hex(16)
    elapsed = time.perf_counter() - getattr(ctx, "datasources_started", time.perf_counter())
    response.headers["X-Request-ID"] = request_id
    status, method, path = response.status_code, req.method, req.path
    if access_log.isEnabledFor(logging.INFO):
        fields = {
            "request_id": request_id,
            "method": method,
            "path": path,
            "status": status,
            "duration_ms": round(elapsed * 1000, 3),
            "tenant": getattr(ctx, "datasources_tenant", None),
        }
        if status >= 400:  # why, in the problem's own words (never its detail: it may quote input)
            fields["problem"] = getattr(response, "problem_title", None)
        # A record made here, not by `info()`: no stack walk to find the caller.
        args, extra = (method, path, status), {"datasources": fields}
        record = access_log.makeRecord(
            access_log.name, logging.INFO, __file__, 0, "%s %s %s", args, None, extra=extra
        )
        access_log.handle(record)
    if current_app.extensions[EXTENSION]:
        try:
            rule = req.url_rule
            route = rule.rule if rule is not None else "unmatched"
            requests, latency = series(route, method if method in METHODS else "other", status)
            requests.inc()
            latency.observe(elapsed)
        except OSError:  # the multiprocess folder is gone: no metric is worth a 500
            log.warning("metrics not recorded: the metrics folder is unavailable")
    return response


_series = {}


def series(route, method, status):
    """The counter and histogram children of one route, method and status,
    looked up once: `labels()` takes a lock and builds keys on every call."""
    key = (route, method, status)
    found = _series.get(key)
    if found is None:
        found = REQUESTS.labels(route, method, str(status)), LATENCY.labels(route, method)
        _series[key] = found
    return found


def database_cause(exc):
    """Why a database call failed, one of DATABASE_CAUSES, from the first line
    of the driver's exception (Peewee's wraps it; later lines may quote SQL)."""
    text = driver_text(exc).lower()
    return next(name for name, words in CAUSES if words.search(text))


def driver_text(exc):
    origin = getattr(exc, "orig", None) or exc.__context__ or exc
    return str(origin).strip().split("\n", 1)[0]


def database_words(exc, cause):
    """The cause in words for a log line; for an unforeseen one, the driver's
    first line, with any URL password or `password=` value starred."""
    if cause != "other":
        return cause.replace("_", " ")
    return SECRETS_IN_TEXT.sub(hidden, driver_text(exc))[:200]


def count_database_error(cause):
    """Count a request that failed on the database (errors.py calls this)."""
    count(DATABASE_ERRORS, cause)


def count_reveal(role):
    """Count a source answered with its secrets in clear (store.reveal_source)."""
    count(SECRET_REVEALS, role)


def count(counter, *labels):
    if current_app.extensions.get(EXTENSION):
        try:
            counter.labels(*labels).inc()
        except OSError:
            log.warning("metrics not recorded: the metrics folder is unavailable")


def hidden(found):
    """A URL's password or a `password=` value, starred."""
    return f"{found[1]}***@" if found[1] else f"{found[2]}***"


def log_unhandled(exc):
    """One ERROR record for an exception no handler expected, with its
    traceback: every frame, and each chained exception's class, but never
    their messages, which may quote a body, a token or a setting."""
    if log.isEnabledFor(logging.ERROR):
        args = (type(exc).__name__, request.method, request.path)
        record = log.makeRecord(
            log.name, logging.ERROR, __file__, 0, "unhandled %s in %s %s", args, None
        )
        record.exc_text = safe_traceback(exc)  # what formatters print for exc_info
        log.handle(record)


def safe_traceback(exc):
    """The traceback Python would print, each exception's message left out."""
    chain = []
    while exc is not None and exc not in chain:
        chain.append(exc)
        exc = exc.__cause__ or (None if exc.__suppress_context__ else exc.__context__)
    parts = []
    for exc in reversed(chain):
        kind = type(exc)
        name = kind.__qualname__
        name = name if kind.__module__ == "builtins" else f"{kind.__module__}.{name}"
        code = getattr(exc, "sqlstate", None) or getattr(exc, "sqlite_errorname", None)
        frames = "".join(traceback.extract_tb(exc.__traceback__).format())
        parts.append(
            f"Traceback (most recent call last):\n{frames}{name}"
            f"{f' ({code})' if code else ''}: (message not logged)"
        )
    return "\n\nwhich led to:\n\n".join(parts)


def metrics_view():
    """The Prometheus text exposition: every worker's counts when gunicorn
    runs in multiprocess mode, this process's otherwise."""
    registry = REGISTRY
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    return current_app.response_class(
        generate_latest(registry), headers={"Content-Type": CONTENT_TYPE_LATEST}
    )


def use_standalone(app):
    """The standalone service's share: log lines on stdout in the configured
    format, and `GET /metrics` unless metrics are off."""
    log_to_stdout(app.extensions["datasources"].settings.log_format)
    if app.extensions[EXTENSION]:
        app.add_url_rule("/metrics", "datasources_metrics", metrics_view, methods=["GET"])


# Log lines: JSON for machines, text for people reading a terminal.


class StdoutHandler(logging.StreamHandler):
    """Writes to whatever sys.stdout is when a record comes (test runners
    and daemons replace it), never to a stream that has since been closed."""

    @property
    def stream(self):
        return sys.stdout

    @stream.setter
    def stream(self, value):
        pass


def log_to_stdout(fmt):
    """One handler of ours on the `datasources` logger, replacing any that an
    earlier app of this process installed; records still propagate."""
    for handler in [h for h in log.handlers if isinstance(h, StdoutHandler)]:
        log.removeHandler(handler)
    handler = StdoutHandler()
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    log.addHandler(handler)
    log.setLevel(logging.INFO)


_second = (0, "1970-01-01T00:00:00")  # strftime once a second, not per line


def timestamp(created):
    """`2026-03-16T02:00:00.000Z`, as the API writes times."""
    global _second
    whole = int(created)
    if whole != _second[0]:
        _second = (whole, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)))
    return f"{_second[1]}.{int((created - whole) * 1000):03d}Z"


def traceback_text(record):
    """A record's traceback, messages left out (see `safe_traceback`)."""
    if record.exc_text is None and record.exc_info and record.exc_info[1] is not None:
        record.exc_text = safe_traceback(record.exc_info[1])
    return record.exc_text


def request_fields(record):
    """The access line's fields, or the current request's id for other records."""
    fields = getattr(record, "datasources", None)
    if fields is None and has_request_context() and "datasources_request_id" in g:
        fields = {"request_id": g.datasources_request_id}
    return fields


class JsonFormatter(logging.Formatter):
    def format(self, record):
        entry = {
            "time": timestamp(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = request_fields(record)
        if fields:
            entry.update(fields)
        trace = traceback_text(record)
        if trace:
            entry["traceback"] = trace
        return to_json(entry).decode()


class TextFormatter(logging.Formatter):
    def format(self, record):
        head = f"{timestamp(record.created)} {record.levelname} {record.name}"
        fields = request_fields(record)
        if record.name == access_log.name and fields:
            path = fields["path"]
            problem = f' problem="{fields["problem"]}"' if fields.get("problem") else ""
            return (
                f"{head} {fields['method']} {path if path.isprintable() else repr(path)} "
                f"{fields['status']} {fields['duration_ms']}ms tenant={fields['tenant'] or '-'} "
                f"request_id={fields['request_id']}{problem}"
            )
        message = record.getMessage()
        line = f"{head}: {message if message.isprintable() else repr(message)}"
        line = f"{line} request_id={fields['request_id']}" if fields else line
        trace = traceback_text(record)
        return f"{line}\n{trace}" if trace else line
