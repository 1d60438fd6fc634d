"""Peewee models, the database binding and the schema migrations.

Every model binds to one `DatabaseProxy`; `bind_database` points it at a
host's Peewee database or at one built from a `playhouse.db_url` URL.
"""

import datetime
import os
import secrets

from peewee import (
    SQL,
    BigIntegerField,
    CharField,
    DatabaseProxy,
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

if __package__:
    from .schemas import json_plan, source_schema, to_json
else:
    from schemas import json_plan, source_schema, to_json

MIGRATIONS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "migrations")
MIGRATION_TABLE = "datasources_migrations"
MIGRATION_LOCK = 7_301_955  # pg_advisory_xact_lock key shared by every process

db = DatabaseProxy()


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
        database = db
        table_name = "data_sources"

    @classmethod
    def of_tenant(cls, tenant_id):
        return cls.select().where(cls.tenant_id == tenant_id)

    @classmethod
    def page_query(cls, tenant_id, limit, after=None, answers=True):
        """Up to `limit` sources in list order after the (created_at, id)
        position `after`, as (created_at, id, row version, tenant's total,
        answer JSON) rows, or without the answer; served by the (tenant_id,
        created_at, id) index. The total is read by the same statement, so a
        page and its total always agree."""
        total = TenantCount.select(TenantCount.sources).where(TenantCount.tenant_id == tenant_id)
        columns = [cls.created_at, cls.id, cls.row_version, total]
        query = cls.select(*columns, *([answer()] if answers else []))
        query = query.where(cls.tenant_id == tenant_id)
        if after is not None:
            query = query.where(Tuple(cls.created_at, cls.id) > Tuple(*after))
        return query.order_by(cls.created_at, cls.id).limit(limit)

    @classmethod
    def page(cls, tenant_id, limit, after=None, answers=True):
        """The rows of `page_query`; no model built (Peewee takes longer to
        compile the query and fill 26 models than SQLite takes to run it)."""
        params = [tenant_id, tenant_id, *(after or ()), limit]
        query = lambda: cls.page_query(tenant_id, limit, after, answers)  # noqa: E731
        return execute(("page", after is None, answers), query, params).fetchall()

    @staticmethod
    def position(row):
        """The (created_at, id) of a page row; SQLite gives the time as text."""
        created_at, source_id = row[0], row[1]
        if isinstance(created_at, str):
            created_at = datetime.datetime.fromisoformat(created_at)
        return created_at, source_id

    @classmethod
    def find(cls, tenant_id, key):
        """The source's answer JSON, or None."""
        where = [cls.tenant_id == tenant_id, cls.key == key]
        return first(execute("find", lambda: cls.select(answer()).where(*where), [tenant_id, key]))

    @classmethod
    def insert_one(cls, data):
        """INSERT a source (`data` names every field); its answer JSON."""
        fields = cls._meta.sorted_fields
        params = [stored(field, data[field.name]) for field in fields]
        query = lambda: cls.insert(as_bound(fields, params)).returning(answer())  # noqa: E731
        return first(execute("insert", query, params))

    @classmethod
    def update_one(cls, tenant_id, key, changes, now, row_version=None):
        """One conditional UPDATE of the `changes`, bumping the row version
        (only from `row_version`, if given); the answer JSON, or None."""
        update, params = {}, []
        for field in cls._meta.sorted_fields:  # the order Peewee writes SET in
            if field.name == "row_version":
                update[field], param = field + 1, 1
            elif field.name == "updated_at" or field.name in changes:
                param = stored(field, now if field.name == "updated_at" else changes[field.name])
                update[field] = Value(param, converter=False)
            else:
                continue
            params.append(param)
        where = [cls.tenant_id == tenant_id, cls.key == key]
        params += [tenant_id, key]
        if row_version is not None:
            where.append(cls.row_version == row_version)
            params.append(row_version)
        name = ("update", tuple(field.name for field in update), row_version is None)
        return first(
            execute(name, lambda: cls.update(update).where(*where).returning(answer()), params)
        )

    @classmethod
    def delete_one(cls, tenant_id, key):
        """DELETE the source; whether there was one."""
        where = [cls.tenant_id == tenant_id, cls.key == key]
        return execute("delete", lambda: cls.delete().where(*where), [tenant_id, key]).rowcount > 0


def as_bound(fields, params):
    """Peewee values binding `params` as they are, already stored()."""
    return {
        field: Value(param, converter=False) for field, param in zip(fields, params, strict=True)
    }


def first(cursor):
    """The first column of the cursor's one row, or None; reads every row,
    as SQLite commits only once a RETURNING statement has finished."""
    rows = cursor.fetchall()
    return rows[0][0] if rows else None


# Answers are written by the database: a source row as JSON text, in the
# shape of the API schema (keys, order, types), with no Python object made
# per column. tests/test_answers.py proves it equal to marshmallow's dump.

POSTGRES_TIME = """'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'"""  # MS truncates, as Python does


def answer():
    """SQL rendering a DataSource row as the JSON object of the API schema
    (schemas.json_plan: key, attribute and kind of each field)."""
    sqlite = isinstance(db.obj, SqliteDatabase)
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


ANSWER = json_plan(source_schema)


class TenantCount(Model):
    """How many sources each tenant has, kept in the transaction of every
    insert and delete, so `pagination.total` never scans a tenant."""

    tenant_id = CharField(primary_key=True, max_length=255)
    sources = BigIntegerField(default=0)

    class Meta:
        database = db
        table_name = "datasources_tenant_counts"

    @classmethod
    def add(cls, tenant_id, delta):
        execute(
            "count-add",
            lambda: cls.insert(tenant_id=tenant_id, sources=delta).on_conflict(
                conflict_target=[cls.tenant_id], update={cls.sources: cls.sources + delta}
            ),
            [tenant_id, delta, delta],
        )

    @classmethod
    def of(cls, tenant_id):
        where = cls.tenant_id == tenant_id
        row = execute("count", lambda: cls.select(cls.sources).where(where), [tenant_id]).fetchone()
        return row[0] if row else 0


_compiled = {}
COMPILED_MAX = 1024  # kinds of statement kept; updates vary with their fields


def execute(name, query, params):
    """Run `query()` with `params`, its SQL compiled once per kind of
    database: Peewee takes longer to compile most of our statements than the
    database takes to run them. `params` are the values Peewee would bind, in
    its order; the first call checks them."""
    key = (name, type(db.obj))
    sql = _compiled.get(key)
    if sql is None:
        sql, expected = query().sql()
        if list(expected) != list(params):
            raise RuntimeError(f"{name}: Peewee binds {expected!r}, not {params!r}")
        if len(_compiled) < COMPILED_MAX:
            _compiled[key] = sql
    return db.execute_sql(sql, params)


def new_id():
    return f"ds_{secrets.token_hex(10)}"


def bind_database(database):
    db.initialize(database)


def write_transaction():
    """A transaction that takes SQLite's write lock up front, so writers
    queue on the busy timeout instead of failing to upgrade a read lock."""
    if isinstance(db.obj, SqliteDatabase):
        return db.atomic("IMMEDIATE")
    return db.atomic()


def migrate():
    """Apply pending migrations; safe when several processes start at once.
    With none pending it takes no write lock, so a worker that (re)starts
    while the database is locked or read-only still boots."""
    runner = Runner(db.obj, MIGRATIONS, table_name=MIGRATION_TABLE)
    with db.connection_context():
        if not pending_migrations():
            return []
        with write_transaction():
            if not isinstance(db.obj, SqliteDatabase):
                db.execute_sql("SET LOCAL statement_timeout = 0")  # DDL may outlast a request's
                db.execute_sql("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
            return runner.up()


def pending_migrations():
    runner = Runner(db.obj, MIGRATIONS, table_name=MIGRATION_TABLE)
    return [m.name for m in runner.status() if not m.applied and m.path]
