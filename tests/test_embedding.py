"""The API mounted in a host's Flask app leaves the host as it was."""

import click
import peewee
import pytest
from conftest import EXAMPLE_KEY
from flask import Flask, g

import connections
import models
from app import init_app


def identity():
    from flask import request

    return request.headers.get("X-Host-User-Tenant"), "editor"


def make_host(tmp_path, **init_kwargs):
    """A host with its own database, model, routes, 404 page, hook and `flask db`."""
    host = Flask("host", instance_path=str(tmp_path / "host-instance"))
    host.json.sort_keys = True
    host_db = peewee.SqliteDatabase(str(tmp_path / "host.db"))

    class Note(peewee.Model):
        text = peewee.TextField()

        class Meta:
            database = host_db

    host_db.create_tables([Note])
    host.config["hook_runs"] = 0

    @host.before_request
    def count_requests():
        host.config["hook_runs"] += 1

    @host.get("/")
    def home():
        return {"ours": "datasources_opens" in g, "connected": not models.db.is_closed()}

    @host.get("/notes")
    def notes():
        return {"count": Note.select().count()}

    @host.errorhandler(404)
    def host_not_found(exc):
        return "host page not found", 404

    @host.cli.group("db")
    def host_db_cli():
        """The host's own migrations."""

    @host_db_cli.command("upgrade")
    def host_upgrade():
        click.echo("host upgraded")

    init_app(host, identity=identity, **init_kwargs)
    return host, host_db, Note


@pytest.fixture
def host_parts(tmp_path, database_url):
    host, host_db, _ = make_host(
        tmp_path,
        url_prefix="/platform/sources",
        database=connections.connect_url(database_url),
    )
    return host, host_db


def test_the_api_works_under_the_hosts_prefix(host_parts):
    host, _ = host_parts
    client = host.test_client()
    headers = {"X-Host-User-Tenant": "t_host"}
    body = {"key": EXAMPLE_KEY, "name": "n"}
    created = client.post("/platform/sources", json=body, headers=headers)
    assert created.status_code == 201
    body = created.get_json()
    assert body["tenantId"] == "t_host"
    assert list(body)[:3] == ["id", "tenantId", "key"]  # not the host's sorted keys
    listed = client.get("/platform/sources", headers=headers).get_json()
    assert [s["key"] for s in listed["data"]] == [EXAMPLE_KEY]
    assert client.get("/platform/sources").status_code == 401
    assert client.get("/api/v1/data-sources", headers=headers).data == b"host page not found"


def test_our_errors_stay_problems_and_the_hosts_stay_its_own(host_parts):
    host, _ = host_parts
    client = host.test_client()
    ours = client.get("/platform/sources/nothing")
    assert ours.status_code == 404 and ours.mimetype == "application/problem+json"
    wrong_method = client.patch("/platform/sources")
    assert wrong_method.status_code == 405 and wrong_method.mimetype == "application/problem+json"
    theirs = client.get("/nothing")
    assert theirs.status_code == 404 and theirs.data == b"host page not found"


def test_no_hook_of_ours_and_no_connection_for_a_host_route(host_parts):
    host, _ = host_parts
    models.db.close()
    response = host.test_client().get("/")
    assert response.get_json() == {"ours": False, "connected": False}
    assert host.config["hook_runs"] == 1


def test_host_database_and_routes_untouched(tmp_path):
    host, host_db, note = make_host(tmp_path, database=None)
    host.config["DATASOURCES_DATABASE_URL"] = None
    with host_db.connection_context():
        note.create(text="hello")
    assert host.test_client().get("/notes").get_json() == {"count": 1}
    assert set(host_db.get_tables()) == {"note"}
    ours = models.db.obj
    assert ours is not host_db
    assert ours.database.startswith(str(tmp_path / "host-instance"))


def test_sharing_the_hosts_database(tmp_path):
    host_db_path = tmp_path / "shared.db"
    host = Flask("host", instance_path=str(tmp_path / "inst"))
    shared = peewee.SqliteDatabase(str(host_db_path))
    init_app(host, database=shared, identity=lambda: ("t", "editor"))
    client = host.test_client()
    assert client.post("/api/v1/data-sources", json={"key": "k", "name": "n"}).status_code == 201
    assert {"data_sources", "datasources_tenant_counts"} <= set(shared.get_tables())


def test_host_cli_keeps_its_db_command_and_ours_is_namespaced(host_parts):
    host, _ = host_parts
    runner = host.test_cli_runner()
    assert runner.invoke(args=["db", "upgrade"]).output == "host upgraded\n"
    result = runner.invoke(args=["datasources", "db", "upgrade"])
    assert result.exit_code == 0 and result.output == "schema is current\n"


def test_identity_function_returning_nothing_is_401(host_parts):
    host, _ = host_parts
    response = host.test_client().get("/platform/sources")
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
