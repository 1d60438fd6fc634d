"""Fixtures in the Flask tutorial's shape: `backend`, `app`, `client`, `runner`,
with `api` (an authenticated client) and `make_app` (more apps on the test
database); helpers to read a database (`rows`, `database_of`, `empty_tables`),
check an answer (`problem`) and run the CLI in a process (`flask_cli`).

Every API test runs on SQLite and on PostgreSQL. PostgreSQL runs when
DATASOURCES_TEST_POSTGRES_URL is set; each test session gets a database of
its own on that server (so concurrent runs never meet), and each test
starts with empty tables.
"""

import logging
import os
import secrets
import subprocess
import sys
import urllib.parse

import jwt
import psycopg
import pytest
import servers

from datasources import connections, models
from datasources.app import create_app

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
POSTGRES_URL = os.environ.get("DATASOURCES_TEST_POSTGRES_URL")
REQUIRE_POSTGRES = os.environ.get("DATASOURCES_TEST_REQUIRE_POSTGRES") == "1"
SECRET = "test-secret-" + "x" * 32
# The reference's example request (its create body).
EXAMPLE = {
    "key": "crm-customers",
    "name": "CRM Customer Export",
    "description": "Daily customer data export from Salesforce.",
    "connectorKey": "salesforce",
    "sourceConfig": {"objectName": "Contact", "query": "SELECT Id, Email, Name FROM Contact"},
    "syncMode": "incremental",
    "schedule": {"cron": "0 2 * * *", "timezone": "America/New_York"},
    "schemaKey": "customers",
    "status": "active",
}
COUNTED = ("data_sources", "datasources_tenant_counts", "datasources_combination_counts")
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


# Every secret string a test sends holds SECRET_MARK (secret_value); every log
# record of the run, and every gunicorn log the tests read, is searched for
# it, and the run fails if one holds it (pytest_sessionfinish).
SECRET_MARK = "sEkReT"


SECRETS_SENT = []


def secret_value(label="value"):
    """A fresh secret for a test to send: no log line may ever hold it."""
    SECRETS_SENT.append(f"{SECRET_MARK}-{label}-{secrets.token_hex(4)}")
    return SECRETS_SENT[-1]


class LeakWatch(logging.Handler):
    """Keeps every log record whose text (message, traceback) holds `mark`."""

    def __init__(self, mark=SECRET_MARK):
        super().__init__(logging.DEBUG)
        self.mark, self.records, self.leaks = mark, 0, []

    def emit(self, record):
        self.records += 1
        text = record.getMessage() + (record.exc_text or "")
        if record.exc_info and record.exc_info[1] is not None:
            text += logging.Formatter().formatException(record.exc_info)
        if self.mark in text:
            self.leaks.append(f"{record.name}: {text[:500]}")

    def leaks_in(self, text, where):
        if self.mark in text:
            self.leaks.append(f"{where}: {text[text.index(self.mark) - 200 :][:500]}")


WATCH = LeakWatch()


def pytest_configure(config):
    logging.getLogger().addHandler(WATCH)


def pytest_sessionfinish(session, exitstatus):
    for where, text in servers.LOGS_READ:
        WATCH.leaks_in(text, where)
    if SECRETS_SENT and not (WATCH.records or servers.LOGS_READ):
        print("\nSecrets were sent, but no log record reached the leak watch.")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    if WATCH.leaks:
        print(f"\n{len(WATCH.leaks)} log lines hold a secret value the tests sent:")
        for leak in WATCH.leaks[:20]:
            print("  " + leak)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


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
    models.migrate(database)
    with database.connection_context():
        database.execute_sql(f"TRUNCATE {', '.join(COUNTED)}")
    close(database)
    return url


@pytest.fixture
def fresh_database_url(backend, tmp_path, request):
    """A database of the test's own, with no migration applied."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'fresh.db'}"
        return
    server = request.getfixturevalue("postgres_url")
    name = f"fresh_{secrets.token_hex(4)}"
    admin = psycopg.connect(server, autocommit=True)
    admin.execute(f'CREATE DATABASE "{name}"')
    yield server.rsplit("/", 1)[0] + "/" + name
    admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    admin.close()


@pytest.fixture
def config(database_url, tmp_path):
    return {
        "TESTING": True,
        "DATASOURCES_DATABASE_URL": database_url,
        "DATASOURCES_AUTO_MIGRATE": True,
        "DATASOURCES_JWT_SECRET": SECRET,
    }


@pytest.fixture
def app(config, tmp_path):
    application = create_app(config, instance_path=str(tmp_path))
    yield application
    close(database_of(application))


def close(database):
    """Close the connections a test opened, pooled or not."""
    database.close_all() if hasattr(database, "close_all") else database.close()


def database_of(app):
    """The Peewee database an app of the API uses."""
    return app.extensions["datasources"].database


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

        def post(self, body, headers=None, **kwargs):
            headers = {**self.headers, **(headers or {})}
            return client.post(API, json=body, headers=headers, **kwargs)

        def put(self, body, headers=None, **kwargs):
            headers = {**self.headers, **(headers or {})}
            return client.put(API, json=body, headers=headers, **kwargs)

        def delete(self, key, headers=None):
            headers = {**self.headers, **(headers or {})}
            return client.delete(API, query_string={"key": key}, headers=headers)

    return Api()


def rows(app, table="data_sources"):
    """The table's rows as dicts, straight from the app's database."""
    database = database_of(app)
    with database.connection_context():
        cursor = database.execute_sql(f"SELECT * FROM {table} ORDER BY 1")
        names = [column[0] for column in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def empty_tables(app):
    """No source and no counter left in the app's database (for tests that
    run many examples on one database)."""
    database = database_of(app)
    with database.connection_context():
        for table in COUNTED:
            database.execute_sql(f"DELETE FROM {table}")


def problem(response, status, field=None):
    """The body of a problem+json answer of `status`; with `field`, one that
    names that field in `errors` and in `detail`."""
    assert response.status_code == status, response.data[:500]
    assert response.mimetype == "application/problem+json"
    body = response.get_json(force=True)
    assert body["status"] == status and body["type"] and body["title"] and body["detail"]
    if field is not None:
        assert field in body["errors"], body
        assert field in body["detail"]
    return body


@pytest.fixture
def make_app(config, tmp_path):
    """`create_app` with the test database and extra settings; every app it
    made has its connections closed after the test."""
    built = []

    def make(**settings):
        application = create_app({**config, **settings}, instance_path=str(tmp_path))
        built.append(application)
        return application

    yield make
    for application in built:
        close(database_of(application))


def flask_cli(instance, *args, **env):
    """`flask` in a process of its own, on the installed package's app factory
    with `instance` as its instance folder (Flask parses the call's literals);
    `env` are its only DATASOURCES_* variables."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("DATASOURCES_", "FLASK_"))}
    flask = os.path.join(os.path.dirname(sys.executable), "flask")
    target = f"datasources.app:create_app(instance_path={str(instance)!r})"
    return subprocess.run(
        [flask, "--app", target, *args],
        cwd=instance.parent,
        env={**environ, "PYTHONDONTWRITEBYTECODE": "1", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def repo_instance():
    """What the repository's own instance/ folder holds (None: no such folder)."""
    folder = os.path.join(REPO, "instance")
    return sorted(os.listdir(folder)) if os.path.isdir(folder) else None
