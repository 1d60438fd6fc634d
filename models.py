"""Peewee models, the database binding and the schema migrations.

Every model binds to one `DatabaseProxy`; `bind_database` points it at a
host's Peewee database or at one built from a `playhouse.db_url` URL.
"""

import datetime
import os
import secrets

from peewee import (
    BigIntegerField,
    CharField,
    DatabaseProxy,
    DateTimeField,
    JSONField,
    Model,
    SqliteDatabase,
    TextField,
    Tuple,
)
from playhouse import db_url
from playhouse.migrations import Runner

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


class DataSource(Model):
    id = CharField(primary_key=True, max_length=64)
    tenant_id = CharField(max_length=255)
    key = CharField(max_length=255)
    name = CharField(max_length=255)
    description = TextField(default="")
    connector_key = TextField(default="")
    source_config = JSONField(default=dict)
    file_format = TextField(null=True)
    sync_mode = CharField(max_length=32, default="full_refresh")
    schedule = JSONField(default=dict)
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
    def page(cls, tenant_id, limit, after=None):
        """Up to `limit` sources in list order, after the (created_at, id)
        position `after`; served by the (tenant_id, created_at, id) index."""
        query = cls.of_tenant(tenant_id)
        if after is not None:
            query = query.where(Tuple(cls.created_at, cls.id) > Tuple(*after))
        return query.order_by(cls.created_at, cls.id).limit(limit)


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
        (
            cls.insert(tenant_id=tenant_id, sources=delta)
            .on_conflict(
                conflict_target=[cls.tenant_id],
                update={cls.sources: cls.sources + delta},
            )
            .execute()
        )

    @classmethod
    def of(cls, tenant_id):
        row = cls.get_or_none(cls.tenant_id == tenant_id)
        return row.sources if row else 0


def new_id():
    return f"ds_{secrets.token_hex(10)}"


def connect_url(url, busy_timeout_ms=5000, connect_timeout_s=5, statement_timeout_ms=5000):
    """A Peewee database for a `playhouse.db_url` URL, tuned for several
    processes: SQLite in WAL with a busy timeout, PostgreSQL with a bounded
    connect timeout and statement timeout (a lock wait or a stalled server
    ends in an error, a 503, well before gunicorn's worker timeout)."""
    if url.startswith("sqlite"):
        return db_url.connect(
            url,
            timeout=busy_timeout_ms / 1000,
            pragmas={
                "journal_mode": "wal",
                "busy_timeout": busy_timeout_ms,
                "synchronous": "normal",  # WAL + NORMAL survives a process crash
            },
        )
    params = {}
    if "connect_timeout" not in url:
        params["connect_timeout"] = connect_timeout_s
    if "options" not in url and statement_timeout_ms:
        params["options"] = f"-c statement_timeout={int(statement_timeout_ms)}"
    return db_url.connect(url, **params)


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
