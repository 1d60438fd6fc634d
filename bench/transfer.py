"""`flask datasources import` and `export` rates: a generated JSON Lines file
of plain sources (a mix of 4 statuses, 6 connectors with valid configs and no
secrets, 3 sync modes) imported into a fresh database, then exported, each
by the real command in a process of its own, on SQLite and PostgreSQL.

    .venv/bin/python bench/transfer.py                      # 100,000 sources, both
    .venv/bin/python bench/transfer.py --backend sqlite --sources 1000000 --jobs 1
    .venv/bin/python bench/transfer.py --minimal             # key and name only

Prints sources/s and the command's peak RSS: an import streams, so its peak
is the same for 10,000 sources as for 1,000,000 (`--sources` to see it).
"""

import argparse
import json
import os

import harness
from data import CONFIGS, BenchDatabase

OUT = os.path.join(harness.BENCH, "out")
TENANT = "bench-transfer"
STATUSES = ("draft", "active", "paused", "archived")
SYNC_MODES = ("full_refresh", "incremental", "cdc")
CONNECTORS = tuple(CONFIGS)


def source(i, minimal=False):
    if minimal:
        return {"key": f"src-{i:07d}", "name": f"Source {i}"}
    connector = CONNECTORS[i % len(CONNECTORS)]
    return {
        "key": f"src-{i:07d}",
        "name": f"Source {i}",
        "description": "Nightly export of the customer table.",
        "connectorKey": connector,
        "sourceConfig": CONFIGS[connector],
        "syncMode": SYNC_MODES[i % len(SYNC_MODES)],
        "schedule": {"cron": "0 2 * * *", "timezone": "America/New_York"},
        "status": STATUSES[i % len(STATUSES)],
    }


def write_file(path, count, minimal=False):
    with open(path, "w") as out:
        for i in range(count):
            out.write(json.dumps(source(i, minimal)) + "\n")


def measure(backend, path, count, jobs):
    database = BenchDatabase(backend, OUT)
    try:
        command = ["import", path, "--tenant", TENANT] + (["--jobs", jobs] if jobs else [])
        seconds, cpu, peak, summary = harness.flask_command(database.env, *command)
        print(f"{backend}: import {count:,} in {seconds:.1f}s = {count / seconds:,.0f} sources/s")
        print(f"{backend}:   {cpu / count * 1e6:.0f} µs CPU a source, peak RSS {peak:.0f} MiB")
        print(f"{backend}:   {summary}")
        exported = os.path.join(OUT, f"export-{backend}.jsonl")
        command = ["export", "--output", exported]  # every tenant: the keyset on all three
        seconds, cpu, peak, _ = harness.flask_command(database.env, *command)
        with open(exported, "rb") as lines:
            written = sum(1 for _ in lines)
        os.unlink(exported)
        assert written == count, (written, count)
        print(f"{backend}: export {count:,} in {seconds:.1f}s = {count / seconds:,.0f} sources/s")
        print(f"{backend}:   {cpu / count * 1e6:.0f} µs CPU a source, peak RSS {peak:.0f} MiB")
    finally:
        database.drop()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=("sqlite", "postgres"), action="append")
    parser.add_argument("--sources", type=int, default=100_000)
    parser.add_argument("--jobs", help="import --jobs (default: the command's own)")
    parser.add_argument("--minimal", action="store_true", help="sources of a key and a name only")
    args = parser.parse_args()
    os.makedirs(OUT, exist_ok=True)
    path = os.path.join(OUT, f"transfer-{args.sources}.jsonl")
    write_file(path, args.sources, args.minimal)
    try:
        for backend in args.backend or ("sqlite", "postgres"):
            measure(backend, path, args.sources, args.jobs)
    finally:
        os.unlink(path)


if __name__ == "__main__":
    main()
