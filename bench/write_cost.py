"""What the filters' bookkeeping costs a write: one committed insert, as
store.create_source writes it (models.insert and the tenant counter in one
write transaction), on databases migrated as the service migrates them and
then stripped of one more piece each:

    as migrated        the 0002 filter indexes, the combination counter triggers, the search index
    no counter triggers  (pagination.total of a facet filter would then be a COUNT)
    no search index    also: no FTS5 trigram table on SQLite, no pg_trgm indexes on PostgreSQL
    no filter indexes  also: none of the 0002 (tenant, column, created_at, id) indexes

    .venv/bin/python bench/write_cost.py                 # both, 100,000 sources seeded first
    .venv/bin/python bench/write_cost.py --backend sqlite --rounds 7

Each database is seeded with the same rows, then the variants take turns, a
round of inserts each, so load from elsewhere falls on all of them alike;
the figure is the median round's µs per insert, wall clock, client included.
"""

import argparse
import json
import os
import statistics
import time

import harness
from data import COLUMNS, CONFIGS, SCHEDULE, BenchDatabase, models, source_row

OUT = os.path.join(harness.BENCH, "out")
TENANT = "bench-write-cost"
SQLITE_DROPS = {
    "no counter triggers": [
        f"DROP TRIGGER datasources_counters_{event}" for event in ("insert", "delete", "update")
    ],
    "no search index": [
        *(f"DROP TRIGGER data_sources_search_{event}" for event in ("insert", "delete", "update")),
        "DROP TABLE data_sources_search",
    ],
}
POSTGRES_DROPS = {
    "no counter triggers": [
        f"DROP TRIGGER datasources_counters_{event} ON data_sources"
        for event in ("insert", "delete", "update")
    ],
    "no search index": ["DROP INDEX data_sources_key_trgm", "DROP INDEX data_sources_name_trgm"],
}
FILTER_INDEXES = ("status", "connector_key", "sync_mode", "schema_key", "file_format", "updated_at")
NAMES = [name.strip() for name in COLUMNS.split(",")]
VARIANTS = ("as migrated", "no counter triggers", "no search index", "no filter indexes")


def drops(backend, variant):
    """The statements that turn a migrated database into `variant`."""
    pieces = SQLITE_DROPS if backend == "sqlite" else POSTGRES_DROPS
    statements = []
    for name in VARIANTS[1 : VARIANTS.index(variant) + 1]:
        if name == "no filter indexes":
            statements += [f"DROP INDEX data_sources_tenant_{index}" for index in FILTER_INDEXES]
        else:
            statements += pieces[name]
    return statements


def insert_data(key, position):
    """A source as create_source hands it to models.insert (every field)."""
    data = {name: None for name in models.DataSource._meta.fields}
    data.update(models.DataSource._meta.get_default_dict())
    data.update(zip(NAMES, source_row(TENANT, key, position), strict=True))
    data.update(source_config=CONFIGS[data["connector_key"]], schedule=json.loads(SCHEDULE))
    return data


def insert_round(database, start, count):
    """µs per committed insert of `count` new sources."""
    db = database.db
    rows = [insert_data(f"w-{start + i}", start + i) for i in range(count)]
    with db.connection_context():
        started = time.perf_counter()
        for data in rows:
            with models.one_write(db):
                models.insert(db, data)
        return (time.perf_counter() - started) / count * 1e6


def measure(backend, seeded, rounds, per_round):
    databases = {}
    try:
        for variant in VARIANTS:
            database = databases[variant] = BenchDatabase(backend, OUT)
            database.seed(TENANT, [f"s-{i}" for i in range(seeded)])
            with database.db.connection_context():
                for statement in drops(backend, variant):
                    database.db.execute_sql(statement)
        figures = {variant: [] for variant in VARIANTS}
        for number in range(rounds):
            for variant, database in databases.items():
                start = seeded + number * per_round
                figures[variant].append(insert_round(database, start, per_round))
        return {variant: statistics.median(runs) for variant, runs in figures.items()}
    finally:
        for database in databases.values():
            database.drop()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=("sqlite", "postgres"), action="append")
    parser.add_argument("--seeded", type=int, default=100_000, help="sources there first")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--per-round", type=int, default=500, help="inserts per round")
    args = parser.parse_args()
    os.makedirs(OUT, exist_ok=True)
    print("| backend | variant | µs per committed insert (median round) | vs as migrated |")
    print("|---|---|---:|---:|")
    for backend in args.backend or ("sqlite", "postgres"):
        figures = measure(backend, args.seeded, args.rounds, args.per_round)
        full = figures["as migrated"]
        for variant, figure in figures.items():
            print(f"| {backend} | {variant} | {figure:.0f} | {figure - full:+.0f} |")


if __name__ == "__main__":
    main()
