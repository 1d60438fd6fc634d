"""`bench/run.py --scale`: does a request cost the same with 1,000 and with
1,000,000 sources in one tenant, filtered or not?

One tenant is seeded with 1,000 sources (a mix of 4 statuses, 6 connectors
and 3 sync modes, see data.py) and measured, then grown to 1,000,000
(straight into the tables: the counters and the search index are kept by
the database's triggers) and measured again, one connection at a time
(latency, not throughput): the unfiltered list, a filter by one status and
by one connector (first page and a page 30 sources from the end of what
matches), `key=`, the single GET, a search matching at most 100 sources,
and other combinations; with the query plans at the largest size.
"""

import datetime
import statistics
import time
import urllib.parse

import harness
from data import BASE_TIME, BenchDatabase, models, token

TENANT = "bench-scale"
SIZES = (1_000, 1_000_000)
API = "/api/v1/data-sources"
SECONDS = 3
S = models.DataSource

# name: (query filters, the same as WHERE terms for the near-end cursor, target)
# target: "2x" of the 1,000-source figure, or a p50 bound in ms at every size.
FILTERS = {
    "unfiltered": ({}, (), "2x"),
    "status=paused": ({"status": "paused"}, (S.status == "paused",), "2x"),
    "connectorKey=kafka": ({"connectorKey": "kafka"}, (S.connector_key == "kafka",), "2x"),
}
SINGLE = {
    "key=s-500": ("?key=s-500", "2x"),
    "GET /s-500": ("/s-500", "2x"),
    "q=s-50 (11 sources at 1,000)": ("?q=s-50", "2x"),
    "q=s-12345 (<= 11 matches)": ("?q=s-12345", 20),
    "status=active,paused": ("?status=active,paused", 200),
    "status=paused&connectorKey=kafka": ("?status=paused&connectorKey=kafka", 200),
    "syncMode=cdc&status=draft": ("?syncMode=cdc&status=draft", 200),
    "updatedAfter (last 1,000)": (None, 200),
    "schemaKey=customers&limit=100": ("?schemaKey=customers&limit=100", 200),
    "q=source s-99": ("?q=source%20s-99", 200),
}


def main(backends, out_dir, sizes=SIZES):
    report = {}
    for backend in backends:
        report[backend] = measure_backend(backend, out_dir, sizes)
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
    rows, seeded, service = {}, 0, None
    try:
        for size in sizes:
            started = time.monotonic()
            database.seed(TENANT, [f"s-{i}" for i in range(seeded, size)], start=seeded)
            print(
                f"{backend}: seeded {size - seeded:,} sources in {time.monotonic() - started:.1f}s"
            )
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
            for name, path, target in paths(database, size):
                figure = latency(service, path)
                rows.setdefault(name, ({}, target))[0][size] = figure
                print(f"{backend} {size:,} {name}: p50 {figure:.2f} ms")
            if size == sizes[-1]:
                explain(database, size)
    finally:
        if service is not None:
            service.stop()
        database.drop()
    return rows


def paths(database, size):
    """(name, path, target) of every request measured at `size`."""
    for name, (filters, where, target) in FILTERS.items():
        query = urllib.parse.urlencode(filters)
        yield f"{name} first page", f"{API}?{query}", target
        loaded = {models_name(k): v for k, v in filters.items()}
        if "status" in loaded:
            loaded["status"] = (loaded["status"],)
        cursor = database.cursor_at(TENANT, matching(size, filters) - 30, where, loaded)
        yield f"{name} near-end page", f"{API}?{query}&cursor={cursor}", target
    recent = models_time(size - 1_000)
    for name, (suffix, target) in SINGLE.items():
        yield name, API + (suffix or f"?updatedAfter={recent}"), target


def models_name(query_name):
    return {"connectorKey": "connector_key"}.get(query_name, query_name)


def matching(size, filters):
    """How many of `size` seeded sources match one of FILTERS (data.py's mix)."""
    if "status" in filters:
        return size // 4
    if "connectorKey" in filters:
        return size // 6
    return size


def models_time(position):
    """The `updatedAt` of the seeded source at `position` (data.source_row)."""
    moment = BASE_TIME + datetime.timedelta(milliseconds=position)
    return moment.isoformat(timespec="milliseconds") + "Z"


def latency(service, path):
    """The median p50 (ms) of `path` over three 1-connection runs."""
    env = {"BENCH_TOKEN": token(TENANT, "viewer"), "BENCH_PATH": path}
    runs = [harness.wrk(service, "list.lua", SECONDS, env, connections=1) for _ in range(3)]
    if any(run["error_count"] for run in runs):
        raise RuntimeError(f"errors on {path}: {runs}")
    return statistics.median(run["p50_us"] for run in runs) / 1000


def explain(database, size):
    """The plans of each filtered page statement, first page, at `size`."""
    db = database.db
    sqlite = database.backend == "sqlite"
    prefix = "EXPLAIN QUERY PLAN " if sqlite else "EXPLAIN (COSTS OFF) "
    shapes = {
        "unfiltered": {},
        "status": {"status": ("paused",)},
        "connectorKey": {"connector_key": "kafka"},
        "key": {"key": "s-500"},
        "q (trigram)": {"q": "s-12345"},
        "status + connectorKey": {"status": ("paused",), "connector_key": "kafka"},
    }
    with db.connection_context():
        for name, filters in shapes.items():
            statement = models.PAGES[True, True, models.filter_shape(filters)]
            sql, params = statement.sql(
                db, tenant=TENANT, limit=26, after_time=None, after_id=None,
                **models.filter_values(filters),
            )  # fmt: skip
            plan = db.execute_sql(prefix + sql, params).fetchall()
            print(f"  plan, {name}, {size:,} sources:")
            for row in plan:
                print(f"    {row[-1] if sqlite else row[0]}")
