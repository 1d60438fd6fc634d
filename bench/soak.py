"""`bench/run.py --soak MINUTES`: a leak check under mixed load.

The service runs the mixed script (lists, deep lists, creates, updates with
and without rowVersion, deletes of what was created) for MINUTES while each
worker's resident memory is sampled every few seconds. Growth is measured
from the end of the warm-up (the first fifth of the run, at most 2 minutes)
to the end; the target is at most 5%.
"""

import time

import harness
from data import BenchDatabase, token

LIST_TENANT, WRITE_TENANT = "bench-list", "bench-write"
SAMPLE_SECONDS = 5


def main(backend, minutes, out_dir):
    seconds = int(minutes * 60)
    warm_up = min(seconds / 5, 120)
    database = BenchDatabase(backend, out_dir)
    database.seed(LIST_TENANT, [f"l-{i}" for i in range(1000)])
    keys = [f"u-{i}" for i in range(harness.CONNECTIONS)]
    database.seed(WRITE_TENANT, keys)
    list_token = token(LIST_TENANT, "viewer")
    service = harness.Gunicorn(
        f"soak-{backend}",
        "wsgi:app",
        database.env,
        out_dir,
        probe="/api/v1/data-sources",
        headers={"Authorization": f"Bearer {list_token}"},
    )
    try:
        workers = service.workers()
        env = {
            "BENCH_TOKEN": token(WRITE_TENANT),
            "BENCH_LIST_TOKEN": list_token,
            "BENCH_CURSOR": database.cursor_at(LIST_TENANT, 970),
            "BENCH_VERSIONS": ",".join(map(str, database.versions(WRITE_TENANT, keys))),
            "BENCH_RUN": "soak",
            "BENCH_PATH": "/api/v1/data-sources",
        }
        samples = [(0.0, service.rss_mib())]
        started = time.monotonic()
        run = harness.Wrk(service, "mixed.lua", seconds, env)
        while run.running():
            time.sleep(SAMPLE_SECONDS)
            samples.append((time.monotonic() - started, service.rss_mib()))
        result = run.result()
        replaced = service.workers() != workers
    finally:
        service.stop()
        database.drop()
    report(backend, minutes, warm_up, samples, result, replaced)


def report(backend, minutes, warm_up, samples, result, replaced):
    print(f"\n### Soak: {backend}, {minutes:g} minutes of mixed load, 16 connections\n")
    print(
        f"{result['requests']} requests, {result['rps']:.0f} req/s, "
        f"p50 {result['p50_us'] / 1000:.2f} ms, p99 {result['p99_us'] / 1000:.2f} ms, "
        f"errors {result['error_count']} {result['errors']}"
    )
    if replaced:
        print("a worker was replaced during the run: its memory figures restart")
    warm = next(rss for at, rss in samples if at >= warm_up)
    last = samples[-1][1]
    peak = [max(rss[i] for _, rss in samples if len(rss) > i) for i in range(len(last))]
    print("| worker | start MiB | after warm-up MiB | end MiB | peak MiB | growth after warm-up |")
    print("|---|---:|---:|---:|---:|---:|")
    for i, end in enumerate(last):
        growth = 100 * (end - warm[i]) / warm[i]
        print(
            f"| {i + 1} | {samples[0][1][i]:.1f} | {warm[i]:.1f} | {end:.1f} | {peak[i]:.1f} | "
            f"{growth:+.1f}% ({'ok' if growth <= 5 else 'MISSED'}, target 5%) |"
        )
    trace = ", ".join(f"{at:.0f}s: {'/'.join(f'{m:.1f}' for m in rss)}" for at, rss in samples)
    print(f"\nsamples (MiB per worker): {trace}")
