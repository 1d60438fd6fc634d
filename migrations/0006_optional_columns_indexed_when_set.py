"""The indexes of the two optional filter columns, `schema_key` and
`file_format`, hold only the sources that have a value: a source without
one (most connectors have no file format, and a schema key is optional) is
never a match of their filters (`schemaKey=` and `fileFormat=` take 1 to
255 characters), so it no longer costs its writes an index entry each.
Both databases use such an index for `column = value`, which implies
`column IS NOT NULL`."""

OPTIONAL = ("schema_key", "file_format")
INDEX = (
    "CREATE INDEX data_sources_tenant_{column} ON data_sources "
    "(tenant_id, {column}, created_at, id){where}"
)


def up(migrator, db):
    for column in OPTIONAL:
        db.execute_sql(f"DROP INDEX data_sources_tenant_{column}")
        db.execute_sql(INDEX.format(column=column, where=f" WHERE {column} IS NOT NULL"))


def down(migrator, db):
    for column in OPTIONAL:
        db.execute_sql(f"DROP INDEX data_sources_tenant_{column}")
        db.execute_sql(INDEX.format(column=column, where=""))
