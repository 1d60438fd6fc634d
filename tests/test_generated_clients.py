"""Clients generated from the served document, the way their users make
them: openapi-python-client writes a Python client, which walks create ->
list -> update -> conflict -> delete, then lists the connector catalog and
reads one, against a real server on SQLite and PostgreSQL; openapi-typescript
writes TypeScript types, which `tsc --strict` compiles in a typed use
(tests/clients/use.ts). A generator warning (a schema or an operation
skipped) fails the test.

The Node tools are the versions tests/clients/package-lock.json pins,
installed with `npm ci` (Node.js and npm are the machine's).
"""

import datetime
import importlib
import json
import shutil
import subprocess
import sys
import threading
from pathlib import Path
from types import SimpleNamespace

import pytest
from conftest import SECRET, close, database_of, rows, token
from werkzeug.serving import make_server

from datasources import connectors
from datasources.app import create_app
from datasources.settings import Settings

CLIENTS = Path(__file__).parent / "clients"
GENERATOR = Path(sys.executable).parent / "openapi-python-client"
DOC = "/api/v1/openapi.json"
OPERATIONS = ("create_data_source", "list_data_sources", "update_data_source", "delete_data_source")
CATALOG_OPERATIONS = ("list_connectors", "get_connector")
EXAMPLE = {  # every field a client sets in the reference's example source
    "key": "crm-customers",
    "name": "CRM Customer Export",
    "description": "Daily customer data export from Salesforce.",
    "connectorKey": "salesforce",
    "sourceConfig": {"objectName": "Contact", "query": "SELECT Id, Email, Name FROM Contact"},
    "fileFormat": None,
    "syncMode": "incremental",
    "schedule": {"cron": "0 2 * * *", "timezone": "America/New_York"},
    "schemaKey": "customers",
    "status": "active",
    "lastSyncAt": "2026-03-16T02:00:00.000Z",
    "lastSyncStatus": "success",
    "recordCount": 45000,
}


def run(command, cwd):
    """Run a tool; its output, which must hold no warning."""
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=300)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "warning" not in output.lower(), output
    return output


@pytest.fixture(scope="session")
def node_bin(tmp_path_factory):
    """tests/clients' pinned Node tools, installed from its lock file."""
    assert shutil.which("npm"), "npm missing: install Node.js and npm"
    folder = tmp_path_factory.mktemp("node-tools")
    for name in ("package.json", "package-lock.json", ".npmrc"):
        shutil.copy(CLIENTS / name, folder)
    done = subprocess.run(["npm", "ci"], cwd=folder, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    return folder / "node_modules" / ".bin"


@pytest.fixture
def base_url(app):
    """The test's app on a real HTTP server on loopback."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(timeout=10)


def served_document(app, path):
    response = app.test_client().get(DOC)
    assert response.status_code == 200
    path.write_bytes(response.data)
    return path


@pytest.fixture
def generated(app, tmp_path, backend):
    """The Python client openapi-python-client writes from the served
    document, imported as a package of its own."""
    document = served_document(app, tmp_path / "openapi.json")
    config = tmp_path / "generator.json"
    config.write_text(json.dumps({"post_hooks": []}))
    package = f"datasources_client_{backend}"
    command = [GENERATOR, "generate", "--path", document, "--config", config, "--meta", "none"]
    run([*command, "--output-path", tmp_path / package, "--fail-on-warning"], cwd=tmp_path)
    sys.path.insert(0, str(tmp_path))
    try:
        yield importlib.import_module(package)
    finally:
        sys.path.remove(str(tmp_path))
        for name in [name for name in sys.modules if name.split(".")[0] == package]:
            del sys.modules[name]


def test_the_python_client_walks_the_api(app, generated, base_url):
    def module(name):
        return importlib.import_module(f"{generated.__name__}.{name}")

    api = SimpleNamespace(**{name: module(f"api.data_sources.{name}") for name in OPERATIONS})
    models, unset = module("models"), module("types").UNSET
    client = generated.AuthenticatedClient(base_url=base_url, token=token())
    with client:
        # Create: every field of the reference's example, through the typed model.
        response = api.create_data_source.sync_detailed(
            client=client, body=models.DataSourceCreate.from_dict(EXAMPLE)
        )
        assert response.status_code == 201
        created = response.parsed
        assert isinstance(created, models.DataSource)
        assert {k: v for k, v in json.loads(response.content).items() if k in EXAMPLE} == EXAMPLE
        assert created.sync_mode == models.DataSourceSyncMode.INCREMENTAL
        assert created.last_sync_at == datetime.datetime(2026, 3, 16, 2, tzinfo=datetime.UTC)
        assert created.source_config.to_dict() == EXAMPLE["sourceConfig"]
        assert (created.record_count, created.row_version) == (45000, 1)
        other = models.DataSourceCreate(key="s3-orders", name="S3 Orders")
        assert api.create_data_source.sync(client=client, body=other).key == "s3-orders"

        # List, one a page, following nextCursor.
        keys, cursor, pages = [], unset, 0
        while True:
            page = api.list_data_sources.sync(client=client, limit=1, cursor=cursor)
            assert isinstance(page, models.DataSourcePage), page
            keys += [source.key for source in page.data]
            pages += 1
            if page.pagination.next_cursor is None:
                break
            assert page.pagination.has_more and page.pagination.total == 2
            cursor = page.pagination.next_cursor
        assert (keys, pages) == (["crm-customers", "s3-orders"], 2)

        # Update, then the same update again: a conflict holding the current object.
        change = models.DataSourceUpdate(
            key="crm-customers", status=models.DataSourceUpdateStatus.PAUSED, row_version=1
        )
        updated = api.update_data_source.sync(client=client, body=change)
        assert isinstance(updated, models.DataSource)
        assert (updated.status, updated.row_version) == (models.DataSourceStatus.PAUSED, 2)
        stale = api.update_data_source.sync_detailed(client=client, body=change)
        assert stale.status_code == 409
        assert isinstance(stale.parsed, models.ConcurrencyConflict)
        assert stale.parsed.current.to_dict() == updated.to_dict()
        assert stale.parsed.title == "Optimistic concurrency conflict"

        # Delete, then a 404 and a 400, both parsed as problems.
        deleted = api.delete_data_source.sync_detailed(client=client, key="crm-customers")
        assert (deleted.status_code, deleted.content) == (204, b"")
        missing = api.delete_data_source.sync(client=client, key="crm-customers")
        assert isinstance(missing, models.Problem) and missing.status == 404
        refused = api.create_data_source.sync(
            client=client, body=models.DataSourceCreate(key="", name="n")
        )
        assert isinstance(refused, models.Problem) and refused.status == 400
        assert list(refused.errors.to_dict()) == ["key"]
    assert [row["key"] for row in rows(app)] == ["s3-orders"]

    # The connector catalog, as a viewer: the list, then one as the typed Connector.
    catalog = SimpleNamespace(**{n: module(f"api.connectors.{n}") for n in CATALOG_OPERATIONS})
    viewer = generated.AuthenticatedClient(base_url=base_url, token=token(role="viewer"))
    with viewer:
        listing = catalog.list_connectors.sync(client=viewer)
        assert isinstance(listing, models.ConnectorList), listing
        assert all(isinstance(connector, models.Connector) for connector in listing.data)
        keys = [connector.key for connector in listing.data]
        assert keys == ["http", "kafka", "postgres", "s3", "salesforce", "snowflake"]
        s3 = catalog.get_connector.sync(client=viewer, key="s3")
        assert isinstance(s3, models.Connector), s3
        assert s3.to_dict() == connectors.load(Settings()).get("s3").describe()
        assert s3.file_formats == ["csv", "json", "jsonl", "parquet", "avro"]
        assert s3.secret_fields == ["/aws_access_key_id", "/aws_secret_access_key"]
        assert isinstance(s3.schema, models.ConnectorSchema) and s3.schema["required"] == ["bucket"]
        assert listing.data[keys.index("kafka")].file_formats is None
        missing = catalog.get_connector.sync(client=viewer, key="no-such-connector")
        assert isinstance(missing, models.Problem) and missing.status == 404


def test_the_typescript_types_compile_under_strict(node_bin, tmp_path):
    instance = tmp_path / "instance"
    app = create_app(
        {
            "TESTING": True,
            "DATASOURCES_DATABASE_URL": f"sqlite:///{tmp_path / 'ds.db'}",
            "DATASOURCES_JWT_SECRET": SECRET,
        },
        instance_path=str(instance),
    )
    try:
        document = served_document(app, tmp_path / "openapi.json")
    finally:
        close(database_of(app))
    for name in ("use.ts", "tsconfig.json"):
        shutil.copy(CLIENTS / name, tmp_path)
    run([node_bin / "openapi-typescript", document, "--output", tmp_path / "api.ts"], tmp_path)
    types = (tmp_path / "api.ts").read_text()
    assert "DataSourceCreate" in types and "Connector:" in types and "getConnector" in types
    run([node_bin / "tsc", "--strict", "--noEmit", "--project", tmp_path], tmp_path)


def test_the_node_tools_are_pinned_exactly():
    package = json.loads((CLIENTS / "package.json").read_text())
    lock = json.loads((CLIENTS / "package-lock.json").read_text())
    for name, version in package["devDependencies"].items():
        assert version[0].isdigit(), f"{name} {version}: pin an exact version"
        assert lock["packages"][f"node_modules/{name}"]["version"] == version
    assert not any("resolved" in entry for entry in lock["packages"].values())
