"""`bench/run.py --scale`: does a request cost the same with 1,000 and with
1,000,000 sources in one tenant, filtered or not?

One tenant is seeded with 1,000 sources (a mix of 4 statuses, 6 connectors,
3 sync modes and 5 schema keys, see data.source_body) and measured, then
grown to 1,000,000 and measured again. Both seedings go through the import
command (`flask datasources import`, in a process of its own: the API's
validation, counters and search index), from a generated JSON Lines file.
Measured one connection at a time (latency, not throughput): the unfiltered
list, a filter by one status and by one connector (first page and a page 30
sources from the end of what matches), `key=`, the single GET, searches, and
other combinations; with the query plans at the largest size.
"""

import os
import re
import statistics
import time
import urllib.error
import urllib.parse

import harness
import psycopg.sql
from data import BenchDatabase, models, token, write_sources

from datasources.inputs import write_cursor
from datasources.schemas import list_query_schema

TENANT = "bench-scale"
SIZES = (1_000, 1_000_000)
API = "/api/v1/data-sources"
SECONDS = 3
SLOW = 500  # ms
S = models.DataSource

# Paged with a near-end cursor too: name -> (query, target). A target is "2x"
# (of the 1,000-source figure) or a p50 bound in ms at every size.
PAGED = {
    "unfiltered": ({}, "2x"),
    "status=paused": ({"status": "paused"}, "2x"),
    "connectorKey=kafka": ({"connectorKey": "kafka"}, "2x"),
}
# First page only. None: the `updatedAfter` of about the last 1,000 sources.
SINGLE = {
    "key=s-500": ({"key": "s-500"}, "2x"),
    "GET /s-500": ("/s-500", "2x"),
    "q=s-12345 (11 matches at 1M)": ({"q": "s-12345"}, 20),
    "q=s-50 (11,111 matches at 1M)": ({"q": "s-50"}, 200),
    "q=source s-99 (11,111 at 1M)": ({"q": "source s-99"}, 200),
    "q=source (every source)": ({"q": "source"}, 200),
    "q=s- (2 characters: no trigram)": ({"q": "s-"}, 200),
    "status=active,paused": ({"status": "active,paused"}, 200),
    "status=paused&connectorKey=kafka": ({"status": "paused", "connectorKey": "kafka"}, 200),
    "syncMode=cdc&status=draft": ({"syncMode": "cdc", "status": "draft"}, 200),
    "updatedAfter (last ~1,000)": (None, 200),
    "schemaKey=orders&limit=100": ({"schemaKey": "orders", "limit": "100"}, 200),
    "fileFormat=parquet&status=active": ({"fileFormat": "parquet", "status": "active"}, 200),
}


def main(backends, out_dir, sizes=SIZES):
    report, rates = {}, {}
    for backend in backends:
        report[backend], rates[backend] = measure_backend(backend, out_dir, sizes)
    print("\n### Import rates while seeding (flask datasources import)\n")
    for backend, seeded in rates.items():
        for count, seconds, summary in seeded:
            print(f"- {backend}: {count:,} sources in {seconds:.1f} s = {count / seconds:,.0f}/s")
            print(f"  ({summary})")
    print("\n### Scale: one connection, p50 latency per request (ms)\n")
    print("| backend | request | " + " | ".join(f"{size:,}" for size in sizes) + " | verdict |")
    print("|---|---|" + "---:|" * len(sizes) + "---|")
    for backend, rows in report.items():
        for name, (figures, target) in rows.items():
            small, large = figures[sizes[0]], figures[sizes[-1]]
            if target == "2x":
                factor = large / small
                verdict = f"{factor:.2f}x ({'ok' if factor <= 2 else 'MISSED'}, target 2x)"
            else:
                verdict = f"{'ok' if large <= target else 'MISSED'}, target {target} ms"
            cells = " | ".join(f"{figures[size]:.2f}" for size in sizes)
            print(f"| {backend} | {name} | {cells} | {verdict} |")


def measure_backend(backend, out_dir, sizes):
    database = BenchDatabase(backend, out_dir)
    rows, rates, seeded, service = {}, [], 0, None
    try:
        for size in sizes:
            rates.append(seed(database, out_dir, seeded, size))
            count, seconds, _ = rates[-1]
            print(f"{backend}: imported {count:,} sources in {seconds:.1f}s", flush=True)
            seeded = size
            if service is None:
                service = harness.Gunicorn(
                    f"scale-{backend}",
                    "wsgi:app",
                    database.env,
                    out_dir,
                    probe=API,
                    headers={"Authorization": f"Bearer {token(TENANT, 'viewer')}"},
                )
            for name, path, target in paths(database):
                figure = latency(service, path)
                rows.setdefault(name, ({}, target))[0][size] = figure
                print(f"{backend} {size:,} {name}: p50 {figure:.2f} ms", flush=True)
            if size == sizes[-1]:
                explain(database, size)
    finally:
        if service is not None:
            service.stop()
        database.drop()
    return rows, rates


def seed(database, out_dir, start, size):
    """Sources s-<start> to s-<size - 1> imported by the real command:
    (count, seconds, the command's summary line)."""
    path = os.path.join(out_dir, f"scale-{start}-{size}.jsonl")
    write_sources(path, [f"s-{i}" for i in range(start, size)], start)
    try:
        seconds, _, _, summary = harness.flask_command(
            database.env, "import", path, "--tenant", TENANT, out_dir=out_dir
        )
    finally:
        os.unlink(path)
    return size - start, seconds, summary


def paths(database):
    """(name, path, target) of every request measured."""
    for name, (query, target) in PAGED.items():
        yield f"{name} first page", list_path(query), target
        cursor = near_end_cursor(database, query)
        yield f"{name} near-end page", list_path({**query, "cursor": cursor}), target
    for name, (query, target) in SINGLE.items():
        if isinstance(query, str):
            yield name, API + query, target
        else:
            yield name, list_path(query or recent(database)), target


def list_path(query):
    return f"{API}?{urllib.parse.urlencode(query)}" if query else API


def near_end_cursor(database, query, back=30):
    """The cursor a client holds `back` sources before the end of what `query` matches."""
    filters = list_query_schema.load(query)
    filters.pop("limit")
    where = [
        getattr(S, name).in_(value) if isinstance(value, tuple) else getattr(S, name) == value
        for name, value in filters.items()
    ]
    with database.db.connection_context(), S.bind_ctx(database.db):
        matching = S.select().where(S.tenant_id == TENANT, *where).count()
    position = database.position_at(TENANT, matching - back, where)
    with database.app.app_context():
        return write_cursor(TENANT, position, filters)


def recent(database, last=1_000):
    """The `updatedAfter` query of about the last `last` sources (an import
    creates a source with its updatedAt equal to its createdAt)."""
    with database.db.connection_context(), S.bind_ctx(database.db):
        matching = S.select().where(S.tenant_id == TENANT).count()
    created_at, _ = database.position_at(TENANT, max(matching - last, 1))
    return {"updatedAfter": created_at.isoformat(timespec="milliseconds") + "Z"}


def latency(service, path):
    """The median p50 (ms) of `path` over three 1-connection wrk runs; for a
    request slower than SLOW ms (wrk gives up after 5 s), the median of 5
    requests one after the other."""
    headers = {"Authorization": f"Bearer {token(TENANT, 'viewer')}"}
    if timed_get(service, path, headers) > SLOW:
        return statistics.median(timed_get(service, path, headers) for _ in range(5))
    env = {"BENCH_TOKEN": token(TENANT, "viewer"), "BENCH_PATH": path}
    runs = [harness.wrk(service, "list.lua", SECONDS, env, connections=1) for _ in range(3)]
    if any(run["error_count"] for run in runs):
        raise RuntimeError(f"errors on {path}: {runs}")
    return statistics.median(run["p50_us"] for run in runs) / 1000


def timed_get(service, path, headers):
    """The ms one GET of `path` takes; a failed one is reported and timed too."""
    started = time.perf_counter()
    try:
        service.get(path, headers)
    except urllib.error.HTTPError as error:
        print(f"  {path}: {error.code} {error.read()[:200]!r}")
    return (time.perf_counter() - started) * 1000


def explain(database, size):
    """The plan of each measured list statement (the page without answers,
    as the service runs it once it keeps a page's answers) and of the single GET."""
    db = database.db
    sqlite = database.backend == "sqlite"
    prefix = "EXPLAIN QUERY PLAN " if sqlite else "EXPLAIN (COSTS OFF) "
    statements = []
    for name, (query, _) in PAGED.items():
        filters = list_query_schema.load(query)
        filters.pop("limit")
        statements.append((f"{name} first page", plan_sql(db, filters, None)))
        after = database.position_at(TENANT, size // 2)  # the plan of any page past the first
        statements.append((f"{name} later page", plan_sql(db, filters, after)))
    for name, (query, _) in SINGLE.items():
        if isinstance(query, str):
            statements.append((name, models.FIND.sql(db, tenant=TENANT, key=query[1:])))
            continue
        filters = list_query_schema.load(query or recent(database))
        filters.pop("limit")
        statements.append((name, plan_sql(db, filters, None)))
    with db.connection_context():
        for name, (sql, params) in statements:
            plan = [row[-1] if sqlite else row[0] for row in db.execute_sql(prefix + sql, params)]
            print(f"  plan, {name}, {size:,} sources:")
            print("\n".join("    " + line for line in plan))
            generic = None if sqlite else generic_plan(db, sql, params)
            if generic and generic != plan:
                print("    generic plan (a prepared statement's, after 5 runs):")
                print("\n".join("      " + line for line in generic))


def generic_plan(db, sql, params):
    """PostgreSQL's generic plan of a statement: the one psycopg's prepared
    statements (from a connection's 5th run of it) may settle on."""
    connection = db.connection()
    numbers = iter(range(1, len(params) + 1))
    prepared = re.sub("%s", lambda _: f"${next(numbers)}", sql)
    values = ", ".join(psycopg.sql.Literal(value).as_string(connection) for value in params)
    with connection.transaction():
        connection.execute("SET LOCAL plan_cache_mode = force_generic_plan", prepare=False)
        connection.execute(f"PREPARE bench_plan AS {prepared}", prepare=False)
        explained = f"EXPLAIN (COSTS OFF) EXECUTE bench_plan({values})"
        plan = [row[0] for row in connection.execute(explained, prepare=False)]
        connection.execute("DEALLOCATE bench_plan", prepare=False)
    return plan


def plan_sql(db, filters, after):
    """The SQL and parameters of models.page's statement for `filters`."""
    statement = models.PAGES[after is None, False, models.filter_shape(filters)]
    after_time, after_id = after or (None, None)
    values = models.filter_values(filters)
    return statement.sql(
        db, tenant=TENANT, limit=26, after_time=after_time, after_id=after_id, **values
    )
