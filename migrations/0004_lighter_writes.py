"""Less work in each write's transaction on SQLite (PostgreSQL: nothing):

- the search table without FTS5's per-row column sizes (`columnsize=0`):
  they serve only ranking (bm25), which the list never does;
- the update triggers of 0002 fire only when a counted or searched value
  really changes: SQLite runs an `UPDATE OF` trigger whenever the column is
  SET, and a PUT often sends back the values it read."""

from peewee import SqliteDatabase

TABLE = """CREATE VIRTUAL TABLE data_sources_search USING fts5(
    key, name, content='data_sources', content_rowid='rowid', tokenize='trigram'{options})"""
FACETS = ("status", "sync_mode", "connector_key")
SEARCHED = ("key", "name")


def changed(columns):
    return " OR ".join(f"OLD.{column} IS NOT NEW.{column}" for column in columns)


def up(migrator, db):
    if isinstance(db, SqliteDatabase):
        rebuild(db, ", columnsize=0")
        for trigger, columns in (("datasources_facets", FACETS), ("data_sources_search", SEARCHED)):
            only_when(db, f"{trigger}_update", f"WHEN {changed(columns)} BEGIN")


def down(migrator, db):
    if isinstance(db, SqliteDatabase):
        rebuild(db, "")
        for trigger, columns in (("datasources_facets", FACETS), ("data_sources_search", SEARCHED)):
            only_when(db, f"{trigger}_update", "BEGIN", f"WHEN {changed(columns)} BEGIN")


def rebuild(db, options):
    """The search table made again (the triggers of 0002 write to it by
    name), then filled from data_sources."""
    db.execute_sql("DROP TABLE data_sources_search")
    db.execute_sql(TABLE.format(options=options))
    db.execute_sql("INSERT INTO data_sources_search (data_sources_search) VALUES ('rebuild')")


def only_when(db, trigger, replacement, current="BEGIN"):
    """Make `trigger` again with its first `current` replaced (its WHEN clause)."""
    (sql,) = db.execute_sql(
        "SELECT sql FROM sqlite_master WHERE type = 'trigger' AND name = ?", (trigger,)
    ).fetchone()
    db.execute_sql(f"DROP TRIGGER {trigger}")
    db.execute_sql(sql.replace(current, replacement, 1))
