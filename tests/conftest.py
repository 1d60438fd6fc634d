"""Fixtures in the Flask tutorial's shape: `backend`, `app`, `client`, `runner`.

Every API test runs on SQLite and on PostgreSQL. PostgreSQL runs when
DATASOURCES_TEST_POSTGRES_URL is set; each test session gets a database of
its own on that server (so concurrent runs never meet), and each test
starts with empty tables.
"""

import os
import secrets
import urllib.parse

import jwt
import psycopg
import pytest

import connections
import models
from app import create_app

POSTGRES_URL = os.environ.get("DATASOURCES_TEST_POSTGRES_URL")
REQUIRE_POSTGRES = os.environ.get("DATASOURCES_TEST_REQUIRE_POSTGRES") == "1"
SECRET = "test-secret-" + "x" * 32
API = "/api/v1/data-sources"
EXAMPLE_KEY = "crm-customers"
REFERENCE_DEFAULTS = {  # what the reference gives a source created with key and name only
    "description": "",
    "connectorKey": "",
    "sourceConfig": {},
    "fileFormat": None,
    "syncMode": "full_refresh",
    "schedule": {},
    "schemaKey": None,
    "status": "draft",
    "lastSyncAt": None,
    "lastSyncStatus": None,
    "recordCount": 0,
}


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch):
    """No test depends on the shell's DATASOURCES_* settings."""
    for name in list(os.environ):
        if name.startswith("DATASOURCES_"):
            monkeypatch.delenv(name)


@pytest.fixture(scope="session")
def postgres_url():
    """A fresh database on the test server, dropped at the end of the session."""
    if not POSTGRES_URL:
        if REQUIRE_POSTGRES:
            pytest.fail("DATASOURCES_TEST_POSTGRES_URL is not set")
        pytest.skip("DATASOURCES_TEST_POSTGRES_URL is not set")
    name = f"datasources_test_{secrets.token_hex(6)}"
    admin = psycopg.connect(POSTGRES_URL, autocommit=True)
    admin.execute(f'CREATE DATABASE "{name}"')
    parts = urllib.parse.urlsplit(POSTGRES_URL)
    yield urllib.parse.urlunsplit(parts._replace(path="/" + name))
    admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.close()


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request):
    return request.param


@pytest.fixture
def database_url(backend, request, tmp_path):
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'datasources.db'}"
    url = request.getfixturevalue("postgres_url")
    database = connections.connect_url(url)
    models.bind_database(database)
    models.migrate()
    with database.connection_context():
        database.execute_sql("TRUNCATE data_sources, datasources_tenant_counts")
    database.close()
    return url


@pytest.fixture
def config(database_url, tmp_path):
    return {
        "TESTING": True,
        "DATASOURCES_DATABASE_URL": database_url,
        "DATASOURCES_AUTO_MIGRATE": True,
        "DATASOURCES_JWT_SECRET": SECRET,
    }


@pytest.fixture
def app(config, tmp_path, monkeypatch):
    monkeypatch.setattr("flask.Flask.auto_find_instance_path", lambda self: str(tmp_path))
    application = create_app(config)
    yield application
    if not models.db.is_closed():
        models.db.close()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


def token(tenant="t_001", role="editor", secret=SECRET, **claims):
    return jwt.encode({"tenant_id": tenant, "role": role, **claims}, secret, algorithm="HS256")


def auth(tenant="t_001", role="editor", **claims):
    return {"Authorization": f"Bearer {token(tenant, role, **claims)}"}


@pytest.fixture
def api(client):
    """The test client, authenticated as an editor of tenant t_001."""

    class Api:
        def __init__(self, tenant="t_001", role="editor"):
            self.headers = auth(tenant, role)

        def as_(self, tenant="t_001", role="editor"):
            return Api(tenant, role)

        def get(self, query=""):
            return client.get(f"{API}{query}", headers=self.headers)

        def post(self, body, **kwargs):
            return client.post(API, json=body, headers=self.headers, **kwargs)

        def put(self, body, **kwargs):
            return client.put(API, json=body, headers=self.headers, **kwargs)

        def delete(self, key):
            return client.delete(API, query_string={"key": key}, headers=self.headers)

    return Api()


def rows(table="data_sources"):
    """The table's rows as dicts, straight from the database."""
    cursor = models.db.execute_sql(f"SELECT * FROM {table} ORDER BY 1")
    names = [column[0] for column in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
