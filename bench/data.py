"""Benchmark databases: made and dropped per run, seeded straight into the
tables (`seed`) or through the import command (`write_sources`, then
`flask datasources import`).

Seeding writes rows the way the service would (same columns, counter kept in
the same transaction as the rows) but without HTTP, so a million sources take
seconds, not hours. The import file holds the same mix as POST bodies.
"""

import datetime
import json
import os
import secrets
import urllib.parse

import jwt
import psycopg

from datasources import models
from datasources.app import create_app
from datasources.inputs import write_cursor

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

SECRET = "bench-secret-" + "b" * 40
# The server to make `bench_<random>` on (and drop it from); its own database is not touched.
POSTGRES_ADMIN_URL = os.environ.get(
    "BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
COLUMNS = (
    "id, tenant_id, key, name, description, connector_key, source_config, file_format, "
    "sync_mode, schedule, schema_key, status, last_sync_at, last_sync_status, record_count, "
    "row_version, created_at, updated_at"
)
BASE_TIME = datetime.datetime(2026, 3, 1, 12, 0)
SOURCE_CONFIG = json.dumps(
    {"objectName": "Contact", "query": "SELECT Id, Email, Name FROM Contact"}
)
SCHEDULE = json.dumps({"cron": "0 2 * * *", "timezone": "America/New_York"})
# A realistic mix: every 4th source of a status, 6 connectors, 3 sync modes.
STATUSES = ("active", "paused", "draft", "archived")
CONNECTORS = ("salesforce", "s3", "postgres", "snowflake", "kafka", "http")
SYNC_MODES = ("incremental", "full_refresh", "cdc")
# Valid full configs (no secrets), so every status passes the connector check.
CONFIGS = {
    "salesforce": {"objectName": "Contact", "query": "SELECT Id, Email FROM Contact"},
    "s3": {"bucket": "exports", "path_prefix": "customers/", "region_name": "us-east-1"},
    "postgres": {"host": "db.internal", "port": 5432, "database": "crm", "table": "customers"},
    "kafka": {"bootstrap_servers": "kafka:9092", "topic": "orders"},
    "snowflake": {"host": "acme.snowflakecomputing.com", "database": "RAW", "table": "ORDERS"},
    "http": {"url": "https://api.example.com/v1/orders"},
}
SCHEMA_KEYS = ("customers", "orders", "events", "invoices", "tickets")


def token(tenant, role="editor"):
    expires = datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=1)
    return jwt.encode({"tenant_id": tenant, "role": role, "exp": expires}, SECRET, "HS256")


class BenchDatabase:
    """A database of the bench's own: an SQLite file under bench/out, or
    `bench_<random>` on the PostgreSQL server; `drop()` removes it."""

    def __init__(self, backend, out_dir):
        self.backend = backend
        name = f"bench_{secrets.token_hex(4)}"
        os.makedirs(out_dir, exist_ok=True)  # not in a fresh clone; logs go there too
        if backend == "sqlite":
            self.path = os.path.join(out_dir, f"{name}.db")
            self.url = f"sqlite:///{self.path}"
        else:
            self.name = name
            with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
                admin.execute(f'CREATE DATABASE "{name}"')
            parts = urllib.parse.urlsplit(POSTGRES_ADMIN_URL)
            self.url = urllib.parse.urlunsplit(parts._replace(path="/" + name))
        self.env = {
            "DATASOURCES_DATABASE_URL": self.url,
            "DATASOURCES_JWT_SECRET": SECRET,
            "DATASOURCES_AUTO_MIGRATE": "1",
        }
        # The service's own factory: opens the database, migrates, signs cursors.
        self.app = create_app({key: value for key, value in self.env.items()})
        self.db = self.app.extensions["datasources"].database

    def drop(self):
        if not self.db.is_closed():
            self.db.close()
        if self.backend == "sqlite":
            for suffix in ("", "-wal", "-shm"):
                if os.path.exists(self.path + suffix):
                    os.unlink(self.path + suffix)
        else:
            with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')

    def seed(self, tenant, keys, start=0):
        """Insert sources with `keys` (in list order, after `start` earlier
        ones) and add them to the tenant's counter, in one transaction."""
        rows = (source_row(tenant, key, start + i) for i, key in enumerate(keys))
        with self.db.connection_context(), models.write_transaction(self.db):
            if self.backend == "sqlite":
                marks = ", ".join("?" * 18)
                self.db.connection().executemany(
                    f"INSERT INTO data_sources ({COLUMNS}) VALUES ({marks})", rows
                )
            else:
                self.db.execute_sql("SET LOCAL statement_timeout = 0")  # a bulk load, not a request
                cursor = self.db.connection().cursor()
                with cursor.copy(f"COPY data_sources ({COLUMNS}) FROM STDIN") as copy:
                    for row in rows:
                        copy.write_row(row)
        if self.backend == "postgres" and len(keys) > 10_000:
            with self.db.connection_context(), self.db.atomic():
                self.db.execute_sql("SET LOCAL statement_timeout = 0")
                self.db.execute_sql("ANALYZE data_sources")

    def versions(self, tenant, keys):
        with self.db.connection_context(), models.DataSource.bind_ctx(self.db):
            query = models.DataSource.select(
                models.DataSource.key, models.DataSource.row_version
            ).where(models.DataSource.tenant_id == tenant, models.DataSource.key.in_(keys))
            found = {source.key: source.row_version for source in query}
        return [found[key] for key in keys]

    def cursor_at(self, tenant, offset, where=(), filters=None):
        """The cursor a client would hold after reading `offset` sources (of
        those matching `where`, the list query's `filters`)."""
        position = self.position_at(tenant, offset, where)
        with self.app.app_context():
            return write_cursor(tenant, position, filters)

    def position_at(self, tenant, offset, where=()):
        """The (created_at, id) of the `offset`th source in list order (of
        those matching `where`)."""
        source = models.DataSource
        with self.db.connection_context(), source.bind_ctx(self.db):
            (position,) = (
                source.select(source.created_at, source.id)
                .where(source.tenant_id == tenant, *where)
                .order_by(source.created_at, source.id)
                .offset(offset - 1)
                .limit(1)
                .tuples()
            )
        return position


def source_body(key, position):
    """The POST body of the source at `position`, in source_row's mix of
    statuses, connectors and sync modes, and of 5 schema keys."""
    connector = CONNECTORS[(position // 4) % len(CONNECTORS)]
    body = {
        "key": key,
        "name": f"Source {key}",
        "description": "Daily customer data export from Salesforce.",
        "connectorKey": connector,
        "sourceConfig": CONFIGS[connector],
        "syncMode": SYNC_MODES[(position // 24) % len(SYNC_MODES)],
        "schedule": {"cron": "0 2 * * *", "timezone": "America/New_York"},
        "schemaKey": SCHEMA_KEYS[(position // 72) % len(SCHEMA_KEYS)],
        "status": STATUSES[position % len(STATUSES)],
    }
    if connector == "s3":
        body["fileFormat"] = "parquet"
    return body


def write_sources(path, keys, start=0):
    """A JSON Lines file of `keys`' POST bodies (source_body), positions from `start`."""
    with open(path, "w") as out:
        for i, key in enumerate(keys):
            out.write(json.dumps(source_body(key, start + i)) + "\n")


def source_row(tenant, key, position):
    moment = BASE_TIME + datetime.timedelta(milliseconds=position)
    return (
        models.new_id(moment),
        tenant,
        key,
        f"Source {key}",
        "Daily customer data export from Salesforce.",
        CONNECTORS[(position // 4) % len(CONNECTORS)],
        SOURCE_CONFIG,
        None,
        SYNC_MODES[(position // 24) % len(SYNC_MODES)],
        SCHEDULE,
        "customers",
        STATUSES[position % len(STATUSES)],
        BASE_TIME + datetime.timedelta(days=15),
        "success",
        45000,
        1,
        moment,
        moment,
    )
