"""What list filters need at a million sources a tenant: an index per
filtered column in list order, counters of each tenant's sources by status,
sync mode and connector kept by triggers (so a filtered `pagination.total`
reads a row, not an index), and substring search over key and name (SQLite
FTS5's trigram tokenizer; PostgreSQL's pg_trgm)."""

from peewee import SqliteDatabase

INDEXES = {
    "status": "status, created_at, id",
    "connector_key": "connector_key, created_at, id",
    "sync_mode": "sync_mode, created_at, id",
    "schema_key": "schema_key, created_at, id",
    "file_format": "file_format, created_at, id",
    "updated_at": "updated_at",
}
FACETS = ("status", "sync_mode", "connector_key")

COUNTS = """
CREATE TABLE datasources_facet_counts (
    tenant_id VARCHAR(255) NOT NULL,
    facet VARCHAR(32) NOT NULL,
    value TEXT NOT NULL,
    sources BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, facet, value)
)"""

BACKFILL = """
INSERT INTO datasources_facet_counts (tenant_id, facet, value, sources)
SELECT tenant_id, '{facet}', {facet}, COUNT(*) FROM data_sources GROUP BY tenant_id, {facet}"""


def rows(prefix, sign):
    return ", ".join(f"({prefix}.tenant_id, '{f}', {prefix}.{f}, {sign}1)" for f in FACETS)


SQLITE_UPSERT = (
    "INSERT INTO datasources_facet_counts (tenant_id, facet, value, sources) VALUES {rows} "
    "ON CONFLICT (tenant_id, facet, value) DO UPDATE SET sources = sources + excluded.sources;"
)
SQLITE = [
    f"""CREATE TRIGGER datasources_facets_insert AFTER INSERT ON data_sources BEGIN
        {SQLITE_UPSERT.format(rows=rows("NEW", "+"))}
    END""",
    f"""CREATE TRIGGER datasources_facets_delete AFTER DELETE ON data_sources BEGIN
        {SQLITE_UPSERT.format(rows=rows("OLD", "-"))}
    END""",
    f"""CREATE TRIGGER datasources_facets_update
    AFTER UPDATE OF {", ".join(FACETS)} ON data_sources BEGIN
        {SQLITE_UPSERT.format(rows=rows("OLD", "-"))}
        {SQLITE_UPSERT.format(rows=rows("NEW", "+"))}
    END""",
    """CREATE VIRTUAL TABLE data_sources_search USING fts5(
        key, name, content='data_sources', content_rowid='rowid', tokenize='trigram')""",
    """CREATE TRIGGER data_sources_search_insert AFTER INSERT ON data_sources BEGIN
        INSERT INTO data_sources_search (rowid, key, name) VALUES (NEW.rowid, NEW.key, NEW.name);
    END""",
    """CREATE TRIGGER data_sources_search_delete AFTER DELETE ON data_sources BEGIN
        INSERT INTO data_sources_search (data_sources_search, rowid, key, name)
        VALUES ('delete', OLD.rowid, OLD.key, OLD.name);
    END""",
    """CREATE TRIGGER data_sources_search_update AFTER UPDATE OF key, name ON data_sources BEGIN
        INSERT INTO data_sources_search (data_sources_search, rowid, key, name)
        VALUES ('delete', OLD.rowid, OLD.key, OLD.name);
        INSERT INTO data_sources_search (rowid, key, name) VALUES (NEW.rowid, NEW.key, NEW.name);
    END""",
    "INSERT INTO data_sources_search (data_sources_search) VALUES ('rebuild')",
]

# Statement-level triggers over the transition tables: one upsert per
# statement, of the net change per (facet, value), in (facet, value) order,
# so a bulk load (COPY) adds up its rows once, and concurrent writers lock
# counter rows in one order (two status changes crossing each other cannot
# deadlock). PostgreSQL allows transition tables on one event per trigger.
FACET_ROWS = " UNION ALL ".join(
    f"SELECT tenant_id, '{f}' AS facet, {f} AS value, {{sign}}1 AS delta FROM {{table}}"
    for f in FACETS
)
POSTGRES_UPSERT = """
        INSERT INTO datasources_facet_counts (tenant_id, facet, value, sources)
        SELECT tenant_id, facet, value, SUM(delta) FROM ({rows}) AS changes
        GROUP BY tenant_id, facet, value HAVING SUM(delta) <> 0
        ORDER BY tenant_id, facet, value
        ON CONFLICT (tenant_id, facet, value)
        DO UPDATE SET sources = datasources_facet_counts.sources + EXCLUDED.sources;"""
CHANGES = {
    "insert": FACET_ROWS.format(sign="+", table="new_rows"),
    "delete": FACET_ROWS.format(sign="-", table="old_rows"),
    "update": FACET_ROWS.format(sign="-", table="old_rows")
    + " UNION ALL "
    + FACET_ROWS.format(sign="+", table="new_rows"),
}
REFERENCING = {
    "insert": "NEW TABLE AS new_rows",
    "delete": "OLD TABLE AS old_rows",
    "update": "OLD TABLE AS old_rows NEW TABLE AS new_rows",
}
POSTGRES = []
for event, rows in CHANGES.items():
    POSTGRES += [
        f"""CREATE FUNCTION datasources_count_facets_{event}() RETURNS trigger
        LANGUAGE plpgsql AS $$ BEGIN {POSTGRES_UPSERT.format(rows=rows)} RETURN NULL; END $$""",
        f"""CREATE TRIGGER datasources_facets_{event} AFTER {event.upper()} ON data_sources
        REFERENCING {REFERENCING[event]}
        FOR EACH STATEMENT EXECUTE FUNCTION datasources_count_facets_{event}()""",
    ]
POSTGRES.append("CREATE EXTENSION IF NOT EXISTS pg_trgm")
TRIGRAM_INDEX = (
    "CREATE INDEX data_sources_{column}_trgm ON data_sources "
    "USING gin (lower({column}) {schema}.gin_trgm_ops)"
)


def up(migrator, db):
    for name, columns in INDEXES.items():
        db.execute_sql(
            f"CREATE INDEX data_sources_tenant_{name} ON data_sources (tenant_id, {columns})"
        )
    db.execute_sql(COUNTS)
    for facet in FACETS:
        db.execute_sql(BACKFILL.format(facet=facet))
    if isinstance(db, SqliteDatabase):
        for statement in SQLITE:
            db.execute_sql(statement)
        return
    for statement in POSTGRES:
        db.execute_sql(statement)
    # pg_trgm may live in another schema than ours (made there earlier, or by the DBA).
    (schema,) = db.execute_sql(
        "SELECT extnamespace::regnamespace::text FROM pg_extension WHERE extname = 'pg_trgm'"
    ).fetchone()
    for column in ("key", "name"):
        db.execute_sql(TRIGRAM_INDEX.format(column=column, schema=schema))


def down(migrator, db):
    if isinstance(db, SqliteDatabase):
        for trigger in ("insert", "delete", "update"):
            db.execute_sql(f"DROP TRIGGER datasources_facets_{trigger}")
            db.execute_sql(f"DROP TRIGGER data_sources_search_{trigger}")
        db.execute_sql("DROP TABLE data_sources_search")
    else:
        for event in CHANGES:
            db.execute_sql(f"DROP TRIGGER datasources_facets_{event} ON data_sources")
            db.execute_sql(f"DROP FUNCTION datasources_count_facets_{event}()")
        db.execute_sql("DROP INDEX data_sources_key_trgm")
        db.execute_sql("DROP INDEX data_sources_name_trgm")
    db.execute_sql("DROP TABLE datasources_facet_counts")
    for name in INDEXES:
        db.execute_sql(f"DROP INDEX data_sources_tenant_{name}")
