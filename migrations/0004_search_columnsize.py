"""SQLite's search table without FTS5's per-row column sizes (`columnsize=0`):
they serve only ranking (bm25), which the list never does, and writing them
was one more B-tree insert in every write's transaction. PostgreSQL: nothing."""

from peewee import SqliteDatabase

TABLE = """CREATE VIRTUAL TABLE data_sources_search USING fts5(
    key, name, content='data_sources', content_rowid='rowid', tokenize='trigram'{options})"""


def up(migrator, db):
    if isinstance(db, SqliteDatabase):
        rebuild(db, ", columnsize=0")


def down(migrator, db):
    if isinstance(db, SqliteDatabase):
        rebuild(db, "")


def rebuild(db, options):
    """The table made again (the triggers of 0002 write to it by name), then
    filled from data_sources."""
    db.execute_sql("DROP TABLE data_sources_search")
    db.execute_sql(TABLE.format(options=options))
    db.execute_sql("INSERT INTO data_sources_search (data_sources_search) VALUES ('rebuild')")
