"""`flask db upgrade` and start-up migrations."""

import os
import subprocess
import sys

import jwt
import psycopg
import pytest
from conftest import REPO, close, database_of, flask_cli, repo_instance

from datasources import models
from datasources.app import create_app


@pytest.fixture
def empty_database_url(backend, request, tmp_path):
    """A database with no tables at all."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.db'}"
        return
    url = request.getfixturevalue("postgres_url")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE SCHEMA empty_schema")
    yield url + "?options=-csearch_path%3Dempty_schema"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DROP SCHEMA empty_schema CASCADE")


def tables(database):
    with database.connection_context():
        return set(database.get_tables())


MIGRATIONS = [
    "0001_initial",
    "0002_filters",
    "0003_secrets",
    "0004_lighter_writes",
    "0005_counters_by_trigger",
    "0006_optional_columns_indexed_when_set",
]
INSTANCE_FILES = ["datasources-fernet-key", "datasources-fingerprint-key", "datasources-secret"]
APPLIED = f"applied: {', '.join(MIGRATIONS)}\n"


def test_db_upgrade_creates_the_schema_once(empty_database_url, tmp_path):
    app = create_app(
        {
            "DATASOURCES_DATABASE_URL": empty_database_url,
            "DATASOURCES_AUTO_MIGRATE": False,
            "DATASOURCES_JWT_SECRET": "s" * 32,
        },
        instance_path=str(tmp_path),
    )
    database = database_of(app)
    assert tables(database) == set()
    assert models.pending_migrations(database) == MIGRATIONS
    runner = app.test_cli_runner()
    first = runner.invoke(args=["db", "upgrade"])
    assert first.exit_code == 0 and first.output == APPLIED
    assert set(models.TABLES) <= tables(database)
    assert all(models.ours(table) for table in tables(database))
    assert models.pending_migrations(database) == []
    again = runner.invoke(args=["db", "upgrade"])
    assert again.output == "schema is current\n"
    close(database)


def test_flask_db_upgrade_in_a_real_process(empty_database_url, tmp_path):
    """The documented command: `flask --app datasources.app db upgrade`."""
    before, instance = repo_instance(), tmp_path / "instance"
    env = {"DATASOURCES_DATABASE_URL": empty_database_url, "DATASOURCES_AUTO_MIGRATE": "false"}
    first = flask_cli(instance, "db", "upgrade", **env)
    assert (first.returncode, first.stdout) == (0, APPLIED), first.stderr
    again = flask_cli(instance, "db", "upgrade", **env)
    assert (again.returncode, again.stdout) == (0, "schema is current\n"), again.stderr
    # No JWT secret and no secret keys set: made there.
    assert sorted(os.listdir(instance)) == INSTANCE_FILES
    assert repo_instance() == before


def test_start_up_migrates_sqlite_by_default_and_not_postgres(
    backend, empty_database_url, tmp_path
):
    config = {"DATASOURCES_DATABASE_URL": empty_database_url, "DATASOURCES_JWT_SECRET": "s"}
    database = database_of(create_app(config, instance_path=str(tmp_path)))
    expected = {"sqlite": MIGRATIONS, "postgres": []}[backend]
    applied = MIGRATIONS if not models.pending_migrations(database) else []
    assert applied == expected
    close(database)


def test_auto_migrate_from_the_environment(monkeypatch, backend, empty_database_url, tmp_path):
    monkeypatch.setenv("DATASOURCES_DATABASE_URL", empty_database_url)
    monkeypatch.setenv("DATASOURCES_AUTO_MIGRATE", "true")
    monkeypatch.setenv("DATASOURCES_JWT_SECRET", "s")
    database = database_of(create_app(instance_path=str(tmp_path)))
    assert models.pending_migrations(database) == []
    close(database)


def test_the_console_script_runs_from_the_repository_root():
    """`datasources token` where the README runs it: `flask --app datasources.app`
    at the root would read the checkout itself as a package."""
    script = os.path.join(os.path.dirname(sys.executable), "datasources")
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("DATASOURCES_", "FLASK_"))}
    secret = "console-secret-" + "c" * 40
    done = subprocess.run(
        [script, "token", "--tenant", "t_001", "--role", "viewer"],
        cwd=REPO,
        env={**environ, "DATASOURCES_JWT_SECRET": secret},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    claims = jwt.decode(done.stdout.strip(), secret, algorithms=["HS256"])
    assert (claims["tenant_id"], claims["role"]) == ("t_001", "viewer")
