"""Peewee models, the statements the store runs, and the schema migrations.

No model is bound to a database: every statement runs on the database it is
given (each app's own, see settings), so two apps in one process never share
rows, connections or migrations. Statements are compiled once per kind of
database with named parameters (`param`), whose order Peewee decides.
"""

import collections
import contextlib
import datetime
import functools
import json
import operator
import os
import secrets

import orjson
from peewee import (
    OP,
    SQL,
    BigIntegerField,
    CharField,
    DateTimeField,
    Expression,
    JSONField,
    Model,
    NodeList,
    SqliteDatabase,
    TextField,
    Tuple,
    Value,
    fn,
)
from playhouse.migrations import Runner

from datasources.schemas import json_plan, source_schema, to_json

MIGRATIONS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "migrations")
MIGRATION_TABLE = "datasources_migrations"
MIGRATION_LOCK = 7_301_955  # pg_advisory_xact_lock key shared by every process


class UTCDateTimeField(DateTimeField):
    """A naive UTC datetime; SQLite's text is parsed with `fromisoformat`,
    which is an order of magnitude faster than Peewee's strptime loop."""

    def python_value(self, value):
        if isinstance(value, str):
            return datetime.datetime.fromisoformat(value)
        return value


def json_text(value):
    return to_json(value).decode()


def stored(field, value):
    """`value` as a parameter of `field`'s column; JSON as its text, which
    PostgreSQL takes for jsonb as SQLite takes it for text."""
    if isinstance(field, JSONField) and value is not None:
        return json_text(value)
    return field.db_value(value)


class DataSource(Model):
    id = CharField(primary_key=True, max_length=64)
    tenant_id = CharField(max_length=255)
    key = CharField(max_length=255)
    name = CharField(max_length=255)
    description = TextField(default="")
    connector_key = TextField(default="")
    source_config = JSONField(default=dict, dumps=json_text)
    file_format = TextField(null=True)
    sync_mode = CharField(max_length=32, default="full_refresh")
    schedule = JSONField(default=dict, dumps=json_text)
    schema_key = TextField(null=True)
    status = CharField(max_length=32, default="draft")
    last_sync_at = UTCDateTimeField(null=True)
    last_sync_status = TextField(null=True)
    record_count = BigIntegerField(default=0)
    row_version = BigIntegerField(default=1)
    created_at = UTCDateTimeField()
    updated_at = UTCDateTimeField()
    # Secrets (vault.py): per pointer, version, fingerprint and time; the
    # values as one Fernet token; the id of the key that made it.
    secrets = JSONField(default=dict, dumps=json_text)
    secret_values = TextField(null=True)
    secret_key_id = TextField(null=True)

    class Meta:
        table_name = "data_sources"


class CombinationCount(Model):
    """How many sources each tenant has of each combination of status, sync
    mode, connector and file format ('' for none), kept by triggers on
    data_sources (migration 0005)."""

    tenant_id = CharField(max_length=255)
    status = CharField(max_length=32)
    sync_mode = CharField(max_length=32)
    connector_key = TextField()
    file_format = TextField()
    sources = BigIntegerField(default=0)

    class Meta:
        table_name = "datasources_combination_counts"
        primary_key = False


class TenantCount(Model):
    """How many sources each tenant has, kept by triggers on data_sources
    (migration 0005), so `pagination.total` never scans a tenant."""

    tenant_id = CharField(primary_key=True, max_length=255)
    sources = BigIntegerField(default=0)

    class Meta:
        table_name = "datasources_tenant_counts"


TABLES = (
    DataSource._meta.table_name,
    TenantCount._meta.table_name,
    CombinationCount._meta.table_name,
    MIGRATION_TABLE,
)


# Named parameters: a statement is built once with `param(name)` where its
# values go; Peewee places them, and each run binds the values by name.


class Param:
    __slots__ = ("name",)

    def __init__(self, name):
        self.name = name

    def __repr__(self):
        return f"param({self.name!r})"


def param(name):
    """A placeholder bound at each run, its value given as stored (see `stored`)."""
    return Value(Param(name), converter=False)


class Statement:
    """One shape of SQL statement: `build(database)` makes its Peewee query,
    compiled once per kind of database (Peewee takes longer to compile most
    of our statements than the database takes to run them)."""

    def __init__(self, build):
        self.build, self.compiled = build, {}

    def compile(self, database):
        """The statement's SQL for `database` and its parameters: a Param
        where a value is bound at each run, else the value."""
        compiled = self.compiled.get(type(database))
        if compiled is None:
            sql, params = self.build(database).bind(database).sql()
            compiled = self.compiled[type(database)] = (sql, params)
        return compiled

    def sql(self, database, **values):
        """The statement's SQL for `database` and its parameters bound to `values`."""
        sql, params = self.compile(database)
        return sql, [values[p.name] if type(p) is Param else p for p in params]

    def run(self, database, **values):
        return database.execute_sql(*self.sql(database, **values))


SHAPES_MAX = 1024  # update shapes kept: one per set of changed fields


class Shapes(dict):
    """Statements by shape, made on first use."""

    def __init__(self, make):
        super().__init__()
        self.make = make

    def __missing__(self, shape):
        statement = self.make(*shape)
        if len(self) < SHAPES_MAX:
            self[shape] = statement
        return statement


# The rows statements give back, by name.

# A page comes back by column: one tuple per column, an item per row, so no
# object is made per row.
PageColumns = collections.namedtuple("PageColumns", "created_at id row_version total answer")
NO_ROWS = PageColumns((), (), (), (), ())
Written = collections.namedtuple("Written", "id row_version answer")


def written(database, statement, **values):
    """The one row of a statement RETURNING (id, row_version, answer), or
    None; reads every row, as SQLite commits only once a RETURNING
    statement has finished."""
    rows = statement.run(database, **values).fetchall()
    return next(map(Written._make, rows), None)


# List filters: each a name the list query loads (schemas.ListQuerySchema),
# how it matches, and how its values become parameters. A filter's shape is
# (name, n): n values of an any-of filter, or for `q`, whether the term is
# long enough for the trigram index (3 characters). Adding a filter is a line
# here, a field in the list schema and, to keep it fast, an index.

COUNTED = ("status", "sync_mode", "connector_key", "file_format")  # by triggers (0005)
ANY_OF = ("status", "sync_mode")
EXACT = ("key", "connector_key", "schema_key", "file_format")
SEARCH = "data_sources_search"  # SQLite's FTS5 table of key and name
TRIGRAM = 3


def filter_shape(filters):
    """The shape of a dict of filter values, as statements are kept by it."""
    shape = []
    for name, value in sorted(filters.items()):
        if name in ANY_OF:
            shape.append((name, len(value)))
        elif name == "q":
            shape.append((name, len(value) >= TRIGRAM))
        else:
            shape.append((name, 0))
    return tuple(shape)


def filter_values(filters):
    """The parameters of `matching` for a dict of filter values."""
    values = {}
    for name, value in filters.items():
        if name in ANY_OF:
            values |= {f"{name}_{i}": item for i, item in enumerate(value)}
        elif name == "q":
            values["q_match"] = '"' + value.replace('"', '""') + '"'  # an FTS5 phrase
            escaped = value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            values["q_like"] = f"%{escaped}%"
        elif name == "updated_after":  # times are kept to the µs, answered to the ms
            values[name] = value + datetime.timedelta(milliseconds=1)
        else:
            values[name] = value
    return values


def matching(database, model, shape):
    """The WHERE terms of a filter shape, on `model` (DataSource or an alias)."""
    sqlite = isinstance(database, SqliteDatabase)
    where = []
    for name, n in shape:
        if name in ANY_OF:
            where.append(getattr(model, name).in_([param(f"{name}_{i}") for i in range(n)]))
        elif name in EXACT:
            where.append(getattr(model, name) == param(name))
        elif name == "updated_after":
            where.append(model.updated_at >= param(name))
        elif name == "q" and sqlite and n:
            search = f"rowid IN (SELECT rowid FROM {SEARCH} WHERE {SEARCH} MATCH ?)"
            where.append(SQL(search, [Param("q_match")]))
        elif name == "q":
            like = sqlite_like if sqlite else postgres_like
            where.append(like(model.key) | like(model.name))
        else:
            raise ValueError(f"no list filter {name!r}")
    return where


def of_tenant(database, model, shape):
    """The tenant's rows; with a trigram search, as `tenant_id || ''`, which
    no index serves, so the search's index finds the matches and they are
    sorted. Otherwise both databases would walk the tenant's index in list
    order for them (seconds at a million sources, for a rare term): SQLite
    without statistics, which takes a tenant for 10 rows, and PostgreSQL in
    the generic plan of a prepared statement, which guesses a term's matches."""
    if ("q", True) in shape:
        return model.tenant_id.concat(SQL("''")) == param("tenant")
    return model.tenant_id == param("tenant")


def sqlite_like(column):
    """Substring, case-insensitive for ASCII (SQLite's LIKE): for terms too
    short for the trigram index."""
    return Expression(column, OP.ILIKE, NodeList((param("q_like"), SQL("ESCAPE '\\'"))))


def postgres_like(column):
    """Case-insensitive substring, served by the pg_trgm indexes on lower()."""
    return fn.lower(column).like(fn.lower(param("q_like")))


def total_statement(database, shape):
    """The number of the tenant's sources a filter shape matches: the
    tenant's counter; for filters that are all counted, the sum of the
    counters of the combinations they match; else a count over the filtered
    columns' index."""
    if not shape:
        return TenantCount.select(TenantCount.sources).where(
            TenantCount.tenant_id == param("tenant")
        )
    if all(name in COUNTED for name, _ in shape):
        summed = fn.COALESCE(fn.SUM(CombinationCount.sources), 0).cast("bigint")  # not numeric
        return CombinationCount.select(summed).where(
            CombinationCount.tenant_id == param("tenant"),
            *matching(database, CombinationCount, shape),
        )
    counted = DataSource.alias("counted")
    return counted.select(fn.COUNT(SQL("*"))).where(
        of_tenant(database, counted, shape), *matching(database, counted, shape)
    )


def page_statement(first, answers, shape):
    def build(database):
        source = DataSource
        columns = [source.created_at, source.id, source.row_version]
        columns.append(total_statement(database, shape))
        columns.append(answer(database) if answers else SQL("NULL"))
        where = [of_tenant(database, source, shape), *matching(database, source, shape)]
        query = source.select(*columns).where(*where)
        if not first:
            after = Tuple(param("after_time"), param("after_id"))
            query = query.where(Tuple(source.created_at, source.id) > after)
        return query.order_by(source.created_at, source.id).limit(param("limit"))

    return Statement(build)


PAGES = Shapes(page_statement)
TOTALS = Shapes(lambda shape: Statement(lambda database: total_statement(database, shape)))


def page(database, tenant, limit, after=None, answers=True, filters=None):
    """Up to `limit` of the tenant's sources that match `filters`, in list
    order after the (created_at, id) position `after`, each with its row
    version and the total matching (read by the same statement, so a page
    and its total always agree), and its answer JSON unless `answers` is
    false; served by the (tenant_id, [filtered column,] created_at, id)
    indexes. No model is built: Peewee takes longer to fill 26 models than
    SQLite takes to run the query. The rows come as PageColumns."""
    filters = filters or {}
    after_time, after_id = after or (None, None)
    statement = PAGES[after is None, answers, filter_shape(filters)]
    values = filter_values(filters)
    cursor = statement.run(
        database, tenant=tenant, limit=limit, after_time=after_time, after_id=after_id, **values
    )
    rows = cursor.fetchall()
    return PageColumns._make(zip(*rows, strict=True)) if rows else NO_ROWS


def total(database, tenant, filters=None):
    """The number of the tenant's sources that match `filters` (see `page`)."""
    filters = filters or {}
    statement = TOTALS[(filter_shape(filters),)]
    counted = statement.run(database, tenant=tenant, **filter_values(filters)).fetchall()
    return sum(number for (number,) in counted)  # no counter row yet: 0


def position(columns, index):
    """The (created_at, id) of a page's row `index`; SQLite gives the time as text."""
    created_at = columns.created_at[index]
    if isinstance(created_at, str):
        created_at = datetime.datetime.fromisoformat(created_at)
    return created_at, columns.id[index]


def returned(database):
    return [DataSource.id, DataSource.row_version, answer(database)]


def of_key():
    return [DataSource.tenant_id == param("tenant"), DataSource.key == param("key")]


FIND = Statement(lambda database: DataSource.select(*returned(database)).where(*of_key()))


def find(database, tenant, key):
    """The source's (id, row_version, answer), or None."""
    return written(database, FIND, tenant=tenant, key=key)


# A source as a write that depends on what is stored reads it: what its
# connector checks, and its secrets.
Row = collections.namedtuple(
    "Row", "id row_version answer connector_key source_config status file_format secrets sealed"
)
ROW_COLUMNS = ("connector_key", "source_config", "status", "file_format", "secrets")


def row_statement(locked):
    def build(database):
        columns = [getattr(DataSource, name) for name in ROW_COLUMNS]
        query = DataSource.select(*returned(database), *columns, DataSource.secret_values)
        query = query.where(*of_key())
        return query.for_update() if locked and not isinstance(database, SqliteDatabase) else query

    return Statement(build)


ROWS = Shapes(row_statement)


def find_row(database, tenant, key, locked=False):
    """The source as a Row, or None; `locked`: until the transaction ends
    (SQLite's write transaction locks it already)."""
    rows = ROWS[(locked,)].run(database, tenant=tenant, key=key).fetchall()
    if not rows:
        return None
    row = Row._make(rows[0])
    return row._replace(
        source_config=json_value(row.source_config), secrets=json_value(row.secrets)
    )


def json_value(value):
    """A JSON column's value: SQLite gives its text, psycopg the value."""
    if not isinstance(value, str):
        return value
    try:
        return orjson.loads(value)
    except orjson.JSONDecodeError:  # integers past 64 bits, which a sourceConfig may hold
        return json.loads(value)


FIELDS = DataSource._meta.sorted_fields
INSERT = Statement(
    lambda database: DataSource.insert({field: param(field.name) for field in FIELDS}).returning(
        *returned(database)
    )
)


def insert(database, data):
    """INSERT a source (`data` names every field); its (id, row_version, answer)."""
    values = {field.name: stored(field, data[field.name]) for field in FIELDS}
    return written(database, INSERT, **values)


def conditions(expected, tags):
    """The source of a key, and with `expected`, at that row version; with
    `tags` (a count), also one of that many (id, row_version) pairs."""
    where = of_key()
    if expected:
        where.append(DataSource.row_version == param("expected"))
    if tags:
        pairs = [
            (DataSource.id == param(f"tag_id_{i}"))
            & (DataSource.row_version == param(f"tag_version_{i}"))
            for i in range(tags)
        ]
        where.append(functools.reduce(operator.or_, pairs))
    return where


def tag_values(tags):
    """The parameters of `conditions`' (id, row_version) pairs."""
    values = {}
    for i, (source_id, row_version) in enumerate(tags):
        values[f"tag_id_{i}"], values[f"tag_version_{i}"] = source_id, row_version
    return values


def update_statement(changed, conditional, tags):
    def build(database):
        update = {field: param(field.name) for field in FIELDS if field.name in changed}
        update[DataSource.row_version] = DataSource.row_version + 1
        where = conditions(conditional, tags)
        return DataSource.update(update).where(*where).returning(*returned(database))

    return Statement(build)


UPDATES = Shapes(update_statement)


def update(database, tenant, key, changes, now, expected=None, tags=()):
    """One conditional UPDATE of the `changes`, bumping the row version (only
    from `expected`, if given, and only at one of the (id, row_version)
    `tags`, if any); the (id, row_version, answer), or None."""
    values = {name: stored(DataSource._meta.fields[name], v) for name, v in changes.items()}
    values["updated_at"] = stored(DataSource.updated_at, now)
    statement = UPDATES[frozenset(values), expected is not None, len(tags)]
    values |= tag_values(tags)
    return written(database, statement, tenant=tenant, key=key, expected=expected, **values)


def delete_statement(conditional, tags):
    return Statement(lambda database: DataSource.delete().where(*conditions(conditional, tags)))


DELETES = Shapes(delete_statement)


def delete(database, tenant, key, expected=None, tags=()):
    """DELETE the source (only at row version `expected` and one of the
    `tags`, if given); whether there was one."""
    statement = DELETES[expected is not None, len(tags)]
    values = tag_values(tags)
    return statement.run(database, tenant=tenant, key=key, expected=expected, **values).rowcount > 0


# Key rotation (store.rotate_secrets): the tokens another key made, by id,
# and each written again only if no write changed it meanwhile.

SEALED_PAGE = Statement(
    lambda database: (
        DataSource.select(DataSource.id, DataSource.secret_values)
        .where(
            DataSource.secret_values.is_null(False),
            DataSource.secret_key_id.is_null() | (DataSource.secret_key_id != param("key_id")),
            DataSource.id > param("after"),
        )
        .order_by(DataSource.id)
        .limit(param("limit"))
    )
)
RESEAL = Statement(
    lambda database: DataSource.update(
        {DataSource.secret_values: param("new"), DataSource.secret_key_id: param("key_id")}
    ).where(DataSource.id == param("id"), DataSource.secret_values == param("old"))
)


def sealed_page(database, key_id, after, limit):
    """Up to `limit` (id, token) of the sources after id `after` whose
    secrets a key other than `key_id` encrypted."""
    return SEALED_PAGE.run(database, key_id=key_id, after=after, limit=limit).fetchall()


def reseal(database, source_id, old, new, key_id):
    """Replace a source's token `old` by `new`; whether it was still `old`."""
    values = {"id": source_id, "old": old, "new": new, "key_id": key_id}
    return RESEAL.run(database, **values).rowcount == 1


def count(database, tenant):
    return total(database, tenant)


# Answers are written by the database: a source row as JSON text, in the
# shape of the API schema (keys, order, types), with no Python object made
# per column. tests/test_answers.py proves it equal to marshmallow's dump.

POSTGRES_TIME = """'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'"""  # MS truncates, as Python does
ANSWER = json_plan(source_schema)


def answer(database):
    """SQL rendering a DataSource row as the JSON object of the API schema
    (schemas.json_plan: key, attribute and kind of each field)."""
    sqlite = isinstance(database, SqliteDatabase)
    parts = []
    for key, attribute, kind in ANSWER:
        column = getattr(DataSource, attribute)
        if kind == "time":
            column = sqlite_time(column) if sqlite else fn.to_char(column, SQL(POSTGRES_TIME))
        elif kind == "object" and sqlite:
            column = fn.json(column)  # a JSON value, not a string holding JSON text
        parts += [SQL(f"'{key}'"), column]
    if sqlite:
        return fn.json_object(*parts)
    return fn.json_build_object(*parts).cast("text")  # as text: psycopg would parse json


def sqlite_time(column):
    """Python's sqlite3 stores `2026-03-16 02:00:00.123456`, or with no
    fraction when it is zero: cut either to `2026-03-16T02:00:00.123Z`
    (strftime's %f would round the milliseconds, and costs more)."""
    text = fn.substr(column.concat(SQL("'.000'")), SQL("1"), SQL("23"))
    return fn.replace(text, SQL("' '"), SQL("'T'")).concat(SQL("'Z'"))


UNIX_EPOCH = datetime.datetime(1970, 1, 1)
MILLISECOND = datetime.timedelta(milliseconds=1)


def new_id(created_at):
    """`ds_` and 20 hex digits: the milliseconds of `created_at` (naive UTC)
    since 1970 in 11, then 36 random bits. Ids made one after another then
    land at one edge of the id index, where random ones each dirtied a page
    of their own (on SQLite a fifth of a committed insert at 200,000 sources)."""
    milliseconds = (created_at - UNIX_EPOCH) // MILLISECOND
    return f"ds_{milliseconds:011x}{secrets.randbits(36):09x}"


def write_transaction(database):
    """A transaction that takes SQLite's write lock up front, so writers
    queue on the busy timeout instead of failing to upgrade a read lock."""
    if isinstance(database, SqliteDatabase):
        return database.atomic("IMMEDIATE")
    return database.atomic()


def one_write(database):
    """Where a write of one statement (its counters kept by triggers) runs:
    on SQLite in a write transaction taken up front, as `write_transaction`;
    on PostgreSQL on its own, atomic as every statement is, in one round
    trip instead of three."""
    if isinstance(database, SqliteDatabase):
        return database.atomic("IMMEDIATE")
    return contextlib.nullcontext()


# An import's connection on SQLite: a page cache that holds a batch's pages
# (ids are random, so each row dirties its own leaf of the primary key's
# index, 36 MB at a million sources; the 2 MB default spills and reads them
# again), and a checkpoint every 125 MB of WAL, not 16 MB, so a leaf that
# several batches wrote is copied once. Memory stays flat: the cache is a cap.
BULK_PRAGMAS = {"cache_size": -64 * 1024, "wal_autocheckpoint": 32_000}


@contextlib.contextmanager
def bulk_writes(database):
    """BULK_PRAGMAS on `database`'s connection (SQLite) while the block
    runs, then its own settings again."""
    if not isinstance(database, SqliteDatabase):
        yield
        return
    before = {name: database.execute_sql(f"PRAGMA {name}").fetchone()[0] for name in BULK_PRAGMAS}
    try:
        for name, value in BULK_PRAGMAS.items():
            database.execute_sql(f"PRAGMA {name} = {int(value)}")
        yield
    finally:
        for name, value in before.items():
            database.execute_sql(f"PRAGMA {name} = {int(value)}")


def migrate(database, seal=None):
    """Apply pending migrations; safe when several processes start at once.
    With none pending it takes no write lock, so a worker that (re)starts
    while the database is locked or read-only still boots. `seal`: the app's
    store.sealer, for migrations that encrypt secrets stored in clear."""
    with database.connection_context():
        if not pending_migrations(database):
            return []
        with write_transaction(database):
            if not isinstance(database, SqliteDatabase):
                database.execute_sql(
                    "SET LOCAL statement_timeout = 0"
                )  # DDL may outlast a request's
                database.execute_sql("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
            runner = Runner(database, MIGRATIONS, table_name=MIGRATION_TABLE)
            runner.migrator.seal = seal  # what a migration's up(migrator, db) may need
            return runner.up()


def pending_migrations(database):
    runner = Runner(database, MIGRATIONS, table_name=MIGRATION_TABLE)
    return [m.name for m in runner.status() if not m.applied and m.path]


def include_name(name, type_, parent_names):
    """For a host's Alembic (Flask-Migrate) sharing our database: leaves our
    tables out of what its autogenerate compares, so `flask db migrate`
    never drops them. `Migrate(app, db, include_name=include_name)`."""
    return type_ != "table" or not ours(name)


def ours(table):
    """Whether a table is the service's: TABLES, and on SQLite the search
    table with FTS5's own tables beside it."""
    return table in TABLES or table == SEARCH or table.startswith(SEARCH + "_")


# Bulk transfer (transfer.py): the export's pages and the import's batches.

ExportRow = collections.namedtuple("ExportRow", "position answer sealed")


def export_statement(first):
    def build(database):
        source = DataSource
        query = source.select(source.created_at, source.id, answer(database), source.secret_values)
        query = query.where(source.tenant_id == param("tenant"))
        if not first:
            after = Tuple(param("after_time"), param("after_id"))
            query = query.where(Tuple(source.created_at, source.id) > after)
        return query.order_by(source.created_at, source.id).limit(param("limit"))

    return Statement(build)


EXPORT_PAGES = Shapes(export_statement)


def export_page(database, tenant, limit, after=None):
    """Up to `limit` of the tenant's sources in list order, after the
    `position` of an earlier ExportRow, as the list's pages are read (the
    (tenant_id, created_at, id) index); ExportRows."""
    after_time, after_id = after or (None, None)
    cursor = EXPORT_PAGES[(after is None,)].run(
        database, tenant=tenant, limit=limit, after_time=after_time, after_id=after_id
    )
    return [ExportRow(row[:2], row[2], row[3]) for row in cursor.fetchall()]


TENANTS = Statement(
    lambda database: (
        TenantCount.select(TenantCount.tenant_id)
        .where(TenantCount.sources > 0, TenantCount.tenant_id > param("after"))
        .order_by(TenantCount.tenant_id)
        .limit(param("limit"))
    )
)


def tenants(database, limit, after=""):
    """Up to `limit` tenants that have sources (by their counters), in
    order, after the tenant `after`."""
    return [tenant for (tenant,) in TENANTS.run(database, limit=limit, after=after).fetchall()]


def read_snapshot(database):
    """A transaction whose reads all see one state of the database: SQLite's
    read transaction (WAL), PostgreSQL's REPEATABLE READ."""
    if isinstance(database, SqliteDatabase):
        return database.atomic()
    return database.atomic(isolation_level="REPEATABLE READ READ ONLY")


BATCH_ROWS = 256  # rows per SQLite INSERT statement: compiled for 256, 128, ... 1


def insert_batch_statement(size):
    """SQLite: `size` rows of named parameters. PostgreSQL: every row in one
    JSON parameter, whatever the size (psycopg parses a statement's
    placeholders again at each run past 4 kB of SQL, at some 10 µs each)."""

    def build(database):
        if isinstance(database, SqliteDatabase):
            rows = [{field: param(f"{field.name}.{i}") for field in FIELDS} for i in range(size)]
            insert = DataSource.insert_many(rows)
        else:
            types = ", ".join(f"{field.column_name} {record_type(field)}" for field in FIELDS)
            records = NodeList((fn.jsonb_to_recordset(param("rows")), SQL(f"AS t({types})")))
            insert = DataSource.insert_from(DataSource.select(SQL("*")).from_(records), FIELDS)
        target = [DataSource.tenant_id, DataSource.key]
        insert = insert.on_conflict("NOTHING", conflict_target=target)
        return insert.returning(DataSource.key)

    return Statement(build)


def record_type(field):
    if isinstance(field, JSONField):
        return "jsonb"
    if isinstance(field, DateTimeField):
        return "timestamp"
    return "bigint" if isinstance(field, BigIntegerField) else "text"


INSERT_BATCHES = Shapes(insert_batch_statement)


def insert_batch(database, rows):
    """INSERT sources (each of `rows` names every field), but none whose
    (tenant, key) exists; the keys inserted. On SQLite, multi-row statements
    of at most BATCH_ROWS rows, in sizes that are powers of two, so a few
    shapes serve any batch; on PostgreSQL, one statement."""
    if not rows:
        return set()
    if not isinstance(database, SqliteDatabase):
        records = [{f.column_name: record_value(data[f.name]) for f in FIELDS} for data in rows]
        cursor = INSERT_BATCHES[(0,)].run(database, rows=json_text(records))
        return {key for (key,) in cursor.fetchall()}
    values, width = [stored(f, data[f.name]) for data in rows for f in FIELDS], len(FIELDS)
    inserted, start = set(), 0
    while start < len(rows):
        size = min(BATCH_ROWS, 1 << (len(rows) - start).bit_length() - 1)
        sql = row_major_sql(database, size)
        cursor = database.execute_sql(sql, values[start * width : (start + size) * width])
        inserted.update(key for (key,) in cursor.fetchall())
        start += size
    return inserted


def row_major_sql(database, size):
    """The SQL of the SQLite batch INSERT of `size` rows. Peewee places its
    parameters row by row, each row's in FIELDS order (tests/test_transfer.py), so
    a batch binds one flat list instead of a dict of 21 names a row."""
    sql, _ = INSERT_BATCHES[(size,)].compile(database)
    return sql


def record_value(value):
    return value.isoformat() if isinstance(value, datetime.datetime) else value


def analyze(database):
    """Fresh planner statistics after a bulk import: with none, PostgreSQL
    estimates a few rows and reads a tenant's pages by sorting all of it.
    Outside a transaction, a VACUUM too: until the table's pages are marked
    all-visible, a count over an index (`schemaKey=...`) reads the table
    as well, and PostgreSQL scans all of it instead."""
    if isinstance(database, SqliteDatabase):
        return
    table = DataSource._meta.table_name
    if database.in_transaction():
        database.execute_sql("SET LOCAL statement_timeout = 0")
        database.execute_sql(f"ANALYZE {table}")
        return
    database.execute_sql("SET statement_timeout = 0")
    try:
        database.execute_sql(f"VACUUM (ANALYZE) {table}")
    finally:
        database.execute_sql("RESET statement_timeout")
