"""Every counter kept by triggers, and counted by combination instead of by
facet: how many sources each tenant has (which the store kept, a statement
of its own after each insert and delete), and of each (status, sync mode,
connector, file format), where 0002 counted each facet apart. A create or a
delete is then one statement, counters included: on PostgreSQL one round
trip instead of four. The total of any AND of those filters (lists
included) is then a sum over a few counter rows, where two facets together
counted the rows of an index (a third of a second at a million sources);
and a write does one combination upsert instead of three facet upserts.

A source without a file format is counted under '' (the list's `fileFormat`
filter takes 1 to 255 characters, so '' never matches a filter)."""

import importlib.util
import os

from peewee import SqliteDatabase

COUNTED = ("status", "sync_mode", "connector_key", "file_format")
COLUMNS = "tenant_id, status, sync_mode, connector_key, file_format"

TABLE = f"""
CREATE TABLE datasources_combination_counts (
    tenant_id VARCHAR(255) NOT NULL,
    status VARCHAR(32) NOT NULL,
    sync_mode VARCHAR(32) NOT NULL,
    connector_key TEXT NOT NULL,
    file_format TEXT NOT NULL,
    sources BIGINT NOT NULL,
    PRIMARY KEY ({COLUMNS})
)"""

BACKFILL = f"""
INSERT INTO datasources_combination_counts ({COLUMNS}, sources)
SELECT tenant_id, status, sync_mode, connector_key, COALESCE(file_format, ''), COUNT(*)
FROM data_sources GROUP BY tenant_id, status, sync_mode, connector_key, COALESCE(file_format, '')"""


def values(row, sign):
    return (
        f"({row}.tenant_id, {row}.status, {row}.sync_mode, {row}.connector_key, "
        f"COALESCE({row}.file_format, ''), {sign}1)"
    )


SQLITE_TENANT = (
    "INSERT INTO datasources_tenant_counts (tenant_id, sources) VALUES ({row}.tenant_id, {sign}1) "
    "ON CONFLICT (tenant_id) DO UPDATE SET sources = sources + excluded.sources;"
)
SQLITE_UPSERT = (
    f"INSERT INTO datasources_combination_counts ({COLUMNS}, sources) VALUES {{values}} "
    f"ON CONFLICT ({COLUMNS}) DO UPDATE SET sources = sources + excluded.sources;"
)
CHANGED = " OR ".join(f"OLD.{column} IS NOT NEW.{column}" for column in COUNTED)
SQLITE = [
    f"""CREATE TRIGGER datasources_counters_insert AFTER INSERT ON data_sources BEGIN
        {SQLITE_UPSERT.format(values=values("NEW", "+"))}
        {SQLITE_TENANT.format(row="NEW", sign="+")}
    END""",
    f"""CREATE TRIGGER datasources_counters_delete AFTER DELETE ON data_sources BEGIN
        {SQLITE_UPSERT.format(values=values("OLD", "-"))}
        {SQLITE_TENANT.format(row="OLD", sign="-")}
    END""",
    f"""CREATE TRIGGER datasources_counters_update
    AFTER UPDATE OF {", ".join(COUNTED)} ON data_sources WHEN {CHANGED} BEGIN
        {SQLITE_UPSERT.format(values=values("OLD", "-"))}
        {SQLITE_UPSERT.format(values=values("NEW", "+"))}
    END""",
]

# As in 0002: statement-level triggers over the transition tables, one upsert
# a statement of the net change per combination, then per tenant, each in key
# order (concurrent writers lock counter rows in one order: no deadlock).
ROWS = (
    "SELECT tenant_id, status, sync_mode, connector_key, COALESCE(file_format, '') "
    "AS file_format, {sign}1 AS delta FROM {table}"
)
POSTGRES_UPSERT = f"""
        INSERT INTO datasources_combination_counts ({COLUMNS}, sources)
        SELECT {COLUMNS}, SUM(delta) FROM ({{rows}}) AS changes
        GROUP BY {COLUMNS} HAVING SUM(delta) <> 0
        ORDER BY {COLUMNS}
        ON CONFLICT ({COLUMNS})
        DO UPDATE SET sources = datasources_combination_counts.sources + EXCLUDED.sources;"""
POSTGRES_TENANT = """
        INSERT INTO datasources_tenant_counts (tenant_id, sources)
        SELECT tenant_id, {sign}COUNT(*) FROM {table} GROUP BY tenant_id ORDER BY tenant_id
        ON CONFLICT (tenant_id)
        DO UPDATE SET sources = datasources_tenant_counts.sources + EXCLUDED.sources;"""
TENANTS = {  # an update never moves a source to another tenant
    "insert": POSTGRES_TENANT.format(sign="", table="new_rows"),
    "delete": POSTGRES_TENANT.format(sign="-", table="old_rows"),
    "update": "",
}
CHANGES = {
    "insert": ROWS.format(sign="+", table="new_rows"),
    "delete": ROWS.format(sign="-", table="old_rows"),
    "update": ROWS.format(sign="-", table="old_rows")
    + " UNION ALL "
    + ROWS.format(sign="+", table="new_rows"),
}
REFERENCING = {
    "insert": "NEW TABLE AS new_rows",
    "delete": "OLD TABLE AS old_rows",
    "update": "OLD TABLE AS old_rows NEW TABLE AS new_rows",
}
POSTGRES = []
for event, rows in CHANGES.items():
    POSTGRES += [
        f"""CREATE FUNCTION datasources_count_sources_{event}() RETURNS trigger
        LANGUAGE plpgsql AS $$ BEGIN {POSTGRES_UPSERT.format(rows=rows)} {TENANTS[event]}
        RETURN NULL; END $$""",
        f"""CREATE TRIGGER datasources_counters_{event} AFTER {event.upper()} ON data_sources
        REFERENCING {REFERENCING[event]}
        FOR EACH STATEMENT EXECUTE FUNCTION datasources_count_sources_{event}()""",
    ]
EVENTS = ("insert", "delete", "update")


def up(migrator, db):
    sqlite = isinstance(db, SqliteDatabase)
    drop_counters(db, sqlite, "datasources_facets", "datasources_count_facets")
    db.execute_sql("DROP TABLE datasources_facet_counts")
    db.execute_sql(TABLE)
    db.execute_sql(BACKFILL)
    for statement in SQLITE if sqlite else POSTGRES:
        db.execute_sql(statement)


def down(migrator, db):
    """The facet counters of 0002 (with 0004's guard on SQLite), backfilled."""
    sqlite = isinstance(db, SqliteDatabase)
    drop_counters(db, sqlite, "datasources_counters", "datasources_count_sources")
    db.execute_sql("DROP TABLE datasources_combination_counts")
    filters, lighter = earlier("0002_filters"), earlier("0004_lighter_writes")
    db.execute_sql(filters.COUNTS)
    for facet in filters.FACETS:
        db.execute_sql(filters.BACKFILL.format(facet=facet))
    facet_triggers = [s for s in (filters.SQLITE if sqlite else filters.POSTGRES) if "facet" in s]
    for statement in facet_triggers:
        db.execute_sql(statement)
    if sqlite:
        guard = f"WHEN {lighter.changed(lighter.FACETS)} BEGIN"
        lighter.only_when(db, "datasources_facets_update", guard)


def drop_counters(db, sqlite, trigger, function):
    """The counter triggers named `trigger`_<event> (and on PostgreSQL their
    functions, `function`_<event>)."""
    for event in EVENTS:
        if sqlite:
            db.execute_sql(f"DROP TRIGGER {trigger}_{event}")
        else:
            db.execute_sql(f"DROP TRIGGER {trigger}_{event} ON data_sources")
            db.execute_sql(f"DROP FUNCTION {function}_{event}()")


def earlier(name):
    """An earlier migration of this folder, as a module."""
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), f"{name}.py")
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
