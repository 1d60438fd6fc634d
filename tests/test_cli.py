"""`flask db upgrade` and start-up migrations."""

import os

import psycopg
import pytest
from conftest import close, database_of, flask_cli, repo_instance

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
    assert models.pending_migrations(database) == ["0001_initial"]
    runner = app.test_cli_runner()
    first = runner.invoke(args=["db", "upgrade"])
    assert first.exit_code == 0 and first.output == "applied: 0001_initial\n"
    assert tables(database) == {
        "data_sources",
        "datasources_tenant_counts",
        "datasources_migrations",
    }
    assert models.pending_migrations(database) == []
    again = runner.invoke(args=["db", "upgrade"])
    assert again.output == "schema is current\n"
    close(database)


def test_flask_db_upgrade_in_a_real_process(empty_database_url, tmp_path):
    """The documented command: `flask --app datasources.app db upgrade`."""
    before, instance = repo_instance(), tmp_path / "instance"
    env = {"DATASOURCES_DATABASE_URL": empty_database_url, "DATASOURCES_AUTO_MIGRATE": "false"}
    first = flask_cli(instance, "db", "upgrade", **env)
    assert (first.returncode, first.stdout) == (0, "applied: 0001_initial\n"), first.stderr
    again = flask_cli(instance, "db", "upgrade", **env)
    assert (again.returncode, again.stdout) == (0, "schema is current\n"), again.stderr
    assert os.listdir(instance) == ["datasources-secret"]  # no JWT secret set: made there
    assert repo_instance() == before


def test_start_up_migrates_sqlite_by_default_and_not_postgres(
    backend, empty_database_url, tmp_path
):
    config = {"DATASOURCES_DATABASE_URL": empty_database_url, "DATASOURCES_JWT_SECRET": "s"}
    database = database_of(create_app(config, instance_path=str(tmp_path)))
    expected = {"sqlite": ["0001_initial"], "postgres": []}[backend]
    applied = ["0001_initial"] if not models.pending_migrations(database) else []
    assert applied == expected
    close(database)


def test_auto_migrate_from_the_environment(monkeypatch, backend, empty_database_url, tmp_path):
    monkeypatch.setenv("DATASOURCES_DATABASE_URL", empty_database_url)
    monkeypatch.setenv("DATASOURCES_AUTO_MIGRATE", "true")
    monkeypatch.setenv("DATASOURCES_JWT_SECRET", "s")
    database = database_of(create_app(instance_path=str(tmp_path)))
    assert models.pending_migrations(database) == []
    close(database)
