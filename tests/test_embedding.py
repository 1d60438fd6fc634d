"""The API embedded in a real host, on SQLite and PostgreSQL (issue 8, part 4).

The host is tests/host: its own `app.py` and `models.py`, Flask-SQLAlchemy
models migrated by Flask-Migrate, a session login whose user is the identity
it hands to `init_app`, its own 404 page, `/docs` page, hooks and CLI. Its
`flask` commands run as real subprocesses in a copy of that folder (`flask db
init` writes `migrations/` there); in-process tests import the same code.
"""

import collections
import contextlib
import importlib
import os
import pathlib
import secrets
import shutil
import sqlite3
import subprocess
import sys
import urllib.parse

import psycopg
import pytest
from conftest import API, EXAMPLE_KEY, POSTGRES_URL, SECRET, auth, close, database_of, problem

from datasources import models
from datasources.app import create_app

HOST = pathlib.Path(__file__).resolve().parent / "host"
FLASK = pathlib.Path(sys.executable).parent / "flask"
PREFIX = "/platform/data-sources"
OURS = set(models.TABLES)  # data_sources, its counters, datasources_migrations
MIGRATIONS = [
    "0001_initial",
    "0002_filters",
    "0003_secrets",
    "0004_lighter_writes",
    "0005_counters_by_trigger",
    "0006_optional_columns_indexed_when_set",
]
APPLIED = f"applied: {', '.join(MIGRATIONS)}\n"
HOST_TABLES = {"user", "note"}
HOST_404 = b"<h1>Platform: page not found</h1>"
SOURCE = {"key": EXAMPLE_KEY, "name": "CRM Customer Export"}
USERS = {"alice": ("t_alice", "editor"), "bob": ("t_bob", "viewer")}


# Databases: each test makes its own, empty (on PostgreSQL a fresh database on
# the test server), and reads them with the plain drivers, not through us.

Database = collections.namedtuple("Database", "url sqlalchemy_url dsn postgres_name")


@pytest.fixture
def make_database(request, tmp_path):
    """make_database(backend) -> an empty Database; PostgreSQL ones are dropped after."""
    made = []

    def make(backend):
        if backend == "sqlite":
            path = tmp_path / f"database{len(made)}.sqlite"
            database = Database(f"sqlite:///{path}", f"sqlite:///{path}", str(path), None)
        else:
            request.getfixturevalue("postgres_url")  # fails (or skips) as conftest says
            name = f"datasources_host_{secrets.token_hex(6)}"
            with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
                admin.execute(f'CREATE DATABASE "{name}"')
            server = urllib.parse.urlsplit(POSTGRES_URL)
            dsn = urllib.parse.urlunsplit(server._replace(path="/" + name))
            # Our connections carry a name of their own, to tell them from the host's.
            database = Database(
                f"{dsn}?application_name=datasources",
                dsn.replace("postgresql://", "postgresql+psycopg://", 1),
                dsn,
                name,
            )
        made.append(database)
        return database

    yield make
    names = [database.postgres_name for database in made if database.postgres_name]
    if names:
        with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
            for name in names:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def query(database, sql):
    if database.postgres_name is None:
        with contextlib.closing(sqlite3.connect(database.dsn)) as connection:
            return connection.execute(sql).fetchall()
    with psycopg.connect(database.dsn) as connection:
        return connection.execute(sql).fetchall()


def tables(database):
    if database.postgres_name is None:
        found = query(database, "SELECT name FROM sqlite_master WHERE type = 'table'")
    else:
        found = query(database, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    return {name for (name,) in found}


def sources(database):
    return query(database, "SELECT tenant_id, key FROM data_sources ORDER BY key")


def our_connections(database):
    """Connections of ours open on `database`: on PostgreSQL as the server
    counts them, on SQLite as this process's open files on it."""
    if database.postgres_name is None:
        path = os.path.realpath(database.dsn)
        links = (os.path.join("/proc/self/fd", fd) for fd in os.listdir("/proc/self/fd"))
        return sum(1 for link in links if os.path.realpath(link) == path)
    with psycopg.connect(POSTGRES_URL) as admin:
        return admin.execute(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE datname = %s AND application_name = 'datasources'",
            (database.postgres_name,),
        ).fetchone()[0]


def put_a_source(database, tmp_path):
    """Our tables and one row of alice's in `database`, by the standalone service."""
    config = {
        "TESTING": True,
        "DATASOURCES_DATABASE_URL": database.url,
        "DATASOURCES_AUTO_MIGRATE": True,
        "DATASOURCES_JWT_SECRET": SECRET,
    }
    service = create_app(config, instance_path=str(tmp_path / "service"))
    created = service.test_client().post(API, json=SOURCE, headers=auth("t_alice"))
    close(database_of(service))
    assert created.status_code == 201, created.data
    assert OURS <= tables(database) and sources(database) == [("t_alice", EXAMPLE_KEY)]


# The host's CLI, as its developers run it: `flask ...` in its folder.


@pytest.fixture
def host_folder(tmp_path):
    folder = tmp_path / "platform"
    shutil.copytree(HOST, folder, ignore=shutil.ignore_patterns("__pycache__", "instance"))
    return folder


def flask(folder, *args, env):
    """Run `flask *args` in the host's folder with `env` added; its stdout."""
    result = subprocess.run(
        [str(FLASK), *args],
        cwd=folder,
        env={**os.environ, "FLASK_APP": "app", **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def sharing(database, **settings):
    """The environment of a host whose own models and the API share `database`."""
    return {
        "FLASK_SQLALCHEMY_DATABASE_URI": database.sqlalchemy_url,
        "DATASOURCES_DATABASE_URL": database.url,
        **settings,
    }


def host_migration(folder, env, message="platform"):
    """`flask db migrate` in the host's folder; the migration it wrote."""
    before = set((folder / "migrations" / "versions").glob("*.py"))
    flask(folder, "db", "migrate", "-m", message, env=env)
    (written,) = set((folder / "migrations" / "versions").glob("*.py")) - before
    return written.read_text()


# The host in this process: its app.py imported as `flask` imports it, with
# its folder first on sys.path, so that its `models` is its own models.py.


@pytest.fixture(scope="module")
def platform():
    saved = {name: sys.modules.pop(name, None) for name in ("app", "models")}
    try:
        sys.path.insert(0, str(HOST))
        try:
            module = importlib.import_module("app")
        finally:
            sys.path.remove(str(HOST))
        assert module.__file__ == str(HOST / "app.py")
        assert sys.modules["models"].__file__ == str(HOST / "models.py")
        yield module
    finally:
        for name, previous in saved.items():
            sys.modules.pop(name, None)
            if previous is not None:
                sys.modules[name] = previous


@pytest.fixture
def make_host(platform, tmp_path):
    """make_host(database, host_database=None, config=None, **init_app options):
    the host on `database` (None: the API's from the environment), its own
    models on `host_database` (default: the same one), with users alice
    (editor of t_alice) and bob (viewer of t_bob)."""
    made = []

    def make(database, host_database=None, config=None, **options):
        settings = {"TESTING": True, "SECRET_KEY": "test"}
        settings["SQLALCHEMY_DATABASE_URI"] = (host_database or database).sqlalchemy_url
        if database is not None:
            settings["DATASOURCES_DATABASE_URL"] = database.url
        instance = tmp_path / f"instance{len(made)}"
        host = platform.create_app({**settings, **(config or {})}, str(instance), **options)
        made.append(host)
        with host.app_context():
            platform.db.create_all()
            for name, (tenant, role) in USERS.items():
                platform.db.session.add(platform.User(name=name, tenant_id=tenant, role=role))
            platform.db.session.commit()
        return host

    yield make
    for host in made:
        close(database_of(host))
        with host.app_context():
            platform.db.engine.dispose()


@pytest.fixture
def host(backend, make_database, make_host):
    """The host and the API sharing one database, migrated on first use."""
    return make_host(make_database(backend), config={"DATASOURCES_AUTO_MIGRATE": True})


def logged_in(host, name="alice"):
    client = host.test_client()
    assert client.post("/login", data={"name": name}).status_code == 302
    return client


def host_404(response):
    assert response.status_code == 404 and response.data == HOST_404
    assert response.mimetype == "text/html"


# A host sharing its database: its Flask-Migrate leaves our tables alone.


def test_the_hosts_migrations_keep_our_tables_and_rows(
    backend, make_database, host_folder, tmp_path, make_host
):
    shared = make_database(backend)
    put_a_source(shared, tmp_path)
    env = sharing(shared)
    flask(host_folder, "db", "init", env=env)
    migration = host_migration(host_folder, env)
    assert "op.create_table('user'" in migration and "op.create_table('note'" in migration
    for table in OURS:
        assert table not in migration
    flask(host_folder, "db", "upgrade", env=env)
    assert OURS <= tables(shared)
    hosts = {table for table in tables(shared) if not models.ours(table)}
    assert hosts == HOST_TABLES | {"alembic_version"}
    assert sources(shared) == [("t_alice", EXAMPLE_KEY)]
    applied = query(shared, "SELECT name FROM datasources_migrations ORDER BY name")
    assert applied == [(name,) for name in MIGRATIONS]
    listed = logged_in(make_host(shared)).get(PREFIX).get_json()
    assert [(s["tenantId"], s["key"]) for s in listed["data"]] == [("t_alice", EXAMPLE_KEY)]


def test_without_our_filter_the_hosts_migration_would_drop_our_tables(
    backend, make_database, host_folder, tmp_path
):
    shared = make_database(backend)
    put_a_source(shared, tmp_path)
    app_py = host_folder / "app.py"
    filtered = app_py.read_text()
    assert filtered.count("include_name=datasources.models.include_name") == 1
    app_py.write_text(filtered.replace(", include_name=datasources.models.include_name", ""))
    env = sharing(shared)
    flask(host_folder, "db", "init", env=env)
    migration = host_migration(host_folder, env)
    for table in OURS:
        assert f"op.drop_table('{table}')" in migration


def test_host_commands_leave_our_tables_to_the_first_api_request(
    backend, make_database, host_folder, make_host
):
    database = make_database(backend)
    # Auto-migrate is SQLite's default; on PostgreSQL it is asked for, so that
    # both show where it happens: never in a host's command, nor at init_app.
    auto = {} if backend == "sqlite" else {"DATASOURCES_AUTO_MIGRATE": "true"}
    assert flask(host_folder, "hello", env=sharing(database, **auto)) == "hello from the platform\n"
    assert not tables(database) & OURS
    host = make_host(database, config=auto)
    assert not tables(database) & OURS
    listed = logged_in(host).get(PREFIX)
    assert listed.status_code == 200 and listed.get_json()["data"] == []
    assert OURS <= tables(database)


# Settings from the host's config, and from the environment through it.


def test_settings_from_the_environment_place_our_rows_and_migrations(
    backend, make_database, host_folder, make_host, monkeypatch, tmp_path
):
    ours, platform_database = make_database(backend), make_database("sqlite")
    environment = {"DATASOURCES_DATABASE_URL": ours.url, "DATASOURCES_MAX_BODY_BYTES": "2000"}
    env = {"FLASK_SQLALCHEMY_DATABASE_URI": platform_database.sqlalchemy_url, **environment}
    assert flask(host_folder, "datasources", "db", "upgrade", env=env) == APPLIED
    assert OURS <= tables(ours) and not OURS & tables(platform_database)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    host = make_host(None, host_database=platform_database)
    client = logged_in(host)
    assert client.post(PREFIX, json=SOURCE).status_code == 201
    problem(client.post(PREFIX, json={**SOURCE, "key": "big", "description": "x" * 2000}), 413)
    assert sources(ours) == [("t_alice", EXAMPLE_KEY)]
    assert not list(tmp_path.glob("instance*/datasources.db"))
    upgrade = host.test_cli_runner().invoke(args=["datasources", "db", "upgrade"])
    assert upgrade.output == "schema is current\n"


def test_settings_from_the_hosts_config(backend, make_database, make_host):
    ours, platform_database = make_database(backend), make_database("sqlite")
    host = make_host(ours, platform_database, config={"DATASOURCES_MAX_BODY_BYTES": 2000})
    upgrade = host.test_cli_runner().invoke(args=["datasources", "db", "upgrade"])
    assert upgrade.output == APPLIED
    assert OURS <= tables(ours) and not OURS & tables(platform_database)
    client = logged_in(host)
    assert client.post(PREFIX, json=SOURCE).status_code == 201
    problem(client.post(PREFIX, json={**SOURCE, "key": "big", "description": "x" * 2000}), 413)
    assert sources(ours) == [("t_alice", EXAMPLE_KEY)]


# Our URL space answers problem+json; the host's keeps its own 404 page.


def test_every_path_under_our_prefix_answers_problem_json(host):
    clients = {"anonymous": host.test_client(), "alice": logged_in(host)}
    for who, client in clients.items():
        for method in ("GET", "PUT", "POST", "DELETE"):
            problem(client.open(f"{PREFIX}/", method=method, json=SOURCE), 404)
        for path in (f"{PREFIX}/no-such-key", f"{PREFIX}/a/b/"):  # one source's path
            problem(client.get(path), 401 if who == "anonymous" else 404)
            for method in ("PUT", "POST", "DELETE"):
                response = client.open(path, method=method, json=SOURCE)
                problem(response, 405)
                assert response.headers["Allow"] == "GET, HEAD, OPTIONS"
        wrong_method = client.patch(PREFIX, json=SOURCE)
        problem(wrong_method, 405)
        assert {"GET", "POST", "PUT", "DELETE"} <= set(wrong_method.allow)


def test_the_hosts_paths_keep_the_hosts_404_page(host):
    client = logged_in(host)
    for path in ("/nowhere", "/platform", "/platform/", "/platform/data-sources-old", "/docs/x"):
        host_404(client.get(path))


# The docs page and the OpenAPI document: where the host says, or nowhere.


def docs_and_document(host, docs_url, openapi_url):
    client = host.test_client()
    page, document = client.get(docs_url), client.get(openapi_url)
    assert page.status_code == 200 and page.mimetype == "text/html"
    assert f'"{openapi_url}"'.encode() in page.data
    assert document.status_code == 200 and PREFIX in document.get_json()["paths"]


def test_docs_and_document_beside_the_api_by_default(host):
    docs_and_document(host, "/platform/docs", "/platform/openapi.json")
    assert host.test_client().get("/docs").data == b"<h1>Platform docs</h1>"


def test_docs_and_document_where_the_host_places_them(backend, make_database, make_host):
    placed = {"docs_url": "/help/data-sources", "openapi_url": "/help/data-sources.json"}
    host = make_host(make_database(backend), **placed)
    docs_and_document(host, placed["docs_url"], placed["openapi_url"])
    for default in ("/platform/docs", "/platform/openapi.json"):
        host_404(host.test_client().get(default))


def test_docs_and_document_turned_off(backend, make_database, make_host):
    host = make_host(
        make_database(backend),
        config={"DATASOURCES_AUTO_MIGRATE": True},
        docs_url=None,
        openapi_url=None,
    )
    client = logged_in(host)
    for default in ("/platform/docs", "/platform/openapi.json", "/platform/docs/assets/x"):
        host_404(client.get(default))
    assert client.get(PREFIX).status_code == 200


@pytest.mark.parametrize(
    "options, path, parameter",
    [
        ({"url_prefix": "/data-sources"}, "/docs", "docs_url"),  # the default beside it
        ({"docs_url": "/notes"}, "/notes", "docs_url"),
        ({"openapi_url": "/notes"}, "/notes", "openapi_url"),
        ({"url_prefix": "/notes", "docs_url": None, "openapi_url": None}, "/notes", "url_prefix"),
        ({"docs_url": "/docs/"}, "/docs", "docs_url"),
    ],
)
def test_a_path_the_host_routes_is_refused_at_init_app(
    make_database, make_host, options, path, parameter
):
    with pytest.raises(ValueError) as refused:
        make_host(make_database("sqlite"), **options)
    assert repr(path) in str(refused.value) and parameter in str(refused.value)


# Two hosts in one process: each has its own database, rows and migrations.


@pytest.mark.parametrize("backends", [("sqlite", "sqlite"), ("sqlite", "postgres")])
def test_two_hosts_in_one_process_keep_to_their_own_databases(backends, make_database, make_host):
    database_a, database_b = map(make_database, backends)
    host_a = make_host(database_a)
    host_b = make_host(database_b)  # last: a binding shared by the process would be B's
    upgrade = host_a.test_cli_runner().invoke(args=["datasources", "db", "upgrade"])
    assert upgrade.output == APPLIED
    assert OURS <= tables(database_a) and not OURS & tables(database_b)
    assert logged_in(host_a).post(PREFIX, json=SOURCE).status_code == 201
    assert sources(database_a) == [("t_alice", EXAMPLE_KEY)]
    upgrade = host_b.test_cli_runner().invoke(args=["datasources", "db", "upgrade"])
    assert upgrade.output == APPLIED
    listed = logged_in(host_b).get(PREFIX).get_json()
    assert listed["data"] == [] and listed["pagination"]["total"] == 0
    assert sources(database_b) == []
    assert len(logged_in(host_a).get(PREFIX).get_json()["data"]) == 1


# The host as it was: its routes, login, 404 page and hooks; none of our
# connections for its requests.


def test_the_api_answers_as_the_logged_in_user(host):
    problem(host.test_client().get(PREFIX), 401)
    alice = logged_in(host, "alice")
    created = alice.post(PREFIX, json=SOURCE)
    assert created.status_code == 201
    assert list(created.get_json())[:3] == ["id", "tenantId", "key"]  # not the host's sorted JSON
    assert created.get_json()["tenantId"] == "t_alice"
    bob = logged_in(host, "bob")  # a viewer of another tenant
    assert bob.get(PREFIX).get_json()["data"] == []
    problem(bob.post(PREFIX, json={**SOURCE, "key": "bobs"}), 403)
    assert [s["key"] for s in alice.get(PREFIX).get_json()["data"]] == [EXAMPLE_KEY]
    assert alice.post("/logout").status_code == 302
    problem(alice.get(PREFIX), 401)


def test_the_hosts_routes_login_404_page_and_hooks_are_untouched(host):
    client = host.test_client()
    assert client.get("/").data == b"Hello, guest"
    assert client.post("/login", data={"name": "nobody"}).status_code == 403
    assert client.post("/login", data={"name": "alice"}).status_code == 302
    home = client.get("/")
    assert home.data == b"Hello, alice" and home.headers["X-Host"] == "platform"
    assert "X-Request-ID" not in home.headers  # our after_request hook is not the host's
    assert client.post("/notes", data={"text": "hi"}).status_code == 201
    assert client.get("/notes").get_json() == ["hi"]
    host_404(client.get("/nowhere"))
    api = client.get(PREFIX)
    assert api.status_code == 200 and api.headers["X-Host"] == "platform"  # the host's hook
    assert "X-Request-ID" in api.headers
    assert client.post("/logout").status_code == 302
    assert client.get("/").data == b"Hello, guest"


def test_no_connection_of_ours_for_a_host_route(backend, make_database, make_host):
    ours, platform_database = make_database(backend), make_database("sqlite")
    host = make_host(ours, platform_database, config={"DATASOURCES_AUTO_MIGRATE": True})
    client = logged_in(host)
    for path in ("/", "/notes", "/docs", "/nowhere"):
        client.get(path)
    assert client.post("/notes", data={"text": "hi"}).status_code == 201
    assert our_connections(ours) == 0
    assert client.get(PREFIX).status_code == 200
    assert our_connections(ours) == 1  # the API's, kept in its pool


def test_an_unmigrated_database_is_a_503_that_says_what_to_run(tmp_path):
    from flask import Flask

    from datasources.app import init_app

    host = Flask("host", instance_path=str(tmp_path))
    host.config.update(
        DATASOURCES_DATABASE_URL=f"sqlite:///{tmp_path / 'fresh.db'}",
        DATASOURCES_AUTO_MIGRATE="false",
    )
    init_app(host, identity=lambda: ("t_host", "editor"))
    client = host.test_client()
    body = problem(client.get(API), 503)
    assert body["detail"] == (
        f"Schema migrations are pending: {', '.join(MIGRATIONS)}; run `db upgrade`."
    )
    assert client.get(API).headers["Retry-After"] == "5"
    assert client.get("/api/v1/openapi.json").status_code == 200  # no database needed
    result = host.test_cli_runner().invoke(args=["datasources", "db", "upgrade"])
    assert result.output == APPLIED
    assert client.get(API).status_code == 200
    close(database_of(host))
