"""`bench/run.py --scale`: does a list request cost the same with 1,000 and
with 1,000,000 sources in one tenant?

One tenant is seeded with 1,000 sources and measured, then grown to
1,000,000 (straight into the tables, counter included) and measured again:
the first page and a page 30 sources from the end, one connection at a time
(latency, not throughput), plus the query plans and what `pagination.total`
costs against a COUNT(*) of the tenant.
"""

import statistics
import time

import harness
from data import BenchDatabase, models, token

TENANT = "bench-scale"
SIZES = (1_000, 1_000_000)
API = "/api/v1/data-sources"
SECONDS = 5


def main(backends, out_dir, sizes=SIZES):
    report = []
    for backend in backends:
        report += measure_backend(backend, out_dir, sizes)
    print("\n### Scale: one connection, median latency per request\n")
    print("| backend | sources | first page p50 ms | mean ms | near-end page p50 ms | mean ms |")
    print("|---|---:|---:|---:|---:|---:|")
    for row in report:
        print(
            f"| {row['backend']} | {row['size']:,} | {row['first']['p50']:.2f} | "
            f"{row['first']['mean']:.2f} | {row['end']['p50']:.2f} | {row['end']['mean']:.2f} |"
        )
    for backend in backends:
        small, large = [row for row in report if row["backend"] == backend]
        for page in ("first", "end"):
            factor = large[page]["mean"] / small[page]["mean"]
            verdict = "ok" if factor <= 2 else "MISSED"
            print(f"{backend} {page} page: {factor:.2f}x at {sizes[-1]:,} ({verdict}, target 2x)")


def measure_backend(backend, out_dir, sizes):
    database = BenchDatabase(backend, out_dir)
    rows, seeded = [], 0
    service = None
    try:
        for size in sizes:
            started = time.monotonic()
            database.seed(TENANT, [f"s-{i}" for i in range(seeded, size)], start=seeded)
            took = time.monotonic() - started
            print(f"{backend}: seeded {size - seeded:,} sources in {took:.1f}s")
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
            end_cursor = database.cursor_at(TENANT, size - 30)
            row = {"backend": backend, "size": size}
            row["first"] = latency(service, API)
            row["end"] = latency(service, f"{API}?cursor={end_cursor}")
            row["rss"] = service.rss_mib()
            print(f"{backend} {size:,}: first {row['first']}, near the end {row['end']}")
            print(f"  worker RSS MiB: {', '.join(f'{m:.1f}' for m in row['rss'])}")
            explain(database, size, end_cursor)
            rows.append(row)
    finally:
        if service is not None:
            service.stop()
        database.drop()
    return rows


def latency(service, path):
    """p50 and mean milliseconds of `path` over three 1-connection runs."""
    env = {"BENCH_TOKEN": token(TENANT, "viewer"), "BENCH_PATH": path}
    runs = [harness.wrk(service, "list.lua", SECONDS, env, connections=1) for _ in range(3)]
    errors = sum(run["error_count"] for run in runs)
    return {
        "p50": statistics.median(run["p50_us"] for run in runs) / 1000,
        "mean": statistics.median(run["duration_us"] / run["requests"] for run in runs) / 1000,
        "errors": errors,
    }


def explain(database, size, end_cursor):
    """The plans of the page query (first and near the end) and of the
    tenant's total, with what the total costs next to a COUNT(*)."""
    db = database.db
    with database.app.app_context():
        from datasources.inputs import read_cursor

        after = read_cursor(end_cursor, TENANT)
    queries = {
        "first page": models.PAGES[True, True].sql(db, tenant=TENANT, limit=26),
        "near-end page": models.PAGES[False, True].sql(
            db, tenant=TENANT, limit=26, after_time=after[0], after_id=after[1]
        ),
        "total (counter)": models.COUNT.sql(db, tenant=TENANT),
    }
    sqlite = database.backend == "sqlite"
    prefix = "EXPLAIN QUERY PLAN " if sqlite else "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) "
    with database.db.connection_context():
        for name, (sql, params) in queries.items():
            plan = database.db.execute_sql(prefix + sql, params).fetchall()
            lines = [row[-1] if sqlite else row[0] for row in plan]
            print(f"  plan, {name}, {size:,} sources:")
            for line in lines:
                print(f"    {line}")
        counter = timed(lambda: models.count(db, TENANT))
        with models.DataSource.bind_ctx(db):
            count = models.DataSource.select().where(models.DataSource.tenant_id == TENANT).count
            scan = timed(count, repeat=3)
    print(f"  total from the counter: {counter:.3f} ms; COUNT(*) of the tenant: {scan:.1f} ms")


def timed(function, repeat=200):
    started = time.perf_counter()
    for _ in range(repeat):
        function()
    return 1000 * (time.perf_counter() - started) / repeat
