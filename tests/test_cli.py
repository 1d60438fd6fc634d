"""`flask db upgrade` and start-up migrations."""

import psycopg
import pytest

import models
from app import create_app


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


def tables():
    return set(models.db.get_tables())


def test_db_upgrade_creates_the_schema_once(empty_database_url, tmp_path):
    app = create_app(
        {
            "DATASOURCES_DATABASE_URL": empty_database_url,
            "DATASOURCES_AUTO_MIGRATE": False,
            "DATASOURCES_JWT_SECRET": "s" * 32,
        }
    )
    assert tables() == set()
    assert models.pending_migrations() == ["0001_initial"]
    runner = app.test_cli_runner()
    first = runner.invoke(args=["db", "upgrade"])
    assert first.exit_code == 0 and first.output == "applied: 0001_initial\n"
    assert tables() == {"data_sources", "datasources_tenant_counts", "datasources_migrations"}
    assert models.pending_migrations() == []
    again = runner.invoke(args=["db", "upgrade"])
    assert again.output == "schema is current\n"
    models.db.close()


def test_start_up_migrates_sqlite_by_default_and_not_postgres(backend, empty_database_url):
    create_app({"DATASOURCES_DATABASE_URL": empty_database_url, "DATASOURCES_JWT_SECRET": "s"})
    expected = {"sqlite": ["0001_initial"], "postgres": []}[backend]
    applied = ["0001_initial"] if not models.pending_migrations() else []
    assert applied == expected
    models.db.close()


def test_auto_migrate_from_the_environment(monkeypatch, backend, empty_database_url):
    monkeypatch.setenv("DATASOURCES_DATABASE_URL", empty_database_url)
    monkeypatch.setenv("DATASOURCES_AUTO_MIGRATE", "true")
    monkeypatch.setenv("DATASOURCES_JWT_SECRET", "s")
    create_app()
    assert models.pending_migrations() == []
    models.db.close()
