"""Peewee models, the statements the store runs, and the schema migrations.

No model is bound to a database: every statement runs on the database it is
given (each app's own, see settings), so two apps in one process never share
rows, connections or migrations. Statements are compiled once per kind of
database with named parameters (`param`), whose order Peewee decides.
"""

import collections
import datetime
import os
import secrets

from peewee import (
    SQL,
    BigIntegerField,
    CharField,
    DateTimeField,
    JSONField,
    Model,
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

    class Meta:
        table_name = "data_sources"


class TenantCount(Model):
    """How many sources each tenant has, kept in the transaction of every
    insert and delete, so `pagination.total` never scans a tenant."""

    tenant_id = CharField(primary_key=True, max_length=255)
    sources = BigIntegerField(default=0)

    class Meta:
        table_name = "datasources_tenant_counts"


TABLES = (DataSource._meta.table_name, TenantCount._meta.table_name, MIGRATION_TABLE)


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

    def sql(self, database, **values):
        """The statement's SQL for `database` and its parameters bound to `values`."""
        compiled = self.compiled.get(type(database))
        if compiled is None:
            sql, params = self.build(database).bind(database).sql()
            compiled = self.compiled[type(database)] = (sql, params)
        sql, params = compiled
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


def page_statement(first, answers):
    def build(database):
        source = DataSource
        total = TenantCount.select(TenantCount.sources).where(
            TenantCount.tenant_id == param("tenant")
        )
        columns = [source.created_at, source.id, source.row_version, total]
        columns.append(answer(database) if answers else SQL("NULL"))
        query = source.select(*columns).where(source.tenant_id == param("tenant"))
        if not first:
            after = Tuple(param("after_time"), param("after_id"))
            query = query.where(Tuple(source.created_at, source.id) > after)
        return query.order_by(source.created_at, source.id).limit(param("limit"))

    return Statement(build)


PAGES = Shapes(page_statement)


def page(database, tenant, limit, after=None, answers=True):
    """Up to `limit` sources in list order after the (created_at, id)
    position `after`, each with its row version and the tenant's total (read
    by the same statement, so a page and its total always agree), and its
    answer JSON unless `answers` is false; served by the (tenant_id,
    created_at, id) index. No model is built: Peewee takes longer to fill 26
    models than SQLite takes to run the query. The rows come as PageColumns."""
    after_time, after_id = after or (None, None)
    cursor = PAGES[after is None, answers].run(
        database, tenant=tenant, limit=limit, after_time=after_time, after_id=after_id
    )
    rows = cursor.fetchall()
    return PageColumns._make(zip(*rows, strict=True)) if rows else NO_ROWS


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


def update_statement(changed, conditional):
    def build(database):
        update = {field: param(field.name) for field in FIELDS if field.name in changed}
        update[DataSource.row_version] = DataSource.row_version + 1
        where = of_key()
        if conditional:
            where.append(DataSource.row_version == param("expected"))
        return DataSource.update(update).where(*where).returning(*returned(database))

    return Statement(build)


UPDATES = Shapes(update_statement)


def update(database, tenant, key, changes, now, expected=None):
    """One conditional UPDATE of the `changes`, bumping the row version (only
    from `expected`, if given); the (id, row_version, answer), or None."""
    values = {name: stored(DataSource._meta.fields[name], v) for name, v in changes.items()}
    values["updated_at"] = stored(DataSource.updated_at, now)
    statement = UPDATES[frozenset(values), expected is not None]
    return written(database, statement, tenant=tenant, key=key, expected=expected, **values)


DELETE = Statement(lambda database: DataSource.delete().where(*of_key()))


def delete(database, tenant, key):
    """DELETE the source; whether there was one."""
    return DELETE.run(database, tenant=tenant, key=key).rowcount > 0


COUNT_ADD = Statement(
    lambda database: TenantCount.insert(
        tenant_id=param("tenant"), sources=param("delta")
    ).on_conflict(
        conflict_target=[TenantCount.tenant_id],
        update={TenantCount.sources: TenantCount.sources + param("delta")},
    )
)
COUNT = Statement(
    lambda database: TenantCount.select(TenantCount.sources).where(
        TenantCount.tenant_id == param("tenant")
    )
)


def count_add(database, tenant, delta):
    COUNT_ADD.run(database, tenant=tenant, delta=delta)


def count(database, tenant):
    counted = COUNT.run(database, tenant=tenant).fetchall()
    return sum(sources for (sources,) in counted)  # no row yet: 0


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


def new_id():
    return f"ds_{secrets.token_hex(10)}"


def write_transaction(database):
    """A transaction that takes SQLite's write lock up front, so writers
    queue on the busy timeout instead of failing to upgrade a read lock."""
    if isinstance(database, SqliteDatabase):
        return database.atomic("IMMEDIATE")
    return database.atomic()


def migrate(database):
    """Apply pending migrations; safe when several processes start at once.
    With none pending it takes no write lock, so a worker that (re)starts
    while the database is locked or read-only still boots."""
    with database.connection_context():
        if not pending_migrations(database):
            return []
        with write_transaction(database):
            if not isinstance(database, SqliteDatabase):
                database.execute_sql(
                    "SET LOCAL statement_timeout = 0"
                )  # DDL may outlast a request's
                database.execute_sql("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
            return Runner(database, MIGRATIONS, table_name=MIGRATION_TABLE).up()


def pending_migrations(database):
    runner = Runner(database, MIGRATIONS, table_name=MIGRATION_TABLE)
    return [m.name for m in runner.status() if not m.applied and m.path]


def include_name(name, type_, parent_names):
    """For a host's Alembic (Flask-Migrate) sharing our database: leaves our
    tables out of what its autogenerate compares, so `flask db migrate`
    never drops them. `Migrate(app, db, include_name=include_name)`."""
    return type_ != "table" or name not in TABLES
